/*
 * test_adapt.c — settings that follow a person's entry habits (adapt.c), on
 * the real model: the session counts what the person does into their
 * profile (typing letters, pointing into previews, taking the word alone,
 * pointing back into the text), fp_prefs_adapt_settings turns that into
 * more candidates, longer or shorter previews and more forks, and the
 * habits survive saving and are forgotten on reset.
 * (bench/bench_textentry measures what the adaptation is worth.)
 */
#include "forkpoint.h"
#include "forkpoint_learn.h"
#include "harness.h"

#include <string.h>

static fp_model *g_model;
static fp_engine *g_engine;

/* How the simulated person decides each fork. */
typedef enum habit { TYPIST, POINTER, ALONE, REPAIRER } habit;

/* One person writes `forks` decisions over several stories (three prompts,
 * so no single story decides the outcome) with the default settings and
 * profile p. Returns the decisions made. */
static int32_t write_with(fp_prefs *p, habit how, int32_t forks) {
    static const char *const prompts[] = { "Once upon a time, there was a little", "One day, a", "Every morning," };
    fp_error err = {0};
    int32_t n = 0;
    for (uint32_t seed = 1; n < forks && seed < 40; seed++) {
        fp_settings st = fp_default_settings();
        st.max_tokens = 80;
        fp_session *s = fp_session_new(g_engine, prompts[seed % 3], &st, &err);
        CHECK(s != NULL);
        if (!s) return n;
        CHECK(fp_session_set_prefs(s, p, &err) == FP_OK);
        while (fp_session_state(s) == FP_STATE_AT_FORK && n < forks) {
            const fp_fork *f = fp_session_fork(s);
            fp_status rc;
            int32_t c = 0;
            while (c < f->n_candidates && f->candidates[c].is_eog) c++;
            if (c == f->n_candidates) { rc = fp_session_continue(s, FP_BY_HUMAN, &err); n++; CHECK(rc == FP_OK); continue; }
            if (how == TYPIST) {
                /* one letter of the word, then the word (or, when the letter
                 * leaves nothing, the word typed) */
                const char *w = f->candidates[c].text;
                char word[FP_MAX_TEXT];
                snprintf(word, sizeof word, "%s", w);
                const char *body = word;
                while (*body == ' ') body++;
                char letter[8] = { body[0], 0 };
                rc = fp_session_type_prefix(s, letter, &err);
                CHECK(rc == FP_OK);
                if (rc == FP_OK && fp_session_fork(s)->n_candidates > 0 && !fp_session_fork(s)->candidates[0].is_eog)
                    rc = fp_session_choose(s, 0, false, FP_BY_HUMAN, &err);
                else rc = fp_session_type_commit(s, word, FP_BY_HUMAN, &err);
            } else if (how == POINTER && f->candidates[c].n_preview_words > 1) {
                /* the first preview word is right, the second is not */
                rc = fp_session_choose_words(s, c, 1, FP_BY_HUMAN, &err);
            } else rc = fp_session_choose(s, c, false, FP_BY_HUMAN, &err);
            CHECK(rc == FP_OK);
            if (rc != FP_OK) break;
            n++;
            /* the repairer points back into the text written since the prompt */
            if (how == REPAIRER && fp_session_text_len(s) > fp_session_prompt_len(s) + 2) {
                const size_t at = fp_session_prompt_len(s) + (fp_session_text_len(s) - fp_session_prompt_len(s)) / 2;
                CHECK(fp_session_fork_at(s, at, &err) == FP_OK);
            }
        }
        fp_session_set_prefs(s, NULL, NULL);
        fp_session_free(s);
    }
    return n;
}

/* The adapted settings are valid and keep what adaptation never touches. */
static void check_valid(const fp_settings *a, const fp_settings *base) {
    fp_error err = {0};
    CHECK(fp_settings_validate(a, &err) == FP_OK);
    CHECK(a->temperature == base->temperature && a->repeat_penalty == base->repeat_penalty &&
          a->granularity == base->granularity && a->max_tokens == base->max_tokens);
}

static void test_fresh(void) {
    TEST("a new profile leaves the settings as they are");
    fp_prefs *p = fp_prefs_new(fp_model_n_vocab(g_model));
    const fp_settings base = fp_default_settings();
    fp_settings a = fp_prefs_adapt_settings(p, &base);
    CHECK(a.k == base.k && a.lookahead == base.lookahead && a.min_gap_tokens == base.min_gap_tokens &&
          a.max_forks_per_sentence == base.max_forks_per_sentence && a.fork_top1_below == base.fork_top1_below);
    CHECK(fp_prefs_habits_get(p).decisions == 0);
    /* a few decisions are not enough to go on */
    write_with(p, TYPIST, 8);
    a = fp_prefs_adapt_settings(p, &base);
    CHECK(fp_prefs_habits_get(p).decisions == 8 && a.k == base.k);
    fp_prefs_free(p);
}

static void test_typist(void) {
    TEST("a person who keeps typing gets more candidates");
    fp_prefs *p = fp_prefs_new(fp_model_n_vocab(g_model));
    const fp_settings base = fp_default_settings();
    CHECK(write_with(p, TYPIST, 40) == 40);
    const fp_prefs_habits h = fp_prefs_habits_get(p);
    fprintf(stderr, "   typed %.2f pointed %.2f\n", h.typed, h.pointed);
    CHECK(h.decisions == 40 && h.typed > 0.9f && h.pointed == 0.0f);
    const fp_settings a = fp_prefs_adapt_settings(p, &base);
    fprintf(stderr, "   k %d -> %d, beam %d\n", base.k, a.k, a.beam_width);
    CHECK(a.k >= 4 * base.k && a.k <= 64 && a.beam_width >= a.k);
    check_valid(&a, &base);
    /* the habits go with the profile, exactly, and reset forgets them */
    size_t len = 0;
    void *blob = fp_prefs_save(p, &len);
    fp_error err = {0};
    fp_prefs *q = blob ? fp_prefs_load(blob, len, &err) : NULL;
    CHECK(q != NULL);
    if (q) {
        const fp_prefs_habits g = fp_prefs_habits_get(q);
        CHECK(g.decisions == h.decisions && g.depth_n == h.depth_n && g.typed == h.typed && g.pointed == h.pointed &&
              g.depth == h.depth && g.repairs == h.repairs);
        CHECK(fp_prefs_adapt_settings(q, &base).k == a.k);
        fp_prefs_free(q);
    }
    /* a damaged habit is refused, not adapted to */
    if (blob && len > 8) {
        float bad = 7.0f;   /* typed share > 1 */
        memcpy((char *)blob + len - 4 * sizeof(float), &bad, sizeof bad);
        CHECK(fp_prefs_load(blob, len, &err) == NULL && err.code == FP_ERR_ARG);
    }
    free(blob);
    fp_prefs_reset(p);
    CHECK(fp_prefs_habits_get(p).decisions == 0 && fp_prefs_adapt_settings(p, &base).k == base.k);
    fp_prefs_free(p);
}

static void test_previews(void) {
    TEST("a person who points into previews gets longer ones; one who never uses them, shorter");
    const fp_settings base = fp_default_settings();
    fp_prefs *p = fp_prefs_new(fp_model_n_vocab(g_model));
    CHECK(write_with(p, POINTER, 40) == 40);
    fp_prefs_habits h = fp_prefs_habits_get(p);
    fp_settings a = fp_prefs_adapt_settings(p, &base);
    fprintf(stderr, "   pointer: pointed %.2f depth %.2f, lookahead %d -> %d\n", h.pointed, h.depth, base.lookahead,
            a.lookahead);
    CHECK(h.pointed > 0.5f && h.typed == 0.0f && a.lookahead > base.lookahead && a.k == base.k);
    check_valid(&a, &base);
    fp_prefs_free(p);

    p = fp_prefs_new(fp_model_n_vocab(g_model));
    CHECK(write_with(p, ALONE, 40) == 40);
    h = fp_prefs_habits_get(p);
    a = fp_prefs_adapt_settings(p, &base);
    fprintf(stderr, "   alone: pointed %.2f depth %.2f, lookahead %d -> %d\n", h.pointed, h.depth, base.lookahead,
            a.lookahead);
    CHECK(h.pointed == 0.0f && h.depth == 0.0f && h.depth_n > 0 && a.lookahead < base.lookahead);
    CHECK(a.k == base.k && a.max_forks_per_sentence == base.max_forks_per_sentence);
    check_valid(&a, &base);
    fp_prefs_free(p);
}

static void test_repairs(void) {
    TEST("a person who keeps pointing back into the text gets more forks");
    const fp_settings base = fp_default_settings();
    fp_prefs *p = fp_prefs_new(fp_model_n_vocab(g_model));
    CHECK(write_with(p, REPAIRER, 30) == 30);
    const fp_prefs_habits h = fp_prefs_habits_get(p);
    const fp_settings a = fp_prefs_adapt_settings(p, &base);
    fprintf(stderr, "   repairs %.2f per decision: gap %d -> %d, per sentence %d -> %d, top1 %.2f -> %.2f\n",
            h.repairs, base.min_gap_tokens, a.min_gap_tokens, base.max_forks_per_sentence, a.max_forks_per_sentence,
            base.fork_top1_below, a.fork_top1_below);
    CHECK(h.repairs > 0.5f && a.max_forks_per_sentence == 0 && a.min_gap_tokens < base.min_gap_tokens &&
          a.fork_top1_below > base.fork_top1_below);
    check_valid(&a, &base);
    fp_prefs_free(p);
}

int main(void) {
    if (!h_open_stories(&g_model, &g_engine)) return 1;
    test_fresh();
    test_typist();
    test_previews();
    test_repairs();
    fp_engine_free(g_engine);
    fp_model_free(g_model);
    return h_finish();
}
