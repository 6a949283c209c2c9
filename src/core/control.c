/*
 * control.c — control text is never shown as text.
 *
 * Control, end-of-generation and end-of-turn tokens are not written by
 * Forkpoint (their pieces are empty). But a small model can learn to spell
 * their text with ordinary pieces: TinyStories-656K ends its stories with
 * "<|", "end", "_", "story", "|>". So the texts of the vocabulary's control
 * tokens are collected at load, and:
 *   - the shown text holds back an ending that may be the start of one (at
 *     least two bytes: a lone "<" is ordinary text);
 *   - when one is complete, the tokens that spelled it are taken back and
 *     the text ends, as at the end-of-generation token;
 *   - no candidate ends in one, and a preview stops before one.
 *
 * Cost: checking an ending is O(longest control text x control texts that
 * start with the byte found there), and nothing when no byte of the ending
 * can start one.
 */
#include "core/internal.h"

#include <stdlib.h>
#include <string.h>

fp_status fpi_control_texts_build(fp_model *m, fp_error *err) {
    size_t cap = 256, used = 0;
    char *buf = malloc(cap);
    int32_t *off = malloc(sizeof(int32_t) * 17), n = 0, cap_off = 16;
    if (!buf || !off) { free(buf); free(off); return fpi_fail(err, FP_ERR_NOMEM, "out of memory"); }
    char piece[256];
    for (int32_t t = 0; t < m->n_vocab; t++) {
        if (!(m->tok_flags[t] & (FP_TOK_CONTROL | FP_TOK_EOG))) continue;
        int32_t k = llama_token_to_piece(m->vocab, t, piece, sizeof piece, 0, true);
        if (k < 2) continue;
        if (used + (size_t)k + 1 > cap || n + 1 >= cap_off) {
            cap = cap * 2 + (size_t)k;
            cap_off *= 2;
            char *nb = realloc(buf, cap);
            int32_t *no = nb ? realloc(off, sizeof(int32_t) * (size_t)(cap_off + 1)) : NULL;
            if (nb) buf = nb;
            if (no) off = no;
            if (!nb || !no) { free(buf); free(off); return fpi_fail(err, FP_ERR_NOMEM, "out of memory"); }
        }
        off[n++] = (int32_t)used;
        memcpy(buf + used, piece, (size_t)k);
        used += (size_t)k;
        m->ctl_first[(unsigned char)piece[0]] = true;
        if (k > m->ctl_max) m->ctl_max = k;
    }
    off[n] = (int32_t)used;
    m->ctl = buf;
    m->ctl_off = off;
    m->n_ctl = n;
    return FP_OK;
}

void fpi_control_texts_free(fp_model *m) {
    free(m->ctl);
    free(m->ctl_off);
    m->ctl = NULL;
    m->ctl_off = NULL;
    m->n_ctl = 0;
}

int32_t fpi_control_suffix(const fp_model *m, const char *text, size_t len, bool *complete) {
    if (complete) *complete = false;
    if (m->n_ctl == 0 || len < 2) return 0;
    size_t from = len > (size_t)m->ctl_max ? len - (size_t)m->ctl_max : 0;
    for (size_t pos = from; pos + 2 <= len; pos++) {  /* the longest ending first */
        if (!m->ctl_first[(unsigned char)text[pos]]) continue;
        size_t l = len - pos;
        for (int32_t i = 0; i < m->n_ctl; i++) {
            size_t cl = (size_t)(m->ctl_off[i + 1] - m->ctl_off[i]);
            if (l > cl || memcmp(text + pos, m->ctl + m->ctl_off[i], l) != 0) continue;
            if (complete) *complete = l == cl;
            return (int32_t)l;
        }
    }
    return 0;
}
