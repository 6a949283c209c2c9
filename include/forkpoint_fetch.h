/*
 * forkpoint_fetch.h — finding and downloading models: the default model,
 * a model from the Hugging Face hub (--hf REPO[:QUANT]), and the models
 * folder (--models-dir) the picker and `forkpoint model list` show.
 *
 * Deployment, not writing: front ends (the terminal, the server, the
 * benchmarks) link libforkpoint_fetch for `make run` to work with no
 * arguments on a fresh machine. The core library knows nothing of it, of
 * libcurl, or of the URLs below.
 */
#ifndef FORKPOINT_FETCH_H
#define FORKPOINT_FETCH_H

#include "forkpoint.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The stories260K default model, resolved in this order:
 *   1. explicit  (a --model flag; may be NULL)
 *   2. $FORKPOINT_MODEL
 *   3. the cache: ${FORKPOINT_CACHE:-${XDG_CACHE_HOME:-~/.cache}/forkpoint}/models/stories260K.gguf
 *   4. ../shared/models/stories260K.gguf beside the project root
 *   5. a download from its public URL into the cache.
 * The default file (3-5) is checked against its sha256 every time; an
 * explicit or $FORKPOINT_MODEL path is the user's own file and is not.
 * Writes the path into out. */
fp_status fp_resolve_default_model(const char *explicit_path, char *out, size_t cap,
                                   fp_error *err);

/* The cache's models folder, ${FORKPOINT_CACHE:-${XDG_CACHE_HOME:-~/.cache}/forkpoint}/models:
 * where downloads go and the default --models-dir. Writes the path into out. */
fp_status fp_models_dir(char *out, size_t cap, fp_error *err);

/* Told how a download goes: done bytes of total (-1 = unknown; -2 = the
 * transfer ended). Called on the downloading thread, often. */
typedef void (*fp_fetch_progress)(void *ud, const char *name, int64_t done, int64_t total);
/* A ready-made one for a terminal: a bar redrawn on stderr (front ends pass
 * it only when stderr is a terminal). */
void fp_fetch_progress_bar(void *ud, const char *name, int64_t done, int64_t total);

/* A size for people: "812 KB", "1.4 MB", "3.20 GB" (powers of 1000). */
void fp_size_text(int64_t bytes, char *out, size_t cap);

/* A GGUF model from the Hugging Face hub, llama.cpp's -hf convention:
 * spec is OWNER/REPO[:QUANT]. The repository's files are listed
 * (GET ENDPOINT/api/models/OWNER/REPO/tree/main?recursive=true) and the
 * .gguf whose name carries QUANT as a whole word is taken (case-insensitive;
 * default Q4_K_M, or the repository's only GGUF file; QUANT may also be a
 * file name ending in .gguf; every part of a split model). It is downloaded
 * from ENDPOINT/OWNER/REPO/resolve/main/FILE into dir (NULL = fp_models_dir)
 * as OWNER_REPO_FILE, resumed when a run was interrupted, and checked against
 * the sha256 the hub publishes (the LFS oid; a mismatch removes the file).
 * A file already there with the published size is taken as it is. ENDPOINT:
 * $FORKPOINT_HF_ENDPOINT, $MODEL_ENDPOINT or $HF_ENDPOINT, default
 * https://huggingface.co; $HF_TOKEN is sent as a bearer token when set.
 * Without network a file of the cache that matches is taken. Writes the
 * (first) file's path into out. Errors, one line each: FP_ERR_ARG (bad spec,
 * no such repository, no file for QUANT: the message lists the files there
 * are), FP_ERR_IO (no network, an interrupted transfer: run again to resume),
 * FP_ERR_CHECKSUM (bad sha256). Cost: one listing request, then the bytes
 * still missing and one sha256 pass over each downloaded file. */
fp_status fp_hf_pull(const char *spec, const char *dir, fp_fetch_progress progress, void *ud,
                     char *out, size_t cap, fp_error *err);

/* One model of a models folder: its path and facts, or why they could not be read. */
typedef struct fp_model_entry {
    char          path[1024];
    fp_model_info info;
    char          error[256];   /* "" = info is valid */
} fp_model_entry;

/* The GGUF files of dir and of its subfolders one level down (hidden files,
 * .part downloads and the later parts of split models left out), sorted by
 * path, with their facts (fp_model_info_read: headers only). *out is
 * malloc'd (free it); FP_ERR_IO when dir is not a readable folder. Cost: one
 * header read per file. */
fp_status fp_models_scan(const char *dir, fp_model_entry **out, int32_t *n, fp_error *err);
/* One entry as a JSON object (malloc'd text): file, path, name, arch, quant,
 * size_bytes, n_ctx_train, n_vocab, chat_template, weights, and error when
 * its facts could not be read. The one rendering `model list --json` and the
 * server's /api/models share. */
char *fp_model_entry_json(const fp_model_entry *e);

#define FP_DEFAULT_MODEL_SHA256 "270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d"
#define FP_DEFAULT_MODEL_URL \
    "https://huggingface.co/ggml-org/models/resolve/main/tinyllamas/stories260K.gguf"

#ifdef __cplusplus
}
#endif

#endif
