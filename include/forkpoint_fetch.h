/*
 * forkpoint_fetch.h — finding, and if need be downloading, the default model.
 *
 * Deployment, not writing: front ends (the terminal, the server, the
 * benchmarks) link libforkpoint_fetch for `make run` to work with no
 * arguments on a fresh machine. The core library knows nothing of it, of
 * libcurl, or of the URL below.
 */
#ifndef FORKPOINT_FETCH_H
#define FORKPOINT_FETCH_H

#include "forkpoint.h"

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

#define FP_DEFAULT_MODEL_SHA256 "270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d"
#define FP_DEFAULT_MODEL_URL \
    "https://huggingface.co/ggml-org/models/resolve/main/tinyllamas/stories260K.gguf"

#ifdef __cplusplus
}
#endif

#endif
