/*
 * model_info.c — a GGUF file's facts (name, architecture, context, vocabulary,
 * chat template) without loading the model.
 *
 * Why: the models folder is listed by `forkpoint model list` and the page's
 * picker, and loading every model there to show its name would read
 * gigabytes. gguf_init_from_file with no_alloc reads only the header, the
 * key/value metadata and the tensor descriptions.
 */
#include "core/internal.h"

#include <ggml.h>
#include <gguf.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* An integer value of any integer GGUF type, or 0. */
static int64_t int_value(const struct gguf_context *g, int64_t k) {
    switch (gguf_get_kv_type(g, k)) {
    case GGUF_TYPE_UINT8:  return gguf_get_val_u8(g, k);
    case GGUF_TYPE_INT8:   return gguf_get_val_i8(g, k);
    case GGUF_TYPE_UINT16: return gguf_get_val_u16(g, k);
    case GGUF_TYPE_INT16:  return gguf_get_val_i16(g, k);
    case GGUF_TYPE_UINT32: return gguf_get_val_u32(g, k);
    case GGUF_TYPE_INT32:  return gguf_get_val_i32(g, k);
    case GGUF_TYPE_UINT64: return (int64_t)gguf_get_val_u64(g, k);
    case GGUF_TYPE_INT64:  return gguf_get_val_i64(g, k);
    default: return 0;
    }
}

static void str_value(const struct gguf_context *g, const char *key, char *out, size_t cap) {
    int64_t k = gguf_find_key(g, key);
    if (k >= 0 && gguf_get_kv_type(g, k) == GGUF_TYPE_STRING) snprintf(out, cap, "%s", gguf_get_val_str(g, k));
}

fp_status fp_model_info_read(const char *path, fp_model_info *info, fp_error *err) {
    if (!path || !info) return fpi_fail(err, FP_ERR_ARG, "no path");
    memset(info, 0, sizeof *info);
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return fpi_fail(err, FP_ERR_IO, "model file not found: %s", path);
    info->size_bytes = (int64_t)st.st_size;
    struct gguf_context *g = gguf_init_from_file(path, (struct gguf_init_params){ .no_alloc = true, .ctx = NULL });
    if (!g) return fpi_fail(err, FP_ERR_MODEL, "%s is not a GGUF file llama.cpp can read (damaged or another format)", path);
    str_value(g, "general.architecture", info->arch, sizeof info->arch);
    str_value(g, "general.name", info->name, sizeof info->name);
    if (!info->name[0]) {
        const char *b = strrchr(path, '/');
        snprintf(info->name, sizeof info->name, "%s", b ? b + 1 : path);
        size_t n = strlen(info->name);
        if (n > 5 && strcmp(info->name + n - 5, ".gguf") == 0) info->name[n - 5] = 0;
    }
    char key[96];
    snprintf(key, sizeof key, "%s.context_length", info->arch);
    int64_t k = info->arch[0] ? gguf_find_key(g, key) : -1;
    if (k >= 0) { int64_t v = int_value(g, k); info->n_ctx_train = v > 0 && v < INT32_MAX ? (int32_t)v : 0; }
    k = gguf_find_key(g, "tokenizer.ggml.tokens");
    if (k >= 0 && gguf_get_kv_type(g, k) == GGUF_TYPE_ARRAY) info->n_vocab = (int32_t)gguf_get_arr_n(g, k);
    k = gguf_find_key(g, "tokenizer.chat_template");
    info->has_chat_template = k >= 0 && gguf_get_kv_type(g, k) == GGUF_TYPE_STRING && gguf_get_val_str(g, k)[0];
    /* the storage type of most weight bytes names the quantization */
    int64_t nt = gguf_get_n_tensors(g);
    info->has_weights = nt > 0;
    size_t bytes[GGML_TYPE_COUNT] = {0};
    for (int64_t i = 0; i < nt; i++) {
        enum ggml_type t = gguf_get_tensor_type(g, i);
        if ((int)t >= 0 && t < GGML_TYPE_COUNT) bytes[t] += gguf_get_tensor_size(g, i);
    }
    int best = -1;
    for (int t = 0; t < GGML_TYPE_COUNT; t++) if (bytes[t] && (best < 0 || bytes[t] > bytes[best])) best = t;
    if (best >= 0) {
        snprintf(info->quant, sizeof info->quant, "%s", ggml_type_name((enum ggml_type)best));
        for (char *c = info->quant; *c; c++) if (*c >= 'a' && *c <= 'z') *c = (char)(*c - 32);
    }
    gguf_free(g);
    return FP_OK;
}
