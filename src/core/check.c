/*
 * check.c — the session's invariants, as code that runs.
 *
 * Why: the invariants written beside the structures (internal.h) are only
 * worth what checks them. In the spirit of SQLite's assert_pager_state, the
 * test build (FP_CHECKS) runs fpi_session_check after every public mutator
 * and aborts with the broken rule, so a test that merely drives the library
 * also proves its state stayed consistent. Cost: O(path + tree + forks) per
 * call, plus one KV query per sequence; never compiled into release builds'
 * hot paths (fpi_check is a no-op there).
 */
#include "core/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAIL(...) do { snprintf(why, cap, __VA_ARGS__); return false; } while (0)

static bool check_path(const fp_session *s, char *why, size_t cap) {
    /* the path cache is root..leaf of the tree */
    int32_t n = 0;
    for (int32_t id = s->leaf; id >= 0; id = s->nodes[id].parent) {
        if (id >= s->n_nodes) FAIL("node %d on the path does not exist", id);
        n += s->nodes[id].n;
        if (n > s->n_path) FAIL("the tree's path is longer than the path cache (%d)", s->n_path);
    }
    if (n != s->n_path) FAIL("the tree's path has %d tokens, the cache %d", n, s->n_path);
    for (int32_t p = 0; p < s->n_path; p++) {
        int32_t id = s->path_node[p];
        const fp_node *nd = &s->nodes[id];
        int32_t i = p - nd->start_pos;
        if (i < 0 || i >= nd->n) FAIL("path position %d is outside its node %d", p, id);
        if (nd->tokens[i] != s->path_tok[p]) FAIL("path token %d differs from its node's", p);
        if (p >= fpi_n_prompt(s) && nd->pos[i].token != s->path_tok[p]) FAIL("position record %d names another token", p);
    }
    if (!fp_utf8_valid(s->text, fp_utf8_complete_prefix(s->text, s->text_len))) FAIL("the text is not valid UTF-8");
    if (fpi_text_tail(s) > 3) FAIL("the text ends in %d unfinished bytes", fpi_text_tail(s));
    if (s->text_complete > s->text_len || memcmp(s->disp, s->text, s->text_complete) != 0)
        FAIL("the shown text is not a prefix of the text");
    return true;
}

static bool check_trunk(const fp_session *s, char *why, size_t cap) {
    if (s->n_past < 0 || s->n_past > s->n_path) FAIL("n_past %d outside 0..%d", s->n_past, s->n_path);
    fp_engine *mem_e = s->engine;
    if (s->n_shift > 0 && s->n_past > s->n_keep && s->n_past < s->n_keep + s->n_shift)
        FAIL("n_past %d lies in the window's gap [%d, %d)", s->n_past, s->n_keep, s->n_keep + s->n_shift);
    if (s->n_shift < 0 || s->n_keep < 0 || s->n_keep > fpi_n_prompt(s)) FAIL("window keep %d shift %d", s->n_keep, s->n_shift);
    llama_pos hi = fpi_seq_pos_max(mem_e, s->trunk_seq);
    if (hi != fpi_kv_pos(s, s->n_past) - 1)
        FAIL("the trunk holds positions up to %d, n_past %d is at %d", (int)hi, s->n_past, fpi_kv_pos(s, s->n_past));
    if (s->state == FP_STATE_AT_FORK && s->n_past == s->n_path && s->n_path - s->n_shift > fpi_window(s))
        FAIL("a fork is open with %d tokens in a window of %d", s->n_path - s->n_shift, fpi_window(s));
    if (s->n_past > 0 && fpi_seq_pos_min(mem_e, s->trunk_seq) != 0) FAIL("the trunk does not start at 0");
    if (s->engine->seq_owner[s->trunk_seq] != &s->user) FAIL("the trunk sequence is not the session's");
    return true;
}

/* Do a candidate's tokens spell its text, as whole UTF-8 characters? Choosing
 * it appends those tokens; text that is not theirs (a damaged saved session:
 * " the" over a lone lead byte) would make the document invalid UTF-8 later.
 * The end-of-text candidate has no text of its own. O(candidate bytes). */
static bool candidate_spelled(const fp_session *s, const fp_candidate *k) {
    if (k->is_eog) return true;
    const fp_model *m = s->engine->model;
    size_t at = 0, tl = strlen(k->text);
    for (int32_t t = 0; t < k->n_tokens; t++) {
        if (k->tokens[t] < 0 || k->tokens[t] >= m->n_vocab) return false;
        int32_t n;
        const char *p = fpi_piece(m, k->tokens[t], &n);
        if (at + (size_t)n > tl || memcmp(k->text + at, p, (size_t)n) != 0) return false;
        at += (size_t)n;
    }
    return at == tl && fp_utf8_complete_prefix(k->text, tl) == tl;
}

static bool check_forks(const fp_session *s, char *why, size_t cap) {
    if ((s->state == FP_STATE_AT_FORK) != (s->open_fork >= 0)) FAIL("state %d with open fork %d", s->state, s->open_fork);
    for (int32_t i = 0; i < s->n_forks; i++) {
        const fp_fork_rec *f = &s->forks[i];
        if (f->pub.id != i) FAIL("fork %d has id %d", i, f->pub.id);
        if (f->node < 0 || f->node >= s->n_nodes) FAIL("fork %d stands on no node", i);
        if (s->nodes[f->node].fork_id != i) FAIL("fork %d's node %d names fork %d", i, f->node, s->nodes[f->node].fork_id);
        if (f->n_shown < 0 || f->n_shown > f->cap || f->n_base > f->cap) FAIL("fork %d shows %d of room %d", i, f->n_shown, f->cap);
        for (int32_t c = 0; c < f->n_shown; c++) {
            const fp_candidate *k = &f->shown[c];
            if (!fp_utf8_valid(k->text, strlen(k->text)) || !fp_utf8_valid(k->preview, strlen(k->preview)))
                FAIL("fork %d candidate %d is not valid UTF-8", i, c);
        }
    }
    for (int32_t i = 0; i < s->n_nodes; i++) {
        if (s->nodes[i].fork_id >= s->n_forks) FAIL("node %d names fork %d of %d", i, s->nodes[i].fork_id, s->n_forks);
        if (s->nodes[i].parent_fork >= s->n_forks) FAIL("node %d comes from fork %d of %d", i, s->nodes[i].parent_fork, s->n_forks);
    }
    if (s->open_fork >= 0) {
        const fp_fork_rec *f = &s->forks[s->open_fork];
        if (f->node != s->leaf) FAIL("the open fork %d stands on node %d, the leaf is %d", s->open_fork, f->node, s->leaf);
        if (f->pub.position != s->n_path) FAIL("the open fork is at %d, the path ends at %d", f->pub.position, s->n_path);
        if ((size_t)f->pub.text_offset != s->text_len) FAIL("the open fork is at byte %d, the text ends at %zu", f->pub.text_offset, s->text_len);
        if (s->text_complete != s->text_len) FAIL("a fork is open where the shown text does not end");
        if (f->pub.candidates != f->shown || f->pub.n_candidates != f->n_shown) FAIL("the open fork does not show its cloud");
        for (int32_t c = 0; c < f->n_shown; c++)
            if (!candidate_spelled(s, &f->shown[c])) FAIL("the open fork's candidate %d is not spelled by its tokens", c);
        for (int32_t c = 0; c < f->n_base; c++)
            if (!candidate_spelled(s, &f->base[c])) FAIL("the open fork's base candidate %d is not spelled by its tokens", c);
    }
    for (int32_t i = 0; i < s->n_events; i++)
        if (s->events[i].id < 0 || s->events[i].id >= s->n_forks) FAIL("event %d names fork %d", i, s->events[i].id);
    return true;
}

static bool check_live(const fp_session *s, char *why, size_t cap) {
    for (int32_t i = 0; i < s->n_scratch; i++)
        if (s->engine->seq_owner[s->scratch[i]] != &s->user) FAIL("scratch sequence %d is not the session's", s->scratch[i]);
    if (!s->live.valid || s->stale) return true;
    if (s->live.fork_id != s->open_fork) FAIL("live branches of fork %d, the open fork is %d", s->live.fork_id, s->open_fork);
    const fp_fork_rec *f = &s->forks[s->open_fork];
    fp_engine *mem_e = s->engine;
    for (int32_t i = 0; i < f->n_shown; i++) {
        int32_t q = s->live.seq[i];
        if (q < 0) continue;
        if (s->engine->seq_owner[q] != &s->user) FAIL("live branch %d is not the session's", i);
        int32_t want = fpi_kv_pos(s, s->n_past) + f->shown[i].n_tokens + s->live.n_decoded_preview[i] - 1;
        if (s->live.n_decoded_preview[i] > f->shown[i].n_preview) FAIL("live branch %d holds more preview than shown", i);
        if (fpi_seq_pos_max(mem_e, q) != want)
            FAIL("live branch %d ends at %d, want %d", i, (int)fpi_seq_pos_max(mem_e, q), want);
    }
    return true;
}

bool fpi_session_check(const fp_session *s, char *why, size_t cap) {
    return check_path(s, why, cap) && check_trunk(s, why, cap) && check_forks(s, why, cap) && check_live(s, why, cap);
}

#ifdef FP_CHECKS
void fpi_check_or_abort(const fp_session *s) {
    char why[256];
    if (!s || s->shadow || fpi_session_check(s, why, sizeof why)) return;
    fprintf(stderr, "forkpoint: session invariant broken: %s\n", why);
    abort();
}
#endif
