/*
 * batch.c — several threads' decodes in one llama_decode (cross-session batching).
 *
 * Why: a server runs many sessions on one engine. On the models Forkpoint
 * targets, one llama_decode over a few rows costs mostly its fixed overhead
 * (building the graph, waking the threads, copying outputs), so sessions
 * that each decode a few rows at a time spend most of the machine on
 * overhead. Run together, the same rows cost little more than one session's.
 *
 * The contract. With batching on (fp_engine_enable_batching), any number of
 * threads may work on one engine's sessions, each only between
 * fp_engine_lock and fp_engine_unlock. The lock makes the core's use
 * one-at-a-time, as it always was; what changes is fpi_engine_decode. It
 * copies the thread's batch into a request, parks it and gives the lock up.
 * When every thread that holds work ("active": between lock and unlock) is
 * parked, the last one to park runs one round: one llama_decode over the
 * parked requests (the oldest first, up to n_batch tokens),
 * output rows copied into each request's own buffer. Each thread then takes
 * the lock again in turn, adopts its rows as its current logits (read with
 * fpi_engine_logits, in place of llama_get_logits_ith) and goes on. A thread
 * alone decodes at once: no waiting, one copy of its output rows.
 *
 * Invariants (checked in FP_CHECKS builds):
 *   - parked <= active, and the number of queued requests is parked;
 *   - `held` is true exactly while one thread runs core code or a round.
 * While a thread is parked mid-operation another one runs: it must not take
 * back the parked thread's branches. So a parked request pins the owners of
 * the sequences it decodes into (the session it works for: every decode of
 * a session touches its own sequences), and fpi_seq_alloc never reclaims
 * from a pinned user.
 *
 * When the sequence pool is empty and only parked (pinned) sessions hold
 * branches, an allocation waits (fpi_batcher_wait_seqs), the lock given up
 * like a decode's, until another thread's work ends and its branches can be
 * taken back; only when every thread waits for sequences does it fail, as
 * it would alone. So a fork never gets fewer paths because others share
 * the engine, only later.
 *
 * Speculation (prefetch) yields. Interactive requests go first in a round;
 * speculative ones fill it up to as many tokens as the interactive ones
 * carry (at least SPEC_MIN_TOKENS; all of it when there are none), so
 * speculation at most doubles a round while people wait, and still moves
 * on while they are busy; one passed over SPEC_MAX_SKIPS times goes in
 * anyway, so none starves. A prefetch decode asked to cancel returns
 * FP_ERR_ABORTED before it parks or while it waits for a round, and a round
 * is abortable only when every request in it is speculative.
 *
 * A round that finds the KV cache full (llama_decode's 1) is run again one
 * request at a time, so a request fails only when it would have failed alone.
 *
 * Cost: per request O(tokens) to copy it in and O(rows × n_vocab) to copy its
 * logits out; one mutex and condition variable per engine.
 */
#include "core/internal.h"

#include <assert.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct fpi_breq {
    struct fpi_breq *next;
    int32_t n;                /* tokens */
    llama_token *tok;
    llama_pos *pos;
    llama_seq_id *seq;
    int8_t *want;             /* logits wanted for this token */
    int32_t n_out;            /* tokens with logits */
    float *rows;              /* n_out × n_vocab, written by the round */
    size_t rows_cap;          /* floats */
    bool prefetch;
    fp_session *spec;         /* prefetch: the session speculated on (its pf_cancel) */
    int skipped;              /* prefetch: rounds that passed it over (see run_round) */
    bool taken;               /* in a round now (no longer in the queue) */
    bool done;
    fp_status st;
    int rc;                   /* llama_decode's code, for the message */
} fpi_breq;

struct fpi_batcher {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int active;               /* threads between fp_engine_lock and unlock */
    int parked;               /* of those, waiting in a request */
    int seq_waiting;          /* of those, waiting for a sequence (fpi_batcher_wait_seqs) */
    uint64_t unlocks;         /* fp_engine_unlock calls: a waiter for sequences retries */
    bool held;                /* a thread runs core code or a round */
    fpi_breq *head, *tail;    /* parked requests, oldest first */
    struct llama_batch merged;
    bool abortable;           /* the round in flight is all speculation */
    _Atomic uint64_t n_rounds;    /* llama_decode calls made by rounds (read from any thread) */
    _Atomic uint64_t n_requests;  /* decodes that went through rounds */
};

/* What this thread's last decode produced (its "current logits"). */
static _Thread_local struct {
    const fp_engine *e;
    float *rows;
    size_t rows_cap;
    int32_t *row_of;          /* token index -> output row, -1 = none */
    int32_t n_tok, cap_tok, last;
} tl;

static void check(const struct fpi_batcher *b)
{
#ifdef FP_CHECKS
    int n = 0;
    for (const fpi_breq *r = b->head; r; r = r->next) n++;
    assert(b->parked >= 0 && b->seq_waiting >= 0 && b->parked + b->seq_waiting <= b->active && n == b->parked);
#else
    (void)b;
#endif
}

fp_status fp_engine_enable_batching(fp_engine *e, fp_error *err)
{
    if (!e) return fpi_fail(err, FP_ERR_ARG, "no engine");
    if (e->bat) return FP_OK;
    struct fpi_batcher *b = calloc(1, sizeof *b);
    if (!b) return fpi_fail(err, FP_ERR_NOMEM, "out of memory");
    b->merged = llama_batch_init(e->n_batch, 0, 1);
    if (!b->merged.token) { free(b); return fpi_fail(err, FP_ERR_NOMEM, "out of memory"); }
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    e->bat = b;
    return FP_OK;
}

void fpi_batcher_free(fp_engine *e)
{
    struct fpi_batcher *b = e->bat;
    if (!b) return;
    llama_batch_free(b->merged);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
    free(b);
    e->bat = NULL;
}

bool fpi_batcher_abortable(const fp_engine *e) { return e->bat->abortable; }

void fpi_batcher_wake(fp_engine *e)
{
    struct fpi_batcher *b = e ? e->bat : NULL;
    if (!b) return;
    pthread_mutex_lock(&b->mu);
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

uint64_t fp_engine_decode_rounds(const fp_engine *e, uint64_t *decodes)
{
    if (decodes) *decodes = e && e->bat ? atomic_load(&e->bat->n_requests) : 0;
    return e && e->bat ? atomic_load(&e->bat->n_rounds) : 0;
}

void fp_engine_lock(fp_engine *e)
{
    struct fpi_batcher *b = e ? e->bat : NULL;
    if (!b) return;
    pthread_mutex_lock(&b->mu);
    b->active++;
    while (b->held) pthread_cond_wait(&b->cv, &b->mu);
    b->held = true;
    check(b);
    pthread_mutex_unlock(&b->mu);
}

void fp_engine_unlock(fp_engine *e)
{
    struct fpi_batcher *b = e ? e->bat : NULL;
    if (!b) return;
    /* the thread's logits live until its work ends (threads come and go) */
    free(tl.rows);
    free(tl.row_of);
    memset(&tl, 0, sizeof tl);
    pthread_mutex_lock(&b->mu);
    b->active--;
    b->unlocks++;
    b->held = false;
    check(b);
    pthread_cond_broadcast(&b->cv);   /* a locker, or the parked ones (they may now be all) */
    pthread_mutex_unlock(&b->mu);
}

/* Copies r's output rows out of the context after it was decoded, the
 * batch holding it from token `at`. */
static void take_rows(fp_engine *e, fpi_breq *r, int32_t at)
{
    const size_t nv = (size_t)e->model->n_vocab;
    size_t need = (size_t)r->n_out * nv;
    if (need > r->rows_cap) {
        float *nr = realloc(r->rows, sizeof(float) * need);
        if (!nr) { r->st = FP_ERR_NOMEM; return; }
        r->rows = nr;
        r->rows_cap = need;
    }
    int32_t k = 0;
    for (int32_t i = 0; i < r->n; i++) {
        if (!r->want[i]) continue;
        const float *row = e->be->logits(e, at + i);
        if (!row) { r->st = FP_ERR_DECODE; return; }
        memcpy(r->rows + (size_t)k * nv, row, sizeof(float) * nv);
        k++;
    }
    r->st = FP_OK;
}

static void put(struct llama_batch *m, const fpi_breq *r)
{
    for (int32_t i = 0; i < r->n; i++) {
        int32_t j = m->n_tokens++;
        m->token[j] = r->tok[i];
        m->pos[j] = r->pos[i];
        m->n_seq_id[j] = 1;
        m->seq_id[j][0] = r->seq[i];
        m->logits[j] = r->want[i];
    }
}

static fp_status status_of(int rc)
{
    return rc == 0 ? FP_OK : rc == 2 ? FP_ERR_ABORTED : rc == 1 ? FP_ERR_CONTEXT : rc == FPI_REMOTE_FAILED ? FP_ERR_REMOTE : FP_ERR_DECODE;
}

#define SPEC_MIN_TOKENS 16
#define SPEC_MAX_SKIPS 4

/* Takes r out of the queue (pp points at the link to it). */
static void unlink_req(struct fpi_batcher *b, fpi_breq **pp, fpi_breq *r)
{
    *pp = r->next;
    if (b->tail == r) {
        b->tail = NULL;
        for (fpi_breq *q = b->head; q; q = q->next) b->tail = q;
    }
    r->next = NULL;
}

/* Picks a round: first the interactive requests, oldest first, as many as
 * fit in n_batch tokens (the first one always); then speculative ones, up
 * to as many tokens as the interactive ones (at least SPEC_MIN_TOKENS, all
 * when there are none) or when passed over too often. O(parked). */
static int select_round(fp_engine *e, struct fpi_batcher *b, fpi_breq **sel, int max)
{
    int nsel = 0, total = 0, inter = 0, spec = 0;
    for (int pass = 0; pass < 2; pass++) {
        int budget = inter > 0 ? (inter > SPEC_MIN_TOKENS ? inter : SPEC_MIN_TOKENS) : e->n_batch;
        for (fpi_breq **pp = &b->head; *pp && nsel < max;) {
            fpi_breq *r = *pp;
            bool want = pass == 0 ? !r->prefetch : r->prefetch;
            bool fits = nsel == 0 || total + r->n <= e->n_batch;
            bool room = pass == 0 || spec + r->n <= budget || r->skipped >= SPEC_MAX_SKIPS;
            if (!want || !fits || !room) {
                if (pass == 1 && want) r->skipped++;
                pp = &r->next;
                continue;
            }
            unlink_req(b, pp, r);
            r->taken = true;
            sel[nsel++] = r;
            total += r->n;
            if (pass == 0) inter += r->n; else spec += r->n;
        }
    }
    return nsel;
}

/* One round (select_round) in one llama_decode. Called with b->mu held and
 * b->held set; the mutex is released while llama.cpp runs (new lockers
 * may queue meanwhile). Every request is in a round soon: interactive ones
 * in order, speculative ones within SPEC_MAX_SKIPS rounds. */
static void run_round(fp_engine *e, struct fpi_batcher *b)
{
    fpi_breq *sel[256];
    int nsel = select_round(e, b, sel, 256);
    bool abortable = true;
    for (int i = 0; i < nsel; i++) abortable = abortable && sel[i]->prefetch;
    pthread_mutex_unlock(&b->mu);

    b->abortable = abortable;
    b->merged.n_tokens = 0;
    for (int i = 0; i < nsel; i++) put(&b->merged, sel[i]);
    b->n_rounds++;
    b->n_requests += (uint64_t)nsel;
    int rc = e->be->decode(e, &b->merged);
    if (rc == 1 && nsel > 1) {
        /* the cache is full for all of them at once: each alone, so a
         * request fails only when it would have failed on its own */
        for (int i = 0; i < nsel; i++) {
            b->merged.n_tokens = 0;
            put(&b->merged, sel[i]);
            b->abortable = sel[i]->prefetch;
            b->n_rounds++;
            int r1 = e->be->decode(e, &b->merged);
            sel[i]->rc = r1;
            if (r1 == 0) take_rows(e, sel[i], 0);
            else sel[i]->st = status_of(r1);
        }
    } else {
        int32_t at = 0;
        for (int i = 0; i < nsel; i++) {
            sel[i]->rc = rc;
            if (rc == 0) take_rows(e, sel[i], at);
            else sel[i]->st = status_of(rc);
            at += sel[i]->n;
        }
    }
    b->abortable = false;

    pthread_mutex_lock(&b->mu);
    for (int i = 0; i < nsel; i++) sel[i]->done = true;
    b->parked -= nsel;
    check(b);
    pthread_cond_broadcast(&b->cv);
}

/* Adopts r's rows as this thread's current logits. */
static fp_status adopt(fp_engine *e, fpi_breq *r)
{
    if (r->n > tl.cap_tok) {
        int32_t *nm = realloc(tl.row_of, sizeof(int32_t) * (size_t)r->n);
        if (!nm) return FP_ERR_NOMEM;
        tl.row_of = nm;
        tl.cap_tok = r->n;
    }
    int32_t k = 0;
    tl.last = -1;
    for (int32_t i = 0; i < r->n; i++) {
        tl.row_of[i] = r->want[i] ? k++ : -1;
        if (r->want[i]) tl.last = i;
    }
    /* swap buffers: the request's rows become current, the old ones are
     * reused by the next request */
    float *old = tl.rows;
    size_t old_cap = tl.rows_cap;
    tl.rows = r->rows;
    tl.rows_cap = r->rows_cap;
    r->rows = old;
    r->rows_cap = old_cap;
    tl.n_tok = r->n;
    tl.e = e;
    return FP_OK;
}

fp_status fpi_batcher_decode(fp_engine *e, fp_error *err)
{
    struct fpi_batcher *b = e->bat;
    const struct llama_batch *in = &e->batch;
    if (fpi_spec_cancelled(e))
        return fpi_fail(err, FP_ERR_ABORTED, "speculative work was cancelled");
    fpi_breq r = {0};
    r.n = in->n_tokens;
    /* the copy in one block: tokens, positions, sequences (4-byte types), then the flags */
    r.tok = malloc((sizeof *r.tok + sizeof *r.pos + sizeof *r.seq + 1) * (size_t)r.n);
    if (!r.tok) return fpi_fail(err, FP_ERR_NOMEM, "out of memory");
    r.pos = (llama_pos *)(r.tok + r.n);
    r.seq = (llama_seq_id *)(r.pos + r.n);
    r.want = (int8_t *)(r.seq + r.n);
    for (int32_t i = 0; i < r.n; i++) {
        r.tok[i] = in->token[i];
        r.pos[i] = in->pos[i];
        r.seq[i] = in->seq_id[i][0];
        r.want[i] = in->logits[i] ? 1 : 0;
        r.n_out += r.want[i];
    }
    r.prefetch = e->in_prefetch != NULL;
    r.spec = e->in_prefetch;
    /* the thread's old row buffer is reused for this request's rows */
    r.rows = tl.e == e ? tl.rows : NULL;
    r.rows_cap = tl.e == e ? tl.rows_cap : 0;
    if (tl.e == e) { tl.rows = NULL; tl.rows_cap = 0; tl.n_tok = 0; }
    /* pin the owners of its sequences (few: usually one session) */
    fpi_seq_user *pins[8];
    int n_pins = 0;
    for (int32_t i = 0; i < r.n && n_pins < 8; i++) {
        int32_t q = r.seq[i];
        fpi_seq_user *u = q >= 0 && (uint32_t)q < e->n_seq_max ? e->seq_owner[q] : NULL;
        bool seen = !u;
        for (int k = 0; k < n_pins && !seen; k++) seen = pins[k] == u;
        if (!seen) { pins[n_pins++] = u; u->pinned++; }
    }
    fp_session *was_prefetch = e->in_prefetch;
    e->in_prefetch = NULL;   /* engine state another thread may see while this one waits */

    pthread_mutex_lock(&b->mu);
    if (b->tail) b->tail->next = &r;
    else b->head = &r;
    b->tail = &r;
    b->parked++;
    b->held = false;
    pthread_cond_broadcast(&b->cv);
    for (;;) {
        if (!r.done && !r.taken && r.spec && (atomic_load(&e->cancel) || atomic_load(&r.spec->pf_cancel))) {
            /* cancelled while it waits for a round: out of the queue */
            for (fpi_breq **pp = &b->head; *pp; pp = &(*pp)->next)
                if (*pp == &r) { unlink_req(b, pp, &r); break; }
            b->parked--;
            r.st = FP_ERR_ABORTED;
            r.done = true;
        }
        if (r.done && !b->held) { b->held = true; break; }   /* take the lock back */
        if (!r.done && !b->held && b->parked + b->seq_waiting == b->active) {
            b->held = true;          /* everyone with work waits: decode for all */
            run_round(e, b);
            if (r.done) break;       /* in it: go on holding the lock */
            b->held = false;         /* not in it (too many tokens): the others first */
            pthread_cond_broadcast(&b->cv);
            continue;
        }
        pthread_cond_wait(&b->cv, &b->mu);
    }
    check(b);
    pthread_mutex_unlock(&b->mu);

    e->in_prefetch = was_prefetch;
    for (int k = 0; k < n_pins; k++) pins[k]->pinned--;
    fp_status st = r.st;
    if (st == FP_OK && adopt(e, &r) != FP_OK) st = FP_ERR_NOMEM;
    free(r.tok);    /* the whole copy */
    free(r.rows);   /* the previous current rows (or the unused new ones on failure) */
    switch (st) {
    case FP_OK: return FP_OK;
    case FP_ERR_ABORTED: return fpi_fail(err, st, "speculative work was cancelled");
    case FP_ERR_CONTEXT: return fpi_fail(err, st, "the KV cache is full (%u cells): shorten the text or raise n_ctx", e->n_ctx);
    case FP_ERR_NOMEM: return fpi_fail(err, st, "out of memory");
    default: return fpi_decode_status(e, r.rc == 0 ? -1 : r.rc, err);
    }
}

bool fpi_batcher_wait_seqs(fp_engine *e, fpi_seq_user *self)
{
    struct fpi_batcher *b = e->bat;
    self->pinned++;   /* what it allocated so far stays its own meanwhile */
    pthread_mutex_lock(&b->mu);
    uint64_t gen = b->unlocks;
    b->seq_waiting++;
    b->held = false;
    pthread_cond_broadcast(&b->cv);
    bool ok = true;
    for (;;) {
        if (b->unlocks != gen) break;   /* someone's work ended: its branches can be had */
        if (!b->held && b->parked + b->seq_waiting == b->active) {
            if (!b->parked) { ok = false; break; }  /* all wait for sequences: none will come */
            b->held = true;             /* the others wait in decodes: run them */
            run_round(e, b);
            b->held = false;
            pthread_cond_broadcast(&b->cv);
            continue;
        }
        pthread_cond_wait(&b->cv, &b->mu);
    }
    b->seq_waiting--;
    while (b->held) pthread_cond_wait(&b->cv, &b->mu);
    b->held = true;
    check(b);
    pthread_mutex_unlock(&b->mu);
    self->pinned--;
    return ok;
}

const float *fpi_engine_logits(fp_engine *e, int32_t i)
{
    if (!e->bat) return e->be->logits(e, i);
    if (tl.e != e || !tl.rows) return NULL;
    if (i < 0) i = tl.last;
    if (i < 0 || i >= tl.n_tok || tl.row_of[i] < 0) return NULL;
    return tl.rows + (size_t)tl.row_of[i] * (size_t)e->model->n_vocab;
}
