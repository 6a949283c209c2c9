/*
 * utf8.c — UTF-8 validation and the "complete prefix" rule.
 *
 * Tokens are byte sequences: one character may be split across two or three
 * tokens (byte-fallback pieces). Forkpoint shows only complete characters, so
 * the text is cut at the longest prefix that ends on a character boundary.
 * Validation follows RFC 3629: no overlong forms, no surrogates, nothing
 * above U+10FFFF.
 */
#include "core/internal.h"

#include <string.h>

/* Length of the valid sequence starting at s[0], 0 if invalid, or -1 if it is
 * a valid start that runs past the end of the buffer (incomplete). */
static int seq_len(const unsigned char *s, size_t avail) {
    unsigned c = s[0];
    int n;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c < 0x80) return 1;
    if (c < 0xC2) return 0;
    if (c < 0xE0) n = 2;
    else if (c < 0xF0) { n = 3; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
    else if (c < 0xF5) { n = 4; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
    else return 0;
    for (int i = 1; i < n; i++) {
        if ((size_t)i >= avail) return -1;
        unsigned b = s[i];
        if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return 0;
    }
    return n;
}

bool fp_utf8_valid(const char *buf, size_t len) {
    const unsigned char *s = (const unsigned char *)buf;
    size_t i = 0;
    while (i < len) {
        int n = seq_len(s + i, len - i);
        if (n <= 0) return false;
        i += (size_t)n;
    }
    return true;
}

size_t fp_utf8_complete_prefix(const char *buf, size_t len) {
    const unsigned char *s = (const unsigned char *)buf;
    size_t i = 0;
    while (i < len) {
        int n = seq_len(s + i, len - i);
        if (n == -1) return i;  /* an incomplete character at the end: hold it back */
        if (n == 0) { i++; continue; } /* an invalid byte mid-text stays visible as is */
        i += (size_t)n;
    }
    return i;
}

/* Valid UTF-8, except that the last character may be unfinished. */
static bool valid_prefix(const unsigned char *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        int n = seq_len(s + i, len - i);
        if (n == -1) return true;
        if (n == 0) return false;
        i += (size_t)n;
    }
    return true;
}

bool fpi_utf8_continues(const char *tail, size_t tail_n, const char *piece, size_t piece_n) {
    unsigned char buf[4 + 512];
    if (memchr(piece, 0, piece_n)) return false; /* U+0000 is no text: C strings and JSON clients cut at it */
    if (tail_n > 4) return false;
    if (tail_n + piece_n > sizeof buf) return fp_utf8_valid(piece, piece_n); /* no tail can be that long */
    memcpy(buf, tail, tail_n);
    memcpy(buf + tail_n, piece, piece_n);
    return valid_prefix(buf, tail_n + piece_n);
}

size_t fpi_utf8_copy(char *dst, size_t cap, const char *src) {
    size_t n = strlen(src);
    if (cap == 0) return 0;
    if (n >= cap) {
        n = cap - 1;
        /* back off to the start of a character: never half of one */
        while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80) n--;
    }
    memcpy(dst, src, n);
    dst[n] = 0;
    return n;
}

/* ------------------------------------------------ characters and scripts */

int fpi_utf8_decode(const char *buf, size_t len, uint32_t *cp) {
    const unsigned char *s = (const unsigned char *)buf;
    if (len == 0) return -1;
    int n = seq_len(s, len);
    if (n <= 0) return n;
    uint32_t c = n == 1 ? s[0] : (uint32_t)(s[0] & (0xFF >> (n + 1)));
    for (int i = 1; i < n; i++) c = c << 6 | (s[i] & 0x3F);
    *cp = c;
    return n;
}

/* Simple case folding for the scripts whose letters people type in
 * upper and lower case: Latin (ASCII, Latin-1, Latin Extended-A), Greek,
 * Cyrillic. Other code points fold to themselves. O(1). */
uint32_t fpi_cp_fold(uint32_t c) {
    if (c >= 'A' && c <= 'Z') return c + 32;
    if (c < 0x80) return c;
    if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 32;            /* À..Þ */
    if (c == 0x178) return 0xFF;                                       /* Ÿ */
    if (c >= 0x100 && c <= 0x17F && c != 0x130 && c != 0x131 && c != 0x138 && c != 0x149 && c != 0x17F) {
        /* Latin Extended-A pairs: even/odd, shifted by one in 0x139..0x148 and 0x179..0x17E */
        bool odd_upper = (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E);
        return odd_upper ? (c & 1 ? c + 1 : c) : (c & 1 ? c : c + 1);
    }
    if (c >= 0x391 && c <= 0x3AB && c != 0x3A2) return c + 32;         /* Greek capitals */
    if (c >= 0x410 && c <= 0x42F) return c + 32;                       /* А..Я */
    if (c >= 0x400 && c <= 0x40F) return c + 80;                       /* Ѐ..Џ */
    if (c >= 0x460 && c <= 0x4FF && !(c & 1) && !(c >= 0x482 && c <= 0x489) && !(c >= 0x4C0 && c <= 0x4CF))
        return c + 1;                                                  /* Cyrillic pairs */
    return c;
}

/* Does a piece begin with a character of a script written without spaces
 * between words (Chinese, Japanese, Thai, Lao, Myanmar, Khmer), or with
 * the lead bytes of one? Such a character starts a new unit of choice: the
 * cloud offers characters and the phrases one token spans, never a
 * "word" that could only end at the next space. Decided from the first
 * one or two bytes, so a byte-level piece holding only the start of a
 * character is classified like the character. */
bool fpi_nospace_start(const char *piece, size_t n) {
    const unsigned char *u = (const unsigned char *)piece;
    if (n == 0) return false;
    if (u[0] >= 0xE3 && u[0] <= 0xE9) return true;       /* U+3000..U+9FFF: CJK symbols, kana, ideographs */
    if (n < 2) return u[0] == 0xEF;                       /* a lone lead byte of U+F000..: mostly fullwidth marks */
    if (u[0] == 0xEF) return (u[1] >= 0xA4 && u[1] <= 0xAB) || u[1] >= 0xBC; /* compatibility ideographs, fullwidth forms */
    if (u[0] == 0xE0) return u[1] >= 0xB8 && u[1] <= 0xBB;  /* Thai, Lao */
    if (u[0] == 0xE1) return u[1] <= 0x82 || u[1] == 0x9E || u[1] == 0x9F; /* Myanmar, Khmer */
    if (u[0] == 0xF0) return u[1] >= 0xA0 && u[1] <= 0xAF;  /* CJK extensions B..F */
    return false;
}
