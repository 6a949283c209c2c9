/*
 * resolve.c — where the default model comes from.
 *
 * `make run` must work on a fresh machine with no arguments, so the default
 * model (stories260K) is looked for in a fixed order: an explicit path, the
 * FORKPOINT_MODEL variable, the user's cache, ../shared/models beside the
 * project root, and finally a download from its public URL into the cache.
 * The pinned default file is checked against its sha256 wherever it was found;
 * a path the user names is their own model and is taken as it is.
 *
 * Why a library of its own (libforkpoint_fetch): downloading is deployment,
 * not writing; it keeps libcurl and the default model's URL out of the core.
 */
#include "fetch/fetch.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_NAME "stories260K.gguf"


/* The cache directory: $FORKPOINT_CACHE, else $XDG_CACHE_HOME/forkpoint, else ~/.cache/forkpoint. */
static void cache_dir(char *out, size_t cap) {
    const char *c = getenv("FORKPOINT_CACHE");
    const char *x = getenv("XDG_CACHE_HOME");
    const char *h = getenv("HOME");
    if (c && *c) snprintf(out, cap, "%s", c);
    else if (x && *x) snprintf(out, cap, "%s/forkpoint", x);
    else snprintf(out, cap, "%s/.cache/forkpoint", h && *h ? h : "/tmp");
}

static fp_status check_sha(const char *path, fp_error *err) {
    char hex[65];
    fp_status st = fp_sha256_file(path, hex, err);
    if (st != FP_OK) return st;
    if (strcmp(hex, FP_DEFAULT_MODEL_SHA256) != 0)
        return fp_error_set(err, FP_ERR_CHECKSUM, "%s: sha256 %s does not match the pinned %s",
                       path, hex, FP_DEFAULT_MODEL_SHA256);
    return FP_OK;
}

/* Looks for ../shared/models/<name> beside the current directory and beside
 * each ancestor of the executable's directory (the project root is one of them). */
static bool find_shared(char *out, size_t cap) {
    char dirs[8][PATH_MAX];
    int nd = 0;
    if (getcwd(dirs[nd], PATH_MAX)) nd++;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        for (int up = 0; up < 5 && nd < 8; up++) {
            char *slash = strrchr(exe, '/');
            if (!slash || slash == exe) break;
            *slash = 0;
            snprintf(dirs[nd++], PATH_MAX, "%s", exe);
        }
    }
    for (int i = 0; i < nd; i++) {
        int w = snprintf(out, cap, "%s/../shared/models/" DEFAULT_NAME, dirs[i]);
        if (w > 0 && (size_t)w < cap && fpi_file_exists(out)) {
            char real[PATH_MAX];
            if (realpath(out, real)) snprintf(out, cap, "%s", real);
            return true;
        }
    }
    return false;
}

fp_status fp_models_dir(char *out, size_t cap, fp_error *err) {
    char dir[PATH_MAX];
    cache_dir(dir, sizeof dir);
    int w = snprintf(out, cap, "%s/models", dir);
    if (w < 0 || (size_t)w >= cap) return fp_error_set(err, FP_ERR_ARG, "cache path too long");
    return FP_OK;
}

fp_status fp_resolve_default_model(const char *explicit_path, char *out, size_t cap, fp_error *err) {
    if (!out || cap == 0) return fp_error_set(err, FP_ERR_ARG, "no output buffer");
    const char *env = getenv("FORKPOINT_MODEL");
    const char *given = explicit_path && *explicit_path ? explicit_path : (env && *env ? env : NULL);
    if (given) {
        if (!fpi_file_exists(given)) return fp_error_set(err, FP_ERR_IO, "model file not found: %s", given);
        if ((size_t)snprintf(out, cap, "%s", given) >= cap) return fp_error_set(err, FP_ERR_ARG, "path too long");
        return FP_OK;
    }
    char dir[PATH_MAX], cached[PATH_MAX + 64];
    cache_dir(dir, sizeof dir);
    snprintf(cached, sizeof cached, "%s/models/" DEFAULT_NAME, dir);
    if (fpi_file_exists(cached)) {
        fp_status st = check_sha(cached, err);
        if (st == FP_OK) { snprintf(out, cap, "%s", cached); return FP_OK; }
        if (st != FP_ERR_CHECKSUM) return st;
        unlink(cached); /* a damaged cache entry is dropped and fetched again */
    }
    char shared[PATH_MAX];
    if (find_shared(shared, sizeof shared)) {
        fp_status st = check_sha(shared, err);
        if (st != FP_OK) return st;
        snprintf(out, cap, "%s", shared);
        return FP_OK;
    }
    char mdir[PATH_MAX + 8];
    snprintf(mdir, sizeof mdir, "%s/models", dir);
    if (fpi_mkdirs(mdir) != 0) return fp_error_set(err, FP_ERR_IO, "cannot create %s: %s", mdir, strerror(errno));
    fp_status st = fpi_download(FP_DEFAULT_MODEL_URL, NULL, cached, FP_DEFAULT_MODEL_SHA256, DEFAULT_NAME,
                                NULL, NULL, err);
    if (st != FP_OK) return st;
    snprintf(out, cap, "%s", cached);
    return FP_OK;
}
