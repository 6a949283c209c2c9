/*
 * steer.c — steering vectors learned from decisions, and scoring under them.
 *
 * A person's choices at forks are pairs: at the same context they took one
 * word and passed over another. For each layer l, the direction
 *
 *     v_l = mean_pairs h_l(context + chosen) - mean_pairs h_l(context + rejected)
 *
 * (h_l: the residual stream after layer l at the last token, read through
 * the context's cb_eval callback on the "l_out-<l>" tensors) points from
 * what they reject toward what they choose. Adding strength * v_l to every
 * layer's output (llama_set_adapter_cvec) nudges generation their way.
 *
 * Changing the adapter changes every hidden state, so the KV cells already
 * computed are stale: fp_engine_set_steer re-decodes every session's path
 * and recomputes its open fork before anything is scored again.
 */
#include "core/internal.h"

#include <ggml.h>
#include <gguf.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct fp_steer {
    int32_t n_embd, n_layer;
    float *dir;    /* [n_layer][n_embd]; layer 0 unused (llama.cpp cannot steer it) */
};

void fp_steer_free(fp_steer *v) {
    if (!v) return;
    free(v->dir);
    free(v);
}

/* cb_eval state: where the last token's hidden states go. */
typedef struct capture {
    int32_t n_embd, n_layer;
    float *out;        /* [n_layer][n_embd] for the current decode */
    float *row;        /* scratch for one tensor */
    size_t row_cap;
} capture;

static bool capture_cb(struct ggml_tensor *t, bool ask, void *ud) {
    capture *c = ud;
    int il;
    if (strncmp(t->name, "l_out-", 6) != 0 || sscanf(t->name + 6, "%d", &il) != 1 || il < 0 || il >= c->n_layer) return false;
    if (ask) return true;
    if (t->type != GGML_TYPE_F32 || t->ne[0] != c->n_embd) return true;
    size_t bytes = ggml_nbytes(t);
    if (bytes > c->row_cap) {
        float *r = realloc(c->row, bytes);
        if (!r) return true;
        c->row = r;
        c->row_cap = bytes;
    }
    ggml_backend_tensor_get(t, c->row, 0, bytes);
    int64_t n_tok = t->ne[1];
    memcpy(c->out + (size_t)il * (size_t)c->n_embd, c->row + (size_t)(n_tok - 1) * (size_t)c->n_embd,
           sizeof(float) * (size_t)c->n_embd);
    return true;
}

/* Decodes context + word in a fresh sequence and captures the last token's states. */
static fp_status states_after(struct llama_context *ctx, capture *cap, const int32_t *context, int32_t nc,
                              const int32_t *word, int32_t nw, fp_error *err) {
    llama_memory_seq_rm(llama_get_memory(ctx), 0, -1, -1);
    int32_t n = nc + nw;
    struct llama_batch b = llama_batch_init(n, 0, 1);
    if (!b.token) return fpi_fail(err, FP_ERR_NOMEM, "out of memory");
    for (int32_t i = 0; i < n; i++) {
        b.token[i] = i < nc ? context[i] : word[i - nc];
        b.pos[i] = i;
        b.n_seq_id[i] = 1;
        b.seq_id[i][0] = 0;
        b.logits[i] = i == n - 1;
    }
    b.n_tokens = n;
    int32_t rc = llama_decode(ctx, b);
    llama_batch_free(b);
    return rc == 0 ? FP_OK : fpi_fail(err, FP_ERR_DECODE, "llama_decode failed (%d) while reading hidden states", rc);
}

fp_steer *fp_steer_compute(fp_model *m, const fp_steer_pair *pairs, int32_t n, int32_t n_threads, fp_error *err) {
    if (!m || m->vocab_only || !pairs || n <= 0) { fpi_fail(err, FP_ERR_ARG, "no pairs to learn a direction from"); return NULL; }
    int32_t n_embd = llama_model_n_embd(m->lm), n_layer = llama_model_n_layer(m->lm);
    int32_t longest = 0;
    for (int32_t i = 0; i < n; i++) {
        int32_t a = pairs[i].n_context + pairs[i].n_chosen, b = pairs[i].n_context + pairs[i].n_rejected;
        if (pairs[i].n_context < 1 || pairs[i].n_chosen < 1 || pairs[i].n_rejected < 1) { fpi_fail(err, FP_ERR_ARG, "pair %d is empty", i); return NULL; }
        if (a > longest) longest = a;
        if (b > longest) longest = b;
    }
    capture cap = { .n_embd = n_embd, .n_layer = n_layer };
    fp_steer *v = calloc(1, sizeof *v);
    float *tmp = calloc((size_t)n_layer * (size_t)n_embd, sizeof(float));
    if (v) v->dir = calloc((size_t)n_layer * (size_t)n_embd, sizeof(float));
    cap.out = tmp;
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)(longest + 8);
    cp.n_batch = cp.n_ctx;
    cp.n_ubatch = cp.n_ctx;
    cp.n_seq_max = 1;
    cp.n_threads = cp.n_threads_batch = n_threads > 0 ? n_threads : 1;
    cp.cb_eval = capture_cb;
    cp.cb_eval_user_data = &cap;
    cp.no_perf = true;
    struct llama_context *ctx = v && v->dir && tmp ? llama_init_from_model(m->lm, cp) : NULL;
    if (!ctx) {
        fpi_fail(err, v && tmp ? FP_ERR_MODEL : FP_ERR_NOMEM, "cannot set up a context for reading hidden states");
        free(tmp); free(cap.row); fp_steer_free(v);
        return NULL;
    }
    v->n_embd = n_embd;
    v->n_layer = n_layer;
    size_t sz = (size_t)n_layer * (size_t)n_embd;
    fp_status st = FP_OK;
    for (int32_t i = 0; i < n && st == FP_OK; i++) {
        /* dir += (h(chosen) - h(rejected)) / n */
        st = states_after(ctx, &cap, pairs[i].context, pairs[i].n_context, pairs[i].chosen, pairs[i].n_chosen, err);
        for (size_t k = 0; st == FP_OK && k < sz; k++) v->dir[k] += tmp[k] / (float)n;
        if (st == FP_OK) st = states_after(ctx, &cap, pairs[i].context, pairs[i].n_context, pairs[i].rejected, pairs[i].n_rejected, err);
        for (size_t k = 0; st == FP_OK && k < sz; k++) v->dir[k] -= tmp[k] / (float)n;
    }
    llama_free(ctx);
    free(tmp);
    free(cap.row);
    for (size_t k = 0; st == FP_OK && k < sz; k++) if (!isfinite(v->dir[k])) st = fpi_fail(err, FP_ERR_DECODE, "the direction is not finite");
    if (st != FP_OK) { fp_steer_free(v); return NULL; }
    return v;
}

fp_status fp_engine_set_steer(fp_engine *e, const fp_steer *v, float strength, fp_error *err) {
    if (e->remote)
        return fpi_fail(err, FP_ERR_ARG, "a steering vector needs the model's hidden states, which the remote engine (%s) keeps: not available with --backend", fp_engine_backend(e));
    if (v && (v->n_embd != llama_model_n_embd(e->model->lm) || v->n_layer != llama_model_n_layer(e->model->lm)))
        return fpi_fail(err, FP_ERR_MODEL, "the steering vector was learned on a model of another shape");
    if (!isfinite(strength)) return fpi_fail(err, FP_ERR_ARG, "strength must be finite");
    int32_t rc;
    if (!v || strength == 0.0f) {
        rc = llama_set_adapter_cvec(e->ctx, NULL, 0, 0, 0, 0);
    } else {
        /* llama.cpp's buffer starts at layer 1 */
        size_t n = (size_t)(v->n_layer - 1) * (size_t)v->n_embd;
        float *data = malloc(sizeof(float) * (n ? n : 1));
        if (!data) return fpi_fail(err, FP_ERR_NOMEM, "out of memory");
        for (size_t k = 0; k < n; k++) data[k] = strength * v->dir[(size_t)v->n_embd + k];
        rc = llama_set_adapter_cvec(e->ctx, data, n, v->n_embd, 1, v->n_layer - 1);
        free(data);
    }
    if (rc != 0) return fpi_fail(err, FP_ERR_MODEL, "llama.cpp refused the steering vector");
    return fpi_engine_redecode_all(e, err);
}

/* ------------------------------------------------------------ files */

/* The file is llama.cpp's control-vector GGUF (what llama-cli
 * --control-vector reads): one F32 tensor "direction.L" of n_embd values per
 * steered layer L >= 1, plus the strength Forkpoint picked. */
#define STRENGTH_KEY "forkpoint.steer.strength"

fp_status fp_steer_save(const fp_steer *v, const fp_model *m, const char *path, float strength, fp_error *err) {
    if (!v || !m || !path || !*path) return fpi_fail(err, FP_ERR_ARG, "no steering vector, model or path");
    if (!isfinite(strength)) return fpi_fail(err, FP_ERR_ARG, "strength must be finite");
    struct ggml_context *ctx;
    struct gguf_context *g;
    fp_status rc = fpi_gguf_new((size_t)v->n_layer * (size_t)v->n_embd * sizeof(float), v->n_layer, &ctx, &g, err);
    if (rc != FP_OK) return rc;
    char arch[64] = "";
    llama_model_meta_val_str(m->lm, "general.architecture", arch, sizeof arch);
    gguf_set_val_str(g, "general.architecture", "controlvector");
    gguf_set_val_str(g, "controlvector.model_hint", arch);
    gguf_set_val_i32(g, "controlvector.layer_count", v->n_layer - 1);
    gguf_set_val_f32(g, STRENGTH_KEY, strength);
    for (int32_t l = 1; l < v->n_layer; l++) {
        struct ggml_tensor *t = ggml_new_tensor_1d(ctx, GGML_TYPE_F32, v->n_embd);
        ggml_format_name(t, "direction.%d", l);
        memcpy(t->data, v->dir + (size_t)l * (size_t)v->n_embd, sizeof(float) * (size_t)v->n_embd);
        gguf_add_tensor(g, t);
    }
    rc = fpi_write_gguf_atomic(g, path, err);
    gguf_free(g);
    ggml_free(ctx);
    return rc;
}

fp_steer *fp_steer_load(const fp_model *m, const char *path, float *strength, fp_error *err) {
    if (strength) *strength = 1.0f;
    if (!m || !path) { fpi_fail(err, FP_ERR_ARG, "no model or path"); return NULL; }
    if (access(path, R_OK) != 0) { fpi_fail(err, FP_ERR_IO, "no steering vector at %s", path); return NULL; }
    struct ggml_context *data = NULL;
    struct gguf_init_params gp = { .no_alloc = false, .ctx = &data };
    struct gguf_context *g = gguf_init_from_file(path, gp);
    if (!g) { fpi_fail(err, FP_ERR_MODEL, "%s is not a GGUF file", path); return NULL; }
    int32_t n_embd = llama_model_n_embd(m->lm), n_layer = llama_model_n_layer(m->lm);
    fp_steer *v = calloc(1, sizeof *v);
    if (v) v->dir = calloc((size_t)n_layer * (size_t)n_embd, sizeof(float));
    int32_t found = 0;
    const char *bad = NULL;
    if (!v || !v->dir) bad = "out of memory";
    for (int64_t i = 0; !bad && i < gguf_get_n_tensors(g); i++) {
        const char *name = gguf_get_tensor_name(g, i);
        struct ggml_tensor *t = ggml_get_tensor(data, name);
        int l = -1;
        char tail;
        if (sscanf(name, "direction.%d%c", &l, &tail) != 1 || l < 1) { bad = "a tensor is not a layer direction"; break; }
        if (l >= n_layer) { bad = "it steers layers this model does not have"; break; }
        if (!t || t->type != GGML_TYPE_F32 || ggml_n_dims(t) != 1 || t->ne[0] != n_embd) {
            bad = "its directions do not have this model's width";
            break;
        }
        memcpy(v->dir + (size_t)l * (size_t)n_embd, t->data, sizeof(float) * (size_t)n_embd);
        for (int32_t k = 0; k < n_embd; k++)
            if (!isfinite(v->dir[(size_t)l * (size_t)n_embd + k])) { bad = "it holds non-finite values"; break; }
        found++;
    }
    if (!bad && found == 0) bad = "it has no layer directions";
    int64_t ks = gguf_find_key(g, STRENGTH_KEY);
    if (!bad && strength && ks >= 0 && gguf_get_kv_type(g, ks) == GGUF_TYPE_FLOAT32) {
        float sv = gguf_get_val_f32(g, ks);
        if (isfinite(sv)) *strength = sv;
    }
    gguf_free(g);
    ggml_free(data);
    if (bad) {
        fpi_fail(err, bad[0] == 'o' ? FP_ERR_NOMEM : FP_ERR_MODEL, "%s is not a steering vector for this model: %s", path, bad);
        fp_steer_free(v);
        return NULL;
    }
    v->n_embd = n_embd;
    v->n_layer = n_layer;
    return v;
}
