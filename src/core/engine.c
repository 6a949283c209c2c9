/*
 * engine.c — one llama.cpp context shared by every session, and its sequences.
 *
 * The KV cache is unified: all sequences draw cells from one pool, and
 * llama_memory_seq_cp only tags existing cells with another sequence id. That
 * is what makes branching cheap: a branch shares its prefix with the trunk
 * and pays only for its own tokens.
 *
 * Sequence ids are a pool. Each session holds one trunk sequence for its
 * lifetime and borrows scratch sequences for the branches of its open fork.
 * When the pool runs dry the engine takes back the scratch sequences of the
 * least recently used *other* session (its fork stays valid; committing it
 * will then decode the chosen tokens in its trunk instead of copying them).
 *
 * The engine sits below the sessions: it knows them only as fpi_seq_user
 * records (internal.h), through which it takes back idle branches and asks
 * for a re-decode when the adapters change.
 *
 * All decoding goes through fpi_engine_decode so that calls and tokens are
 * counted (tests use the counts to prove no accepted token is decoded
 * twice) and so that tests can inject a failure into any decode.
 */
#include "core/internal.h"
#include "core/testing.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* llama.cpp asks this between graph nodes (remote.c between requests):
 * abort only speculative work. */
static bool abort_cb(void *ud) {
    fp_engine *e = ud;
    return e->bat ? fpi_batcher_abortable(e) && atomic_load(&e->cancel) : fpi_spec_cancelled(e);
}

bool fpi_spec_cancelled(const fp_engine *e) {
    return e->in_prefetch && (atomic_load(&e->cancel) || atomic_load(&e->in_prefetch->pf_cancel));
}
bool fpi_engine_should_abort(fp_engine *e) { return abort_cb(e); }

void fp_engine_cancel(fp_engine *e) {
    if (!e) return;
    atomic_store(&e->cancel, 1);
    fpi_batcher_wake(e);   /* speculative decodes waiting for a round leave it */
}

void fp_engine_clear_cancel(fp_engine *e) {
    if (e) atomic_store(&e->cancel, 0);
}

fp_engine_params fp_engine_default_params(void) {
    fp_engine_params p = { .n_ctx = 0, .n_seq_max = 64, .n_threads = 0 };
    return p;
}

/* ------------------------------------------------ the local back end */

static int local_decode(fp_engine *e, const struct llama_batch *b) { return llama_decode(e->ctx, *b); }
static const float *local_logits(fp_engine *e, int32_t i) { return llama_get_logits_ith(e->ctx, i); }
static bool local_seq_rm(fp_engine *e, int32_t q, int32_t p0, int32_t p1) {
    return llama_memory_seq_rm(llama_get_memory(e->ctx), q, p0, p1);
}
static void local_seq_cp(fp_engine *e, int32_t a, int32_t b, int32_t p0, int32_t p1) {
    llama_memory_seq_cp(llama_get_memory(e->ctx), a, b, p0, p1);
}
static void local_seq_add(fp_engine *e, int32_t q, int32_t p0, int32_t p1, int32_t d) {
    llama_memory_seq_add(llama_get_memory(e->ctx), q, p0, p1, d);
}
static int32_t local_pos_min(fp_engine *e, int32_t q) { return llama_memory_seq_pos_min(llama_get_memory(e->ctx), q); }
static int32_t local_pos_max(fp_engine *e, int32_t q) { return llama_memory_seq_pos_max(llama_get_memory(e->ctx), q); }
static void local_free(fp_engine *e) {
    if (e->ctx) llama_free(e->ctx);
    if (e->lora) llama_adapter_lora_free(e->lora);
}
static const fpi_backend g_local = {
    .name = "local", .sparse = false, .decode = local_decode, .logits = local_logits,
    .seq_rm = local_seq_rm, .seq_cp = local_seq_cp, .seq_add = local_seq_add,
    .seq_pos_min = local_pos_min, .seq_pos_max = local_pos_max, .free = local_free,
};

bool    fpi_seq_rm(fp_engine *e, int32_t q, int32_t p0, int32_t p1) { return e->be->seq_rm(e, q, p0, p1); }
void    fpi_seq_cp(fp_engine *e, int32_t a, int32_t b, int32_t p0, int32_t p1) { e->be->seq_cp(e, a, b, p0, p1); }
void    fpi_seq_add(fp_engine *e, int32_t q, int32_t p0, int32_t p1, int32_t d) { e->be->seq_add(e, q, p0, p1, d); }
int32_t fpi_seq_pos_min(fp_engine *e, int32_t q) { return e->be->seq_pos_min(e, q); }
int32_t fpi_seq_pos_max(fp_engine *e, int32_t q) { return e->be->seq_pos_max(e, q); }

float fpi_row_floor(const fp_engine *e, const float *row) {
    if (!e->be->sparse || !row) return -INFINITY;
    int32_t V = e->model->n_vocab, n_at = 0;
    float lo = INFINITY;
    for (int32_t t = 0; t < V; t++) {
        if (row[t] < lo) { lo = row[t]; n_at = 1; }
        else if (row[t] == lo) n_at++;
    }
    return n_at > 1 ? lo : -INFINITY;   /* one token at the minimum: it was listed */
}

const char *fp_engine_backend(const fp_engine *e) {
    return e->remote ? e->be_label : "local";
}

/* The part every back end shares: the sequence pool and the batch. */
static fp_engine *engine_alloc(fp_model *model, const fp_engine_params *p, uint32_t n_ctx, int32_t n_batch,
                               fp_error *err) {
    fp_engine *e = calloc(1, sizeof *e);
    if (!e) { fpi_fail(err, FP_ERR_NOMEM, "out of memory"); return NULL; }
    e->be = &g_local;
    e->model = model;
    e->n_ctx = n_ctx;
    e->n_seq_max = p->n_seq_max;
    e->n_batch = n_batch;
    e->batch = llama_batch_init(e->n_batch, 0, 1);
    atomic_init(&e->cancel, 0);
    e->seq_owner = calloc(p->n_seq_max, sizeof *e->seq_owner);
    if (!e->seq_owner || !e->batch.token) { fp_engine_free(e); fpi_fail(err, FP_ERR_NOMEM, "out of memory"); return NULL; }
    return e;
}

fp_engine *fp_engine_new(fp_model *model, const fp_engine_params *params, fp_error *err) {
    fp_engine_params p = params ? *params : fp_engine_default_params();
    if (!model) { fpi_fail(err, FP_ERR_ARG, "no model"); return NULL; }
    if (p.n_seq_max < 2 || p.n_seq_max > 256) {
        fpi_fail(err, FP_ERR_ARG, "n_seq_max must be 2..256 (got %u)", p.n_seq_max);
        return NULL;
    }
    if (p.backend && strcmp(p.backend, "local") != 0) {
        uint32_t train = (uint32_t)llama_model_n_ctx_train(model->lm);
        uint32_t n_ctx = p.n_ctx ? p.n_ctx : (train > 0 && train < 4096 ? train : 4096);
        if (n_ctx < 64) n_ctx = 64;
        fp_engine *e = engine_alloc(model, &p, n_ctx, 512, err);
        if (!e) return NULL;
        e->n_pos_max = (int32_t)n_ctx;
        e->can_shift = true;   /* the mirrors move positions for free */
        if (fpi_remote_open(e, &p, err) != FP_OK) { fp_engine_free(e); return NULL; }
        return e;
    }
    if (model->vocab_only) {
        fpi_fail(err, FP_ERR_MODEL, "%s is loaded vocab-only: it cannot generate", model->path);
        return NULL;
    }
    if (p.n_seq_max < 2 || p.n_seq_max > 256) {
        fpi_fail(err, FP_ERR_ARG, "n_seq_max must be 2..256 (got %u)", p.n_seq_max);
        return NULL;
    }
    uint32_t train = (uint32_t)llama_model_n_ctx_train(model->lm);
    uint32_t n_ctx = p.n_ctx ? p.n_ctx : (train > 4096 ? 4096 : train);
    if (n_ctx < 64) n_ctx = 64;
    /* llama.cpp reserves a graph with one output per sequence inside one
     * batch (n_batch = n_ctx up to 2048): more sequences than that abort
     * the process in llama_init_from_model (GGML_ASSERT n_outputs_max) */
    uint32_t n_batch = n_ctx < 2048 ? n_ctx : 2048;
    if (p.n_seq_max > n_batch) {
        fpi_fail(err, FP_ERR_ARG, "%u sequences do not fit a context of %u cells (at most %u): use fewer sequences or a larger context",
                 p.n_seq_max, n_ctx, n_batch);
        return NULL;
    }
    /* ggml's threads spin while they wait for each other: on a tiny model the
     * extra threads buy nothing and, when another process takes a core, they
     * stall every decode. So small models get one thread by default. */
    int32_t threads = p.n_threads;
    if (threads <= 0) {
        threads = (int32_t)sysconf(_SC_NPROCESSORS_ONLN);
        if (llama_model_n_params(model->lm) < 100u * 1000 * 1000) threads = 1;
    }
    if (threads < 1) threads = 1;

    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_batch = n_batch;
    cp.n_ubatch = cp.n_batch < 512 ? cp.n_batch : 512;
    cp.n_seq_max = p.n_seq_max;
    cp.n_threads = threads;
    cp.n_threads_batch = threads;
    cp.kv_unified = true;   /* one cell pool: branches share their prefix cells */
    cp.no_perf = true;
    struct llama_context *ctx = llama_init_from_model(model->lm, cp);
    if (!ctx) { fpi_fail(err, FP_ERR_MODEL, "llama.cpp could not create a context of %u cells", n_ctx); return NULL; }

    /* llama.cpp may round the cache up (to 256 cells): the engine uses what
     * was asked for, so a window of N tokens is N whatever the rounding */
    uint32_t have = llama_n_ctx(ctx) < n_ctx ? llama_n_ctx(ctx) : n_ctx;
    fp_engine *e = engine_alloc(model, &p, have, (int32_t)cp.n_batch, err);
    if (!e) { llama_free(ctx); return NULL; }
    e->ctx = ctx;
    e->n_pos_max = (int32_t)(e->n_ctx < train ? e->n_ctx : train);
    llama_set_abort_callback(ctx, abort_cb, e);
    e->can_shift = llama_memory_can_shift(llama_get_memory(ctx));
    return e;
}

void fp_engine_free(fp_engine *e) {
    if (!e) return;
    fpi_batcher_free(e);
    if (e->batch.token) llama_batch_free(e->batch);
    e->be->free(e);
    free(e->seq_owner);
    free(e->users);
    free(e);
}

const fp_model *fp_engine_model(const fp_engine *e) { return e->model; }
uint32_t fp_engine_n_ctx(const fp_engine *e) { return e->n_ctx; }
uint64_t fpi_engine_decode_calls(const fp_engine *e) { return e->n_decode_calls; }
uint64_t fpi_engine_decoded_tokens(const fp_engine *e) { return e->n_decoded_tokens; }
uint64_t fpi_engine_plan_held(const fp_engine *e) { return e->n_plan_held; }
llama_memory_t fpi_engine_mem(fp_engine *e) { return e->ctx ? llama_get_memory(e->ctx) : NULL; }
int64_t  fpi_engine_fail_decode(fp_engine *e, int64_t nth) {
    int64_t left = e->fault_at;
    e->fault_at = nth;
    return left;
}

/* No stale KV may be scored after steering or an adapter changes: every
 * user is marked stale first (so one that fails below is decoded again
 * before its next use), then each decodes its path again now. */
fp_status fpi_engine_redecode_all(fp_engine *e, fp_error *err) {
    for (int32_t i = 0; i < e->n_users; i++) e->users[i]->stale(e->users[i]);
    fp_status first = FP_OK;
    for (int32_t i = 0; i < e->n_users; i++) {
        fp_error one = {0};
        fp_status st = e->users[i]->refresh(e->users[i], &one);
        if (st != FP_OK && first == FP_OK) {
            first = st;
            if (err) *err = one;
        }
    }
    return first;
}

void fpi_batch_clear(fp_engine *e) { e->batch.n_tokens = 0; }

bool fpi_batch_add(fp_engine *e, int32_t token, int32_t pos, int32_t seq, bool logits) {
    struct llama_batch *b = &e->batch;
    if (b->n_tokens >= e->n_batch) return false;
    int32_t i = b->n_tokens++;
    b->token[i] = token;
    b->pos[i] = pos;
    b->n_seq_id[i] = 1;
    b->seq_id[i][0] = seq;
    b->logits[i] = logits;
    return true;
}

fp_status fpi_engine_decode(fp_engine *e, fp_error *err) {
    if (e->batch.n_tokens == 0) return FP_OK;
    if (e->fault_at > 0 && --e->fault_at == 0) /* test hook: an injected failure, nothing decoded */
        return fpi_fail(err, FP_ERR_DECODE, "llama_decode failed (injected fault)");
    e->n_decode_calls++;
    e->n_decoded_tokens += (uint64_t)e->batch.n_tokens;
    if (e->trace) e->trace(e->trace_ud, &e->batch);
    if (e->bat) return fpi_batcher_decode(e, err);   /* with other threads' batches: batch.c */
    int32_t rc = e->be->decode(e, &e->batch);
    return fpi_decode_status(e, rc, err);
}

fp_status fpi_decode_status(fp_engine *e, int rc, fp_error *err) {
    if (rc == 0) return FP_OK;
    if (rc == FPI_REMOTE_FAILED) return fpi_fail(err, FP_ERR_REMOTE, "%s", e->be_msg);
    if (rc == 2) return fpi_fail(err, FP_ERR_ABORTED, "speculative work was cancelled");
    if (rc == 1) return fpi_fail(err, FP_ERR_CONTEXT, "the KV cache is full (%u cells): shorten the text or raise n_ctx", e->n_ctx);
    if (rc != 0) return fpi_fail(err, FP_ERR_DECODE, "llama_decode failed (code %d)", rc);
    return FP_OK;
}

fp_status fpi_engine_decode_span(fp_engine *e, int32_t seq, const int32_t *tokens, int32_t n,
                                int32_t pos0, bool want_last, fp_error *err) {
    for (int32_t i = 0; i < n; ) {
        fpi_batch_clear(e);
        int32_t j = i;
        while (j < n && fpi_batch_add(e, tokens[j], pos0 + j, seq, want_last && j == n - 1)) j++;
        fp_status st = fpi_engine_decode(e, err);
        if (st != FP_OK) return st;
        i = j;
    }
    return FP_OK;
}

fp_status fpi_engine_attach(fp_engine *e, fpi_seq_user *u) {
    if (e->n_users == e->cap_users) {
        int32_t nc = e->cap_users ? e->cap_users * 2 : 8;
        fpi_seq_user **nu = realloc(e->users, sizeof *nu * (size_t)nc);
        if (!nu) return FP_ERR_NOMEM;
        e->users = nu;
        e->cap_users = nc;
    }
    e->users[e->n_users++] = u;
    return FP_OK;
}

void fpi_engine_detach(fp_engine *e, fpi_seq_user *u) {
    for (int32_t i = 0; i < e->n_users; i++)
        if (e->users[i] == u) { e->users[i] = e->users[--e->n_users]; break; }
    for (uint32_t q = 0; q < e->n_seq_max; q++)
        if (e->seq_owner[q] == u) fpi_seq_free(e, (int32_t)q);
}

int32_t fpi_seq_alloc(fp_engine *e, fpi_seq_user *owner) {
    if (e->in_prefetch) {
        /* speculation only takes free sequences, and leaves a reserve: it
         * must not take back another session's ready branches, nor wait for
         * (or starve) the work people are waiting for. O(n_seq_max). */
        uint32_t n_free = 0;
        int32_t first = -1;
        for (uint32_t q = 0; q < e->n_seq_max; q++)
            if (!e->seq_owner[q]) { n_free++; if (first < 0) first = (int32_t)q; }
        if (n_free <= e->n_seq_max / 8) return -1;
        e->seq_owner[first] = owner;
        return first;
    }
    for (;;) {
        for (int attempt = 0; attempt < 2; attempt++) {
            for (uint32_t q = 0; q < e->n_seq_max; q++)
                if (!e->seq_owner[q]) { e->seq_owner[q] = owner; return (int32_t)q; }
            /* none free: take back the idle branches of the least recently used
             * other user (not one another thread is half-way through: batch.c) */
            fpi_seq_user *victim = NULL;
            for (int32_t i = 0; i < e->n_users; i++) {
                fpi_seq_user *u = e->users[i];
                if (u == owner || *u->n_reclaimable == 0 || u->pinned > 0) continue;
                if (!victim || *u->last_use < *victim->last_use) victim = u;
            }
            if (!victim) {
                /* no idle branches left: speculation is what gives way
                 * (another session's prefetched outcomes, least recent first) */
                for (int32_t i = 0; i < e->n_users; i++) {
                    fpi_seq_user *u = e->users[i];
                    if (u == owner || u->pinned > 0 || !u->drop_spec) continue;
                    if (!victim || *u->last_use < *victim->last_use) {
                        fp_session *vs = u->ud;
                        if (vs->n_prefetch > 0) victim = u;
                    }
                }
                if (!victim || !victim->drop_spec(victim)) break;
                attempt = -1;   /* its shadows' sequences are free now: look again */
                continue;
            }
            victim->release(victim);
        }
        /* with batching, branches held by sessions other threads are working
         * on come free when their work ends: wait for that, don't fail */
        bool pinned_hold = false;
        for (int32_t i = 0; i < e->n_users && !pinned_hold; i++)
            pinned_hold = e->users[i] != owner && e->users[i]->pinned > 0 && *e->users[i]->n_reclaimable > 0;
        if (!e->bat || !pinned_hold || !fpi_batcher_wait_seqs(e, owner)) return -1;
    }
}

void fpi_seq_free(fp_engine *e, int32_t seq) {
    if (seq < 0 || (uint32_t)seq >= e->n_seq_max) return;
    fpi_seq_rm(e, seq, -1, -1);
    e->seq_owner[seq] = NULL;
}
