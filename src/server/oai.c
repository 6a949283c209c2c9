/*
 * oai.c — the OpenAI-compatible and llama.cpp-server-compatible routes:
 * GET /v1/models, POST /v1/completions, POST /v1/chat/completions,
 * POST /completion, POST /tokenize, POST /detokenize, GET /health.
 *
 * Handler side (civetweb threads): Origin check, strict body (http.c's
 * srv_read_json, then oai_parse.c), one JOB_OAI queued; for a streamed
 * reply the thread drains the run's event queue and writes each event as
 * it comes, then waits for the job. Worker side (srv_oai_exec): prompts
 * tokenized, chats rendered (fp_chat_render), tokens generated with the
 * core's fp_gen (so every probability is the core's own), the reply
 * rendered in the dialect asked for.
 *
 * Streaming: the worker puts events in the run's bounded queue
 * (SRV_OAI_QUEUE); while it is nearly full the job steps aside and the
 * worker serves others; a reader that takes nothing for SRV_OAI_STALL_MS,
 * or a write that fails, marks the client gone, and the worker stops at
 * the next token. Everything is freed by its owner: events
 * by the handler that wrote them, the run after the job is done.
 *
 * Text and tokens: a token's text may be part of a multi-byte character.
 * Streamed text is only ever cut at character boundaries (a token whose
 * bytes end mid-character gets the part before it; the next token carries
 * the rest); every token still has its own log-probability record, with
 * its exact bytes in "bytes". Text that could be the start of a stop
 * string is held back until it is known not to be; a token is never fused
 * with its neighbour for that, each gets its own event.
 */
#include "server/oai.h"

#include <civetweb.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

typedef struct srv_oai_run {
    srv_oai_req req;
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    char *q[SRV_OAI_QUEUE];
    int   head, n;
    bool  done;        /* the worker will push nothing more */
    bool  gone;        /* the client went away: stop */
    bool  started;     /* the worker pushed the first event (status 200) */
    double drained_ms; /* when the handler last took an event (or the run began) */
    struct gen_state *gen;  /* the completion between slices (worker only) */
} srv_oai_run;

/* A generated (or echoed prompt) token as the replies need it. */
typedef struct tokrec {
    int32_t token;
    float   logprob;        /* NAN: none (the first prompt token) */
    size_t  start, end;     /* bytes of the choice's text it covers */
    fp_logprob top[FP_GEN_MAX_TOP];
    int32_t n_top;
    bool    has_top;
} tokrec;

/* ------------------------------------------------------------ the queue */

/* Worker: queues one event (takes ownership); false when the client is gone. */
static bool push_event(srv_oai_run *r, char *ev)
{
    pthread_mutex_lock(&r->mu);
    double t0 = srv_now_ms();
    while (r->n == SRV_OAI_QUEUE && !r->gone) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&r->cv, &r->mu, &ts);
        if (srv_now_ms() - t0 > SRV_OAI_STALL_MS) r->gone = true;   /* reads nothing: drop it */
    }
    bool ok = !r->gone && ev;
    if (ok) {
        r->q[(r->head + r->n) % SRV_OAI_QUEUE] = ev;
        r->n++;
        r->started = true;
        pthread_cond_broadcast(&r->cv);
    }
    pthread_mutex_unlock(&r->mu);
    if (!ok) free(ev);
    return ok;
}

/* Worker, before a slice: is there room for its events? Waits a moment
 * (at most 20 ms) for the writer; a reader that has taken nothing for
 * SRV_OAI_STALL_MS counts as gone. Why not block: while a slow client's
 * queue is full the job steps aside (job->requeue) and the worker serves
 * the other lanes, instead of the whole engine waiting for one reader. */
static bool stream_full(srv_oai_run *r)
{
    pthread_mutex_lock(&r->mu);
    if (r->n > SRV_OAI_QUEUE - SRV_OAI_SLICE - 4 && !r->gone) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
        pthread_cond_timedwait(&r->cv, &r->mu, &ts);
        if (srv_now_ms() - r->drained_ms > SRV_OAI_STALL_MS) r->gone = true;
    }
    bool full = r->n > SRV_OAI_QUEUE - SRV_OAI_SLICE - 4 && !r->gone;
    pthread_mutex_unlock(&r->mu);
    return full;
}

static bool client_gone(srv_oai_run *r)
{
    pthread_mutex_lock(&r->mu);
    bool g = r->gone;
    pthread_mutex_unlock(&r->mu);
    return g;
}

/* "data: <json>\n\n" from a cJSON object (freed). */
static char *sse(cJSON *o)
{
    char *j = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!j) return NULL;
    size_t n = strlen(j);
    srv_utf8_scrub(j, n);
    char *ev = malloc(n + 9);
    if (ev) { memcpy(ev, "data: ", 6); memcpy(ev + 6, j, n); memcpy(ev + 6 + n, "\n\n", 3); }
    free(j);
    return ev;
}

/* ------------------------------------------------------------ rendering */

/* A token's text: its bytes when they are UTF-8 by themselves, else
 * OpenAI's "bytes:\xNN..." spelling (the exact bytes are in "bytes"). */
static int token_bytes(const fp_model *m, int32_t t, char *buf, int cap)
{
    int n = fp_token_text(m, t, buf, cap);
    return n < 0 ? 0 : n;
}

static cJSON *token_string(const fp_model *m, int32_t t)
{
    char b[512];
    int n = token_bytes(m, t, b, 256);
    if (fp_utf8_valid(b, (size_t)n)) { b[n] = '\0'; return cJSON_CreateString(b); }
    char s[6 + 4 * 256 + 1];
    int at = snprintf(s, sizeof s, "bytes:");
    for (int i = 0; i < n; i++) at += snprintf(s + at, sizeof s - (size_t)at, "\\x%02x", (unsigned char)b[i]);
    return cJSON_CreateString(s);
}

static cJSON *token_bytes_json(const fp_model *m, int32_t t)
{
    char b[256];
    int n = token_bytes(m, t, b, sizeof b);
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber((unsigned char)b[i]));
    return a;
}

/* JSON has no -Infinity: a token the samplers removed reports -9999 (as OpenAI does). */
static double lp_json(float lp) { return isfinite(lp) ? (double)lp : -9999.0; }

/* One chat logprobs "content" item / llama.cpp completion_probabilities entry. */
static cJSON *lp_item(const fp_model *m, srv_oai_api api, bool post, int32_t t, float lp, bool with_id)
{
    cJSON *o = cJSON_CreateObject();
    if (with_id) cJSON_AddNumberToObject(o, "id", t);
    cJSON_AddItemToObject(o, "token", token_string(m, t));
    cJSON_AddItemToObject(o, "bytes", token_bytes_json(m, t));
    if (api == OAI_LLAMA && post) cJSON_AddNumberToObject(o, "prob", isfinite(lp) ? exp(lp) : 0.0);
    else cJSON_AddNumberToObject(o, "logprob", lp_json(lp));
    return o;
}

static cJSON *rec_item(const fp_model *m, const srv_oai_req *q, const tokrec *r)
{
    bool llama = q->api == OAI_LLAMA;
    cJSON *o = lp_item(m, q->api, q->post_sampling, r->token, r->logprob, llama);
    cJSON *tops = cJSON_CreateArray();
    for (int32_t i = 0; i < r->n_top; i++)
        cJSON_AddItemToArray(tops, lp_item(m, q->api, q->post_sampling, r->top[i].token, r->top[i].logprob, llama));
    cJSON_AddItemToObject(o, llama && q->post_sampling ? "top_probs" : "top_logprobs", tops);
    return o;
}

static cJSON *token_id_string(int32_t t)
{
    char b[24];
    snprintf(b, sizeof b, "token_id:%d", (int)t);
    return cJSON_CreateString(b);
}

/* The legacy completions "logprobs" object for recs[0..n), offsets from base. */
static cJSON *legacy_logprobs(const fp_model *m, const tokrec *recs, int32_t n, size_t base, bool ids)
{
    /* vLLM's return_tokens_as_token_ids: "token_id:N", unambiguous where two tokens share a text */
#define TOKSTR(t) (ids ? token_id_string(t) : token_string(m, (t)))
    cJSON *o = cJSON_CreateObject();
    cJSON *toks = cJSON_AddArrayToObject(o, "tokens");
    cJSON *lps = cJSON_AddArrayToObject(o, "token_logprobs");
    cJSON *tops = cJSON_AddArrayToObject(o, "top_logprobs");
    cJSON *offs = cJSON_AddArrayToObject(o, "text_offset");
    for (int32_t i = 0; i < n; i++) {
        const tokrec *r = &recs[i];
        cJSON_AddItemToArray(toks, TOKSTR(r->token));
        if (isnan(r->logprob)) {
            cJSON_AddItemToArray(lps, cJSON_CreateNull());
            cJSON_AddItemToArray(tops, cJSON_CreateNull());
        } else {
            cJSON_AddItemToArray(lps, cJSON_CreateNumber(lp_json(r->logprob)));
            /* a dict; the sampled token is always in it (up to logprobs + 1 entries, as OpenAI documents) */
            cJSON *d = cJSON_CreateObject();
            bool have = false;
            for (int32_t k = 0; k < r->n_top; k++) {
                cJSON *s = TOKSTR(r->top[k].token);
                if (!cJSON_GetObjectItemCaseSensitive(d, s->valuestring))
                    cJSON_AddNumberToObject(d, s->valuestring, lp_json(r->top[k].logprob));
                have = have || r->top[k].token == r->token;
                cJSON_Delete(s);
            }
            cJSON *s = TOKSTR(r->token);
            if (!have && !cJSON_GetObjectItemCaseSensitive(d, s->valuestring))
                cJSON_AddNumberToObject(d, s->valuestring, lp_json(r->logprob));
            cJSON_Delete(s);
            cJSON_AddItemToArray(tops, d);
        }
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(base + r->start)));
    }
    return o;
#undef TOKSTR
}

/* ------------------------------------------------------------ one choice */

typedef struct choice {
    char   *text; size_t len, cap;
    tokrec *recs; int32_t n_recs, cap_recs;
    int32_t n_emitted;        /* records streamed so far */
    size_t  sent;             /* bytes of text streamed so far */
    const char *finish;       /* "stop", "length", NULL while running */
    const char *stop_type;    /* llama.cpp: "eos", "word", "limit" */
    const char *stop_word;
    int32_t n_gen;
} choice;

static bool ch_append(choice *c, const char *b, size_t n)
{
    if (c->len + n + 1 > c->cap) {
        size_t nc = (c->len + n + 1) * 2;
        char *t = realloc(c->text, nc);
        if (!t) return false;
        c->text = t;
        c->cap = nc;
    }
    memcpy(c->text + c->len, b, n);
    c->len += n;
    c->text[c->len] = '\0';
    return true;
}

static tokrec *ch_rec(choice *c)
{
    if (c->n_recs == c->cap_recs) {
        int32_t nc = c->cap_recs ? c->cap_recs * 2 : 16;
        tokrec *t = realloc(c->recs, sizeof *t * (size_t)nc);
        if (!t) return NULL;
        c->recs = t;
        c->cap_recs = nc;
    }
    tokrec *r = &c->recs[c->n_recs++];
    memset(r, 0, sizeof *r);
    return r;
}

/* Cuts the text at the first stop string found in its last bytes (those
 * the newest token can have completed). O(stops x stop length). */
static bool find_stop(const srv_oai_req *q, choice *c, size_t from, size_t base)
{
    size_t best = (size_t)-1;
    const char *word = NULL;
    for (int32_t i = 0; i < q->n_stop; i++) {
        size_t sl = strlen(q->stop[i]);
        size_t s0 = from >= sl ? from - sl + 1 : 0;
        if (s0 < base) s0 = base;
        for (size_t p = s0; p + sl <= c->len; p++)
            if (memcmp(c->text + p, q->stop[i], sl) == 0) { if (p < best) { best = p; word = q->stop[i]; } break; }
    }
    if (!word) return false;
    c->len = best;
    c->text[best] = '\0';
    while (c->n_recs > 0 && c->recs[c->n_recs - 1].start >= best && c->n_recs > c->n_emitted) c->n_recs--;
    c->finish = "stop";
    c->stop_type = "word";
    c->stop_word = word;
    return true;
}

/* How much of the text may be streamed now: whole characters, and not the
 * end that could still become a stop string. */
static size_t safe_len(const srv_oai_req *q, const choice *c)
{
    size_t safe = c->sent + fp_utf8_complete_prefix(c->text + c->sent, c->len - c->sent);
    if (c->finish) return safe;
    size_t hold = 0;
    for (int32_t i = 0; i < q->n_stop; i++) {
        size_t sl = strlen(q->stop[i]);
        for (size_t k = sl - 1; k > hold; k--)
            if (k <= safe - c->sent && memcmp(c->text + safe - k, q->stop[i], k) == 0) { hold = k; break; }
    }
    return safe - hold;
}

/* ------------------------------------------------------------ the job */

typedef struct ctx {
    srv_app *app;
    srv_job *job;
    srv_oai_run *run;
    const srv_oai_req *q;
    const fp_model *m;
    char id[40];
    long created;
    const char *model_name;
    int32_t prompt_tokens, completion_tokens;
    double t0;
} ctx;

static void set_error(srv_job *job, int status, const char *type, const char *param, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddStringToObject(e, "type", type);
    if (param) cJSON_AddStringToObject(e, "param", param); else cJSON_AddNullToObject(e, "param");
    cJSON_AddNullToObject(e, "code");
    free(job->body);
    job->body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    job->status = status;
}

/* The common head of a reply or chunk. */
static cJSON *head(const ctx *x, const char *object)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", x->id);
    cJSON_AddStringToObject(o, "object", object);
    cJSON_AddNumberToObject(o, "created", (double)x->created);
    cJSON_AddStringToObject(o, "model", x->model_name);
    return o;
}

static cJSON *usage(const ctx *x)
{
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", x->prompt_tokens);
    cJSON_AddNumberToObject(u, "completion_tokens", x->completion_tokens);
    cJSON_AddNumberToObject(u, "total_tokens", x->prompt_tokens + x->completion_tokens);
    return u;
}

/* Streams what of choice c can go now (all of it once it has finished). */
static bool stream_choice(ctx *x, choice *c, int32_t index, size_t base)
{
    const srv_oai_req *q = x->q;
    size_t safe = safe_len(q, c);
    bool lp = q->logprobs >= 0;
    while (c->n_emitted < c->n_recs) {
        tokrec *r = &c->recs[c->n_emitted];
        size_t end = r->end < c->len ? r->end : c->len;
        if (end > safe && !c->finish) break;
        size_t upto = c->sent + fp_utf8_complete_prefix(c->text + c->sent, (end > c->sent ? end : c->sent) - c->sent);
        char *piece = strndup(c->text + c->sent, upto - c->sent);
        if (!piece) return false;
        c->sent = upto;
        c->n_emitted++;
        cJSON *o;
        if (q->api == OAI_LLAMA) {
            o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "content", piece);
            if (q->return_tokens) { cJSON *t = cJSON_AddArrayToObject(o, "tokens"); cJSON_AddItemToArray(t, cJSON_CreateNumber(r->token)); }
            cJSON_AddBoolToObject(o, "stop", false);
            cJSON_AddNumberToObject(o, "id_slot", 0);
            cJSON_AddNumberToObject(o, "index", index);
            if (lp && r->has_top) {
                cJSON *a = cJSON_AddArrayToObject(o, "completion_probabilities");
                cJSON_AddItemToArray(a, rec_item(x->m, q, r));
            }
        } else if (q->api == OAI_CHAT) {
            o = head(x, "chat.completion.chunk");
            cJSON *chs = cJSON_AddArrayToObject(o, "choices");
            cJSON *ch = cJSON_CreateObject();
            cJSON_AddItemToArray(chs, ch);
            cJSON_AddNumberToObject(ch, "index", index);
            cJSON *d = cJSON_AddObjectToObject(ch, "delta");
            cJSON_AddStringToObject(d, "content", piece);
            if (lp) {
                cJSON *l = cJSON_AddObjectToObject(ch, "logprobs");
                cJSON *a = cJSON_AddArrayToObject(l, "content");
                cJSON_AddItemToArray(a, rec_item(x->m, q, r));
                cJSON_AddNullToObject(l, "refusal");
            } else cJSON_AddNullToObject(ch, "logprobs");
            cJSON_AddNullToObject(ch, "finish_reason");
        } else {
            o = head(x, "text_completion");
            cJSON *chs = cJSON_AddArrayToObject(o, "choices");
            cJSON *ch = cJSON_CreateObject();
            cJSON_AddItemToArray(chs, ch);
            cJSON_AddStringToObject(ch, "text", piece);
            cJSON_AddNumberToObject(ch, "index", index);
            if (lp) cJSON_AddItemToObject(ch, "logprobs", legacy_logprobs(x->m, r, 1, base, x->q->tokens_as_ids));
            else cJSON_AddNullToObject(ch, "logprobs");
            cJSON_AddNullToObject(ch, "finish_reason");
        }
        free(piece);
        if (!push_event(x->run, sse(o))) return false;
    }
    return true;
}

/* The final streamed event of a choice (llama.cpp's carries the summary). */
static bool stream_finish(ctx *x, choice *c, int32_t index, cJSON *llama_summary)
{
    cJSON *o;
    if (x->q->api == OAI_LLAMA) {
        o = llama_summary;
    } else {
        o = head(x, x->q->api == OAI_CHAT ? "chat.completion.chunk" : "text_completion");
        cJSON *chs = cJSON_AddArrayToObject(o, "choices");
        cJSON *ch = cJSON_CreateObject();
        cJSON_AddItemToArray(chs, ch);
        cJSON_AddNumberToObject(ch, "index", index);
        if (x->q->api == OAI_CHAT) cJSON_AddObjectToObject(ch, "delta");
        else cJSON_AddStringToObject(ch, "text", "");
        cJSON_AddNullToObject(ch, "logprobs");
        cJSON_AddStringToObject(ch, "finish_reason", c->finish ? c->finish : "length");
    }
    return push_event(x->run, sse(o));
}

/* Records a token taken (or a prompt token echoed) in c. */
static bool take(ctx *x, choice *c, const fp_gen_token *t, bool with_lp)
{
    char b[256];
    int n = fp_token_is_eog(x->m, t->token) ? 0 : fp_token_piece(x->m, t->token, b, sizeof b);
    if (n < 0) n = 0;   /* text: control tokens are not spelled out (their records are) */
    tokrec *r = ch_rec(c);
    if (!r) return false;
    r->token = t->token;
    r->logprob = with_lp ? t->logprob : NAN;
    r->start = c->len;
    if (!ch_append(c, b, (size_t)n)) return false;
    r->end = c->len;
    r->has_top = with_lp;
    r->n_top = with_lp ? t->n_top : 0;
    if (r->n_top > 0) memcpy(r->top, t->top, sizeof *r->top * (size_t)r->n_top);
    return true;
}

/* The summary object of llama.cpp's /completion. */
static cJSON *llama_summary(ctx *x, const choice *c, bool with_content)
{
    const srv_oai_req *q = x->q;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "content", with_content ? c->text : "");
    if (q->return_tokens && with_content) {
        cJSON *t = cJSON_AddArrayToObject(o, "tokens");
        for (int32_t i = 0; i < c->n_recs; i++) cJSON_AddItemToArray(t, cJSON_CreateNumber(c->recs[i].token));
    }
    cJSON_AddNumberToObject(o, "id_slot", 0);
    cJSON_AddBoolToObject(o, "stop", true);
    cJSON_AddStringToObject(o, "model", x->model_name);
    cJSON_AddNumberToObject(o, "tokens_predicted", c->n_gen);
    cJSON_AddNumberToObject(o, "tokens_evaluated", x->prompt_tokens);
    cJSON *gs = cJSON_AddObjectToObject(o, "generation_settings");
    cJSON_AddNumberToObject(gs, "n_predict", q->max_tokens);
    cJSON_AddNumberToObject(gs, "temperature", q->temperature);
    cJSON_AddNumberToObject(gs, "top_k", q->top_k);
    cJSON_AddNumberToObject(gs, "top_p", q->top_p);
    cJSON_AddNumberToObject(gs, "min_p", q->min_p);
    cJSON_AddNumberToObject(gs, "repeat_penalty", q->repeat_penalty);
    cJSON_AddNumberToObject(gs, "n_probs", q->logprobs > 0 ? q->logprobs : 0);
    cJSON_AddBoolToObject(gs, "post_sampling_probs", q->post_sampling);
    cJSON_AddBoolToObject(o, "truncated", false);
    cJSON_AddStringToObject(o, "stop_type", c->stop_type ? c->stop_type : "limit");
    cJSON_AddStringToObject(o, "stopping_word", c->stop_word ? c->stop_word : "");
    cJSON_AddNumberToObject(o, "tokens_cached", 0);
    cJSON *tm = cJSON_AddObjectToObject(o, "timings");
    cJSON_AddNumberToObject(tm, "prompt_n", x->prompt_tokens);
    cJSON_AddNumberToObject(tm, "predicted_n", c->n_gen);
    cJSON_AddNumberToObject(tm, "predicted_ms", srv_now_ms() - x->t0);
    if (with_content && q->logprobs > 0) {
        cJSON *a = cJSON_AddArrayToObject(o, "completion_probabilities");
        for (int32_t i = 0; i < c->n_recs; i++) cJSON_AddItemToArray(a, rec_item(x->m, q, &c->recs[i]));
    }
    return o;
}

/* Where a completion job is between two slices of the worker's time: the
 * prompt and choice it is at, the choice's generator and text. */
typedef struct gen_state {
    ctx     x;
    float  *bias;              /* logit_bias (and ignore_eos) over the vocabulary, or NULL */
    uint32_t seed0;
    cJSON  *choices;           /* finished choices (not streamed) */
    choice  last;              /* llama.cpp: its one choice */
    int32_t p, j;              /* prompt, and choice within it */
    int32_t *toks, n_toks;     /* prompt p's tokens, NULL until loaded */
    char   *text;
    fp_gen *g;                 /* choice j's generator, NULL between choices */
    choice  c;
    size_t  text0;             /* stop strings look only at generated text */
    int     status;            /* 0, -1 = the client went away, else the HTTP error */
    bool    finished;
} gen_state;

/* Starts choice s->j of prompt s->p: its generator, the echoed prompt and,
 * in a chat stream, the chunk naming the role. */
static int choice_begin(gen_state *s)
{
    ctx *x = &s->x;
    const srv_oai_req *q = x->q;
    int32_t index = s->p * q->n + s->j;
    memset(&s->c, 0, sizeof s->c);
    choice *c = &s->c;
    if (q->stream && q->api == OAI_CHAT) {
        cJSON *o = head(x, "chat.completion.chunk");
        cJSON *chs = cJSON_AddArrayToObject(o, "choices");
        cJSON *ch = cJSON_CreateObject();
        cJSON_AddItemToArray(chs, ch);
        cJSON_AddNumberToObject(ch, "index", index);
        cJSON *d = cJSON_AddObjectToObject(ch, "delta");
        cJSON_AddStringToObject(d, "role", "assistant");
        cJSON_AddStringToObject(d, "content", "");
        cJSON_AddNullToObject(ch, "logprobs");
        cJSON_AddNullToObject(ch, "finish_reason");
        if (!push_event(x->run, sse(o))) return -1;
    }
    fp_gen_params gp = fp_gen_default_params();
    gp.temperature = q->temperature;
    gp.top_k = q->top_k;
    gp.top_p = q->top_p;
    gp.min_p = q->min_p;
    gp.repeat_penalty = q->repeat_penalty;
    gp.repeat_last_n = q->repeat_last_n;
    gp.seed = s->seed0 + (uint32_t)index;   /* n choices differ, each reproducible */
    gp.logit_bias = s->bias;
    gp.n_top = q->logprobs > 0 ? q->logprobs : 0;
    gp.post_sampling = q->post_sampling;
    gp.prompt_logprobs = q->echo && q->logprobs >= 0;
    fp_error err = {0};
    s->g = fp_gen_new(x->app->engine, s->toks, s->n_toks, &gp, &err);
    if (!s->g) {
        int st = srv_status_http(err.code);
        set_error(x->job, st, st < 500 ? "invalid_request_error" : "server_error", NULL, err.message);
        return st;
    }
    const char *prompt_text = q->api != OAI_CHAT ? q->prompts[s->p].text : NULL;
    if (q->echo) {
        /* the prompt's text first, and with logprobs its tokens' records */
        if (q->logprobs >= 0) {
            for (int32_t i = 0; i < s->n_toks; i++) {
                fp_gen_token t = {.token = s->toks[i], .logprob = NAN};
                bool ok = i == 0 || fp_gen_prompt_token(s->g, i, &t, &err) == FP_OK;
                if (!ok || !take(x, c, &t, i > 0)) { set_error(x->job, 500, "server_error", NULL, "out of memory"); return 500; }
            }
            if (prompt_text && (c->len != strlen(prompt_text) || memcmp(c->text, prompt_text, c->len) != 0)) {
                /* the pieces do not spell the prompt exactly (a leading space the tokenizer adds): keep the
                 * prompt's text, and move the offsets by that space */
                size_t shift = c->len == strlen(prompt_text) + 1 && c->text[0] == ' ' ? 1 : 0;
                c->len = 0;
                ch_append(c, prompt_text, strlen(prompt_text));
                for (int32_t i = 0; i < c->n_recs; i++) {
                    tokrec *r = &c->recs[i];
                    r->start = r->start >= shift ? r->start - shift : 0;
                    r->end = r->end >= shift ? r->end - shift : 0;
                    if (r->start > c->len) r->start = c->len;
                    if (r->end > c->len) r->end = c->len;
                }
            }
        } else if (prompt_text) {
            ch_append(c, prompt_text, strlen(prompt_text));
        } else {
            int32_t need = fp_detokenize(x->m, s->toks, s->n_toks, NULL, 0);
            int32_t cap = need < 0 ? -need : need;
            char *b = malloc((size_t)cap + 1);
            int32_t n = b ? fp_detokenize(x->m, s->toks, s->n_toks, b, cap) : -1;
            if (n > 0) ch_append(c, b, (size_t)n);
            free(b);
        }
    }
    s->text0 = c->len;
    if (q->stream && !stream_choice(x, c, index, 0)) return -1;
    return 0;
}

/* Takes one token of the current choice (or finds that it has ended). */
static int choice_step(gen_state *s)
{
    ctx *x = &s->x;
    const srv_oai_req *q = x->q;
    choice *c = &s->c;
    int32_t budget = q->max_tokens < 0 ? INT32_MAX : q->max_tokens;
    if (c->n_gen >= budget) { c->finish = "length"; c->stop_type = "limit"; return 0; }
    if (client_gone(x->run)) return -1;
    fp_error err = {0};
    fp_gen_token t;
    fp_status st = fp_gen_next(s->g, &t, &err);
    if (st == FP_ERR_CONTEXT) { c->finish = "length"; c->stop_type = "limit"; return 0; }
    if (st != FP_OK) {
        int h = srv_status_http(st);
        set_error(x->job, h, "server_error", NULL, err.message);
        return h;
    }
    if (t.is_eog) { c->finish = "stop"; c->stop_type = "eos"; return 0; }
    size_t before = c->len;
    if (!take(x, c, &t, q->logprobs >= 0)) { set_error(x->job, 500, "server_error", NULL, "out of memory"); return 500; }
    c->n_gen++;
    x->completion_tokens++;
    find_stop(q, c, before, s->text0);
    if (q->stream && !stream_choice(x, c, s->p * q->n + s->j, 0)) return -1;
    return 0;
}

/* Ends the current choice: the last streamed events, or its reply object. */
static int choice_end(gen_state *s)
{
    ctx *x = &s->x;
    const srv_oai_req *q = x->q;
    choice *c = &s->c;
    int32_t index = s->p * q->n + s->j;
    fp_gen_free(s->g);
    s->g = NULL;
    int status = 0;
    if (q->stream) {
        if (!stream_choice(x, c, index, 0) || !stream_finish(x, c, index, q->api == OAI_LLAMA ? llama_summary(x, c, false) : NULL))
            status = -1;
    } else if (q->api != OAI_LLAMA) {
        cJSON *ch = cJSON_CreateObject();
        cJSON_AddNumberToObject(ch, "index", index);
        bool lp = q->logprobs >= 0;
        if (q->api == OAI_CHAT) {
            cJSON *msg = cJSON_AddObjectToObject(ch, "message");
            cJSON_AddStringToObject(msg, "role", "assistant");
            cJSON_AddStringToObject(msg, "content", c->text ? c->text : "");
            cJSON_AddNullToObject(msg, "refusal");
            if (lp) {
                cJSON *l = cJSON_AddObjectToObject(ch, "logprobs");
                cJSON *a = cJSON_AddArrayToObject(l, "content");
                for (int32_t i = 0; i < c->n_recs; i++) cJSON_AddItemToArray(a, rec_item(x->m, q, &c->recs[i]));
                cJSON_AddNullToObject(l, "refusal");
            } else cJSON_AddNullToObject(ch, "logprobs");
        } else {
            cJSON_AddStringToObject(ch, "text", c->text ? c->text : "");
            if (lp) cJSON_AddItemToObject(ch, "logprobs", legacy_logprobs(x->m, c->recs, c->n_recs, 0, q->tokens_as_ids));
            else cJSON_AddNullToObject(ch, "logprobs");
        }
        cJSON_AddStringToObject(ch, "finish_reason", c->finish ? c->finish : "length");
        cJSON_AddItemToArray(s->choices, ch);
    }
    if (q->api == OAI_LLAMA) {   /* its summary is the reply */
        free(s->last.text);
        free(s->last.recs);
        s->last = *c;
    } else {
        free(c->text);
        free(c->recs);
    }
    memset(c, 0, sizeof *c);
    return status;
}

/* Prompt tokens for a request's prompt i (or the rendered chat). */
static int prompt_tokens(ctx *x, int32_t i, int32_t **out, int32_t *n_out, char **text_out)
{
    const srv_oai_req *q = x->q;
    *out = NULL;
    *text_out = NULL;
    char *rendered = NULL;
    const char *text = NULL;
    if (q->api == OAI_CHAT) {
        fp_error err = {0};
        if (fp_chat_render(x->m, x->app->cfg.chat_template, q->msgs, q->n_msgs, true, &rendered, &err) != FP_OK) {
            set_error(x->job, 400, "invalid_request_error", "messages", err.message);
            return 400;
        }
        text = rendered;
    } else if (q->prompts[i].text) {
        text = q->prompts[i].text;
    } else {
        int32_t nv = fp_model_n_vocab(x->m);
        for (int32_t k = 0; k < q->prompts[i].n_toks; k++)
            if (q->prompts[i].toks[k] >= nv) {
                char msg[96];
                snprintf(msg, sizeof msg, "token %d is not in the vocabulary (%d tokens)", q->prompts[i].toks[k], nv);
                set_error(x->job, 400, "invalid_request_error", "prompt", msg);
                return 400;
            }
        *out = malloc(sizeof(int32_t) * (size_t)(q->prompts[i].n_toks > 0 ? q->prompts[i].n_toks : 1));
        if (!*out) { set_error(x->job, 503, "server_error", NULL, "out of memory"); return 503; }
        memcpy(*out, q->prompts[i].toks, sizeof(int32_t) * (size_t)q->prompts[i].n_toks);
        *n_out = q->prompts[i].n_toks;
        return 0;
    }
    size_t len = strlen(text);
    int32_t cap = (int32_t)(len < (1u << 20) ? len : (1u << 20)) + 8;
    int32_t *t = malloc(sizeof(int32_t) * (size_t)cap);
    int32_t n = t ? fp_tokenize_special(x->m, text, len, t, cap, true) : -1;
    if (n < 1 || n > cap) {
        free(t);
        free(rendered);
        fp_error e = { 0 };
        if (n < 0 && fp_tokenize_check(x->m, text, len, true, &e) == FP_OK) snprintf(e.message, sizeof e.message, "the prompt cannot be tokenized");
        set_error(x->job, 400, "invalid_request_error", "prompt", n < 0 ? e.message : "the prompt is empty");
        return 400;
    }
    *out = t;
    *n_out = n;
    *text_out = rendered ? rendered : strdup(text);
    return 0;
}

static void exec_tokenize(ctx *x)
{
    const srv_oai_req *q = x->q;
    cJSON *o = cJSON_CreateObject();
    cJSON *a = cJSON_AddArrayToObject(o, "tokens");
    if (q->api == OAI_TOKENIZE) {
        const char *text = q->prompts[0].text;
        size_t len = strlen(text);
        int32_t cap = (int32_t)(len < (1u << 20) ? len : (1u << 20)) + 8;
        int32_t *t = malloc(sizeof(int32_t) * (size_t)cap);
        int32_t n = t ? fp_tokenize_special(x->m, text, len, t, cap, q->add_special) : -1;
        fp_error e = { 0 };
        if (!t || n > cap || (n < 0 && fp_tokenize_check(x->m, text, len, true, &e) == FP_OK))
            snprintf(e.message, sizeof e.message, t ? "the content cannot be tokenized" : "out of memory");
        if (n < 0 || n > cap) {
            free(t);
            cJSON_Delete(o);
            set_error(x->job, t ? 400 : 500, t ? "invalid_request_error" : "server_error", t ? "content" : NULL, e.message);
            return;
        }
        for (int32_t i = 0; i < n && i < cap; i++) {
            if (!q->with_pieces) { cJSON_AddItemToArray(a, cJSON_CreateNumber(t[i])); continue; }
            cJSON *p = cJSON_CreateObject();
            cJSON_AddNumberToObject(p, "id", t[i]);
            char b[256];
            int nb = token_bytes(x->m, t[i], b, sizeof b - 1);
            if (fp_utf8_valid(b, (size_t)nb)) { b[nb] = '\0'; cJSON_AddStringToObject(p, "piece", b); }
            else cJSON_AddItemToObject(p, "piece", token_bytes_json(x->m, t[i]));
            cJSON_AddItemToArray(a, p);
        }
        free(t);
    } else {
        cJSON_DeleteItemFromObject(o, "tokens");
        int32_t nv = fp_model_n_vocab(x->m);
        for (int32_t k = 0; k < q->prompts[0].n_toks; k++)
            if (q->prompts[0].toks[k] >= nv) {
                cJSON_Delete(o);
                set_error(x->job, 400, "invalid_request_error", "tokens", "a token is not in the vocabulary");
                return;
            }
        const int32_t *tk = q->prompts[0].toks;
        int32_t nt = q->prompts[0].n_toks;
        int32_t need = fp_detokenize_special(x->m, tk, nt, NULL, 0);
        int32_t cap = need < 0 ? -need : need;
        char *out = malloc((size_t)cap + 1);
        int32_t n = out ? fp_detokenize_special(x->m, tk, nt, out, cap) : -1;
        if (n < 0) { free(out); cJSON_Delete(o); set_error(x->job, 500, "server_error", NULL, "out of memory"); return; }
        out[n] = '\0';
        cJSON_AddStringToObject(o, "content", out);
        free(out);
    }
    x->job->body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    x->job->status = 200;
}

/* The reply once every choice is done (or the error, or nothing for a
 * client that left), and everything the job held freed. */
static void gen_finish(gen_state *s)
{
    ctx *x = &s->x;
    srv_job *job = x->job;
    srv_oai_run *run = x->run;
    const srv_oai_req *q = x->q;
    if (s->status == 0) {
        if (q->stream) {
            if (q->api != OAI_LLAMA) {
                if (q->include_usage) {
                    cJSON *o = head(x, q->api == OAI_CHAT ? "chat.completion.chunk" : "text_completion");
                    cJSON_AddArrayToObject(o, "choices");
                    cJSON_AddItemToObject(o, "usage", usage(x));
                    push_event(run, sse(o));
                }
                push_event(run, strdup("data: [DONE]\n\n"));
            }
            job->status = 200;
            job->body = strdup("");
        } else {
            cJSON *o;
            if (q->api == OAI_LLAMA) {
                o = llama_summary(x, &s->last, true);
            } else {
                o = head(x, q->api == OAI_CHAT ? "chat.completion" : "text_completion");
                cJSON_AddItemToObject(o, "choices", s->choices);
                s->choices = NULL;
                cJSON_AddItemToObject(o, "usage", usage(x));
            }
            job->body = cJSON_PrintUnformatted(o);
            cJSON_Delete(o);
            job->status = 200;
        }
    } else if (s->status < 0 && !job->body) {
        job->status = 499;   /* the client went away */
        job->body = strdup("");
    } else if (run->started && job->body) {
        /* an error after the stream began: one error event, then the end */
        size_t n = strlen(job->body);
        char *ev = malloc(n + 9);
        if (ev) { memcpy(ev, "data: ", 6); memcpy(ev + 6, job->body, n); memcpy(ev + 6 + n, "\n\n", 3); push_event(run, ev); }
    }
    fp_gen_free(s->g);
    free(s->c.text); free(s->c.recs);
    free(s->last.text); free(s->last.recs);
    free(s->toks); free(s->text); free(s->bias);
    cJSON_Delete(s->choices);
    free(s);
}

/* The first slice: what every later one needs (the bias, the seed, the id). */
static gen_state *gen_start(srv_app *app, srv_job *job, srv_oai_run *run)
{
    gen_state *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    const srv_oai_req *q = &run->req;
    s->x = (ctx){.app = app, .job = job, .run = run, .q = q, .m = app->model, .created = (long)time(NULL), .t0 = srv_now_ms()};
    const char *slash = strrchr(app->model_path, '/');
    s->x.model_name = slash ? slash + 1 : app->model_path;
    char rid[SRV_ID_LEN + 1];
    srv_random_id(rid);
    snprintf(s->x.id, sizeof s->x.id, "%s-%s", q->api == OAI_CHAT ? "chatcmpl" : "cmpl", rid);
    s->choices = cJSON_CreateArray();
    s->seed0 = q->has_seed ? q->seed : (uint32_t)time(NULL) ^ (uint32_t)(uint64_t)(srv_now_ms() * 1000.0);
    int32_t nv = fp_model_n_vocab(app->model);
    if (q->n_bias > 0 || q->ignore_eos) {
        s->bias = calloc((size_t)nv, sizeof *s->bias);
        if (!s->bias) { set_error(job, 503, "server_error", NULL, "out of memory"); s->status = 503; return s; }
        for (int32_t i = 0; i < q->n_bias; i++) {
            if (q->bias_tok[i] >= nv) {
                char msg[96];
                snprintf(msg, sizeof msg, "logit_bias: token %d is not in the vocabulary (%d tokens)", q->bias_tok[i], nv);
                set_error(job, 400, "invalid_request_error", "logit_bias", msg);
                s->status = 400;
                return s;
            }
            s->bias[q->bias_tok[i]] += q->bias_val[i];
        }
        if (q->ignore_eos)
            for (int32_t t = 0; t < nv; t++) if (fp_token_is_eog(app->model, t)) s->bias[t] = -INFINITY;
    }
    return s;
}

/* The worker's half of a JOB_OAI, one slice at a time: at most
 * SRV_OAI_SLICE tokens, then the job goes to the back of the queue
 * (job->requeue), so sessions and other completions take their turns
 * during a long completion. */
void srv_oai_exec(srv_app *app, srv_job *job)
{
    srv_oai_run *run = job->ext;
    const srv_oai_req *q = &run->req;
    if (q->api == OAI_TOKENIZE || q->api == OAI_DETOKENIZE) {
        ctx x = {.app = app, .job = job, .run = run, .q = q, .m = app->model};
        exec_tokenize(&x);
        if (!job->body) set_error(job, 500, "server_error", NULL, "out of memory");
        goto done;
    }
    gen_state *s = run->gen;
    if (!s && !(s = run->gen = gen_start(app, job, run))) {
        set_error(job, 503, "server_error", NULL, "out of memory");
        goto done;
    }
    int32_t n_prompts = q->api == OAI_CHAT ? 1 : q->n_prompts;
    if (q->stream && s->status == 0 && stream_full(run)) { job->requeue = true; return; }
    for (int slice = 0; slice < SRV_OAI_SLICE && s->status == 0 && !s->finished; ) {
        if (!s->g) {
            if (!s->toks) {
                if (s->p == n_prompts) { s->finished = true; break; }
                if ((s->status = prompt_tokens(&s->x, s->p, &s->toks, &s->n_toks, &s->text)) != 0) break;
                s->x.prompt_tokens += s->n_toks;
            }
            if (s->j == q->n) {
                free(s->toks); free(s->text);
                s->toks = NULL; s->text = NULL;
                s->p++;
                s->j = 0;
                continue;
            }
            if ((s->status = choice_begin(s)) != 0) break;
        }
        if (!s->c.finish) { s->status = choice_step(s); slice++; }
        if (s->status == 0 && s->c.finish) { s->status = choice_end(s); s->j++; }
    }
    if (s->status == 0 && !s->finished) { job->requeue = true; return; }
    gen_finish(s);
    run->gen = NULL;
    if (!job->body) set_error(job, 500, "server_error", NULL, "out of memory");
done:
    pthread_mutex_lock(&run->mu);
    run->done = true;
    pthread_cond_broadcast(&run->cv);
    pthread_mutex_unlock(&run->mu);
}

/* ------------------------------------------------------------ routes */

/* Sends an OpenAI-shaped error from the handler thread. */
static void send_reply(srv_app *app, struct mg_connection *c, int status, const char *body);
static int send_oai_error(srv_app *app, struct mg_connection *c, int status, const char *param, const char *msg)
{
    srv_job j = {0};
    set_error(&j, status, status == 401 ? "authentication_error" : status >= 500 ? "server_error" : "invalid_request_error",
              param, msg);
    send_reply(app, c, status, j.body ? j.body : "{\"error\":{\"message\":\"out of memory\"}}");
    free(j.body);
    return status;
}

/* CORS for --cors-origin: the one origin allowed, on the compatible API only. */
static bool cors_allowed(srv_app *app, const struct mg_connection *c)
{
    const char *o = mg_get_header(c, "Origin");
    return o && app->cfg.cors_origin && strcmp(o, app->cfg.cors_origin) == 0;
}

static void cors_headers(srv_app *app, struct mg_connection *c)
{
    mg_response_header_add(c, "Access-Control-Allow-Origin", app->cfg.cors_origin, -1);
    mg_response_header_add(c, "Vary", "Origin", -1);
}

/* A JSON reply: http.c's sending, or with the CORS header for --cors-origin
 * (which srv_send_json does not add). */
static void send_reply(srv_app *app, struct mg_connection *c, int status, const char *body)
{
    if (!cors_allowed(app, c)) { srv_send_json(c, status, body); return; }
    char len[24];
    snprintf(len, sizeof len, "%zu", strlen(body));
    mg_response_header_start(c, status);
    mg_response_header_add(c, "Content-Type", "application/json; charset=utf-8", -1);
    mg_response_header_add(c, "Cache-Control", "no-store", -1);
    cors_headers(app, c);
    mg_response_header_add(c, "Content-Length", len, -1);
    mg_response_header_send(c);
    mg_write(c, body, strlen(body));
}

/* Writes a streamed reply: events as the worker produces them. Every
 * event waiting when the writer wakes goes out in one write (up to
 * SRV_OAI_QUEUE events), so a fast worker is not held to one small TCP
 * segment per token (Nagle and delayed ACKs would cost ~40 ms each). */
static int stream_reply(srv_app *app, struct mg_connection *c, srv_job *job, srv_oai_run *run)
{
    bool headers = false, gone = false;
    int status = 200;
    char *batch[SRV_OAI_QUEUE];
    for (;;) {
        pthread_mutex_lock(&run->mu);
        while (run->n == 0 && !run->done) pthread_cond_wait(&run->cv, &run->mu);
        int nb = 0;
        while (run->n > 0) {
            batch[nb++] = run->q[run->head];
            run->head = (run->head + 1) % SRV_OAI_QUEUE;
            run->n--;
        }
        bool end = nb == 0 && run->done;
        run->drained_ms = srv_now_ms();
        pthread_cond_broadcast(&run->cv);
        gone = run->gone;
        pthread_mutex_unlock(&run->mu);
        if (end) break;
        size_t len = 0;
        for (int i = 0; i < nb; i++) len += strlen(batch[i]);
        char *buf = gone ? NULL : malloc(len + 1);
        size_t at = 0;
        for (int i = 0; i < nb; i++) {
            size_t n = strlen(batch[i]);
            if (buf) memcpy(buf + at, batch[i], n);
            at += n;
            free(batch[i]);
        }
        if (gone) continue;
        if (!headers) {
            /* the body ends when the connection closes: no keep-alive (else
             * the client waits for civetweb's keep-alive timeout) */
            mg_disable_connection_keep_alive(c);
            mg_response_header_start(c, 200);
            mg_response_header_add(c, "Content-Type", "text/event-stream; charset=utf-8", -1);
            mg_response_header_add(c, "Cache-Control", "no-store", -1);
            mg_response_header_add(c, "X-Content-Type-Options", "nosniff", -1);
            mg_response_header_add(c, "Connection", "close", -1);
            if (cors_allowed(app, c)) cors_headers(app, c);
            mg_response_header_send(c);
            headers = true;
        }
        if (!buf || mg_write(c, buf, len) <= 0) {
            pthread_mutex_lock(&run->mu);
            run->gone = true;
            pthread_cond_broadcast(&run->cv);
            pthread_mutex_unlock(&run->mu);
            status = 499;
        }
        free(buf);
    }
    srv_worker_wait(app, job);
    if (!headers) {   /* failed before the first event: an ordinary error reply */
        status = job->status ? job->status : 500;
        send_reply(app, c, status, job->body ? job->body : "{}");
    }
    return status;
}

bool srv_oai_route(srv_app *app, struct mg_connection *c, const char *method, const char *uri, int *status)
{
    static const struct { const char *path; srv_oai_api api; } posts[] = {
        {"/v1/completions", OAI_COMPLETIONS}, {"/v1/chat/completions", OAI_CHAT}, {"/completion", OAI_LLAMA},
        {"/completions", OAI_LLAMA}, {"/tokenize", OAI_TOKENIZE}, {"/detokenize", OAI_DETOKENIZE},
    };
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    bool post = strcmp(method, "POST") == 0;
    int which = -1;
    for (size_t i = 0; i < sizeof posts / sizeof posts[0]; i++) if (strcmp(uri, posts[i].path) == 0) which = (int)i;
    bool models = strcmp(uri, "/v1/models") == 0, health = strcmp(uri, "/health") == 0;
    if (which < 0 && !models && !health) return false;
    /* preflights (OPTIONS) are answered by civetweb itself, before any handler */
    if (!srv_origin_ok(c) && !cors_allowed(app, c)) {
        *status = send_oai_error(app, c, 403, NULL, "cross-origin request refused (see --cors-origin)");
        return true;
    }
    if (models || health) {
        if (!get) { *status = send_oai_error(app, c, 405, NULL, "method not allowed"); return true; }
        cJSON *o = cJSON_CreateObject();
        if (health) {
            cJSON_AddStringToObject(o, "status", "ok");
        } else {
            char mp[1024];   /* the worker may switch models meanwhile (models.c) */
            srv_model_path(app, mp, sizeof mp);
            const char *slash = strrchr(mp, '/');
            cJSON_AddStringToObject(o, "object", "list");
            cJSON *d = cJSON_AddArrayToObject(o, "data");
            cJSON *m = cJSON_CreateObject();
            cJSON_AddStringToObject(m, "id", slash ? slash + 1 : mp);
            cJSON_AddStringToObject(m, "object", "model");
            cJSON_AddNumberToObject(m, "created", 0);
            cJSON_AddStringToObject(m, "owned_by", "forkpoint");
            cJSON_AddItemToArray(d, m);
        }
        char *s = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        send_reply(app, c, 200, s ? s : "{}");
        free(s);
        *status = 200;
        return true;
    }
    if (!post) { *status = send_oai_error(app, c, 405, NULL, "method not allowed"); return true; }
    char err[200];
    void *j = NULL;
    int st = srv_read_json(c, &j, err, sizeof err);
    if (st) { *status = send_oai_error(app, c, st, NULL, err); return true; }
    srv_oai_run *run = calloc(1, sizeof *run);
    if (!run) { cJSON_Delete(j); *status = send_oai_error(app, c, 503, NULL, "out of memory"); return true; }
    const char *param = NULL;
    st = srv_oai_parse(posts[which].api, j, app->cfg.max_logprobs, app->cfg.lenient_fields, &run->req, &param, err, sizeof err);
    for (int32_t i = 0; st == 0 && !app->cfg.quiet && i < run->req.n_ignored; i++)
        fprintf(stderr, "%s: ignored unknown field \"%s\" (--lenient-fields)\n", uri, run->req.ignored[i]);
    if (st) {
        *status = send_oai_error(app, c, st, param, err);   /* param points into j */
        srv_oai_req_free(&run->req);
        free(run);
        cJSON_Delete(j);
        return true;
    }
    pthread_mutex_init(&run->mu, NULL);
    pthread_cond_init(&run->cv, NULL);
    run->drained_ms = srv_now_ms();
    /* its own lane: completions and sessions take turns ("~": never a session id) */
    srv_job job = {.kind = JOB_OAI, .ext = run};
    srv_random_id(job.sid);
    job.sid[0] = '~';
    if (run->req.stream) {
        if (srv_worker_enqueue(app, &job) != 0) {
            *status = send_oai_error(app, c, 503, NULL, "server is shutting down");
        } else {
            *status = stream_reply(app, c, &job, run);
        }
    } else {
        srv_worker_submit(app, &job);
        *status = job.status ? job.status : 500;
        send_reply(app, c, *status, job.body ? job.body : "{}");
    }
    free(job.body);
    /* anything the worker queued and nobody wrote */
    for (int i = 0; i < run->n; i++) free(run->q[(run->head + i) % SRV_OAI_QUEUE]);
    pthread_mutex_destroy(&run->mu);
    pthread_cond_destroy(&run->cv);
    srv_oai_req_free(&run->req);
    free(run);
    cJSON_Delete(j);
    return true;
}
