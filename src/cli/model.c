/*
 * model.c — `forkpoint model`: the models a person has and gets.
 *
 *   forkpoint model list [--models-dir DIR] [--json]            the models folder
 *   forkpoint model pull OWNER/REPO[:QUANT] [--models-dir DIR]   download from the hub
 *   forkpoint model [PATH]                                       resolve and check a model
 *
 * Exit codes: 0 done, 1 network, transfer or checksum failure, 2 bad input
 * (usage, no such repository, no file for the quant, a file that is no model).
 */
#include "cli/cli.h"
#include "forkpoint_fetch.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cli_pull(const char *spec, const char *models_dir, char *out, size_t cap) {
    fp_error err = {0};
    bool tty = isatty(STDERR_FILENO);
    fp_status st = fp_hf_pull(spec, models_dir, tty ? fp_fetch_progress_bar : NULL, NULL, out, cap, &err);
    if (st == FP_OK) return 0;
    fprintf(stderr, "forkpoint: %s\n", err.message);
    return st == FP_ERR_ARG ? 2 : 1;
}

static void usage(FILE *f) {
    fputs("usage: forkpoint model list [--models-dir DIR] [--json]\n"
          "         the GGUF models of the folder (default: the cache's), read from their headers\n"
          "       forkpoint model pull OWNER/REPO[:QUANT] [--models-dir DIR]\n"
          "         download a GGUF model from the Hugging Face hub (QUANT default Q4_K_M)\n"
          "       forkpoint model [PATH]\n"
          "         resolve and check a model (default: stories260K), print its path\n", f);
}

/* `model pull`: prints the downloaded file's path. */
static int pull(int argc, char **argv) {
    const char *spec = NULL, *dir = NULL;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--models-dir")) {
            if (i + 1 >= argc) { fprintf(stderr, "forkpoint model: --models-dir needs a value\n"); return 2; }
            dir = argv[++i];
        } else if (argv[i][0] == '-' || spec) {
            fprintf(stderr, "forkpoint model pull: unexpected %s (try --help)\n", argv[i]);
            return 2;
        } else {
            spec = argv[i];
        }
    }
    if (!spec) { fprintf(stderr, "forkpoint model pull: name a repository, OWNER/REPO[:QUANT]\n"); return 2; }
    char path[PATH_MAX];
    int rc = cli_pull(spec, dir, path, sizeof path);
    if (rc) return rc;
    printf("%s\n", path);
    return 0;
}

/* `model list`: a table, or a JSON array (fp_model_entry_json's objects). */
static int list(int argc, char **argv) {
    const char *dir = NULL;
    bool json = false;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) json = true;
        else if (!strcmp(argv[i], "--models-dir") && i + 1 < argc) dir = argv[++i];
        else { fprintf(stderr, "forkpoint model list: unexpected %s (try --help)\n", argv[i]); return 2; }
    }
    fp_error err = {0};
    char def[PATH_MAX];
    if (!dir) {
        if (fp_models_dir(def, sizeof def, &err) != FP_OK) { fprintf(stderr, "forkpoint: %s\n", err.message); return 2; }
        dir = def;
    }
    fp_model_entry *e = NULL;
    int32_t n = 0;
    if (fp_models_scan(dir, &e, &n, &err) != FP_OK) {
        /* the cache's folder before the first download is simply empty */
        if (dir != def || err.code != FP_ERR_IO) { fprintf(stderr, "forkpoint: %s\n", err.message); return 2; }
    }
    if (json) putchar('[');
    else if (n) printf("%-32s %9s %7s %-10s %-7s %-8s %7s  %s\n", "NAME", "SIZE", "CONTEXT", "ARCH", "QUANT", "TEMPLATE", "VOCAB", "FILE");
    for (int32_t i = 0; i < n; i++) {
        if (json) {
            char *j = fp_model_entry_json(&e[i]);
            printf("%s%s", i ? "," : "", j ? j : "null");
            free(j);
            continue;
        }
        char size[32];
        fp_size_text(e[i].info.size_bytes, size, sizeof size);
        if (e[i].error[0]) { printf("%-32s %9s  (%s)  %s\n", "?", size, e[i].error, e[i].path); continue; }
        printf("%-32.32s %9s %7d %-10.10s %-7.7s %-8s %7d  %s%s\n", e[i].info.name, size, e[i].info.n_ctx_train,
               e[i].info.arch, e[i].info.quant, e[i].info.has_chat_template ? "yes" : "no", e[i].info.n_vocab,
               e[i].path, e[i].info.has_weights ? "" : "  (vocab only)");
    }
    if (json) puts("]");
    else if (!n) printf("no models in %s (forkpoint model pull OWNER/REPO gets one)\n", dir);
    free(e);
    return 0;
}

/* `model [PATH]`: resolves (the default model if none), loads, prints facts. */
static int check(const char *given) {
    fp_error err = {0};
    char path[PATH_MAX];
    if (fp_resolve_default_model(given, path, sizeof path, &err) != FP_OK) {
        fprintf(stderr, "forkpoint: %s\n", err.message);
        return 2;
    }
    fp_model *m = fp_model_load(path, NULL, &err);
    if (!m) { fprintf(stderr, "forkpoint: %s\n", err.message); return 2; }
    printf("%s\tvocab %d\tcontext %d\n", path, fp_model_n_vocab(m), fp_model_n_ctx_train(m));
    fp_model_free(m);
    return 0;
}

int cli_model(int argc, char **argv) {
    if (argc > 0 && (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h"))) { usage(stdout); return 0; }
    if (argc > 0 && !strcmp(argv[0], "pull")) return pull(argc - 1, argv + 1);
    if (argc > 0 && !strcmp(argv[0], "list")) return list(argc - 1, argv + 1);
    if (argc > 1) { usage(stderr); return 2; }
    return check(argc > 0 ? argv[0] : NULL);
}
