/*
 * oai.h — Forkpoint as a back end: the OpenAI-compatible API (/v1/models,
 * /v1/completions, /v1/chat/completions) and llama.cpp's server API
 * (/completion, /tokenize, /detokenize), so that mikupad, SillyTavern,
 * LLooM, logitloom and loom can use Forkpoint's engine.
 *
 *   oai_parse.c  request bodies -> srv_oai_req (pure functions, fuzzed)
 *   oai.c        routes (handler threads), the job (worker thread), replies
 *
 * Threading as everywhere in the server: handler threads parse and queue one
 * JOB_OAI; the worker tokenizes, generates with the core's fp_gen and
 * renders the reply. A streamed reply goes through a bounded queue of
 * server-sent events (srv_oai_stream) that the handler thread drains and
 * writes as they come; a client that goes away stops the generation.
 */
#ifndef FORKPOINT_OAI_H
#define FORKPOINT_OAI_H

#include "server/serve.h"

#define SRV_OAI_MAX_STOP    16     /* stop strings (OpenAI allows 4, llama.cpp more) */
#define SRV_OAI_MAX_PROMPTS 16     /* prompts in one batched /v1/completions */
#define SRV_OAI_MAX_N       16     /* choices per prompt */
#define SRV_OAI_QUEUE       64     /* events a stream holds before the worker waits */
#define SRV_OAI_STALL_MS    30000  /* a client that reads nothing this long is dropped */
#define SRV_OAI_SLICE       8      /* tokens a completion takes before the worker serves the next lane */

typedef enum srv_oai_api {
    OAI_COMPLETIONS = 0,   /* POST /v1/completions */
    OAI_CHAT,              /* POST /v1/chat/completions */
    OAI_LLAMA,             /* POST /completion (llama.cpp) */
    OAI_TOKENIZE,          /* POST /tokenize */
    OAI_DETOKENIZE         /* POST /detokenize */
} srv_oai_api;

/* One prompt: text (points into the request's JSON) or tokens (malloc'd). */
typedef struct srv_oai_prompt {
    const char *text;
    int32_t    *toks;
    int32_t     n_toks;
} srv_oai_prompt;

/* A parsed request. Strings point into the cJSON tree the parser was given
 * (kept alive by the handler until the job is done); arrays are malloc'd
 * and freed by srv_oai_req_free. */
typedef struct srv_oai_req {
    srv_oai_api api;
    srv_oai_prompt prompts[SRV_OAI_MAX_PROMPTS];
    int32_t n_prompts;
    fp_chat_message *msgs;        /* chat */
    char **owned;                 /* message texts joined from parts (chat) */
    int32_t n_msgs, n_owned;
    int32_t max_tokens;           /* -1: until the end or a full context */
    float   temperature, top_p, min_p, repeat_penalty;
    int32_t top_k, repeat_last_n;
    bool    has_seed;
    uint32_t seed;
    const char *stop[SRV_OAI_MAX_STOP];
    int32_t n_stop;
    int32_t n;                    /* choices */
    int32_t logprobs;             /* alternatives per token; -1 = no log-probabilities */
    bool    echo, stream, post_sampling, include_usage, return_tokens, ignore_eos;
    bool    tokens_as_ids;        /* vLLM's return_tokens_as_token_ids: tokens spelled "token_id:N" */
    bool    add_special, with_pieces; /* tokenize */
    int32_t *bias_tok;            /* logit_bias entries */
    float   *bias_val;
    int32_t  n_bias;
    const char *model;            /* as the client named it, or NULL */
    const char *ignored[8];       /* lenient: the first unknown field names, ignored */
    int32_t n_ignored;
} srv_oai_req;

/* Parses a request body (already a cJSON object from srv_parse_body) for
 * api. max_logprobs is the server's cap (--max-logprobs); lenient
 * (--lenient-fields) ignores unknown field names instead of refusing them,
 * listing them in req->ignored. Returns 0, or the
 * HTTP status (400) with err naming the field and what is wrong; *param_out
 * (if non-NULL) gets the offending field's name for OpenAI's error shape. */
int  srv_oai_parse(srv_oai_api api, const void *cjson_obj, int32_t max_logprobs, bool lenient, srv_oai_req *req,
                   const char **param_out, char *err, size_t cap);
void srv_oai_req_free(srv_oai_req *req);

/* http.c's hook: serves the request when uri is one of this API's paths
 * (returning true with *status set), else returns false. Access (token,
 * Host) has been checked; the Origin check is done here. */
bool srv_oai_route(srv_app *app, struct mg_connection *c, const char *method, const char *uri, int *status);
/* sessions.c's hook: runs a JOB_OAI on the worker thread. */
void srv_oai_exec(srv_app *app, srv_job *job);

#endif /* FORKPOINT_OAI_H */
