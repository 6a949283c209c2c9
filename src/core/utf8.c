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
