/*
 * complete.c — plain left-to-right generation with per-token
 * log-probabilities (fp_gen, forkpoint.h), for front ends that speak the
 * ecosystem's completion protocols (OpenAI's, llama.cpp's server's).
 *
 * Why here and not in the server: the probabilities a client is told must
 * be the core's own, from the same sampler chain (fpi_chain_new), the same
 * distribution (fpi_dist_compute) and the same pick rule (fpi_pick_next)
 * that sessions use; a front end that re-derived them would drift.
 *
 * Two chains: `post` is the sampler chain of the request (logit bias,
 * penalties, top-k, top-p, min-p, temperature); `model` is the logit bias
 * alone at temperature 1, the model's distribution as OpenAI reports it.
 * The token is always drawn from `post`. Only the reported one is computed
 * for the top list, except that the chosen token's log-probability under
 * `model` needs that pass too.
 *
 * The sequence is borrowed from the engine like a scorer's (judge.c): it is
 * not attached as a user, so the engine never takes it back, and it is
 * returned in fp_gen_free. Invariant: the KV of seq holds toks[0..n_dec),
 * and n_dec is n_tok or n_tok - 1 (the last taken token is decoded lazily,
 * at the next call, so a request's final token costs no decode).
 */
#include "core/internal.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct fp_gen {
    fp_engine *e;
    const fp_model *m;
    fp_gen_params p;
    int32_t seq;
    int32_t *toks; int32_t n_tok, n_dec, cap, n_prompt;
    float *logits;                  /* n_vocab: logits after toks[0..n_dec) */
    float *bias;                    /* n_vocab copy, or NULL */
    struct llama_sampler *post, *model;
    fp_dist dpost, dmodel;
    uint64_t rng;
    fp_logprob *top;                /* n_top + 1 */
    char tail[4]; int32_t tail_n;   /* unfinished UTF-8 end of the generated text */
    bool ended;
    /* prompt scores (prompt_logprobs): per prompt token i >= 1, its
     * log-probability and the n_top best at its position */
    float *p_lp;
    fp_logprob *p_top;
    int32_t *p_ntop;
    fpi_seq_user user;              /* marks the borrowed sequence as taken (never attached); carries the bias */
};

fp_gen_params fp_gen_default_params(void) {
    fp_gen_params p = { .temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f,
                        .repeat_penalty = 1.0f, .repeat_last_n = 64, .seed = 0 };
    return p;
}

static fp_status check_params(const fp_gen_params *p, fp_error *err) {
    if (!(p->temperature >= 0.0f && p->temperature <= 100.0f)) return fpi_fail(err, FP_ERR_ARG, "temperature must be in [0, 100]");
    if (p->top_k < 0) return fpi_fail(err, FP_ERR_ARG, "top_k must be >= 0");
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f)) return fpi_fail(err, FP_ERR_ARG, "top_p must be in (0, 1]");
    if (!(p->min_p >= 0.0f && p->min_p < 1.0f)) return fpi_fail(err, FP_ERR_ARG, "min_p must be in [0, 1)");
    if (!(p->repeat_penalty > 0.0f && p->repeat_penalty <= 10.0f)) return fpi_fail(err, FP_ERR_ARG, "repeat_penalty must be in (0, 10]");
    if (p->repeat_last_n < 0 || p->repeat_last_n > 4096) return fpi_fail(err, FP_ERR_ARG, "repeat_last_n must be 0..4096");
    if (p->n_top < 0 || p->n_top > FP_GEN_MAX_TOP) return fpi_fail(err, FP_ERR_ARG, "n_top must be 0..%d", FP_GEN_MAX_TOP);
    return FP_OK;
}

/* The request's samplers as the core's settings (the chain's one source). */
static fp_settings chain_settings(const fp_gen_params *p, bool post) {
    fp_settings st = fp_default_settings();
    st.temperature = post && p->temperature > 0.0f ? p->temperature : 1.0f;
    st.top_k = post ? p->top_k : 0;
    st.top_p = post ? p->top_p : 1.0f;
    st.min_p = post ? p->min_p : 0.0f;
    st.repeat_penalty = post ? p->repeat_penalty : 1.0f;
    st.repeat_last_n = p->repeat_last_n;
    return st;
}

/* log p of token t in d (-inf when the chain removed it). O(n). */
static float dist_logprob(const fp_dist *d, int32_t t) {
    for (int32_t i = 0; i < d->n; i++)
        if (d->items[i].token == t) return d->items[i].p > 0.0f ? logf(d->items[i].p) : -INFINITY;
    return -INFINITY;
}

/* Copies the n best of d (sorted head) into out; returns how many. */
static int32_t dist_top(const fp_dist *d, int32_t n, fp_logprob *out) {
    int32_t k = n < d->n ? n : d->n;
    for (int32_t i = 0; i < k; i++) {
        out[i].token = d->items[i].token;
        out[i].logprob = d->items[i].p > 0.0f ? logf(d->items[i].p) : -INFINITY;
    }
    return k;
}

void fp_gen_free(fp_gen *g) {
    if (!g) return;
    if (g->seq >= 0) fpi_seq_free(g->e, g->seq);
    if (g->post) llama_sampler_free(g->post);
    if (g->model) llama_sampler_free(g->model);
    fpi_dist_free(&g->dpost);
    fpi_dist_free(&g->dmodel);
    free(g->toks); free(g->logits); free(g->bias); free(g->top);
    free(g->p_lp); free(g->p_top); free(g->p_ntop);
    free(g);
}

/* Decodes the prompt with logits at every position and scores each token
 * under the model distribution. Cost: one full-vocabulary chain pass and a
 * partial sort per prompt token. */
static fp_status score_prompt(fp_gen *g, fp_error *err) {
    fp_engine *e = g->e;
    int32_t n = g->n_tok, nv = g->m->n_vocab, k = g->p.n_top;
    g->p_lp = calloc((size_t)n, sizeof *g->p_lp);
    g->p_ntop = calloc((size_t)n, sizeof *g->p_ntop);
    g->p_top = calloc((size_t)n * (size_t)(k > 0 ? k : 1), sizeof *g->p_top);
    if (!g->p_lp || !g->p_ntop || !g->p_top) return fpi_fail(err, FP_ERR_NOMEM, "out of memory");
    for (int32_t i = 0; i < n; ) {
        fpi_batch_clear(e);
        int32_t j = i;
        while (j < n && fpi_batch_add(e, g->toks[j], j, g->seq, true)) j++;
        fp_status st = fpi_engine_decode(e, err);
        if (st != FP_OK) return st;
        for (int32_t b = i; b < j; b++) {
            const float *lg = fpi_engine_logits(e, b - i);
            if (b + 1 < n) {
                fpi_dist_compute(&g->dmodel, lg, nv, g->model, k);
                g->p_lp[b + 1] = dist_logprob(&g->dmodel, g->toks[b + 1]);
                g->p_ntop[b + 1] = dist_top(&g->dmodel, k, g->p_top + (size_t)(b + 1) * (size_t)k);
            } else {
                memcpy(g->logits, lg, sizeof(float) * (size_t)nv);
            }
        }
        i = j;
    }
    return FP_OK;
}

fp_gen *fp_gen_new(fp_engine *e, const int32_t *prompt, int32_t n, const fp_gen_params *params, fp_error *err) {
    fp_gen_params p = params ? *params : fp_gen_default_params();
    if (!e || !prompt || n < 1) { fpi_fail(err, FP_ERR_ARG, "no engine or an empty prompt"); return NULL; }
    if (check_params(&p, err) != FP_OK) return NULL;
    const fp_model *m = e->model;
    for (int32_t i = 0; i < n; i++)
        if (prompt[i] < 0 || prompt[i] >= m->n_vocab) { fpi_fail(err, FP_ERR_ARG, "prompt token %d is out of range", prompt[i]); return NULL; }
    if (n >= e->n_pos_max) {
        fpi_fail(err, FP_ERR_CONTEXT, "the prompt is %d tokens; the context holds %d", n, e->n_pos_max);
        return NULL;
    }
    fp_gen *g = calloc(1, sizeof *g);
    if (!g) { fpi_fail(err, FP_ERR_NOMEM, "out of memory"); return NULL; }
    g->e = e;
    g->m = m;
    g->p = p;
    g->seq = -1;
    g->cap = e->n_pos_max;
    g->toks = malloc(sizeof *g->toks * (size_t)g->cap);
    g->logits = malloc(sizeof(float) * (size_t)m->n_vocab);
    g->top = malloc(sizeof *g->top * (size_t)(p.n_top + 1));
    if (p.logit_bias) {
        g->bias = malloc(sizeof(float) * (size_t)m->n_vocab);
        if (g->bias) memcpy(g->bias, p.logit_bias, sizeof(float) * (size_t)m->n_vocab);
    }
    g->p.logit_bias = g->bias;
    fp_settings sp = chain_settings(&p, true), sm = chain_settings(&p, false);
    g->post = fpi_chain_new(&sp, m, g->bias, NULL);
    g->model = fpi_chain_new(&sm, m, g->bias, NULL);
    if (!g->toks || !g->logits || !g->top || (p.logit_bias && !g->bias) || !g->post || !g->model ||
        fpi_dist_init(&g->dpost, m->n_vocab) != FP_OK || fpi_dist_init(&g->dmodel, m->n_vocab) != FP_OK) {
        fpi_fail(err, FP_ERR_NOMEM, "out of memory");
        fp_gen_free(g);
        return NULL;
    }
    g->rng = p.seed ? (uint64_t)p.seed * 0x9E3779B97F4A7C15ULL : 0x2545F4914F6CDD1DULL;
    memcpy(g->toks, prompt, sizeof *prompt * (size_t)n);
    g->n_tok = n;
    g->n_prompt = n;
    for (int32_t i = 0; i < n; i++) llama_sampler_accept(g->post, prompt[i]); /* the penalty's history */
    g->user.bias = g->bias;
    g->seq = fpi_seq_alloc(e, &g->user);
    if (g->seq < 0) {
        fpi_fail(err, FP_ERR_CAPACITY, "the engine has no free sequence (n_seq_max %u)", e->n_seq_max);
        fp_gen_free(g);
        return NULL;
    }
    fp_status st;
    if (p.prompt_logprobs) {
        st = score_prompt(g, err);
    } else {
        st = fpi_engine_decode_span(e, g->seq, prompt, n, 0, true, err);
        if (st == FP_OK) memcpy(g->logits, fpi_engine_logits(e, -1), sizeof(float) * (size_t)m->n_vocab);
    }
    if (st != FP_OK) { fp_gen_free(g); return NULL; }
    g->n_dec = n;
    return g;
}

fp_status fp_gen_prompt_token(fp_gen *g, int32_t i, fp_gen_token *out, fp_error *err) {
    if (!g || !out) return fpi_fail(err, FP_ERR_ARG, "no generator");
    if (!g->p_lp) return fpi_fail(err, FP_ERR_STATE, "the prompt was not scored (prompt_logprobs)");
    if (i < 1 || i >= g->n_prompt) return fpi_fail(err, FP_ERR_ARG, "no prompt token %d", i);
    int32_t k = g->p.n_top;
    out->token = g->toks[i];
    out->is_eog = fp_token_is_eog(g->m, out->token);
    out->logprob = g->p_lp[i];
    out->top = g->p_top + (size_t)i * (size_t)k;
    out->n_top = g->p_ntop[i];
    return FP_OK;
}

fp_status fp_gen_next(fp_gen *g, fp_gen_token *out, fp_error *err) {
    if (!g || !out) return fpi_fail(err, FP_ERR_ARG, "no generator");
    if (g->ended) return fpi_fail(err, FP_ERR_STATE, "the generation has ended");
    assert(g->n_dec == g->n_tok || g->n_dec == g->n_tok - 1);   /* the KV holds all but perhaps the last token */
    assert(g->tail_n >= 0 && g->tail_n <= 3);
    if (g->n_dec < g->n_tok) {   /* the token taken last time */
        fpi_batch_clear(g->e);
        fpi_batch_add(g->e, g->toks[g->n_dec], g->n_dec, g->seq, true);
        fp_status st = fpi_engine_decode(g->e, err);
        if (st != FP_OK) return st;
        memcpy(g->logits, fpi_engine_logits(g->e, -1), sizeof(float) * (size_t)g->m->n_vocab);
        g->n_dec = g->n_tok;
    }
    if (g->n_tok >= g->e->n_pos_max) return fpi_fail(err, FP_ERR_CONTEXT, "the context is full (%d tokens)", g->n_tok);
    int32_t k = g->p.n_top, nv = g->m->n_vocab;
    fpi_dist_compute(&g->dpost, g->logits, nv, g->post, g->p.post_sampling ? k : 2);
    int32_t t = fpi_pick_next(g->m, &g->dpost, false, g->p.temperature > 0.0f ? &g->rng : NULL, g->tail, g->tail_n);
    if (t < 0) return fpi_fail(err, FP_ERR_STATE, "the model has no token to continue with");
    const fp_dist *rep = &g->dpost;
    if (!g->p.post_sampling) {
        fpi_dist_compute(&g->dmodel, g->logits, nv, g->model, k);
        rep = &g->dmodel;
    }
    out->token = t;
    out->is_eog = fp_token_is_eog(g->m, t);
    out->logprob = dist_logprob(rep, t);
    out->n_top = dist_top(rep, k, g->top);
    out->top = g->top;
    if (out->is_eog) { g->ended = true; return FP_OK; }
    llama_sampler_accept(g->post, t);
    g->toks[g->n_tok++] = t;
    /* the unfinished end of the text: what fpi_pick_next must continue validly */
    int32_t pl;
    const char *pc = fpi_piece(g->m, t, &pl);
    char buf[4 + FP_MAX_TEXT];
    int32_t n = g->tail_n;
    memcpy(buf, g->tail, (size_t)n);
    int32_t take = pl < FP_MAX_TEXT ? pl : FP_MAX_TEXT;
    memcpy(buf + n, pc, (size_t)take);
    n += take;
    size_t ok = fp_utf8_complete_prefix(buf, (size_t)n);
    g->tail_n = (int32_t)((size_t)n - ok) <= 3 ? (int32_t)((size_t)n - ok) : 0;
    memcpy(g->tail, buf + ok, (size_t)g->tail_n);
    return FP_OK;
}

int32_t fp_gen_n_tokens(const fp_gen *g) { return g ? g->n_tok : 0; }
