/*
 * tokvec.c — a small vector per token that says what the token means, for
 * preferences that generalise across words (prefs.c): a person who likes
 * " dog" and " cat" probably likes " bird" too, and the model knows that
 * " bird" is used like them.
 *
 * The vector is the token's row of the model's output matrix (output.weight,
 * or token_embd.weight when the output is tied to it): the direction a
 * hidden state takes when it predicts the token. Words used alike have
 * similar rows. Each row (n_embd wide) is projected onto FP_TOKVEC fixed
 * pseudo-random directions (a seeded ±1 matrix, the same for every run),
 * then scaled to unit length, so the features are comparable across models.
 *
 * Why the output matrix and not the hidden state after each candidate
 * (llama_get_embeddings_ith in the cloud's decode): the row depends on the
 * token alone, so a fork restored from storage, a typed word or a cloud
 * narrowed by a prefix gets the same vector as the live one, with nothing
 * to store and no change to the decode.
 *
 * Cost: built once per model, lazily, when preferences are first attached:
 * one read of the matrix from the GGUF file (no_alloc metadata, then the
 * tensor's bytes; any ggml type, dequantized a row at a time) and
 * n_vocab x n_embd x FP_TOKVEC multiply-adds; n_vocab x FP_TOKVEC floats kept.
 * A model whose matrix cannot be read gets no vectors (the features are 0).
 */
#include "core/internal.h"

#include <ggml.h>
#include <gguf.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float *build(const fp_model *m) {
    struct ggml_context *meta = NULL;
    struct gguf_init_params gp = { .no_alloc = true, .ctx = &meta };
    struct gguf_context *g = m->path ? gguf_init_from_file(m->path, gp) : NULL;
    float *out = NULL, *row = NULL, *proj = NULL;
    void *raw = NULL;
    FILE *f = NULL;
    if (!g) goto done;
    int64_t ti = gguf_find_tensor(g, "output.weight");
    if (ti < 0) ti = gguf_find_tensor(g, "token_embd.weight");
    if (ti < 0) goto done;
    struct ggml_tensor *t = ggml_get_tensor(meta, gguf_get_tensor_name(g, ti));
    if (!t || ggml_n_dims(t) != 2 || t->ne[1] != m->n_vocab) goto done;
    const int64_t n_embd = t->ne[0];
    const struct ggml_type_traits *tr = ggml_get_type_traits(t->type);
    if (t->type != GGML_TYPE_F32 && !tr->to_float) goto done;
    size_t row_bytes = ggml_row_size(t->type, n_embd);
    raw = malloc(row_bytes);
    row = malloc(sizeof(float) * (size_t)n_embd);
    proj = malloc(sizeof(float) * (size_t)n_embd * FP_TOKVEC);
    out = calloc((size_t)m->n_vocab * FP_TOKVEC, sizeof(float));
    f = fopen(m->path, "rb");
    if (!raw || !row || !proj || !out || !f) goto fail;
    uint64_t s = 0x2545F4914F6CDD1DULL;   /* fixed: the same projection in every run */
    for (int64_t i = 0; i < n_embd * FP_TOKVEC; i++) {
        s ^= s >> 12; s ^= s << 25; s ^= s >> 27;
        proj[i] = ((s * 0x2545F4914F6CDD1DULL) >> 63) ? 1.0f : -1.0f;
    }
    if (fseeko(f, (off_t)(gguf_get_data_offset(g) + gguf_get_tensor_offset(g, ti)), SEEK_SET) != 0) goto fail;
    for (int32_t v = 0; v < m->n_vocab; v++) {
        if (fread(raw, 1, row_bytes, f) != row_bytes) goto fail;
        if (t->type == GGML_TYPE_F32) memcpy(row, raw, sizeof(float) * (size_t)n_embd);
        else tr->to_float(raw, row, n_embd);
        float *o = out + (size_t)v * FP_TOKVEC;
        double norm = 0;
        for (int d = 0; d < FP_TOKVEC; d++) {
            double acc = 0;
            const float *pd = proj + (size_t)d * (size_t)n_embd;
            for (int64_t j = 0; j < n_embd; j++) acc += (double)pd[j] * row[j];
            o[d] = (float)acc;
            norm += acc * acc;
        }
        if (!(norm > 0) || !isfinite(norm)) { memset(o, 0, sizeof(float) * FP_TOKVEC); continue; }
        float inv = (float)(1.0 / sqrt(norm));
        for (int d = 0; d < FP_TOKVEC; d++) o[d] *= inv;
    }
    goto done;
fail:
    free(out);
    out = NULL;
done:
    if (f) fclose(f);
    free(raw); free(row); free(proj);
    if (g) gguf_free(g);
    if (meta) ggml_free(meta);
    return out;
}

const float *fpi_tokvec(fp_model *m) {
    if (!m->tokvec_done) {
        m->tokvec = m->vocab_only ? NULL : build(m);
        m->tokvec_done = true;
    }
    return m->tokvec;
}
