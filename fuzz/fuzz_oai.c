/*
 * fuzz_oai.c — the bodies of the OpenAI-compatible and llama.cpp-compatible
 * API (src/server/oai_parse.c), through what oai.c runs on them before a job
 * reaches the engine: srv_parse_body (size, NUL, UTF-8, depth, trailing
 * data), then srv_oai_parse for every endpoint.
 *
 * The first input byte picks the cap on log-probabilities (1..128, as
 * --max-logprobs) and, in its top bit, --lenient-fields; the rest is the body.
 *
 * Invariants of an accepted request: values in the documented ranges
 * (temperature 0..2, top_p (0,1], n 1..16, logprobs -1..cap, max_tokens
 * -1 or >= 0), at least one prompt or message, stop strings non-empty; a
 * refused one has status 400 and a non-empty message; srv_oai_req_free
 * leaves nothing behind (LeakSanitizer).
 */
#include "fuzz_common.h"
#include "server/oai.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int32_t cap = 1 + (data[0] & 0x7f);
    bool lenient = data[0] & 0x80;
    const char *body = (const char *)data + 1;
    size_t n = size - 1;
    char err[200];
    void *j = NULL;
    if (srv_parse_body(body, n, NULL, false, &j, err, sizeof err) != 0) return 0;
    for (int api = OAI_COMPLETIONS; api <= OAI_DETOKENIZE; api++) {
        srv_oai_req r;
        const char *param = NULL;
        err[0] = '\0';
        int st = srv_oai_parse((srv_oai_api)api, j, cap, lenient, &r, &param, err, sizeof err);
        if (st) {
            FZ_CHECK(st == 400 && err[0], "refused without a message (status %d)", st);
        } else if (api <= OAI_LLAMA) {
            FZ_CHECK(r.temperature >= 0 && r.temperature <= 2, "temperature %g", r.temperature);
            FZ_CHECK(r.top_p > 0 && r.top_p <= 1, "top_p %g", r.top_p);
            FZ_CHECK(r.min_p >= 0 && r.min_p < 1, "min_p %g", r.min_p);
            FZ_CHECK(r.n >= 1 && r.n <= SRV_OAI_MAX_N, "n %d", r.n);
            FZ_CHECK(r.logprobs >= -1 && r.logprobs <= cap, "logprobs %d (cap %d)", r.logprobs, cap);
            FZ_CHECK(r.max_tokens >= -1, "max_tokens %d", r.max_tokens);
            FZ_CHECK(api == OAI_CHAT ? r.n_msgs >= 1 : (r.n_prompts >= 1 && r.n_prompts <= SRV_OAI_MAX_PROMPTS), "no prompt");
            for (int32_t i = 0; i < r.n_stop; i++) FZ_CHECK(r.stop[i] && r.stop[i][0], "empty stop string");
            for (int32_t i = 0; i < r.n_msgs; i++) FZ_CHECK(r.msgs[i].role && r.msgs[i].content, "message %d", i);
            for (int32_t i = 0; i < r.n_bias; i++)
                FZ_CHECK(r.bias_tok[i] >= 0 && (isinf(r.bias_val[i]) || fabsf(r.bias_val[i]) <= 100), "bias %d", i);
        }
        srv_oai_req_free(&r);
    }
    cJSON_Delete(j);
    return 0;
}
