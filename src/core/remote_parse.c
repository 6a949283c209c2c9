/*
 * remote_parse.c — the wire format of a remote engine: the request Forkpoint
 * sends for one position, and the reply parsed into top log-probabilities.
 *
 * Pure (no I/O, no model): remote.c sends and receives, this file only
 * builds and reads JSON (cJSON), so unit tests and fuzz/fuzz_remote.c can
 * drive it with any bytes.
 *
 * One request asks for a position's distribution and, in the same reply,
 * the next `ahead` greedy tokens with theirs (max_tokens / n_predict =
 * ahead, temperature 0): a preview or the continuation then costs one round
 * trip, not one per token (remote.c caches the extra positions).
 *
 *   llama-server  POST /completion  {"prompt":[ids], "n_predict":A, "n_probs":K,
 *                 "temperature":0, "cache_prompt":true, "logit_bias":[[id,b],..]}
 *                 -> completion_probabilities[i] = {id, logprob, top_logprobs[{id, logprob}]}
 *   openai        POST /v1/completions {"model", "prompt":[ids], "max_tokens":A,
 *                 "logprobs":K, "temperature":0, "logit_bias":{"id":b}}
 *                 -> choices[0].logprobs.tokens[i], top_logprobs[i] = {"text": logprob}
 *                 (texts are mapped back to ids by the caller's lookup; vLLM's
 *                 "token_id:N" spelling is read directly)
 * Position i's entry is the distribution the i-th generated token was drawn
 * from: entry 0 is the distribution after the prompt.
 */
#include "core/internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The value logit_bias carries for b: clamped to OpenAI's -100..100, a ban
 * (-inf, llama.cpp's false) sent as -100. */
float fpi_remote_bias_value(float b)
{
    if (!isfinite(b)) return b < 0 ? -100.0f : 0.0f;
    return b > 100.0f ? 100.0f : b < -100.0f ? -100.0f : b;
}

char *fpi_remote_request(fpi_remote_kind kind, const char *model_name, const int32_t *toks, int32_t n,
                         int32_t n_top, int32_t ahead, const float *bias, int32_t n_vocab, bool ids)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    if (kind == FPI_REMOTE_OPENAI && model_name) cJSON_AddStringToObject(o, "model", model_name);
    cJSON *p = cJSON_AddArrayToObject(o, "prompt");
    for (int32_t i = 0; p && i < n; i++) cJSON_AddItemToArray(p, cJSON_CreateNumber(toks[i]));
    if (kind == FPI_REMOTE_LLAMA) {
        cJSON_AddNumberToObject(o, "n_predict", ahead);
        cJSON_AddNumberToObject(o, "n_probs", n_top);
        cJSON_AddBoolToObject(o, "cache_prompt", 1);
    } else {
        cJSON_AddNumberToObject(o, "max_tokens", ahead);
        cJSON_AddNumberToObject(o, "logprobs", n_top);
        if (ids) cJSON_AddBoolToObject(o, "return_tokens_as_token_ids", 1);
    }
    cJSON_AddNumberToObject(o, "temperature", 0);
    if (bias) {
        cJSON *b = kind == FPI_REMOTE_LLAMA ? cJSON_AddArrayToObject(o, "logit_bias") : cJSON_AddObjectToObject(o, "logit_bias");
        for (int32_t t = 0; b && t < n_vocab; t++) {
            double v = fpi_remote_bias_value(bias[t]);
            if (v == 0.0) continue;
            if (kind == FPI_REMOTE_LLAMA) {
                cJSON *e = cJSON_CreateArray();
                cJSON_AddItemToArray(e, cJSON_CreateNumber(t));
                cJSON_AddItemToArray(e, cJSON_CreateNumber(v));
                cJSON_AddItemToArray(b, e);
            } else {
                char key[16];
                snprintf(key, sizeof key, "%d", (int)t);
                cJSON_AddNumberToObject(b, key, v);
            }
        }
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* A number that is a token id of the vocabulary, else -1. */
static int32_t tok_id(const cJSON *x, int32_t n_vocab)
{
    if (!cJSON_IsNumber(x)) return -1;
    double d = x->valuedouble;
    if (!(d >= 0 && d < n_vocab) || d != floor(d)) return -1;
    return (int32_t)d;
}

/* A log-probability: finite and <= 0 (a little above from rounding is let through as 0). */
static bool logprob_of(const cJSON *x, float *out)
{
    if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble) || x->valuedouble > 1e-3) return false;
    double v = x->valuedouble < -1e4 ? -1e4 : x->valuedouble;
    *out = v > 0 ? 0.0f : (float)v;
    return true;
}

static int32_t text_id(const char *s, fpi_remote_lookup lookup, void *ud, int32_t n_vocab)
{
    if (!s) return -1;
    if (!strncmp(s, "token_id:", 9)) {
        char *end;
        long v = strtol(s + 9, &end, 10);
        return *end || end == s + 9 || v < 0 || v >= n_vocab ? -1 : (int32_t)v;
    }
    int32_t id = lookup ? lookup(ud, s) : -1;
    return id >= 0 && (id & ~FPI_REMOTE_AMBIGUOUS) < n_vocab ? id : -1;
}

/* Adds (id, lp) to pos's list unless it is there already or the list is full. */
static void top_add(fpi_remote_pos *pos, int32_t id, float lp)
{
    for (int32_t j = 0; j < pos->n_top; j++) if (pos->top[j].token == id) return;
    if (pos->n_top < FPI_REMOTE_MAX_TOP) pos->top[pos->n_top++] = (fp_logprob){ id, lp };
}

/* An error object's message: {"error":{"message":..}} or {"error":".."}. */
static bool error_message(const cJSON *root, char *msg, size_t cap)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
    if (!e) return false;
    const cJSON *m = cJSON_IsObject(e) ? cJSON_GetObjectItemCaseSensitive(e, "message") : e;
    snprintf(msg, cap, "the server answered with an error: %.180s", cJSON_IsString(m) ? m->valuestring : "(no message)");
    return true;
}

fp_status fpi_remote_parse(fpi_remote_kind kind, const char *body, size_t len, int32_t n_vocab,
                           fpi_remote_lookup lookup, void *ud, fpi_remote_pos *out, int32_t cap,
                           int32_t *n_out, char *msg, size_t msg_cap)
{
    *n_out = 0;
    if (msg_cap) msg[0] = 0;
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (!root) { snprintf(msg, msg_cap, "the server's reply is not JSON"); return FP_ERR_IO; }
    fp_status st = FP_ERR_IO;
    if (error_message(root, msg, msg_cap)) goto done;
    if (kind == FPI_REMOTE_LLAMA) {
        const cJSON *cp = cJSON_GetObjectItemCaseSensitive(root, "completion_probabilities");
        if (!cJSON_IsArray(cp)) {
            snprintf(msg, msg_cap, "the reply has no completion_probabilities (is this a llama.cpp server?)");
            goto done;
        }
        const cJSON *e;
        cJSON_ArrayForEach(e, cp) {
            if (*n_out == cap) break;
            fpi_remote_pos *pos = &out[*n_out];
            memset(pos, 0, sizeof *pos);
            pos->token = tok_id(cJSON_GetObjectItemCaseSensitive(e, "id"), n_vocab);
            const cJSON *tops = cJSON_GetObjectItemCaseSensitive(e, "top_logprobs");
            bool probs = false;
            if (!tops) { tops = cJSON_GetObjectItemCaseSensitive(e, "top_probs"); probs = true; }
            const cJSON *t;
            cJSON_ArrayForEach(t, tops) {
                int32_t id = tok_id(cJSON_GetObjectItemCaseSensitive(t, "id"), n_vocab);
                float lp;
                if (probs) {
                    const cJSON *p = cJSON_GetObjectItemCaseSensitive(t, "prob");
                    if (!cJSON_IsNumber(p) || !(p->valuedouble > 0 && p->valuedouble <= 1.0 + 1e-6)) continue;
                    lp = (float)log(p->valuedouble > 1 ? 1 : p->valuedouble);
                } else if (!logprob_of(cJSON_GetObjectItemCaseSensitive(t, "logprob"), &lp)) continue;
                if (id >= 0) top_add(pos, id, lp);
            }
            if (pos->token < 0 || pos->n_top == 0) break;   /* unusable from here on */
            (*n_out)++;
        }
    } else {
        const cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "choices"), 0);
        const cJSON *lp = cJSON_GetObjectItemCaseSensitive(ch, "logprobs");
        const cJSON *toks = cJSON_GetObjectItemCaseSensitive(lp, "tokens");
        const cJSON *tops = cJSON_GetObjectItemCaseSensitive(lp, "top_logprobs");
        if (!cJSON_IsArray(toks) || !cJSON_IsArray(tops)) {
            snprintf(msg, msg_cap, "the reply has no logprobs (the server must support \"logprobs\" on /v1/completions)");
            goto done;
        }
        int32_t n = cJSON_GetArraySize(toks);
        for (int32_t i = 0; i < n && *n_out < cap; i++) {
            fpi_remote_pos *pos = &out[*n_out];
            memset(pos, 0, sizeof *pos);
            const cJSON *tk = cJSON_GetArrayItem(toks, i);
            pos->token = cJSON_IsString(tk) ? text_id(tk->valuestring, lookup, ud, n_vocab) : -1;
            if (pos->token >= 0 && (pos->token & FPI_REMOTE_AMBIGUOUS)) { pos->token &= ~FPI_REMOTE_AMBIGUOUS; pos->ambiguous = true; }
            const cJSON *m = cJSON_GetArrayItem(tops, i), *t;
            cJSON_ArrayForEach(t, m) {
                float v;
                int32_t id = text_id(t->string, lookup, ud, n_vocab);
                if (id >= 0) id &= ~FPI_REMOTE_AMBIGUOUS;   /* the mass goes to the first token with that text */
                if (id >= 0 && logprob_of(t, &v)) top_add(pos, id, v);
            }
            if (pos->token < 0 || pos->n_top == 0) break;
            (*n_out)++;
        }
    }
    if (*n_out == 0) {
        snprintf(msg, msg_cap, "the server returned no usable log-probabilities (it must report the top %s)",
                 kind == FPI_REMOTE_LLAMA ? "n_probs with token ids" : "logprobs");
        goto done;
    }
    /* descending, as the core expects of a top list */
    for (int32_t i = 0; i < *n_out; i++) {
        fpi_remote_pos *pos = &out[i];
        for (int32_t a = 1; a < pos->n_top; a++)
            for (int32_t b = a; b > 0 && pos->top[b].logprob > pos->top[b - 1].logprob; b--) {
                fp_logprob x = pos->top[b]; pos->top[b] = pos->top[b - 1]; pos->top[b - 1] = x;
            }
    }
    st = FP_OK;
done:
    cJSON_Delete(root);
    return st;
}

void fpi_remote_row(const fpi_remote_pos *pos, int32_t n_vocab, float *row)
{
    double sum = 0.0;
    int32_t n = 0;
    for (int32_t j = 0; j < pos->n_top; j++) { sum += exp((double)pos->top[j].logprob); n++; }
    double rest = 1.0 - sum;
    /* the mass the server did not itemise, spread evenly over the other tokens
     * (fork detection and the word-end mass see it; cloud.c never seeds or
     * extends a path with one of them: fpi_row_floor) */
    float tail = rest > 1e-7 && n < n_vocab ? (float)log(rest / (double)(n_vocab - n)) : -INFINITY;
    if (pos->n_top > 0 && tail >= pos->top[pos->n_top - 1].logprob) tail = nextafterf(pos->top[pos->n_top - 1].logprob, -INFINITY);
    for (int32_t t = 0; t < n_vocab; t++) row[t] = tail;
    for (int32_t j = 0; j < pos->n_top; j++) row[pos->top[j].token] = pos->top[j].logprob;
}
