/*
 * prefetch.c — speculation: the next fork, computed while the person decides.
 *
 * A person looks at a cloud for a second or more; the model needs a few
 * milliseconds per decode. So while they decide, the front end asks for the
 * outcome of the likeliest choices. Each outcome is computed in a *shadow*
 * session: a private copy of the current path whose trunk shares the real
 * trunk's KV cells (llama_memory_seq_cp), and which takes the decision for
 * real — copying the candidate's live branch, running on automatically,
 * opening and computing the next fork — with the ordinary session code.
 *
 * When the person then makes that choice, the shadow is *adopted*: its
 * tokens and position records are appended to the real path, its trunk cells
 * are tagged with the real trunk's sequence, its fork and live branches move
 * over. Nothing is decoded. Any other change to the session discards the
 * shadows and returns their sequences.
 *
 * A shadow carries the person's preferences (their logit bias is in the
 * cloned chain) but does not settle its fork: the session that adopts it
 * records the decision, learns from it, and then orders and auto-resolves
 * the adopted fork exactly as a direct choice would (session.c, settle).
 *
 * Cancellation: llama.cpp's abort callback (engine.c) stops a shadow's decode
 * as soon as fp_engine_cancel is called; the half-built shadow is dropped.
 *
 * Invariant: a shadow holds a read-only view of the parent's live branches
 * only during its own commit (the cells are copied, never changed); after
 * that it owns nothing of the parent's.
 */
#include "core/internal.h"

#include <stdlib.h>
#include <string.h>

void fpi_prefetch_clear(fp_session *s) {
    for (int32_t i = 0; i < s->n_prefetch; i++) fp_session_free(s->prefetch[i].shadow);
    s->n_prefetch = 0;
}

int32_t fpi_prefetch_find(const fp_session *s, int32_t index, bool with_preview) {
    for (int32_t i = 0; i < s->n_prefetch; i++)
        if (s->prefetch[i].index == index && s->prefetch[i].with_preview == with_preview) return i;
    return -1;
}

void fp_session_cancel_prefetch(fp_session *s) {
    if (!s) return;
    atomic_store(&s->pf_cancel, 1);
    fpi_batcher_wake(s->engine);   /* a speculative decode waiting for a round leaves it */
}

void fp_session_clear_cancel(fp_session *s) {
    if (s) atomic_store(&s->pf_cancel, 0);
}

bool fp_session_is_prefetched(const fp_session *s, int32_t index, bool with_preview) {
    bool phrase = with_preview || s->st.granularity == FP_GRAN_PHRASE;
    return fpi_prefetch_find(s, index, phrase) >= 0;
}

/* Builds a shadow standing at s's open fork: same prompt, same path (one flat
 * node), same fork, trunk cells shared with s's trunk. */
static fp_session *shadow_new(fp_session *s, fp_error *err) {
    fp_session *sh = fpi_session_alloc(s->engine, &s->st, err);
    if (!sh) return NULL;
    sh->shadow = true;
    sh->prefs = s->prefs;         /* the same person (the bias is in the cloned chain too); a shadow never settles */
    sh->user.bias = s->user.bias;
    sh->last_use = s->last_use;
    sh->rng = s->rng;
    struct llama_sampler *chain = llama_sampler_clone(s->chain); /* with its penalty history */
    if (chain) { llama_sampler_free(sh->chain); sh->chain = chain; }
    sh->prompt = strdup(s->prompt);
    sh->prompt_len = s->prompt_len;
    sh->grammar = s->grammar ? strdup(s->grammar) : NULL; /* the chain's clone carries its state */
    memcpy(sh->heal, s->heal, (size_t)s->heal_len); /* the same text from the same tokens */
    sh->heal_len = s->heal_len;
    int32_t np = s->nodes[0].n;
    bool ok = sh->prompt && chain && (!s->grammar || sh->grammar) && fpi_node_new(sh, FP_NODE_PROMPT, -1, -1, 0) == 0;
    for (int32_t i = 0; ok && i < np; i++) ok = fpi_node_push(sh, 0, s->path_tok[i], NULL);
    ok = ok && fpi_node_new(sh, FP_NODE_AUTO, 0, -1, np) == 1;
    for (int32_t p = np; ok && p < s->n_path; p++) {
        const fp_node *n = &s->nodes[s->path_node[p]];
        ok = fpi_node_push(sh, 1, s->path_tok[p], &n->pos[p - n->start_pos]);
    }
    /* the open fork, as it stands (shown candidates, with the person's prefix) */
    const fp_fork_rec *f = &s->forks[s->open_fork];
    fp_fork_rec *g = ok ? calloc(1, sizeof *g) : NULL;
    if (g) {
        *g = *f;
        g->pub.id = 0;
        g->node = 1;
        g->logits = malloc(sizeof(float) * (size_t)s->n_vocab);
        g->base = fpi_candidates_dup(f->base, f->cap);
        g->shown = fpi_candidates_dup(f->shown, f->cap);
        sh->forks = g;
        sh->n_forks = sh->cap_forks = 1;
        ok = g->logits && g->base && g->shown;
        if (ok) memcpy(g->logits, f->logits, sizeof(float) * (size_t)s->n_vocab);
    }
    if (!ok) {
        fpi_fail(err, FP_ERR_NOMEM, "out of memory");
        fp_session_free(sh);
        return NULL;
    }
    g->pub.candidates = g->shown;
    sh->nodes[1].fork_id = 0;
    sh->leaf = 1;
    /* the path cache, and the trunk: the same cells, tagged with the shadow's sequence */
    if (fpi_path_rebuild(sh, 1) != FP_OK) {
        fpi_fail(err, FP_ERR_NOMEM, "out of memory");
        fp_session_free(sh);
        return NULL;
    }
    fpi_seq_cp(s->engine, s->trunk_seq, sh->trunk_seq, -1, -1);
    sh->n_past = sh->n_path;
    sh->n_keep = s->n_keep;       /* the same window (a shadow never slides it: tree.c) */
    sh->n_shift = s->n_shift;
    memcpy(sh->cur_logits, s->cur_logits, sizeof(float) * (size_t)s->n_vocab);
    return sh;
}

fp_status fp_session_prefetch(fp_session *s, int32_t index, bool with_preview, fp_error *err) {
    if (s->state != FP_STATE_AT_FORK || s->open_fork < 0)
        return fpi_fail(err, FP_ERR_STATE, "there is no open fork to prefetch from");
    const fp_fork_rec *f = &s->forks[s->open_fork];
    if (index < 0 || index >= f->n_shown)
        return fpi_fail(err, FP_ERR_ARG, "candidate %d is out of range (the fork has %d)", index, f->n_shown);
    bool phrase = with_preview || s->st.granularity == FP_GRAN_PHRASE;
    if (fpi_prefetch_find(s, index, phrase) >= 0) return FP_OK;
    if (s->n_prefetch == FP_MAX_PREFETCH) { /* the oldest goes */
        fp_session_free(s->prefetch[0].shadow);
        memmove(s->prefetch, s->prefetch + 1, sizeof s->prefetch[0] * (FP_MAX_PREFETCH - 1));
        s->n_prefetch--;
    }
    fp_engine *e = s->engine;
    if (atomic_load(&e->cancel) || atomic_load(&s->pf_cancel))
        return fpi_fail(err, FP_ERR_ABORTED, "speculation is cancelled (fp_engine_clear_cancel or fp_session_clear_cancel resumes it)");
    e->in_prefetch = s;
    s->user.pinned++;   /* its branches stay while the shadow borrows them (another thread may allocate meanwhile) */
    fp_session *sh = shadow_new(s, err);
    fp_status st = sh ? FP_OK : (err ? err->code : FP_ERR_NOMEM);
    if (sh) {
        /* borrow the parent's live branches for the commit's copy; the shadow's
         * own workspace replaces these pointers when it computes its fork */
        sh->live = s->live;
        sh->live.valid = s->live.valid && s->live.fork_id == s->open_fork;
        sh->live.fork_id = 0;
        sh->open_fork = 0;
        sh->state = FP_STATE_AT_FORK;
        st = fp_session_choose(sh, index, with_preview, FP_BY_AUTO, err);
        sh->live.valid = sh->live.valid && sh->cloud != NULL; /* never the borrowed view */
    }
    s->user.pinned--;
    e->in_prefetch = NULL;
    if (st != FP_OK) {
        fp_session_free(sh);
        return st;
    }
    s->prefetch[s->n_prefetch++] = (struct fp_prefetch){ .shadow = sh, .index = index, .with_preview = phrase };
    return FP_OK;
}

fp_status fpi_prefetch_adopt(fp_session *s, int32_t which, fp_chooser by, fp_error *err) {
    struct fp_prefetch pf = s->prefetch[which];
    fp_session *sh = pf.shadow;
    s->prefetch[which] = s->prefetch[--s->n_prefetch]; /* it is ours now; the rest go below */
    fpi_prefetch_clear(s);
    const int32_t fork_id = s->open_fork;
    fp_status st = fpi_trunk_repair(s, err);
    int32_t node = st == FP_OK ? fpi_node_new(s, FP_NODE_CHOICE, s->forks[fork_id].node, fork_id, s->n_path) : -1;
    if (node < 0) { fp_session_free(sh); return st != FP_OK ? st : fpi_fail(err, FP_ERR_NOMEM, "out of memory"); }
    s->leaf = node;
    s->open_fork = -1;
    /* the shadow's decision node holds the chosen and the automatic tokens */
    const fp_node *src = &sh->nodes[sh->leaf];
    for (int32_t i = 0; i < src->n; i++) {
        fp_position rec = src->pos[i];
        if (rec.fork_id == 0 || rec.reason == FP_REASON_IN_CHOICE) rec.by = by; /* the person's span */
        rec.fork_id = rec.fork_id == 0 ? fork_id : -1;
        if ((st = fpi_append_token(s, src->tokens[i], &rec)) != FP_OK) { fp_session_free(sh); return fpi_fail(err, st, "out of memory"); }
    }
    /* KV: the shadow's cells past the fork become the trunk's */
    fp_engine *mem_e = s->engine;
    fpi_cloud_drop_live(s);
    fpi_seq_cp(mem_e, sh->trunk_seq, s->trunk_seq, fpi_kv_pos(s, s->n_past), fpi_kv_pos(sh, sh->n_past));
    s->n_past = sh->n_past;
    memcpy(s->cur_logits, sh->cur_logits, sizeof(float) * (size_t)s->n_vocab);
    s->rng = sh->rng;
    s->word_end_pending = sh->word_end_pending;
    if (sh->state == FP_STATE_ENDED) {
        fpi_session_end(s, sh->end_reason);
        fp_session_free(sh);
        return FP_OK;
    }
    /* the shadow's open fork becomes ours, with its live branches */
    const fp_fork_rec *g = &sh->forks[sh->open_fork];
    if (!fpi_grow((void **)&s->forks, &s->cap_forks, s->n_forks + 1, sizeof *s->forks)) {
        fp_session_free(sh);
        return fpi_fail(err, FP_ERR_NOMEM, "out of memory");
    }
    fp_fork_rec *h = &s->forks[s->n_forks];
    *h = *g;
    h->pub.id = s->n_forks;
    h->node = s->leaf;
    h->logits = malloc(sizeof(float) * (size_t)s->n_vocab);
    h->base = fpi_candidates_dup(g->base, g->cap);
    h->shown = fpi_candidates_dup(g->shown, g->cap);
    if (!h->logits || !h->base || !h->shown) {
        free(h->logits); free(h->base); free(h->shown);
        fp_session_free(sh);
        return fpi_fail(err, FP_ERR_NOMEM, "out of memory");
    }
    memcpy(h->logits, g->logits, sizeof(float) * (size_t)s->n_vocab);
    s->n_forks++;
    s->nodes[s->leaf].fork_id = h->pub.id;
    fpi_fork_show(s, h);
    if (sh->live.valid && sh->live.fork_id == g->pub.id) st = fpi_cloud_adopt_live(s, sh, h->pub.id, err);
    fp_session_free(sh);
    return st;
}
