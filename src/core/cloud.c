/*
 * cloud.c — the candidates of a fork: whole words, merged, with previews.
 *
 * A person should see words, not sub-word tokens. On a 512-token vocabulary
 * " dog", " doll" and " duck" may all begin with " d", so the cloud is grown
 * as a small beam over token paths:
 *
 *   1. Start from the most probable next tokens (the sampler chain's view).
 *   2. Each step decodes the last token of every open path in ONE batch, one
 *      sequence per path (prefix cells shared with the trunk by seq_cp).
 *   3. After a path, the probability that the word ends there is the mass of
 *      tokens that start a new word (a space, punctuation, end of text):
 *          P(word) += P(path) * P(next token starts a word | path)
 *      and the path extends with its most probable in-word tokens:
 *          P(path + t) = P(path) * P(t | path).
 *   4. Paths that spell the same word (also with or without a leading space)
 *      are merged: their probabilities add up; the most probable spelling is
 *      the representative whose tokens get committed.
 *   5. A path whose probability is below the k-th best word found so far can
 *      never enter the top k (P(word) <= P(path)), so it is pruned.
 *
 * Then every shown word gets a greedy preview of up to L tokens; all words
 * advance together, one decode per step, and a preview stops early at the end
 * of a sentence (or of a phrase, once it has a few tokens).
 *
 * The KV cells of the shown words and their previews stay in scratch
 * sequences ("live branches") so that committing decodes nothing again.
 * The buffers live in a workspace allocated once per session and settings;
 * each fork clones the session's sampler chain once per shown word for its
 * preview (llama_sampler_clone: the penalty window and a pointer to the
 * learned bias), and nothing is allocated per beam step.
 *
 * Every word and preview is valid UTF-8: a token that would make a path's
 * bytes invalid is never added, and a word closes only on a whole character.
 */
#include "core/internal.h"

#include <assert.h>
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define EXT_PER_PATH 8          /* in-word continuations tried per path and step */
#define MIN_PATH_P 1e-6         /* paths below this are not worth a decode */
#define MIN_NARROW_P 1e-12      /* ... unless a typed prefix asks for them: the person named the word */

typedef struct path {
    int32_t tok[FP_MAX_PATH];
    int32_t n;
    double  p;                  /* product of token probabilities */
    char    text[FP_MAX_TEXT];
    int32_t len;
    int32_t seq;                /* holds the KV of tok[0..n-1) (and tok[n-1] once decoded) */
    int32_t parent;             /* index in the previous frontier, for seq inheritance */
    bool    force_close;        /* a punctuation word or token granularity: closes after one step */
} path;

typedef struct word {
    char    key[FP_MAX_TEXT];   /* merge key: the text without leading whitespace */
    double  p;                  /* summed over merged paths */
    double  rep_p;              /* closing probability of the representative path */
    int32_t tok[FP_MAX_PATH];
    int32_t n;
    char    text[FP_MAX_TEXT];
    int32_t seq;                /* sequence holding the representative's KV, -1 if none */
    int32_t row;                /* logits row after the representative, -1 for end of text */
    bool    eog;
    bool    used;
} word;

struct fp_cloud_ws {
    int32_t k, beam, n_vocab, n_seq;
    path   *cur, *next;         /* frontier [beam], candidates [beam * EXT_PER_PATH] */
    word   *words;              /* [wcap] */
    int32_t wcap;
    float  *rows;               /* [wcap][n_vocab] logits after each word */
    bool   *row_used;
    float  *probs;              /* [n_vocab] */
    fp_dist pdist;              /* a preview step's distribution */
    int32_t *ref;               /* [n_seq]: references to each sequence */
    int32_t *order;             /* [wcap] */
    /* live branches of the shown candidates */
    int32_t *live_seq, *live_dec;
    float   *live_logits;       /* [k][n_vocab] */
    char     probe[2 * FP_MAX_TEXT]; /* a path's key and one more piece, checked against a prefix */
    float   *gmask;             /* [n_vocab]: a path's logits with what the grammar forbids at -inf */
    llama_token_data *gtd;      /* [n_vocab] for the grammar's apply */
    const float *fork_logits;   /* the fork's logits, for seed_floor */
    float   seed_floor;         /* a sparse (remote) row's unlisted share: never a seed */
};

/* ------------------------------------------------------------ workspace */

void fpi_cloud_free(fp_session *s) {
    struct fp_cloud_ws *w = s->cloud;
    if (!w) return;
    free(w->cur); free(w->next); free(w->words); free(w->rows); free(w->row_used);
    free(w->probs); free(w->ref); free(w->order);
    fpi_dist_free(&w->pdist);
    free(w->live_seq); free(w->live_dec); free(w->live_logits);
    free(w->gmask); free(w->gtd);
    free(w);
    s->cloud = NULL;
}

static fp_status ws_ensure(fp_session *s, fp_error *err) {
    struct fp_cloud_ws *w = s->cloud;
    int32_t k = s->st.k, beam = s->st.beam_width;
    if (w && w->k == k && w->beam == beam) return FP_OK;
    fpi_cloud_drop_live(s);
    fpi_cloud_free(s);
    w = calloc(1, sizeof *w);
    if (!w) return fpi_fail(err, FP_ERR_NOMEM, "out of memory");
    s->cloud = w;
    w->k = k; w->beam = beam; w->n_vocab = s->n_vocab;
    w->n_seq = (int32_t)s->engine->n_seq_max;
    w->wcap = 2 * k + 4;
    size_t V = (size_t)s->n_vocab;
    w->cur = calloc((size_t)beam, sizeof *w->cur);
    w->next = calloc((size_t)beam * EXT_PER_PATH + (size_t)beam, sizeof *w->next);
    w->words = calloc((size_t)w->wcap, sizeof *w->words);
    w->rows = malloc(sizeof(float) * V * (size_t)w->wcap);
    w->row_used = calloc((size_t)w->wcap, sizeof *w->row_used);
    w->probs = malloc(sizeof(float) * V);
    w->ref = calloc((size_t)w->n_seq, sizeof *w->ref);
    w->order = malloc(sizeof(int32_t) * (size_t)w->wcap);
    w->live_seq = malloc(sizeof(int32_t) * (size_t)k);
    w->live_dec = malloc(sizeof(int32_t) * (size_t)k);
    w->live_logits = malloc(sizeof(float) * V * (size_t)k);
    if (s->grammar) {
        w->gmask = malloc(sizeof(float) * V);
        w->gtd = malloc(sizeof(llama_token_data) * V);
    }
    fp_status dst = fpi_dist_init(&w->pdist, s->n_vocab);
    if (!w->cur || !w->next || !w->words || !w->rows || !w->row_used || !w->probs || !w->ref ||
        !w->order || !w->live_seq || !w->live_dec || !w->live_logits || dst != FP_OK || (s->grammar && (!w->gmask || !w->gtd))) {
        fpi_cloud_free(s);
        return fpi_fail(err, FP_ERR_NOMEM, "out of memory for the cloud workspace");
    }
    s->live.seq = w->live_seq;
    s->live.n_decoded_preview = w->live_dec;
    s->live.word_logits = w->live_logits;
    return FP_OK;
}

/* ------------------------------------------------------ scratch sequences */

static int32_t scratch_alloc(fp_session *s) {
    int32_t q = fpi_seq_alloc(s->engine, &s->user);
    if (q >= 0) s->scratch[s->n_scratch++] = q;
    return q;
}

static void scratch_free(fp_session *s, int32_t q) {
    for (int32_t i = 0; i < s->n_scratch; i++) {
        if (s->scratch[i] == q) {
            s->scratch[i] = s->scratch[--s->n_scratch];
            fpi_seq_free(s->engine, q);
            return;
        }
    }
}

void fpi_cloud_drop_live(fp_session *s) {
    while (s->n_scratch > 0) scratch_free(s, s->scratch[0]);
    s->live.valid = false;
    s->live.fork_id = -1;
}

static void unref(fp_session *s, int32_t q) {
    if (q < 0) return;
    if (--s->cloud->ref[q] == 0) scratch_free(s, q);
}

/* ------------------------------------------------------------ text rules */

/* The merge key skips leading whitespace: " dog" and "dog" are one word.
 * A line break alone is a word too (a new paragraph), so it keeps its text. */
static const char *strip_lead(const char *t) {
    const char *u = t;
    while (*u == ' ' || *u == '\t' || *u == '\n' || *u == '\r') u++;
    return *u || !strchr(t, '\n') ? u : t;
}

/* The merge key of a word: without the white space around it (" dog", "dog"
 * and "dog " are one word, whichever side the vocabulary puts the mark on). */
static void word_key(const char *text, char out[FP_MAX_TEXT]) {
    const char *u = strip_lead(text);
    size_t n = strlen(u);
    while (n > 0 && (u[n - 1] == ' ' || u[n - 1] == '\t')) n--;
    if (n == 0 && *u) n = strlen(u); /* all white space: keep it */
    memcpy(out, u, n);
    out[n] = 0;
}

/* Compares key with prefix character by character, folding case (Latin,
 * Greek, Cyrillic: fpi_cp_fold), so "п" narrows to "Привет" as "d" to
 * "Dog". Returns the prefix bytes matched; *key_end says the key ran out
 * first, *key_partial that it ended inside a character whose bytes so far
 * agree with the prefix's next character (a byte-level path on its way). */
static size_t fold_match(const char *key, const char *prefix, bool *key_end, bool *key_partial) {
    size_t kl = strlen(key), pl = strlen(prefix), ki = 0, pi = 0;
    *key_end = *key_partial = false;
    while (pi < pl) {
        if (ki == kl) { *key_end = true; return pi; }
        uint32_t kc = 0, pc = 0;
        int kn = fpi_utf8_decode(key + ki, kl - ki, &kc), pn = fpi_utf8_decode(prefix + pi, pl - pi, &pc);
        if (pn <= 0) return pi;                      /* the prefix is checked valid: cannot happen */
        if (kn == -1) {
            /* an unfinished character: its bytes must begin the prefix's
             * character in one of its cases */
            char enc[2][4];
            uint32_t v[2] = { pc, fpi_cp_fold(pc) };
            for (int i = 0; i < 2; i++) {
                if (i == 1 && v[1] == pc) break;
                size_t n = 0;
                uint32_t c = v[i];
                if (c < 0x80) enc[i][n++] = (char)c;
                else if (c < 0x800) { enc[i][n++] = (char)(0xC0 | c >> 6); enc[i][n++] = (char)(0x80 | (c & 0x3F)); }
                else if (c < 0x10000) { enc[i][n++] = (char)(0xE0 | c >> 12); enc[i][n++] = (char)(0x80 | (c >> 6 & 0x3F)); enc[i][n++] = (char)(0x80 | (c & 0x3F)); }
                else { enc[i][n++] = (char)(0xF0 | c >> 18); enc[i][n++] = (char)(0x80 | (c >> 12 & 0x3F)); enc[i][n++] = (char)(0x80 | (c >> 6 & 0x3F)); enc[i][n++] = (char)(0x80 | (c & 0x3F)); }
                if (kl - ki <= n && memcmp(key + ki, enc[i], kl - ki) == 0) { *key_end = *key_partial = true; return pi; }
            }
            return pi;
        }
        if (kn == 0) return pi;
        if (fpi_cp_fold(kc) != fpi_cp_fold(pc)) return pi;
        ki += (size_t)kn;
        pi += (size_t)pn;
    }
    return pi;
}

/* True when one of a, b is a prefix of the other (case folded): a path can
 * still become, or already is, a word starting with the prefix. */
static bool prefix_compatible(const char *key, const char *prefix) {
    bool end, partial;
    size_t m = fold_match(key, prefix, &end, &partial);
    return m == strlen(prefix) || end;
}

static bool starts_with_ci(const char *key, const char *prefix) {
    bool end, partial;
    return fold_match(key, prefix, &end, &partial) == strlen(prefix);
}

/* ------------------------------------------------------------ word table */

static int32_t row_alloc(struct fp_cloud_ws *w) {
    for (int32_t i = 0; i < w->wcap; i++) if (!w->row_used[i]) { w->row_used[i] = true; return i; }
    return -1; /* cannot happen: one row per word slot */
}

static void word_release(fp_session *s, word *wd) {
    unref(s, wd->seq);
    if (wd->row >= 0) s->cloud->row_used[wd->row] = false;
    wd->used = false;
}

/* The k-th largest word probability so far (0 if fewer than k words). */
static double kth_word_p(struct fp_cloud_ws *w, int32_t k) {
    double top[64]; /* descending; k <= 64 (fp_settings_validate) */
    int32_t n = 0;
    for (int32_t i = 0; i < w->wcap; i++) {
        if (!w->words[i].used) continue;
        double p = w->words[i].p;
        int32_t j;
        if (n < k) j = n++;
        else if (p > top[k - 1]) j = k - 1;
        else continue;
        while (j > 0 && top[j - 1] < p) { top[j] = top[j - 1]; j--; }
        top[j] = p;
    }
    return n < k ? 0.0 : top[k - 1];
}

/* Records that path pa ends a word with probability pw; row is the logits
 * after the path (NULL for the end-of-text candidate). */
static void word_close(fp_session *s, const path *pa, double pw, const float *row, bool eog) {
    struct fp_cloud_ws *w = s->cloud;
    /* no candidate ends in control text, or in the start of one */
    if (!eog && fpi_control_suffix(s->engine->model, pa->text, (size_t)pa->len, NULL) > 0) return;
    char key[FP_MAX_TEXT] = "";
    if (!eog) word_key(pa->text, key);
    word *hit = NULL, *free_slot = NULL, *weakest = NULL;
    for (int32_t i = 0; i < w->wcap; i++) {
        word *wd = &w->words[i];
        if (!wd->used) { if (!free_slot) free_slot = wd; continue; }
        if (wd->eog == eog && strcmp(wd->key, key) == 0) { hit = wd; break; }
        if (!weakest || wd->p < weakest->p) weakest = wd;
    }
    if (hit) {
        hit->p += pw;
        if (pw <= hit->rep_p) return;
        /* a more probable spelling becomes the representative */
        unref(s, hit->seq);
    } else {
        if (!free_slot) {
            if (weakest->p >= pw) return; /* the table keeps the 2k+4 most probable words */
            word_release(s, weakest);
            free_slot = weakest;
        }
        hit = free_slot;
        memset(hit, 0, sizeof *hit);
        hit->used = true;
        hit->eog = eog;
        hit->row = -1;
        hit->seq = -1;
        snprintf(hit->key, sizeof hit->key, "%s", key);
        hit->p = pw;
    }
    hit->rep_p = pw;
    hit->n = pa->n;
    memcpy(hit->tok, pa->tok, sizeof(int32_t) * (size_t)pa->n);
    memcpy(hit->text, pa->text, (size_t)pa->len + 1);
    hit->seq = eog ? -1 : pa->seq;
    if (hit->seq >= 0) w->ref[hit->seq]++;
    if (row) {
        if (hit->row < 0) hit->row = row_alloc(w);
        memcpy(w->rows + (size_t)hit->row * (size_t)w->n_vocab, row, sizeof(float) * (size_t)w->n_vocab);
    }
}

/* ---------------------------------------------------------- the beam */

/* With a grammar: the logits after path pa, with what the grammar forbids
 * there at -inf (a clone of the session's grammar, which stands at the
 * fork, that has seen the path's tokens). False when it allows nothing.
 * O(n_vocab) per call. */
static bool grammar_mask(fp_session *s, const path *pa, const float *row, float *out) {
    struct fp_cloud_ws *w = s->cloud;
    struct llama_sampler *g = llama_sampler_clone(llama_sampler_chain_get(s->chain, 0));
    if (!g) return false;
    for (int32_t i = 0; i < pa->n; i++) llama_sampler_accept(g, pa->tok[i]);
    for (int32_t t = 0; t < w->n_vocab; t++) w->gtd[t] = (llama_token_data){ t, row[t], 0.0f };
    llama_token_data_array a = { w->gtd, (size_t)w->n_vocab, -1, false };
    llama_sampler_apply(g, &a);
    llama_sampler_free(g);
    bool any = false;
    for (size_t i = 0; i < a.size; i++) {
        out[a.data[i].id] = a.data[i].logit;
        any |= isfinite(a.data[i].logit) != 0;
    }
    return any;
}

static int cmp_path_desc(const void *a, const void *b) {
    double x = ((const path *)a)->p, y = ((const path *)b)->p;
    return x < y ? 1 : (x > y ? -1 : 0);
}

/* Appends token t to path pa's text; false if the text would overflow. */
static bool path_push(const fp_model *m, path *pa, int32_t t) {
    int32_t n;
    const char *pc = fpi_piece(m, t, &n);
    if (pa->n >= FP_MAX_PATH || pa->len + n >= FP_MAX_TEXT) return false;
    memcpy(pa->text + pa->len, pc, (size_t)n);
    pa->len += n;
    pa->text[pa->len] = 0;
    pa->tok[pa->n++] = t;
    return true;
}

/* Does the text end where a new word may begin? After white space (also
 * the mark a piece carries at its end), punctuation, or nothing at all.
 * Otherwise a token without a word mark would glue onto the last word:
 * "n" after "there was a" makes "an", a fragment as a candidate. */
static bool at_word_boundary(const fp_session *s) {
    if (s->text_len == 0) return true;
    unsigned char c = (unsigned char)s->text[s->text_len - 1];
    if (c == ' ' || c == '\n' || c == '\t' || c == '\r') return true;
    return c < 0x80 && !((c | 0x20) >= 'a' && (c | 0x20) <= 'z') && !(c >= '0' && c <= '9') && c != '\'' && c != '-' && c != '_';
}

/* Opens path i of the frontier with token t, if t may start a candidate. */
static bool seed_one(fp_session *s, path *pa, int32_t t, double p, const char *prefix, bool token_mode) {
    const fp_model *m = s->engine->model;
    uint16_t f = m->tok_flags[t];
    memset(pa, 0, sizeof *pa);
    pa->seq = -1;
    pa->parent = -1;
    pa->p = p;
    if (!fpi_tok_fits(m, t, "", 0) || !path_push(m, pa, t)) return false;
    /* narrowed: the token must hold the start of the word (a bare space
     * would crowd out the few tokens that begin it) */
    if (*prefix && (!*strip_lead(pa->text) || !prefix_compatible(strip_lead(pa->text), prefix))) return false;
    /* a token shown alone must be a word by itself: not a bare space, not half a character */
    if (token_mode && (!*strip_lead(pa->text) || fp_utf8_complete_prefix(pa->text, (size_t)pa->len) != (size_t)pa->len))
        return false;
    pa->force_close = token_mode || (f & FP_TOK_PUNCT_ONLY);
    return true;
}

/* Seeds the frontier from the fork's distribution: its most probable tokens
 * (the sorted head of it), or, narrowed by a typed prefix, the most probable
 * tokens that agree with the prefix anywhere in the distribution (a letter
 * of another script must still find its words: O(n) over the kept tokens).
 * At a word boundary the model's text could only glue a token without a
 * word mark onto the last word, so in word and phrase granularity only
 * tokens that start a word are seeds, unless the model itself is inside a
 * word here (its most probable token has no mark: a fork forced there). */
static int32_t seed_frontier(fp_session *s, const char *prefix, bool token_mode) {
    struct fp_cloud_ws *w = s->cloud;
    const fp_model *m = s->engine->model;
    int32_t n_open = 0;
    int32_t limit = token_mode ? s->st.k : s->st.beam_width;
    bool need_start = !token_mode && s->dist.n > 0 && !at_word_boundary(s) &&
                      (m->tok_flags[s->dist.items[0].token] & FP_TOK_WORD_START);
    int32_t scan = *prefix ? s->dist.n : 8 * limit + 64;
    int32_t weakest = -1;
    for (int32_t i = 0; i < s->dist.n && i < scan; i++) {
        int32_t t = s->dist.items[i].token;
        double p = s->dist.items[i].p;
        if (p < (*prefix ? MIN_NARROW_P : MIN_PATH_P)) {
            if (!*prefix) break;   /* the sorted head: nothing more probable follows */
            continue;
        }
        uint16_t f = m->tok_flags[t];
        if (f & FP_TOK_CONTROL) continue;
        if (w->fork_logits[t] <= w->seed_floor) continue;   /* not listed by the remote server */
        if (f & FP_TOK_EOG) {
            if (!*prefix) { path e = {0}; e.seq = -1; word_close(s, &e, p, NULL, true); }
            continue;
        }
        if (need_start && !(f & FP_TOK_WORD_START)) continue;
        if (!*prefix) {
            if (n_open < limit && seed_one(s, &w->cur[n_open], t, p, prefix, token_mode)) n_open++;
            if (n_open == limit) break;
            continue;
        }
        /* narrowed: keep the `limit` most probable agreeing tokens */
        if (n_open == limit && p <= w->cur[weakest].p) continue;
        path cand;
        if (!seed_one(s, &cand, t, p, prefix, token_mode)) continue;
        int32_t slot = n_open < limit ? n_open++ : weakest;
        w->cur[slot] = cand;
        weakest = 0;
        for (int32_t j = 1; j < n_open; j++) if (w->cur[j].p < w->cur[weakest].p) weakest = j;
    }
    if (*prefix) qsort(w->cur, (size_t)n_open, sizeof *w->cur, cmp_path_desc);
    return n_open;
}

/* One beam step: decode the frontier, close words, collect extensions.
 * Returns the number of extension candidates written to w->next. */
static fp_status beam_step(fp_session *s, int32_t n_open, int32_t depth, const char *prefix,
                           int32_t *n_next, fp_error *err) {
    struct fp_cloud_ws *w = s->cloud;
    fp_engine *e = s->engine;
    const fp_model *m = e->model;
    int32_t V = s->n_vocab;

    fpi_batch_clear(e);
    for (int32_t i = 0; i < n_open; i++) {
        path *pa = &w->cur[i];
        fpi_batch_add(e, pa->tok[pa->n - 1], fpi_kv_pos(s, s->n_past) + pa->n - 1, pa->seq, true);
    }
    fp_status st = fpi_engine_decode(e, err);
    if (st != FP_OK) return st;

    int32_t nn = 0;
    for (int32_t i = 0; i < n_open; i++) {
        path *pa = &w->cur[i];
        const float *row = fpi_engine_logits(e, i);
        if (!row) return fpi_fail(err, FP_ERR_DECODE, "no logits for branch %d", i);
        const char *key = strip_lead(pa->text);
        bool complete = fp_utf8_complete_prefix(pa->text, (size_t)pa->len) == (size_t)pa->len;
        bool prefix_ok = !*prefix || starts_with_ci(key, prefix);
        if (pa->force_close || (m->tok_flags[pa->tok[pa->n - 1]] & FP_TOK_WORD_END)) {
            /* a word by itself, or one whose last piece carries the word mark: all its mass */
            if (*key && complete && prefix_ok) word_close(s, pa, pa->p, row, false);
            continue;
        }
        const float *lg = row;
        if (s->grammar) {
            if (!grammar_mask(s, pa, row, w->gmask)) continue; /* the grammar allows nothing after it */
            lg = w->gmask;
        }
        fpi_softmax(lg, V, s->st.temperature, w->probs);
        const float floor_lg = fpi_row_floor(e, row);   /* -inf but on a remote back end */
        /* the mass of tokens that begin a new word ends this one */
        double p_end = 0.0;
        int32_t ext[EXT_PER_PATH];
        int32_t n_ext = 0;
        /* while the path is shorter than a typed prefix, only the pieces
         * that go on agreeing with it can extend it (the most probable
         * in-word tokens may all disagree: another script, a rare word) */
        size_t kl = strlen(key);
        bool narrow = *prefix && kl < strlen(prefix) && kl + FP_MAX_TEXT < sizeof w->probe;
        if (narrow) memcpy(w->probe, key, kl);
        for (int32_t t = 0; t < V; t++) {
            uint16_t f = m->tok_flags[t];
            if (f & FP_TOK_CONTROL) continue;
            if (f & FP_TOK_WORD_START) { p_end += w->probs[t]; continue; }
            if (row[t] <= floor_lg) continue;   /* its share of the unlisted mass: no path */
            if (narrow) {
                int32_t pl;
                const char *pc = fpi_piece(m, t, &pl);
                if (pl >= FP_MAX_TEXT) continue;
                memcpy(w->probe + kl, pc, (size_t)pl);
                w->probe[kl + (size_t)pl] = 0;
                if (!prefix_compatible(w->probe, prefix)) continue;
            }
            /* keep the EXT_PER_PATH most probable in-word tokens (insertion into a tiny sorted list) */
            if (n_ext < EXT_PER_PATH || w->probs[t] > w->probs[ext[n_ext - 1]]) {
                int32_t j = n_ext < EXT_PER_PATH ? n_ext++ : EXT_PER_PATH - 1;
                while (j > 0 && w->probs[ext[j - 1]] < w->probs[t]) { ext[j] = ext[j - 1]; j--; }
                ext[j] = t;
            }
        }
        if (*key && complete && prefix_ok && p_end > 0) word_close(s, pa, pa->p * p_end, row, false);
        /* as long as words get: a path that has not reached a word boundary
         * by now is a fragment ("beautifu"), never a candidate */
        if (depth >= s->st.max_word_tokens) continue;
        for (int32_t j = 0; j < n_ext; j++) {
            double pc = pa->p * w->probs[ext[j]];
            if (pc < (*prefix ? MIN_NARROW_P : MIN_PATH_P)) break;
            path *c = &w->next[nn];
            *c = *pa;
            c->p = pc;
            c->parent = i;
            c->seq = -1;
            int32_t tail = c->len - (int32_t)fp_utf8_complete_prefix(c->text, (size_t)c->len);
            if (!fpi_tok_fits(m, ext[j], c->text + c->len - tail, tail) || !path_push(m, c, ext[j])) continue;
            if (*prefix && !prefix_compatible(strip_lead(c->text), prefix)) continue;
            nn++;
        }
    }
    *n_next = nn;
    return FP_OK;
}

/* Chooses the next frontier from the extensions and gives each a sequence:
 * the first surviving child of a path inherits its sequence, the others get
 * a copy (seq_cp tags the same cells; nothing is decoded). */
static int32_t next_frontier(fp_session *s, int32_t n_open, int32_t n_next) {
    struct fp_cloud_ws *w = s->cloud;
    fp_engine *mem_e = s->engine;
    qsort(w->next, (size_t)n_next, sizeof *w->next, cmp_path_desc);
    double bar = kth_word_p(w, s->st.k);
    int32_t kept = 0;
    for (int32_t i = 0; i < n_next && kept < s->st.beam_width; i++) {
        path *c = &w->next[i];
        if (c->p <= bar) break; /* cannot beat the k-th word any more */
        path *parent = &w->cur[c->parent];
        if (parent->parent != -2) {
            c->seq = parent->seq;      /* inherit */
            w->ref[c->seq]++;
            parent->parent = -2;       /* mark: its sequence has been handed on */
        } else {
            int32_t q = scratch_alloc(s);
            if (q < 0) continue;       /* no sequence left: the path is dropped */
            fpi_seq_cp(mem_e, parent->seq, q, -1, -1);
            c->seq = q;
            w->ref[q]++;
        }
        w->next[kept++] = *c;
    }
    /* the old frontier lets go of its sequences */
    for (int32_t i = 0; i < n_open; i++) unref(s, w->cur[i].seq);
    memcpy(w->cur, w->next, sizeof *w->cur * (size_t)kept);
    return kept;
}

static int cmp_word_desc(const void *a, const void *b, void *ctx) {
    const word *ws = ctx;
    double x = ws[*(const int32_t *)a].p, y = ws[*(const int32_t *)b].p;
    return x < y ? 1 : (x > y ? -1 : 0);
}

/* ------------------------------------------------------------ previews */

/* A preview is a promise: each one is grown with the continuation's own rule
 * (fpi_pick_next), through a clone of the session's sampler chain that has
 * seen the candidate's tokens (so penalties and the learned bias act as they
 * will), from a copy of the session's random state, and with the same
 * word-start rule after the word. Its length is capped by the room the text
 * has left (max_tokens, context), so it never promises more than will come. */

static bool preview_push(const fp_model *m, fp_candidate *c, int32_t t) {
    int32_t n;
    const char *pc = fpi_piece(m, t, &n);
    size_t len = strlen(c->preview);
    if (c->n_preview >= FP_MAX_PREVIEW || len + (size_t)n >= FP_MAX_TEXT) return false;
    memcpy(c->preview + len, pc, (size_t)n);
    c->preview[len + (size_t)n] = 0;
    c->preview_tokens[c->n_preview++] = t;
    return true;
}

/* Does the preview stop after token t? At the end of a sentence or phrase,
 * once it holds a few tokens: a lone "." says little about where a word leads. */
static bool preview_done(const fp_model *m, const fp_candidate *c, int32_t t) {
    return (m->tok_flags[t] & FP_TOK_PHRASE_END) && c->n_preview >= 4;
}

/* Keeps the first n preview tokens and rebuilds the text. */
static void preview_cut(const fp_model *m, fp_candidate *c, int32_t n) {
    c->n_preview = n;
    size_t len = 0;
    for (int32_t i = 0; i < n; i++) {
        int32_t pl;
        const char *pc = fpi_piece(m, c->preview_tokens[i], &pl);
        memcpy(c->preview + len, pc, (size_t)pl);
        len += (size_t)pl;
    }
    c->preview[len] = 0;
}

/* A preview cut by its length may end inside a word ("in the p"): drop that
 * partial word, unless it is all there is. */
static void preview_trim(const fp_model *m, fp_candidate *c) {
    int32_t cut = c->n_preview - 1;
    while (cut > 0 && !(m->tok_flags[c->preview_tokens[cut]] & FP_TOK_WORD_START) &&
           !(m->tok_flags[c->preview_tokens[cut - 1]] & FP_TOK_WORD_END))
        cut--;
    if (cut > 0) preview_cut(m, c, cut);
}

/* The next preview token of c, or -1 when the preview ends here. Greedy and
 * with no word-start rule to apply, fpi_pick_greedy finds the same token in
 * one pass over the logits (no softmax, no sort: the step's cost no longer
 * grows with the vocabulary beyond that pass); else, and whenever it cannot
 * tell, the full distribution decides. */
static int32_t preview_next(fp_session *s, const fp_candidate *c, struct llama_sampler *chain, const float *row,
                            bool word_end, uint64_t *rng) {
    struct fp_cloud_ws *w = s->cloud;
    const fp_model *m = s->engine->model;
    size_t len = strlen(c->preview);
    int32_t tail = (int32_t)(len - fp_utf8_complete_prefix(c->preview, len));
    size_t tl = strlen(c->text);
    if (word_end && tl > 0 && (c->text[tl - 1] == ' ' || c->text[tl - 1] == '\n' || c->text[tl - 1] == '\t'))
        word_end = false; /* the word ends in its mark: whatever comes next starts a new one */
    int32_t t = FPI_PICK_UNDECIDED;
    if (!rng && !word_end)
        t = fpi_pick_greedy(m, &w->pdist, row, s->n_vocab, chain, s->st.temperature, c->preview + len - tail, tail);
    if (t == FPI_PICK_UNDECIDED) {
        fpi_dist_compute(&w->pdist, row, s->n_vocab, chain, 2);
        t = fpi_pick_next(m, &w->pdist, word_end, rng, c->preview + len - tail, tail);
    }
#ifdef FP_CHECKS
    else { /* the test build checks every fast pick against the full path */
        fpi_dist_compute(&w->pdist, row, s->n_vocab, chain, 2);
        assert(fpi_pick_next(m, &w->pdist, false, NULL, c->preview + len - tail, tail) == t);
    }
#endif
    if (t < 0 || (m->tok_flags[t] & FP_TOK_EOG)) return -1;
    return t;
}

void fpi_preview_words(const fp_model *m, fp_candidate *c) {
    c->n_preview_words = 0;
    if (c->is_eog || c->n_preview <= 0) return;
    int32_t tok_off[FP_MAX_PREVIEW + 1], len = 0;
    for (int32_t t = 0; t < c->n_preview; t++) {
        int32_t pl;
        fpi_piece(m, c->preview_tokens[t], &pl);
        tok_off[t] = len;
        len += pl;
    }
    const char *text = c->preview;
    if ((size_t)len != strlen(text)) len = (int32_t)strlen(text);
    /* a word may only begin where the text taken before it ends on a whole
     * character and not in the start of a control text */
    char taken[FP_MAX_TEXT * 2];
    size_t cl = strlen(c->text);
    memcpy(taken, c->text, cl);
    int32_t n = 0;
    for (int32_t p = 0; p < len && n < FP_MAX_PREVIEW;) {
        int32_t q = p;                                     /* a word: white space, then non-space */
        while (q < len && (text[q] == ' ' || text[q] == '\n' || text[q] == '\t' || text[q] == '\r')) q++;
        if (q == len) break;                               /* trailing white space is no word */
        int32_t t = 0;
        while (t + 1 < c->n_preview && tok_off[t + 1] <= p) t++;
        memcpy(taken + cl, text, (size_t)tok_off[t]);
        size_t tn = cl + (size_t)tok_off[t];
        bool whole = fp_utf8_complete_prefix(taken, tn) == tn && fpi_control_suffix(m, taken, tn, NULL) == 0;
        if (n == 0 || (c->preview_word_tok[n - 1] != t && whole)) {
            c->preview_word_tok[n] = (uint8_t)t;
            c->preview_word_byte[n] = (uint8_t)tok_off[t];
            n++;
        }
        while (q < len && !(text[q] == ' ' || text[q] == '\n' || text[q] == '\t' || text[q] == '\r')) q++;
        p = q;
    }
    if (n > 0) c->preview_word_tok[0] = 0, c->preview_word_byte[0] = 0;
    c->n_preview_words = n;
}

static fp_status compute_previews(fp_session *s, fp_candidate *out, int32_t n_out, fp_error *err) {
    struct fp_cloud_ws *w = s->cloud;
    fp_engine *e = s->engine;
    const fp_model *m = e->model;
    int32_t V = s->n_vocab;
    struct llama_sampler *chain[64] = {0};
    uint64_t rng[64];
    int32_t lim[64];
    bool active[64] = {0};
    int32_t n_active = 0;
    const bool word_end = s->st.granularity != FP_GRAN_TOKEN;
    const bool sample = s->st.sample_auto;
    fp_status st = FP_OK;
    for (int32_t i = 0; i < n_out; i++) {
        fp_candidate *c = &out[i];
        w->live_dec[i] = 0;
        lim[i] = fpi_room(s, s->n_path + c->n_tokens);
        if (lim[i] > s->st.lookahead) lim[i] = s->st.lookahead;
        if (c->is_eog || lim[i] == 0) continue;
        chain[i] = llama_sampler_clone(s->chain);
        if (!chain[i]) { st = fpi_fail(err, FP_ERR_NOMEM, "out of memory for a preview"); goto done; }
        for (int32_t j = 0; j < c->n_tokens; j++) llama_sampler_accept(chain[i], c->tokens[j]);
        rng[i] = s->rng;
        int32_t t = preview_next(s, c, chain[i], w->live_logits + (size_t)i * (size_t)V, word_end, sample ? &rng[i] : NULL);
        if (t < 0 || !preview_push(m, c, t)) continue;
        llama_sampler_accept(chain[i], t);
        if (preview_done(m, c, t) || c->n_preview >= lim[i] || w->live_seq[i] < 0 ||
            fpi_control_suffix(m, c->preview, strlen(c->preview), NULL) > 0)
            continue;
        active[i] = true;
        n_active++;
    }
    int32_t idx[64];
    while (n_active > 0) {
        fpi_batch_clear(e);
        int32_t nb = 0;
        for (int32_t i = 0; i < n_out; i++) {
            if (!active[i]) continue;
            fp_candidate *c = &out[i];
            fpi_batch_add(e, c->preview_tokens[c->n_preview - 1], fpi_kv_pos(s, s->n_past) + c->n_tokens + c->n_preview - 1,
                         w->live_seq[i], true);
            idx[nb++] = i;
        }
        if ((st = fpi_engine_decode(e, err)) != FP_OK) goto done;
        for (int32_t b = 0; b < nb; b++) {
            int32_t i = idx[b];
            fp_candidate *c = &out[i];
            w->live_dec[i]++;
            const float *row = fpi_engine_logits(e, b);
            int32_t t = row ? preview_next(s, c, chain[i], row, false, sample ? &rng[i] : NULL) : -1;
            bool ended = t < 0 || !preview_push(m, c, t);
            if (!ended) llama_sampler_accept(chain[i], t);
            ended = ended || preview_done(m, c, t) || fpi_control_suffix(m, c->preview, strlen(c->preview), NULL) > 0;
            if (ended || c->n_preview >= lim[i]) { active[i] = false; n_active--; }
            if (!ended && c->n_preview >= lim[i]) preview_trim(m, c);
        }
    }
    /* a preview shows whole characters only; the branch holds no more than it shows */
    fp_engine *mem_e = e;
    for (int32_t i = 0; i < n_out; i++) {
        fp_candidate *c = &out[i];
        while (c->n_preview > 0 && (fp_utf8_complete_prefix(c->preview, strlen(c->preview)) != strlen(c->preview) ||
                                    fpi_control_suffix(m, c->preview, strlen(c->preview), NULL) > 0))
            preview_cut(m, c, c->n_preview - 1); /* and never the start of a control text */
        if (w->live_dec[i] > c->n_preview) {
            w->live_dec[i] = c->n_preview;
            if (w->live_seq[i] >= 0) fpi_seq_rm(mem_e, w->live_seq[i], fpi_kv_pos(s, s->n_past) + c->n_tokens + c->n_preview, -1);
        }
        fpi_preview_words(m, c);
    }
done:
    for (int32_t i = 0; i < n_out; i++) if (chain[i]) llama_sampler_free(chain[i]);
    return st;
}

/* ------------------------------------------------------------- compute */

fp_status fpi_cloud_compute(fp_session *s, const float *logits, const char *prefix,
                           fp_candidate *out, int32_t *n_out, float *other, fp_error *err) {
    fp_status st = ws_ensure(s, err);
    if (st != FP_OK) return st;
    struct fp_cloud_ws *w = s->cloud;
    fp_engine *e = s->engine;
    fp_engine *mem_e = e;
    int32_t V = s->n_vocab;
    bool token_mode = s->st.granularity == FP_GRAN_TOKEN;
    if (!prefix) prefix = "";

    fpi_cloud_drop_live(s);
    memset(w->ref, 0, sizeof(int32_t) * (size_t)w->n_seq);
    for (int32_t i = 0; i < w->wcap; i++) { w->words[i].used = false; w->row_used[i] = false; }
    *n_out = 0;
    *other = 1.0f;

    fpi_dist_compute(&s->dist, logits, V, s->chain, 8 * s->st.beam_width + 64);
    w->fork_logits = logits;
    w->seed_floor = fpi_row_floor(e, logits);
    int32_t n_open = seed_frontier(s, prefix, token_mode);

    /* every first-step path gets its own sequence sharing the trunk's cells */
    int32_t kept = 0;
    for (int32_t i = 0; i < n_open; i++) {
        int32_t q = scratch_alloc(s);
        if (q < 0) break;
        fpi_seq_cp(mem_e, s->trunk_seq, q, -1, -1);
        w->cur[kept] = w->cur[i];
        w->cur[kept].seq = q;
        w->ref[q] = 1;
        kept++;
    }
    if (kept == 0 && n_open > 0) return fpi_fail(err, FP_ERR_CAPACITY, "no free sequences for the branches of a fork");
    n_open = kept;

    for (int32_t depth = 1; n_open > 0; depth++) {
        int32_t n_next = 0;
        st = beam_step(s, n_open, depth, prefix, &n_next, err);
        if (st != FP_OK) { fpi_cloud_drop_live(s); return st; }
        n_open = next_frontier(s, n_open, n_next);
    }

    /* the shown words: the k most probable */
    int32_t nw = 0;
    for (int32_t i = 0; i < w->wcap; i++) if (w->words[i].used) w->order[nw++] = i;
    qsort_r(w->order, (size_t)nw, sizeof(int32_t), cmp_word_desc, w->words);
    if (nw > s->st.k) nw = s->st.k;
    double shown = 0.0;
    for (int32_t r = 0; r < nw; r++) {
        word *wd = &w->words[w->order[r]];
        fp_candidate *c = &out[r];
        memset(c, 0, sizeof *c);
        snprintf(c->text, sizeof c->text, "%s", wd->text);
        memcpy(c->tokens, wd->tok, sizeof(int32_t) * (size_t)wd->n);
        c->n_tokens = wd->eog ? 0 : wd->n;
        c->prob = (float)wd->p;
        c->pref = c->prob;
        c->is_eog = wd->eog;
        shown += wd->p;
        if (wd->row >= 0)
            memcpy(w->live_logits + (size_t)r * (size_t)V, w->rows + (size_t)wd->row * (size_t)V, sizeof(float) * (size_t)V);
        /* one sequence per shown word: a shared one is copied up to the word's end */
        int32_t q = wd->seq;
        for (int32_t r2 = 0; r2 < r && q >= 0; r2++) {
            if (w->live_seq[r2] == q) {
                int32_t nq = scratch_alloc(s);
                if (nq >= 0) fpi_seq_cp(mem_e, q, nq, 0, fpi_kv_pos(s, s->n_past) + wd->n);
                q = nq;
                break;
            }
        }
        w->live_seq[r] = q;
    }
    /* each shown word's sequence ends with the word: drop longer paths' cells,
     * and give back every sequence no shown word holds */
    for (int32_t r = 0; r < nw; r++)
        if (w->live_seq[r] >= 0) fpi_seq_rm(mem_e, w->live_seq[r], fpi_kv_pos(s, s->n_past) + out[r].n_tokens, -1);
    for (int32_t i = s->n_scratch - 1; i >= 0; i--) {
        int32_t q = s->scratch[i];
        bool held = false;
        for (int32_t r = 0; r < nw; r++) held |= w->live_seq[r] == q;
        if (!held) scratch_free(s, q);
    }
    *n_out = nw;
    *other = shown >= 1.0 ? 0.0f : (float)(1.0 - shown);

    st = compute_previews(s, out, nw, err);
    if (st != FP_OK) { fpi_cloud_drop_live(s); return st; }
    s->live.valid = true;
    return FP_OK;
}

/* ------------------------------------------------------------- adoption */

fp_status fpi_cloud_adopt_live(fp_session *s, fp_session *shadow, int32_t fork_id, fp_error *err) {
    fpi_cloud_drop_live(s);
    fp_status st = ws_ensure(s, err);
    if (st != FP_OK) return st;
    int32_t n = s->forks[fork_id].n_shown;
    for (int32_t i = 0; i < shadow->n_scratch; i++) {
        int32_t q = shadow->scratch[i];
        s->engine->seq_owner[q] = &s->user;
        s->scratch[s->n_scratch++] = q;
    }
    shadow->n_scratch = 0;
    shadow->live.valid = false;
    memcpy(s->live.seq, shadow->live.seq, sizeof(int32_t) * (size_t)n);
    memcpy(s->live.n_decoded_preview, shadow->live.n_decoded_preview, sizeof(int32_t) * (size_t)n);
    memcpy(s->live.word_logits, shadow->live.word_logits, sizeof(float) * (size_t)n * (size_t)s->n_vocab);
    s->live.valid = true;
    s->live.fork_id = fork_id;
    return FP_OK;
}

void fpi_cloud_permute(fp_session *s, const int32_t *perm, int32_t n) {
    if (!s->live.valid || !s->cloud) return;
    size_t V = (size_t)s->n_vocab;
    int32_t seq[64], dec[64];
    float *rows = malloc(sizeof(float) * V * (size_t)n);
    if (!rows) { fpi_cloud_drop_live(s); return; } /* the branches are an optimisation: drop them */
    memcpy(seq, s->live.seq, sizeof(int32_t) * (size_t)n);
    memcpy(dec, s->live.n_decoded_preview, sizeof(int32_t) * (size_t)n);
    memcpy(rows, s->live.word_logits, sizeof(float) * V * (size_t)n);
    for (int32_t i = 0; i < n; i++) {
        s->live.seq[i] = seq[perm[i]];
        s->live.n_decoded_preview[i] = dec[perm[i]];
        memcpy(s->live.word_logits + V * (size_t)i, rows + V * (size_t)perm[i], sizeof(float) * V);
    }
    free(rows);
}
