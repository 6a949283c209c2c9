/*
 * test_spell.c — text a vocabulary cannot spell is refused, never an abort.
 *
 * Why: llama.cpp's SentencePiece tokenizer throws std::out_of_range through
 * its C API (the process aborts) for a character with no piece and no byte
 * token: TinyStories-656K has no "[" and no "<0x5B>". fp_tokenize must
 * refuse such text with -1 and fp_tokenize_check must name the character.
 * This suite checks, on every model in ../shared/models:
 *   - the oracle: for every ASCII character and a set of other characters,
 *     raw llama_tokenize runs in a forked child: the texts fp_tokenize_check
 *     accepts must not abort it, and (on one TinyStories-656K file, where
 *     refusals happen) each text it refuses must (no over-refusal);
 *   - fp_tokenize and fp_tokenize_special return -1 for refused text;
 *   - on TinyStories-656K: a session on a prompt with "[" fails with
 *     FP_ERR_ARG naming "[", and typing "[" at a fork fails the same way,
 *     leaving the session usable.
 */
#include "forkpoint.h"
#include "core/internal.h"
#include "harness.h"

#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *MODELS[] = {
    "stories260K.gguf", "tinystories-656k/tinystories-656k-q8_0.gguf", "tinystories-656k/TinyStories-656K.f16.gguf",
    "tinystories-656k/TinyStories-656K-mixed-IQ4_NL.gguf", "llama-2-tiny-random.gguf",
    "vocab-only/ggml-vocab-phi-3.gguf", "vocab-only/ggml-vocab-falcon.gguf", "vocab-only/ggml-vocab-gpt-neox.gguf",
    "vocab-only/ggml-vocab-starcoder.gguf", "vocab-only/ggml-vocab-bert-bge.gguf",
};

/* Does raw llama_tokenize survive every one of texts[0..n)? Run in a
 * child, its stderr silenced: it may abort. */
static bool llama_survives(const fp_model *m, char (*texts)[32], int n, bool special) {
    pid_t p = fork();
    if (p == 0) {
        FILE *null = freopen("/dev/null", "w", stderr);
        (void)null;
        int32_t toks[256];
        for (int i = 0; i < n; i++) llama_tokenize(m->vocab, texts[i], (int32_t)strlen(texts[i]), toks, 256, true, special);
        _exit(0);
    }
    int status = 0;
    if (p < 0 || waitpid(p, &status, 0) != p) return false;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

enum { N_OTHER = 13, N_TEXTS = 127 + N_OTHER };

/* every = true: each refused text gets its own child, which must abort
 * (the check refuses nothing llama.cpp can tokenize); the texts it accepts
 * all run in one child, which must survive. */
static int oracle(const char *rel, bool every) {
    fp_model_params mp = fp_model_default_params();
    mp.vocab_only = true;
    fp_error err = { 0 };
    fp_model *m = fp_model_load(h_model_path(rel), &mp, &err);
    CHECKF(m != NULL, "%s: %s", rel, err.message);
    if (!m) return -1;
    static const char *other[N_OTHER] = { "é", "ü", "Ж", "的", "。", "😀", "▁", "\xC2\xA0", "→", "€", "ß", "ñ", "あ" };
    static char texts[N_TEXTS][32], ok_texts[N_TEXTS][32];
    for (int i = 0; i < N_TEXTS; i++) {
        char c[8] = { 0 };
        if (i < 127) c[0] = (char)(i + 1);
        else snprintf(c, sizeof c, "%s", other[i - 127]);
        snprintf(texts[i], sizeof texts[i], "a %sb", c);
    }
    int refused = 0;
    for (int sp = 0; sp < 2; sp++) {
        int n_ok = 0;
        for (int i = 0; i < N_TEXTS; i++) {
            const char *text = texts[i];
            if (fp_tokenize_check(m, text, strlen(text), sp, &err) == FP_OK) {
                memcpy(ok_texts[n_ok++], text, sizeof texts[i]);
                continue;
            }
            refused++;
            CHECKF(err.code == FP_ERR_ARG && strstr(err.message, "cannot spell"), "%s", err.message);
            int32_t toks[64];
            CHECK((sp ? fp_tokenize_special(m, text, strlen(text), toks, 64, true)
                      : fp_tokenize(m, text, strlen(text), toks, 64, true)) == -1);
            if (every) CHECKF(!llama_survives(m, texts + i, 1, sp), "%s: \"%s\" refused but llama.cpp tokenizes it", rel, text);
        }
        CHECKF(llama_survives(m, ok_texts, n_ok, sp), "%s: a text the check accepts aborts llama.cpp (special=%d)", rel, sp);
    }
    fprintf(stderr, "   %s: %d of %d texts refused\n", rel, refused, 2 * N_TEXTS);
    fp_model_free(m);
    return refused;
}

static void sessions_656k(void) {
    fp_error err = { 0 };
    fp_model *m = fp_model_load(h_model_path("tinystories-656k/tinystories-656k-q8_0.gguf"), NULL, &err);
    CHECKF(m != NULL, "%s", err.message);
    if (!m) return;
    fp_engine_params ep = fp_engine_default_params();
    ep.n_threads = 1;
    fp_engine *e = fp_engine_new(m, &ep, &err);
    CHECKF(e != NULL, "%s", err.message);
    if (!e) { fp_model_free(m); return; }
    fp_settings st = fp_default_settings();
    CHECK(fp_session_new(e, "Once upon a [time", &st, &err) == NULL);
    CHECKF(err.code == FP_ERR_ARG && strstr(err.message, "\"[\"") && strstr(err.message, "U+005B"), "%s", err.message);
    CHECK(fp_tokenize_check(m, "a [b", 4, false, &err) == FP_ERR_ARG && strstr(err.message, "byte 2"));
    CHECK(fp_tokenize_check(m, "a \xff", 3, false, &err) == FP_ERR_UTF8);
    CHECK(fp_tokenize_check(m, "Once upon a time", 16, false, &err) == FP_OK);
    fp_session *s = fp_session_new(e, "Once upon a time", &st, &err);
    CHECKF(s != NULL, "%s", err.message);
    if (s && fp_session_state(s) == FP_STATE_AT_FORK) {
        size_t before = fp_session_text_len(s);
        CHECK(fp_session_type_commit(s, "[x]", FP_BY_HUMAN, &err) == FP_ERR_ARG && strstr(err.message, "\"[\""));
        CHECK(fp_session_text_len(s) == before);
        CHECKF(fp_session_type_commit(s, "dog", FP_BY_HUMAN, &err) == FP_OK, "%s", err.message);
    }
    fp_session_free(s);
    fp_engine_free(e);
    fp_model_free(m);
}

int main(void) {
    TEST("the spell check agrees with llama.cpp on every model");
    int first656 = -1;
    for (size_t i = 0; i < sizeof MODELS / sizeof MODELS[0]; i++) {
        bool is656 = strstr(MODELS[i], "656") != NULL;
        int r = oracle(MODELS[i], is656 && first656 < 0);
        if (is656 && first656 < 0) first656 = r;
        if (is656) CHECKF(r > 0 && r == first656, "%s: %d refused (the first 656K file: %d)", MODELS[i], r, first656);
    }
    TEST("sessions on TinyStories-656K refuse what it cannot spell");
    sessions_656k();
    return h_finish();
}
