/*
 * tree.c — the document tree, the current path through it, and the trunk.
 *
 * Nodes are spans of tokens; the fork at the end of a node is decided by
 * creating a child node. The current path runs from the prompt node (the
 * root) to `leaf`; the path arrays (tokens, text, byte offsets) are a cache
 * of that path, rebuilt when the path changes. The trunk is the session's
 * own sequence in the engine: it holds the KV cells of the path's first
 * n_past tokens, and fpi_set_path keeps it in step with the path, decoding
 * only the part that differs.
 *
 * Costs: appending a token is amortised O(1); rebuilding the path is O(path);
 * switching paths decodes only the tokens after the common prefix.
 */
#include "core/internal.h"

#include <stdlib.h>
#include <string.h>


/* Ensures *arr has room for need elements of size sz; doubles the capacity. */
bool fpi_grow(void **arr, int32_t *cap, int32_t need, size_t sz) {
    if (need <= *cap) return true;
    int32_t nc = *cap ? *cap : 16;
    while (nc < need) nc *= 2;
    void *p = realloc(*arr, sz * (size_t)nc);
    if (!p) return false;
    *arr = p;
    *cap = nc;
    return true;
}

/* The path arrays share one capacity (cap_path). */
static bool path_reserve(fp_session *s, int32_t need) {
    if (need <= s->cap_path) return true;
    int32_t nc = s->cap_path ? s->cap_path : 256;
    while (nc < need) nc *= 2;
    int32_t *a = realloc(s->path_tok, sizeof(int32_t) * (size_t)nc);
    if (!a) return false;
    s->path_tok = a;
    a = realloc(s->path_node, sizeof(int32_t) * (size_t)nc);
    if (!a) return false;
    s->path_node = a;
    a = realloc(s->path_off, sizeof(int32_t) * (size_t)nc);
    if (!a) return false;
    s->path_off = a;
    s->cap_path = nc;
    return true;
}

fp_status fpi_text_append(fp_session *s, const char *b, size_t n) {
    if (s->text_len + n + 1 > s->text_cap) {
        size_t nc = s->text_cap ? s->text_cap : 1024;
        while (nc < s->text_len + n + 1) nc *= 2;
        char *t = realloc(s->text, nc);
        if (!t) return FP_ERR_NOMEM;
        char *d = realloc(s->disp, nc);
        if (!d) { s->text = t; return FP_ERR_NOMEM; }
        s->text = t;
        s->disp = d;
        s->text_cap = nc;
    }
    memcpy(s->text + s->text_len, b, n);
    s->text_len += n;
    s->text[s->text_len] = 0;
    /* the shown text: complete characters, and not the start of a control
     * text the model may be spelling (control.c) */
    size_t done = fp_utf8_complete_prefix(s->text, s->text_len);
    size_t held = (size_t)fpi_control_suffix(s->engine->model, s->text, s->text_len, NULL);
    if (s->text_len - held < done) done = s->text_len - held;
    if (done > s->text_complete) memcpy(s->disp + s->text_complete, s->text + s->text_complete, done - s->text_complete);
    s->text_complete = done;
    s->disp[done] = 0;
    return FP_OK;
}

fp_candidate *fpi_candidates_dup(const fp_candidate *c, int32_t n) {
    fp_candidate *d = malloc(sizeof *d * (size_t)(n > 0 ? n : 1));
    if (d && n > 0) memcpy(d, c, sizeof *d * (size_t)n);
    return d;
}

/* ---------------------------------------------------------------- nodes */

int32_t fpi_node_new(fp_session *s, fp_node_kind kind, int32_t parent, int32_t parent_fork, int32_t start_pos) {
    if (!fpi_grow((void **)&s->nodes, &s->cap_nodes, s->n_nodes + 1, sizeof *s->nodes)) return -1;
    fp_node *n = &s->nodes[s->n_nodes];
    memset(n, 0, sizeof *n);
    n->id = s->n_nodes;
    n->parent = parent;
    n->kind = kind;
    n->start_pos = start_pos;
    n->fork_id = -1;
    n->parent_fork = parent_fork;
    return s->n_nodes++;
}

bool fpi_node_push(fp_session *s, int32_t id, int32_t tok, const fp_position *pos) {
    fp_node *n = &s->nodes[id];
    if (n->n == n->cap) {
        int32_t nc = n->cap ? n->cap * 2 : 32;
        int32_t *t = realloc(n->tokens, sizeof(int32_t) * (size_t)nc);
        if (!t) return false;
        n->tokens = t;
        fp_position *p = realloc(n->pos, sizeof(fp_position) * (size_t)nc);
        if (!p) return false;
        n->pos = p;
        n->cap = nc;
    }
    n->tokens[n->n] = tok;
    if (pos) n->pos[n->n] = *pos;
    n->n++;
    return true;
}

/* ---------------------------------------------------------- the path */


/* Appends one token to the path cache (not to any node). */
fp_status fpi_path_push(fp_session *s, int32_t tok, int32_t node) {
    if (!path_reserve(s, s->n_path + 1)) return FP_ERR_NOMEM;
    const fp_model *m = s->engine->model;
    s->path_tok[s->n_path] = tok;
    s->path_node[s->n_path] = node;
    s->path_off[s->n_path] = (int32_t)s->text_len;
    s->n_path++;
    if (node == 0) return FP_OK; /* prompt tokens: the prompt text is stored verbatim */
    int32_t n;
    const char *pc = fpi_piece(m, tok, &n);
    if (s->heal_done < s->heal_len) {
        /* token healing: the first generated tokens spell the prompt's last
         * piece again, whose bytes the text already holds */
        int32_t k = s->heal_len - s->heal_done;
        if (k > n) k = n;
        s->heal_done += k;
        pc += k;
        n -= k;
    }
    return fpi_text_append(s, pc, (size_t)n);
}

/* Rebuilds the path cache for root..leaf. */
fp_status fpi_path_rebuild(fp_session *s, int32_t leaf) {
    int32_t chain[4096], depth = 0;
    for (int32_t id = leaf; id >= 0; id = s->nodes[id].parent) {
        if (depth == 4096) return FP_ERR_STATE;
        chain[depth++] = id;
    }
    s->n_path = 0;
    s->heal_done = 0;
    s->text_len = s->text_complete = 0;
    fp_status st = fpi_text_append(s, s->prompt, s->prompt_len);
    if (st != FP_OK) return st;
    for (int32_t d = depth - 1; d >= 0; d--) {
        fp_node *n = &s->nodes[chain[d]];
        for (int32_t i = 0; i < n->n; i++)
            if ((st = fpi_path_push(s, n->tokens[i], n->id)) != FP_OK) return st;
    }
    s->leaf = leaf;
    return FP_OK;
}

/* The generated position record of path index p (p >= n_prompt). */
fp_position *fpi_path_pos(fp_session *s, int32_t p) {
    fp_node *n = &s->nodes[s->path_node[p]];
    return &n->pos[p - n->start_pos];
}

/* ---------------------------------------------------------- the window
 *
 * Endless text. The model sees at most fpi_window(s) tokens at a fork: the
 * start of the text (the first n_keep tokens: the prompt, or its first half
 * window) and the newest tokens. When the trunk is full the run loop slides
 * the window: the oldest chunk after the kept start leaves the KV cache
 * (llama_memory_seq_rm) and the tokens after it move down
 * (llama_memory_seq_add; llama.cpp rotates their keys to the new positions
 * at the next decode). The text itself, the tree and the forks keep every
 * token. A chunk is half of what lies between the kept start and the
 * window's end, so a slide costs no decode and happens every chunk tokens.
 *
 * Going back across a slide (undo, goto, a restored session, a failed
 * decision put back) needs tokens that left the cache: the trunk is laid
 * out again for that path (the same kept start, the newest tokens before
 * its end) and decoded again, at most a window's worth. The fork reopened
 * there shows what it showed, and a candidate taken alone is followed by
 * its preview, token for token (the plan); what the model writes after the
 * preview comes from the decoded-again window, whose floats may differ in
 * the last bits from the slid one it first had.
 */

int32_t fpi_window(const fp_session *s) {
    int32_t w = s->engine->n_pos_max - fpi_reserve_tokens(s);
    int32_t c = (int32_t)s->engine->n_ctx - fpi_branch_cells(s);
    return w < c ? w : c;
}

/* The kept start: the prompt's tokens, at most half the window. */
static int32_t keep_for(const fp_session *s) {
    int32_t half = fpi_window(s) / 2, np = s->n_nodes > 0 ? s->nodes[0].n : 0;
    if (half < 0) half = 0;
    return np < half ? np : half;
}

/* Tokens that leave per slide: half the room between the kept start and the end. */
static int32_t chunk_for(const fp_session *s, int32_t keep) {
    int32_t d = (fpi_window(s) - keep) / 2;
    return d > 0 ? d : 1;
}

/* The gap a path of len tokens needs: whole chunks, as slides make it. */
static int32_t shift_for(const fp_session *s, int32_t keep, int32_t len) {
    int32_t w = fpi_window(s);
    if (len <= w || !s->engine->can_shift) return 0;
    int32_t d = chunk_for(s, keep);
    return (len - w + d - 1) / d * d;
}

bool fpi_window_fits(const fp_session *s) {
    return s->n_keep == keep_for(s) && s->n_path - s->n_shift <= fpi_window(s);
}

fp_status fpi_window_slide(fp_session *s, fp_error *err) {
    if (s->shadow) return fpi_fail(err, FP_ERR_CAPACITY, "speculation stops where the context window would move");
    if (!s->engine->can_shift) return fpi_fail(err, FP_ERR_CONTEXT, "this model's memory cannot move: the context is full");
    /* seq_add moves a cell for every sequence that holds it */
    if (s->n_scratch > 0 || s->n_prefetch > 0)
        return fpi_fail(err, FP_ERR_STATE, "the window cannot move while branches share the trunk's cells");
    if (s->n_past != s->n_path) return fpi_fail(err, FP_ERR_STATE, "the trunk is not complete");
    int32_t k = s->n_keep, d = chunk_for(s, k);
    if (s->n_past - s->n_shift - k <= d) return fpi_fail(err, FP_ERR_CONTEXT, "the window has nothing left to let go");
    fp_engine *mem_e = s->engine;
    if (!fpi_seq_rm(mem_e, s->trunk_seq, k, k + d))
        return fpi_fail(err, FP_ERR_CONTEXT, "the KV cache cannot drop a range of cells");
    fpi_seq_add(mem_e, s->trunk_seq, k + d, -1, -d);
    s->n_shift += d;
    return FP_OK;
}

void fpi_trunk_reset(fp_session *s) {
    fpi_seq_rm(s->engine, s->trunk_seq, -1, -1);
    s->n_past = 0;
    s->n_keep = keep_for(s);
    s->n_shift = shift_for(s, s->n_keep, s->n_path);
}

/* Decodes what the trunk lacks of the path into the window: the kept start,
 * then (past the gap) the newest tokens. On failure the trunk holds what it
 * took in before the failing span, and n_past says so. */
static fp_status trunk_fill(fp_session *s, bool want_logits, fp_error *err) {
    fp_engine *mem_e = s->engine;
    fp_status st;
    if (s->n_past < s->n_keep) {
        int32_t to = s->n_keep < s->n_path ? s->n_keep : s->n_path;
        st = fpi_engine_decode_span(s->engine, s->trunk_seq, s->path_tok + s->n_past, to - s->n_past, s->n_past,
                                    want_logits && to == s->n_path, err);
        if (st != FP_OK) { fpi_seq_rm(mem_e, s->trunk_seq, s->n_past, -1); return st; }
        s->n_past = to;
    }
    if (s->n_past == s->n_keep && s->n_shift > 0) s->n_past = s->n_keep + s->n_shift; /* over the gap */
    if (s->n_past < s->n_path) {
        int32_t from = s->n_past;
        st = fpi_engine_decode_span(s->engine, s->trunk_seq, s->path_tok + from, s->n_path - from, fpi_kv_pos(s, from),
                                    want_logits, err);
        if (st != FP_OK) { fpi_seq_rm(mem_e, s->trunk_seq, fpi_kv_pos(s, from), -1); return st; }
    }
    s->n_past = s->n_path;
    if (want_logits)
        memcpy(s->cur_logits, fpi_engine_logits(s->engine, -1), sizeof(float) * (size_t)s->n_vocab);
    return FP_OK;
}

/* Makes the trunk KV hold the current path: keeps the common prefix with
 * what it held (old tokens in old_tok), drops the rest, decodes the new
 * tail. When the path no longer fits the window as it is laid out (it
 * grew past it, or went back before its gap), the window is laid out again
 * for the path and what it lacks is decoded. On failure the trunk holds a
 * prefix of the window and n_past says so. */
fp_status fpi_trunk_sync(fp_session *s, const int32_t *old_tok, int32_t old_n, bool want_logits, fp_error *err) {
    int32_t common = 0;
    int32_t lim = old_n < s->n_path ? old_n : s->n_path;
    if (lim > s->n_past) lim = s->n_past;
    while (common < lim && old_tok[common] == s->path_tok[common]) common++;
    if (want_logits && common == s->n_path) common--; /* the last token must be decoded to get its logits */
    int32_t keep = keep_for(s);
    bool fits = fpi_window_fits(s) && (s->n_shift == 0 || common >= s->n_keep + s->n_shift);
    if (!fits) {
        /* laid out again: only the kept start stays where it was */
        if (common > s->n_keep) common = s->n_keep;
        if (common > keep) common = keep;
        s->n_keep = keep;
        s->n_shift = shift_for(s, keep, s->n_path);
    }
    fpi_seq_rm(s->engine, s->trunk_seq, fpi_kv_pos(s, common), -1);
    s->n_past = common;
    return trunk_fill(s, want_logits, err);
}

fp_status fpi_trunk_repair(fp_session *s, fp_error *err) {
    if (s->n_past >= s->n_path) return FP_OK;
    return trunk_fill(s, false, err);
}

/* Resets the sampler chain's history (the repetition penalty's window) to
 * the path. A grammar (the chain's first sampler) sees every generated
 * token, the other samplers the penalty window: O(generated) with a
 * grammar, O(repeat_last_n) without. */
void fpi_chain_resync(fp_session *s) {
    llama_sampler_reset(s->chain);
    int32_t from = s->n_path - s->st.repeat_last_n;
    if (from < 0) from = 0;
    if (!s->grammar) {
        for (int32_t i = from; i < s->n_path; i++) llama_sampler_accept(s->chain, s->path_tok[i]);
        return;
    }
    struct llama_sampler *g = llama_sampler_chain_get(s->chain, 0);
    for (int32_t i = fpi_n_prompt(s); i < s->n_path; i++) llama_sampler_accept(g, s->path_tok[i]);
    int32_t n = llama_sampler_chain_n(s->chain);
    for (int32_t j = 1; j < n; j++) {
        struct llama_sampler *x = llama_sampler_chain_get(s->chain, j);
        for (int32_t i = from; i < s->n_path; i++) llama_sampler_accept(x, s->path_tok[i]);
    }
}

/* Switches the current path to root..leaf, keeping the trunk KV in step.
 * On a failed decode the path is switched but the trunk holds only its
 * first n_past tokens (fpi_trunk_repair finishes the job later). */
fp_status fpi_set_path(fp_session *s, int32_t leaf, bool want_logits, fp_error *err) {
    int32_t old_n = s->n_past;
    int32_t *old = malloc(sizeof(int32_t) * (size_t)(old_n > 0 ? old_n : 1));
    if (!old) return fpi_fail(err, FP_ERR_NOMEM, "out of memory");
    if (old_n > 0) memcpy(old, s->path_tok, sizeof(int32_t) * (size_t)old_n);
    fp_status st = fpi_path_rebuild(s, leaf);
    if (st != FP_OK) { free(old); return fpi_fail(err, st, "cannot rebuild the path"); }
    st = fpi_trunk_sync(s, old, old_n, want_logits, err);
    free(old);
    fpi_chain_resync(s);
    return st;
}


/* ---------------------------------------------------------- splitting */

int32_t fpi_node_split(fp_session *s, int32_t y, int32_t p) {
    int32_t cut = p - s->nodes[y].start_pos;
    int32_t z = fpi_node_new(s, s->nodes[y].kind == FP_NODE_PROMPT ? FP_NODE_AUTO : FP_NODE_SPLIT, y, -1, p);
    if (z < 0) return -1;
    fp_node *ny = &s->nodes[y];
    for (int32_t i = cut; i < ny->n; i++) {
        if (!fpi_node_push(s, z, ny->tokens[i], &ny->pos[i])) { s->nodes[z].n = 0; fpi_node_drop_last(s); return -1; }
        ny = &s->nodes[y];
    }
    fp_node *nz = &s->nodes[z];
    ny->n = cut;
    for (int32_t i = 0; i < s->n_nodes; i++)
        if (i != z && s->nodes[i].parent == y) s->nodes[i].parent = z;
    nz->fork_id = ny->fork_id;
    if (nz->fork_id >= 0) s->forks[nz->fork_id].node = z;
    ny->fork_id = -1;
    if (s->leaf == y) s->leaf = z;
    for (int32_t i = 0; i < s->n_path; i++) if (s->path_node[i] == y && i >= p) s->path_node[i] = z;
    return z;
}

void fpi_node_unsplit(fp_session *s, int32_t y, int32_t z) {
    fp_node *ny = &s->nodes[y], *nz = &s->nodes[z];
    /* y's arrays still hold the tokens after the cut: only the count moved */
    ny->n += nz->n;
    for (int32_t i = 0; i < s->n_nodes; i++)
        if (s->nodes[i].parent == z) s->nodes[i].parent = y;
    ny->fork_id = nz->fork_id;
    if (ny->fork_id >= 0) s->forks[ny->fork_id].node = y;
    if (s->leaf == z) s->leaf = y;
    for (int32_t i = 0; i < s->n_path; i++) if (s->path_node[i] == z) s->path_node[i] = y;
    nz->n = 0;
    nz->fork_id = -1;
    if (z == s->n_nodes - 1) fpi_node_drop_last(s);
}

void fpi_node_drop_last(fp_session *s) {
    fp_node *n = &s->nodes[--s->n_nodes];
    free(n->tokens);
    free(n->pos);
    memset(n, 0, sizeof *n);
}
