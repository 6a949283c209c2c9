/*
 * session.c — a document: the generation loop, fork detection, decisions,
 * undo and the tree of explored branches.
 *
 * The flow, top-down (as in llama2.c's generate()):
 *
 *   fp_session_new      tokenize the prompt, decode it once into the trunk
 *   run_until_fork      at each position: distribution -> uncertainty ->
 *                       fork or not (and why) -> if not, pick a token, decode
 *   open_fork           store the logits, compute the cloud (cloud.c)
 *   commit              the person's decision: copy the chosen branch's KV
 *                       cells into the trunk, append tokens, run on
 *   reopen              go back to any stored fork: same candidates, exactly
 *
 * The tree. Nodes are spans of tokens; the fork at the end of a node is
 * decided by creating a child node. The current path runs from the prompt
 * node (the root) to `leaf`; the path arrays (tokens, text, positions) are a
 * cache of that path, rebuilt when the path changes.
 *
 * Invariants:
 *   - trunk KV holds exactly path_tok[0..n_past), and n_past == n_path;
 *   - cur_logits are the logits after path_tok[n_path-1];
 *   - state AT_FORK  <=> open_fork >= 0, and that fork stands at the end of
 *     `leaf` (forks[open_fork].node == leaf, position == n_path);
 *   - live.valid implies live.fork_id == open_fork (see internal.h).
 */
#include "core/internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ settings */

fp_settings fp_default_settings(void) {
    fp_settings s = {
        .temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f,
        .repeat_penalty = 1.1f, .repeat_last_n = 64,
        .k = 8, .granularity = FP_GRAN_WORD, .beam_width = 16, .max_word_tokens = 6, .lookahead = 8,
        .fork_entropy_bits = 2.5f, .fork_top1_below = 0.35f, .fork_margin_below = 0.0f,
        .min_gap_tokens = 4, .max_forks_per_sentence = 2,
        .sample_auto = false, .seed = 42, .max_tokens = 200,
    };
    return s;
}

fp_status fp_settings_validate(const fp_settings *s, fp_error *err) {
    if (!s) return fp_fail(err, FP_ERR_ARG, "no settings");
    if (!(s->temperature > 0.0f && s->temperature <= 100.0f)) return fp_fail(err, FP_ERR_ARG, "temperature must be in (0, 100]");
    if (s->top_k < 0) return fp_fail(err, FP_ERR_ARG, "top_k must be >= 0");
    if (!(s->top_p > 0.0f && s->top_p <= 1.0f)) return fp_fail(err, FP_ERR_ARG, "top_p must be in (0, 1]");
    if (!(s->min_p >= 0.0f && s->min_p < 1.0f)) return fp_fail(err, FP_ERR_ARG, "min_p must be in [0, 1)");
    if (!(s->repeat_penalty > 0.0f && s->repeat_penalty <= 10.0f)) return fp_fail(err, FP_ERR_ARG, "repeat_penalty must be in (0, 10]");
    if (s->repeat_last_n < 0 || s->repeat_last_n > 4096) return fp_fail(err, FP_ERR_ARG, "repeat_last_n must be 0..4096");
    if (s->k < 1 || s->k > 64) return fp_fail(err, FP_ERR_ARG, "k must be 1..64");
    if (s->granularity < FP_GRAN_TOKEN || s->granularity > FP_GRAN_PHRASE) return fp_fail(err, FP_ERR_ARG, "granularity must be token, word or phrase");
    if (s->beam_width < s->k || s->beam_width > 64) return fp_fail(err, FP_ERR_ARG, "beam_width must be k..64");
    if (s->max_word_tokens < 1 || s->max_word_tokens > FP_MAX_PATH) return fp_fail(err, FP_ERR_ARG, "max_word_tokens must be 1..%d", FP_MAX_PATH);
    if (s->lookahead < 0 || s->lookahead > FP_MAX_PREVIEW) return fp_fail(err, FP_ERR_ARG, "lookahead must be 0..%d", FP_MAX_PREVIEW);
    if (!isfinite(s->fork_entropy_bits) || !isfinite(s->fork_top1_below) || !isfinite(s->fork_margin_below))
        return fp_fail(err, FP_ERR_ARG, "fork thresholds must be finite");
    if (s->min_gap_tokens < 0) return fp_fail(err, FP_ERR_ARG, "min_gap_tokens must be >= 0");
    if (s->max_forks_per_sentence < 0) return fp_fail(err, FP_ERR_ARG, "max_forks_per_sentence must be >= 0");
    if (s->max_tokens < 0) return fp_fail(err, FP_ERR_ARG, "max_tokens must be >= 0");
    return FP_OK;
}

const char *fp_reason_name(fp_reason r) {
    switch (r) {
    case FP_REASON_CONFIDENT: return "confident";
    case FP_REASON_UNCERTAIN: return "uncertain";
    case FP_REASON_BUDGET_GAP: return "budget_gap";
    case FP_REASON_BUDGET_SENTENCE: return "budget_sentence";
    case FP_REASON_MID_WORD: return "mid_word";
    case FP_REASON_FORCED: return "forced";
    case FP_REASON_TYPED: return "typed";
    case FP_REASON_IN_CHOICE: return "in_choice";
    }
    return "unknown";
}

const char *fp_choice_name(fp_choice_kind k) {
    switch (k) {
    case FP_CHOICE_NONE: return "none";
    case FP_CHOICE_INDEX: return "index";
    case FP_CHOICE_INDEX_PREVIEW: return "index_preview";
    case FP_CHOICE_TYPED: return "typed";
    case FP_CHOICE_AUTO: return "auto";
    }
    return "none";
}

const char *fp_chooser_name(fp_chooser c) {
    switch (c) {
    case FP_BY_AUTO: return "auto";
    case FP_BY_HUMAN: return "human";
    case FP_BY_SCRIPT: return "script";
    }
    return "unknown";
}

/* ------------------------------------------------------- growable arrays */

/* Ensures *arr has room for need elements of size sz; doubles the capacity. */
static bool grow(void **arr, int32_t *cap, int32_t need, size_t sz) {
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

fp_status fp_text_append(fp_session *s, const char *b, size_t n) {
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

fp_candidate *fp_candidates_dup(const fp_candidate *c, int32_t n) {
    fp_candidate *d = malloc(sizeof *d * (size_t)(n > 0 ? n : 1));
    if (d && n > 0) memcpy(d, c, sizeof *d * (size_t)n);
    return d;
}

/* ---------------------------------------------------------------- nodes */

int32_t fpi_node_new(fp_session *s, fp_node_kind kind, int32_t parent, int32_t parent_fork, int32_t start_pos) {
    if (!grow((void **)&s->nodes, &s->cap_nodes, s->n_nodes + 1, sizeof *s->nodes)) return -1;
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

static int32_t n_prompt_tokens(const fp_session *s) { return s->nodes[0].n; }
static int32_t n_generated(const fp_session *s) { return s->n_path - n_prompt_tokens(s); }

/* Appends one token to the path cache (not to any node). */
static fp_status path_push(fp_session *s, int32_t tok, int32_t node) {
    if (!path_reserve(s, s->n_path + 1)) return FP_ERR_NOMEM;
    const fp_model *m = s->engine->model;
    s->path_tok[s->n_path] = tok;
    s->path_node[s->n_path] = node;
    s->path_off[s->n_path] = (int32_t)s->text_len;
    s->n_path++;
    if (node == 0) return FP_OK; /* prompt tokens: the prompt text is stored verbatim */
    int32_t n;
    const char *pc = fp_piece(m, tok, &n);
    return fp_text_append(s, pc, (size_t)n);
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
    fp_status st = fp_text_append(s, s->prompt, s->prompt_len);
    if (st != FP_OK) return st;
    for (int32_t d = depth - 1; d >= 0; d--) {
        fp_node *n = &s->nodes[chain[d]];
        for (int32_t i = 0; i < n->n; i++)
            if ((st = path_push(s, n->tokens[i], n->id)) != FP_OK) return st;
    }
    s->leaf = leaf;
    return FP_OK;
}

/* The generated position record of path index p (p >= n_prompt). */
static fp_position *path_pos(fp_session *s, int32_t p) {
    fp_node *n = &s->nodes[s->path_node[p]];
    return &n->pos[p - n->start_pos];
}

/* Makes the trunk KV hold exactly the current path: keeps the common prefix
 * with what it held (old tokens in kv_tok), drops the rest, decodes the new tail. */
static fp_status trunk_sync(fp_session *s, const int32_t *old_tok, int32_t old_n, bool want_logits, fp_error *err) {
    int32_t common = 0;
    int32_t lim = old_n < s->n_path ? old_n : s->n_path;
    while (common < lim && old_tok[common] == s->path_tok[common]) common++;
    if (want_logits && common == s->n_path) common--; /* the last token must be decoded to get its logits */
    llama_memory_seq_rm(fp_engine_mem(s->engine), s->trunk_seq, common, -1);
    s->n_past = common;
    fp_status st = fp_engine_decode_span(s->engine, s->trunk_seq, s->path_tok + common, s->n_path - common,
                                         common, want_logits, err);
    if (st != FP_OK) return st;
    s->n_past = s->n_path;
    if (want_logits)
        memcpy(s->cur_logits, llama_get_logits_ith(s->engine->ctx, -1), sizeof(float) * (size_t)s->n_vocab);
    return FP_OK;
}

/* Resets the sampler chain's history (the repetition penalty's window) to the path. */
static void chain_resync(fp_session *s) {
    llama_sampler_reset(s->chain);
    int32_t from = s->n_path - s->st.repeat_last_n;
    if (from < 0) from = 0;
    for (int32_t i = from; i < s->n_path; i++) llama_sampler_accept(s->chain, s->path_tok[i]);
}

/* Switches the current path to root..leaf, keeping the trunk KV in step. */
fp_status fpi_set_path(fp_session *s, int32_t leaf, bool want_logits, fp_error *err) {
    int32_t old_n = s->n_past;
    int32_t *old = malloc(sizeof(int32_t) * (size_t)(old_n > 0 ? old_n : 1));
    if (!old) return fp_fail(err, FP_ERR_NOMEM, "out of memory");
    if (old_n > 0) memcpy(old, s->path_tok, sizeof(int32_t) * (size_t)old_n);
    fp_status st = fpi_path_rebuild(s, leaf);
    if (st != FP_OK) { free(old); return fp_fail(err, st, "cannot rebuild the path"); }
    st = trunk_sync(s, old, old_n, want_logits, err);
    free(old);
    if (st != FP_OK) return st;
    chain_resync(s);
    return FP_OK;
}

/* ------------------------------------------------------- fork detection */

static bool mid_word(const fp_session *s) {
    const fp_model *m = s->engine->model;
    if (s->dist.n == 0 || s->text_len == 0) return false;
    uint8_t top = m->tok_flags[s->dist.items[0].token];
    unsigned char last = (unsigned char)s->text[s->text_len - 1];
    bool after_space = last == ' ' || last == '\n' || last == '\t';
    return !(top & FP_TOK_WORD_START) && !after_space;
}

/* Why the current position is, or is not, a fork. */
static fp_reason decide(fp_session *s, fp_uncertainty u) {
    const fp_settings *st = &s->st;
    bool hit = (st->fork_entropy_bits > 0 && u.entropy_bits >= st->fork_entropy_bits)
            || (st->fork_top1_below > 0 && u.top1 < st->fork_top1_below)
            || (st->fork_margin_below > 0 && u.margin < st->fork_margin_below);
    if (!hit) return FP_REASON_CONFIDENT;
    if (st->granularity != FP_GRAN_TOKEN && mid_word(s)) return FP_REASON_MID_WORD;
    int32_t np = n_prompt_tokens(s);
    /* tokens since the last fork on this path */
    int32_t gap = -1, forks_in_sentence = 0;
    bool sentence_open = true;
    const fp_model *m = s->engine->model;
    for (int32_t p = s->n_path - 1; p >= np; p--) {
        const fp_position *ps = path_pos(s, p);
        if (sentence_open && (m->tok_flags[ps->token] & FP_TOK_SENT_END)) sentence_open = false;
        if (ps->fork_id >= 0) {
            if (gap < 0) gap = s->n_path - p;
            if (sentence_open) forks_in_sentence++;
        }
        if (gap >= 0 && !sentence_open) break;
    }
    if (gap >= 0 && gap < st->min_gap_tokens) return FP_REASON_BUDGET_GAP;
    if (st->max_forks_per_sentence > 0 && forks_in_sentence >= st->max_forks_per_sentence)
        return FP_REASON_BUDGET_SENTENCE;
    return FP_REASON_UNCERTAIN;
}

/* xorshift64*: the seeded generator for sampled auto-continuation. */
static double rng_next(fp_session *s) {
    uint64_t x = s->rng;
    x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
    s->rng = x;
    return (double)((x * 2685821657736338717ULL) >> 11) * (1.0 / 9007199254740992.0);
}

/* The token automatic continuation takes: the most probable, or a draw. */
static int32_t auto_pick(fp_session *s) {
    const fp_model *m = s->engine->model;
    if (s->st.sample_auto) {
        double r = rng_next(s), acc = 0.0;
        for (int32_t i = 0; i < s->dist.n; i++) {
            acc += s->dist.items[i].p;
            if (r < acc && !(m->tok_flags[s->dist.items[i].token] & FP_TOK_CONTROL)) return s->dist.items[i].token;
        }
    }
    for (int32_t i = 0; i < s->dist.n; i++)
        if (!(m->tok_flags[s->dist.items[i].token] & FP_TOK_CONTROL)) return s->dist.items[i].token;
    return s->dist.items[0].token;
}

/* -------------------------------------------------------------- forks */

void fpi_session_end(fp_session *s, const char *why) {
    fp_cloud_drop_live(s);
    s->state = FP_STATE_ENDED;
    s->end_reason = why;
    s->open_fork = -1;
}

static fp_fork_rec *fork_at_id(fp_session *s, int32_t id) { return &s->forks[id]; }

/* Makes room for k candidates in a fork's arrays (settings may have grown k). */
static fp_status fork_fit(fp_fork_rec *f, int32_t k, fp_error *err) {
    if (k <= f->cap) return FP_OK;
    fp_candidate *b = realloc(f->base, sizeof *b * (size_t)k);
    if (b) f->base = b;
    fp_candidate *sh = b ? realloc(f->shown, sizeof *sh * (size_t)k) : NULL;
    if (sh) f->shown = sh;
    if (!b || !sh) return fp_fail(err, FP_ERR_NOMEM, "out of memory");
    f->cap = k;
    f->pub.candidates = f->shown;
    return FP_OK;
}

/* Shows the fork's cloud as first computed (no typed prefix). */
static void show_base(fp_fork_rec *f) {
    memcpy(f->shown, f->base, sizeof(fp_candidate) * (size_t)f->n_base);
    f->n_shown = f->n_base;
    f->shown_other = f->base_other;
    f->pub.typed_prefix[0] = 0;
}

/* Points pub at the shown candidates and clears the decision for display. */
void fpi_fork_show(fp_session *s, fp_fork_rec *f) {
    f->pub.candidates = f->shown;
    f->pub.n_candidates = f->n_shown;
    f->pub.other = f->shown_other;
    f->pub.choice = FP_CHOICE_NONE;
    f->pub.choice_index = -1;
    f->pub.choice_text[0] = 0;
    f->pub.ms_to_choose = 0;
    f->shown_at_ms = fp_now_ms();
    s->state = FP_STATE_AT_FORK;
    s->open_fork = f->pub.id;
    s->end_reason = NULL;
}

/* Orders a freshly computed cloud by the person's predicted choice (pref),
 * keeping the live branches in step. Without preferences pref = prob. */
static void apply_prefs(fp_session *s, const fp_fork_rec *f, fp_candidate *c, int32_t n) {
    if (!s->prefs || n < 2) return;
    fp_fork view = f->pub;
    view.candidates = c;
    view.n_candidates = n;
    float pr[64];
    fp_prefs_predict(s->prefs, s->text, (size_t)f->pub.text_offset, &view, pr);
    int32_t perm[64];
    for (int32_t i = 0; i < n; i++) { c[i].pref = pr[i]; perm[i] = i; }
    for (int32_t i = 1; i < n; i++) { /* insertion sort: stable, n <= 64 */
        int32_t v = perm[i], j = i;
        while (j > 0 && pr[perm[j - 1]] < pr[v]) { perm[j] = perm[j - 1]; j--; }
        perm[j] = v;
    }
    fp_candidate tmp[64];
    memcpy(tmp, c, sizeof *c * (size_t)n);
    for (int32_t i = 0; i < n; i++) c[i] = tmp[perm[i]];
    fpi_cloud_permute(s, perm, n);
}

/* Creates a fork at the end of the leaf and computes its cloud. */
static fp_status open_fork(fp_session *s, fp_reason reason, fp_uncertainty u, fp_error *err) {
    if (!grow((void **)&s->forks, &s->cap_forks, s->n_forks + 1, sizeof *s->forks))
        return fp_fail(err, FP_ERR_NOMEM, "out of memory");
    fp_fork_rec *f = &s->forks[s->n_forks];
    memset(f, 0, sizeof *f);
    f->pub.id = s->n_forks;
    f->pub.position = s->n_path;
    f->pub.text_offset = (int32_t)s->text_len;
    f->pub.reason = reason;
    f->pub.unc = u;
    f->node = s->leaf;
    size_t V = (size_t)s->n_vocab;
    f->logits = malloc(sizeof(float) * V);
    f->base = malloc(sizeof(fp_candidate) * (size_t)s->st.k);
    f->shown = malloc(sizeof(fp_candidate) * (size_t)s->st.k);
    f->cap = s->st.k;
    if (!f->logits || !f->base || !f->shown) {
        free(f->logits); free(f->base); free(f->shown);
        return fp_fail(err, FP_ERR_NOMEM, "out of memory");
    }
    memcpy(f->logits, s->cur_logits, sizeof(float) * V);
    fp_status st = fp_cloud_compute(s, f->logits, "", f->base, &f->n_base, &f->base_other, err);
    if (st != FP_OK) { free(f->logits); free(f->base); free(f->shown); return st; }
    apply_prefs(s, f, f->base, f->n_base);
    memcpy(f->shown, f->base, sizeof(fp_candidate) * (size_t)f->n_base);
    f->n_shown = f->n_base;
    f->shown_other = f->base_other;
    s->live.fork_id = f->pub.id;
    s->nodes[s->leaf].fork_id = f->pub.id;
    s->n_forks++;
    fpi_fork_show(s, f);
    return FP_OK;
}

/* Appends a token to the leaf node and the path, and to the sampler history. */
fp_status fpi_append_token(fp_session *s, int32_t tok, const fp_position *rec) {
    if (!fpi_node_push(s, s->leaf, tok, rec)) return FP_ERR_NOMEM;
    fp_status st = path_push(s, tok, s->leaf);
    if (st != FP_OK) return st;
    llama_sampler_accept(s->chain, tok);
    return FP_OK;
}

/* Positions to keep free beyond the text: a word plus its preview. */
static int32_t reserve_tokens(const fp_session *s) { return s->st.max_word_tokens + s->st.lookahead + 1; }

/* KV cells a fork's branches may take on top of the trunk (cells, unlike
 * positions, are shared by all sequences). */
static int32_t branch_cells(const fp_session *s) {
    return s->st.beam_width * s->st.max_word_tokens + s->st.k * (s->st.lookahead + 1);
}

static fp_status commit(fp_session *s, const int32_t *toks, int32_t n, int32_t n_word, int32_t cand,
                        fp_node_kind kind, fp_choice_kind ckind, const char *text, fp_chooser by,
                        bool run_on, fp_error *err);

/* Auto-resolution: the open fork's top preference reaches the threshold the
 * person's history supports. */
static bool auto_resolvable(const fp_session *s) {
    if (!s->prefs || s->state != FP_STATE_AT_FORK) return false;
    const fp_fork_rec *f = &s->forks[s->open_fork];
    return f->n_shown > 0 && f->shown[0].pref >= fp_prefs_auto_threshold(s->prefs);
}

/* The generation loop: continue automatically until a fork or the end. */
static fp_status run_until_fork(fp_session *s, fp_error *err) {
    const fp_model *m = s->engine->model;
    for (;;) {
        if (s->st.max_tokens > 0 && n_generated(s) >= s->st.max_tokens) { fpi_session_end(s, "max_tokens"); return FP_OK; }
        if (s->n_path + reserve_tokens(s) >= s->engine->n_pos_max || s->n_path + branch_cells(s) >= (int32_t)s->engine->n_ctx) {
            fpi_session_end(s, "context");
            return FP_OK;
        }
        fp_dist_compute(&s->dist, s->cur_logits, s->n_vocab, s->chain, 2);
        fp_uncertainty u = fp_dist_uncertainty(&s->dist);
        fp_reason why = decide(s, u);
        if (why == FP_REASON_UNCERTAIN) {
            s->word_end_pending = false;
            fp_status st = open_fork(s, why, u, err);
            if (st != FP_OK || !auto_resolvable(s)) return st;
            /* the person's preferences are sure enough: decide, they can undo */
            const fp_candidate *c = &s->forks[s->open_fork].shown[0];
            st = commit(s, c->tokens, c->is_eog ? 0 : c->n_tokens, c->n_tokens, 0, FP_NODE_CHOICE, FP_CHOICE_INDEX,
                        c->text, FP_BY_AUTO, false, err);
            if (st != FP_OK || s->state == FP_STATE_ENDED) return st;
            continue;
        }
        int32_t tok = auto_pick(s);
        if (s->word_end_pending && !(m->tok_flags[tok] & FP_TOK_WORD_START)) {
            /* the person's word is complete: continue with the best token that starts a new one */
            for (int32_t i = 0; i < s->dist.n; i++) {
                int32_t t = s->dist.items[i].token;
                /* not the end of the text: the model meant to go on, only not inside this word */
                if ((m->tok_flags[t] & FP_TOK_WORD_START) && !(m->tok_flags[t] & (FP_TOK_CONTROL | FP_TOK_EOG))) { tok = t; break; }
            }
        }
        s->word_end_pending = false;
        if (m->tok_flags[tok] & FP_TOK_EOG) { fpi_session_end(s, "eog"); return FP_OK; }
        fp_position rec = { .token = tok, .unc = u, .reason = why, .fork_id = -1, .by = FP_BY_AUTO };
        fp_status st = fpi_append_token(s, tok, &rec);
        if (st != FP_OK) return fp_fail(err, st, "out of memory");
        fp_batch_clear(s->engine);
        fp_batch_add(s->engine, tok, s->n_past, s->trunk_seq, true);
        if ((st = fp_engine_decode(s->engine, err)) != FP_OK) return st;
        s->n_past++;
        memcpy(s->cur_logits, llama_get_logits_ith(s->engine->ctx, -1), sizeof(float) * (size_t)s->n_vocab);
    }
}

/* ------------------------------------------------------------ session */

fp_session *fpi_session_alloc(fp_engine *e, const fp_settings *st, fp_error *err) {
    fp_session *s = calloc(1, sizeof *s);
    if (!s) { fp_fail(err, FP_ERR_NOMEM, "out of memory"); return NULL; }
    s->engine = e;
    s->st = *st;
    s->n_vocab = e->model->n_vocab;
    s->trunk_seq = -1;
    s->open_fork = -1;
    s->live.fork_id = -1;
    s->rng = st->seed ? (uint64_t)st->seed * 0x9E3779B97F4A7C15ULL : 0x2545F4914F6CDD1DULL;
    s->scratch = malloc(sizeof(int32_t) * e->n_seq_max);
    s->cur_logits = malloc(sizeof(float) * (size_t)s->n_vocab);
    s->chain = fp_chain_new(st, s->n_vocab, NULL);
    if (!s->scratch || !s->cur_logits || !s->chain || fp_dist_init(&s->dist, s->n_vocab) != FP_OK) {
        fp_fail(err, FP_ERR_NOMEM, "out of memory");
        fp_session_free(s);
        return NULL;
    }
    fp_engine_register(e, s);
    s->trunk_seq = fp_seq_alloc(e, s);
    if (s->trunk_seq < 0) {
        fp_fail(err, FP_ERR_CAPACITY, "the engine has no free sequence for another session (n_seq_max %u)", e->n_seq_max);
        fp_session_free(s);
        return NULL;
    }
    return s;
}

fp_session *fp_session_new(fp_engine *e, const char *prompt, const fp_settings *settings, fp_error *err) {
    fp_settings st = settings ? *settings : fp_default_settings();
    if (!e || !prompt) { fp_fail(err, FP_ERR_ARG, "no engine or prompt"); return NULL; }
    if (fp_settings_validate(&st, err) != FP_OK) return NULL;
    size_t len = strlen(prompt);
    if (!fp_utf8_valid(prompt, len)) { fp_fail(err, FP_ERR_UTF8, "the prompt is not valid UTF-8"); return NULL; }
    bool blank = true;
    for (size_t i = 0; i < len; i++) if (!strchr(" \t\r\n", prompt[i])) blank = false;
    if (blank) { fp_fail(err, FP_ERR_EMPTY, "the prompt is empty"); return NULL; }
    /* tokenize first: a prompt that cannot fit is rejected before anything is allocated */
    int32_t cap = (int32_t)(len < 1u << 20 ? len : 1u << 20) + 8;
    int32_t *toks = malloc(sizeof(int32_t) * (size_t)cap);
    if (!toks) { fp_fail(err, FP_ERR_NOMEM, "out of memory"); return NULL; }
    int32_t n = fp_tokenize(e->model, prompt, len, toks, cap, true);
    int32_t limit = e->n_pos_max - (st.max_word_tokens + st.lookahead + 2);
    if (n < 0 || n > cap || n > limit) {
        free(toks);
        if (n < 0) fp_fail(err, FP_ERR_UTF8, "the prompt cannot be tokenized");
        else fp_fail(err, FP_ERR_CONTEXT, "the prompt is %d tokens; the context allows %d (n_ctx %d minus room for a fork)",
                     n, limit, e->n_pos_max);
        return NULL;
    }
    fp_session *s = fpi_session_alloc(e, &st, err);
    if (!s) { free(toks); return NULL; }
    s->prompt = strdup(prompt);
    s->prompt_len = len;
    int32_t root = fpi_node_new(s, FP_NODE_PROMPT, -1, -1, 0);
    bool ok = s->prompt && root == 0;
    for (int32_t i = 0; ok && i < n; i++) ok = fpi_node_push(s, root, toks[i], NULL);
    int32_t first = ok ? fpi_node_new(s, FP_NODE_AUTO, root, -1, n) : -1;
    free(toks);
    if (!ok || first < 0 || fpi_path_rebuild(s, first) != FP_OK) {
        fp_fail(err, FP_ERR_NOMEM, "out of memory");
        fp_session_free(s);
        return NULL;
    }
    s->last_use = ++e->use_clock;
    if (trunk_sync(s, NULL, 0, true, err) != FP_OK || (chain_resync(s), run_until_fork(s, err)) != FP_OK) {
        fp_session_free(s);
        return NULL;
    }
    return s;
}

void fp_session_free(fp_session *s) {
    if (!s) return;
    fpi_prefetch_clear(s);
    if (s->engine) {
        fp_cloud_drop_live(s);
        fp_engine_unregister(s->engine, s); /* returns the trunk sequence too */
    }
    fp_cloud_free(s);
    for (int32_t i = 0; i < s->n_nodes; i++) { free(s->nodes[i].tokens); free(s->nodes[i].pos); }
    for (int32_t i = 0; i < s->n_forks; i++) { free(s->forks[i].logits); free(s->forks[i].base); free(s->forks[i].shown); }
    for (int32_t i = 0; i < s->n_events; i++) free((void *)s->events[i].candidates);
    free(s->nodes); free(s->forks); free(s->events);
    free(s->path_tok); free(s->path_node); free(s->path_off);
    free(s->text); free(s->disp); free(s->prompt);
    free(s->scratch); free(s->cur_logits);
    if (s->chain) llama_sampler_free(s->chain);
    fp_dist_free(&s->dist);
    free(s);
}

/* ------------------------------------------------------------ accessors */

fp_state fp_session_state(const fp_session *s) { return s->state; }
const fp_settings *fp_session_settings(const fp_session *s) { return &s->st; }
const char *fp_session_text(const fp_session *s) { return s->disp ? s->disp : ""; }
size_t fp_session_text_len(const fp_session *s) { return s->text_complete; }
size_t fp_session_prompt_len(const fp_session *s) { return s->prompt_len; }
int32_t fp_session_n_tokens(const fp_session *s) { return s->n_path; }
const int32_t *fp_session_tokens(const fp_session *s) { return s->path_tok; }
const char *fp_session_end_reason(const fp_session *s) { return s->state == FP_STATE_ENDED ? s->end_reason : NULL; }
const fp_fork *fp_session_fork(const fp_session *s) {
    return s->open_fork >= 0 ? &s->forks[s->open_fork].pub : NULL;
}
void fp_session_mark_shown(fp_session *s) {
    if (s->open_fork >= 0) s->forks[s->open_fork].shown_at_ms = fp_now_ms();
}
int32_t fp_session_n_positions(const fp_session *s) { return n_generated(s); }
const fp_position *fp_session_position(const fp_session *s, int32_t i) {
    if (i < 0 || i >= n_generated(s)) return NULL;
    return path_pos((fp_session *)s, n_prompt_tokens(s) + i);
}
size_t fp_session_position_offset(const fp_session *s, int32_t i) {
    if (i < 0) return 0;
    if (i >= n_generated(s)) return s->text_len;
    return (size_t)s->path_off[n_prompt_tokens(s) + i];
}
int32_t fp_session_n_events(const fp_session *s) { return s->n_events; }
const fp_fork *fp_session_event(const fp_session *s, int32_t i) {
    return i >= 0 && i < s->n_events ? &s->events[i] : NULL;
}

/* ------------------------------------------------------------ decisions */

static fp_status need_fork(fp_session *s, fp_error *err) {
    if (s->state != FP_STATE_AT_FORK || s->open_fork < 0)
        return fp_fail(err, FP_ERR_STATE, "there is no open fork (the text has ended)");
    s->last_use = ++s->engine->use_clock;
    return FP_OK;
}

/* Records the decision on the fork and in the event log. */
fp_status fpi_log_decision(fp_session *s, fp_fork_rec *f, fp_choice_kind kind, int32_t index,
                              const char *text, fp_chooser by) {
    f->pub.choice = kind;
    f->pub.choice_index = index;
    snprintf(f->pub.choice_text, sizeof f->pub.choice_text, "%s", text ? text : "");
    f->pub.chooser = by;
    f->pub.ms_to_choose = fp_now_ms() - f->shown_at_ms;
    if (!grow((void **)&s->events, &s->cap_events, s->n_events + 1, sizeof *s->events)) return FP_ERR_NOMEM;
    fp_fork *ev = &s->events[s->n_events];
    *ev = f->pub;
    ev->candidates = fp_candidates_dup(f->shown, f->n_shown);
    if (!ev->candidates) return FP_ERR_NOMEM;
    s->n_events++;
    /* test-then-train: the person's decision teaches their preferences */
    if (s->prefs && by != FP_BY_AUTO) fp_prefs_learn(s->prefs, s->text, (size_t)f->pub.text_offset, ev);
    return FP_OK;
}

static fp_status reopen(fp_session *s, fp_fork_rec *f, fp_error *err);

/* Commits tokens at the open fork and runs on. cand >= 0 names a shown
 * candidate whose live branch may supply the KV cells; n_word says how many
 * of the tokens are the word (the rest is accepted preview). */
static fp_status commit(fp_session *s, const int32_t *toks, int32_t n, int32_t n_word, int32_t cand,
                        fp_node_kind kind, fp_choice_kind ckind, const char *text, fp_chooser by,
                        bool run_on, fp_error *err) {
    fp_fork_rec *f = fork_at_id(s, s->open_fork);
    const int32_t fork_id = f->pub.id; /* f moves if the fork array grows */
    fp_status st = fpi_log_decision(s, f, ckind, cand, text, by);
    if (st != FP_OK) return fp_fail(err, st, "out of memory");
    int32_t node = fpi_node_new(s, kind, f->node, f->pub.id, s->n_path);
    if (node < 0) return fp_fail(err, FP_ERR_NOMEM, "out of memory");
    s->leaf = node;
    const fp_model *m = s->engine->model;
    if (n > 0 && (m->tok_flags[toks[n - 1]] & FP_TOK_EOG)) n--; /* the end-of-text candidate adds no token */
    bool ends = n < 1 || (cand >= 0 && f->shown[cand].is_eog);
    for (int32_t i = 0; i < n; i++) {
        fp_position rec = { .token = toks[i], .unc = { -1, -1, -1 }, .reason = FP_REASON_IN_CHOICE, .fork_id = -1, .by = by };
        if (i == 0) { rec.unc = f->pub.unc; rec.reason = kind == FP_NODE_TYPED ? FP_REASON_TYPED : f->pub.reason; rec.fork_id = f->pub.id; }
        if ((st = fpi_append_token(s, toks[i], &rec)) != FP_OK) return fp_fail(err, st, "out of memory");
    }
    if (ends) { fpi_session_end(s, "eog"); return FP_OK; }
    /* a word taken alone (or typed) ends there: the next token must start a new word */
    s->word_end_pending = n == n_word && (kind == FP_NODE_CHOICE || kind == FP_NODE_TYPED);

    /* KV: take what the live branch already holds, decode only the rest */
    llama_memory_t mem = fp_engine_mem(s->engine);
    int32_t from_branch = 0;
    bool live = cand >= 0 && s->live.valid && s->live.fork_id == f->pub.id && s->live.seq[cand] >= 0;
    if (live) {
        int32_t n_prev = n - n_word;
        int32_t dec_prev = s->live.n_decoded_preview[cand];
        if (n_prev == 0) from_branch = n_word;           /* logits after the word are stored */
        else from_branch = n_word + (dec_prev < n_prev - 1 ? dec_prev : n_prev - 1);
        llama_memory_seq_cp(mem, s->live.seq[cand], s->trunk_seq, s->n_past, s->n_past + from_branch);
        if (from_branch == n)
            memcpy(s->cur_logits, s->live.word_logits + (size_t)cand * (size_t)s->n_vocab, sizeof(float) * (size_t)s->n_vocab);
    }
    fp_cloud_drop_live(s);
    int32_t base = s->n_past;
    s->n_past += from_branch;
    if (from_branch < n) {
        st = fp_engine_decode_span(s->engine, s->trunk_seq, toks + from_branch, n - from_branch,
                                   base + from_branch, true, err);
        if (st == FP_OK)
            memcpy(s->cur_logits, llama_get_logits_ith(s->engine->ctx, -1), sizeof(float) * (size_t)s->n_vocab);
    }
    if (st == FP_OK) {
        s->n_past = s->n_path;
        if (run_on) st = run_until_fork(s, err);
    }
    if (st != FP_OK) {
        /* the engine failed (a full cache, say): go back to the fork, so the
         * session stays consistent and the decision can be made again */
        s->n_past = base;
        reopen(s, fork_at_id(s, fork_id), NULL);
    }
    return st;
}

/* The open fork and its shown candidate `index`, checked. */
static fp_status open_candidate(fp_session *s, int32_t index, fp_fork_rec **fork, fp_candidate **cand, fp_error *err) {
    fp_status st = need_fork(s, err);
    if (st != FP_OK) return st;
    fp_fork_rec *f = fork_at_id(s, s->open_fork);
    if (index < 0 || index >= f->n_shown)
        return fp_fail(err, FP_ERR_ARG, "choice %d is out of range (the fork has %d candidates)", index, f->n_shown);
    *fork = f;
    *cand = &f->shown[index];
    return FP_OK;
}

fp_status fp_session_choose(fp_session *s, int32_t index, bool with_preview, fp_chooser by, fp_error *err) {
    fp_fork_rec *f = NULL;
    fp_candidate *c = NULL;
    fp_status st = open_candidate(s, index, &f, &c, err);
    if (st != FP_OK) return st;
    int32_t toks[FP_MAX_PATH + FP_MAX_PREVIEW];
    int32_t n = 0;
    memcpy(toks, c->tokens, sizeof(int32_t) * (size_t)c->n_tokens);
    n = c->n_tokens;
    bool phrase = with_preview || s->st.granularity == FP_GRAN_PHRASE;
    if (phrase) { memcpy(toks + n, c->preview_tokens, sizeof(int32_t) * (size_t)c->n_preview); n += c->n_preview; }
    char text[FP_MAX_TEXT * 2];
    snprintf(text, sizeof text, "%s%s", c->text, phrase ? c->preview : "");
    fp_choice_kind kind = phrase && c->n_preview > 0 ? FP_CHOICE_INDEX_PREVIEW : FP_CHOICE_INDEX;
    int32_t pf = fpi_prefetch_find(s, index, phrase);
    if (pf >= 0) return fpi_prefetch_adopt(s, pf, kind, text, by, err);
    fpi_prefetch_clear(s);
    return commit(s, toks, n, c->n_tokens, index, FP_NODE_CHOICE, kind, text, by, true, err);
}

fp_status fp_session_choose_until(fp_session *s, int32_t index, int32_t n_preview, fp_chooser by, fp_error *err) {
    fp_fork_rec *f = NULL;
    fp_candidate *c = NULL;
    fp_status st = open_candidate(s, index, &f, &c, err);
    if (st != FP_OK) return st;
    if (c->is_eog) return fp_fail(err, FP_ERR_ARG, "the end of the text has no preview to point into");
    if (n_preview < 0 || n_preview > c->n_preview)
        return fp_fail(err, FP_ERR_ARG, "%d preview tokens asked for; candidate %d has %d", n_preview, index, c->n_preview);
    const int32_t fork_id = f->pub.id;
    int32_t toks[FP_MAX_PATH + FP_MAX_PREVIEW];
    memcpy(toks, c->tokens, sizeof(int32_t) * (size_t)c->n_tokens);
    memcpy(toks + c->n_tokens, c->preview_tokens, sizeof(int32_t) * (size_t)n_preview);
    const int32_t n = c->n_tokens + n_preview;
    /* the text taken: the word and the pieces of the preview tokens taken */
    char text[FP_MAX_TEXT * 2];
    size_t tl = (size_t)snprintf(text, sizeof text, "%s", c->text);
    for (int32_t i = 0; i < n_preview && tl < sizeof text - 1; i++) {
        int32_t pl;
        const char *pc = fp_piece(s->engine->model, c->preview_tokens[i], &pl);
        size_t take = (size_t)pl < sizeof text - 1 - tl ? (size_t)pl : sizeof text - 1 - tl;
        memcpy(text + tl, pc, take);
        tl += take;
    }
    text[tl] = 0;
    fp_choice_kind kind = n_preview > 0 ? FP_CHOICE_INDEX_PREVIEW : FP_CHOICE_INDEX;
    fpi_prefetch_clear(s);
    st = commit(s, toks, n, c->n_tokens, index, FP_NODE_CHOICE, kind, text, by, false, err);
    if (st != FP_OK || s->state == FP_STATE_ENDED) return st;
    /* the limits automatic continuation would meet here end the text instead */
    if (s->st.max_tokens > 0 && n_generated(s) >= s->st.max_tokens) { fpi_session_end(s, "max_tokens"); return FP_OK; }
    if (s->n_path + reserve_tokens(s) >= s->engine->n_pos_max || s->n_path + branch_cells(s) >= (int32_t)s->engine->n_ctx) {
        fpi_session_end(s, "context");
        return FP_OK;
    }
    s->word_end_pending = false;
    fp_dist_compute(&s->dist, s->cur_logits, s->n_vocab, s->chain, 2);
    st = open_fork(s, FP_REASON_FORCED, fp_dist_uncertainty(&s->dist), err);
    if (st != FP_OK) reopen(s, fork_at_id(s, fork_id), NULL); /* back to the decision, consistent */
    return st;
}

fp_status fp_session_continue(fp_session *s, fp_chooser by, fp_error *err) {
    fp_status st = need_fork(s, err);
    if (st != FP_OK) return st;
    fpi_prefetch_clear(s);
    fp_fork_rec *f = fork_at_id(s, s->open_fork);
    if (f->n_shown == 0) {
        /* a narrowed cloud can be empty: the model's own next token then */
        fp_dist_compute(&s->dist, f->logits, s->n_vocab, s->chain, 2);
        int32_t t = auto_pick(s);
        int32_t n;
        char text[FP_MAX_TEXT];
        const char *pc = fp_piece(s->engine->model, t, &n);
        snprintf(text, sizeof text, "%.*s", n, pc);
        return commit(s, &t, 1, 1, -1, FP_NODE_AUTO, FP_CHOICE_AUTO, text, by, true, err);
    }
    fp_candidate *c = &f->shown[0];
    return commit(s, c->tokens, c->is_eog ? 0 : c->n_tokens, c->n_tokens, 0, FP_NODE_AUTO, FP_CHOICE_AUTO, c->text, by, true, err);
}

fp_status fp_session_type_prefix(fp_session *s, const char *prefix, fp_error *err) {
    fp_status st = need_fork(s, err);
    if (st != FP_OK) return st;
    fpi_prefetch_clear(s);
    if (!prefix) return fp_fail(err, FP_ERR_ARG, "no prefix");
    size_t len = strlen(prefix);
    if (len >= FP_MAX_TEXT) return fp_fail(err, FP_ERR_ARG, "the prefix is longer than %d bytes", FP_MAX_TEXT - 1);
    if (!fp_utf8_valid(prefix, len)) return fp_fail(err, FP_ERR_UTF8, "the prefix is not valid UTF-8");
    fp_fork_rec *f = fork_at_id(s, s->open_fork);
    /* the prefix is matched against the word without its leading space */
    while (*prefix == ' ') prefix++;
    snprintf(f->pub.typed_prefix, sizeof f->pub.typed_prefix, "%s", prefix);
    if (!*prefix) {
        fp_cloud_drop_live(s); /* the base cloud's branches are gone: committing decodes */
        show_base(f);
    } else {
        if ((st = fork_fit(f, s->st.k, err)) != FP_OK) return st;
        st = fp_cloud_compute(s, f->logits, prefix, f->shown, &f->n_shown, &f->shown_other, err);
        if (st != FP_OK) return st;
        s->live.fork_id = f->pub.id;
        apply_prefs(s, f, f->shown, f->n_shown);
    }
    f->pub.candidates = f->shown;
    f->pub.n_candidates = f->n_shown;
    f->pub.other = f->shown_other;
    return FP_OK;
}

/* Tokenizes typed text so that its pieces spell exactly `want`: SentencePiece
 * adds its own leading space, byte-level BPE does not, so both spellings are tried. */
static int32_t tokenize_exact(const fp_model *m, const char *want, int32_t *toks, int32_t cap) {
    const char *variants[2] = { want, want[0] == ' ' ? want + 1 : NULL };
    int32_t best = -1;
    for (int v = 0; v < 2 && variants[v]; v++) {
        int32_t n = fp_tokenize(m, variants[v], strlen(variants[v]), toks, cap, false);
        if (n <= 0 || n > cap) continue;
        char buf[FP_MAX_TEXT * 2];
        int32_t len = 0;
        bool fits = true;
        for (int32_t i = 0; i < n && fits; i++) {
            int32_t pl;
            const char *pc = fp_piece(m, toks[i], &pl);
            if (len + pl >= (int32_t)sizeof buf) fits = false;
            else { memcpy(buf + len, pc, (size_t)pl); len += pl; }
        }
        if (fits && (size_t)len == strlen(want) && memcmp(buf, want, (size_t)len) == 0) return n;
        if (best < 0) best = v;
    }
    /* the tokenizer cannot spell it (SentencePiece insists on a leading space
     * before ","): spell it piece by piece, longest piece first */
    int32_t n = 0;
    size_t len = strlen(want);
    for (size_t at = 0; at < len && n < cap; ) {
        int32_t best_t = -1, best_n = 0;
        for (int32_t t = 0; t < m->n_vocab; t++) {
            int32_t pl;
            const char *pc = fp_piece(m, t, &pl);
            if (pl > best_n && (size_t)pl <= len - at && !(m->tok_flags[t] & FP_TOK_CONTROL) && memcmp(pc, want + at, (size_t)pl) == 0) {
                best_t = t;
                best_n = pl;
            }
        }
        if (best_t < 0) break;
        toks[n++] = best_t;
        at += (size_t)best_n;
        if (at == len) return n;
    }
    if (best < 0) return -1;
    return fp_tokenize(m, variants[best], strlen(variants[best]), toks, cap, false);
}

fp_status fp_session_type_commit(fp_session *s, const char *text, fp_chooser by, fp_error *err) {
    fp_status st = need_fork(s, err);
    if (st != FP_OK) return st;
    if (!text) return fp_fail(err, FP_ERR_ARG, "no text");
    size_t len = strlen(text);
    if (len == 0) return fp_fail(err, FP_ERR_EMPTY, "the typed text is empty");
    if (len >= FP_MAX_TEXT - 1) return fp_fail(err, FP_ERR_ARG, "the typed text is longer than %d bytes", FP_MAX_TEXT - 2);
    if (!fp_utf8_valid(text, len)) return fp_fail(err, FP_ERR_UTF8, "the typed text is not valid UTF-8");
    /* a new word after a word gets its space, as the model's own words carry one */
    char want[FP_MAX_TEXT];
    unsigned char last = s->text_len ? (unsigned char)s->text[s->text_len - 1] : ' ';
    unsigned char first = (unsigned char)text[0];
    bool need_space = !(last == ' ' || last == '\n' || last == '\t') &&
                      (first >= 0x80 || (first >= '0' && first <= '9') || ((first | 0x20) >= 'a' && (first | 0x20) <= 'z'));
    snprintf(want, sizeof want, "%s%s", need_space ? " " : "", text);
    int32_t toks[FP_MAX_TEXT];
    int32_t n = tokenize_exact(s->engine->model, want, toks, FP_MAX_TEXT);
    if (n <= 0) return fp_fail(err, FP_ERR_ARG, "the typed text cannot be tokenized");
    if (s->n_path + n + reserve_tokens(s) >= s->engine->n_pos_max)
        return fp_fail(err, FP_ERR_CONTEXT, "the typed text does not fit the context");
    fpi_prefetch_clear(s);
    return commit(s, toks, n, n, -1, FP_NODE_TYPED, FP_CHOICE_TYPED, want, by, true, err);
}

/* Reopens a stored fork: the path goes to its node, the candidates are the
 * ones first computed, the trunk holds exactly the tokens before it. */
static fp_status reopen(fp_session *s, fp_fork_rec *f, fp_error *err) {
    fpi_prefetch_clear(s);
    fp_cloud_drop_live(s);
    /* a restored fork has no logits in memory (snapshots do not store them):
     * the trunk decodes its last token again and they are kept from now on */
    fp_status st = fpi_set_path(s, f->node, f->logits == NULL, err);
    if (st != FP_OK) return st;
    if (!f->logits) {
        if (!(f->logits = malloc(sizeof(float) * (size_t)s->n_vocab))) return fp_fail(err, FP_ERR_NOMEM, "out of memory");
        memcpy(f->logits, s->cur_logits, sizeof(float) * (size_t)s->n_vocab);
    } else {
        memcpy(s->cur_logits, f->logits, sizeof(float) * (size_t)s->n_vocab);
    }
    show_base(f);
    fpi_fork_show(s, f);
    return FP_OK;
}

fp_status fp_session_undo(fp_session *s, fp_error *err) {
    s->last_use = ++s->engine->use_clock;
    for (int32_t id = s->leaf; id >= 0; id = s->nodes[id].parent) {
        if (s->nodes[id].parent_fork < 0) continue;
        fp_fork_rec *f = fork_at_id(s, s->nodes[id].parent_fork);
        /* undoing an automatic decision tells the preferences they were too sure */
        if (s->prefs && f->pub.chooser == FP_BY_AUTO && f->pub.choice == FP_CHOICE_INDEX) fp_prefs_note_undo(s->prefs);
        return reopen(s, f, err);
    }
    return fp_fail(err, FP_ERR_STATE, "nothing to undo: no decision has been made on this path");
}

fp_status fp_session_goto_fork(fp_session *s, int32_t fork_id, fp_error *err) {
    if (fork_id < 0 || fork_id >= s->n_forks)
        return fp_fail(err, FP_ERR_ARG, "fork %d does not exist (the session has %d)", fork_id, s->n_forks);
    s->last_use = ++s->engine->use_clock;
    return reopen(s, fork_at_id(s, fork_id), err);
}

/* Splits node y at path position p: y keeps [start, p), a new node takes the
 * rest with y's fork and children. Returns the new node or -1. */
static int32_t split_node(fp_session *s, int32_t y, int32_t p) {
    int32_t cut = p - s->nodes[y].start_pos;
    int32_t z = fpi_node_new(s, s->nodes[y].kind == FP_NODE_PROMPT ? FP_NODE_AUTO : FP_NODE_SPLIT, y, -1, p);
    if (z < 0) return -1;
    fp_node *ny = &s->nodes[y], *nz = &s->nodes[z];
    for (int32_t i = cut; i < ny->n; i++)
        if (!fpi_node_push(s, z, ny->tokens[i], &ny->pos[i])) return -1;
    ny = &s->nodes[y]; nz = &s->nodes[z];
    ny->n = cut;
    for (int32_t i = 0; i < s->n_nodes; i++)
        if (i != z && s->nodes[i].parent == y) s->nodes[i].parent = z;
    nz->fork_id = ny->fork_id;
    if (nz->fork_id >= 0) s->forks[nz->fork_id].node = z;
    ny->fork_id = -1;
    return z;
}

fp_status fp_session_fork_at(fp_session *s, size_t offset, fp_error *err) {
    s->last_use = ++s->engine->use_clock;
    fpi_prefetch_clear(s);
    if (offset > s->text_len) return fp_fail(err, FP_ERR_ARG, "offset %zu is past the end of the text (%zu bytes)", offset, s->text_len);
    int32_t np = n_prompt_tokens(s);
    /* the generated token that starts at or before offset (rounded down) */
    int32_t p = np;
    for (int32_t i = np; i < s->n_path; i++) if ((size_t)s->path_off[i] <= offset) p = i;
    if (offset >= s->text_len) p = s->n_path;
    if (p == s->n_path && s->state == FP_STATE_AT_FORK) return FP_OK; /* already open here */
    if (p < s->n_path) {
        int32_t y = s->path_node[p];
        fp_node *ny = &s->nodes[y];
        if (p == ny->start_pos && ny->parent_fork >= 0)
            return reopen(s, fork_at_id(s, ny->parent_fork), err); /* a fork already stands here */
        int32_t at;      /* the node the new fork ends */
        int32_t after;   /* the existing continuation */
        if (p == ny->start_pos) { at = ny->parent; after = y; }
        else {
            after = split_node(s, y, p);
            if (after < 0) return fp_fail(err, FP_ERR_NOMEM, "out of memory");
            at = y;
        }
        if (s->nodes[at].fork_id >= 0) return reopen(s, fork_at_id(s, s->nodes[at].fork_id), err);
        fp_cloud_drop_live(s);
        fp_status st = fpi_set_path(s, at, true, err);
        if (st != FP_OK) return st;
        s->nodes[after].parent_fork = s->n_forks; /* the old text is one alternative of the new fork */
    } else {
        fp_cloud_drop_live(s); /* an ended text: a fork after its last token, logits are current */
    }
    fp_dist_compute(&s->dist, s->cur_logits, s->n_vocab, s->chain, 2);
    return open_fork(s, FP_REASON_FORCED, fp_dist_uncertainty(&s->dist), err);
}

fp_status fp_session_set_settings(fp_session *s, const fp_settings *settings, fp_error *err) {
    fp_status st = fp_settings_validate(settings, err);
    if (st != FP_OK) return st;
    struct llama_sampler *chain = fp_chain_new(settings, s->n_vocab, s->prefs ? fpi_prefs_bias(s->prefs) : NULL);
    if (!chain) return fp_fail(err, FP_ERR_NOMEM, "out of memory");
    llama_sampler_free(s->chain);
    s->chain = chain;
    fpi_prefetch_clear(s);
    fp_cloud_drop_live(s);
    s->st = *settings;
    chain_resync(s);
    if (s->state != FP_STATE_AT_FORK) return FP_OK;
    /* the open fork is recomputed under the new settings */
    fp_fork_rec *f = fork_at_id(s, s->open_fork);
    if ((st = fork_fit(f, settings->k, err)) != FP_OK) return st;
    st = fp_cloud_compute(s, f->logits, "", f->base, &f->n_base, &f->base_other, err);
    if (st != FP_OK) return st;
    s->live.fork_id = f->pub.id;
    apply_prefs(s, f, f->base, f->n_base);
    show_base(f);
    fpi_fork_show(s, f);
    return FP_OK;
}

fp_status fp_session_set_prefs(fp_session *s, fp_prefs *p, fp_error *err) {
    if (p && fp_prefs_n_vocab(p) != s->n_vocab)
        return fp_fail(err, FP_ERR_MODEL, "the preferences were learned on a model with %d tokens; this one has %d",
                       fp_prefs_n_vocab(p), s->n_vocab);
    struct llama_sampler *chain = fp_chain_new(&s->st, s->n_vocab, p ? fpi_prefs_bias(p) : NULL);
    if (!chain) return fp_fail(err, FP_ERR_NOMEM, "out of memory");
    fpi_prefetch_clear(s);
    llama_sampler_free(s->chain);
    s->chain = chain;
    s->prefs = p;
    chain_resync(s);
    if (s->state == FP_STATE_AT_FORK) { /* the open cloud, in the person's order */
        fp_fork_rec *f = fork_at_id(s, s->open_fork);
        if (p) apply_prefs(s, f, f->shown, f->n_shown);
        else for (int32_t i = 0; i < f->n_shown; i++) f->shown[i].pref = f->shown[i].prob;
        if (!f->pub.typed_prefix[0]) memcpy(f->base, f->shown, sizeof(fp_candidate) * (size_t)f->n_shown);
    }
    return FP_OK;
}

fp_status fpi_session_redecode(fp_session *s, fp_error *err) {
    fpi_prefetch_clear(s);
    fp_cloud_drop_live(s);
    llama_memory_seq_rm(fp_engine_mem(s->engine), s->trunk_seq, -1, -1);
    s->n_past = 0;
    fp_status st = trunk_sync(s, NULL, 0, true, err);
    if (st != FP_OK || s->state != FP_STATE_AT_FORK) return st;
    /* the open fork, as the adapted model sees it now */
    fp_fork_rec *f = fork_at_id(s, s->open_fork);
    memcpy(f->logits, s->cur_logits, sizeof(float) * (size_t)s->n_vocab);
    if ((st = fork_fit(f, s->st.k, err)) != FP_OK) return st;
    st = fp_cloud_compute(s, f->logits, "", f->base, &f->n_base, &f->base_other, err);
    if (st != FP_OK) return st;
    s->live.fork_id = f->pub.id;
    apply_prefs(s, f, f->base, f->n_base);
    show_base(f);
    fpi_fork_show(s, f);
    return FP_OK;
}
