/*
 * remote.c — the remote back end: the engine's calls answered by an HTTP
 * server (llama-server's /completion, or an OpenAI-compatible
 * /v1/completions such as vLLM's), so the fork engine, the cloud, previews,
 * prefetch, undo and the tree run unchanged over a model on another machine.
 *
 * Memory: each sequence's tokens are mirrored here (tok[pos]); seq_cp, seq_rm
 * and seq_add edit the mirrors, which cost nothing. The server keeps no
 * state of ours: a logits row is one request with the sequence's whole
 * prefix, and the server's prompt cache (llama-server's cache_prompt, vLLM's
 * prefix caching) is what shares the work between branches of a fork.
 *
 * Rows: the server lists its top K log-probabilities (K = remote_top, 20 by
 * default: vLLM's --max-logprobs cap and OpenAI chat's maximum); every
 * other token gets an even share of the rest (remote_parse.c: fpi_remote_row),
 * so "other" is 1 minus their sum and the core's fork test still sees the
 * unlisted mass. What is lost past K: the order and the individual
 * probabilities of the unlisted tokens, so no candidate is grown from them
 * (cloud.c skips them: fpi_row_floor), a typed prefix matching no listed
 * token finds nothing, and samplers that cut the tail (top-p, min-p) see
 * the flat share instead of the real tail.
 *
 * Look-ahead: every request also asks for `ahead` greedy tokens; the
 * distribution after each is cached under the hash of its prefix, so a
 * preview, the continuation or a branch that follows the greedy path is
 * served from the cache with no round trip. Requests of one decode run in
 * parallel (libcurl multi).
 *
 * Logit bias: a sequence owner's bias (fpi_seq_user.bias: a session's
 * learned one, a completion's logit_bias) is sent with its rows' requests
 * and is part of the cache key; probe_bias finds at open whether the
 * server's numbers are after it (then the row has it taken out, and the
 * core's chain adding it back ends at the server's numbers) or before it
 * (then the chain's adding it is the only time it counts).
 *
 * Failures: connection errors, timeouts, a dropped connection, HTTP 429 and
 * 5xx are retried (every request only reads: always safe) with backoff,
 * 250 ms doubling, a Retry-After up to 5 s honoured; after the last try, or
 * at once on another 4xx or a malformed reply, the decode fails with
 * FP_ERR_IO and one line saying what happened, and the mirrors are as they
 * were (the core keeps the fork open: no decision is lost).
 */
#include "core/internal.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define CACHE_SLOTS 4096          /* cached positions (about 2 MiB at K = 20) */
#define MAX_TRIES 4
#define MAX_PARALLEL 32

typedef struct rseq { int32_t *tok; int32_t n, cap; } rseq;

typedef struct centry {
    uint64_t key;                 /* prefix hash; 0 = empty */
    uint64_t stamp;
    int32_t  n_tok;
    fpi_remote_pos pos;
} centry;

typedef struct vocab_ent { uint64_t h; int32_t id; bool dup; } vocab_ent;

struct fpi_remote {
    fpi_remote_kind kind;
    char *endpoint, *model_name;
    struct curl_slist *headers;
    int32_t n_top, ahead, timeout_ms;
    bool ids;                     /* openai: the server spells tokens "token_id:N" (vLLM, Forkpoint) */
    rseq *seq;                    /* [n_seq_max] */
    float *rows; size_t rows_cap; /* [n_out][n_vocab] of the last decode */
    int32_t *row_of; int32_t row_cap, n_btok, last_row;
    centry *cache; uint64_t clock;
    vocab_ent *vmap; int32_t vmap_n;   /* openai: token text -> id */
    fpi_remote_pos *parsed;       /* [ahead + 1] */
    fp_remote_stats stats;
    /* logit_bias (a sequence owner's bias, fpi_seq_user.bias): sent unless
     * the server refused it; server_bias: its log-probabilities are taken
     * after the bias (found at open by one biased request), so the row has
     * the sent bias taken out again and the core's chain, which adds the
     * whole bias, ends at the server's numbers */
    bool send_bias, server_bias;
};

/* ------------------------------------------------------------ hashing */

static uint64_t h_step(uint64_t h, int32_t t) {
    h ^= (uint64_t)(uint32_t)t + 0x9e3779b97f4a7c15ull;
    h *= 0x100000001b3ull;
    h ^= h >> 29;
    return h;
}
static uint64_t h_bytes(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) { h ^= (unsigned char)*s; h *= 1099511628211ull; }
    return h ? h : 1;
}

/* The hash a prefix starts from: the plain seed without a bias, else one
 * that also covers the bias sent with it (rows under different biases are
 * different rows). O(n_vocab), once per distinct bias of a decode. */
#define H_SEED 0xcbf29ce484222325ull
static uint64_t bias_seed(const float *bias, int32_t n_vocab) {
    uint64_t h = H_SEED;
    if (!bias) return h;
    for (int32_t t = 0; t < n_vocab; t++) {
        if (bias[t] == 0.0f) continue;
        uint32_t bits;
        memcpy(&bits, &bias[t], sizeof bits);
        h = h_step(h_step(h, t), (int32_t)bits);
    }
    return h;
}

static centry *cache_find(struct fpi_remote *r, uint64_t key, int32_t n_tok) {
    for (int i = 0; i < 4; i++) {
        centry *c = &r->cache[(key + (uint64_t)i) & (CACHE_SLOTS - 1)];
        if (c->key == key && c->n_tok == n_tok) { c->stamp = ++r->clock; return c; }
    }
    return NULL;
}
static void cache_put(struct fpi_remote *r, uint64_t key, int32_t n_tok, const fpi_remote_pos *p) {
    centry *victim = NULL;
    for (int i = 0; i < 4; i++) {
        centry *c = &r->cache[(key + (uint64_t)i) & (CACHE_SLOTS - 1)];
        if (c->key == key && c->n_tok == n_tok) { victim = c; break; }
        if (!victim || c->stamp < victim->stamp) victim = c;
    }
    victim->key = key;
    victim->n_tok = n_tok;
    victim->stamp = ++r->clock;
    victim->pos = *p;
}

/* ------------------------------------------------ openai: text -> id */

/* The text an OpenAI-style server gives token t: its bytes when they are
 * UTF-8, else "bytes:\xNN..." (OpenAI's and Forkpoint's own spelling). */
static void token_spelling(const fp_model *m, int32_t t, char *out, size_t cap) {
    int32_t n;
    const char *pc = fpi_piece(m, t, &n);
    if (fp_utf8_valid(pc, (size_t)n) && (size_t)n < cap) { memcpy(out, pc, (size_t)n); out[n] = 0; return; }
    size_t at = (size_t)snprintf(out, cap, "bytes:");
    for (int32_t i = 0; i < n && at + 5 < cap; i++) at += (size_t)snprintf(out + at, cap - at, "\\x%02x", (unsigned char)pc[i]);
}

static int32_t vmap_lookup(void *ud, const char *text) {
    struct fpi_remote *r = ud;
    uint64_t h = h_bytes(text);
    for (int32_t i = 0; i < r->vmap_n; i++) {
        vocab_ent *v = &r->vmap[(h + (uint64_t)i) % (uint64_t)r->vmap_n];
        if (v->h == 0) return -1;
        if (v->h == h) return v->id | (v->dup ? FPI_REMOTE_AMBIGUOUS : 0);
    }
    return -1;
}

static fp_status vmap_build(struct fpi_remote *r, const fp_model *m, fp_error *err) {
    r->vmap_n = 2 * m->n_vocab + 1;
    r->vmap = calloc((size_t)r->vmap_n, sizeof *r->vmap);
    if (!r->vmap) return fpi_fail(err, FP_ERR_NOMEM, "out of memory");
    char buf[1200];
    for (int32_t t = 0; t < m->n_vocab; t++) {
        if (m->tok_flags[t] & FP_TOK_CONTROL && !(m->tok_flags[t] & FP_TOK_EOG)) continue;
        token_spelling(m, t, buf, sizeof buf);
        if (!buf[0]) continue;
        uint64_t h = h_bytes(buf);
        for (int32_t i = 0; i < r->vmap_n; i++) {
            vocab_ent *v = &r->vmap[(h + (uint64_t)i) % (uint64_t)r->vmap_n];
            if (v->h == h) { v->dup = true; break; }   /* two tokens, one text: the first wins */
            if (v->h == 0) { v->h = h; v->id = t; break; }
        }
    }
    return FP_OK;
}

/* ----------------------------------------------------------- mirrors */

static bool seq_grow(rseq *q, int32_t n) {
    if (n <= q->cap) return true;
    int32_t nc = q->cap ? q->cap : 64;
    while (nc < n) nc *= 2;
    int32_t *nt = realloc(q->tok, sizeof *nt * (size_t)nc);
    if (!nt) return false;
    q->tok = nt;
    q->cap = nc;
    return true;
}

static void trim(rseq *q) { while (q->n > 0 && q->tok[q->n - 1] < 0) q->n--; }

static bool r_seq_rm(fp_engine *e, int32_t s, int32_t p0, int32_t p1) {
    rseq *q = &e->remote->seq[s];
    if (p0 < 0) p0 = 0;
    if (p1 < 0 || p1 > q->n) p1 = q->n;
    for (int32_t p = p0; p < p1; p++) q->tok[p] = -1;
    trim(q);
    return true;
}

static void r_seq_cp(fp_engine *e, int32_t a, int32_t b, int32_t p0, int32_t p1) {
    if (a == b) return;
    rseq *src = &e->remote->seq[a], *dst = &e->remote->seq[b];
    if (p0 < 0) p0 = 0;
    if (p1 < 0 || p1 > src->n) p1 = src->n;
    if (p1 <= p0) return;
    if (!seq_grow(dst, p1)) return;   /* no memory: the copy is missing, the next decode of it fails cleanly */
    for (int32_t p = dst->n; p < p1; p++) dst->tok[p] = -1;
    if (dst->n < p1) dst->n = p1;
    for (int32_t p = p0; p < p1; p++) if (src->tok[p] >= 0) dst->tok[p] = src->tok[p];
}

static void r_seq_add(fp_engine *e, int32_t s, int32_t p0, int32_t p1, int32_t d) {
    rseq *q = &e->remote->seq[s];
    if (p0 < 0) p0 = 0;
    if (p1 < 0 || p1 > q->n) p1 = q->n;
    if (d == 0 || p1 <= p0) return;
    if (d < 0) {
        for (int32_t p = p0; p < p1; p++) {
            int32_t to = p + d;
            if (to >= 0) q->tok[to] = q->tok[p];
            q->tok[p] = -1;
        }
    } else {
        if (!seq_grow(q, p1 + d)) return;
        for (int32_t p = q->n; p < p1 + d; p++) q->tok[p] = -1;
        if (q->n < p1 + d) q->n = p1 + d;
        for (int32_t p = p1 - 1; p >= p0; p--) { q->tok[p + d] = q->tok[p]; q->tok[p] = -1; }
    }
    trim(q);
}

static int32_t r_pos_min(fp_engine *e, int32_t s) {
    rseq *q = &e->remote->seq[s];
    for (int32_t p = 0; p < q->n; p++) if (q->tok[p] >= 0) return p;
    return -1;
}
static int32_t r_pos_max(fp_engine *e, int32_t s) { trim(&e->remote->seq[s]); return e->remote->seq[s].n - 1; }

/* ---------------------------------------------------------- requests */

typedef struct req {
    uint64_t key;                 /* hash of the prompt */
    int32_t  n_tok, *tok;         /* the prompt (borrowed from a scratch copy) */
    char    *body;
    char    *resp; size_t resp_n, resp_cap;
    CURL    *h;
    long     status;
    int      tries;
    double   retry_after_ms;
    bool     done, failed;
    char     why[160];
} req;

static size_t on_data(char *p, size_t sz, size_t n, void *ud) {
    req *q = ud;
    size_t k = sz * n;
    if (q->resp_n + k + 1 > q->resp_cap) {
        size_t nc = q->resp_cap ? q->resp_cap * 2 : 8192;
        while (nc < q->resp_n + k + 1) nc *= 2;
        if (nc > (64u << 20)) return 0;   /* a reply this big is not ours */
        char *nb = realloc(q->resp, nc);
        if (!nb) return 0;
        q->resp = nb;
        q->resp_cap = nc;
    }
    memcpy(q->resp + q->resp_n, p, k);
    q->resp_n += k;
    q->resp[q->resp_n] = 0;
    return k;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud) {
    req *q = ud;
    size_t k = sz * n;
    if (k > 12 && !strncasecmp(p, "Retry-After:", 12)) {
        double v = atof(p + 12);
        q->retry_after_ms = v > 0 ? (v > 5 ? 5000 : v * 1000) : 0;
    }
    return k;
}

static CURL *easy_for(struct fpi_remote *r, req *q) {
    CURL *h = curl_easy_init();
    if (!h) return NULL;
    q->resp_n = 0;
    q->status = 0;
    q->retry_after_ms = 0;
    curl_easy_setopt(h, CURLOPT_URL, r->endpoint);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, q->body);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, q);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, q);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)r->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)(r->timeout_ms < 10000 ? r->timeout_ms : 10000));
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PRIVATE, q);
    return h;
}

static void sleep_ms(double ms) {
    struct timespec ts = { (time_t)(ms / 1000), (long)(fmod(ms, 1000.0) * 1e6) };
    nanosleep(&ts, NULL);
}

/* Sends reqs[0..n) in parallel until each has a usable reply or has failed
 * for good. Returns 0, 2 (cancelled speculative work) or FPI_REMOTE_FAILED
 * with e->be_msg set from the first failure. */
static int run_requests(fp_engine *e, req *reqs, int32_t n) {
    struct fpi_remote *r = e->remote;
    CURLM *m = curl_multi_init();
    if (!m) { snprintf(e->be_msg, sizeof e->be_msg, "remote engine: libcurl could not start"); return FPI_REMOTE_FAILED; }
    curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)MAX_PARALLEL);
    int rc = 0;
    double backoff = 250;
    for (;;) {
        int32_t pending = 0;
        for (int32_t i = 0; i < n; i++) {
            req *q = &reqs[i];
            if (q->done || q->failed) continue;
            q->h = easy_for(r, q);
            if (!q->h) { q->failed = true; snprintf(q->why, sizeof q->why, "out of memory"); continue; }
            q->tries++;
            r->stats.requests++;
            curl_multi_add_handle(m, q->h);
            pending++;
        }
        if (pending == 0) break;
        int running = 1;
        while (running) {
            curl_multi_perform(m, &running);
            if (running) curl_multi_poll(m, NULL, 0, 50, NULL);
            if (fpi_engine_should_abort(e)) { rc = 2; running = 0; }
        }
        CURLMsg *msg;
        int left;
        double wait = 0;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE) continue;
            req *q;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&q);
            CURLcode cc = msg->data.result;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &q->status);
            bool retry = false;
            if (cc != CURLE_OK) {
                snprintf(q->why, sizeof q->why, "%s", cc == CURLE_OPERATION_TIMEDOUT ? "no answer within the timeout" : curl_easy_strerror(cc));
                retry = true;
            } else if (q->status == 429 || q->status >= 500) {
                snprintf(q->why, sizeof q->why, "HTTP %ld%s", q->status, q->status == 429 ? " (too many requests)" : "");
                retry = true;
            } else if (q->status != 200) {
                char inner[200] = "";
                fpi_remote_pos dummy;
                int32_t nd;
                fpi_remote_parse(r->kind, q->resp ? q->resp : "", q->resp_n, 1, NULL, NULL, &dummy, 1, &nd, inner, sizeof inner);
                snprintf(q->why, sizeof q->why, "HTTP %ld: %.140s", q->status, inner);
                q->failed = true;
            } else {
                q->done = true;
            }
            if (retry) {
                if (q->tries >= MAX_TRIES) q->failed = true;
                else { r->stats.retries++; if (q->retry_after_ms > wait) wait = q->retry_after_ms; }
            }
        }
        for (int32_t i = 0; i < n; i++) {
            if (reqs[i].h) { curl_multi_remove_handle(m, reqs[i].h); curl_easy_cleanup(reqs[i].h); reqs[i].h = NULL; }
            if (rc == 2 && !reqs[i].done) reqs[i].failed = true;
        }
        if (rc == 2) break;
        bool again = false;
        for (int32_t i = 0; i < n; i++) again |= !reqs[i].done && !reqs[i].failed;
        if (!again) break;
        sleep_ms(wait > backoff ? wait : backoff);
        backoff *= 2;
    }
    curl_multi_cleanup(m);
    if (rc == 2) return 2;
    for (int32_t i = 0; i < n; i++) {
        if (!reqs[i].failed) continue;
        snprintf(e->be_msg, sizeof e->be_msg, "remote engine %.100s: %.160s%s", r->endpoint, reqs[i].why,
                 reqs[i].tries >= MAX_TRIES ? " (after 4 tries)" : "");
        return FPI_REMOTE_FAILED;
    }
    return 0;
}

/* Puts a reply's positions into the cache: entry 0 under the prompt's key,
 * entry j under the prompt and the first j generated tokens. */
static int parse_reply(fp_engine *e, req *q) {
    struct fpi_remote *r = e->remote;
    int32_t np;
    char msg[200];
    if (fpi_remote_parse(r->kind, q->resp ? q->resp : "", q->resp_n, e->model->n_vocab, vmap_lookup, r,
                         r->parsed, r->ahead + 1, &np, msg, sizeof msg) != FP_OK) {
        snprintf(e->be_msg, sizeof e->be_msg, "remote engine %.100s: %.180s", r->endpoint, msg);
        return FPI_REMOTE_FAILED;
    }
    int32_t want = r->n_top < e->model->n_vocab ? r->n_top : e->model->n_vocab;
    double mass = 0;
    for (int32_t j = 0; j < r->parsed[0].n_top; j++) mass += exp((double)r->parsed[0].top[j].logprob);
    if (r->parsed[0].n_top < want && mass < 0.999) r->stats.short_replies++;
    uint64_t key = q->key;
    int32_t n_tok = q->n_tok;
    for (int32_t j = 0; j < np; j++) {
        cache_put(r, key, n_tok, &r->parsed[j]);
        if (r->parsed[j].ambiguous) break;   /* which token came is not known: what follows is keyed by nothing */
        key = h_step(key, r->parsed[j].token);
        n_tok++;
    }
    return 0;
}

/* ------------------------------------------------------------ decode */

static int r_decode(fp_engine *e, const struct llama_batch *b) {
    struct fpi_remote *r = e->remote;
    int32_t V = e->model->n_vocab, n = b->n_tokens;
    e->be_msg[0] = 0;
    /* the undo record: each written slot's old token and its sequence's old length */
    int32_t *undo = malloc(sizeof(int32_t) * 2 * (size_t)(n > 0 ? n : 1));
    int32_t n_out = 0;
    for (int32_t i = 0; i < n; i++) n_out += b->logits[i] ? 1 : 0;
    if (!undo) goto nomem;
    if ((size_t)n_out * (size_t)V > r->rows_cap) {
        float *nr = realloc(r->rows, sizeof(float) * (size_t)n_out * (size_t)V);
        if (!nr) goto nomem;
        r->rows = nr;
        r->rows_cap = (size_t)n_out * (size_t)V;
    }
    if (n > r->row_cap) {
        int32_t *no = realloc(r->row_of, sizeof(int32_t) * (size_t)n);
        if (!no) goto nomem;
        r->row_of = no;
        r->row_cap = n;
    }
    int32_t applied = 0;   /* batch tokens written to the mirrors so far */
    for (int32_t i = 0; i < n; i++) {
        rseq *q = &r->seq[b->seq_id[i][0]];
        int32_t p = b->pos[i];
        if (p < 0 || p >= e->n_pos_max) goto no_room;
        if (!seq_grow(q, p + 1)) goto undo_nomem;
        undo[2 * i] = p < q->n ? q->tok[p] : -1;
        undo[2 * i + 1] = q->n;
        for (int32_t x = q->n; x <= p; x++) q->tok[x] = -1;
        if (q->n <= p) q->n = p + 1;
        q->tok[p] = b->token[i];
        applied = i + 1;
    }
    /* which rows the cache has, and one request per other distinct prefix */
    req *reqs = calloc((size_t)(n_out > 0 ? n_out : 1), sizeof *reqs);
    uint64_t *keys = malloc(sizeof(uint64_t) * (size_t)(n_out > 0 ? n_out : 1));
    int32_t *ntoks = malloc(sizeof(int32_t) * (size_t)(n_out > 0 ? n_out : 1));
    const float **biases = malloc(sizeof(float *) * (size_t)(n_out > 0 ? n_out : 1));
    int32_t *prompt = NULL;
    int32_t n_req = 0, k = 0;
    int rc = 0;
    const float *seed_of = NULL;   /* the bias last hashed, and its seed */
    uint64_t seed = H_SEED;
    if (!reqs || !keys || !ntoks || !biases) { free(reqs); free(keys); free(ntoks); free(biases); goto undo_nomem; }
    for (int32_t i = 0; i < n; i++) {
        r->row_of[i] = -1;
        if (!b->logits[i]) continue;
        rseq *q = &r->seq[b->seq_id[i][0]];
        const fpi_seq_user *owner = e->seq_owner[b->seq_id[i][0]];
        const float *bias = r->send_bias && owner ? owner->bias : NULL;
        if (bias != seed_of || k == 0) { seed = bias_seed(bias, V); seed_of = bias; }
        if (seed == H_SEED) bias = NULL;   /* all zero */
        biases[k] = bias;
        uint64_t h = seed;
        int32_t nt = 0;
        for (int32_t p = 0; p <= b->pos[i]; p++) if (q->tok[p] >= 0) { h = h_step(h, q->tok[p]); nt++; }
        keys[k] = h;
        ntoks[k] = nt;
        r->row_of[i] = k++;
        if (cache_find(r, h, nt)) { r->stats.cached++; continue; }
        bool dup = false;
        for (int32_t j = 0; j < n_req && !dup; j++) dup = reqs[j].key == h && reqs[j].n_tok == nt;
        if (dup) continue;
        int32_t *pt = realloc(prompt, sizeof(int32_t) * (size_t)(nt > 0 ? nt : 1));
        if (!pt) { rc = -1; break; }
        prompt = pt;
        nt = 0;
        for (int32_t p = 0; p <= b->pos[i]; p++) if (q->tok[p] >= 0) prompt[nt++] = q->tok[p];
        req *rq = &reqs[n_req++];
        rq->key = h;
        rq->n_tok = nt;
        rq->body = fpi_remote_request(r->kind, r->model_name, prompt, nt, r->n_top, r->ahead, bias, V, r->ids);
        if (!rq->body) { rc = -1; break; }
    }
    free(prompt);
    if (rc == 0 && n_req > 0) rc = run_requests(e, reqs, n_req);
    for (int32_t j = 0; j < n_req && rc == 0; j++) rc = parse_reply(e, &reqs[j]);
    for (int32_t j = 0; j < n_req; j++) { free(reqs[j].body); free(reqs[j].resp); }
    free(reqs);
    r->last_row = -1;
    for (int32_t i = 0; i < n && rc == 0; i++) {
        if (r->row_of[i] < 0) continue;
        int32_t kk = r->row_of[i];
        centry *c = cache_find(r, keys[kk], ntoks[kk]);
        if (!c) {   /* evicted by a later reply of the same decode: cannot be trusted to come back */
            snprintf(e->be_msg, sizeof e->be_msg, "remote engine: a decode of more rows than the cache holds");
            rc = FPI_REMOTE_FAILED;
            break;
        }
        float *row = r->rows + (size_t)kk * (size_t)V;
        fpi_remote_row(&c->pos, V, row);
        if (biases[kk] && r->server_bias)   /* the server's numbers are after the bias: the chain adds it back */
            for (int32_t t = 0; t < V; t++) {
                float sb = fpi_remote_bias_value(biases[kk][t]);
                if (sb != 0.0f && isfinite(biases[kk][t])) row[t] -= sb;
            }
        r->last_row = i;
    }
    free(keys);
    free(ntoks);
    free(biases);
    if (rc == -1) goto undo_nomem;
    if (rc != 0) goto undo_rc;
    r->n_btok = n;
    free(undo);
    return 0;

undo_rc:
    for (int32_t i = applied - 1; i >= 0; i--) {
        rseq *q = &r->seq[b->seq_id[i][0]];
        q->tok[b->pos[i]] = undo[2 * i];
        q->n = undo[2 * i + 1];
    }
    r->n_btok = 0;
    free(undo);
    return rc;
no_room:
    rc = 1;
    goto undo_rc;
undo_nomem:
    snprintf(e->be_msg, sizeof e->be_msg, "remote engine: out of memory");
    rc = FPI_REMOTE_FAILED;
    goto undo_rc;
nomem:
    free(undo);
    snprintf(e->be_msg, sizeof e->be_msg, "remote engine: out of memory");
    return FPI_REMOTE_FAILED;
}

static const float *r_logits(fp_engine *e, int32_t i) {
    struct fpi_remote *r = e->remote;
    if (i < 0) i = r->last_row;
    if (i < 0 || i >= r->n_btok || r->row_of[i] < 0) return NULL;
    return r->rows + (size_t)r->row_of[i] * (size_t)e->model->n_vocab;
}

static void r_free(fp_engine *e) {
    struct fpi_remote *r = e->remote;
    if (!r) return;
    if (r->seq) for (uint32_t q = 0; q < e->n_seq_max; q++) free(r->seq[q].tok);
    free(r->seq);
    free(r->rows);
    free(r->row_of);
    free(r->cache);
    free(r->vmap);
    free(r->parsed);
    free(r->endpoint);
    free(r->model_name);
    curl_slist_free_all(r->headers);
    free(r);
    e->remote = NULL;
}

static const fpi_backend g_llama = {
    .name = "llama-server", .sparse = true, .decode = r_decode, .logits = r_logits,
    .seq_rm = r_seq_rm, .seq_cp = r_seq_cp, .seq_add = r_seq_add,
    .seq_pos_min = r_pos_min, .seq_pos_max = r_pos_max, .free = r_free,
};
static const fpi_backend g_openai = {
    .name = "openai", .sparse = true, .decode = r_decode, .logits = r_logits,
    .seq_rm = r_seq_rm, .seq_cp = r_seq_cp, .seq_add = r_seq_add,
    .seq_pos_min = r_pos_min, .seq_pos_max = r_pos_max, .free = r_free,
};

fp_remote_stats fp_engine_remote_stats(const fp_engine *e) {
    fp_remote_stats z = {0};
    return e && e->remote ? e->remote->stats : z;
}

/* ------------------------------------------------------------- open */

/* GET url; the body in *out (malloc'd). One try: at start a server that
 * does not answer is one line, not a wait through the retries. */
static fp_status probe(struct fpi_remote *r, const char *url, int timeout_ms, char **out, long *status, char *why,
                       size_t cap) {
    req q = {0};
    CURL *h = curl_easy_init();
    if (!h) { snprintf(why, cap, "libcurl could not start"); return FP_ERR_IO; }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &q);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    CURLcode cc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(h);
    if (cc != CURLE_OK) { snprintf(why, cap, "%s", curl_easy_strerror(cc)); free(q.resp); return FP_ERR_IO; }
    *out = q.resp;
    return FP_OK;
}

/* One request at open, outside the cache: the distribution after toks
 * under bias. 0 with *out parsed; 1 when the server refused it with a 4xx
 * (e->be_msg says why); -1 when it failed otherwise. */
static int ask_once(fp_engine *e, const int32_t *toks, int32_t n, const float *bias, fpi_remote_pos *out) {
    struct fpi_remote *r = e->remote;
    char *b = fpi_remote_request(r->kind, r->model_name, toks, n, 5, 1, bias, e->model->n_vocab, r->ids);
    req q = { .body = b };
    int rc = b ? run_requests(e, &q, 1) : FPI_REMOTE_FAILED;
    int32_t np = 0;
    char msg[200];
    if (rc == 0 && fpi_remote_parse(r->kind, q.resp ? q.resp : "", q.resp_n, e->model->n_vocab, vmap_lookup, r, out, 1, &np,
                                    msg, sizeof msg) != FP_OK) {
        snprintf(e->be_msg, sizeof e->be_msg, "remote engine %.100s: %.180s", r->endpoint, msg);
        rc = FPI_REMOTE_FAILED;
    }
    int res = rc == 0 ? 0 : q.status >= 400 && q.status < 500 && q.status != 429 ? 1 : -1;
    free(b);
    free(q.resp);
    return res;
}

/* Whether the server's log-probabilities are before or after the logit
 * bias it is sent (the published APIs differ: llama-server's n_probs and
 * vLLM's default raw_logprobs are before it, vLLM's processed_logprobs and
 * Forkpoint's own after): the same position asked twice, the second time
 * with +10 on its second most probable token. After the bias, that token's
 * log-probability rises by at least 0.69 (it had p <= 0.5); before it (or
 * when the server ignores the bias), it stays. A 4xx to the biased request:
 * the server takes no logit_bias, and the bias stays local. Two requests. */
static fp_status probe_bias(fp_engine *e, fp_error *err) {
    struct fpi_remote *r = e->remote;
    int32_t V = e->model->n_vocab, t0 = 0;
    fpi_remote_pos *a = malloc(2 * sizeof *a);
    float *bias = calloc((size_t)V, sizeof *bias);
    if (!a || !bias) { free(a); free(bias); return fpi_fail(err, FP_ERR_NOMEM, "out of memory"); }
    fp_status st = FP_OK;
    int rc = ask_once(e, &t0, 1, NULL, &a[0]);
    if (rc == 0 && a[0].n_top >= 2) {
        int32_t x = a[0].top[1].token;
        bias[x] = 10.0f;
        rc = ask_once(e, &t0, 1, bias, &a[1]);
        r->send_bias = rc != 1;
        if (rc == 0)
            for (int32_t j = 0; j < a[1].n_top; j++)
                if (a[1].top[j].token == x) r->server_bias = a[1].top[j].logprob > a[0].top[1].logprob + 0.3f;
    } else if (rc == 0) {
        r->send_bias = true;   /* a one-token top: nothing to compare; sent, and applied here */
    }
    if (rc < 0) st = fpi_fail(err, FP_ERR_IO, "%s", e->be_msg);
    free(a);
    free(bias);
    return st;
}

fp_status fpi_remote_open(fp_engine *e, const fp_engine_params *p, fp_error *err) {
    const char *spec = p->backend;
    fpi_remote_kind kind;
    const char *url;
    if (!strncmp(spec, "llama-server:", 13)) { kind = FPI_REMOTE_LLAMA; url = spec + 13; }
    else if (!strncmp(spec, "openai:", 7)) { kind = FPI_REMOTE_OPENAI; url = spec + 7; }
    else return fpi_fail(err, FP_ERR_ARG, "unknown back end '%.60s': use local, llama-server:URL or openai:URL", spec);
    if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))
        return fpi_fail(err, FP_ERR_ARG, "the back end's URL must start with http:// or https:// (got '%.80s')", url);
    int32_t top = p->remote_top ? p->remote_top : 20;
    if (top < 1 || top > FPI_REMOTE_MAX_TOP) return fpi_fail(err, FP_ERR_ARG, "remote_top must be 1..%d (got %d)", FPI_REMOTE_MAX_TOP, top);
    struct fpi_remote *r = calloc(1, sizeof *r);
    if (!r) return fpi_fail(err, FP_ERR_NOMEM, "out of memory");
    e->remote = r;
    e->be = kind == FPI_REMOTE_LLAMA ? &g_llama : &g_openai;
    r->kind = kind;
    r->n_top = top;
    r->ahead = 12;
    r->timeout_ms = p->remote_timeout_ms > 0 ? p->remote_timeout_ms : 30000;
    size_t ul = strlen(url);
    while (ul > 0 && url[ul - 1] == '/') ul--;
    char base[1024];
    if (ul >= sizeof base - 32) return fpi_fail(err, FP_ERR_ARG, "the back end's URL is too long");
    memcpy(base, url, ul);
    base[ul] = 0;
    bool has_v1 = ul >= 3 && !strcmp(base + ul - 3, "/v1");
    char ep[1100];
    snprintf(ep, sizeof ep, "%s%s", base, kind == FPI_REMOTE_LLAMA ? "/completion" : has_v1 ? "/completions" : "/v1/completions");
    r->endpoint = strdup(ep);
    snprintf(e->be_label, sizeof e->be_label, "%s %.250s", e->be->name, base);
    r->seq = calloc(e->n_seq_max, sizeof *r->seq);
    r->cache = calloc(CACHE_SLOTS, sizeof *r->cache);
    r->parsed = calloc((size_t)r->ahead + 1, sizeof *r->parsed);
    if (!r->endpoint || !r->seq || !r->cache || !r->parsed) return fpi_fail(err, FP_ERR_NOMEM, "out of memory");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    r->headers = curl_slist_append(NULL, "Content-Type: application/json");
    const char *key = p->api_key ? p->api_key : getenv("FORKPOINT_API_KEY");
    if (!key) key = getenv("OPENAI_API_KEY");
    if (key && *key) {
        char h[600];
        snprintf(h, sizeof h, "Authorization: Bearer %.500s", key);
        r->headers = curl_slist_append(r->headers, h);
    }
    if (kind == FPI_REMOTE_OPENAI && vmap_build(r, e->model, err) != FP_OK) return FP_ERR_NOMEM;
    /* the server is there and speaks the protocol: one line now, not at the first fork */
    char purl[1100], why[200], *body = NULL;
    long status = 0;
    snprintf(purl, sizeof purl, "%s%s", base, kind == FPI_REMOTE_LLAMA ? "/health" : has_v1 ? "/models" : "/v1/models");
    int pt = r->timeout_ms < 10000 ? r->timeout_ms : 10000;
    if (probe(r, purl, pt, &body, &status, why, sizeof why) != FP_OK)
        return fpi_fail(err, FP_ERR_IO, "cannot reach the %s at %s: %s", e->be->name, base, why);
    if (status == 401 || status == 403) {
        free(body);
        return fpi_fail(err, FP_ERR_IO, "the %s at %s refused the API key (HTTP %ld): give --api-key or set FORKPOINT_API_KEY", e->be->name, base, status);
    }
    if (status != 200) {
        free(body);
        return fpi_fail(err, FP_ERR_IO, "the %s at %s answered %s with HTTP %ld", e->be->name, base, purl + strlen(base), status);
    }
    if (kind == FPI_REMOTE_OPENAI) {
        if (p->remote_model) r->model_name = strdup(p->remote_model);
        else {
            cJSON *j = cJSON_Parse(body ? body : "");
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "data"), 0), "id");
            if (cJSON_IsString(id)) r->model_name = strdup(id->valuestring);
            cJSON_Delete(j);
        }
        if (!r->model_name) { free(body); return fpi_fail(err, FP_ERR_IO, "the server at %s lists no model: give its name (--remote-model)", base); }
        /* exact token ids where the server can give them (vLLM's
         * return_tokens_as_token_ids): else texts, where two tokens with one
         * text are one (the first) */
        int32_t t0 = 0;
        char *b = fpi_remote_request(kind, r->model_name, &t0, 1, 1, 1, NULL, e->model->n_vocab, true);
        req q = { .body = b };
        if (b && run_requests(e, &q, 1) == 0 && q.resp && strstr(q.resp, "\"token_id:")) r->ids = true;
        e->be_msg[0] = 0;
        r->stats = (fp_remote_stats){0};
        free(b);
        free(q.resp);
    }
    free(body);
    fp_status st = probe_bias(e, err);
    e->be_msg[0] = 0;
    r->stats = (fp_remote_stats){ .logit_bias = !r->send_bias ? "local" : r->server_bias ? "sent, server" : "sent, local" };
    return st;
}
