/*
 * test_inputs.c — bad input, tokenizers and UTF-8.
 *
 * Every bad input must come back as a status with a message: a missing or
 * damaged model, a GGUF v1 file, a vocab-only file asked to generate, a
 * prompt that is empty, invalid UTF-8 or longer than the context, a choice
 * out of range. Tokenizers of five other model families round-trip text.
 * Text shown to people never ends in half a character, even when a random
 * 32000-token model emits raw byte tokens.
 */
#include "core/internal.h"
#include "harness.h"
#include "forkpoint_fetch.h"

#include <stdint.h>
#include <unistd.h>
#include <ctype.h>
#include <sys/stat.h>

static char g_tmp[256];

/* Writes the first n bytes of src (or garbage after a valid magic) to a temp file. */
static const char *damaged_copy(const char *src, long keep, bool scramble) {
    snprintf(g_tmp, sizeof g_tmp, "/tmp/fp-test-%d-%ld%s.gguf", (int)getpid(), keep, scramble ? "s" : "");
    FILE *in = fopen(src, "rb"), *out = fopen(g_tmp, "wb");
    if (!in || !out) { if (in) fclose(in); if (out) fclose(out); return NULL; }
    char buf[4096];
    long done = 0;
    size_t n;
    while (done < keep && (n = fread(buf, 1, sizeof buf, in)) > 0) {
        if ((long)n > keep - done) n = (size_t)(keep - done);
        if (scramble) for (size_t i = 0; i < n; i++) if (done + (long)i >= 24) buf[i] = (char)(buf[i] ^ 0x5A);
        fwrite(buf, 1, n, out);
        done += (long)n;
    }
    fclose(in);
    fclose(out);
    return g_tmp;
}

static void test_bad_models(void) {
    TEST("bad model files get a clear error");
    fp_error err = {0};
    CHECK(fp_model_load("/nonexistent/model.gguf", NULL, &err) == NULL && err.code == FP_ERR_IO);
    CHECK(strstr(err.message, "/nonexistent/model.gguf") != NULL);
    CHECK(fp_model_load(NULL, NULL, &err) == NULL && err.code == FP_ERR_ARG);
    CHECK(fp_model_load("/tmp", NULL, &err) == NULL && err.code == FP_ERR_IO);
    const char *good = h_model_path("stories260K.gguf");
    const long cuts[] = { 0, 3, 7, 100, 5000, 600000, 1185000 };
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        const char *p = damaged_copy(good, cuts[i], false);
        CHECK(p != NULL);
        fp_model *m = fp_model_load(p, NULL, &err);
        CHECKF(m == NULL && err.code == FP_ERR_MODEL, "truncated at %ld: %s", cuts[i], err.message);
        fp_model_free(m);
        unlink(p);
    }
    const char *p = damaged_copy(good, 1L << 30, true);
    fp_model *m = fp_model_load(p, NULL, &err);
    CHECKF(m == NULL && err.code == FP_ERR_MODEL, "scrambled: %s", err.message);
    fp_model_free(m);
    unlink(p);
    m = fp_model_load(h_model_path("legacy-gguf-v1/tinyllamas-stories-260k-f32.gguf"), NULL, &err);
    CHECK(m == NULL && err.code == FP_ERR_MODEL && strstr(err.message, "version 1"));
    m = fp_model_load(h_model_path("vocab-only/ggml-vocab-phi-3.gguf"), NULL, &err);
    CHECK(m == NULL && err.code == FP_ERR_MODEL && strstr(err.message, "vocab-only"));
    /* loaded as vocab-only it tokenizes, but an engine refuses it */
    fp_model_params mp = fp_model_default_params();
    mp.vocab_only = true;
    m = fp_model_load(h_model_path("vocab-only/ggml-vocab-phi-3.gguf"), &mp, &err);
    CHECK(m != NULL);
    if (m) {
        CHECK(fp_engine_new(m, NULL, &err) == NULL && err.code == FP_ERR_MODEL);
        fp_model_free(m);
    }
}

static void test_bad_prompts_and_choices(void) {
    TEST("bad prompts and choices get a clear error");
    fp_error err = {0};
    fp_model *m = fp_model_load(h_model_path("stories260K.gguf"), NULL, &err);
    CHECK(m != NULL);
    if (!m) return;
    fp_engine_params ep = fp_engine_default_params();
    ep.n_threads = 1;
    ep.n_ctx = 256;
    fp_engine *e = fp_engine_new(m, &ep, &err);
    CHECK(e != NULL);
    if (!e) { fp_model_free(m); return; }
    CHECK(fp_session_new(e, "", NULL, &err) == NULL && err.code == FP_ERR_EMPTY);
    CHECK(fp_session_new(e, "  \n\t ", NULL, &err) == NULL && err.code == FP_ERR_EMPTY);
    CHECK(fp_session_new(e, "Once \xff\xfe upon", NULL, &err) == NULL && err.code == FP_ERR_UTF8);
    CHECK(fp_session_new(e, "overlong \xc0\xaf", NULL, &err) == NULL && err.code == FP_ERR_UTF8);
    CHECK(fp_session_new(e, "cut \xe2\x82", NULL, &err) == NULL && err.code == FP_ERR_UTF8);
    size_t big = 20000;
    char *longp = malloc(big + 1);
    for (size_t i = 0; i < big; i++) longp[i] = "the cat sat. "[i % 13];
    longp[big] = 0;
    CHECK(fp_session_new(e, longp, NULL, &err) == NULL && err.code == FP_ERR_CONTEXT);
    CHECK(strstr(err.message, "tokens") != NULL);
    free(longp);
    fp_settings st = fp_default_settings();
    st.k = 0;
    CHECK(fp_session_new(e, "Once", &st, &err) == NULL && err.code == FP_ERR_ARG && strstr(err.message, "k must"));
    st = fp_default_settings();
    st.temperature = -1;
    CHECK(fp_session_new(e, "Once", &st, &err) == NULL && err.code == FP_ERR_ARG);

    st = fp_default_settings();
    st.fork_top1_below = 1.01f; /* fork at once */
    fp_session *s = fp_session_new(e, "Once upon a time", &st, &err);
    CHECKF(s != NULL, "%s", err.message);
    if (s) {
        CHECK(fp_session_state(s) == FP_STATE_AT_FORK);
        int32_t n = fp_session_fork(s)->n_candidates;
        CHECK(fp_session_choose(s, n, false, FP_BY_SCRIPT, &err) == FP_ERR_ARG && strstr(err.message, "out of range"));
        CHECK(fp_session_choose(s, -1, false, FP_BY_SCRIPT, &err) == FP_ERR_ARG);
        CHECK(fp_session_type_commit(s, "", FP_BY_SCRIPT, &err) == FP_ERR_EMPTY);
        CHECK(fp_session_type_commit(s, "\xc3", FP_BY_SCRIPT, &err) == FP_ERR_UTF8);
        CHECK(fp_session_goto_fork(s, 99, &err) == FP_ERR_ARG);
        CHECK(fp_session_fork_at(s, 1u << 30, &err) == FP_ERR_ARG);
        /* the session is still usable after every refusal */
        CHECK(fp_session_choose(s, 0, false, FP_BY_SCRIPT, &err) == FP_OK);
        /* a small context fills up and the session ends cleanly */
        while (fp_session_state(s) == FP_STATE_AT_FORK) CHECKF(fp_session_choose(s, 0, true, FP_BY_SCRIPT, &err) == FP_OK, "%s", err.message);
        CHECK(fp_session_end_reason(s) != NULL);
        CHECK(fp_session_choose(s, 0, false, FP_BY_SCRIPT, &err) == FP_ERR_STATE);
        fp_session_free(s);
    }
    /* settings JSON */
    st = fp_default_settings();
    CHECK(fp_settings_from_json("{\"k\": 5, \"granularity\": \"token\"}", &st, &err) == FP_OK && st.k == 5 && st.granularity == FP_GRAN_TOKEN);
    CHECK(fp_settings_from_json("{\"k\": 5.5}", &st, &err) == FP_ERR_ARG);
    CHECK(fp_settings_from_json("{\"bogus\": 1}", &st, &err) == FP_ERR_ARG);
    CHECK(fp_settings_from_json("{\"k\": \"8\"}", &st, &err) == FP_ERR_ARG);
    CHECK(fp_settings_from_json("[1,2", &st, &err) == FP_ERR_ARG);
    CHECK(fp_settings_from_json("{\"k\": 500}", &st, &err) == FP_ERR_ARG);
    CHECK(st.k == 5);
    char *js = fp_settings_to_json(&st);
    fp_settings back = fp_default_settings();
    CHECK(js && fp_settings_from_json(js, &back, &err) == FP_OK && back.k == st.k && back.granularity == st.granularity);
    free(js);
    fp_engine_free(e);
    fp_model_free(m);
}

static void test_tokenizers(void) {
    TEST("tokenizers of other families round-trip (vocab-only models)");
    const char *files[] = { "ggml-vocab-phi-3.gguf", "ggml-vocab-starcoder.gguf", "ggml-vocab-falcon.gguf",
                            "ggml-vocab-gpt-neox.gguf", "ggml-vocab-bert-bge.gguf" };
    const char *texts[] = { "Hello world", "Once upon a time, there was a little girl.",
                            "caf\xc3\xa9 na\xc3\xafve \xe2\x82\xac 42", "  two  spaces\nand a newline", "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e" };
    fp_model_params mp = fp_model_default_params();
    mp.vocab_only = true;
    for (size_t f = 0; f < sizeof files / sizeof *files; f++) {
        char rel[128];
        snprintf(rel, sizeof rel, "vocab-only/%s", files[f]);
        fp_error err = {0};
        fp_model *m = fp_model_load(h_model_path(rel), &mp, &err);
        CHECKF(m != NULL, "%s: %s", files[f], err.message);
        if (!m) continue;
        CHECK(fp_model_is_vocab_only(m) && fp_model_n_vocab(m) > 1000);
        bool bert = strstr(files[f], "bert") != NULL;
        for (size_t t = 0; t < sizeof texts / sizeof *texts; t++) {
            int32_t toks[256];
            int32_t n = fp_tokenize(m, texts[t], strlen(texts[t]), toks, 256, false);
            CHECKF(n > 0 && n <= 256, "%s: %d tokens", files[f], n);
            if (n <= 0 || n > 256) continue;
            for (int32_t i = 0; i < n; i++) CHECK(toks[i] >= 0 && toks[i] < fp_model_n_vocab(m));
            char back[1024];
            int32_t len = fp_detokenize(m, toks, n, back, sizeof back - 1);
            CHECK(len >= 0);
            if (len < 0) continue;
            back[len] = 0;
            if (bert) {
                /* WordPiece lowercases and splits on punctuation: compare letters only */
                char a[1024], b[1024];
                size_t na = 0, nb = 0;
                for (const char *p = texts[t]; *p; p++) if (*p != ' ' && *p != '\n') a[na++] = (char)tolower((unsigned char)*p);
                for (const char *p = back; *p; p++) if (*p != ' ' && *p != '\n') b[nb++] = *p;
                a[na] = b[nb] = 0;
                /* it also strips accents: only ASCII text must come back letter for letter */
                bool ascii = true;
                for (const char *p = texts[t]; *p; p++) ascii &= (unsigned char)*p < 0x80;
                if (ascii) CHECKF(strcmp(a, b) == 0, "%s: '%s' -> '%s'", files[f], texts[t], back);
                else CHECK(nb > 0);
            } else {
                CHECKF(strcmp(back, texts[t]) == 0, "%s: '%s' -> '%s'", files[f], texts[t], back);
            }
            /* the pieces concatenate to the same bytes */
            char cat[1024];
            size_t cl = 0;
            for (int32_t i = 0; i < n && !bert; i++) {
                int32_t pl = fp_token_piece(m, toks[i], cat + cl, (int32_t)(sizeof cat - cl));
                CHECK(pl >= 0);
                if (pl > 0) cl += (size_t)pl;
            }
            (void)cl;
        }
        CHECK(fp_tokenize(m, "bad \xff", 5, NULL, 0, false) == -1);
        fp_model_free(m);
    }
}

static void test_utf8(void) {
    TEST("UTF-8: validation and complete characters only");
    CHECK(fp_utf8_valid("", 0));
    CHECK(fp_utf8_valid("abc \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 15));
    CHECK(!fp_utf8_valid("\xc0\xaf", 2));          /* overlong */
    CHECK(!fp_utf8_valid("\xed\xa0\x80", 3));      /* surrogate */
    CHECK(!fp_utf8_valid("\xf4\x90\x80\x80", 4));  /* above U+10FFFF */
    CHECK(!fp_utf8_valid("\xe2\x82", 2));          /* cut */
    CHECK(fp_utf8_complete_prefix("ab\xe2\x82", 4) == 2);
    CHECK(fp_utf8_complete_prefix("ab\xe2\x82\xac", 5) == 5);
    CHECK(fp_utf8_complete_prefix("\xf0\x9f\x98", 3) == 0);

    /* a random model with byte tokens: sampled text, checked at every fork */
    fp_error err = {0};
    fp_model *m = fp_model_load(h_model_path("llama-2-tiny-random.gguf"), NULL, &err);
    CHECKF(m != NULL, "%s", err.message);
    if (!m) return;
    fp_engine_params ep = fp_engine_default_params();
    ep.n_threads = 1;
    ep.n_ctx = 512;
    fp_engine *e = fp_engine_new(m, &ep, &err);
    CHECK(e != NULL);
    int bytes_seen = 0;
    for (uint32_t seed = 1; e && seed <= 4; seed++) {
        fp_settings st = fp_default_settings();
        st.sample_auto = true;
        st.seed = seed;
        st.max_tokens = 120;
        st.temperature = 1.5f;
        st.fork_top1_below = 0.0f;
        st.fork_entropy_bits = 14.5f;
        fp_session *s = fp_session_new(e, "Hello \xe6\x97\xa5\xe6\x9c\xac", &st, &err);
        CHECKF(s != NULL, "%s", err.message);
        while (s) {
            const char *t = fp_session_text(s);
            size_t n = fp_session_text_len(s);
            /* valid, not merely cut at a character: byte tokens can spell bytes no UTF-8 text has */
            CHECKF(strlen(t) == n && fp_utf8_valid(t, n), "seed %u: the text is not valid UTF-8", seed);
            if (fp_session_state(s) != FP_STATE_AT_FORK) break;
            const fp_fork *f = fp_session_fork(s);
            for (int32_t i = 0; i < f->n_candidates; i++) {
                CHECK(fp_utf8_valid(f->candidates[i].text, strlen(f->candidates[i].text)));
                CHECK(fp_utf8_valid(f->candidates[i].preview, strlen(f->candidates[i].preview)));
                char *j = fp_fork_to_json(s, f);
                CHECK(j != NULL && fp_utf8_valid(j, strlen(j)));
                free(j);
            }
            fp_session_choose(s, 0, true, FP_BY_SCRIPT, &err);
        }
        for (int32_t i = 0; s && i < fp_session_n_positions(s); i++)
            bytes_seen += (llama_vocab_get_attr(m->vocab, fp_session_position(s, i)->token) & LLAMA_TOKEN_ATTR_BYTE) != 0;
        fp_session_free(s);
    }
    fprintf(stderr, "   (byte tokens generated: %d)\n", bytes_seen);
    CHECKF(bytes_seen > 0, "no byte token was generated: the check above proved nothing");
    fp_engine_free(e);
    fp_model_free(m);
}

static void test_default_model(void) {
    TEST("default model resolution checks the sha256");
    fp_error err = {0};
    char hex[65], path[4096];
    CHECK(fp_sha256_file(h_model_path("stories260K.gguf"), hex, &err) == FP_OK && strcmp(hex, FP_DEFAULT_MODEL_SHA256) == 0);
    CHECK(fp_sha256_file("/nonexistent", hex, &err) == FP_ERR_IO);
    /* an explicit path is taken as given; a missing one is an error */
    CHECK(fp_resolve_default_model("/nonexistent/x.gguf", path, sizeof path, &err) == FP_ERR_IO);
    CHECK(fp_resolve_default_model(h_model_path("stories260K.gguf"), path, sizeof path, &err) == FP_OK);
    /* a damaged cache entry is rejected (and, with ../shared present, replaced by it) */
    char cache[256];
    snprintf(cache, sizeof cache, "/tmp/fp-cache-%d", (int)getpid());
    char models[300], bad[400];
    snprintf(models, sizeof models, "%s/models", cache);
    snprintf(bad, sizeof bad, "%s/stories260K.gguf", models);
    mkdir(cache, 0755);
    mkdir(models, 0755);
    FILE *f = fopen(bad, "w");
    if (f) { fputs("GGUF not really", f); fclose(f); }
    setenv("FORKPOINT_CACHE", cache, 1);
    unsetenv("FORKPOINT_MODEL");
    fp_status st = fp_resolve_default_model(NULL, path, sizeof path, &err);
    CHECKF(st == FP_OK && strstr(path, "shared/models/stories260K.gguf"), "%s %s", path, err.message);
    CHECK(access(bad, F_OK) != 0); /* the damaged entry was dropped */
    unsetenv("FORKPOINT_CACHE");
    rmdir(models);
    rmdir(cache);
}

int main(void) {
    test_bad_models();
    test_bad_prompts_and_choices();
    test_tokenizers();
    test_utf8();
    test_default_model();
    return h_finish();
}
