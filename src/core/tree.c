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
    /* the shown text grows by the newly completed characters only */
    size_t done = fp_utf8_complete_prefix(s->text, s->text_len);
    memcpy(s->disp + s->text_complete, s->text + s->text_complete, done - s->text_complete);
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
    const char *pc = fp_piece(m, tok, &n);
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

/* Makes the trunk KV hold exactly the current path: keeps the common prefix
 * with what it held (old tokens in old_tok), drops the rest, decodes the new
 * tail. On failure the trunk holds the common prefix and n_past says so
 * (cells a half-done decode left behind are dropped). */
fp_status fpi_trunk_sync(fp_session *s, const int32_t *old_tok, int32_t old_n, bool want_logits, fp_error *err) {
    int32_t common = 0;
    int32_t lim = old_n < s->n_path ? old_n : s->n_path;
    while (common < lim && old_tok[common] == s->path_tok[common]) common++;
    if (want_logits && common == s->n_path) common--; /* the last token must be decoded to get its logits */
    llama_memory_t mem = fp_engine_mem(s->engine);
    llama_memory_seq_rm(mem, s->trunk_seq, common, -1);
    s->n_past = common;
    fp_status st = fp_engine_decode_span(s->engine, s->trunk_seq, s->path_tok + common, s->n_path - common,
                                         common, want_logits, err);
    if (st != FP_OK) { llama_memory_seq_rm(mem, s->trunk_seq, common, -1); return st; }
    s->n_past = s->n_path;
    if (want_logits)
        memcpy(s->cur_logits, llama_get_logits_ith(s->engine->ctx, -1), sizeof(float) * (size_t)s->n_vocab);
    return FP_OK;
}

fp_status fpi_trunk_repair(fp_session *s, fp_error *err) {
    if (s->n_past >= s->n_path) return FP_OK;
    int32_t from = s->n_past;
    fp_status st = fp_engine_decode_span(s->engine, s->trunk_seq, s->path_tok + from, s->n_path - from, from, false, err);
    if (st != FP_OK) { llama_memory_seq_rm(fp_engine_mem(s->engine), s->trunk_seq, from, -1); return st; }
    s->n_past = s->n_path;
    return FP_OK;
}

/* Resets the sampler chain's history (the repetition penalty's window) to the path. */
void fpi_chain_resync(fp_session *s) {
    llama_sampler_reset(s->chain);
    int32_t from = s->n_path - s->st.repeat_last_n;
    if (from < 0) from = 0;
    for (int32_t i = from; i < s->n_path; i++) llama_sampler_accept(s->chain, s->path_tok[i]);
}

/* Switches the current path to root..leaf, keeping the trunk KV in step.
 * On a failed decode the path is switched but the trunk holds only its
 * first n_past tokens (fpi_trunk_repair finishes the job later). */
fp_status fpi_set_path(fp_session *s, int32_t leaf, bool want_logits, fp_error *err) {
    int32_t old_n = s->n_past;
    int32_t *old = malloc(sizeof(int32_t) * (size_t)(old_n > 0 ? old_n : 1));
    if (!old) return fp_fail(err, FP_ERR_NOMEM, "out of memory");
    if (old_n > 0) memcpy(old, s->path_tok, sizeof(int32_t) * (size_t)old_n);
    fp_status st = fpi_path_rebuild(s, leaf);
    if (st != FP_OK) { free(old); return fp_fail(err, st, "cannot rebuild the path"); }
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
