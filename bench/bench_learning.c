/*
 * bench_learning.c — does Forkpoint learn a person's preferences? Simulated
 * users with hidden, consistent tastes write stories on stories260K.
 *
 * A simulated user scores every candidate of a fork with a hidden utility
 *
 *     u(c) = log p_model(c) + bonus(c)
 *
 * and picks the best. Three users:
 *   animals  likes animal words (+4), dislikes people words (-4);
 *   names    likes three names (+5), dislikes the other names (-3);
 *   short    likes ending sentences (+3 for . ! ?) and short words (-0.4/char);
 *   vivid    likes long words (+0.45/char), dislikes plain ones (the, and, was: -2.5).
 *
 * Phase 1 (learning, test-then-train): at each fork the preferences predict
 * before they learn from the user's pick. Reported over time: top-1
 * agreement and MRR of the learned order, against the base model's own top-1
 * and a most-frequent-choice baseline (the word this user chose most often
 * among those shown, else the model's top), all in the same run.
 *
 * Steering: a per-layer direction from the first two thirds of the
 * chosen-versus-rejected pairs (fp_steer_compute), applied at a strength
 * picked on those same pairs; reported is the held-out change of
 * log p(chosen) - log p(rejected) on the last third.
 *
 * LoRA: an adapter trained (fp_lora_train) on the user's chosen words in
 * their contexts from the same first two thirds, applied at the scale
 * fp_lora_pick_scale picks on the newest fifth of them (the validation
 * windows' decisions, not trained on); reported is the held-out change on the last
 * third, as for steering.
 *
 * Phase 2 (interventions): the same user writes on with auto-resolution on;
 * interventions per 100 generated tokens (forks the user had to decide, plus
 * undos of wrong automatic decisions) compared with the same writing
 * without learned preferences; the undo rate of automatic decisions.
 *
 * --db PATH logs the learning phase's decisions (profile = the user's name),
 * so `forkpoint learn --lora OUT --db PATH --profile NAME` can be tried on a
 * simulated person's history.
 *
 * Nothing asserts: it prints the figures and the ratios of the same run.
 */
#include "bench_util.h"
#include "forkpoint_store.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct user {
    const char *name;
    const char *const *likes;
    float like_bonus;
    const char *const *dislikes;
    float dislike_bonus;
    float stop_bonus;       /* for . ! ? */
    float per_char;         /* per character of a word */
} user;

static const char *const ANIMALS[] = { "dog", "cat", "bird", "bunny", "fish", "puppy", "kitty", "frog", "bear", "duck",
                                       "birds", "dogs", "cats", "rabbit", "lion", "mouse", "horse", "cow", "bee", "bug", NULL };
static const char *const PEOPLE[] = { "mom", "mommy", "dad", "daddy", "girl", "boy", "friend", "friends", "man", "lady",
                                      "mother", "father", "sister", "brother", "teacher", "mum", "grandma", "kids", NULL };
static const char *const LIKED_NAMES[] = { "tom", "sue", "max", NULL };
static const char *const OTHER_NAMES[] = { "lily", "tim", "ben", "timmy", "sam", "mia", "lucy", "jack", "bob", "anna", "sara", "amy", NULL };

static const char *const PLAIN[] = { "the", "a", "and", "was", "to", "her", "his", "it", "he", "she", "they", "so", NULL };

static const user USERS[] = {
    { "animals", ANIMALS, 4.0f, PEOPLE, -4.0f, 0, 0 },
    { "names", LIKED_NAMES, 5.0f, OTHER_NAMES, -3.0f, 0, 0 },
    { "short", NULL, 0, NULL, 0, 3.0f, -0.4f },
    { "vivid", NULL, 0, PLAIN, -2.5f, -1.0f, 0.45f },
};

static const char *const PROMPTS[] = {
    "Once upon a time, there was a little", "One day, a", "Once upon a time, in a big forest, there lived a",
    "Every morning,", "Once there was a happy", "Tom and Sue went to the", "Lily saw a",
};

static bool in_list(const char *const *l, const char *w) {
    for (; l && *l; l++) if (strcmp(*l, w) == 0) return true;
    return false;
}

static void key_of(const char *t, char *out, size_t cap) {
    while (*t == ' ' || *t == '\n') t++;
    size_t n = 0;
    for (; *t && n + 1 < cap; t++) out[n++] = (char)tolower((unsigned char)*t);
    out[n] = 0;
}

/* The user's hidden utility of a candidate. */
static float utility(const user *u, const fp_candidate *c) {
    char k[FP_MAX_TEXT];
    key_of(c->text, k, sizeof k);
    float v = logf(c->prob > 1e-9f ? c->prob : 1e-9f);
    if (c->is_eog) return v - 2.0f;
    if (in_list(u->likes, k)) v += u->like_bonus;
    if (in_list(u->dislikes, k)) v += u->dislike_bonus;
    if (k[0] == '.' || k[0] == '!' || k[0] == '?') v += u->stop_bonus;
    else v += u->per_char * (float)strlen(k);
    return v;
}

static int32_t user_pick(const user *u, const fp_candidate *c, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++) if (utility(u, &c[i]) > utility(u, &c[best])) best = i;
    return best;
}

static int32_t model_top(const fp_candidate *c, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++) if (c[i].prob > c[best].prob) best = i;
    return best;
}

/* Most-frequent-choice baseline: counts of words this user picked. */
typedef struct freq { char word[48][32]; int count[48]; int n; } freq;
static int freq_get(const freq *f, const char *w) {
    for (int i = 0; i < f->n; i++) if (strcmp(f->word[i], w) == 0) return f->count[i];
    return 0;
}
static void freq_add(freq *f, const char *w) {
    for (int i = 0; i < f->n; i++) if (strcmp(f->word[i], w) == 0) { f->count[i]++; return; }
    if (f->n < 48) { snprintf(f->word[f->n], 32, "%.31s", w); f->count[f->n++] = 1; }
}
static int32_t freq_pick(const freq *f, const fp_candidate *c, int32_t n) {
    int32_t best = -1, bc = 0;
    for (int32_t i = 0; i < n; i++) {
        char k[FP_MAX_TEXT];
        key_of(c[i].text, k, sizeof k);
        int cnt = freq_get(f, k);
        if (cnt > bc) { bc = cnt; best = i; }
    }
    return best >= 0 ? best : model_top(c, n);
}

typedef struct run_cfg {
    fp_engine *engine; fp_settings st; int forks;
    int train;                              /* forks learned from before the judged ones */
    int seed;                               /* the run's seed: stories and prompts */
    fp_engine *judge;                       /* set: the user judges by this engine's (the base model's) cloud */
    fp_engine *scorer;                      /* set: the written text is scored under this (base) engine */
    fp_store *log; const char *model_sha;   /* --db: the learning phase's decisions are logged here */
} run_cfg;

/* --db: logs a finished session's decisions under the user's name, as
 * `forkpoint write --db --profile NAME` would (for `forkpoint learn`). */
static void log_session(const run_cfg *rc, const user *u, const fp_session *s, int k) {
    if (!rc->log) return;
    char sid[32];
    snprintf(sid, sizeof sid, "%s-%d", u->name, k);
    fp_decision_meta meta = { .session_id = sid, .profile = u->name, .model_sha256 = rc->model_sha, .modality = "simulated" };
    fp_error err = {0};
    if (fp_store_log_events(rc->log, s, 0, &meta, &err) != fp_session_n_events(s)) {
        fprintf(stderr, "bench_learning: %s\n", err.message);
        exit(1);
    }
}

/* Chosen-versus-rejected pairs seen while learning, for the steering vector. */
typedef struct pairs_t { fp_steer_pair *p; int n, cap; } pairs_t;

static int32_t *dup_tokens(const int32_t *t, int32_t n) {
    int32_t *d = malloc(sizeof(int32_t) * (size_t)(n > 0 ? n : 1));
    if (d && n > 0) memcpy(d, t, sizeof(int32_t) * (size_t)n);
    return d;
}

/* Records the fork's context with the chosen word and the strongest rival. */
static void pairs_add(pairs_t *ps, const fp_session *s, const fp_fork *f, int32_t y) {
    int32_t r = -1;
    for (int32_t i = 0; i < f->n_candidates; i++)
        if (i != y && !f->candidates[i].is_eog && (r < 0 || f->candidates[i].prob > f->candidates[r].prob)) r = i;
    if (r < 0 || f->candidates[y].is_eog || ps->n == ps->cap) return;
    fp_steer_pair *p = &ps->p[ps->n++];
    p->n_context = fp_session_n_tokens(s);
    p->context = dup_tokens(fp_session_tokens(s), p->n_context);
    p->n_chosen = f->candidates[y].n_tokens;
    p->chosen = dup_tokens(f->candidates[y].tokens, p->n_chosen);
    p->n_rejected = f->candidates[r].n_tokens;
    p->rejected = dup_tokens(f->candidates[r].tokens, p->n_rejected);
}

static void pairs_free(pairs_t *ps) {
    for (int i = 0; i < ps->n; i++) {
        free((void *)ps->p[i].context); free((void *)ps->p[i].chosen); free((void *)ps->p[i].rejected);
    }
    ps->n = 0;
}

/* Mean log p(chosen) - log p(rejected) and the text's log p per token over
 * pairs [from, to), under the engine's adapters. */
static fp_pair_score score(fp_engine *e, const pairs_t *ps, int from, int to) {
    fp_pair_score sc;
    fp_error err = {0};
    if (fp_engine_score_pairs(e, ps->p + from, to - from, &sc, &err) != FP_OK) {
        fprintf(stderr, "bench_learning: %s\n", err.message);
        exit(1);
    }
    return sc;
}

static double margin(fp_engine *e, const pairs_t *ps, int from, int to) { return score(e, ps, from, to).margin; }

/* Steering: a direction from the first `train` pairs, strength chosen on
 * them, judged on the pairs after (held out). */
static fp_steer *steer_phase(fp_engine *e, fp_model *m, const pairs_t *ps, int train, float *strength) {
    if (ps->n < train + 20) { printf("  %-8s  steering: too few pairs (%d)\n", "", ps->n); return NULL; }
    fp_error err = {0};
    fp_steer *v = fp_steer_compute(m, ps->p, train, 1, &err);
    if (!v) { fprintf(stderr, "bench_learning: %s\n", err.message); exit(1); }
    const float strengths[] = { 0.25f, 0.5f, 1.0f, 2.0f, 4.0f };
    double base_train = margin(e, ps, 0, train), best_gain = -1e9;
    float best = 0;
    for (size_t i = 0; i < sizeof strengths / sizeof *strengths; i++) {
        fp_engine_set_steer(e, v, strengths[i], &err);
        double g = margin(e, ps, 0, train) - base_train;
        if (g > best_gain) { best_gain = g; best = strengths[i]; }
    }
    fp_engine_set_steer(e, NULL, 0, &err);
    double held0 = margin(e, ps, train, ps->n);
    fp_engine_set_steer(e, v, best, &err);
    double held1 = margin(e, ps, train, ps->n);
    fp_engine_set_steer(e, NULL, 0, &err);
    printf("  %-8s  steering (strength %.2f, from %d pairs): held-out log p(chosen) - log p(rejected) %.3f -> %.3f (%+.3f) on %d pairs\n",
           "", best, train, held0, held1, held1 - held0, ps->n - train);
    *strength = best;
    return v;   /* the caller's */
}

/* LoRA: an adapter trained on the chosen words of the first `train` pairs
 * (in their contexts), scale chosen on them, judged on the pairs after. */
static bool verbose_lora;

/* Leaves the adapter at path (the caller removes it) and its scale in
 * *scale; returns false when there is none. */
static bool lora_phase(fp_engine *e, fp_model *m, const pairs_t *ps, int train, const fp_lora_params *lp, char *path, float *scale) {
    if (ps->n < train + 20) { printf("  %-8s  LoRA: too few pairs (%d)\n", "", ps->n); return false; }
    fp_lora_example *ex = calloc((size_t)train, sizeof *ex);
    if (!ex) exit(1);
    for (int i = 0; i < train; i++)
        ex[i] = (fp_lora_example){ ps->p[i].context, ps->p[i].n_context, ps->p[i].chosen, ps->p[i].n_chosen };
    snprintf(path, 64, "/tmp/bench_learning_lora_%ld.gguf", (long)getpid());
    fp_error err = {0};
    fp_lora_report rep;
    double t0 = bench_now_ms();
    if (fp_lora_train(m, ex, train, lp, path, &rep, &err) != FP_OK) {
        printf("  %-8s  LoRA: training failed: %s\n", "", err.message);
        free(ex);
        return false;
    }
    double train_ms = bench_now_ms() - t0;
    float best = 1.0f;
    /* the scale is picked on the newest fifth of the training pairs: the text
     * of the validation windows, which the adapter was not trained on */
    int v0 = train - (train / 5 > 20 ? train / 5 : 20);
    if (v0 < 0) v0 = 0;
    if (fp_lora_pick_scale(e, path, ps->p + v0, train - v0, &best, NULL, &err) != FP_OK) { fprintf(stderr, "bench_learning: %s\n", err.message); exit(1); }
    if (verbose_lora) {
        const float scales[] = { 0.5f, 1.0f, 2.0f, 4.0f };
        for (size_t i = 0; i < sizeof scales / sizeof *scales; i++) {
            fp_engine_set_lora(e, path, scales[i], &err);
            fp_pair_score tr = score(e, ps, 0, train), ho = score(e, ps, train, ps->n);
            printf("  %-8s    scale %.1f: train margin %.3f, text %.3f; held-out margin %.3f, text %.3f\n", "", scales[i],
                   tr.margin, tr.text_logp, ho.margin, ho.text_logp);
        }
    }
    fp_engine_set_lora(e, NULL, 0, &err);
    fp_pair_score s0 = score(e, ps, train, ps->n);
    fp_engine_set_lora(e, path, best, &err);
    fp_pair_score s1 = score(e, ps, train, ps->n);
    double held0 = s0.margin, held1 = s1.margin, text0 = s0.text_logp, text1 = s1.text_logp;
    fp_engine_set_lora(e, NULL, 0, &err);
    fprintf(stderr, "bench_learning: LoRA trained in %.1f s\n", train_ms / 1e3);
    printf("  %-8s  LoRA (rank %d, %d windows + %d validation, epoch %d of %d kept, validation loss %.3f -> %.3f; scale %.2f):\n"
           "  %-8s        held-out log p(chosen) - log p(rejected) %.3f -> %.3f (%+.3f) on %d pairs\n",
           "", lp->rank, rep.n_windows, rep.n_val_windows, rep.best_epoch, rep.epochs, rep.val_first, rep.val_best,
           best, "", held0, held1, held1 - held0, ps->n - train);
    printf("  %-8s  LoRA fluency: held-out text log p per token %.3f -> %.3f (%+.3f)\n", "", text0, text1, text1 - text0);
    *scale = best;
    free(ex);
    return true;
}

static fp_session *new_session(const run_cfg *rc, int *k, fp_prefs *p) {
    fp_error err = {0};
    fp_settings st = rc->st;
    /* every story's sampling seed and prompt follow from the run's seed and
     * the story's number, so a run repeats itself exactly */
    st.seed = 1000u + (uint32_t)*k + 100003u * (uint32_t)rc->seed;
    const char *prompt = PROMPTS[(*k + rc->seed) % (int)(sizeof PROMPTS / sizeof *PROMPTS)];
    (*k)++;
    fp_session *s = fp_session_new(rc->engine, prompt, &st, &err);
    if (!s) { fprintf(stderr, "bench_learning: %s\n", err.message); exit(1); }
    if (p && fp_session_set_prefs(s, p, &err) != FP_OK) { fprintf(stderr, "bench_learning: %s\n", err.message); exit(1); }
    return s;
}

/* Words a run has shown, to tell errors on words never seen before from the
 * rest (what a word feature cannot learn, a feature that generalises could). */
#define SEEN_CAP 4096
typedef struct seen_set { char w[SEEN_CAP][24]; int n; } seen_set;

static bool seen_has(const seen_set *ss, const char *w, bool add, seen_set *mut) {
    uint32_t h = 2166136261u;
    for (const char *c = w; *c; c++) { h ^= (unsigned char)*c; h *= 16777619u; }
    for (uint32_t i = 0; i < SEEN_CAP; i++) {
        uint32_t k = (h + i) & (SEEN_CAP - 1);
        if (!ss->w[k][0]) {
            if (add && mut->n < SEEN_CAP / 2) { snprintf(mut->w[k], 24, "%s", w); mut->n++; }
            return false;
        }
        if (!strncmp(ss->w[k], w, 23)) return true;
    }
    return false;
}

static bool trace_errors;   /* --trace-errors: each judged error of the learned order */
static unsigned ablate;     /* --ablate meaning,words,context: feature groups left out */

/* What one run of phase 1 measured. */
#define CURVE_STEP 25                 /* forks per point of the learning curve */
#define MAX_CURVE 64
typedef struct learn_result {
    int judged, learned_err, model_err, mfc_err;   /* over the forks after rc->train */
    int err_new;                                   /* learned errors where the pick or the learned top was never shown before */
    double mrr;                                    /* of the learned order, same forks */
    int n_curve;                                   /* points: forks [i*STEP, (i+1)*STEP) */
    double curve_learned[MAX_CURVE], curve_model[MAX_CURVE];   /* top-1 agreement, % */
} learn_result;

/* Phase 1: test-then-train over rc->forks decisions. The preferences order
 * each fork's cloud before the user's pick teaches them; the user picks by
 * their hidden utility alone. */
static void learn_phase(const run_cfg *rc, const user *u, fp_prefs *p, pairs_t *ps, learn_result *r) {
    int k = 0, n = 0, w_agree = 0, w_base = 0;
    freq fr = {0};
    static seen_set ss;
    memset(&ss, 0, sizeof ss);
    memset(r, 0, sizeof *r);
    fp_session *s = new_session(rc, &k, p);
    while (n < rc->forks) {
        if (fp_session_state(s) != FP_STATE_AT_FORK) {
            log_session(rc, u, s, k);
            fp_session_set_prefs(s, NULL, NULL);
            fp_session_free(s);
            s = new_session(rc, &k, p);
            continue;
        }
        const fp_fork *f = fp_session_fork(s);
        if (f->n_candidates < 2) { fp_session_continue(s, FP_BY_SCRIPT, NULL); continue; }
        int32_t y = user_pick(u, f->candidates, f->n_candidates); /* candidates are in pref order */
        int32_t mt = model_top(f->candidates, f->n_candidates);
        int32_t fq = freq_pick(&fr, f->candidates, f->n_candidates);
        int a = y == 0, b = y == mt, c = y == fq;
        w_agree += a; w_base += b;
        char kw[FP_MAX_TEXT], k0[FP_MAX_TEXT];
        if (n >= rc->train) {
            r->judged++;
            r->learned_err += !a; r->model_err += !b; r->mfc_err += !c;
            r->mrr += 1.0 / (1.0 + y);
            key_of(f->candidates[y].text, kw, sizeof kw);
            key_of(f->candidates[0].text, k0, sizeof k0);
            if (!a && (!seen_has(&ss, kw, false, NULL) || !seen_has(&ss, k0, false, NULL))) r->err_new++;
            if (!a && trace_errors) {
                printf("    error at fork %d: picked \"%s\" (#%d), learned top \"%s\":", n + 1, kw, y, k0);
                for (int32_t i = 0; i < f->n_candidates; i++)
                    printf(" %s%s %.3f/%.3f", i == y ? "*" : "", f->candidates[i].text, f->candidates[i].prob, f->candidates[i].pref);
                printf("\n");
            }
        }
        for (int32_t i = 0; i < f->n_candidates; i++) {
            key_of(f->candidates[i].text, kw, sizeof kw);
            seen_has(&ss, kw, true, &ss);
        }
        key_of(f->candidates[y].text, kw, sizeof kw);
        freq_add(&fr, kw);
        pairs_add(ps, s, f, y);
        fp_error err = {0};
        if (fp_session_choose(s, y, false, FP_BY_HUMAN, &err) != FP_OK) { fprintf(stderr, "bench_learning: %s\n", err.message); exit(1); }
        n++;
        if (n % CURVE_STEP == 0 && r->n_curve < MAX_CURVE) {
            r->curve_learned[r->n_curve] = 100.0 * w_agree / CURVE_STEP;
            r->curve_model[r->n_curve++] = 100.0 * w_base / CURVE_STEP;
            w_agree = w_base = 0;
        }
    }
    log_session(rc, u, s, k);
    fp_session_set_prefs(s, NULL, NULL);
    fp_session_free(s);
    if (r->judged) r->mrr /= r->judged;
}

/* The user's pick at fork f of s. With an adapter or a steering vector on
 * the writing engine, its probabilities are not the user's: they judge by
 * the base model's cloud at the same text (rc->judge, no adapters), a
 * candidate missing from it counting at half the base cloud's smallest
 * probability. The base cloud is computed by a fresh session whose prompt
 * is the text before the fork, forked at its end. */
static int32_t judged_pick(const run_cfg *rc, const user *u, const fp_session *s, const fp_fork *f) {
    if (!rc->judge) return user_pick(u, f->candidates, f->n_candidates);
    fp_error err = {0};
    size_t off = (size_t)f->text_offset;
    char *prompt = malloc(off + 1);
    if (!prompt) exit(1);
    memcpy(prompt, fp_session_text(s), off);
    prompt[off] = 0;
    fp_settings st = rc->st;
    st.max_tokens = 1;
    fp_session *b = fp_session_new(rc->judge, prompt, &st, &err);
    if (!b || fp_session_fork_at(b, off, &err) != FP_OK) { fprintf(stderr, "bench_learning: judge: %s\n", err.message); exit(1); }
    const fp_fork *bf = fp_session_fork(b);
    float lo = 1.0f;
    for (int32_t j = 0; j < bf->n_candidates; j++) if (bf->candidates[j].prob < lo) lo = bf->candidates[j].prob;
    static fp_candidate c[64];
    int32_t n = f->n_candidates < 64 ? f->n_candidates : 64;
    for (int32_t i = 0; i < n; i++) {
        c[i] = f->candidates[i];
        c[i].prob = 0.5f * lo;
        for (int32_t j = 0; j < bf->n_candidates; j++)
            if (!strcmp(bf->candidates[j].text, c[i].text) && bf->candidates[j].is_eog == c[i].is_eog) c[i].prob = bf->candidates[j].prob;
    }
    fp_session_free(b);
    free(prompt);
    return user_pick(u, c, n);
}

/* --adapters: the base model's log p per token of everything written in a
 * writing phase (an adapter that makes forks vanish by writing one phrase
 * over and over shows here). */
static double g_text_lp;
static int64_t g_text_n;

static void score_text(const run_cfg *rc, const fp_session *s) {
    if (!rc->scorer) return;
    int32_t n = fp_session_n_tokens(s);
    const int32_t *t = fp_session_tokens(s);
    double lp;
    fp_error err = {0};
    if (n < 2) return;
    if (fp_engine_logprob(rc->scorer, t, 1, t + 1, n - 1, &lp, &err) != FP_OK) { fprintf(stderr, "bench_learning: %s\n", err.message); exit(1); }
    g_text_lp += lp;
    g_text_n += n - 1;
}

/* Phase 2: writing with or without preferences; returns interventions per
 * 100 tokens and fills the undo rate of automatic decisions. */
static double write_phase(const run_cfg *rc, const user *u, fp_prefs *p, int forks, int *autos, int *undos, int *tokens) {
    int k = 500, interventions = 0, decided = 0;
    *autos = *undos = *tokens = 0;
    fp_session *s = new_session(rc, &k, p);
    int32_t seen = 0;
    while (decided < forks) {
        /* automatic decisions since we last looked: would the user keep them? */
        int32_t ne = fp_session_n_events(s);
        int32_t wrong = -1;
        for (int32_t i = seen; i < ne; i++) {
            const fp_fork *e = fp_session_event(s, i);
            if (e->chooser != FP_BY_AUTO) continue;
            (*autos)++;
            decided++;
            if (wrong < 0 && judged_pick(rc, u, s, e) != e->choice_index) wrong = e->id;
        }
        seen = ne;
        fp_error err = {0};
        if (wrong >= 0) { /* go back to the wrong one and decide it */
            (*undos)++;
            interventions++;
            if (p) fp_prefs_note_undo(p);
            if (fp_session_goto_fork(s, wrong, &err) != FP_OK) { fprintf(stderr, "bench_learning: %s\n", err.message); exit(1); }
            seen = fp_session_n_events(s);
        }
        if (fp_session_state(s) != FP_STATE_AT_FORK) {
            *tokens += fp_session_n_positions(s);
            score_text(rc, s);
            if (p) fp_session_set_prefs(s, NULL, NULL);
            fp_session_free(s);
            s = new_session(rc, &k, p);
            seen = 0;
            continue;
        }
        const fp_fork *f = fp_session_fork(s);
        int32_t y = judged_pick(rc, u, s, f);
        interventions++;
        decided++;
        int32_t before_choice = fp_session_n_events(s);
        if (fp_session_choose(s, y, false, FP_BY_HUMAN, &err) != FP_OK) { fprintf(stderr, "bench_learning: %s\n", err.message); exit(1); }
        seen = before_choice + 1; /* what was decided automatically after it is looked at next */
    }
    *tokens += fp_session_n_positions(s);
    score_text(rc, s);
    if (p) fp_session_set_prefs(s, NULL, NULL);
    fp_session_free(s);
    return *tokens ? 100.0 * interventions / *tokens : 0;
}

/* ---- summary over seeds: median and spread ---- */

typedef struct stat3 { double med, lo, hi; } stat3;

static stat3 stat_of(const double *v, int n) {
    double t[64];
    stat3 r = { 0, 0, 0 };
    if (n < 1) return r;
    memcpy(t, v, sizeof(double) * (size_t)n);
    r.med = bench_median(t, n);
    r.lo = r.hi = v[0];
    for (int i = 1; i < n; i++) { if (v[i] < r.lo) r.lo = v[i]; if (v[i] > r.hi) r.hi = v[i]; }
    return r;
}

/* "median [min–max]" of v, with a unit. */
static void print_stat(const double *v, int n, const char *fmt_unit) {
    stat3 s = stat_of(v, n);
    char b[64];
    snprintf(b, sizeof b, "%.1f [%.1f–%.1f]%s", s.med, s.lo, s.hi, fmt_unit);
    printf(" %-22s", b);
}

#define MAX_SEEDS 32
#define N_USERS ((int)(sizeof USERS / sizeof *USERS))

/* Per user: each seed's figures. */
typedef struct user_runs {
    int n;
    learn_result lr[MAX_SEEDS];
    double drop[MAX_SEEDS], undo[MAX_SEEDS], before[MAX_SEEDS], after[MAX_SEEDS];
} user_runs;

/* The learning curve of every user as an SVG: top-1 agreement of the
 * learned order (solid) and of the model's own top word (dashed) per
 * CURVE_STEP forks, the median over seeds. Written by the benchmark, so
 * the README's figure is the run's own. */
static void write_svg(const char *path, const user_runs *ur, const bool *ran, int forks, int train) {
    FILE *f = fopen(path, "w");
    if (!f) { fprintf(stderr, "bench_learning: cannot write %s\n", path); exit(1); }
    static const char *const COLOR[] = { "#d62728", "#1f77b4", "#2ca02c", "#9467bd" };
    const int W = 640, H = 360, L = 56, R = 90, T = 28, B = 44;
    const double pw = W - L - R, ph = H - T - B, y0 = 40, y1 = 100;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"#fff\"/>\n", W, H, W, H);
    int n_seeds = 0;
    for (int u = 0; u < N_USERS; u++) if (ran[u] && ur[u].n > n_seeds) n_seeds = ur[u].n;
    fprintf(f, "<text x=\"%d\" y=\"18\" font-size=\"13\">Top-1 agreement with each simulated person, median of %d seeds</text>\n"
               "<text x=\"%d\" y=\"%d\" font-size=\"11\" fill=\"#555\">solid: the learned order; dashed: the model's own top word</text>\n",
            L - 40, n_seeds, L + 4, H - B - 8);
    for (int v = 40; v <= 100; v += 10) {
        double y = T + ph * (1 - (v - y0) / (y1 - y0));
        fprintf(f, "<line x1=\"%d\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/><text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%d%%</text>\n",
                L, L + pw, y, y, L - 6, y + 4, v);
    }
    for (int x = 0; x <= forks; x += 50) {
        double px = L + pw * x / forks;
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%d</text>\n", px, H - B + 16, x);
    }
    double tx = L + pw * train / forks;
    fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%.0f\" stroke=\"#999\" stroke-dasharray=\"2 3\"/>"
               "<text x=\"%.1f\" y=\"%d\" fill=\"#666\">judged →</text>\n", tx, tx, T, T + ph, tx + 4, T + 12);
    fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">choices made (window of %d forks)</text>\n", L + pw / 2, H - 8, CURVE_STEP);
    for (int u = 0; u < N_USERS; u++) {
        if (!ran[u] || ur[u].n == 0) continue;
        int np = ur[u].lr[0].n_curve;
        for (int which = 0; which < 2; which++) {
            fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"", COLOR[u % 4],
                    which ? " stroke-dasharray=\"5 4\" stroke-opacity=\"0.7\"" : "");
            double last = 0;
            for (int i = 0; i < np; i++) {
                double v[MAX_SEEDS];
                for (int k = 0; k < ur[u].n; k++) v[k] = which ? ur[u].lr[k].curve_model[i] : ur[u].lr[k].curve_learned[i];
                last = stat_of(v, ur[u].n).med;
                double cl = last < y0 ? y0 : last;
                fprintf(f, "%.1f,%.1f ", L + pw * (i + 0.5) * CURVE_STEP / forks, T + ph * (1 - (cl - y0) / (y1 - y0)));
            }
            fprintf(f, "\"/>\n");
            if (!which) fprintf(f, "<text x=\"%.0f\" y=\"%.1f\" fill=\"%s\">%s</text>\n", L + pw + 8,
                                T + 14 + 18.0 * u, COLOR[u % 4], USERS[u].name);
        }
    }
    fprintf(f, "</svg>\n");
    fclose(f);
}

static void usage(void) {
    fprintf(stderr, "usage: bench_learning [--model PATH] [--forks N] [--train N] [--write-forks N] [--seeds N] [--seed-base N]\n"
                    "       [--threads N] [--user NAME] [--svg PATH] [--adapters] [--db PATH]\n"
                    "       [--lora-rank N] [--lora-alpha A] [--lora-epochs N] [--lora-stride N] [--lora-validation F] [--lora-tail N]\n"
                    "       [--only-lora] [--lora-verbose] [--trace-errors] [--ablate meaning,words,context]\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *model_arg = NULL;
    int forks = 300, train = 200, threads = 1, write_forks = 150, seeds = 5, seed_base = 1;
    fp_lora_params lp = fp_lora_default_params();
    bool only_lora = false, adapters = false;
    const char *only_user = NULL, *db = NULL, *svg = NULL;
    const char *P = "bench_learning";
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--model") && v) model_arg = argv[++i];
        else if (!strcmp(argv[i], "--forks") && v) { forks = bench_int_arg(P, argv[i], argv[i + 1], 20, 100000, usage); i++; }
        else if (!strcmp(argv[i], "--train") && v) { train = bench_int_arg(P, argv[i], argv[i + 1], 0, 100000, usage); i++; }
        else if (!strcmp(argv[i], "--write-forks") && v) { write_forks = bench_int_arg(P, argv[i], argv[i + 1], 1, 100000, usage); i++; }
        else if (!strcmp(argv[i], "--seeds") && v) { seeds = bench_int_arg(P, argv[i], argv[i + 1], 1, MAX_SEEDS, usage); i++; }
        else if (!strcmp(argv[i], "--seed-base") && v) { seed_base = bench_int_arg(P, argv[i], argv[i + 1], 0, 1000000, usage); i++; }
        else if (!strcmp(argv[i], "--threads") && v) { threads = bench_int_arg(P, argv[i], argv[i + 1], 1, 64, usage); i++; }
        else if (!strcmp(argv[i], "--lora-rank") && v) lp.rank = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--lora-alpha") && v) lp.alpha = (float)atof(argv[++i]);
        else if (!strcmp(argv[i], "--lora-epochs") && v) lp.epochs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--lora-stride") && v) lp.stride = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--lora-validation") && v) lp.validation = (float)atof(argv[++i]);
        else if (!strcmp(argv[i], "--lora-tail") && v) lp.context_tail = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--only-lora")) { only_lora = true; adapters = true; }
        else if (!strcmp(argv[i], "--adapters")) adapters = true;
        else if (!strcmp(argv[i], "--trace-errors")) trace_errors = true;
        else if (!strcmp(argv[i], "--ablate") && v) {
            const char *a = argv[++i];
            if (strstr(a, "meaning")) ablate |= FPI_PREFS_NO_MEANING;
            if (strstr(a, "words")) ablate |= FPI_PREFS_NO_WORDS;
            if (strstr(a, "context")) ablate |= FPI_PREFS_NO_CONTEXT;
            if (!ablate) usage();
        }
        else if (!strcmp(argv[i], "--lora-verbose")) verbose_lora = true;
        else if (!strcmp(argv[i], "--user") && v) only_user = argv[++i];
        else if (!strcmp(argv[i], "--db") && v) db = argv[++i];
        else if (!strcmp(argv[i], "--svg") && v) svg = argv[++i];
        else usage();
    }
    if (train >= forks) { fprintf(stderr, "bench_learning: --train must be below --forks\n"); return 2; }
    if (forks / CURVE_STEP > MAX_CURVE) { fprintf(stderr, "bench_learning: at most %d forks\n", MAX_CURVE * CURVE_STEP); return 2; }
    bool known = !only_user;
    for (int u = 0; u < N_USERS; u++) known |= only_user && !strcmp(only_user, USERS[u].name);
    if (!known) { fprintf(stderr, "bench_learning: no user %s\n", only_user); return 2; }
    char path[4096], day[16];
    fp_model *m = bench_load_model(P, model_arg, path, sizeof path);
    bench_today(day);
    fp_error err = {0};
    fp_engine_params ep = fp_engine_default_params();
    ep.n_threads = threads;
    fp_engine *e = fp_engine_new(m, &ep, &err);
    if (!e) { fprintf(stderr, "bench_learning: %s\n", err.message); return 1; }
    run_cfg rc = { .engine = e, .st = fp_default_settings(), .forks = forks, .train = train };
    /* --adapters: a second engine on the same model, never adapted, for judging */
    fp_engine *judge = adapters ? fp_engine_new(m, &ep, &err) : NULL;
    if (adapters && !judge) { fprintf(stderr, "bench_learning: %s\n", err.message); return 1; }
    rc.scorer = judge;
    char sha[65];
    if (db) {
        if (fp_sha256_file(path, sha, &err) != FP_OK || !(rc.log = fp_store_open(db, true, &err))) {
            fprintf(stderr, "bench_learning: %s\n", err.message);
            return 1;
        }
        rc.model_sha = sha;
    }
    rc.st.sample_auto = true;
    rc.st.max_tokens = 150;
    rc.st.lookahead = 4;
    /* the date and times go to stderr: stdout is the same for the same seeds and build */
    fprintf(stderr, "bench_learning  %s  load average %.2f\n", day, bench_loadavg());
    if (ablate) printf("ablation: without%s%s%s\n", ablate & FPI_PREFS_NO_MEANING ? " meaning" : "",
                       ablate & FPI_PREFS_NO_WORDS ? " words" : "", ablate & FPI_PREFS_NO_CONTEXT ? " context" : "");
    printf("bench_learning  model %s  %d forks per user and seed (test-then-train), judged on forks %d–%d; "
           "%d writing forks; seeds %d–%d; %d thread(s)\n\n", bench_basename(path), forks, train + 1, forks, write_forks,
           seed_base, seed_base + seeds - 1, threads);
    static user_runs ur[N_USERS];
    bool ran[N_USERS] = { false };
    double t_all = bench_now_ms();
    for (int ui = 0; ui < N_USERS; ui++) {
        const user *u = &USERS[ui];
        if (only_user && strcmp(only_user, u->name) != 0) continue;
        ran[ui] = true;
        printf("  %-8s seed  errors learned / model / most-frequent (forks %d–%d)  MRR    interventions /100 tokens  autos undone\n",
               u->name, train + 1, forks);
        for (int si = 0; si < seeds; si++) {
            rc.seed = seed_base + si;
            double t0 = bench_now_ms();
            fp_prefs *p = fp_prefs_new(fp_model_n_vocab(m));
            if (!p) return 1;
            fpi_prefs_ablate(p, ablate);
            pairs_t ps = { .p = calloc((size_t)forks, sizeof(fp_steer_pair)), .cap = forks };
            learn_result *r = &ur[ui].lr[ur[ui].n];
            learn_phase(&rc, u, p, &ps, r);
            /* --db: the learned profile too, for `forkpoint profile show` */
            if (rc.log && fp_store_profile_save(rc.log, u->name, rc.model_sha, p, &err) != FP_OK) {
                fprintf(stderr, "bench_learning: %s\n", err.message);
                return 1;
            }
            printf("  %-8s %4d  %5.1f%% / %5.1f%% / %5.1f%% (new words: %2d of %2d)%5s%6.3f", "", rc.seed, 100.0 * r->learned_err / r->judged,
                   100.0 * r->model_err / r->judged, 100.0 * r->mfc_err / r->judged, r->err_new, r->learned_err, "", r->mrr);
            fp_steer *sv = NULL;
            float sv_strength = 0, lora_scale = 0;
            char lora_path[64] = "";
            bool have_lora = false;
            if (adapters && si == 0) {
                printf("\n");
                sv = steer_phase(e, m, &ps, ps.n * 2 / 3, &sv_strength);
                lp.n_threads = threads;
                have_lora = lora_phase(e, m, &ps, ps.n * 2 / 3, &lp, lora_path, &lora_scale);
            }
            pairs_free(&ps);
            free(ps.p);
            if (only_lora) { printf("\n"); fp_prefs_free(p); ur[ui].n++; continue; }
            /* interventions: the same user writing on, with and without what was learned */
            int a0, u0, t0w, a1, u1, t1;
            size_t blob_len = 0;
            void *blob = fp_prefs_save(p, &blob_len);   /* each writing phase starts from what phase 1 learned */
            g_text_lp = 0; g_text_n = 0;
            double before = write_phase(&rc, u, NULL, write_forks, &a0, &u0, &t0w);
            double base_lp = g_text_n ? g_text_lp / (double)g_text_n : 0;
            fp_prefs_set_auto(p, true, 0.95f);
            double after = write_phase(&rc, u, p, write_forks, &a1, &u1, &t1);
            int n = ur[ui].n;
            ur[ui].before[n] = before;
            ur[ui].after[n] = after;
            ur[ui].drop[n] = before > 0 ? 100.0 * (1 - after / before) : 0;
            ur[ui].undo[n] = a1 ? 100.0 * u1 / a1 : 0;
            printf("   %5.2f → %5.2f (%+4.0f%%)      %3d of %3d\n", before, after, -ur[ui].drop[n], u1, a1);
            /* with an adapter: the user judges every fork by the base model's cloud */
            for (int which = 0; which < 2 && blob; which++) {
                if (which == 0 ? !sv : !have_lora) continue;
                if (which == 0) fp_engine_set_steer(e, sv, sv_strength, &err);
                else fp_engine_set_lora(e, lora_path, lora_scale, &err);
                run_cfg ra = rc;
                ra.judge = judge;
                int x0, y0, z0, x1, y1, z1;
                g_text_lp = 0; g_text_n = 0;
                double alone = write_phase(&ra, u, NULL, write_forks, &x0, &y0, &z0);
                double alone_lp = g_text_n ? g_text_lp / (double)g_text_n : 0;
                fp_prefs *q = fp_prefs_load(blob, blob_len, &err);
                if (!q) { fprintf(stderr, "bench_learning: %s\n", err.message); return 1; }
                fp_prefs_set_auto(q, true, 0.95f);
                double with = write_phase(&ra, u, q, write_forks, &x1, &y1, &z1);
                fp_prefs_free(q);
                if (which == 0) fp_engine_set_steer(e, NULL, 0, &err);
                else fp_engine_set_lora(e, NULL, 0, &err);
                printf("  %-8s  with %s (%s %.2f), judged by the base model's cloud: interventions /100 tokens %.2f alone "
                       "(%+.0f%% vs no adapter), %.2f with preferences (%+.0f%%), autos undone %d of %d\n", "",
                       which ? "the LoRA adapter" : "the steering vector", which ? "scale" : "strength",
                       which ? lora_scale : sv_strength, alone, before > 0 ? 100.0 * (alone / before - 1) : 0,
                       with, before > 0 ? 100.0 * (with / before - 1) : 0, y1, x1);
                printf("  %-8s    text written with it alone: base-model log p per token %.3f (without adapter %.3f)\n", "",
                       alone_lp, base_lp);
            }
            free(blob);
            fp_steer_free(sv);
            if (have_lora) remove(lora_path);
            ur[ui].n++;
            fp_prefs_free(p);
            fprintf(stderr, "bench_learning: %s seed %d took %.1f s\n", u->name, rc.seed, (bench_now_ms() - t0) / 1e3);
        }
        printf("\n");
    }
    printf("Summary: median [min–max] over %d seeds\n", seeds);
    printf("  %-8s %-22s %-22s %-22s %-22s %-22s\n", "person", "model errors %", "learned errors %", "learned/model (≤0.5)",
           "interventions −% (≥40)", "autos undone % (≤5)");
    for (int ui = 0; ui < N_USERS; ui++) {
        if (!ran[ui]) continue;
        const user_runs *x = &ur[ui];
        double me[MAX_SEEDS], le[MAX_SEEDS], ratio[MAX_SEEDS];
        for (int k = 0; k < x->n; k++) {
            me[k] = 100.0 * x->lr[k].model_err / x->lr[k].judged;
            le[k] = 100.0 * x->lr[k].learned_err / x->lr[k].judged;
            ratio[k] = x->lr[k].model_err ? (double)x->lr[k].learned_err / x->lr[k].model_err : 0;
        }
        printf("  %-8s", USERS[ui].name);
        print_stat(me, x->n, "");
        print_stat(le, x->n, "");
        stat3 rs = stat_of(ratio, x->n);
        char b[64];
        snprintf(b, sizeof b, "%.2f [%.2f–%.2f]", rs.med, rs.lo, rs.hi);
        printf(" %-22s", b);
        if (!only_lora) { print_stat(x->drop, x->n, ""); print_stat(x->undo, x->n, ""); }
        printf("\n");
    }
    if (svg) { write_svg(svg, ur, ran, forks, train); printf("\nlearning curves: %s\n", svg); }
    fprintf(stderr, "bench_learning: %.1f s in all, load average %.2f\n", (bench_now_ms() - t_all) / 1e3, bench_loadavg());
    fp_store_close(rc.log);
    fp_engine_free(judge);
    fp_engine_free(e);
    fp_model_free(m);
    return 0;
}
