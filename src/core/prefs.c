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
 * sentence (so "prefers short sentences" is learnable).
 *
 * Learning (test-then-train) fits w to the person's recent decisions, held
 * in a replay buffer (the last REPLAY forks' features), as a MAP estimate:
 *
 *     min_w  sum_forks -log P(chosen) + 1/2 sum_k prec_k (w_k - anchor_k)^2
 *
 * by a few damped diagonal-Newton steps after each decision, warm-started
 * (cost: FIT_ITERS x buffered candidates x MAX_FEAT, about 0.5 ms at 256
 * forks of 8). The Gaussian term is what came before the buffer: at first
 * the prior (w = the model's own log-probability, everything else 0); when
 * the buffer is full, or the profile is saved, the buffer is folded into it
 * (a Laplace approximation: anchor = w, prec += the buffer's diagonal
 * Hessian), so a saved profile predicts exactly as the live one and keeps
 * what the buffer taught. (The previous learner took one AdaGrad step per
 * decision: its first step on a fresh word was lr x sign(gradient) whatever
 * the gradient's size, which made it worse than the model's own ranking for
 * people who mostly agree with it; bench_learning.)
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
#include "core/testing.h"

#include <assert.h>
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define N_DENSE 6
#define HASH_BITS 15
#define N_HASH (1 << HASH_BITS)
#define N_W0 (N_DENSE + N_HASH)   /* format 2's weights */
#define VEC0 N_W0           /* then FP_TOKVEC weights on the token's meaning vector (tokvec.c) */
#define N_W (N_W0 + FP_TOKVEC)
#define MAX_FEAT 32         /* active features per candidate */
#define HIST 256            /* decisions kept for calibrating auto-resolution */
#define PREFS_MAX_W 1e6f    /* |weight| and |bias| a loaded profile may hold */
#define MIN_HIST 30         /* no auto-resolution before this many */
#define REPLAY 256          /* decisions the fit sees in full */
#define REPLAY_C 16         /* candidates kept per buffered fork (the chosen one always) */
#define FIT_ITERS 4
#define FIT_DAMP 0.3f      /* a candidate has ~4 co-active features: a full diagonal step overshoots */
#define PRIOR_PREC 0.3f     /* prior precision of every weight but the model's log p */
#define PRIOR_PREC_LP 4.0f  /* ... and of the model's log p, around 1 */
#define WORDS 256           /* words whose weights the profile can name */

typedef struct feat { int32_t idx[MAX_FEAT]; float val[MAX_FEAT]; int32_t n; } feat;

/* A decided fork as the fit sees it: its candidates' features, the pick. */
typedef struct rfork { int32_t n, y; feat f[REPLAY_C]; } rfork;

struct fp_prefs {
    int32_t n_vocab;
    int64_t n_learned;
    float   w[N_W];
    float   anchor[N_W];    /* the Gaussian term's centre: what came before the buffer */
    float   prec[N_W];      /* ... and its precision per weight */
    float  *bias;           /* [n_vocab] logit bias on first tokens */
    unsigned ablate;        /* FPI_PREFS_NO_* (core/testing.h): groups left out, for measuring them */
    float  *tokvec;         /* [n_vocab * FP_TOKVEC], copied from the model when first attached to a session
                               (fpi_prefs_bind); NULL before: those features are 0 */
    /* the replay buffer and the fit's scratch (g, h zero between fits) */
    rfork  *replay;         /* [REPLAY] */
    int32_t n_replay;
    float  *g, *h;          /* [N_W] */
    int32_t *touched;       /* [REPLAY * REPLAY_C * MAX_FEAT] indices g, h hold */
    /* what the person sees of it (fp_prefs_history, fp_prefs_top_words) */
    int64_t n_auto, n_undone;
    uint8_t hist_flags[FP_PREFS_HISTORY];
    int32_t flags_n, flags_next;
    char    word[WORDS][24]; /* a word per hashed slot it was learned in */
    int32_t word_slot[WORDS], n_words;
    /* auto-resolution */
    bool    auto_on;
    float   precision;
    float   penalty;        /* added to the calibrated threshold; raised by undos */
    float   hist_conf[HIST];
    uint8_t hist_ok[HIST];
    int32_t hist_n, hist_next;
    fp_prefs_habits habits; /* how the person enters text (adapt.c) */
};

static void prior(fp_prefs *p) {
    for (int32_t k = 0; k < N_W; k++) { p->w[k] = p->anchor[k] = 0; p->prec[k] = PRIOR_PREC; }
    /* start as the model itself: P(i) proportional to p_model(i) */
    p->w[0] = p->anchor[0] = 1.0f;
    p->prec[0] = PRIOR_PREC_LP;
}

fp_prefs *fp_prefs_new(int32_t n_vocab) {
    if (n_vocab <= 0) return NULL;
    fp_prefs *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->bias = calloc((size_t)n_vocab, sizeof(float));
    p->replay = calloc(REPLAY, sizeof *p->replay);
    p->g = calloc(N_W, sizeof(float));
    p->h = calloc(N_W, sizeof(float));
    p->touched = malloc(sizeof(int32_t) * REPLAY * REPLAY_C * MAX_FEAT);
    if (!p->bias || !p->replay || !p->g || !p->h || !p->touched) { fp_prefs_free(p); return NULL; }
    p->n_vocab = n_vocab;
    p->precision = 0.95f;
    prior(p);
    return p;
}

void fp_prefs_reset(fp_prefs *p) {
    bool on = p->auto_on;
    float precision = p->precision;
    fp_prefs keep = *p;   /* the allocations */
    memset(p, 0, sizeof *p);
    p->n_vocab = keep.n_vocab;
    p->bias = keep.bias; p->replay = keep.replay; p->g = keep.g; p->h = keep.h; p->touched = keep.touched;
    p->tokvec = keep.tokvec;
    memset(p->bias, 0, sizeof(float) * (size_t)p->n_vocab);
    p->auto_on = on;
    p->precision = precision;
    prior(p);
}

void fp_prefs_free(fp_prefs *p) {
    if (!p) return;
    free(p->bias);
    free(p->replay);
    free(p->g);
    free(p->h);
    free(p->touched);
    free(p->tokvec);
    free(p);
}

int64_t fp_prefs_n_learned(const fp_prefs *p) { return p->n_learned; }
fp_prefs_habits fp_prefs_habits_get(const fp_prefs *p) { return p->habits; }
fp_prefs_habits *fpi_prefs_habits(fp_prefs *p) { return &p->habits; }
int32_t fp_prefs_n_vocab(const fp_prefs *p) { return p->n_vocab; }
void fpi_prefs_ablate(fp_prefs *p, unsigned mask) { p->ablate = mask; }

/* A copy, so the preferences may outlive the model (n_vocab x FP_TOKVEC floats). */
void fpi_prefs_bind(fp_prefs *p, const float *tokvec) {
    if (!tokvec || p->tokvec) return;
    size_t n = sizeof(float) * (size_t)p->n_vocab * FP_TOKVEC;
    if ((p->tokvec = malloc(n))) memcpy(p->tokvec, tokvec, n);
}
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

static void features(const fp_prefs *p, const char *ctx, size_t ctx_len, const fp_candidate *c, int32_t rank, feat *f) {
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
    if (!(p->ablate & FPI_PREFS_NO_WORDS)) add_hash(f, "w", key, n, "", 0);
    if (!(p->ablate & (FPI_PREFS_NO_WORDS | FPI_PREFS_NO_CONTEXT))) add_hash(f, "pw", prev, np, key, n);
    if (!(p->ablate & FPI_PREFS_NO_CONTEXT)) add_hash(f, "kind", kind, strlen(kind), bucket, strlen(bucket));
    add_hash(f, "kind0", kind, strlen(kind), "", 0);
    /* what the word means, as the model uses its first token: shared by
     * words used alike, so a taste learned on some words reaches others */
    if (p->tokvec && !(p->ablate & FPI_PREFS_NO_MEANING) && !c->is_eog && c->n_tokens > 0 && c->tokens[0] >= 0 && c->tokens[0] < p->n_vocab) {
        const float *v = p->tokvec + (size_t)c->tokens[0] * FP_TOKVEC;
        for (int d = 0; d < FP_TOKVEC && f->n < MAX_FEAT; d++) { f->idx[f->n] = VEC0 + d; f->val[f->n++] = v[d]; }
    }
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
        /* the rank by the model's probability, whatever order the cloud is
         * in: a decided fork comes in the person's order, and its position
         * there taught "the person picks the learned top", which then
         * boosted the model's top at prediction (bench_learning) */
        int32_t rank = 0;
        for (int32_t j = 0; j < f->n_candidates; j++)
            rank += f->candidates[j].prob > f->candidates[i].prob || (f->candidates[j].prob == f->candidates[i].prob && j < i);
        features(p, ctx, len, &f->candidates[i], rank, &fs[i]);
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

/* ------------------------------------------------------------- fitting */

/* The buffer's gradient and diagonal Hessian of sum -log P(chosen) at w are
 * added into p->g / p->h; the indices touched are listed in touched (each
 * once; p->h > 0 marks them). Returns the number of touched indices. */
static int32_t buffer_derivs(fp_prefs *p, int32_t *touched) {
    int32_t nt = 0;
    float s1[REPLAY_C * MAX_FEAT];
    for (int32_t r = 0; r < p->n_replay; r++) {
        const rfork *rf = &p->replay[r];
        float pr[REPLAY_C], mx = -INFINITY;
        double sum = 0;
        for (int32_t i = 0; i < rf->n; i++) { pr[i] = dot(p, &rf->f[i]); if (pr[i] > mx) mx = pr[i]; }
        for (int32_t i = 0; i < rf->n; i++) { pr[i] = expf(pr[i] - mx); sum += pr[i]; }
        for (int32_t i = 0; i < rf->n; i++) pr[i] = (float)(pr[i] / sum);
        /* per feature index: E_P[x] over the candidates (indices repeat across
         * candidates, so they are summed through a small list) */
        int32_t ids[REPLAY_C * MAX_FEAT], nid = 0;
        for (int32_t i = 0; i < rf->n; i++)
            for (int32_t j = 0; j < rf->f[i].n; j++) {
                int32_t k = rf->f[i].idx[j], q = 0;
                while (q < nid && ids[q] != k) q++;
                if (q == nid) { ids[nid] = k; s1[nid++] = 0; }
                s1[q] += pr[i] * rf->f[i].val[j];
            }
        /* d2/dw_k2 of -log P = E_P[x_k^2] - E_P[x_k]^2 (candidates without
         * the feature have x = 0 and count in both) */
        for (int32_t i = 0; i < rf->n; i++)
            for (int32_t j = 0; j < rf->f[i].n; j++) {
                int32_t k = rf->f[i].idx[j];
                float x = rf->f[i].val[j];
                p->g[k] += (i == rf->y ? x : 0.0f) - pr[i] * x;
                if (p->h[k] == 0.0f) { touched[nt++] = k; p->h[k] = 1e-6f; }
                p->h[k] += pr[i] * x * x;
            }
        for (int32_t q = 0; q < nid; q++) p->h[ids[q]] -= s1[q] * s1[q];
    }
    return nt;
}

/* A few damped diagonal-Newton steps on the MAP objective over the buffer. */
static void fit(fp_prefs *p) {
    int32_t *touched = p->touched;
    for (int it = 0; it < FIT_ITERS; it++) {
        int32_t nt = buffer_derivs(p, touched);
        for (int32_t t = 0; t < nt; t++) {
            int32_t k = touched[t];
            float g = p->g[k] - p->prec[k] * (p->w[k] - p->anchor[k]);
            float step = FIT_DAMP * g / (fmaxf(p->h[k], 0.0f) + p->prec[k]);
            if (step > 2.0f) step = 2.0f;
            if (step < -2.0f) step = -2.0f;
            p->w[k] += step;
            if (p->w[k] > PREFS_MAX_W / 2) p->w[k] = PREFS_MAX_W / 2;
            if (p->w[k] < -PREFS_MAX_W / 2) p->w[k] = -PREFS_MAX_W / 2;
            p->g[k] = p->h[k] = 0.0f;
        }
    }
}

/* Folds the buffer into the Gaussian term (anchor = w, prec += Hessian)
 * into the arrays given (p's own, or a copy being saved). */
static void fold_into(fp_prefs *p, float *anchor, float *prec) {
    int32_t *touched = p->touched;
    int32_t nt = buffer_derivs(p, touched);
    memcpy(anchor, p->w, sizeof p->w);
    if (prec != p->prec) memcpy(prec, p->prec, sizeof p->prec);
    for (int32_t t = 0; t < nt; t++) {
        int32_t k = touched[t];
        prec[k] += p->h[k];
        if (prec[k] > PREFS_MAX_W) prec[k] = PREFS_MAX_W;
        p->g[k] = p->h[k] = 0.0f;
    }
}

/* ------------------------------------------------------ what is shown */

static void flag_push(fp_prefs *p, uint8_t fl) {
    p->hist_flags[p->flags_next] = fl;
    p->flags_next = (p->flags_next + 1) % FP_PREFS_HISTORY;
    if (p->flags_n < FP_PREFS_HISTORY) p->flags_n++;
}

/* Remembers the word of a learned word feature, to name it later. */
static void word_note(fp_prefs *p, const fp_candidate *c) {
    char key[FP_MAX_TEXT];
    size_t n = word_key(c->text, key, sizeof key);
    if (n == 0 || n >= sizeof p->word[0] || c->is_eog) return;
    feat f = { .n = 0 };
    add_hash(&f, "w", key, n, "", 0);
    int32_t slot = f.idx[0], weakest = -1;
    for (int32_t i = 0; i < p->n_words; i++) {
        if (p->word_slot[i] == slot) return;
        if (weakest < 0 || fabsf(p->w[p->word_slot[i]]) < fabsf(p->w[p->word_slot[weakest]])) weakest = i;
    }
    int32_t at = p->n_words < WORDS ? p->n_words++ : weakest;
    if (at == weakest && fabsf(p->w[p->word_slot[at]]) > 0.05f) return; /* all known words matter more */
    memcpy(p->word[at], key, n + 1);
    p->word_slot[at] = slot;
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
    flag_push(p, top == y ? FP_PREFS_AGREED : 0);
    /* the logit bias for automatic continuation: one step of the gradient
     * on each candidate's first token */
    for (int32_t i = 0; i < f->n_candidates; i++) {
        float g = (i == y ? 1.0f : 0.0f) - pr[i];
        const fp_candidate *c = &f->candidates[i];
        if (c->n_tokens > 0 && c->tokens[0] >= 0 && c->tokens[0] < p->n_vocab) {
            float *b = &p->bias[c->tokens[0]];
            *b += 0.2f * g;
            if (*b > 2.0f) *b = 2.0f;
            if (*b < -2.0f) *b = -2.0f;
        }
    }
    /* into the buffer (folding it into the Gaussian term when full): the
     * chosen candidate and the most probable others, in rank order */
    if (p->n_replay == REPLAY) { fold_into(p, p->anchor, p->prec); p->n_replay = 0; }
    rfork *rf = &p->replay[p->n_replay++];
    rf->n = 0;
    rf->y = -1;
    for (int32_t i = 0; i < f->n_candidates && rf->n < REPLAY_C; i++) {
        if (rf->n == REPLAY_C - 1 && rf->y < 0 && i != y) continue; /* keep room for the pick */
        if (i == y) rf->y = rf->n;
        rf->f[rf->n++] = fs[i];
        word_note(p, &f->candidates[i]);
    }
    assert(rf->y >= 0 && rf->y < rf->n);
    fit(p);
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
    /* the newest automatic decision not yet undone is the one */
    p->n_undone++;
    for (int32_t i = 1; i <= p->flags_n; i++) {
        uint8_t *fl = &p->hist_flags[(p->flags_next - i + FP_PREFS_HISTORY) % FP_PREFS_HISTORY];
        if ((*fl & FP_PREFS_AUTO) && !(*fl & FP_PREFS_UNDONE)) { *fl |= FP_PREFS_UNDONE; break; }
    }
}

void fpi_prefs_note_auto(fp_prefs *p) {
    p->n_auto++;
    flag_push(p, FP_PREFS_AUTO | FP_PREFS_AGREED);
}

/* ---------------------------------------------------------- serialisation */

/* Format 4 = format 3 then the entry habits (fp_prefs_habits, adapt.c):
 *   decisions:i64 depth_n:i64 typed:f32 pointed:f32 depth:f32 repairs:f32
 * Formats 3 and 2 still load (with no habits).
 * Format 3:
 *   "FPPREFS3" n_vocab:i32 n_learned:i64 precision:f32 penalty:f32
 *   w[N_W] prec[N_W] (N_W = dense, hashed, then FP_TOKVEC meaning-vector weights) bias[n_vocab] hist_conf[HIST] hist_ok[HIST]:u8 hist_n:i32 hist_next:i32 auto_on:u8
 *   n_auto:i64 n_undone:i64 flags[FP_PREFS_HISTORY]:u8 flags_n:i32 flags_next:i32
 *   n_words:i32 word[WORDS][24] word_slot[WORDS]:i32
 * The replay buffer is folded into (w, prec) as it is written, so a loaded
 * profile predicts exactly as the saved one and starts an empty buffer.
 * Format 2 had AdaGrad's squared-gradient sums where prec is; they are read
 * as prior + that sum (more history, firmer weights). */
#define MAGIC2 "FPPREFS2"
#define MAGIC3 "FPPREFS3"
#define MAGIC "FPPREFS4"
#define HABITS_SIZE (2 * sizeof(int64_t) + 4 * sizeof(float))

static size_t size_v2(int32_t nv) {
    return 8 + sizeof(int32_t) + sizeof(int64_t) + sizeof(float) * 2 + 2 * sizeof(float) * N_W0
         + sizeof(float) * (size_t)nv + sizeof(float) * HIST + HIST + 2 * sizeof(int32_t) + 1;
}

static size_t size_v3(int32_t nv) {
    return size_v2(nv) + 2 * sizeof(float) * FP_TOKVEC + 2 * sizeof(int64_t) + FP_PREFS_HISTORY + 2 * sizeof(int32_t)
         + sizeof(int32_t) + (size_t)WORDS * (24 + sizeof(int32_t));
}

void *fp_prefs_save(const fp_prefs *p, size_t *len) {
    size_t n = size_v3(p->n_vocab) + HABITS_SIZE;
    unsigned char *b = malloc(n), *q = b;
    float *anchor = malloc(sizeof(float) * N_W), *prec = malloc(sizeof(float) * N_W);
    if (!b || !anchor || !prec) { free(b); free(anchor); free(prec); return NULL; }
    /* the fit's scratch (g, h) is used and left zero: p's state is unchanged */
    fold_into((fp_prefs *)p, anchor, prec);
#define PUT(x, sz) do { memcpy(q, (x), (sz)); q += (sz); } while (0)
    PUT(MAGIC, 8);
    PUT(&p->n_vocab, sizeof(int32_t));
    PUT(&p->n_learned, sizeof(int64_t));
    PUT(&p->precision, sizeof(float));
    PUT(&p->penalty, sizeof(float));
    PUT(p->w, sizeof p->w);
    PUT(prec, sizeof p->prec);
    PUT(p->bias, sizeof(float) * (size_t)p->n_vocab);
    PUT(p->hist_conf, sizeof p->hist_conf);
    PUT(p->hist_ok, sizeof p->hist_ok);
    PUT(&p->hist_n, sizeof(int32_t));
    PUT(&p->hist_next, sizeof(int32_t));
    uint8_t on = p->auto_on;
    PUT(&on, 1);
    PUT(&p->n_auto, sizeof(int64_t));
    PUT(&p->n_undone, sizeof(int64_t));
    PUT(p->hist_flags, sizeof p->hist_flags);
    PUT(&p->flags_n, sizeof(int32_t));
    PUT(&p->flags_next, sizeof(int32_t));
    PUT(&p->n_words, sizeof(int32_t));
    PUT(p->word, sizeof p->word);
    PUT(p->word_slot, sizeof p->word_slot);
    PUT(&p->habits.decisions, sizeof(int64_t));
    PUT(&p->habits.depth_n, sizeof(int64_t));
    PUT(&p->habits.typed, sizeof(float));
    PUT(&p->habits.pointed, sizeof(float));
    PUT(&p->habits.depth, sizeof(float));
    PUT(&p->habits.repairs, sizeof(float));
#undef PUT
    assert((size_t)(q - b) == n);
    free(anchor);
    free(prec);
    *len = n;
    return b;
}

fp_prefs *fp_prefs_load(const void *data, size_t len, fp_error *err) {
    const unsigned char *q = data;
    int32_t nv;
    if (!data || len < 12 || (memcmp(q, MAGIC, 8) != 0 && memcmp(q, MAGIC3, 8) != 0 && memcmp(q, MAGIC2, 8) != 0)) {
        fpi_fail(err, FP_ERR_ARG, "not a Forkpoint preference profile");
        return NULL;
    }
    bool v2 = memcmp(q, MAGIC2, 8) == 0, v4 = memcmp(q, MAGIC, 8) == 0;
    memcpy(&nv, q + 8, sizeof nv);
    if (nv <= 0 || nv > 10000000 || len != (v2 ? size_v2(nv) : size_v3(nv) + (v4 ? HABITS_SIZE : 0))) {
        fpi_fail(err, FP_ERR_ARG, "the preference profile is damaged (size)");
        return NULL;
    }
    fp_prefs *p = fp_prefs_new(nv);
    if (!p) { fpi_fail(err, FP_ERR_NOMEM, "out of memory"); return NULL; }
    q += 12;
#define GET(x, sz) do { memcpy((x), q, (sz)); q += (sz); } while (0)
    GET(&p->n_learned, sizeof(int64_t));
    GET(&p->precision, sizeof(float));
    GET(&p->penalty, sizeof(float));
    size_t nw = sizeof(float) * (v2 ? N_W0 : N_W);   /* format 2 had no meaning-vector weights */
    GET(p->w, nw);
    GET(p->prec, nw);
    GET(p->bias, sizeof(float) * (size_t)nv);
    GET(p->hist_conf, sizeof p->hist_conf);
    GET(p->hist_ok, sizeof p->hist_ok);
    GET(&p->hist_n, sizeof(int32_t));
    GET(&p->hist_next, sizeof(int32_t));
    uint8_t on;
    GET(&on, 1);
    if (!v2) {
        GET(&p->n_auto, sizeof(int64_t));
        GET(&p->n_undone, sizeof(int64_t));
        GET(p->hist_flags, sizeof p->hist_flags);
        GET(&p->flags_n, sizeof(int32_t));
        GET(&p->flags_next, sizeof(int32_t));
        GET(&p->n_words, sizeof(int32_t));
        GET(p->word, sizeof p->word);
        GET(p->word_slot, sizeof p->word_slot);
    }
    if (v4) {
        GET(&p->habits.decisions, sizeof(int64_t));
        GET(&p->habits.depth_n, sizeof(int64_t));
        GET(&p->habits.typed, sizeof(float));
        GET(&p->habits.pointed, sizeof(float));
        GET(&p->habits.depth, sizeof(float));
        GET(&p->habits.repairs, sizeof(float));
    }
#undef GET
    p->auto_on = on != 0;
    bool ok = p->n_learned >= 0 && p->hist_n >= 0 && p->hist_n <= HIST && p->hist_next >= 0 && p->hist_next < HIST
              && isfinite(p->precision) && isfinite(p->penalty) && p->n_auto >= 0 && p->n_undone >= 0
              && p->flags_n >= 0 && p->flags_n <= FP_PREFS_HISTORY && p->flags_next >= 0 && p->flags_next < FP_PREFS_HISTORY
              && p->n_words >= 0 && p->n_words <= WORDS
              && p->habits.decisions >= 0 && p->habits.depth_n >= 0 && p->habits.depth_n <= p->habits.decisions
              && p->habits.typed >= 0 && p->habits.typed <= 1 && p->habits.pointed >= 0 && p->habits.pointed <= 1
              && p->habits.depth >= 0 && p->habits.depth <= 1 && p->habits.repairs >= 0 && p->habits.repairs <= 4;
    /* finite is not enough: a weight near FLT_MAX turns inf at the next
     * learning step, and the profile saved then no longer loads (found by
     * fuzz/fuzz_prefs.c). Learned weights stay far below PREFS_MAX_W. */
    for (int32_t i = 0; ok && i < N_W; i++) {
        if (v2 && i >= N_W0) p->prec[i] = PRIOR_PREC;
        else if (v2 && isfinite(p->prec[i]) && p->prec[i] >= 0) p->prec[i] = fminf(PRIOR_PREC + p->prec[i], PREFS_MAX_W);
        ok = fabsf(p->w[i]) <= PREFS_MAX_W && isfinite(p->prec[i]) && p->prec[i] > 0 && p->prec[i] <= PREFS_MAX_W;
    }
    for (int32_t i = 0; ok && i < nv; i++) ok = fabsf(p->bias[i]) <= PREFS_MAX_W;
    for (int32_t i = 0; ok && i < p->n_words; i++)
        ok = p->word_slot[i] >= N_DENSE && p->word_slot[i] < N_W && memchr(p->word[i], 0, sizeof p->word[i]) != NULL;
    for (int32_t i = 0; ok && i < FP_PREFS_HISTORY; i++) ok = (p->hist_flags[i] & ~7) == 0;
    if (!ok) { fp_prefs_free(p); fpi_fail(err, FP_ERR_ARG, "the preference profile is damaged (values)"); return NULL; }
    memcpy(p->anchor, p->w, sizeof p->w);
    return p;
}

/* ------------------------------------------------- what was learned */

int32_t fp_prefs_history(const fp_prefs *p, uint8_t *out, int32_t cap) {
    int32_t n = p->flags_n < cap ? p->flags_n : cap;
    for (int32_t i = 0; i < n; i++)
        out[i] = p->hist_flags[(p->flags_next - n + i + FP_PREFS_HISTORY) % FP_PREFS_HISTORY];
    return n;
}

void fp_prefs_counts(const fp_prefs *p, int64_t *n_auto, int64_t *n_undone) {
    if (n_auto) *n_auto = p->n_auto;
    if (n_undone) *n_undone = p->n_undone;
}

static const char *const DENSE_NAME[N_DENSE] = {
    "model log-probability", "model rank", "end of text", "word length", "ends a sentence", "ends a long sentence",
};
static const float DENSE_START[N_DENSE] = { 1, 0, 0, 0, 0, 0 };

int32_t fp_prefs_top_words(const fp_prefs *p, fp_prefs_item *out, int32_t cap) {
    int32_t n = 0;
    if (cap < 1) return 0;
    for (int32_t i = 0; i < p->n_words; i++) {
        float w = p->w[p->word_slot[i]];
        if (w == 0.0f || (n == cap && fabsf(out[n - 1].weight) >= fabsf(w))) continue;
        int32_t at = n < cap ? n++ : cap - 1;   /* kept in falling |weight| */
        while (at > 0 && fabsf(out[at - 1].weight) < fabsf(w)) { out[at] = out[at - 1]; at--; }
        snprintf(out[at].name, sizeof out[at].name, "%s", p->word[i]);
        out[at].weight = w;
    }
    return n;
}

int32_t fp_prefs_features(const fp_prefs *p, fp_prefs_item *out, int32_t cap) {
    int32_t n = 0;
    for (int32_t k = 0; k < N_DENSE && n < cap; k++) {
        snprintf(out[n].name, sizeof out[n].name, "%s", DENSE_NAME[k]);
        out[n++].weight = p->w[k] - DENSE_START[k];
    }
    if (n < cap) {   /* the meaning-vector weights, as one length */
        double sq = 0;
        for (int d = 0; d < FP_TOKVEC; d++) sq += (double)p->w[VEC0 + d] * p->w[VEC0 + d];
        snprintf(out[n].name, sizeof out[n].name, "word meaning (%d dims)", FP_TOKVEC);
        out[n++].weight = (float)sqrt(sq);
    }
    return n;
}
