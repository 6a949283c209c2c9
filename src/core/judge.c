/*
 * judge.c — how well an adapter or a steering vector serves a person, on
 * their own decisions: the log-probability margin of what they chose over
 * what they rejected, and the log-probability of their text (fluency); and
 * the strength that maximises the margin while keeping the text fluent.
 *
 * Costs: one decode per scored token, in one borrowed sequence; picking a
 * strength scores every pair once per value tried, plus once without.
 */
#include "core/internal.h"

#include <math.h>
#include <stdlib.h>

/* ------------------------------------------------------------ scoring */

fp_status fp_engine_logprob(fp_engine *e, const int32_t *context, int32_t nc, const int32_t *tokens, int32_t n,
                            double *out, fp_error *err) {
    if (nc < 1 || n < 1 || !out) return fpi_fail(err, FP_ERR_ARG, "empty context or tokens");
    for (int32_t i = 0; i < nc; i++) if (context[i] < 0 || context[i] >= e->model->n_vocab) return fpi_fail(err, FP_ERR_ARG, "token out of range");
    for (int32_t i = 0; i < n; i++) if (tokens[i] < 0 || tokens[i] >= e->model->n_vocab) return fpi_fail(err, FP_ERR_ARG, "token out of range");
    if (nc + n > e->n_pos_max) return fpi_fail(err, FP_ERR_CONTEXT, "too long to score");
    static fpi_seq_user scorer; /* marks the borrowed sequence as taken; never attached */
    int32_t q = fpi_seq_alloc(e, &scorer);
    if (q < 0) return fpi_fail(err, FP_ERR_CAPACITY, "no free sequence to score with");
    float *probs = malloc(sizeof(float) * (size_t)e->model->n_vocab);
    fp_status st = probs ? FP_OK : fpi_fail(err, FP_ERR_NOMEM, "out of memory");
    double lp = 0.0;
    /* the context, then the tokens with the logits that predict each of them */
    if (st == FP_OK) st = fpi_engine_decode_span(e, q, context, nc - 1, 0, false, err);
    for (int32_t i = 0; st == FP_OK && i < n; i++) {
        fpi_batch_clear(e);
        fpi_batch_add(e, i == 0 ? context[nc - 1] : tokens[i - 1], nc - 1 + i, q, true);
        st = fpi_engine_decode(e, err);
        if (st != FP_OK) break;
        fpi_softmax(fpi_engine_logits(e, -1), e->model->n_vocab, 1.0f, probs);
        lp += log(probs[tokens[i]] > 1e-30f ? probs[tokens[i]] : 1e-30f);
    }
    free(probs);
    fpi_seq_free(e, q);
    if (st == FP_OK) *out = lp;
    return st;
}

fp_status fp_engine_score_pairs(fp_engine *e, const fp_steer_pair *pairs, int32_t n, fp_pair_score *out, fp_error *err) {
    if (!e || !out || (n > 0 && !pairs)) return fpi_fail(err, FP_ERR_ARG, "no engine, pairs or result");
    if (e->remote) return fpi_fail(err, FP_ERR_ARG, "scoring pairs needs the model's weights: not available on a remote engine (%s)", fp_engine_backend(e));
    double margin = 0, text = 0;
    int32_t n_pairs = 0, n_text = 0;
    for (int32_t i = 0; i < n; i++) {
        const fp_steer_pair *p = &pairs[i];
        if (p->n_context < 1) continue;
        double a, b;
        fp_status st;
        if (p->n_chosen > 0 && p->n_rejected > 0) {
            if ((st = fp_engine_logprob(e, p->context, p->n_context, p->chosen, p->n_chosen, &a, err)) != FP_OK ||
                (st = fp_engine_logprob(e, p->context, p->n_context, p->rejected, p->n_rejected, &b, err)) != FP_OK)
                return st;
            margin += a - b;
            n_pairs++;
        }
        /* the person's own text: the last (up to) 16 tokens before the fork */
        int32_t tail = p->n_context > 17 ? 16 : p->n_context - 1;
        if (tail >= 1) {
            if ((st = fp_engine_logprob(e, p->context, p->n_context - tail, p->context + p->n_context - tail, tail, &a, err)) != FP_OK)
                return st;
            text += a;
            n_text += tail;
        }
    }
    out->margin = n_pairs ? margin / n_pairs : NAN;
    out->text_logp = n_text ? text / n_text : NAN;
    out->n_pairs = n_pairs;
    return FP_OK;
}

/* How an adapter is put on at a strength (0: taken off). */
typedef fp_status (*apply_fn)(fp_engine *e, const void *what, float value, fp_error *err);

static fp_status apply_lora(fp_engine *e, const void *path, float scale, fp_error *err) {
    return fp_engine_set_lora(e, scale != 0.0f ? path : NULL, scale, err);
}

static fp_status apply_steer(fp_engine *e, const void *v, float strength, fp_error *err) {
    return fp_engine_set_steer(e, strength != 0.0f ? v : NULL, strength, err);
}

/* The value with the largest margin on the pairs among those that keep the
 * text within FP_LORA_FLUENCY_SLACK of the base (values[0] when none does);
 * the engine is left with the adapter off. */
static fp_status pick_value(fp_engine *e, apply_fn apply, const void *what, const float *values, int nv,
                            const fp_steer_pair *pairs, int32_t n, float *out, fp_pair_score *at, fp_error *err) {
    fp_pair_score base, sc, best_sc = {0}, first = {0};
    fp_status st = apply(e, what, 0.0f, err);
    if (st == FP_OK) st = fp_engine_score_pairs(e, pairs, n, &base, err);
    if (st != FP_OK) return st;
    if (base.n_pairs == 0) return fpi_fail(err, FP_ERR_EMPTY, "no pairs to pick a strength with");
    int best = -1;
    for (int i = 0; i < nv; i++) {
        if ((st = apply(e, what, values[i], err)) != FP_OK || (st = fp_engine_score_pairs(e, pairs, n, &sc, err)) != FP_OK)
            break;
        if (i == 0) first = sc;
        bool fluent = !(sc.text_logp < base.text_logp - FP_LORA_FLUENCY_SLACK);
        if (fluent && (best < 0 || sc.margin > best_sc.margin)) { best = i; best_sc = sc; }
    }
    fp_status st2 = apply(e, what, 0.0f, st == FP_OK ? err : NULL);
    if (st != FP_OK) return st;
    if (st2 != FP_OK) return st2;
    if (best < 0) { best = 0; best_sc = first; }
    *out = values[best];
    if (at) *at = best_sc;
    return FP_OK;
}

fp_status fp_lora_pick_scale(fp_engine *e, const char *path, const fp_steer_pair *pairs, int32_t n, float *scale,
                             fp_pair_score *at_scale, fp_error *err) {
    static const float scales[] = { 0.5f, 1.0f, 2.0f, 4.0f };
    if (!path) return fpi_fail(err, FP_ERR_ARG, "no adapter");
    return pick_value(e, apply_lora, path, scales, 4, pairs, n, scale, at_scale, err);
}

fp_status fp_steer_pick_strength(fp_engine *e, const fp_steer *v, const fp_steer_pair *pairs, int32_t n,
                                 float *strength, fp_pair_score *at, fp_error *err) {
    static const float strengths[] = { 0.25f, 0.5f, 1.0f, 2.0f, 4.0f };
    if (!v) return fpi_fail(err, FP_ERR_ARG, "no steering vector");
    return pick_value(e, apply_steer, v, strengths, 5, pairs, n, strength, at, err);
}
