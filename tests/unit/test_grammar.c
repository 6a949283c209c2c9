/*
 * test_grammar.c — a session that keeps to a GBNF grammar.
 *
 * A communication board offers a fixed vocabulary; a grammar (llama.cpp's
 * GBNF, llama_sampler_init_grammar) says so. On stories260K, from a story
 * prompt, greedy and sampled, deciding by a fixed rule that mixes taking a
 * word alone, with its preview, a prefetched choice, undo, narrowing and a
 * saved-and-restored session:
 *   - every candidate, with its preview, after the text so far, is a prefix
 *     of a sentence of the grammar, and so is the generated text itself;
 *   - the narrowed cloud keeps to it too; typed text it forbids is refused
 *     with FP_ERR_ARG and changes nothing, typed text it allows is taken;
 *   - a saved session keeps its grammar; a grammar that does not parse is
 *     refused.
 * The checker below is written from the grammar's sentences, not from the
 * library's code.
 */
#include "forkpoint.h"
#include "harness.h"

#include <string.h>

static const char *GRAMMAR =
    "root ::= item+\n"
    "item ::= \" \" word | \".\"\n"
    "word ::= \"the\" | \"cat\" | \"dog\" | \"sat\" | \"ran\" | \"on\" | \"mat\" | \"and\" | \"big\" | \"little\" | \"happy\" |"
    " \"saw\" | \"a\" | \"girl\" | \"boy\" | \"park\"\n";
static const char *WORDS[] = { "the", "cat", "dog", "sat", "ran", "on", "mat", "and", "big", "little", "happy",
                               "saw", "a", "girl", "boy", "park" };
enum { N_WORDS = sizeof WORDS / sizeof WORDS[0] };

/* Is t a prefix of a sentence of the grammar: items " word" or ".", the
 * last perhaps unfinished? (Backtracking over words that are prefixes of
 * others, "a" of nothing here but kept general.) */
static bool lang_prefix(const char *t) {
    if (!*t) return true;
    if (*t == '.') return lang_prefix(t + 1);
    if (*t != ' ') return false;
    const char *u = t + 1;
    size_t rest = strlen(u);
    for (int i = 0; i < N_WORDS; i++) {
        size_t n = strlen(WORDS[i]);
        if (rest <= n && strncmp(u, WORDS[i], rest) == 0) return true; /* an unfinished last word */
        if (rest > n && strncmp(u, WORDS[i], n) == 0 && lang_prefix(u + n)) return true;
    }
    return false;
}

static const char *PROMPT = "Once upon a time, there was";

static int g_checked;

static void check_fork(const fp_session *s, const char *what) {
    const fp_fork *f = fp_session_fork(s);
    if (!f) return;
    const char *gen = fp_session_text(s) + strlen(PROMPT);
    for (int32_t i = 0; i < f->n_candidates; i++) {
        const fp_candidate *c = &f->candidates[i];
        if (c->is_eog) continue;
        char buf[8192];
        snprintf(buf, sizeof buf, "%s%s%s", gen, c->text, c->preview);
        g_checked++;
        CHECKF(lang_prefix(buf), "%s: candidate '%s' + preview '%s' leaves the grammar", what, c->text, c->preview);
    }
}

int main(void) {
    fp_model *m;
    fp_engine *e;
    if (!h_open_stories(&m, &e)) return 1;
    fp_error err = {0};

    TEST("a grammar that does not parse is refused");
    CHECK(fp_session_new_grammar(e, PROMPT, NULL, "root ::= (", &err) == NULL && err.code == FP_ERR_ARG);
    CHECK(fp_session_new_grammar(e, PROMPT, NULL, "word ::= \"a\"", &err) == NULL && err.code == FP_ERR_ARG);
    {   /* nesting that would run llama.cpp's recursive parser out of stack */
        static char deep[4096];
        int n = snprintf(deep, sizeof deep, "root ::= ");
        for (int i = 0; i < 1000; i++) deep[n++] = '(';
        n += snprintf(deep + n, sizeof deep - (size_t)n, "\" a\"");
        for (int i = 0; i < 1000; i++) deep[n++] = ')';
        deep[n] = 0;
        CHECK(fp_session_new_grammar(e, PROMPT, NULL, deep, &err) == NULL && err.code == FP_ERR_ARG &&
              strstr(err.message, "nested"));
        /* brackets inside literals are text, not groups */
        fp_session *ok = fp_session_new_grammar(e, PROMPT, NULL, "root ::= (\" (((\" | \" a\")+", &err);
        CHECKF(ok != NULL, "%s", err.message);
        fp_session_free(ok);
    }

    TEST("candidates, previews and the text keep to the grammar");
    int sessions = 0, forks = 0, refused = 0, typed = 0, restored = 0, narrowed = 0;
    for (uint32_t seed = 0; seed < 3; seed++) {
        fp_settings st = fp_default_settings();
        st.max_tokens = 120;
        st.sample_auto = seed > 0;
        st.seed = seed;
        st.fork_top1_below = 0.6f;
        fp_session *s = fp_session_new_grammar(e, PROMPT, &st, GRAMMAR, &err);
        CHECKF(s != NULL, "%s", err.message);
        if (!s) continue;
        CHECK(fp_session_grammar(s) && strcmp(fp_session_grammar(s), GRAMMAR) == 0);
        sessions++;
        for (int step = 0; step < 40 && fp_session_state(s) == FP_STATE_AT_FORK; step++) {
            const fp_fork *f = fp_session_fork(s);
            forks++;
            check_fork(s, "fork");
            int r = (int)((step + seed) % 7);
            if (r == 1) {
                /* narrowing keeps to it */
                if (fp_session_type_prefix(s, "b", &err) == FP_OK) {
                    narrowed++;
                    check_fork(s, "narrowed");
                    const fp_fork *g = fp_session_fork(s);
                    for (int32_t i = 0; i < g->n_candidates; i++) CHECK(strstr(g->candidates[i].text, "b") != NULL);
                    fp_session_type_prefix(s, "", &err);
                }
            } else if (r == 2) {
                /* a forbidden word is refused and changes nothing; an allowed one is taken */
                char before[4096];
                snprintf(before, sizeof before, "%s", fp_session_text(s));
                fp_status ts = fp_session_type_commit(s, "dragon", FP_BY_SCRIPT, &err);
                CHECKF(ts == FP_ERR_ARG && strstr(err.message, "grammar"), "typed 'dragon': %s", err.message);
                CHECK(strcmp(before, fp_session_text(s)) == 0 && fp_session_fork(s) != NULL);
                refused += ts == FP_ERR_ARG;
                CHECKF(fp_session_type_commit(s, "dog", FP_BY_SCRIPT, &err) == FP_OK, "typed 'dog': %s", err.message);
                typed++;
                continue;
            } else if (r == 3) {
                CHECK(fp_session_prefetch(s, 0, false, &err) == FP_OK);
            } else if (r == 4 && step > 2) {
                CHECK(fp_session_undo(s, &err) == FP_OK);
                continue;
            } else if (r == 5) {
                char *js = fp_session_save(s);
                fp_session *rs = js ? fp_session_restore(e, js, &err) : NULL;
                free(js);
                CHECKF(rs != NULL, "restore: %s", err.message);
                if (rs) {
                    CHECK(fp_session_grammar(rs) && strcmp(fp_session_grammar(rs), GRAMMAR) == 0);
                    CHECK(strcmp(fp_session_text(rs), fp_session_text(s)) == 0);
                    fp_session_free(s);
                    s = rs;
                    restored++;
                }
                continue;
            }
            f = fp_session_fork(s);
            if (f->n_candidates == 0) { CHECK(fp_session_continue(s, FP_BY_SCRIPT, &err) == FP_OK); continue; }
            CHECKF(fp_session_choose(s, (int32_t)(step % 2) % f->n_candidates, r == 6, FP_BY_SCRIPT, &err) == FP_OK,
                   "choose: %s", err.message);
        }
        const char *gen = fp_session_text(s) + strlen(PROMPT);
        CHECKF(strncmp(fp_session_text(s), PROMPT, strlen(PROMPT)) == 0 && lang_prefix(gen), "seed %u: the text '%s'",
               seed, gen);
        CHECKF(strlen(gen) > 20, "seed %u: only '%s' was written", seed, gen);
        fprintf(stderr, "  seed %u: '%.100s'\n", seed, gen);
        fp_session_free(s);
    }
    fprintf(stderr, "  %d sessions, %d forks, %d candidates checked, %d narrowed, %d refused and %d typed words, %d restores\n",
            sessions, forks, g_checked, narrowed, refused, typed, restored);
    CHECK(sessions == 3 && forks >= 20 && g_checked >= 50 && refused > 0 && restored > 0 && narrowed > 0);

    fp_engine_free(e);
    fp_model_free(m);
    return h_finish();
}
