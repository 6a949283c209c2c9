/*
 * width.c — how wide text is on a terminal, and where its lines break.
 *
 * A terminal gives a Chinese character or an emoji two columns, a combining
 * accent none, and breaks a long line wherever the column runs out, also in
 * the middle of a word. So the terminal front end counts columns itself
 * (East Asian Wide and Fullwidth characters are 2, combining marks and
 * zero-width characters 0: the ranges of Unicode's EastAsianWidth.txt that
 * matter for text, not a locale's wcwidth, which differs between machines)
 * and breaks lines before a word that would not fit, or between two wide
 * characters (scripts without spaces break between any two characters).
 * A word longer than a whole line is broken where the line ends.
 *
 * Costs: O(n) in the bytes of the text; no allocation (the caller gives the
 * room for the break offsets).
 */
#include "cli/cli.h"

#include <string.h>

/* Decodes one UTF-8 character; an invalid or cut byte counts as one column. */
static int decode(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned c = s[0];
    int len = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    if ((size_t)len > n) len = 1;
    uint32_t v = len == 1 ? c : c & (0x7Fu >> len);
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) { *cp = c; return 1; }
        v = v << 6 | (s[i] & 0x3F);
    }
    *cp = v;
    return len;
}

int cli_char_width(uint32_t c) {
    if (c == 0) return 0;
    if (c < 0x20 || (c >= 0x7F && c < 0xA0)) return 0;                    /* controls */
    if ((c >= 0x300 && c <= 0x36F) || (c >= 0x1AB0 && c <= 0x1AFF) || (c >= 0x1DC0 && c <= 0x1DFF) ||
        (c >= 0x20D0 && c <= 0x20FF) || (c >= 0xFE20 && c <= 0xFE2F) || (c >= 0x200B && c <= 0x200F) ||
        (c >= 0xFE00 && c <= 0xFE0F) || c == 0x2060 || c == 0xFEFF)
        return 0;                                                          /* combining, zero-width */
    if ((c >= 0x1100 && c <= 0x115F) || (c >= 0x2E80 && c <= 0x303E) || (c >= 0x3041 && c <= 0x33FF) ||
        (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0xA000 && c <= 0xA4CF) ||
        (c >= 0xAC00 && c <= 0xD7A3) || (c >= 0xF900 && c <= 0xFAFF) || (c >= 0xFE30 && c <= 0xFE4F) ||
        (c >= 0xFF00 && c <= 0xFF60) || (c >= 0xFFE0 && c <= 0xFFE6) || (c >= 0x1F300 && c <= 0x1F64F) ||
        (c >= 0x1F900 && c <= 0x1F9FF) || (c >= 0x20000 && c <= 0x3FFFD))
        return 2;                                                          /* East Asian Wide, Fullwidth */
    return 1;
}

int cli_text_width(const char *text, size_t n) {
    const unsigned char *s = (const unsigned char *)text;
    int w = 0;
    for (size_t i = 0; i < n;) {
        uint32_t c;
        i += (size_t)decode(s + i, n - i, &c);
        w += cli_char_width(c);
    }
    return w;
}

int32_t cli_wrap(const char *text, size_t n, int cols, size_t *breaks, int32_t cap) {
    const unsigned char *s = (const unsigned char *)text;
    if (cols < 2) cols = 2;
    int32_t nb = 0;
    int col = 0;
    size_t i = 0;
    while (i < n && nb < cap) {
        if (s[i] == '\n') { col = 0; i++; continue; }
        if (s[i] == ' ' || s[i] == '\t') {
            /* a space at the end of a line is not carried to the next one */
            col += s[i] == '\t' ? 8 - col % 8 : 1;
            if (col > cols) col = cols;
            i++;
            continue;
        }
        /* the next unit: one wide character, or a word up to a space or a wide character */
        uint32_t c;
        size_t j = i;
        int w = 0;
        int len = decode(s + j, n - j, &c);
        if (cli_char_width(c) == 2) { w = 2; j += (size_t)len; }
        else {
            while (j < n && s[j] != ' ' && s[j] != '\t' && s[j] != '\n') {
                len = decode(s + j, n - j, &c);
                if (cli_char_width(c) == 2) break;
                w += cli_char_width(c);
                j += (size_t)len;
            }
        }
        if (col > 0 && col + w > cols) { breaks[nb++] = i; col = 0; }
        if (w <= cols - col) { col += w; i = j; continue; }
        /* longer than a line: broken where each line ends */
        while (i < j && nb < cap) {
            len = decode(s + i, j - i, &c);
            int cw = cli_char_width(c);
            if (col + cw > cols) { breaks[nb++] = i; col = 0; }
            col += cw;
            i += (size_t)len;
        }
    }
    return nb;
}
