/*
 * test_models.c — clean text on a second tokenizer convention.
 *
 * TinyStories-656K puts the word mark at the end of its pieces and spells its
 * end-of-story marker with ordinary pieces. From the default prompt (with and
 * without a trailing space), in all three precisions, greedy and seeded:
 *   - the prompt's last word is finished as a word, never glued to a
 *     fragment ("a littleopard"), thanks to token healing;
 *   - no control text ("<|end_story|>", or its start) appears in the text,
 *     a candidate or a preview;
 *   - every candidate is a non-empty word or phrase of valid UTF-8.
 * stories260K (word mark at the start) must keep the same properties.
 */
#include "forkpoint.h"
#include "harness.h"

#include <ctype.h>
#include <string.h>

static const char *BASE = "Once upon a time, there was a little";

static bool has_control(const char *t) { return strstr(t, "<|") != NULL || strstr(t, "|>") != NULL; }

static void run(const char *file, const char *name) {
    fp_error err = {0};
    fp_model *m = fp_model_load(h_model_path(file), NULL, &err);
    CHECKF(m != NULL, "%s: %s", name, err.message);
    if (!m) return;
    fp_engine_params ep = fp_engine_default_params();
    ep.n_threads = 1;
    fp_engine *e = fp_engine_new(m, &ep, &err);
    CHECKF(e != NULL, "%s: %s", name, err.message);
    int stories = 0, ended_eog = 0, candidates = 0;
    for (int space = 0; e && space < 2; space++) {
        for (uint32_t seed = 0; seed < 4; seed++) {
            char prompt[128];
            snprintf(prompt, sizeof prompt, "%s%s", BASE, space ? " " : "");
            fp_settings st = fp_default_settings();
            st.max_tokens = 300;
            st.sample_auto = seed > 0;
            st.seed = seed;
            fp_session *s = fp_session_new(e, prompt, &st, &err);
            CHECKF(s != NULL, "%s: %s", name, err.message);
            if (!s) continue;
            for (int step = 0; step < 200 && fp_session_state(s) == FP_STATE_AT_FORK; step++) {
                const fp_fork *f = fp_session_fork(s);
                for (int32_t i = 0; i < f->n_candidates; i++) {
                    const fp_candidate *c = &f->candidates[i];
                    candidates++;
                    CHECKF(!has_control(c->text) && !has_control(c->preview), "%s: control text in candidate '%s' / '%s'",
                           name, c->text, c->preview);
                    CHECK(fp_utf8_valid(c->text, strlen(c->text)) && fp_utf8_valid(c->preview, strlen(c->preview)));
                    const char *k = c->text;
                    while (*k == ' ') k++;
                    CHECKF(c->is_eog || *k, "%s: an empty candidate", name);
                }
                int32_t pick = (int32_t)((seed * 7 + (uint32_t)step) % (uint32_t)f->n_candidates);
                if (seed == 0) pick = 0;
                if (fp_session_choose(s, pick, false, FP_BY_SCRIPT, &err) != FP_OK) break;
            }
            const char *t = fp_session_text(s);
            size_t bl = strlen(BASE);
            CHECKF(!has_control(t), "%s: control text in the story: %s", name, t);
            /* the prompt's last word is finished as a word */
            CHECKF(strlen(t) > bl && !isalnum((unsigned char)t[bl]), "%s seed %u%s: glued: '%.60s'", name, seed,
                   space ? " (trailing space)" : "", t + bl - 6);
            if (space) CHECKF(t[bl] == ' ' && t[bl + 1] != ' ', "%s: 'little ' then '%.20s'", name, t + bl);
            stories++;
            const char *why = fp_session_end_reason(s);
            ended_eog += why && strcmp(why, "eog") == 0;
            fp_session_free(s);
        }
    }
    fprintf(stderr, "  %s: %d stories (%d ended by the model), %d candidates checked\n", name, stories, ended_eog, candidates);
    CHECK(stories == 8);
    fp_engine_free(e);
    fp_model_free(m);
}

int main(void) {
    TEST("TinyStories-656K and stories260K write clean text from the default prompt");
    run("tinystories-656k/TinyStories-656K.f16.gguf", "TinyStories-656K f16");
    run("tinystories-656k/tinystories-656k-q8_0.gguf", "TinyStories-656K q8_0");
    run("tinystories-656k/TinyStories-656K-mixed-IQ4_NL.gguf", "TinyStories-656K IQ4_NL");
    run("stories260K.gguf", "stories260K");
    return h_finish();
}
