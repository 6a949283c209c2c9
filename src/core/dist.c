/*
 * dist.c — the next-token distribution and how uncertain it is.
 *
 * The logits pass through llama.cpp's own sampler chain (repetition penalty,
 * top-k, top-p, min-p, temperature), so the probabilities a person sees are
 * the ones the sampler would draw from. Then:
 *
 *   p_i     = exp(z_i - max z) / sum_j exp(z_j - max z)     over surviving tokens
 *   H       = -sum_i p_i log2 p_i                             (bits)
 *   top1    = max p_i,   margin = top1 - top2
 *
 * Only the top few entries are sorted (a heap selection, O(V log M)); the
 * fork test needs top1 and top2, the cloud needs the head of the list.
 */
#include "core/internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

fp_status fpi_dist_init(fp_dist *d, int32_t n_vocab) {
    memset(d, 0, sizeof *d);
    d->items = malloc(sizeof *d->items * (size_t)n_vocab);
    d->scratch = malloc(sizeof *d->scratch * (size_t)n_vocab);
    d->cap = n_vocab;
    return d->items && d->scratch ? FP_OK : FP_ERR_NOMEM;
}

void fpi_dist_free(fp_dist *d) {
    free(d->items);
    free(d->scratch);
    memset(d, 0, sizeof *d);
}

/* A sampler that adds a person's learned logit bias (borrowed from their
 * preferences, which outlive the chain: the session detaches them first). */
static const char *bias_name(const struct llama_sampler *smpl) { (void)smpl; return "forkpoint-bias"; }
static void bias_apply(struct llama_sampler *smpl, llama_token_data_array *cur) {
    const float *bias = smpl->ctx;
    for (size_t i = 0; i < cur->size; i++) cur->data[i].logit += bias[cur->data[i].id];
}
static struct llama_sampler *bias_clone(const struct llama_sampler *smpl);
static struct llama_sampler_i g_bias_iface = {
    .name = bias_name, .apply = bias_apply, .clone = bias_clone,
};
static struct llama_sampler *bias_clone(const struct llama_sampler *smpl) {
    return llama_sampler_init(&g_bias_iface, smpl->ctx);
}

struct llama_sampler *fpi_chain_new(const fp_settings *st, const fp_model *m, const float *bias, const char *grammar) {
    int32_t n_vocab = m->n_vocab;
    struct llama_sampler_chain_params cp = llama_sampler_chain_default_params();
    cp.no_perf = true;
    struct llama_sampler *c = llama_sampler_chain_init(cp);
    if (!c) return NULL;
    if (grammar) {
        /* first in the chain (fpi_chain_resync finds it there): what it forbids has no probability */
        struct llama_sampler *g = llama_sampler_init_grammar(m->vocab, grammar, "root");
        if (!g) { llama_sampler_free(c); return NULL; }
        llama_sampler_chain_add(c, g);
    }
    if (bias) llama_sampler_chain_add(c, llama_sampler_init(&g_bias_iface, (void *)bias));
    if (st->repeat_penalty != 1.0f && st->repeat_last_n != 0)
        llama_sampler_chain_add(c, llama_sampler_init_penalties(n_vocab, st->repeat_last_n, st->repeat_penalty, 0.0f, 0.0f));
    if (st->top_k > 0) llama_sampler_chain_add(c, llama_sampler_init_top_k(st->top_k));
    if (st->top_p < 1.0f) llama_sampler_chain_add(c, llama_sampler_init_top_p(st->top_p, 1));
    if (st->min_p > 0.0f) llama_sampler_chain_add(c, llama_sampler_init_min_p(st->min_p, 1));
    llama_sampler_chain_add(c, llama_sampler_init_temp(st->temperature));
    return c;
}

/* Min-heap on p, for keeping the M largest entries. */
static void heap_down(fp_tokp *h, int32_t n, int32_t i) {
    for (;;) {
        int32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && h[l].p < h[m].p) m = l;
        if (r < n && h[r].p < h[m].p) m = r;
        if (m == i) return;
        fp_tokp t = h[i]; h[i] = h[m]; h[m] = t;
        i = m;
    }
}

static int cmp_desc(const void *a, const void *b) {
    float x = ((const fp_tokp *)a)->p, y = ((const fp_tokp *)b)->p;
    if (x != y) return x < y ? 1 : -1;
    return ((const fp_tokp *)a)->token - ((const fp_tokp *)b)->token; /* stable ties */
}

/* Moves the M most probable entries to the front, in descending order. */
static void sort_head(fp_tokp *v, int32_t n, int32_t m) {
    if (m > n) m = n;
    if (m <= 0) return;
    if (m * 8 >= n) { qsort(v, (size_t)n, sizeof *v, cmp_desc); return; }
    for (int32_t i = m / 2 - 1; i >= 0; i--) heap_down(v, m, i);
    for (int32_t i = m; i < n; i++) {
        if (v[i].p > v[0].p || (v[i].p == v[0].p && v[i].token < v[0].token)) {
            fp_tokp t = v[0]; v[0] = v[i]; v[i] = t;
            heap_down(v, m, 0);
        }
    }
    qsort(v, (size_t)m, sizeof *v, cmp_desc);
}

void fpi_dist_compute(fp_dist *d, const float *logits, int32_t n_vocab,
                     struct llama_sampler *chain, int32_t sort_top) {
    for (int32_t i = 0; i < n_vocab; i++) {
        d->scratch[i].id = i;
        d->scratch[i].logit = logits[i];
        d->scratch[i].p = 0.0f;
    }
    llama_token_data_array cur = { .data = d->scratch, .size = (size_t)n_vocab, .selected = -1, .sorted = false };
    llama_sampler_apply(chain, &cur);
    float mx = -INFINITY;
    for (size_t i = 0; i < cur.size; i++) if (cur.data[i].logit > mx) mx = cur.data[i].logit;
    double sum = 0.0;
    int32_t n = 0;
    for (size_t i = 0; i < cur.size; i++) {
        float z = cur.data[i].logit;
        if (!isfinite(z)) continue; /* masked out by a sampler */
        float e = expf(z - mx);
        d->items[n].token = cur.data[i].id;
        d->items[n].p = e;
        sum += e;
        n++;
    }
    for (int32_t i = 0; i < n; i++) d->items[i].p = (float)(d->items[i].p / sum);
    d->n = n;
    sort_head(d->items, n, sort_top < 2 ? 2 : sort_top);
}

fp_uncertainty fpi_dist_uncertainty(const fp_dist *d) {
    fp_uncertainty u = {0};
    double h = 0.0;
    for (int32_t i = 0; i < d->n; i++) {
        double p = d->items[i].p;
        if (p > 0) h -= p * log2(p);
    }
    u.entropy_bits = (float)h;
    u.top1 = d->n > 0 ? d->items[0].p : 0.0f;
    u.margin = u.top1 - (d->n > 1 ? d->items[1].p : 0.0f);
    return u;
}

void fpi_softmax(const float *logits, int32_t n, float temperature, float *probs) {
    float t = temperature > 0 ? temperature : 1.0f;
    float mx = -INFINITY;
    for (int32_t i = 0; i < n; i++) if (logits[i] > mx) mx = logits[i];
    double sum = 0.0;
    for (int32_t i = 0; i < n; i++) { probs[i] = expf((logits[i] - mx) / t); sum += probs[i]; }
    float inv = (float)(1.0 / sum);
    for (int32_t i = 0; i < n; i++) probs[i] *= inv;
}

int32_t fpi_argmax(const float *v, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++) if (v[i] > v[best]) best = i;
    return best;
}

/* xorshift64*: the seeded generator for sampled continuation and previews. */
double fpi_rng_next(uint64_t *state) {
    uint64_t x = *state;
    x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
    *state = x;
    return (double)((x * 2685821657736338717ULL) >> 11) * (1.0 / 9007199254740992.0);
}

/* The most probable entry whose token has none of the `deny` flags and all
 * of the `need` flags; ties go to the lower token id. O(n): entries past the
 * sorted head are in no order. Returns -1 when none qualifies. */
static int32_t best_token(const fp_model *m, const fp_dist *d, uint16_t need, uint16_t deny,
                          const char *tail, int32_t tail_n) {
    int32_t best = -1;
    float bp = -1.0f;
    for (int32_t i = 0; i < d->n; i++) {
        int32_t t = d->items[i].token;
        uint16_t f = m->tok_flags[t];
        if ((f & deny) || (f & need) != need || !fpi_tok_fits(m, t, tail, tail_n)) continue;
        float p = d->items[i].p;
        if (p > bp || (p == bp && t < best)) { best = t; bp = p; }
    }
    return best;
}

/* Can the loop take token t? Not a control token, and the text stays UTF-8. */
static bool takeable(const fp_model *m, int32_t t, const char *tail, int32_t tail_n) {
    return !(m->tok_flags[t] & FP_TOK_CONTROL) && fpi_tok_fits(m, t, tail, tail_n);
}

int32_t fpi_pick_next(const fp_model *m, const fp_dist *d, bool word_start, uint64_t *rng,
                      const char *tail, int32_t tail_n) {
    int32_t tok = best_token(m, d, 0, FP_TOK_CONTROL, tail, tail_n);
    if (rng && tok >= 0) {
        /* one draw, always (so a copy of the state replays it): over the
         * tokens that are not control tokens, in the list's order */
        double mass = 0.0;
        for (int32_t i = 0; i < d->n; i++)
            if (takeable(m, d->items[i].token, tail, tail_n)) mass += d->items[i].p;
        double r = fpi_rng_next(rng) * mass, acc = 0.0;
        for (int32_t i = 0; i < d->n; i++) {
            if (!takeable(m, d->items[i].token, tail, tail_n)) continue;
            acc += d->items[i].p;
            if (r < acc) { tok = d->items[i].token; break; }
        }
    }
    if (word_start && tok >= 0 && !(m->tok_flags[tok] & FP_TOK_WORD_START)) {
        /* the word is complete: the model meant to go on, only not inside it */
        int32_t t = best_token(m, d, FP_TOK_WORD_START, FP_TOK_CONTROL | FP_TOK_EOG, tail, tail_n);
        if (t >= 0) tok = t;
    }
    return tok;
}
