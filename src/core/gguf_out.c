/*
 * gguf_out.c — writing GGUF files (adapters, steering vectors) safely.
 *
 * Why one place: every file Forkpoint writes for llama.cpp to read is built
 * the same way (a ggml context holding the tensors' data, a gguf context
 * holding keys and tensors) and must never be seen half-written: it goes to
 * a temporary file beside the target, is synced, then renamed over it.
 */
#include "core/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <ggml.h>
#include <gguf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

fp_status fpi_gguf_new(size_t data_bytes, int32_t n_tensors, struct ggml_context **ctx, struct gguf_context **g,
                       fp_error *err) {
    struct ggml_init_params ip = {
        .mem_size = data_bytes + (size_t)(n_tensors + 1) * (ggml_tensor_overhead() + 64),
        .mem_buffer = NULL, .no_alloc = false };
    *ctx = ggml_init(ip);
    *g = gguf_init_empty();
    if (!*ctx || !*g) {
        if (*ctx) ggml_free(*ctx);
        if (*g) gguf_free(*g);
        *ctx = NULL;
        *g = NULL;
        return fpi_fail(err, FP_ERR_NOMEM, "out of memory");
    }
    return FP_OK;
}

/* Writes a GGUF to path through a temporary file, fsync and a rename, so a
 * reader never sees half a file and a failure leaves the old file as it was. */
fp_status fpi_write_gguf_atomic(const struct gguf_context *g, const char *path, fp_error *err) {
    size_t pl = strlen(path) + 24;
    char *tmp = malloc(pl);
    if (!tmp) return fpi_fail(err, FP_ERR_NOMEM, "out of memory");
    snprintf(tmp, pl, "%s.tmp%ld", path, (long)getpid());
    fp_status rc = FP_OK;
    if (!gguf_write_to_file(g, tmp, false)) rc = fpi_fail(err, FP_ERR_IO, "cannot write %s", tmp);
    else {
        int fd = open(tmp, O_RDONLY);
        if (fd < 0 || fsync(fd) != 0) rc = fpi_fail(err, FP_ERR_IO, "cannot sync %s: %s", tmp, strerror(errno));
        if (fd >= 0) close(fd);
        if (rc == FP_OK && rename(tmp, path) != 0)
            rc = fpi_fail(err, FP_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    }
    if (rc != FP_OK) unlink(tmp);
    free(tmp);
    return rc;
}

