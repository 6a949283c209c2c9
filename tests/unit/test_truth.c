/*
 * test_truth.c — a preview is a promise.
 *
 * A person takes a candidate alone and lets the model continue; the text it
 * then writes must be what the candidate's preview showed, byte for byte, up
 * to the next fork or the preview's end. Checked on the three real models
 * with other tokenizers and vocabularies (stories260K, TinyStories-656K,
 * the random 32000-token Llama 2), greedy and seeded, at the defaults and
 * with strong penalties, on several prompts and choice orders.
 *
 * Black-box: only the public API. A mismatch prints the fork, the preview and
 * the text that came, so a failure says what broke.
 */
#include "forkpoint.h"
#include "harness.h"

#include <string.h>

typedef struct truth_count { int forks, compared, mismatches; } truth_count;

/* Walks one session: at each fork takes candidate (step * stride) % n alone
 * and compares what follows it with its preview. */
static void walk(fp_engine *e, const char *prompt, const fp_settings *st, int stride, truth_count *tc,
                 const char *label) {
    fp_error err = {0};
    fp_session *s = fp_session_new(e, prompt, st, &err);
    CHECKF(s != NULL, "%s: %s", label, err.message);
    if (!s) return;
    for (int step = 0; step < 400 && fp_session_state(s) == FP_STATE_AT_FORK; step++) {
        const fp_fork *f = fp_session_fork(s);
        if (f->n_candidates == 0) break;
        int32_t idx = (int32_t)((step * stride + step / 3) % f->n_candidates);
        const fp_candidate *c = &f->candidates[idx];
        char want[FP_MAX_TEXT * 2];
        snprintf(want, sizeof want, "%s", c->preview);
        size_t from = (size_t)f->text_offset + strlen(c->text);
        bool eog = c->is_eog;
        int32_t fork_id = f->id;
        char cand[FP_MAX_TEXT];
        snprintf(cand, sizeof cand, "%s", c->text);
        tc->forks++;
        fp_status rc = fp_session_choose(s, idx, false, FP_BY_SCRIPT, &err);
        CHECKF(rc == FP_OK, "%s: choose: %s", label, err.message);
        if (rc != FP_OK || eog) break;
        /* the text that came: up to the next fork, or to the end */
        const fp_fork *g = fp_session_fork(s);
        size_t to = g ? (size_t)g->text_offset : fp_session_text_len(s);
        const char *text = fp_session_text(s);
        size_t got_n = to > from ? to - from : 0;
        size_t want_n = strlen(want);
        size_t n = got_n < want_n ? got_n : want_n;
        bool ok = memcmp(text + from, want, n) == 0;
        /* the text may stop short of the preview only at a fork: an ended
         * text was promised the whole preview */
        if (!g && got_n < want_n) ok = false;
        tc->compared++;
        if (!ok) {
            tc->mismatches++;
            if (tc->mismatches <= 8)
                fprintf(stderr, "  %s: fork %d, candidate %d \"%s\": preview \"%s\", text \"%.*s\"%s\n", label,
                        fork_id, idx, cand, want, (int)got_n, text + from, g ? "" : " (ended)");
        }
    }
    fp_session_free(s);
}

static void run_model(const char *file, const char *name, truth_count *total) {
    fp_error err = {0};
    fp_model *m = fp_model_load(h_model_path(file), NULL, &err);
    CHECKF(m != NULL, "%s: %s", name, err.message);
    if (!m) return;
    fp_engine_params ep = fp_engine_default_params();
    ep.n_threads = 1;
    fp_engine *e = fp_engine_new(m, &ep, &err);
    CHECKF(e != NULL, "%s: %s", name, err.message);
    if (!e) { fp_model_free(m); return; }
    static const char *prompts[] = {
        "Once upon a time, there was a little",
        "One day, a boy named Tom",
        "The cat sat on the",
        "Lily and her mom went to the park. They saw",
    };
    truth_count tc = {0};
    for (int mode = 0; mode < 4; mode++) {
        fp_settings st = fp_default_settings();
        st.max_forks_per_sentence = 0;  /* many forks per story */
        st.min_gap_tokens = 2;
        st.max_tokens = 120;
        if (mode & 1) { st.repeat_penalty = 1.5f; st.repeat_last_n = 32; } /* strong penalties */
        else st.repeat_penalty = 1.1f;                                     /* the default */
        if (mode & 2) { st.sample_auto = true; st.temperature = 0.9f; }    /* seeded sampling */
        for (int p = 0; p < 4; p++) {
            st.seed = (uint32_t)(7 + 13 * p + mode);
            char label[128];
            snprintf(label, sizeof label, "%s %s %s p%d", name, mode & 2 ? "seeded" : "greedy",
                     mode & 1 ? "penalty1.5" : "default", p);
            walk(e, prompts[p], &st, 1 + p, &tc, label);
        }
    }
    fprintf(stderr, "  %s: %d forks, %d compared, %d mismatches\n", name, tc.forks, tc.compared, tc.mismatches);
    CHECKF(tc.mismatches == 0, "%s: %d of %d previews did not come true", name, tc.mismatches, tc.compared);
    total->forks += tc.forks;
    total->compared += tc.compared;
    total->mismatches += tc.mismatches;
    fp_engine_free(e);
    fp_model_free(m);
}

int main(void) {
    TEST("previews come true on three real models, greedy and seeded, with and without penalties");
    truth_count total = {0};
    run_model("stories260K.gguf", "stories260K", &total);
    run_model("tinystories-656k/TinyStories-656K.f16.gguf", "TinyStories-656K", &total);
    run_model("llama-2-tiny-random.gguf", "llama-2-tiny-random", &total);
    fprintf(stderr, "preview truth: %d forks, %d compared, %d mismatches\n", total.forks, total.compared,
            total.mismatches);
    CHECKF(total.compared >= 300, "only %d forks compared", total.compared);
    return h_finish();
}
