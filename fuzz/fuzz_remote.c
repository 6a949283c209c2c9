/*
 * fuzz_remote.c — the replies of a remote engine (src/core/remote_parse.c):
 * whatever a llama-server, an OpenAI-compatible server or something in
 * between sends back must be parsed into sane top lists or refused with a
 * message, and turned into a logits row the core can use.
 *
 * The first input byte picks the dialect (bit 0: openai) and the vocabulary
 * size (the rest: 1..128 tokens); the rest is the reply. Token texts map to
 * ids by a toy lookup: "tN" is token N, "dN" token N flagged ambiguous.
 *
 * Invariants of an accepted reply: 1..cap positions, every token id and top
 * id in the vocabulary, each top list non-empty, duplicate-free, descending,
 * its log-probabilities finite and <= 0; fpi_remote_row gives every listed
 * token its log-probability and every other one no more than the smallest
 * listed. A refused one has a message. The request builder's JSON parses.
 */
#include "fuzz_common.h"
#include "core/internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int32_t toy_lookup(void *ud, const char *s) {
    int32_t V = *(const int32_t *)ud;
    if ((s[0] != 't' && s[0] != 'd') || !s[1]) return -1;
    char *end;
    long v = strtol(s + 1, &end, 10);
    if (*end || v < 0 || v >= V) return -1;
    return (int32_t)v | (s[0] == 'd' ? FPI_REMOTE_AMBIGUOUS : 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    fpi_remote_kind kind = (data[0] & 1) ? FPI_REMOTE_OPENAI : FPI_REMOTE_LLAMA;
    int32_t V = 1 + (data[0] >> 1);
    static fpi_remote_pos out[8];
    int32_t n = -1;
    char msg[200];
    fp_status st = fpi_remote_parse(kind, (const char *)data + 1, size - 1, V, toy_lookup, &V, out, 8, &n, msg, sizeof msg);
    if (st != FP_OK) {
        FZ_CHECK(msg[0], "refused without a message");
        FZ_CHECK(n == 0, "refused with %d positions", n);
    } else {
        FZ_CHECK(n >= 1 && n <= 8, "%d positions", n);
        float row[128];
        for (int32_t i = 0; i < n; i++) {
            const fpi_remote_pos *p = &out[i];
            FZ_CHECK(p->token >= 0 && p->token < V, "token %d of %d", p->token, V);
            FZ_CHECK(p->n_top >= 1 && p->n_top <= FPI_REMOTE_MAX_TOP, "n_top %d", p->n_top);
            for (int32_t j = 0; j < p->n_top; j++) {
                FZ_CHECK(p->top[j].token >= 0 && p->top[j].token < V, "top id %d", p->top[j].token);
                FZ_CHECK(isfinite(p->top[j].logprob) && p->top[j].logprob <= 0, "logprob %g", p->top[j].logprob);
                if (j) FZ_CHECK(p->top[j].logprob <= p->top[j - 1].logprob, "not descending at %d", j);
                for (int32_t k = 0; k < j; k++) FZ_CHECK(p->top[k].token != p->top[j].token, "duplicate %d", p->top[j].token);
            }
            fpi_remote_row(p, V, row);
            float lo = p->top[p->n_top - 1].logprob;
            for (int32_t j = 0; j < p->n_top; j++) FZ_CHECK(row[p->top[j].token] == p->top[j].logprob, "row of a listed token");
            bool listed[128] = {0};
            for (int32_t j = 0; j < p->n_top; j++) listed[p->top[j].token] = true;
            for (int32_t t = 0; t < V; t++)
                if (!listed[t]) FZ_CHECK(!isnan(row[t]) && row[t] < lo, "unlisted %d at %g, the listed down to %g", t, row[t], lo);
        }
    }
    int32_t toks[3] = { 0, V - 1, V / 2 };
    float bias[128] = {0};
    bias[V - 1] = (float)(data[0] & 7) - 3.0f;
    char *req = fpi_remote_request(kind, "m", toks, 3, 1 + (data[0] & 15), 1 + (data[0] >> 4), bias, V, data[0] & 2);
    FZ_CHECK(req != NULL, "no request");
    cJSON *j = cJSON_Parse(req ? req : "");
    FZ_CHECK(j && cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(j, "prompt")), "the request is not JSON with a prompt");
    cJSON_Delete(j);
    free(req);
    return 0;
}
