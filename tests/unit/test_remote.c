/*
 * test_remote.c — the remote back end's pure parts (src/core/remote_parse.c):
 * the request Forkpoint sends, the replies of llama-server and of an
 * OpenAI-compatible server parsed into top lists, a logits row whose
 * unlisted share makes "other" = 1 - the listed mass; and fp_engine_new
 * refusing a bad or unreachable back end with one line. The protocol against
 * a real server is tests/api/remote_test.mjs.
 */
#include "core/internal.h"
#include "harness.h"

#include <cjson/cJSON.h>
#include <math.h>

static int32_t lookup(void *ud, const char *s) {
    (void)ud;
    if (!strcmp(s, "a")) return 3;
    if (!strcmp(s, " b")) return 4 | FPI_REMOTE_AMBIGUOUS;
    if (!strcmp(s, "c")) return 5;
    return -1;
}

int main(void) {
    char msg[200];
    fpi_remote_pos out[4];
    int32_t n;

    TEST("llama-server reply: positions, ids, descending tops");
    const char *ll = "{\"completion_probabilities\":[{\"id\":7,\"logprob\":-0.5,\"top_logprobs\":["
                     "{\"id\":9,\"logprob\":-2.0},{\"id\":7,\"logprob\":-0.5},{\"id\":7,\"logprob\":-0.5}]},"
                     "{\"id\":2,\"top_logprobs\":[{\"id\":2,\"logprob\":-0.1}]}]}";
    CHECK(fpi_remote_parse(FPI_REMOTE_LLAMA, ll, strlen(ll), 16, NULL, NULL, out, 4, &n, msg, sizeof msg) == FP_OK);
    CHECK(n == 2 && out[0].token == 7 && out[0].n_top == 2 && out[1].token == 2);
    CHECK(out[0].top[0].token == 7 && out[0].top[1].token == 9);   /* sorted, the duplicate dropped */

    TEST("the row: listed tokens at their log-probabilities, the rest sharing 1 - their mass");
    float row[16];
    fpi_remote_row(&out[0], 16, row);
    double sum = 0, listed = exp(-0.5) + exp(-2.0);
    for (int t = 0; t < 16; t++) sum += exp(row[t]);
    CHECKF(fabs(sum - 1.0) < 1e-5, "sum %g", sum);
    CHECK(row[7] == -0.5f && row[9] == -2.0f);
    CHECKF(fabs(exp(row[0]) * 14 - (1.0 - listed)) < 1e-6, "unlisted share %g", exp(row[0]));
    fpi_remote_pos full = { .token = 1, .n_top = 2, .top = { { 1, logf(0.75f) }, { 2, logf(0.25f) } } };
    fpi_remote_row(&full, 16, row);
    CHECK(isinf(row[0]) && row[0] < 0);   /* all the mass listed: nothing for the rest */

    TEST("OpenAI legacy reply: texts to ids, token_id:N, an ambiguous text ends the keyed chain");
    const char *oa = "{\"choices\":[{\"logprobs\":{\"tokens\":[\"a\",\" b\",\"c\"],\"token_logprobs\":[-0.1,-0.2,-0.3],"
                     "\"top_logprobs\":[{\"a\":-0.1,\"token_id:11\":-3,\"zz\":-4},{\" b\":-0.2},{\"c\":-0.3}]}}]}";
    CHECK(fpi_remote_parse(FPI_REMOTE_OPENAI, oa, strlen(oa), 16, lookup, NULL, out, 4, &n, msg, sizeof msg) == FP_OK);
    CHECK(n == 3 && out[0].token == 3 && out[0].n_top == 2 && out[0].top[1].token == 11);
    CHECK(out[1].token == 4 && out[1].ambiguous && !out[0].ambiguous);

    TEST("refusals carry the server's message or say what is missing");
    const char *er = "{\"error\":{\"message\":\"Requested sample logprobs of 30, which is greater than max allowed: 20\"}}";
    CHECK(fpi_remote_parse(FPI_REMOTE_OPENAI, er, strlen(er), 16, lookup, NULL, out, 4, &n, msg, sizeof msg) == FP_ERR_IO);
    CHECKF(strstr(msg, "greater than max allowed: 20") != NULL, "%s", msg);
    const char *nl = "{\"choices\":[{\"text\":\"x\",\"logprobs\":null}]}";
    CHECK(fpi_remote_parse(FPI_REMOTE_OPENAI, nl, strlen(nl), 16, lookup, NULL, out, 4, &n, msg, sizeof msg) == FP_ERR_IO && n == 0);
    CHECKF(strstr(msg, "no logprobs") != NULL, "%s", msg);
    CHECK(fpi_remote_parse(FPI_REMOTE_LLAMA, "<html>", 6, 16, NULL, NULL, out, 4, &n, msg, sizeof msg) == FP_ERR_IO);
    CHECKF(strstr(msg, "not JSON") != NULL, "%s", msg);
    const char *oor = "{\"completion_probabilities\":[{\"id\":99,\"top_logprobs\":[{\"id\":99,\"logprob\":-1}]}]}";
    CHECK(fpi_remote_parse(FPI_REMOTE_LLAMA, oor, strlen(oor), 16, NULL, NULL, out, 4, &n, msg, sizeof msg) == FP_ERR_IO);

    TEST("requests: the dialects' field names, logit_bias in each shape");
    float bias[16] = {0};
    bias[5] = 2.5f;
    bias[6] = -200.0f;   /* clamped to the APIs' -100 */
    int32_t toks[3] = { 1, 2, 3 };
    char *r = fpi_remote_request(FPI_REMOTE_LLAMA, NULL, toks, 3, 20, 12, bias, 16, false);
    cJSON *j = cJSON_Parse(r);
    CHECK(j && cJSON_GetArraySize(cJSON_GetObjectItem(j, "prompt")) == 3);
    CHECK(cJSON_GetObjectItem(j, "n_probs")->valueint == 20 && cJSON_GetObjectItem(j, "n_predict")->valueint == 12);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(j, "cache_prompt")) && cJSON_GetObjectItem(j, "temperature")->valuedouble == 0);
    cJSON *lb = cJSON_GetObjectItem(j, "logit_bias");
    CHECK(cJSON_IsArray(lb) && cJSON_GetArraySize(lb) == 2 && cJSON_GetArrayItem(cJSON_GetArrayItem(lb, 1), 1)->valuedouble == -100);
    cJSON_Delete(j); free(r);
    r = fpi_remote_request(FPI_REMOTE_OPENAI, "m", toks, 3, 5, 4, bias, 16, true);
    j = cJSON_Parse(r);
    CHECK(j && !strcmp(cJSON_GetObjectItem(j, "model")->valuestring, "m"));
    CHECK(cJSON_GetObjectItem(j, "logprobs")->valueint == 5 && cJSON_GetObjectItem(j, "max_tokens")->valueint == 4);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(j, "return_tokens_as_token_ids")));
    CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "logit_bias"), "5")->valuedouble == 2.5);
    cJSON_Delete(j); free(r);
    bias[7] = -INFINITY;   /* a ban (llama.cpp's false, ignore_eos) travels as -100, NaN not at all */
    bias[8] = NAN;
    r = fpi_remote_request(FPI_REMOTE_OPENAI, "m", toks, 3, 5, 4, bias, 16, true);
    j = cJSON_Parse(r);
    lb = cJSON_GetObjectItem(j, "logit_bias");
    CHECK(cJSON_GetArraySize(lb) == 3 && cJSON_GetObjectItem(lb, "7")->valuedouble == -100 && !cJSON_GetObjectItem(lb, "8"));
    cJSON_Delete(j); free(r);
    CHECK(fpi_remote_bias_value(250.0f) == 100.0f && fpi_remote_bias_value(-3.5f) == -3.5f && fpi_remote_bias_value(NAN) == 0.0f);

    TEST("fp_engine_new: an unknown, malformed or unreachable back end is one line");
    fp_error err = {0};
    fp_model_params mp = fp_model_default_params();
    mp.vocab_only = true;
    fp_model *m = fp_model_load(h_model_path("stories260K.gguf"), &mp, &err);
    CHECK(m != NULL);
    if (m) {
        fp_engine_params ep = fp_engine_default_params();
        ep.backend = "ollama:http://x";
        CHECK(!fp_engine_new(m, &ep, &err) && err.code == FP_ERR_ARG && strstr(err.message, "unknown back end"));
        ep.backend = "llama-server:localhost:8080";
        CHECK(!fp_engine_new(m, &ep, &err) && err.code == FP_ERR_ARG && strstr(err.message, "http://"));
        ep.backend = "llama-server:http://127.0.0.1:9";
        ep.remote_timeout_ms = 2000;
        CHECK(!fp_engine_new(m, &ep, &err) && err.code == FP_ERR_IO && strstr(err.message, "cannot reach the llama-server"));
        ep.backend = NULL;
        CHECK(!fp_engine_new(m, &ep, &err) && err.code == FP_ERR_MODEL);   /* local needs weights */
        fp_model_free(m);
    }
    return h_finish();
}
