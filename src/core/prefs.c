/*
 * prefs.c — a person's preferences, learned from their choices.
 *
 * The model: at a fork with candidates c_1..c_n, the person picks c_i with
 *
 *     P(i) = exp(w . phi(ctx, c_i)) / sum_j exp(w . phi(ctx, c_j))
 *
 * (a multinomial logit, Bradley-Terry over the candidate set). phi holds a
 * few dense features — the model's own log-probability, the rank, the
 * length, end-of-sentence — and hashed sparse ones: the word itself, the
 * word after the previous word, and the word's kind at its place in the
 * sentence (so "prefers short sentences" is learnable). Learning is one
 * AdaGrad step on -log P(chosen) after each decision (test-then-train):
 *
 *     g  = phi(chosen) - sum_j P(j) phi(j) - l2 * w
 *     G += g^2,   w += lr * g / sqrt(G)
 *
 * A per-token logit bias learns the same gradient on each candidate's first
 * token; it steers automatic continuation through a sampler in llama.cpp's
 * chain (session.c adds it).
 *
 * Auto-resolution keeps the last HIST decisions' top confidence and whether
 * the top pick was right; the threshold is the smallest confidence above
 * which the history's precision reaches the target, plus a penalty that
 * every undone automatic decision raises and every correct one lowers.
 */
#include "core/internal.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define N_DENSE 6
#define HASH_BITS 15
#define N_HASH (1 << HASH_BITS)
#define N_W (N_DENSE + N_HASH)
#define MAX_FEAT 16         /* active features per candidate */
#define HIST 256            /* decisions kept for calibrating auto-resolution */
#define PREFS_MAX_W 1e6f    /* |weight| and |bias| a loaded profile may hold */
#define MIN_HIST 30         /* no auto-resolution before this many */

struct fp_prefs {
    int32_t n_vocab;
    int64_t n_learned;
    float   w[N_W];
    float   g2[N_W];        /* AdaGrad: sum of squared gradients per weight */
    float  *bias;           /* [n_vocab] logit bias on first tokens */
    /* auto-resolution */
    bool    auto_on;
    float   precision;
    float   penalty;        /* added to the calibrated threshold; raised by undos */
    float   hist_conf[HIST];
    uint8_t hist_ok[HIST];
    int32_t hist_n, hist_next;
};

typedef struct feat { int32_t idx[MAX_FEAT]; float val[MAX_FEAT]; int32_t n; } feat;

fp_prefs *fp_prefs_new(int32_t n_vocab) {
    if (n_vocab <= 0) return NULL;
    fp_prefs *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->bias = calloc((size_t)n_vocab, sizeof(float));
    if (!p->bias) { free(p); return NULL; }
    p->n_vocab = n_vocab;
    p->precision = 0.95f;
    p->w[0] = 1.0f; /* start as the model itself: P(i) proportional to p_model(i) */
    return p;
}

void fp_prefs_free(fp_prefs *p) {
    if (!p) return;
    free(p->bias);
    free(p);
}

int64_t fp_prefs_n_learned(const fp_prefs *p) { return p->n_learned; }
int32_t fp_prefs_n_vocab(const fp_prefs *p) { return p->n_vocab; }
const float *fpi_prefs_bias(const fp_prefs *p) { return p->bias; }

/* ------------------------------------------------------------ features */

static uint32_t fnv(uint32_t h, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) { h ^= (unsigned char)s[i]; h *= 16777619u; }
    return h;
}

static void add_hash(feat *f, const char *tag, const char *a, size_t na, const char *b, size_t nb) {
    if (f->n >= MAX_FEAT) return;
    uint32_t h = fnv(2166136261u, tag, strlen(tag));
    h = fnv(h, a, na);
    h = fnv(h, "|", 1);
    h = fnv(h, b, nb);
    f->idx[f->n] = N_DENSE + (int32_t)(h & (N_HASH - 1));
    f->val[f->n++] = 1.0f;
}

/* The word as a key: lowercase, without surrounding spaces. */
static size_t word_key(const char *t, char *out, size_t cap) {
    while (*t == ' ' || *t == '\n' || *t == '\t') t++;
    size_t n = 0;
    for (; *t && n + 1 < cap; t++) out[n++] = (char)tolower((unsigned char)*t);
    while (n > 0 && (out[n - 1] == ' ' || out[n - 1] == '\n')) n--;
    out[n] = 0;
    return n;
}

/* The last word of the context, lowercased, and the words since the last sentence end. */
static size_t context_info(const char *ctx, size_t len, char *prev, size_t cap, int *words_in_sentence) {
    size_t end = len;
    while (end > 0 && (ctx[end - 1] == ' ' || ctx[end - 1] == '\n')) end--;
    size_t start = end;
    while (start > 0 && isalnum((unsigned char)ctx[start - 1])) start--;
    size_t n = 0;
    if (start == end && end > 0) start = end - 1; /* a punctuation mark is the previous "word" */
    for (size_t i = start; i < end && n + 1 < cap; i++) prev[n++] = (char)tolower((unsigned char)ctx[i]);
    prev[n] = 0;
    int words = 0;
    bool in_word = false;
    for (size_t i = len; i > 0; i--) {
        char c = ctx[i - 1];
        if (c == '.' || c == '!' || c == '?' || c == '\n') break;
        bool alnum = isalnum((unsigned char)c) != 0;
        if (alnum && !in_word) words++;
        in_word = alnum;
    }
    *words_in_sentence = words;
    return n;
}

static const char *word_kind(const char *key, size_t n) {
    if (n == 0) return "end";
    if (strchr(".!?", key[0])) return "stop";
    if (ispunct((unsigned char)key[0])) return "punct";
    return n <= 4 ? "short" : "long";
}

static void features(const char *ctx, size_t ctx_len, const fp_candidate *c, int32_t rank, feat *f) {
    f->n = 0;
    char key[FP_MAX_TEXT], prev[64];
    size_t n = word_key(c->text, key, sizeof key);
    int wis;
    size_t np = context_info(ctx, ctx_len, prev, sizeof prev, &wis);
    float lp = c->prob > 1e-9f ? logf(c->prob) : -20.7f;
    const char *kind = c->is_eog ? "end" : word_kind(key, n);
    f->idx[f->n] = 0; f->val[f->n++] = lp;
    f->idx[f->n] = 1; f->val[f->n++] = 1.0f / (1.0f + (float)rank);
    f->idx[f->n] = 2; f->val[f->n++] = c->is_eog ? 1.0f : 0.0f;
    f->idx[f->n] = 3; f->val[f->n++] = (float)n / 8.0f;
    f->idx[f->n] = 4; f->val[f->n++] = strcmp(kind, "stop") == 0 ? 1.0f : 0.0f;
    f->idx[f->n] = 5; f->val[f->n++] = (float)(wis > 12 ? 12 : wis) / 12.0f * (strcmp(kind, "stop") == 0 ? 1.0f : 0.0f);
    char bucket[16];
    snprintf(bucket, sizeof bucket, "%d", wis > 12 ? 12 : wis);
    add_hash(f, "w", key, n, "", 0);
    add_hash(f, "pw", prev, np, key, n);
    add_hash(f, "kind", kind, strlen(kind), bucket, strlen(bucket));
    add_hash(f, "kind0", kind, strlen(kind), "", 0);
}

static float dot(const fp_prefs *p, const feat *f) {
    float s = 0;
    for (int32_t i = 0; i < f->n; i++) s += p->w[f->idx[i]] * f->val[i];
    return s;
}

/* Softmax of the scores into out; the features of each candidate into fs. */
static void scores(const fp_prefs *p, const char *ctx, size_t len, const fp_fork *f, feat *fs, float *out) {
    float mx = -INFINITY;
    for (int32_t i = 0; i < f->n_candidates; i++) {
        features(ctx, len, &f->candidates[i], i, &fs[i]);
        out[i] = dot(p, &fs[i]);
        if (out[i] > mx) mx = out[i];
    }
    double sum = 0;
    for (int32_t i = 0; i < f->n_candidates; i++) { out[i] = expf(out[i] - mx); sum += out[i]; }
    for (int32_t i = 0; i < f->n_candidates; i++) out[i] = (float)(out[i] / sum);
}

void fp_prefs_predict(const fp_prefs *p, const char *ctx, size_t len, const fp_fork *f, float *out) {
    feat fs[64];
    if (f->n_candidates <= 0) return;
    scores(p, ctx, len, f, fs, out);
}

/* The candidate the decision picked, or -1 (typed text matching none). */
static int32_t chosen_index(const fp_fork *f) {
    if (f->choice == FP_CHOICE_INDEX || f->choice == FP_CHOICE_INDEX_PREVIEW || f->choice == FP_CHOICE_AUTO)
        return f->choice_index >= 0 && f->choice_index < f->n_candidates ? f->choice_index : -1;
    if (f->choice == FP_CHOICE_TYPED) {
        char a[FP_MAX_TEXT], b[FP_MAX_TEXT];
        word_key(f->choice_text, a, sizeof a);
        for (int32_t i = 0; i < f->n_candidates; i++) {
            word_key(f->candidates[i].text, b, sizeof b);
            if (strcmp(a, b) == 0) return i;
        }
    }
    return -1;
}

float fp_prefs_learn(fp_prefs *p, const char *ctx, size_t len, const fp_fork *f) {
    if (f->chooser == FP_BY_AUTO || f->n_candidates < 2) return -1.0f;
    int32_t y = chosen_index(f);
    if (y < 0) return -1.0f;
    feat fs[64];
    float pr[64];
    scores(p, ctx, len, f, fs, pr);
    float before = pr[y];
    /* calibration history: was the top pick right, at what confidence? */
    int32_t top = 0;
    for (int32_t i = 1; i < f->n_candidates; i++) if (pr[i] > pr[top]) top = i;
    p->hist_conf[p->hist_next] = pr[top];
    p->hist_ok[p->hist_next] = top == y;
    p->hist_next = (p->hist_next + 1) % HIST;
    if (p->hist_n < HIST) p->hist_n++;
    /* one AdaGrad step on -log P(y): each weight's step shrinks with the
     * gradient it has seen, so rare words learn fast and common ones settle */
    const float lr = 0.3f, l2 = 1e-4f;
    float grad[64 * MAX_FEAT];
    int32_t gi = 0;
    for (int32_t i = 0; i < f->n_candidates; i++) {
        float g = (i == y ? 1.0f : 0.0f) - pr[i];
        for (int32_t j = 0; j < fs[i].n; j++) grad[gi++] = g * fs[i].val[j];
    }
    gi = 0;
    for (int32_t i = 0; i < f->n_candidates; i++) {
        float g = (i == y ? 1.0f : 0.0f) - pr[i];
        for (int32_t j = 0; j < fs[i].n; j++) {
            int32_t k = fs[i].idx[j];
            float d = grad[gi++] - l2 * p->w[k];
            p->g2[k] += d * d;
            p->w[k] += lr * d / sqrtf(p->g2[k] + 1e-6f);
        }
        /* the same gradient on the candidate's first token, as a logit bias */
        const fp_candidate *c = &f->candidates[i];
        if (c->n_tokens > 0 && c->tokens[0] >= 0 && c->tokens[0] < p->n_vocab) {
            float *b = &p->bias[c->tokens[0]];
            *b += 0.2f * g;
            if (*b > 2.0f) *b = 2.0f;
            if (*b < -2.0f) *b = -2.0f;
        }
    }
    if (p->penalty > 0) p->penalty *= 0.98f; /* trust returns slowly */
    p->n_learned++;
    return before;
}

void fp_prefs_set_auto(fp_prefs *p, bool enabled, float precision) {
    p->auto_on = enabled;
    if (precision > 0.5f && precision < 1.0f) p->precision = precision;
}

float fp_prefs_auto_threshold(const fp_prefs *p) {
    if (!p->auto_on || p->hist_n < MIN_HIST) return 2.0f;
    /* the lowest confidence t such that decisions at or above t were right often enough */
    float best = 2.0f;
    for (int32_t i = 0; i < p->hist_n; i++) {
        float t = p->hist_conf[i];
        int32_t n = 0, ok = 0;
        for (int32_t j = 0; j < p->hist_n; j++)
            if (p->hist_conf[j] >= t) { n++; ok += p->hist_ok[j]; }
        if (n >= 10 && (float)ok >= p->precision * (float)n && t < best) best = t;
    }
    float th = best + p->penalty;
    return th < 0.5f ? 0.5f : th;
}

void fp_prefs_note_undo(fp_prefs *p) {
    /* trust drops at once and returns slowly (see fp_prefs_learn). The miss
     * itself enters the calibration history when the person decides the
     * reopened fork, at the confidence the pick really had; counting it here
     * as well, at full confidence, switched auto-resolution off for good
     * after two or three undos (bench_learning) */
    p->penalty += 0.05f;
}

/* ---------------------------------------------------------- serialisation */

#define MAGIC "FPPREFS2"

void *fp_prefs_save(const fp_prefs *p, size_t *len) {
    size_t n = 8 + sizeof(int32_t) + sizeof(int64_t) + sizeof(float) * 2 + sizeof p->w + sizeof p->g2
             + sizeof(float) * (size_t)p->n_vocab + sizeof p->hist_conf + sizeof p->hist_ok + 2 * sizeof(int32_t) + 1;
    unsigned char *b = malloc(n), *q = b;
    if (!b) return NULL;
#define PUT(x, sz) do { memcpy(q, (x), (sz)); q += (sz); } while (0)
    PUT(MAGIC, 8);
    PUT(&p->n_vocab, sizeof(int32_t));
    PUT(&p->n_learned, sizeof(int64_t));
    PUT(&p->precision, sizeof(float));
    PUT(&p->penalty, sizeof(float));
    PUT(p->w, sizeof p->w);
    PUT(p->g2, sizeof p->g2);
    PUT(p->bias, sizeof(float) * (size_t)p->n_vocab);
    PUT(p->hist_conf, sizeof p->hist_conf);
    PUT(p->hist_ok, sizeof p->hist_ok);
    PUT(&p->hist_n, sizeof(int32_t));
    PUT(&p->hist_next, sizeof(int32_t));
    uint8_t on = p->auto_on;
    PUT(&on, 1);
#undef PUT
    *len = (size_t)(q - b);
    return b;
}

fp_prefs *fp_prefs_load(const void *data, size_t len, fp_error *err) {
    const unsigned char *q = data;
    int32_t nv;
    if (!data || len < 12 || memcmp(q, MAGIC, 8) != 0) { fpi_fail(err, FP_ERR_ARG, "not a Forkpoint preference profile"); return NULL; }
    memcpy(&nv, q + 8, sizeof nv);
    size_t want = 8 + sizeof(int32_t) + sizeof(int64_t) + sizeof(float) * 2 + 2 * sizeof(float) * N_W
                + sizeof(float) * (size_t)(nv > 0 ? nv : 0) + sizeof(float) * HIST + HIST + 2 * sizeof(int32_t) + 1;
    if (nv <= 0 || nv > 10000000 || len != want) { fpi_fail(err, FP_ERR_ARG, "the preference profile is damaged (size)"); return NULL; }
    fp_prefs *p = fp_prefs_new(nv);
    if (!p) { fpi_fail(err, FP_ERR_NOMEM, "out of memory"); return NULL; }
    q += 12;
#define GET(x, sz) do { memcpy((x), q, (sz)); q += (sz); } while (0)
    GET(&p->n_learned, sizeof(int64_t));
    GET(&p->precision, sizeof(float));
    GET(&p->penalty, sizeof(float));
    GET(p->w, sizeof p->w);
    GET(p->g2, sizeof p->g2);
    GET(p->bias, sizeof(float) * (size_t)nv);
    GET(p->hist_conf, sizeof p->hist_conf);
    GET(p->hist_ok, sizeof p->hist_ok);
    GET(&p->hist_n, sizeof(int32_t));
    GET(&p->hist_next, sizeof(int32_t));
    uint8_t on;
    GET(&on, 1);
#undef GET
    p->auto_on = on != 0;
    bool ok = p->n_learned >= 0 && p->hist_n >= 0 && p->hist_n <= HIST && p->hist_next >= 0 && p->hist_next < HIST
              && isfinite(p->precision) && isfinite(p->penalty);
    /* finite is not enough: a weight near FLT_MAX turns inf at the next
     * learning step, and the profile saved then no longer loads (found by
     * fuzz/fuzz_prefs.c). Learned weights stay far below PREFS_MAX_W. */
    for (int32_t i = 0; ok && i < N_W; i++) ok = fabsf(p->w[i]) <= PREFS_MAX_W && isfinite(p->g2[i]) && p->g2[i] >= 0;
    for (int32_t i = 0; ok && i < nv; i++) ok = fabsf(p->bias[i]) <= PREFS_MAX_W;
    if (!ok) { fp_prefs_free(p); fpi_fail(err, FP_ERR_ARG, "the preference profile is damaged (values)"); return NULL; }
    return p;
}
