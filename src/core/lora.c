/*
 * lora.c — a personal LoRA adapter, trained on a person's chosen
 * continuations, and its file (lora_apply.c puts it on an engine; judge.c
 * picks its scale).
 *
 * Why: the reranker and the logit bias (prefs.c) learn which candidates a
 * person prefers at a fork; an adapter changes the model itself, so the text
 * written between forks drifts toward the person's as well.
 *
 * A LoRA adapter replaces a weight W (n_out x n_in) by W + s * B A, with A
 * (r x n_in) and B (n_out x r) small, s = alpha / r. B starts at zero, so a
 * new adapter changes nothing until it is trained.
 *
 * The training recipe on llama.cpp b10679 (llama_opt_*):
 *   1. write an initial adapter GGUF with the gguf API (A small random, B zero);
 *   2. load the base model again, for training only (LLAMA_LOAD_MODE_NONE:
 *      weights in ordinary memory), load the adapter on it and make a fresh
 *      context whose n_ctx is the window (F32 KV cache: the backward pass
 *      needs it);
 *   3. mark the adapter's tensors as parameters. llama.cpp keeps them behind
 *      an opaque handle; instead of including its internal C++ header, one
 *      probe decode walks the graph through cb_eval and collects the operands
 *      named "<weight>.lora_a" / ".lora_b", which are exactly the tensors the
 *      training graph reads, and ggml_set_param flags them;
 *   4. llama_opt_init with a parameter filter that accepts no base tensor,
 *      so the base stays frozen;
 *   5. llama_opt_epoch over windows of exactly llama_n_ctx() tokens, keeping
 *      the weights of the epoch with the lowest loss on validation windows
 *      that are never trained on (early stopping);
 *   6. write those A and B as the adapter GGUF.
 *
 * Limits of this build, kept by the code below:
 *   - the backward pass only reaches tensors computed after the last KV-cache
 *     write, so adapters go on the last block's attn_output and ffn_* and on
 *     the output matrix (lora_targets);
 *   - a context can be trained once (llama_opt_init asserts), so every call
 *     makes its own context and frees it;
 *   - llama.cpp pads n_ctx to a multiple of 256, so windows have that length
 *     and the examples are packed one after another into a token stream;
 *   - learning rates above 1e-3 diverge; they are refused;
 *   - gradients through quantized weights are not supported: F32 models only.
 *
 * Invariant: the output file is replaced (by rename) only after every epoch's
 * loss and every trained weight were finite. A diverged run reports
 * FP_ERR_DIVERGED and leaves whatever adapter was there untouched.
 */
#include "core/internal.h"

#include <ggml-backend.h>
#include <ggml-opt.h>
#include <ggml.h>
#include <gguf.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FP_LORA_MAX_TARGETS 8

fp_lora_params fp_lora_default_params(void) {
    return (fp_lora_params){
        .rank = 8, .alpha = 8.0f, .epochs = 8, .learning_rate = 1e-3f,
        .stride = 256, .validation = 0.2f, .context_tail = 32, .n_threads = 1, .seed = 1234, .resume = NULL,
    };
}

/* ------------------------------------------------------- the base model */

/* What training needs to know about the base model's file. */
typedef struct base_info {
    char arch[64];
    int32_t n_targets;
    char target[FP_LORA_MAX_TARGETS][64];      /* weight names to adapt */
    int64_t n_in[FP_LORA_MAX_TARGETS], n_out[FP_LORA_MAX_TARGETS];
} base_info;

/* Reads the architecture and the shapes of the weights to adapt; refuses
 * models whose weights are not all F32 (no gradients through quantized data). */
static fp_status read_base(const char *path, int32_t n_layer, base_info *bi, fp_error *err) {
    memset(bi, 0, sizeof *bi);
    struct ggml_context *meta = NULL;
    struct gguf_init_params gp = { .no_alloc = true, .ctx = &meta };
    struct gguf_context *g = gguf_init_from_file(path, gp);
    if (!g) return fp_fail(err, FP_ERR_MODEL, "cannot read %s as GGUF", path);
    fp_status rc = FP_OK;
    int64_t ka = gguf_find_key(g, "general.architecture");
    if (ka < 0 || gguf_get_kv_type(g, ka) != GGUF_TYPE_STRING) {
        rc = fp_fail(err, FP_ERR_MODEL, "%s names no architecture", path);
        goto done;
    }
    snprintf(bi->arch, sizeof bi->arch, "%s", gguf_get_val_str(g, ka));
    for (int64_t i = 0; i < gguf_get_n_tensors(g); i++) {
        enum ggml_type t = gguf_get_tensor_type(g, i);
        if (t != GGML_TYPE_F32) {
            rc = fp_fail(err, FP_ERR_MODEL, "LoRA training needs an F32 model; %s has %s weights (%s)", path,
                         ggml_type_name(t), gguf_get_tensor_name(g, i));
            goto done;
        }
    }
    const char *kinds[] = { "attn_output", "ffn_gate", "ffn_up", "ffn_down" };
    char name[64];
    for (int k = 0; k < 5; k++) {
        if (k < 4) snprintf(name, sizeof name, "blk.%d.%s.weight", (int)n_layer - 1, kinds[k]);
        else snprintf(name, sizeof name, "output.weight");
        struct ggml_tensor *w = ggml_get_tensor(meta, name);
        if (!w || ggml_n_dims(w) != 2) continue;   /* e.g. tied output embeddings */
        int32_t j = bi->n_targets++;
        snprintf(bi->target[j], sizeof bi->target[j], "%s", name);
        bi->n_in[j] = w->ne[0];
        bi->n_out[j] = w->ne[1];
    }
    if (bi->n_targets == 0)
        rc = fp_fail(err, FP_ERR_MODEL, "%s has none of the weights an adapter can train (last block, output)", path);
done:
    gguf_free(g);
    if (meta) ggml_free(meta);
    return rc;
}

/* ------------------------------------------------------ adapter files */

/* One matrix of an adapter, in ggml order (ne0 = row length). */
typedef struct lora_matrix {
    char name[80];
    int64_t ne0, ne1;
    float *data;       /* ne0 * ne1, owned */
} lora_matrix;

static void matrices_free(lora_matrix *m, int32_t n) {
    for (int32_t i = 0; i < n; i++) free(m[i].data);
}

/* Writes an adapter GGUF: the keys llama_adapter_lora_init expects and the
 * matrices. */
static fp_status write_adapter(const char *path, const char *arch, float alpha, const lora_matrix *m, int32_t n,
                               fp_error *err) {
    size_t bytes = 0;
    for (int32_t i = 0; i < n; i++) bytes += (size_t)(m[i].ne0 * m[i].ne1) * sizeof(float);
    struct ggml_context *ctx;
    struct gguf_context *g;
    fp_status rc = fpi_gguf_new(bytes, n, &ctx, &g, err);
    if (rc != FP_OK) return rc;
    gguf_set_val_str(g, "general.architecture", arch);
    gguf_set_val_str(g, "general.type", "adapter");
    gguf_set_val_str(g, "general.name", "forkpoint personal adapter");
    gguf_set_val_str(g, "adapter.type", "lora");
    gguf_set_val_f32(g, "adapter.lora.alpha", alpha);
    for (int32_t i = 0; i < n; i++) {
        struct ggml_tensor *t = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, m[i].ne0, m[i].ne1);
        ggml_set_name(t, m[i].name);
        memcpy(t->data, m[i].data, ggml_nbytes(t));
        gguf_add_tensor(g, t);
    }
    rc = fpi_write_gguf_atomic(g, path, err);
    gguf_free(g);
    ggml_free(ctx);
    return rc;
}

#define SCALE_KEY "forkpoint.lora.scale"

float fp_lora_scale_hint(const char *path) {
    struct gguf_init_params gp = { .no_alloc = true, .ctx = NULL };
    struct gguf_context *g = path ? gguf_init_from_file(path, gp) : NULL;
    float s = 1.0f;
    if (g) {
        int64_t k = gguf_find_key(g, SCALE_KEY);
        if (k >= 0 && gguf_get_kv_type(g, k) == GGUF_TYPE_FLOAT32) s = gguf_get_val_f32(g, k);
        gguf_free(g);
    }
    return isfinite(s) && s >= -16.0f && s <= 16.0f ? s : 1.0f;
}

fp_status fp_lora_set_scale_hint(const char *path, float scale, fp_error *err) {
    if (!isfinite(scale) || scale < -16.0f || scale > 16.0f) return fp_fail(err, FP_ERR_ARG, "LoRA scale must be in [-16, 16]");
    struct ggml_context *data = NULL;
    struct gguf_init_params gp = { .no_alloc = false, .ctx = &data };
    struct gguf_context *g = path ? gguf_init_from_file(path, gp) : NULL;
    if (!g) return fp_fail(err, FP_ERR_IO, "cannot read the adapter %s", path ? path : "(null)");
    struct gguf_context *out = gguf_init_empty();
    fp_status rc = FP_OK;
    if (!out) rc = fp_fail(err, FP_ERR_NOMEM, "out of memory");
    else {
        gguf_set_kv(out, g);
        gguf_set_val_f32(out, SCALE_KEY, scale);
        for (int64_t i = 0; i < gguf_get_n_tensors(g); i++)
            gguf_add_tensor(out, ggml_get_tensor(data, gguf_get_tensor_name(g, i)));
        rc = fpi_write_gguf_atomic(out, path, err);
        gguf_free(out);
    }
    gguf_free(g);
    ggml_free(data);
    return rc;
}

/* xorshift64*: a small, seedable generator for A's initial values. */
static double uniform01(uint64_t *s) {
    *s ^= *s >> 12; *s ^= *s << 25; *s ^= *s >> 27;
    return (double)((*s * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

/* A fresh adapter: A uniform in ±1/sqrt(n_in) (as PEFT does), B zero. */
static fp_status fresh_matrices(const base_info *bi, int32_t rank, uint32_t seed, lora_matrix *m, fp_error *err) {
    uint64_t s = 0x9E3779B97F4A7C15ULL ^ ((uint64_t)seed << 1 | 1);
    for (int32_t j = 0; j < bi->n_targets; j++) {
        lora_matrix *a = &m[2 * j], *b = &m[2 * j + 1];
        snprintf(a->name, sizeof a->name, "%s.lora_a", bi->target[j]);
        snprintf(b->name, sizeof b->name, "%s.lora_b", bi->target[j]);
        a->ne0 = bi->n_in[j]; a->ne1 = rank;
        b->ne0 = rank;        b->ne1 = bi->n_out[j];
        a->data = malloc(sizeof(float) * (size_t)(a->ne0 * a->ne1));
        b->data = calloc((size_t)(b->ne0 * b->ne1), sizeof(float));
        if (!a->data || !b->data) { matrices_free(m, 2 * j + 2); return fp_fail(err, FP_ERR_NOMEM, "out of memory"); }
        double bound = 1.0 / sqrt((double)a->ne0);
        for (int64_t k = 0; k < a->ne0 * a->ne1; k++) a->data[k] = (float)((2.0 * uniform01(&s) - 1.0) * bound);
    }
    return FP_OK;
}

/* ---------------------------------------------- finding the adapter tensors */

/* cb_eval state for the probe decode: the adapter tensors the graph reads. */
typedef struct probe {
    bool active;
    const base_info *bi;
    int32_t n;
    struct ggml_tensor *found[2 * FP_LORA_MAX_TARGETS];
} probe;

/* True if name is "<target>.lora_a" or "<target>.lora_b" for one of ours. */
static bool is_target_matrix(const base_info *bi, const char *name) {
    for (int32_t j = 0; j < bi->n_targets; j++) {
        size_t l = strlen(bi->target[j]);
        if (strncmp(name, bi->target[j], l) == 0 && (!strcmp(name + l, ".lora_a") || !strcmp(name + l, ".lora_b")))
            return true;
    }
    return false;
}

static bool probe_cb(struct ggml_tensor *t, bool ask, void *ud) {
    probe *p = ud;
    if (!p->active || !ask) return false;
    for (int k = 0; k < GGML_MAX_SRC; k++) {
        struct ggml_tensor *s = t->src[k];
        if (!s || s->op != GGML_OP_NONE || !is_target_matrix(p->bi, s->name)) continue;
        bool seen = false;
        for (int32_t i = 0; i < p->n; i++) seen |= p->found[i] == s;
        if (!seen && p->n < 2 * FP_LORA_MAX_TARGETS) p->found[p->n++] = s;
    }
    return false;   /* never needs the data: computation runs unsplit */
}

/* The base stays frozen: no base tensor is a parameter. */
static bool freeze_base(const struct ggml_tensor *t, void *ud) { (void)t; (void)ud; return false; }

static struct ggml_opt_optimizer_params optimizer_params(void *ud) {
    struct ggml_opt_optimizer_params op = ggml_opt_get_default_optimizer_params(NULL);
    op.adamw.alpha = *(const float *)ud;
    op.adamw.wd = 0.0f;
    return op;
}

/* --------------------------------------------------------- the dataset */

/* Packing the examples into one token stream.
 *
 * llama.cpp's loss is the mean cross-entropy over every position of a
 * window; there is no mask. What the adapter learns is therefore decided by
 * what goes into the stream:
 *
 *   - with a context tail t > 0, each choice adds the sentence it stands in:
 *     from the sentence start (at most t context tokens back) through the
 *     choice to the sentence end (at most t tokens on, taken from a later
 *     example of the same text, where the person's text went on). The loss
 *     sits on the person's choices and their immediate surroundings, and the
 *     stream stays a run of whole sentences, so the adapter keeps writing
 *     fluent text (snippets cut mid-sentence taught it to write fragments);
 *   - with t = 0 each text goes in whole, once: an example whose tokens are a
 *     prefix of the next one's adds nothing (a session's forks grow one text).
 *     This mostly teaches the text between forks, which the model wrote. */

/* Token k of example e's context + chosen. */
static int32_t ex_token(const fp_lora_example *e, int32_t k) {
    return k < e->n_context ? e->context[k] : e->chosen[k - e->n_context];
}

static bool is_prefix_of(const fp_lora_example *a, const int32_t *toks, int32_t n) {
    int32_t na = a->n_context + a->n_chosen;
    if (na > n) return false;
    for (int32_t k = 0; k < na; k++) if (ex_token(a, k) != toks[k]) return false;
    return true;
}

/* The text that followed example i's choice: found in a later example (of
 * the same text) whose context begins with i's context + choice. */
static const int32_t *continuation_of(const fp_lora_example *ex, int32_t n, int32_t i, int32_t *len) {
    int32_t na = ex[i].n_context + ex[i].n_chosen;
    for (int32_t j = i + 1; j < n && j <= i + 64; j++) {
        if (ex[j].n_context > na && is_prefix_of(&ex[i], ex[j].context, ex[j].n_context)) {
            *len = ex[j].n_context - na;
            return ex[j].context + na;
        }
    }
    *len = 0;
    return NULL;
}

static int32_t *pack_stream(const fp_model *m, const fp_lora_example *ex, int32_t n, int32_t tail, int64_t *len_out,
                            fp_error *err) {
    const int32_t bos = llama_vocab_bos(m->vocab);
    int64_t cap = 0;
    for (int32_t i = 0; i < n; i++) cap += ex[i].n_context + ex[i].n_chosen + 1 + (tail > 0 ? tail : 0);
    int32_t *s = malloc(sizeof(int32_t) * (size_t)(cap > 0 ? cap : 1));
    if (!s) { fp_fail(err, FP_ERR_NOMEM, "out of memory"); return NULL; }
    int64_t len = 0;
    for (int32_t i = 0; i < n; i++) {
        const fp_lora_example *e = &ex[i];
        if (tail == 0) {
            if (i + 1 < n) {
                int32_t nn = ex[i + 1].n_context + ex[i + 1].n_chosen;
                bool contained = e->n_context + e->n_chosen <= nn;
                for (int32_t k = 0; contained && k < e->n_context + e->n_chosen; k++)
                    contained = ex_token(e, k) == ex_token(&ex[i + 1], k);
                if (contained) continue;
            }
            if (bos >= 0 && !(e->n_context > 0 && e->context[0] == bos)) s[len++] = bos;
            for (int32_t k = 0; k < e->n_context + e->n_chosen; k++) s[len++] = ex_token(e, k);
            continue;
        }
        /* back to the sentence start (or a control token), at most `tail` tokens */
        int32_t from = e->n_context;
        while (from > 0 && e->n_context - from < tail) {
            uint8_t f = m->tok_flags[e->context[from - 1]];
            if (f & (FP_TOK_SENT_END | FP_TOK_CONTROL)) break;
            from--;
        }
        for (int32_t k = from; k < e->n_context; k++) s[len++] = e->context[k];
        bool ended = false;
        for (int32_t k = 0; k < e->n_chosen; k++) {
            s[len++] = e->chosen[k];
            ended = (m->tok_flags[e->chosen[k]] & FP_TOK_SENT_END) != 0;
        }
        /* on to the sentence end, at most `tail` tokens */
        int32_t nc = 0;
        const int32_t *cont = ended ? NULL : continuation_of(ex, n, i, &nc);
        for (int32_t k = 0; k < nc && k < tail; k++) {
            uint8_t f = m->tok_flags[cont[k]];
            if (f & FP_TOK_CONTROL) break;
            s[len++] = cont[k];
            if (f & FP_TOK_SENT_END) break;
        }
    }
    *len_out = len;
    return s;
}

/* ------------------------------------------------------------ training */

static fp_status check_params(const fp_lora_params *p, fp_error *err) {
    if (p->rank < 1 || p->rank > 256) return fp_fail(err, FP_ERR_ARG, "LoRA rank must be 1..256 (got %d)", p->rank);
    if (!isfinite(p->alpha) || p->alpha <= 0) return fp_fail(err, FP_ERR_ARG, "LoRA alpha must be positive");
    if (p->epochs < 1 || p->epochs > 1000) return fp_fail(err, FP_ERR_ARG, "epochs must be 1..1000 (got %d)", p->epochs);
    if (!isfinite(p->learning_rate) || p->learning_rate <= 0 || p->learning_rate > 1e-3f)
        return fp_fail(err, FP_ERR_ARG, "learning rate must be in (0, 0.001] (higher rates diverge in this llama.cpp build)");
    if (p->stride < 1) return fp_fail(err, FP_ERR_ARG, "stride must be positive");
    if (!(p->validation >= 0.0f && p->validation <= 0.5f)) return fp_fail(err, FP_ERR_ARG, "validation share must be in [0, 0.5]");
    if (p->context_tail < 0) return fp_fail(err, FP_ERR_ARG, "context tail must be 0 (whole texts) or positive");
    if (p->n_threads < 1 || p->n_threads > 512) return fp_fail(err, FP_ERR_ARG, "threads must be 1..512");
    return FP_OK;
}

static bool all_finite(const float *v, int64_t n) {
    for (int64_t i = 0; i < n; i++) if (!isfinite(v[i])) return false;
    return true;
}

/* Everything one training run holds, freed in one place. */
typedef struct trainer {
    struct llama_model *lm;
    struct llama_adapter_lora *adapter;
    struct llama_context *ctx;
    ggml_opt_dataset_t data;
    ggml_opt_result_t result, result_eval;
    int32_t *stream;
    int64_t *starts;
    char *init_path;     /* the fresh adapter's temporary file, removed at the end */
} trainer;

static void trainer_free(trainer *t) {
    if (t->result) ggml_opt_result_free(t->result);
    if (t->result_eval) ggml_opt_result_free(t->result_eval);
    if (t->data) ggml_opt_dataset_free(t->data);
    if (t->ctx) llama_free(t->ctx);
    if (t->adapter) llama_adapter_lora_free(t->adapter);
    if (t->lm) llama_model_free(t->lm);
    if (t->init_path) { unlink(t->init_path); free(t->init_path); }
    free(t->stream);
    free(t->starts);
}

fp_status fp_lora_train(const fp_model *model, const fp_lora_example *ex, int32_t n, const fp_lora_params *params,
                        const char *out_path, fp_lora_report *rep, fp_error *err) {
    fp_lora_params p = params ? *params : fp_lora_default_params();
    fp_lora_report r = {0};
    if (rep) *rep = r;
    if (!model || model->vocab_only) return fp_fail(err, FP_ERR_MODEL, "LoRA training needs a model with weights");
    if (!out_path || !*out_path) return fp_fail(err, FP_ERR_ARG, "no output path for the adapter");
    if (!ex || n < 1) return fp_fail(err, FP_ERR_EMPTY, "no chosen continuations to train on");
    fp_status rc = check_params(&p, err);
    if (rc != FP_OK) return rc;
    for (int32_t i = 0; i < n; i++) {
        if (ex[i].n_context < 0 || ex[i].n_chosen < 1 || (ex[i].n_context > 0 && !ex[i].context) || !ex[i].chosen)
            return fp_fail(err, FP_ERR_ARG, "example %d is empty", i);
        for (int32_t k = 0; k < ex[i].n_context + ex[i].n_chosen; k++) {
            int32_t tok = ex_token(&ex[i], k);
            if (tok < 0 || tok >= model->n_vocab)
                return fp_fail(err, FP_ERR_ARG, "example %d has token %d outside the vocabulary", i, tok);
        }
    }

    base_info bi;
    rc = read_base(model->path, llama_model_n_layer(model->lm), &bi, err);
    if (rc != FP_OK) return rc;

    trainer t = {0};
    lora_matrix m[2 * FP_LORA_MAX_TARGETS];
    memset(m, 0, sizeof m);
    int32_t n_m = 0;

    /* 1. the starting adapter: a resumed one, or a fresh one in a temporary file */
    const char *start = p.resume;
    if (!start) {
        rc = fresh_matrices(&bi, p.rank, p.seed, m, err);
        if (rc != FP_OK) return rc;
        n_m = 2 * bi.n_targets;
        size_t pl = strlen(out_path) + 16;
        t.init_path = malloc(pl);
        if (!t.init_path) { rc = fp_fail(err, FP_ERR_NOMEM, "out of memory"); goto out; }
        snprintf(t.init_path, pl, "%s.init%ld", out_path, (long)getpid());
        rc = write_adapter(t.init_path, bi.arch, p.alpha, m, n_m, err);
        matrices_free(m, n_m);
        memset(m, 0, sizeof m);
        n_m = 0;
        if (rc != FP_OK) goto out;
        start = t.init_path;
    } else if (access(start, R_OK) != 0) {
        rc = fp_fail(err, FP_ERR_IO, "no adapter at %s", start);
        goto out;
    }

    /* 2. the base again, for training only, and the adapter on it */
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    mp.load_mode = LLAMA_LOAD_MODE_NONE;
    t.lm = llama_model_load_from_file(model->path, mp);
    if (!t.lm) { rc = fp_fail(err, FP_ERR_MODEL, "llama.cpp cannot load %s for training", model->path); goto out; }
    t.adapter = llama_adapter_lora_init(t.lm, start);
    if (!t.adapter) { rc = fp_fail(err, FP_ERR_MODEL, "%s is not a LoRA adapter for %s", start, model->path); goto out; }

    struct llama_context_params cp = llama_context_default_params();
    probe pr = { .active = true, .bi = &bi };
    cp.n_ctx = 256;               /* llama.cpp pads to 256 anyway */
    cp.n_batch = cp.n_ubatch = cp.n_ctx;
    cp.n_seq_max = 1;
    cp.n_threads = cp.n_threads_batch = p.n_threads;
    cp.type_k = cp.type_v = GGML_TYPE_F32;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cp.cb_eval = probe_cb;
    cp.cb_eval_user_data = &pr;
    cp.no_perf = true;
    t.ctx = llama_init_from_model(t.lm, cp);
    if (!t.ctx) { rc = fp_fail(err, FP_ERR_MODEL, "cannot create a training context"); goto out; }
    const int32_t window = (int32_t)llama_n_ctx(t.ctx);
    if ((uint32_t)window != llama_n_batch(t.ctx) || (uint32_t)window != llama_n_ubatch(t.ctx)) {
        rc = fp_fail(err, FP_ERR_MODEL, "training needs one micro-batch per window (n_ctx %d)", window);
        goto out;
    }
    float one = 1.0f;
    if (llama_set_adapters_lora(t.ctx, &t.adapter, 1, &one) != 0) {
        rc = fp_fail(err, FP_ERR_MODEL, "llama.cpp refused the adapter %s", start);
        goto out;
    }

    /* 3. one probe decode finds the adapter tensors the graph reads */
    {
        int32_t bos = llama_vocab_bos(model->vocab);
        llama_token tok = bos >= 0 ? bos : 0;
        struct llama_batch b = llama_batch_get_one(&tok, 1);
        if (llama_decode(t.ctx, b) != 0) { rc = fp_fail(err, FP_ERR_DECODE, "probe decode failed"); goto out; }
        pr.active = false;
        llama_memory_clear(llama_get_memory(t.ctx), true);
    }
    if (pr.n == 0) {
        rc = fp_fail(err, FP_ERR_MODEL, "%s adapts none of the weights this build can train (last block, output)", start);
        goto out;
    }
    for (int32_t i = 0; i < pr.n; i++) {
        if (pr.found[i]->type != GGML_TYPE_F32) {
            rc = fp_fail(err, FP_ERR_MODEL, "adapter tensor %s is %s; training needs F32", pr.found[i]->name,
                         ggml_type_name(pr.found[i]->type));
            goto out;
        }
        ggml_set_param(pr.found[i]);
    }
    r.n_tensors = pr.n;

    /* the dataset: the packed stream cut into windows of n_ctx + 1 tokens
     * (inputs 0..n-1, labels 1..n); a stream shorter than a window is
     * repeated until it fills one */
    int64_t len = 0;
    t.stream = pack_stream(model, ex, n, p.context_tail, &len, err);
    if (!t.stream) { rc = err ? err->code : FP_ERR_NOMEM; goto out; }
    r.n_tokens = len;
    if (len < window + 1) {
        int32_t *s = realloc(t.stream, sizeof(int32_t) * (size_t)(window + 1));
        if (!s) { rc = fp_fail(err, FP_ERR_NOMEM, "out of memory"); goto out; }
        t.stream = s;
        for (int64_t k = len; k < window + 1; k++) t.stream[k] = t.stream[k % len];
        len = window + 1;
    }
    /* windows `stride` apart, the last one moved back to end at the stream's end */
    const int64_t span = len - (window + 1);
    const int64_t ndata = span / p.stride + 1 + (span % p.stride != 0);
    t.starts = malloc(sizeof(int64_t) * (size_t)ndata);
    t.data = ggml_opt_dataset_init(GGML_TYPE_I32, GGML_TYPE_I32, window, window, ndata, 1);
    t.result = ggml_opt_result_init();
    if (!t.starts || !t.data || !t.result) { rc = fp_fail(err, FP_ERR_NOMEM, "out of memory"); goto out; }
    for (int64_t i = 0; i < ndata; i++) t.starts[i] = i * p.stride < span ? i * p.stride : span;

    /* 4. the optimizer over the adapter only */
    float lr = p.learning_rate;
    struct llama_opt_params op = {
        .n_ctx_train = 0, .param_filter = freeze_base, .param_filter_ud = NULL,
        .get_opt_pars = optimizer_params, .get_opt_pars_ud = &lr,
        .optimizer_type = GGML_OPT_OPTIMIZER_TYPE_ADAMW,
    };
    llama_opt_init(t.ctx, t.lm, op);

    /* 5. epochs, each over the training windows in a new order. The newest
     * `validation` share of the windows is never trained on: its loss after
     * each epoch picks the epoch whose weights are kept (early stopping), so
     * the adapter stops before it learns the training text by heart and
     * forgets how to write. */
    int64_t n_val = 0;
    if (p.validation > 0 && ndata >= 2) {
        n_val = (int64_t)((double)ndata * p.validation + 0.5);
        if (n_val < 1) n_val = 1;
        if (n_val > ndata - 1) n_val = ndata - 1;
    }
    const int64_t n_tr = ndata - n_val;
    r.n_windows = (int32_t)n_tr;
    r.n_val_windows = (int32_t)n_val;
    for (int32_t i = 0; i < pr.n; i++) {   /* the kept (best) weights */
        struct ggml_tensor *x = pr.found[i];
        lora_matrix *mm = &m[n_m++];
        snprintf(mm->name, sizeof mm->name, "%s", x->name);
        mm->ne0 = x->ne[0];
        mm->ne1 = x->ne[1];
        mm->data = malloc(ggml_nbytes(x));
        if (!mm->data) { rc = fp_fail(err, FP_ERR_NOMEM, "out of memory"); goto out; }
    }
    t.result_eval = ggml_opt_result_init();
    if (!t.result_eval) { rc = fp_fail(err, FP_ERR_NOMEM, "out of memory"); goto out; }
    uint64_t rs = 0xD1B54A32D192ED03ULL ^ p.seed;
    int32_t *dd = (int32_t *)ggml_opt_dataset_data(t.data)->data;
    int32_t *dl = (int32_t *)ggml_opt_dataset_labels(t.data)->data;
    double best_val = INFINITY;
    int32_t since_best = 0;
    for (int32_t ep = 0; ep < p.epochs; ep++) {
        for (int64_t i = n_tr - 1; i > 0; i--) {
            int64_t j = (int64_t)(uniform01(&rs) * (double)(i + 1));
            int64_t tmp = t.starts[i]; t.starts[i] = t.starts[j]; t.starts[j] = tmp;
        }
        for (int64_t i = 0; i < ndata; i++) {
            memcpy(dd + i * window, t.stream + t.starts[i], sizeof(int32_t) * (size_t)window);
            memcpy(dl + i * window, t.stream + t.starts[i] + 1, sizeof(int32_t) * (size_t)window);
        }
        ggml_opt_result_reset(t.result);
        ggml_opt_result_reset(t.result_eval);
        llama_opt_epoch(t.ctx, t.data, t.result, n_val ? t.result_eval : NULL, n_tr, NULL, NULL);
        double loss = NAN, val = NAN, unc = 0;
        ggml_opt_result_loss(t.result, &loss, &unc);
        if (n_val) ggml_opt_result_loss(t.result_eval, &val, &unc);
        if (ep == 0) { r.loss_first = loss; r.val_first = val; }
        r.loss_last = loss;
        r.epochs = ep + 1;
        if (!isfinite(loss) || (n_val && !isfinite(val))) {
            rc = fp_fail(err, FP_ERR_DIVERGED, "training diverged at epoch %d (loss %g); the adapter was discarded", ep + 1, loss);
            goto out;
        }
        if (!n_val || val < best_val) {
            best_val = val;
            r.best_epoch = ep + 1;
            r.val_best = val;
            since_best = 0;
            for (int32_t i = 0; i < pr.n; i++) ggml_backend_tensor_get(pr.found[i], m[i].data, 0, ggml_nbytes(pr.found[i]));
        } else if (++since_best >= 2) {
            break;   /* two epochs without improvement on the validation windows */
        }
    }

    /* 6. the kept matrices, checked, written */
    for (int32_t i = 0; i < n_m; i++) {
        if (!all_finite(m[i].data, m[i].ne0 * m[i].ne1)) {
            rc = fp_fail(err, FP_ERR_DIVERGED, "training diverged: %s has non-finite weights; the adapter was discarded", m[i].name);
            goto out;
        }
    }
    char alpha_s[32] = "";
    float alpha = p.alpha;
    if (llama_adapter_meta_val_str(t.adapter, "adapter.lora.alpha", alpha_s, sizeof alpha_s) > 0) alpha = strtof(alpha_s, NULL);
    rc = write_adapter(out_path, bi.arch, alpha, m, n_m, err);
out:
    matrices_free(m, n_m);
    trainer_free(&t);
    if (rep) *rep = r;
    return rc;
}

