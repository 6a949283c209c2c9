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

#include <assert.h>
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

/* The repetition penalty, as llama.cpp's (llama_sampler_init_penalties with
 * no frequency or presence term: a token seen in the last `last_n` accepted
 * tokens has its logit divided by `repeat` when positive, multiplied when
 * not; the same float operations, so the same logits), but applied over the
 * window instead of the vocabulary: on the id-ordered array of every token
 * (what fpi_dist_compute passes) it touches only the window's distinct
 * tokens, O(last_n log last_n) per step against llama.cpp's O(n_vocab) hash
 * look-ups. Any other array is walked in full with a binary search. Its
 * state is the ring of the last last_n tokens (8 bytes a slot with the
 * sorted copy), cloned with every preview's chain. */
typedef struct pen_ctx {
    int32_t n_vocab, last_n;
    float   repeat;
    int32_t *ring;      /* last_n slots; the window is the newest len of them */
    int32_t len, head;  /* head: the slot the next token goes to */
    int32_t *uniq;      /* the window's distinct tokens, ascending (when !dirty) */
    int32_t n_uniq;
    bool    dirty;
} pen_ctx;

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* The window's distinct tokens (ascending, in c->uniq), sorted once per change. */
static int32_t pen_unique(pen_ctx *c) {
    if (!c->dirty) return c->n_uniq;
    memcpy(c->uniq, c->ring, sizeof *c->uniq * (size_t)c->len);
    qsort(c->uniq, (size_t)c->len, sizeof *c->uniq, cmp_i32);
    int32_t n = 0;
    for (int32_t i = 0; i < c->len; i++)
        if (n == 0 || c->uniq[n - 1] != c->uniq[i]) c->uniq[n++] = c->uniq[i];
    c->n_uniq = n;
    c->dirty = false;
    return n;
}

static float pen_apply_one(float z, float repeat) { return z <= 0 ? z * repeat : z / repeat; }

static const char *pen_name(const struct llama_sampler *smpl) { (void)smpl; return "forkpoint-penalties"; }
static void pen_accept(struct llama_sampler *smpl, llama_token token) {
    pen_ctx *c = smpl->ctx;
    c->ring[c->head] = token;
    c->head = (c->head + 1) % c->last_n;
    if (c->len < c->last_n) c->len++;
    c->dirty = true;
}
static void pen_apply(struct llama_sampler *smpl, llama_token_data_array *cur) {
    pen_ctx *c = smpl->ctx;
    int32_t n = pen_unique(c);
    if (n == 0) return;
    bool direct = cur->size == (size_t)c->n_vocab;
    for (int32_t j = 0; j < n && direct; j++)
        direct = c->uniq[j] >= 0 && c->uniq[j] < c->n_vocab && cur->data[c->uniq[j]].id == c->uniq[j];
    if (direct) {
        for (int32_t j = 0; j < n; j++) cur->data[c->uniq[j]].logit = pen_apply_one(cur->data[c->uniq[j]].logit, c->repeat);
    } else {
        for (size_t i = 0; i < cur->size; i++)
            if (bsearch(&cur->data[i].id, c->uniq, (size_t)n, sizeof *c->uniq, cmp_i32))
                cur->data[i].logit = pen_apply_one(cur->data[i].logit, c->repeat);
    }
    cur->sorted = false;
}
static void pen_reset(struct llama_sampler *smpl) {
    pen_ctx *c = smpl->ctx;
    c->len = c->head = 0;
    c->dirty = true;
}
static void pen_free(struct llama_sampler *smpl) {
    pen_ctx *c = smpl->ctx;
    if (!c) return;
    free(c->ring);
    free(c->uniq);
    free(c);
}
static struct llama_sampler *pen_clone(const struct llama_sampler *smpl);
static struct llama_sampler_i g_pen_iface = {
    .name = pen_name, .accept = pen_accept, .apply = pen_apply, .reset = pen_reset,
    .clone = pen_clone, .free = pen_free,
};
static struct llama_sampler *pen_new(int32_t n_vocab, int32_t last_n, float repeat, const pen_ctx *from) {
    assert(last_n > 0);
    pen_ctx *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->n_vocab = n_vocab;
    c->last_n = last_n;
    c->repeat = repeat;
    c->ring = malloc(sizeof *c->ring * (size_t)last_n);
    c->uniq = malloc(sizeof *c->uniq * (size_t)last_n);
    c->dirty = true;
    if (!c->ring || !c->uniq) { free(c->ring); free(c->uniq); free(c); return NULL; }
    if (from) {
        memcpy(c->ring, from->ring, sizeof *c->ring * (size_t)last_n);
        c->len = from->len;
        c->head = from->head;
    }
    struct llama_sampler *smpl = llama_sampler_init(&g_pen_iface, c);
    if (!smpl) pen_free(&(struct llama_sampler){ .ctx = c });
    return smpl;
}
static struct llama_sampler *pen_clone(const struct llama_sampler *smpl) {
    const pen_ctx *c = smpl->ctx;
    return pen_new(c->n_vocab, c->last_n, c->repeat, c);
}

struct llama_sampler *fpi_penalties_new(int32_t n_vocab, int32_t last_n, float repeat) {
    return pen_new(n_vocab, last_n, repeat, NULL);
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
    {
        struct llama_sampler *p = fpi_penalties_new(n_vocab, st->repeat_last_n, st->repeat_penalty);
        if (!p) { llama_sampler_free(c); return NULL; }
        llama_sampler_chain_add(c, p);
    }
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

/* Why: a preview step only needs the token fpi_pick_next would take, and
 * fpi_dist_compute pays for a whole distribution first (a copy of every
 * logit, the chain's passes, an exp and a heap pass over the vocabulary):
 * at 152K tokens that is most of a preview step's own work, on every branch.
 * Greedy, the token is the chain's best logit, and the chains built here
 * keep their best logit's order wherever it stands alone: the bias and the
 * penalty change logits (applied here, with the same float operations),
 * top-k, top-p and min-p always keep the most probable token, and a
 * positive temperature keeps the order. So one pass finds the best and the
 * runner-up; when the gap between them is wide enough that no rounding of
 * the full path can make their probabilities equal (1e-4 |best|: a
 * thousand times the float error of logit / temperature; plus 1e-5
 * temperature: exp(-gap / temperature) stays a hundred float steps below 1)
 * and the best may be taken (not a control token, keeps the text valid
 * UTF-8), it is the answer; otherwise (a near tie, a grammar, any other
 * sampler in the chain, a NaN, nothing finite) FPI_PICK_UNDECIDED sends the
 * caller to the full path. Uses d's scratch for the penalized logits when
 * there is a bias or a penalty to apply. O(n_vocab) with no exp and no sort. */
int32_t fpi_pick_greedy(const fp_model *m, fp_dist *d, const float *logits, int32_t n_vocab,
                        struct llama_sampler *chain, float temperature, const char *tail, int32_t tail_n) {
    if (!(temperature > 0.0f) || n_vocab <= 0 || n_vocab > d->cap) return FPI_PICK_UNDECIDED;
    const float *bias = NULL;
    pen_ctx *pen = NULL;
    int32_t n = llama_sampler_chain_n(chain);
    for (int32_t i = 0; i < n; i++) {
        struct llama_sampler *x = llama_sampler_chain_get(chain, i);
        if (x->iface == &g_bias_iface) { bias = x->ctx; continue; }
        if (x->iface == &g_pen_iface) { pen = x->ctx; continue; }
        const char *name = llama_sampler_name(x);
        if (name[0] == '?') name++; /* llama.cpp's no-op stand-in ("?temp" at temperature 1) */
        if (strcmp(name, "top-k") && strcmp(name, "top-p") && strcmp(name, "min-p") && strcmp(name, "temp"))
            return FPI_PICK_UNDECIDED;
    }
    int32_t n_pen = pen ? pen_unique(pen) : 0;
    const float *z = logits;
    if (bias || n_pen > 0) {
        /* scratch holds n_vocab llama_token_data (12 bytes each): room for the floats */
        float *w = (float *)(void *)d->scratch;
        if (bias) for (int32_t i = 0; i < n_vocab; i++) w[i] = logits[i] + bias[i];
        else memcpy(w, logits, sizeof *w * (size_t)n_vocab);
        for (int32_t j = 0; j < n_pen; j++) {
            int32_t t = pen->uniq[j];
            if (t >= 0 && t < n_vocab) w[t] = pen_apply_one(w[t], pen->repeat);
        }
        z = w;
    }
    int32_t best = -1;
    float z1 = -INFINITY, z2 = -INFINITY;
    bool nan = false;
    for (int32_t i = 0; i < n_vocab; i++) {
        float v = z[i];
        if (v > z1) { z2 = z1; z1 = v; best = i; }
        else if (v > z2) z2 = v;
        else if (v != v) nan = true;
    }
    if (best < 0 || nan || !isfinite(z1)) return FPI_PICK_UNDECIDED;
    if (!(z1 - z2 >= 1e-4f * fabsf(z1) + 1e-5f * temperature)) return FPI_PICK_UNDECIDED;
    if (!takeable(m, best, tail, tail_n)) return FPI_PICK_UNDECIDED;
    return best;
}
