/*
 * test_vocab.c — every tokenizer convention, and languages, through the pipeline.
 *
 * Why: people bring models with other tokenizers and write in other
 * languages. The word grouping reads the white space a piece carries (at its
 * start: SentencePiece, byte-level BPE with "G"; at its end: TinyStories-656K)
 * and the characters of scripts without spaces; a vocabulary that marks
 * neither is refused. This suite checks, on the real tokenizers of
 * ../shared/models/vocab-only (Falcon, GPT-NeoX, StarCoder: byte-level BPE;
 * Phi-3: SentencePiece; BGE: WordPiece) and on tiny random-weight models built
 * around them by bench/gen_model --tiny (build/models, made by mk/models.mk):
 *   - round trips: fixed texts in English, Russian, German, Chinese and
 *     Japanese tokenize and come back byte for byte (pieces and detokenizer);
 *   - word grouping: the boundaries the token flags give are the boundaries
 *     of the text (an oracle written from code points, not from flags);
 *   - candidates on the Falcon and Phi-3 models, from prompts in each
 *     language: valid UTF-8, no U+FFFD, each starting at a word boundary;
 *     the text likewise; Chinese and Japanese get character- or phrase-level
 *     candidates (a narrowed cloud on "的" is not empty);
 *   - prefix narrowing with multi-byte prefixes: "п" and "П" narrow to words
 *     starting with either case, "ü" to German words, "的" to Chinese ones;
 *   - the fork JSON (the decision log's record) parses and carries the same
 *     bytes; a saved session restores with the same text;
 *   - a vocabulary without word marks is refused with one line.
 */
#include "forkpoint.h"
#include "core/internal.h"
#include "harness.h"

#include <cjson/cJSON.h>
#include <string.h>

static const char *tiny_dir(void) {
    const char *d = getenv("FP_TINY_MODELS");
    return d && *d ? d : "build/models";
}

typedef struct lang { const char *name, *text, *prompt; } lang;
static const lang LANGS[] = {
    { "en", "Once upon a time, there was a little girl named Lily. She loved to play outside!\n\"Yes,\" said Tom.",
      "Once upon a time, there was a little" },
    { "ru", "Жила-была маленькая девочка. Она очень любила гулять в лесу, и однажды нашла там ёжика.",
      "Жила-была маленькая девочка, которая" },
    { "de", "Es war einmal ein kleines Mädchen. Sie hieß Grete und aß gern süße Äpfel über der Straße.",
      "Es war einmal ein kleines Mädchen, das" },
    { "zh", "从前有一个小女孩，她很喜欢在森林里散步。有一天，她发现了一只刺猬！", "从前有一个小女孩，她" },
    { "ja", "むかしむかし、あるところに、おじいさんとおばあさんが住んでいました。", "むかしむかし、あるところに" },
};
enum { N_LANGS = sizeof LANGS / sizeof LANGS[0] };

/* ---- the oracle: word boundaries from code points ---------------------- */

static bool cp_nospace(uint32_t c) {
    return (c >= 0x3000 && c <= 0x9FFF) || (c >= 0xF900 && c <= 0xFAFF) || (c >= 0xFF00 && c <= 0xFFEF) ||
           (c >= 0x0E00 && c <= 0x0EFF) || (c >= 0x1000 && c <= 0x109F) || (c >= 0x1780 && c <= 0x17FF) ||
           (c >= 0x20000 && c <= 0x2FFFF);
}
static bool ascii_punct(unsigned char c) {
    return c < 0x80 && c > ' ' && !(c >= '0' && c <= '9') && !((c | 0x20) >= 'a' && (c | 0x20) <= 'z') && c != '\'' &&
           c != '-' && c != '_';
}
static bool ws(unsigned char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

/* Does a new word begin at byte o of t (o on a character boundary)? */
static bool text_boundary(const char *t, size_t len, size_t o) {
    if (o == 0 || o >= len) return true;
    unsigned char a = (unsigned char)t[o - 1], b = (unsigned char)t[o];
    if ((b & 0xC0) == 0x80) return false;                 /* inside a character */
    if (ws(a) || ws(b) || ascii_punct(a) || ascii_punct(b)) return true;
    uint32_t c = 0;
    return fpi_utf8_decode(t + o, len - o, &c) > 0 && cp_nospace(c);
}

static bool has_fffd(const char *t) { return strstr(t, "\xEF\xBF\xBD") != NULL; }

/* ---- round trips and word grouping on the vocabularies ---------------- */

static void vocab_checks(const char *file) {
    char path[1024];
    snprintf(path, sizeof path, "%s/vocab-only/%s", h_models(), file);
    fp_error err = {0};
    fp_model_params mp = fp_model_default_params();
    mp.vocab_only = true;
    fp_model *m = fp_model_load(path, &mp, &err);
    CHECKF(m != NULL, "%s: %s", file, err.message);
    if (!m) return;
    bool wordpiece = strstr(file, "bert") != NULL;   /* lower-cases and splits: no byte round trip */
    for (int l = 0; l < N_LANGS; l++) {
        const char *t = LANGS[l].text;
        size_t len = strlen(t);
        int32_t toks[1024];
        int32_t n = fp_tokenize(m, t, len, toks, 1024, false);
        CHECKF(n > 0 && n <= 1024, "%s %s: %d tokens", file, LANGS[l].name, n);
        if (n <= 0 || n > 1024) continue;
        /* the pieces spell the text (SentencePiece adds one leading space) */
        char cat[4096];
        size_t cl = 0;
        size_t off[1025];
        for (int32_t i = 0; i < n; i++) {
            off[i] = cl;
            int32_t pl = fp_token_piece(m, toks[i], cat + cl, (int32_t)(sizeof cat - cl - 1));
            if (pl > 0) cl += (size_t)pl;
        }
        cat[cl] = 0;
        size_t lead = cl == len + 1 && cat[0] == ' ' ? 1 : 0;
        char back[4096];
        int32_t bn = fp_detokenize(m, toks, n, back, (int32_t)sizeof back - 1);
        if (bn >= 0) back[bn] = 0;
        if (!wordpiece) {
            CHECKF(cl == len + lead && memcmp(cat + lead, t, len) == 0, "%s %s: pieces spell '%s'", file, LANGS[l].name, cat);
            CHECKF(bn >= 0 && (size_t)bn >= len && strcmp(back + (bn - (int32_t)len), t) == 0, "%s %s: detokenized '%s'",
                   file, LANGS[l].name, back);
        } else {
            CHECKF(bn > 0 && fp_utf8_valid(back, (size_t)bn) && !has_fffd(back), "%s %s: detokenized '%s'", file,
                   LANGS[l].name, back);
            continue;
        }
        /* word grouping: a boundary before token i (as the flags say) is a
         * boundary of the text there */
        int bad = 0;
        for (int32_t i = 1; i < n; i++) {
            if (off[i] < lead) continue;
            uint16_t fa = m->tok_flags[toks[i - 1]], fb = m->tok_flags[toks[i]];
            int32_t al;
            const char *ap = fpi_piece(m, toks[i - 1], &al);
            bool flags = (fb & FP_TOK_WORD_START) || (fa & FP_TOK_WORD_END) || (al > 0 && ascii_punct((unsigned char)ap[al - 1]));
            bool text = text_boundary(t, len, off[i] - lead);
            if (flags != text && bad++ < 3) {
                fprintf(stderr, "  %s %s: token %d flags say %d, text says %d:", file, LANGS[l].name, i, flags, text);
                for (size_t b = off[i - 1]; b < (i + 1 < n ? off[i + 1] : cl); b++)
                    fprintf(stderr, "%s%02x", b == off[i] ? " | " : " ", (unsigned char)cat[b]);
                fputc('\n', stderr);
            }
        }
        CHECKF(bad == 0, "%s %s: %d boundaries disagree", file, LANGS[l].name, bad);
    }
    fp_model_free(m);
}

/* ---- candidates on the synthetic models ------------------------------- */

static int g_cands, g_cjk_cands;

/* Is c's text a well-formed candidate after text[0..len)? */
static void check_candidate(const char *what, const char *text, size_t len, const fp_candidate *c) {
    g_cands++;
    size_t tl = strlen(c->text), pl = strlen(c->preview);
    CHECKF(fp_utf8_valid(c->text, tl) && fp_utf8_valid(c->preview, pl), "%s: invalid UTF-8 in '%s' / '%s'", what, c->text,
           c->preview);
    CHECKF(!has_fffd(c->text) && !has_fffd(c->preview), "%s: U+FFFD in '%s' / '%s'", what, c->text, c->preview);
    if (c->is_eog) return;
    const char *k = c->text;
    while (ws((unsigned char)*k)) k++;
    CHECKF(*k || strchr(c->text, '\n'), "%s: an empty candidate '%s'", what, c->text);
    /* it starts a word: the text ends at a boundary, or the candidate opens one */
    char buf[8192];
    size_t n = len < 4096 ? len : 4096;
    memcpy(buf, text + len - n, n);
    memcpy(buf + n, c->text, tl + 1);
    CHECKF(text_boundary(buf, n + tl, n), "%s: '%s' glues onto '%.12s'", what, c->text, text + len - (len < 12 ? len : 12));
    uint32_t cp = 0;
    if (fpi_utf8_decode(k, strlen(k), &cp) > 0 && cp_nospace(cp)) g_cjk_cands++;
}

static void check_fork(const char *what, const fp_session *s) {
    const fp_fork *f = fp_session_fork(s);
    if (!f) return;
    const char *t = fp_session_text(s);
    for (int32_t i = 0; i < f->n_candidates; i++) check_candidate(what, t, (size_t)f->text_offset, &f->candidates[i]);
    /* the decision log's record: JSON that parses, with the same bytes */
    char *js = fp_fork_to_json(s, f);
    cJSON *j = js ? cJSON_Parse(js) : NULL;
    CHECKF(j != NULL, "%s: fork JSON does not parse", what);
    const cJSON *cs = j ? cJSON_GetObjectItem(j, "candidates") : NULL;
    int same = 0;
    for (int32_t i = 0; cs && i < f->n_candidates && i < cJSON_GetArraySize(cs); i++) {
        const cJSON *tx = cJSON_GetObjectItem(cJSON_GetArrayItem(cs, i), "text");
        same += cJSON_IsString(tx) && strcmp(tx->valuestring, f->candidates[i].is_eog ? tx->valuestring : f->candidates[i].text) == 0;
    }
    CHECKF(same == f->n_candidates, "%s: %d of %d candidate texts survive JSON", what, same, f->n_candidates);
    cJSON_Delete(j);
    free(js);
}

/* Candidates after typing prefix: each starts with it, case folded. */
static int narrowed(const char *what, fp_session *s, const char *prefix) {
    fp_error err = {0};
    fp_status st = fp_session_type_prefix(s, prefix, &err);
    CHECKF(st == FP_OK, "%s: prefix '%s': %s", what, prefix, err.message);
    const fp_fork *f = fp_session_fork(s);
    if (st != FP_OK || !f) return 0;
    check_fork(what, s);
    uint32_t want = 0;
    fpi_utf8_decode(prefix, strlen(prefix), &want);
    for (int32_t i = 0; i < f->n_candidates; i++) {
        const char *k = f->candidates[i].text;
        while (ws((unsigned char)*k)) k++;
        uint32_t got = 0;
        int n = fpi_utf8_decode(k, strlen(k), &got);
        CHECKF(n > 0 && fpi_cp_fold(got) == fpi_cp_fold(want), "%s: '%s' after prefix '%s'", what, f->candidates[i].text,
               prefix);
    }
    int n = f->n_candidates;
    fp_session_type_prefix(s, "", &err);
    return n;
}

static void synthetic(const char *file) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", tiny_dir(), file);
    fp_error err = {0};
    fp_model *m = fp_model_load(path, NULL, &err);
    CHECKF(m != NULL, "%s: %s (make builds it: mk/models.mk)", file, err.message);
    if (!m) return;
    fp_engine_params ep = fp_engine_default_params();
    ep.n_threads = 1;
    ep.n_ctx = 1024;
    fp_engine *e = fp_engine_new(m, &ep, &err);
    CHECKF(e != NULL, "%s: %s", file, err.message);
    for (int l = 0; e && l < N_LANGS; l++) {
        char what[128];
        snprintf(what, sizeof what, "%s %s", file, LANGS[l].name);
        g_cands = g_cjk_cands = 0;
        fp_settings st = fp_default_settings();
        st.max_tokens = 60;
        fp_session *s = fp_session_new(e, LANGS[l].prompt, &st, &err);
        CHECKF(s != NULL, "%s: %s", what, err.message);
        if (!s) continue;
        int forks = 0, narrowed_ok = 0;
        for (int step = 0; step < 6 && fp_session_state(s) == FP_STATE_AT_FORK; step++) {
            forks++;
            check_fork(what, s);
            if (step == 0) {
                /* multi-byte prefixes narrow the cloud, in either case */
                if (!strcmp(LANGS[l].name, "ru")) {
                    int a = narrowed(what, s, "п"), b = narrowed(what, s, "П");
                    CHECKF(a > 0 && a == b, "%s: 'п' gives %d candidates, 'П' %d", what, a, b);
                    narrowed_ok = a > 0;
                } else if (!strcmp(LANGS[l].name, "de")) {
                    narrowed_ok = narrowed(what, s, "ü") > 0 && narrowed(what, s, "sch") > 0;
                } else if (!strcmp(LANGS[l].name, "zh")) {
                    narrowed_ok = narrowed(what, s, "的") > 0;
                } else if (!strcmp(LANGS[l].name, "ja")) {
                    narrowed_ok = narrowed(what, s, "の") > 0;
                } else narrowed_ok = narrowed(what, s, "d") > 0;
                CHECKF(narrowed_ok, "%s: the narrowed cloud is empty", what);
            }
            if (fp_session_choose(s, step % 3, false, FP_BY_SCRIPT, &err) != FP_OK) break;
        }
        const char *t = fp_session_text(s);
        CHECKF(fp_utf8_valid(t, strlen(t)) && !has_fffd(t), "%s: the text is not clean UTF-8", what);
        CHECKF(strncmp(t, LANGS[l].prompt, strlen(LANGS[l].prompt)) == 0, "%s: the prompt changed", what);
        CHECKF(forks > 0, "%s: no fork", what);
        /* saved and restored: the same text */
        char *saved = fp_session_save(s);
        fp_session *r = saved ? fp_session_restore(e, saved, &err) : NULL;
        CHECKF(r != NULL, "%s: restore: %s", what, err.message);
        if (r) CHECKF(strcmp(fp_session_text(r), t) == 0, "%s: the restored text differs", what);
        fp_session_free(r);
        free(saved);
        fprintf(stderr, "  %s: %d forks, %d candidates (%d CJK), text '%.80s'\n", what, forks, g_cands, g_cjk_cands,
                t + strlen(LANGS[l].prompt));
        fp_session_free(s);
    }
    fp_engine_free(e);
    fp_model_free(m);
}

/* ---- refusal ---------------------------------------------------------- */

static void refusal(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tiny-nomarks.gguf", tiny_dir());
    fp_error err = {0};
    fp_model *m = fp_model_load(path, NULL, &err);
    CHECKF(m == NULL && err.code == FP_ERR_MODEL, "a vocabulary without word marks loads (%s)", err.message);
    CHECKF(strstr(err.message, "neither where words start nor where they end") && !strchr(err.message, '\n'),
           "the refusal says why in one line: %s", err.message);
    fp_model_free(m);
    /* BERT's WordPiece renders its word starts with a space: it is grouped, not refused */
    snprintf(path, sizeof path, "%s/tiny-bert-bge.gguf", tiny_dir());
    m = fp_model_load(path, NULL, &err);
    CHECKF(m != NULL, "WordPiece: %s", err.message);
    fp_model_free(m);
}

int main(void) {
    static const char *VOCABS[] = { "ggml-vocab-falcon.gguf", "ggml-vocab-gpt-neox.gguf", "ggml-vocab-starcoder.gguf",
                                    "ggml-vocab-phi-3.gguf", "ggml-vocab-bert-bge.gguf" };
    TEST("round trips and word grouping on every vocabulary");
    for (size_t i = 0; i < sizeof VOCABS / sizeof VOCABS[0]; i++) vocab_checks(VOCABS[i]);
    TEST("candidates in five languages on synthetic Falcon and Phi-3 models");
    synthetic("tiny-falcon.gguf");
    synthetic("tiny-phi-3.gguf");
    TEST("a vocabulary without word marks is refused");
    refusal();
    return h_finish();
}
