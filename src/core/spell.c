/*
 * spell.c — which texts a SentencePiece vocabulary can spell at all.
 *
 * llama.cpp's SPM tokenizer (b10679) splits text into characters (spaces
 * become "▁"), merges them into the vocabulary's pieces, and writes a
 * character no piece covers as byte tokens: "<0xXX>", or failing that the
 * one-byte piece. When neither exists — TinyStories-656K has no "[" and no
 * byte tokens — its byte_to_token throws std::out_of_range through the C
 * API and the process aborts. So at load the vocabulary's single-character
 * pieces and byte tokens are collected, and fp_tokenize refuses a text with
 * a character outside them before llama.cpp sees it. Other tokenizers
 * (byte-level BPE, WordPiece, Unigram) drop or map unknown text themselves.
 *
 * Texts of special tokens are cut out before llama.cpp's SPM sees a text
 * (user-defined ones always, control ones when parsing specials), so a
 * character inside such a text is spellable there.
 *
 * Cost: O(n_vocab log n_vocab) once at load; checking a text is O(len) plus
 * a binary search per non-ASCII character, and a scan of the special texts
 * only at a character that is otherwise unspellable.
 */
#include "core/internal.h"

#include <stdlib.h>
#include <string.h>

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Is the text of token t a special text llama.cpp cuts out before the SPM
 * tokenizer? 1: always (user-defined), 2: only when parsing specials. */
static int special_kind(const struct llama_vocab *v, int32_t t) {
    enum llama_token_attr a = llama_vocab_get_attr(v, t);
    if (a & LLAMA_TOKEN_ATTR_USER_DEFINED) return 1;
    if (a & (LLAMA_TOKEN_ATTR_CONTROL | LLAMA_TOKEN_ATTR_UNKNOWN)) return 2;
    return 0;
}

fp_status fpi_spell_build(fp_model *m, fp_error *err) {
    m->spell_on = llama_vocab_type(m->vocab) == LLAMA_VOCAB_TYPE_SPM;
    if (!m->spell_on) return FP_OK;
    memset(m->spell_byte, 0, sizeof m->spell_byte);
    m->spell_cp = malloc(sizeof *m->spell_cp * (size_t)(m->n_vocab > 0 ? m->n_vocab : 1));
    if (!m->spell_cp) return fpi_fail(err, FP_ERR_NOMEM, "out of memory for the vocabulary's characters");
    m->n_spell_cp = 0;
    for (int32_t t = 0; t < m->n_vocab; t++) {
        const char *s = llama_vocab_get_text(m->vocab, t);
        if (!s) continue;
        size_t n = strlen(s);
        if (n == 6 && s[0] == '<' && s[1] == '0' && s[2] == 'x' && s[5] == '>' && hexval(s[3]) >= 0 && hexval(s[4]) >= 0)
            m->spell_byte[hexval(s[3]) << 4 | hexval(s[4])] = true;
        if (n == 1) m->spell_byte[(unsigned char)s[0]] = true; /* byte_to_token's second try */
        uint32_t cp;
        if (n > 0 && fpi_utf8_decode(s, n, &cp) == (int)n) m->spell_cp[m->n_spell_cp++] = cp;
    }
    qsort(m->spell_cp, (size_t)m->n_spell_cp, sizeof *m->spell_cp, cmp_u32);
    return FP_OK;
}

void fpi_spell_free(fp_model *m) {
    free(m->spell_cp);
    m->spell_cp = NULL;
    m->n_spell_cp = 0;
}

/* Can the SPM tokenizer write the character cp, whose bytes are u[0..n)? */
static bool char_ok(const fp_model *m, uint32_t cp, const unsigned char *u, int n) {
    if (bsearch(&cp, m->spell_cp, (size_t)m->n_spell_cp, sizeof cp, cmp_u32)) return true;
    for (int i = 0; i < n; i++) if (!m->spell_byte[u[i]]) return false;
    return true;
}

/* Does a special text llama.cpp cuts out (of the kinds allowed) cover byte at? */
static bool in_special(const fp_model *m, const char *text, size_t len, size_t at, bool special) {
    for (int32_t t = 0; t < m->n_vocab; t++) {
        int k = special_kind(m->vocab, t);
        if (!k || (k == 2 && !special)) continue;
        const char *s = llama_vocab_get_text(m->vocab, t);
        size_t n = s ? strlen(s) : 0;
        if (n == 0 || n > len) continue;
        size_t from = at + 1 >= n ? at + 1 - n : 0;
        for (size_t j = from; j <= at && j + n <= len; j++)
            if (memcmp(text + j, s, n) == 0) return true;
    }
    return false;
}

int64_t fpi_spell_problem(const fp_model *m, const char *text, size_t len, bool special, uint32_t *cp_out) {
    if (!m->spell_on) return -1;
    static const unsigned char mark[3] = { 0xE2, 0x96, 0x81 }; /* "▁", what a space becomes */
    for (size_t i = 0; i < len; ) {
        const unsigned char *u = (const unsigned char *)text + i;
        uint32_t cp;
        int n = fpi_utf8_decode(text + i, len - i, &cp);
        if (n <= 0) return (int64_t)i; /* not UTF-8: callers check that first */
        bool ok = cp == ' ' ? char_ok(m, 0x2581, mark, 3) : char_ok(m, cp, u, n);
        if (!ok && !in_special(m, text, len, i, special)) {
            if (cp_out) *cp_out = cp;
            return (int64_t)i;
        }
        i += (size_t)n;
    }
    return -1;
}

fp_status fp_tokenize_check(const fp_model *m, const char *text, size_t len, bool special, fp_error *err) {
    if (!m || (!text && len)) return fpi_fail(err, FP_ERR_ARG, "no model or no text");
    if (!fp_utf8_valid(text, len)) return fpi_fail(err, FP_ERR_UTF8, "the text is not valid UTF-8");
    if (len > INT32_MAX / 2) return fpi_fail(err, FP_ERR_ARG, "the text is longer than %d bytes", INT32_MAX / 2);
    uint32_t cp = 0;
    int64_t at = fpi_spell_problem(m, text, len, special, &cp);
    if (at < 0) return FP_OK;
    int n = fpi_utf8_decode(text + at, len - (size_t)at, &cp);
    char shown[8] = "";
    if (cp >= 0x20 && cp != 0x7F && n > 0) { memcpy(shown, text + at, (size_t)n); shown[n] = 0; }
    return fpi_fail(err, FP_ERR_ARG, "the model's vocabulary cannot spell %s%s%sU+%04X at byte %lld (no piece, no byte token)",
                    shown[0] ? "\"" : "", shown, shown[0] ? "\" " : "", (unsigned)cp, (long long)at);
}

fp_status fpi_tokenize_fail(const fp_model *m, const char *what, const char *text, size_t len, bool special,
                            fp_error *err) {
    fp_error why = { 0 };
    fp_status st = fp_tokenize_check(m, text, len, special, &why);
    if (st == FP_OK) return fpi_fail(err, FP_ERR_ARG, "%s cannot be tokenized", what);
    return fpi_fail(err, st, "%s cannot be tokenized: %s", what, why.message);
}
