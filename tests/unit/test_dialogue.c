/*
 * test_dialogue.c — dialogues co-written turn by turn (fp_dialogue_*).
 *
 * On a random-weight model built by bench/gen_model from
 * vocab-only/ggml-vocab-phi-3.gguf (it carries the Phi-3 chat template;
 * built into the cache when missing) and on stories260K (no template):
 *   - each turn's prompt is byte-identical to llama_chat_apply_template's
 *     output for the messages so far, for the model's own template and
 *     several built-in ones; its tokens are the special tokenization;
 *   - a template that does not only append a message when one is added is
 *     refused; no template and no name is FP_ERR_MODEL;
 *   - a reply ends at the model's end-of-generation token (TinyStories-656K
 *     through chatml), with no control text in the message;
 *   - either side is co-written: the person's side opens with <|user|>;
 *     ten turns, alternating sides, each prompt the template's;
 *   - undo inside a turn, then across it (reopens the previous turn);
 *   - every logged decision carries its turn and role;
 *   - a multi-turn dialogue saves and restores to the same document, and a
 *     damaged one is refused.
 */
#include "forkpoint.h"
#include "harness.h"
#include <llama.h>
#include <sys/stat.h>

/* llama.cpp's own rendering, for comparison (static buffer). */
static char *reference(const char *tmpl, const fp_chat_message *m, int n, bool add) {
    struct llama_chat_message lm[16];
    for (int i = 0; i < n; i++) { lm[i].role = m[i].role; lm[i].content = m[i].content; }
    static char buf[16384];
    int32_t len = llama_chat_apply_template(tmpl, lm, (size_t)n, add, buf, sizeof buf - 1);
    if (len < 0 || len >= (int32_t)sizeof buf) return NULL;
    buf[len] = '\0';
    return buf;
}

/* The synthetic Phi-3 model: in the cache (as tests/api/oai_test.mjs), built once. */
static const char *phi3_path(void) {
    static char p[1200], dir[1024];
    const char *c = getenv("FORKPOINT_CACHE"), *x = getenv("XDG_CACHE_HOME"), *h = getenv("HOME");
    if (c && *c) snprintf(dir, sizeof dir, "%s/models", c);
    else if (x && *x) snprintf(dir, sizeof dir, "%s/forkpoint/models", x);
    else snprintf(dir, sizeof dir, "%s/.cache/forkpoint/models", h ? h : ".");
    snprintf(p, sizeof p, "%s/synthetic-phi3-test.gguf", dir);
    struct stat sb;
    if (stat(p, &sb) == 0) return p;
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && build/release/bench/gen_model --vocab '%s' --out '%s' --threads 1 >/dev/null",
             dir, h_model_path("vocab-only/ggml-vocab-phi-3.gguf"), p);
    fprintf(stderr, "building %s (make build/release/bench/gen_model first)\n", p);
    return system(cmd) == 0 ? p : NULL;
}

/* The prompt of the open turn: the session's text up to its prompt length. */
static bool prompt_is(fp_dialogue *d, const char *want) {
    fp_session *s = fp_dialogue_session(d);
    return s && want && fp_session_prompt_len(s) == strlen(want) && !memcmp(fp_session_text(s), want, strlen(want));
}

/* Its tokens are the special tokenization of the rendering (BOS included). */
static bool tokens_are(const fp_model *m, fp_dialogue *d, const char *want) {
    int32_t toks[4096];
    int32_t n = fp_tokenize_special(m, want, strlen(want), toks, 4096, true);
    fp_session *s = fp_dialogue_session(d);
    return s && n > 0 && n <= fp_session_n_tokens(s) && !memcmp(fp_session_tokens(s), toks, sizeof(int32_t) * (size_t)n);
}

static fp_settings cheap(void) {
    fp_settings st = fp_default_settings();
    st.k = 4;
    st.beam_width = 4;
    st.max_word_tokens = 3;
    st.lookahead = 2;
    st.max_tokens = 10;
    st.fork_entropy_bits = 0.5f;  /* random weights: forks come at once */
    st.min_gap_tokens = 1;
    st.max_forks_per_sentence = 0;
    return st;
}

int main(void) {
    fp_error err = {0};
    const char *pp = phi3_path();
    CHECKF(pp != NULL, "no synthetic Phi-3 model");
    if (!pp) return h_finish();
    fp_model *phi = fp_model_load(pp, NULL, &err);
    CHECKF(phi != NULL, "%s", err.message);
    fp_engine_params ep = fp_engine_default_params();
    ep.n_ctx = 1024;
    ep.n_seq_max = 16;
    ep.n_threads = 2;
    fp_engine *e = phi ? fp_engine_new(phi, &ep, &err) : NULL;
    CHECKF(e != NULL, "%s", err.message);
    if (!e) { fp_model_free(phi); return h_finish(); }
    fp_settings st = cheap();

    TEST("the end-of-turn token is an end-of-generation token");
    int32_t endt[4];
    CHECK(fp_tokenize_special(phi, "<|end|>", 7, endt, 4, false) == 1 && fp_token_is_eog(phi, endt[0]));

    TEST("turn prompts are llama_chat_apply_template's output, byte for byte");
    const char *names[] = { NULL, "phi3", "chatml", "llama3", "gemma", "zephyr", "mistral-v7", "llama2", "vicuna", "deepseek3" };
    int accepted = 0;
    fp_settings quick = st;   /* no forks, two tokens a turn: the rendering is what is tested here */
    quick.fork_entropy_bits = quick.fork_top1_below = quick.fork_margin_below = 0;
    quick.max_tokens = 2;
    for (size_t t = 0; t < sizeof names / sizeof *names; t++) {
        const char *tm = names[t] ? names[t] : fp_model_chat_template(phi);
        fp_dialogue *d = fp_dialogue_new(e, names[t], "You are terse.", &quick, &err);
        fprintf(stderr, "   %s: %s\n", names[t] ? names[t] : "(model's own)", d ? "accepted" : err.message);
        if (!d) {
            /* refused only for the reason the contract gives */
            CHECKF(err.code == FP_ERR_ARG && strstr(err.message, "cannot be co-written"), "%s", err.message);
            continue;
        }
        accepted++;
        fp_chat_message m[8] = { { "system", "You are terse." }, { "user", "Hello, who are you?" } };
        CHECK(fp_dialogue_add(d, "user", "  Hello, who are you?\n", &err) == FP_OK);   /* stored trimmed */
        CHECK(fp_dialogue_begin(d, "assistant", &err) == FP_OK);
        char *ref = reference(tm, m, 2, true);
        CHECKF(prompt_is(d, ref), "%s", names[t] ? names[t] : "own");
        CHECK(ref && tokens_are(phi, d, ref));
        /* co-write a word, end the turn there, and the whole conversation is the template's */
        fp_session *s = fp_dialogue_session(d);
        CHECK(s && fp_session_state(s) == FP_STATE_ENDED);
        CHECKF(fp_dialogue_end_turn(d, &err) == FP_OK, "%s", err.message);
        CHECK(fp_dialogue_n_messages(d) == 3);
        m[2] = fp_dialogue_message(d, 2);
        CHECK(m[2].role && !strcmp(m[2].role, "assistant") && m[2].content && *m[2].content);
        char *all = fp_dialogue_render(d, &err);
        ref = reference(tm, m, 3, false);
        CHECK(all && ref && !strcmp(all, ref));
        free(all);
        /* the person's side next: its opening is what precedes a user message */
        CHECK(fp_dialogue_begin(d, "user", &err) == FP_OK);
        m[3] = (fp_chat_message){ "user", "@" };
        ref = reference(tm, m, 4, false);
        char *at = ref ? strrchr(ref, '@') : NULL;
        if (at) *at = '\0';
        CHECK(at && prompt_is(d, ref));
        fp_dialogue_free(d);
    }
    CHECKF(accepted >= 5, "only %d templates accepted", accepted);

    TEST("ten co-written turns, either side, each prompt the template's");
    {
        fp_dialogue *d = fp_dialogue_new(e, NULL, "You are terse.", &quick, &err);
        fp_chat_message m[16] = { { "system", "You are terse." } };
        int same = 0;
        for (int t = 0; d && t < 10; t++) {
            const char *role = t % 2 ? "assistant" : "user";
            if (fp_dialogue_begin(d, role, &err) != FP_OK) { fprintf(stderr, "   turn %d: %s\n", t, err.message); break; }
            m[t + 1] = (fp_chat_message){ role, "@" };
            char *ref = reference(fp_model_chat_template(phi), m, t + 2, false);
            char *at = ref ? strrchr(ref, '@') : NULL;
            if (at) *at = '\0';
            if (at && prompt_is(d, ref) && tokens_are(phi, d, ref)) same++;
            if (fp_dialogue_end_turn(d, &err) != FP_OK) { fprintf(stderr, "   turn %d: %s\n", t, err.message); break; }
            m[t + 1] = fp_dialogue_message(d, t + 1);
        }
        CHECKF(same == 10, "%d of 10 turn prompts are the template's", same);
        CHECK(d && fp_dialogue_n_messages(d) == 11);
        fp_dialogue_free(d);
    }

    TEST("errors");
    fp_dialogue *d = fp_dialogue_new(e, "no-such-template {{ x }}", NULL, &st, &err);
    CHECK(!d && err.code == FP_ERR_ARG);
    d = fp_dialogue_new(e, NULL, "\xff", &st, &err);
    CHECK(!d && err.code == FP_ERR_UTF8);
    d = fp_dialogue_new(e, NULL, NULL, &st, &err);
    CHECK(d != NULL);
    CHECK(fp_dialogue_add(d, "system", "again", &err) == FP_ERR_ARG);
    CHECK(fp_dialogue_add(d, "user", "   ", &err) == FP_ERR_EMPTY);
    CHECK(fp_dialogue_end_turn(d, &err) == FP_ERR_STATE);
    CHECK(fp_dialogue_undo(d, &err) == FP_ERR_STATE);
    CHECK(fp_dialogue_begin(d, "tool", &err) == FP_ERR_ARG);
    CHECK(fp_dialogue_begin(d, "user", &err) == FP_OK);
    CHECK(fp_dialogue_add(d, "user", "x", &err) == FP_ERR_STATE);
    CHECK(fp_dialogue_begin(d, "user", &err) == FP_ERR_STATE);
    fp_dialogue_free(d);

    TEST("three turns, undo inside and across a turn, the log, save and restore");
    d = fp_dialogue_new(e, NULL, "Be kind.", &st, &err);
    CHECK(d && fp_dialogue_add(d, "user", "Hi!", &err) == FP_OK);
    CHECK(d && fp_dialogue_begin(d, "assistant", &err) == FP_OK);
    fp_session *s = d ? fp_dialogue_session(d) : NULL;
    for (int i = 0; s && i < 2 && fp_session_state(s) == FP_STATE_AT_FORK; i++)
        CHECK(fp_session_choose(s, i % 2, false, FP_BY_HUMAN, &err) == FP_OK);
    int32_t n_ev_a = s ? fp_session_n_events(s) : 0;
    CHECK(n_ev_a >= 1);
    char text_a[4096];
    snprintf(text_a, sizeof text_a, "%s", d ? fp_dialogue_turn_text(d) : "");
    CHECK(d && fp_dialogue_end_turn(d, &err) == FP_OK);
    /* the person's message, predicted by the model */
    CHECK(d && fp_dialogue_begin(d, "user", &err) == FP_OK);
    s = d ? fp_dialogue_session(d) : NULL;
    CHECK(s && fp_session_prompt_len(s) > 9 && !memcmp(fp_session_text(s) + fp_session_prompt_len(s) - 9, "<|user|>\n", 9));
    if (s && fp_session_state(s) == FP_STATE_AT_FORK) CHECK(fp_session_choose(s, 1, false, FP_BY_HUMAN, &err) == FP_OK);
    CHECK(fp_dialogue_n_events(d) == n_ev_a + (s ? fp_session_n_events(s) : 0));
    /* the log: every event names its turn and role */
    int32_t ne = fp_dialogue_n_events(d), n_ok = 0;
    for (int32_t i = 0; i < ne; i++) {
        char *j = fp_dialogue_event_json(d, i);
        bool a = i < n_ev_a;
        if (j && strstr(j, a ? "\"turn\":2" : "\"turn\":3") && strstr(j, a ? "\"role\":\"assistant\"" : "\"role\":\"user\"")) n_ok++;
        else fprintf(stderr, "   event %d: %s\n", i, j ? j : "(null)");
        free(j);
    }
    CHECK(ne > n_ev_a && n_ok == ne);
    CHECK(fp_dialogue_event_json(d, ne) == NULL && fp_dialogue_event_json(d, -1) == NULL);

    /* save with a turn open, restore, and the document is the same */
    char *saved = fp_dialogue_save(d);
    CHECK(saved != NULL);
    fp_dialogue *r = saved ? fp_dialogue_restore(e, saved, &err) : NULL;
    CHECKF(r != NULL, "%s", err.message);
    char *again = r ? fp_dialogue_save(r) : NULL;
    CHECK(again && !strcmp(again, saved));
    CHECK(r && fp_dialogue_n_messages(r) == 3 && !strcmp(fp_dialogue_turn_role(r), "user") &&
          !strcmp(fp_dialogue_turn_text(r), fp_dialogue_turn_text(d)));
    CHECK(r && fp_dialogue_n_events(r) == ne);
    free(again);
    fp_dialogue_free(r);
    /* damaged documents: refused with a message, never a crash */
    CHECK(!fp_dialogue_restore(e, "{", &err) && err.code == FP_ERR_ARG);
    CHECK(!fp_dialogue_restore(e, "{\"format\":\"forkpoint-dialogue\",\"version\":2,\"template\":null,\"messages\":[]}", &err));
    char *bad = saved ? strdup(saved) : NULL;
    char *hi = bad ? strstr(bad, "\"content\":\"Hi!\"") : NULL;
    if (hi) memcpy(hi + 11, "Ho", 2);   /* the open turn no longer follows the messages */
    CHECK(hi && !fp_dialogue_restore(e, bad, &err) && err.code == FP_ERR_ARG);
    fprintf(stderr, "   edited: %s\n", err.message);
    free(bad);
    free(saved);

    /* undo inside the user turn, then across it into the assistant's */
    CHECK(fp_dialogue_undo(d, &err) == FP_OK && fp_dialogue_n_messages(d) == 3);
    CHECK(fp_dialogue_undo(d, &err) == FP_OK);
    CHECK(fp_dialogue_n_messages(d) == 2 && fp_dialogue_turn_role(d) && !strcmp(fp_dialogue_turn_role(d), "assistant"));
    s = fp_dialogue_session(d);
    CHECK(s && fp_session_state(s) == FP_STATE_AT_FORK);
    CHECK(strlen(fp_dialogue_turn_text(d)) < strlen(text_a) && !strncmp(fp_dialogue_turn_text(d), text_a, strlen(fp_dialogue_turn_text(d))));
    CHECK(fp_dialogue_n_events(d) == n_ev_a);   /* the log is the reopened turn's */
    /* back to the start of the turn, and then to the typed message: refused */
    while (fp_dialogue_n_messages(d) == 2 && fp_session_undo(fp_dialogue_session(d), NULL) == FP_OK) {}
    CHECK(fp_dialogue_undo(d, &err) == FP_ERR_STATE && strstr(err.message, "typed"));
    fp_dialogue_free(d);
    fp_engine_free(e);
    fp_model_free(phi);

    TEST("no template and no name: a clear error (stories260K)");
    fp_model *sm = NULL;
    fp_engine *se = NULL;
    if (!h_open_stories(&sm, &se)) return 1;
    d = fp_dialogue_new(se, NULL, NULL, NULL, &err);
    CHECK(!d && err.code == FP_ERR_MODEL && strstr(err.message, "chat template"));
    fp_engine_free(se);
    fp_model_free(sm);

    /* TinyStories-656K ends its stories with its end token; through chatml
     * it writes one story as the reply (stories260K runs to the context) */
    TEST("a reply ends at the end-of-generation token (TinyStories-656K through chatml)");
    sm = fp_model_load(h_model_path("tinystories-656k/tinystories-656k-q8_0.gguf"), NULL, &err);
    ep = fp_engine_default_params();
    ep.n_threads = 1;
    se = sm ? fp_engine_new(sm, &ep, &err) : NULL;
    CHECKF(se != NULL, "%s", err.message);
    if (!se) { fp_model_free(sm); return h_finish(); }
    fp_settings ss = fp_default_settings();
    ss.max_tokens = 0;
    d = fp_dialogue_new(se, "chatml", NULL, &ss, &err);
    CHECK(d && fp_dialogue_add(d, "user", "Once upon a time, there was a little girl.", &err) == FP_OK);
    CHECK(d && fp_dialogue_begin(d, "assistant", &err) == FP_OK);
    s = d ? fp_dialogue_session(d) : NULL;
    int guard = 0;
    while (s && fp_session_state(s) == FP_STATE_AT_FORK && guard++ < 400) fp_session_continue(s, FP_BY_SCRIPT, &err);
    CHECKF(s && fp_session_state(s) == FP_STATE_ENDED && !strcmp(fp_session_end_reason(s), "eog"), "%s",
           s ? fp_session_end_reason(s) : "no session");
    CHECK(d && !strstr(fp_dialogue_turn_text(d), "<|") && !strstr(fp_dialogue_turn_text(d), "</s>"));
    CHECK(d && fp_dialogue_end_turn(d, &err) == FP_OK && fp_dialogue_n_messages(d) == 2);
    fprintf(stderr, "   reply: %.80s...\n", d ? fp_dialogue_message(d, 1).content : "");
    fp_dialogue_free(d);
    fp_engine_free(se);
    fp_model_free(sm);
    return h_finish();
}
