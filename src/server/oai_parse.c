/*
 * oai_parse.c — strict parsing of OpenAI-compatible and llama.cpp-server
 * request bodies into srv_oai_req.
 *
 * Why strict, and how strict: a typo ("max_token") must be a 400 naming the
 * field, not a silently different request (as reqparse.c does for the
 * session API). But real clients send more than they need: the openai
 * client and SillyTavern send "user", "frequency_penalty": 0, mikupad sends
 * every llama.cpp sampler at its default. So every field has one of three
 * treatments, listed in the tables below and in docs/API.md:
 *   USE      implemented;
 *   IGNORE   documented by the API and meaningless here (metadata such as
 *            "user", or a knob whose own switch is off): accepted, unused;
 *   NEUTRAL  a sampler Forkpoint does not have: accepted only at the value
 *            that turns it off ("frequency_penalty": 0), else a 400 saying so.
 * Any other name is a 400 naming it (with --lenient-fields, for clients
 * such as SillyTavern that send one bag of every back end's fields, it is
 * ignored instead). Types and ranges are checked here, so
 * the worker only ever sees valid values.
 *
 * Cost: O(fields x table) name lookups and one pass over each array.
 */
#include "server/oai.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { USE = 0, IGNORE, NEUTRAL };
/* what "off" means for a NEUTRAL field */
enum { N_NUM = 0, N_FALSE, N_EMPTY };

typedef struct field { const char *name; int how; int neutral; double value; } field;

/* the tables leave neutral/value out where they do not apply (zero) */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

static const field k_completions[] = {
    {"model", USE}, {"prompt", USE}, {"max_tokens", USE}, {"temperature", USE}, {"top_p", USE},
    {"n", USE}, {"stream", USE}, {"stream_options", USE}, {"logprobs", USE}, {"echo", USE},
    {"stop", USE}, {"logit_bias", USE}, {"seed", USE}, {"user", IGNORE}, {"return_tokens_as_token_ids", USE},
    {"presence_penalty", NEUTRAL, N_NUM, 0}, {"frequency_penalty", NEUTRAL, N_NUM, 0},
    {"best_of", NEUTRAL, N_NUM, 1}, {"suffix", NEUTRAL, N_EMPTY},
    /* vLLM's extensions, which SillyTavern and others send */
    {"top_k", USE}, {"min_p", USE}, {"repetition_penalty", USE},
    {NULL}
};
static const field k_chat[] = {
    {"model", USE}, {"messages", USE}, {"max_tokens", USE}, {"max_completion_tokens", USE},
    {"temperature", USE}, {"top_p", USE}, {"n", USE}, {"stream", USE}, {"stream_options", USE},
    {"stop", USE}, {"logit_bias", USE}, {"logprobs", USE}, {"top_logprobs", USE}, {"seed", USE},
    {"user", IGNORE}, {"metadata", IGNORE}, {"store", IGNORE}, {"service_tier", IGNORE},
    {"prompt_cache_key", IGNORE}, {"safety_identifier", IGNORE}, {"parallel_tool_calls", IGNORE},
    {"presence_penalty", NEUTRAL, N_NUM, 0}, {"frequency_penalty", NEUTRAL, N_NUM, 0},
    {"tools", NEUTRAL, N_EMPTY}, {"tool_choice", NEUTRAL, N_EMPTY}, {"functions", NEUTRAL, N_EMPTY},
    {"function_call", NEUTRAL, N_EMPTY}, {"response_format", USE}, {"modalities", USE},
    {"top_k", USE}, {"min_p", USE}, {"repetition_penalty", USE},
    {NULL}
};
/* llama.cpp tools/server/README.md, POST /completion */
static const field k_llama[] = {
    {"prompt", USE}, {"temperature", USE}, {"top_k", USE}, {"top_p", USE}, {"min_p", USE},
    {"n_predict", USE}, {"stream", USE}, {"stop", USE}, {"repeat_penalty", USE},
    {"repeat_last_n", USE}, {"seed", USE}, {"ignore_eos", USE}, {"logit_bias", USE},
    {"n_probs", USE}, {"post_sampling_probs", USE}, {"return_tokens", USE},
    {"cache_prompt", IGNORE}, {"id_slot", IGNORE}, {"n_keep", IGNORE}, {"min_keep", IGNORE},
    {"samplers", IGNORE}, {"t_max_predict_ms", IGNORE}, {"timings_per_token", IGNORE},
    {"response_fields", IGNORE}, {"return_progress", IGNORE}, {"penalize_nl", IGNORE},
    {"n_cmpl", NEUTRAL, N_NUM, 1}, {"n_indent", NEUTRAL, N_NUM, 0},
    {"dynatemp_range", NEUTRAL, N_NUM, 0}, {"dynatemp_exponent", IGNORE},
    {"typical_p", NEUTRAL, N_NUM, 1}, {"tfs_z", NEUTRAL, N_NUM, 1}, {"top_n_sigma", NEUTRAL, N_NUM, -1},
    {"presence_penalty", NEUTRAL, N_NUM, 0}, {"frequency_penalty", NEUTRAL, N_NUM, 0},
    {"dry_multiplier", NEUTRAL, N_NUM, 0}, {"dry_base", IGNORE}, {"dry_allowed_length", IGNORE},
    {"dry_penalty_last_n", IGNORE}, {"dry_sequence_breakers", IGNORE},
    {"xtc_probability", NEUTRAL, N_NUM, 0}, {"xtc_threshold", IGNORE},
    {"mirostat", NEUTRAL, N_NUM, 0}, {"mirostat_tau", IGNORE}, {"mirostat_eta", IGNORE},
    {"grammar", NEUTRAL, N_EMPTY}, {"json_schema", NEUTRAL, N_EMPTY}, {"image_data", NEUTRAL, N_EMPTY},
    {"lora", NEUTRAL, N_EMPTY}, {"multimodal_data", NEUTRAL, N_EMPTY},
    {NULL}
};
static const field k_tokenize[] = { {"content", USE}, {"add_special", USE}, {"with_pieces", USE},
                                    {"parse_special", NEUTRAL, N_NUM, 1}, {NULL} };
static const field k_detokenize[] = { {"tokens", USE}, {NULL} };

static int fail(char *err, size_t cap, const char **param, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int fail(char *err, size_t cap, const char **param, const char *name, const char *fmt, ...)
{
    if (param) *param = name;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
    return 400;
}

/* True when v is the "off" value of a NEUTRAL field (null always is). */
static bool is_neutral(const cJSON *v, const field *f)
{
    if (cJSON_IsNull(v)) return true;
    switch (f->neutral) {
    case N_NUM:   return (cJSON_IsNumber(v) && v->valuedouble == f->value) ||
                         (cJSON_IsBool(v) && (cJSON_IsTrue(v) ? 1.0 : 0.0) == f->value);
    case N_FALSE: return cJSON_IsFalse(v);
    default:      return (cJSON_IsString(v) && v->valuestring[0] == '\0') ||
                         ((cJSON_IsArray(v) || cJSON_IsObject(v)) && v->child == NULL);
    }
}

/* Numbers: 1 found (in range), 0 absent or null, 400 otherwise. */
static int num(const cJSON *o, const char *name, double lo, double hi, double *out, char *err, size_t cap,
               const char **param)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return fail(err, cap, param, name, "\"%s\" must be a number", name);
    if (!(v->valuedouble >= lo && v->valuedouble <= hi))
        return fail(err, cap, param, name, "\"%s\" must be in %g..%g (got %g)", name, lo, hi, v->valuedouble);
    *out = v->valuedouble;
    return 1;
}

static int integer(const cJSON *o, const char *name, double lo, double hi, int64_t *out, char *err, size_t cap,
                   const char **param)
{
    double d = 0;
    int r = num(o, name, lo, hi, &d, err, cap, param);
    if (r != 1) return r;
    if (d != floor(d)) return fail(err, cap, param, name, "\"%s\" must be an integer", name);
    *out = (int64_t)d;
    return 1;
}

static int boolean(const cJSON *o, const char *name, bool *out, char *err, size_t cap, const char **param)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsBool(v)) return fail(err, cap, param, name, "\"%s\" must be true or false", name);
    *out = cJSON_IsTrue(v);
    return 1;
}

/* An array of token ids (each 0..2^31-1; the worker checks the vocabulary). */
static int tokens(const cJSON *a, const char *name, int32_t **out, int32_t *n_out, char *err, size_t cap,
                  const char **param)
{
    int n = cJSON_GetArraySize(a);
    int32_t *t = malloc(sizeof *t * (size_t)(n > 0 ? n : 1));
    if (!t) return fail(err, cap, param, name, "out of memory");
    int i = 0;
    for (const cJSON *x = a->child; x; x = x->next, i++) {
        if (!cJSON_IsNumber(x) || x->valuedouble != floor(x->valuedouble) || !(x->valuedouble >= 0 && x->valuedouble <= INT32_MAX)) {
            free(t);
            return fail(err, cap, param, name, "\"%s\" must hold token ids (integers >= 0)", name);
        }
        t[i] = (int32_t)x->valuedouble;
    }
    *out = t;
    *n_out = n;
    return 0;
}

/* "prompt": a string, an array of token ids, or (OpenAI) an array of either. */
static int prompts(const cJSON *o, srv_oai_req *r, char *err, size_t cap, const char **param)
{
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "prompt");
    if (!p) return fail(err, cap, param, "prompt", "\"prompt\" is required");
    if (cJSON_IsString(p)) {
        r->prompts[0].text = p->valuestring;
        r->n_prompts = 1;
        return 0;
    }
    if (!cJSON_IsArray(p) || !p->child)
        return fail(err, cap, param, "prompt", "\"prompt\" must be a string, an array of token ids, or an array of those");
    if (cJSON_IsNumber(p->child)) {
        r->n_prompts = 1;
        return tokens(p, "prompt", &r->prompts[0].toks, &r->prompts[0].n_toks, err, cap, param);
    }
    if (r->api == OAI_LLAMA) return fail(err, cap, param, "prompt", "\"prompt\" must be a string or an array of token ids");
    for (const cJSON *x = p->child; x; x = x->next) {
        if (r->n_prompts == SRV_OAI_MAX_PROMPTS)
            return fail(err, cap, param, "prompt", "at most %d prompts in one request", SRV_OAI_MAX_PROMPTS);
        srv_oai_prompt *q = &r->prompts[r->n_prompts++];
        if (cJSON_IsString(x)) q->text = x->valuestring;
        else if (cJSON_IsArray(x) && x->child) {
            int st = tokens(x, "prompt", &q->toks, &q->n_toks, err, cap, param);
            if (st) return st;
        } else return fail(err, cap, param, "prompt", "each prompt must be a string or a non-empty array of token ids");
    }
    return 0;
}

/* "stop": a string or an array of strings (empty strings are refused). */
static int stops(const cJSON *o, srv_oai_req *r, char *err, size_t cap, const char **param)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "stop");
    if (!s || cJSON_IsNull(s)) return 0;
    if (cJSON_IsString(s)) {
        if (!s->valuestring[0]) return fail(err, cap, param, "stop", "\"stop\" must not be empty");
        r->stop[r->n_stop++] = s->valuestring;
        return 0;
    }
    if (!cJSON_IsArray(s)) return fail(err, cap, param, "stop", "\"stop\" must be a string or an array of strings");
    for (const cJSON *x = s->child; x; x = x->next) {
        if (!cJSON_IsString(x) || !x->valuestring[0])
            return fail(err, cap, param, "stop", "\"stop\" must hold non-empty strings");
        if (strlen(x->valuestring) > 256) return fail(err, cap, param, "stop", "a stop string is at most 256 bytes");
        if (r->n_stop == SRV_OAI_MAX_STOP) return fail(err, cap, param, "stop", "at most %d stop strings", SRV_OAI_MAX_STOP);
        r->stop[r->n_stop++] = x->valuestring;
    }
    return 0;
}

/* "logit_bias": OpenAI's {"token id": bias -100..100}; llama.cpp also takes
 * [[id, bias or false], ...] (false: never). */
static int biases(const cJSON *o, srv_oai_req *r, char *err, size_t cap, const char **param)
{
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(o, "logit_bias");
    if (!b || cJSON_IsNull(b)) return 0;
    bool arr = cJSON_IsArray(b) && r->api == OAI_LLAMA;
    if (!cJSON_IsObject(b) && !arr)
        return fail(err, cap, param, "logit_bias", "\"logit_bias\" must be an object of token id -> bias");
    int n = cJSON_GetArraySize(b);
    if (n > 4096) return fail(err, cap, param, "logit_bias", "at most 4096 logit_bias entries");
    r->bias_tok = malloc(sizeof(int32_t) * (size_t)(n > 0 ? n : 1));
    r->bias_val = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    if (!r->bias_tok || !r->bias_val) return fail(err, cap, param, "logit_bias", "out of memory");
    for (const cJSON *x = b->child; x; x = x->next) {
        double id, v;
        if (arr) {
            if (!cJSON_IsArray(x) || cJSON_GetArraySize(x) != 2 || !cJSON_IsNumber(x->child) ||
                !(cJSON_IsNumber(x->child->next) || cJSON_IsFalse(x->child->next)))
                return fail(err, cap, param, "logit_bias", "\"logit_bias\" entries must be [token id, bias or false]");
            id = x->child->valuedouble;
            v = cJSON_IsFalse(x->child->next) ? -INFINITY : x->child->next->valuedouble;
        } else {
            /* OpenAI's keys are token ids as decimal strings: digits only
             * (no sign, exponent or spaces), at most 10 of them */
            size_t kl = strspn(x->string, "0123456789");
            if (kl == 0 || kl > 10 || x->string[kl] || !cJSON_IsNumber(x))
                return fail(err, cap, param, "logit_bias", "\"logit_bias\" keys must be token ids and values numbers");
            id = strtod(x->string, NULL);
            v = x->valuedouble;
        }
        if (id != floor(id) || !(id >= 0 && id <= INT32_MAX))
            return fail(err, cap, param, "logit_bias", "\"logit_bias\": %g is not a token id", id);
        if (!(v >= -100 && v <= 100) && !(arr && v == -INFINITY))
            return fail(err, cap, param, "logit_bias", "\"logit_bias\" values must be in -100..100");
        r->bias_tok[r->n_bias] = (int32_t)id;
        r->bias_val[r->n_bias++] = (float)v;
    }
    return 0;
}

/* One chat message's content: a string, or an array of {"type":"text","text":...} parts. */
static int content(const cJSON *c, srv_oai_req *r, const char **out, char *err, size_t cap, const char **param)
{
    if (cJSON_IsString(c)) { *out = c->valuestring; return 0; }
    if (cJSON_IsNull(c)) { *out = ""; return 0; }
    if (!cJSON_IsArray(c)) return fail(err, cap, param, "messages", "a message's \"content\" must be a string or an array of text parts");
    size_t len = 0;
    for (const cJSON *p = c->child; p; p = p->next) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(p, "type");
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(p, "text");
        if (!cJSON_IsObject(p) || !cJSON_IsString(t) || strcmp(t->valuestring, "text") != 0 || !cJSON_IsString(x))
            return fail(err, cap, param, "messages", "only text content parts ({\"type\":\"text\",\"text\":...}) are supported");
        len += strlen(x->valuestring);
    }
    char *s = malloc(len + 1);
    if (!s) return fail(err, cap, param, "messages", "out of memory");
    size_t at = 0;
    for (const cJSON *p = c->child; p; p = p->next) {
        const char *x = cJSON_GetObjectItemCaseSensitive(p, "text")->valuestring;
        size_t n = strlen(x);
        memcpy(s + at, x, n);
        at += n;
    }
    s[at] = '\0';
    r->owned[r->n_owned++] = s;
    *out = s;
    return 0;
}

static int messages(const cJSON *o, srv_oai_req *r, char *err, size_t cap, const char **param)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "messages");
    if (!cJSON_IsArray(m) || !m->child) return fail(err, cap, param, "messages", "\"messages\" must be a non-empty array");
    int n = cJSON_GetArraySize(m);
    r->msgs = calloc((size_t)n, sizeof *r->msgs);
    r->owned = calloc((size_t)n, sizeof *r->owned);
    if (!r->msgs || !r->owned) return fail(err, cap, param, "messages", "out of memory");
    static const char *const roles[] = {"system", "developer", "user", "assistant", NULL};
    for (const cJSON *x = m->child; x; x = x->next) {
        if (!cJSON_IsObject(x)) return fail(err, cap, param, "messages", "each message must be an object");
        for (const cJSON *f = x->child; f; f = f->next)
            if (strcmp(f->string, "role") && strcmp(f->string, "content") && strcmp(f->string, "name"))
                return fail(err, cap, param, "messages", "unknown message field \"%s\" (role, content, name)", f->string);
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(x, "role");
        bool ok = false;
        for (int i = 0; cJSON_IsString(role) && roles[i] && !ok; i++) ok = strcmp(roles[i], role->valuestring) == 0;
        if (!ok) return fail(err, cap, param, "messages", "a message's \"role\" must be system, developer, user or assistant");
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(x, "content");
        if (!c) return fail(err, cap, param, "messages", "a message needs \"content\"");
        fp_chat_message *msg = &r->msgs[r->n_msgs++];
        /* "developer" is OpenAI's newer name for the system turn */
        msg->role = strcmp(role->valuestring, "developer") == 0 ? "system" : role->valuestring;
        int st = content(c, r, &msg->content, err, cap, param);
        if (st) return st;
    }
    return 0;
}

void srv_oai_req_free(srv_oai_req *r)
{
    for (int i = 0; i < r->n_prompts; i++) free(r->prompts[i].toks);
    for (int i = 0; i < r->n_owned; i++) free(r->owned[i]);
    free(r->owned);
    free(r->msgs);
    free(r->bias_tok);
    free(r->bias_val);
    memset(r, 0, sizeof *r);
}

/* The sampler fields every completion endpoint shares. */
static int samplers(const cJSON *o, srv_oai_req *r, char *err, size_t cap, const char **param)
{
    double d;
    int64_t i;
    int st;
    if ((st = num(o, "temperature", 0, 2, &d, err, cap, param)) > 1) return st;
    if (st == 1) r->temperature = (float)d;
    if ((st = num(o, "top_p", 0, 1, &d, err, cap, param)) > 1) return st;
    if (st == 1) r->top_p = d > 0 ? (float)d : 1e-9f;   /* 0: only the top token survives */
    if ((st = num(o, "min_p", 0, 0.999999, &d, err, cap, param)) > 1) return st;
    if (st == 1) r->min_p = (float)d;
    if ((st = integer(o, "top_k", -1, 1e6, &i, err, cap, param)) > 1) return st;
    if (st == 1) r->top_k = i < 0 ? 0 : (int32_t)i;   /* llama.cpp: <= 0 is off */
    const char *rp = r->api == OAI_LLAMA ? "repeat_penalty" : "repetition_penalty";
    if ((st = num(o, rp, 0.000001, 10, &d, err, cap, param)) > 1) return st;
    if (st == 1) r->repeat_penalty = (float)d;
    if ((st = integer(o, "repeat_last_n", -1, 4096, &i, err, cap, param)) > 1) return st;
    if (st == 1) r->repeat_last_n = i < 0 ? 4096 : (int32_t)i;
    if ((st = integer(o, "seed", -1, 4294967295.0, &i, err, cap, param)) > 1) return st;
    if (st == 1 && i >= 0) { r->has_seed = true; r->seed = (uint32_t)i; }   /* llama.cpp: -1 = random */
    if ((st = stops(o, r, err, cap, param))) return st;
    if ((st = biases(o, r, err, cap, param))) return st;
    if ((st = boolean(o, "stream", &r->stream, err, cap, param)) > 1) return st;
    return 0;
}

int srv_oai_parse(srv_oai_api api, const void *obj, int32_t max_logprobs, bool lenient, srv_oai_req *r,
                  const char **param, char *err, size_t cap)
{
    const cJSON *o = obj;
    memset(r, 0, sizeof *r);
    if (param) *param = NULL;
    r->api = api;
    r->max_tokens = api == OAI_COMPLETIONS ? 16 : -1;   /* OpenAI's legacy default; chat and llama.cpp: no limit */
    r->temperature = api == OAI_LLAMA ? 0.8f : 1.0f;    /* each API's documented default */
    r->top_p = api == OAI_LLAMA ? 0.95f : 1.0f;
    r->top_k = api == OAI_LLAMA ? 40 : 0;
    r->min_p = api == OAI_LLAMA ? 0.05f : 0.0f;
    r->repeat_penalty = 1.0f;
    r->repeat_last_n = 64;
    r->n = 1;
    r->logprobs = -1;
    r->add_special = true;
    if (!cJSON_IsObject(o)) return fail(err, cap, param, NULL, "the body must be a JSON object");
    const field *tab = api == OAI_COMPLETIONS ? k_completions : api == OAI_CHAT ? k_chat : api == OAI_LLAMA ? k_llama
                     : api == OAI_TOKENIZE ? k_tokenize : k_detokenize;
    for (const cJSON *f = o->child; f; f = f->next) {
        const field *k = NULL;
        for (const field *t = tab; t->name && !k; t++) if (strcmp(t->name, f->string) == 0) k = t;
        if (!k && lenient) {   /* --lenient-fields: a client that sends every back end's fields */
            if (r->n_ignored < (int32_t)(sizeof r->ignored / sizeof r->ignored[0])) r->ignored[r->n_ignored++] = f->string;
            continue;
        }
        if (!k) return fail(err, cap, param, f->string, "unknown field \"%s\" (--lenient-fields ignores such fields)", f->string);
        for (const cJSON *g = o->child; g != f; g = g->next)
            if (strcmp(g->string, f->string) == 0) return fail(err, cap, param, f->string, "field \"%s\" appears twice", f->string);
        if (k->how == NEUTRAL && !is_neutral(f, k))
            return fail(err, cap, param, f->string, "\"%s\" is not supported by Forkpoint (only its neutral value)", f->string);
    }
    int st;
    int64_t i;
    if (api == OAI_TOKENIZE) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "content");
        if (!cJSON_IsString(c)) return fail(err, cap, param, "content", "\"content\" must be a string");
        r->prompts[0].text = c->valuestring;
        r->n_prompts = 1;
        if ((st = boolean(o, "add_special", &r->add_special, err, cap, param)) > 1) return st;
        if ((st = boolean(o, "with_pieces", &r->with_pieces, err, cap, param)) > 1) return st;
        return 0;
    }
    if (api == OAI_DETOKENIZE) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "tokens");
        if (!cJSON_IsArray(t)) return fail(err, cap, param, "tokens", "\"tokens\" must be an array of token ids");
        r->n_prompts = 1;
        return tokens(t, "tokens", &r->prompts[0].toks, &r->prompts[0].n_toks, err, cap, param);
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(o, "model");
    if (model && !cJSON_IsNull(model) && !cJSON_IsString(model)) return fail(err, cap, param, "model", "\"model\" must be a string");
    r->model = cJSON_IsString(model) ? model->valuestring : NULL;
    if ((st = samplers(o, r, err, cap, param))) return st;
    if (api == OAI_CHAT) {
        if ((st = messages(o, r, err, cap, param))) return st;
        const char *mt = cJSON_GetObjectItemCaseSensitive(o, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
        if ((st = integer(o, mt, 1, 1 << 20, &i, err, cap, param)) > 1) return st;
        if (st == 1) r->max_tokens = (int32_t)i;
        bool lp = false;
        if ((st = boolean(o, "logprobs", &lp, err, cap, param)) > 1) return st;
        int64_t top = 0;
        if ((st = integer(o, "top_logprobs", 0, 1e9, &top, err, cap, param)) > 1) return st;
        if (st == 1 && !lp) return fail(err, cap, param, "top_logprobs", "\"top_logprobs\" needs \"logprobs\": true");
        if (top > max_logprobs)
            return fail(err, cap, param, "top_logprobs", "\"top_logprobs\" is %lld; this server returns at most %d (--max-logprobs)",
                        (long long)top, max_logprobs);
        if (lp) r->logprobs = (int32_t)top;
        const cJSON *rf = cJSON_GetObjectItemCaseSensitive(o, "response_format");
        const cJSON *rft = rf ? cJSON_GetObjectItemCaseSensitive(rf, "type") : NULL;
        if (rf && !cJSON_IsNull(rf) && !(cJSON_IsObject(rf) && cJSON_IsString(rft) && strcmp(rft->valuestring, "text") == 0 &&
                                          cJSON_GetArraySize(rf) == 1))
            return fail(err, cap, param, "response_format", "only \"response_format\": {\"type\": \"text\"} is supported");
        const cJSON *mo = cJSON_GetObjectItemCaseSensitive(o, "modalities");
        if (mo && !cJSON_IsNull(mo) && !(cJSON_IsArray(mo) && cJSON_GetArraySize(mo) == 1 && cJSON_IsString(mo->child) &&
                                          strcmp(mo->child->valuestring, "text") == 0))
            return fail(err, cap, param, "modalities", "only \"modalities\": [\"text\"] is supported");
    } else {
        if ((st = prompts(o, r, err, cap, param))) return st;
    }
    if (api == OAI_COMPLETIONS) {
        if ((st = integer(o, "max_tokens", 0, 1 << 20, &i, err, cap, param)) > 1) return st;
        if (st == 1) r->max_tokens = (int32_t)i;
        if ((st = integer(o, "logprobs", 0, 1e9, &i, err, cap, param)) > 1) return st;
        if (st == 1 && i > max_logprobs)
            return fail(err, cap, param, "logprobs", "\"logprobs\" is %lld; this server returns at most %d (--max-logprobs)",
                        (long long)i, max_logprobs);
        if (st == 1) r->logprobs = (int32_t)i;
        if ((st = boolean(o, "echo", &r->echo, err, cap, param)) > 1) return st;
        if ((st = boolean(o, "return_tokens_as_token_ids", &r->tokens_as_ids, err, cap, param)) > 1) return st;
    }
    if (api != OAI_LLAMA) {
        if ((st = integer(o, "n", 1, SRV_OAI_MAX_N, &i, err, cap, param)) > 1) return st;
        if (st == 1) r->n = (int32_t)i;
        const cJSON *so = cJSON_GetObjectItemCaseSensitive(o, "stream_options");
        if (so && !cJSON_IsNull(so)) {
            if (!cJSON_IsObject(so)) return fail(err, cap, param, "stream_options", "\"stream_options\" must be an object");
            for (const cJSON *f = so->child; f; f = f->next)
                if (strcmp(f->string, "include_usage") && strcmp(f->string, "include_obfuscation"))
                    return fail(err, cap, param, "stream_options", "unknown field \"stream_options.%s\"", f->string);
            if ((st = boolean(so, "include_usage", &r->include_usage, err, cap, param)) > 1) return st;
            if (!r->stream) return fail(err, cap, param, "stream_options", "\"stream_options\" needs \"stream\": true");
        }
        const cJSON *bo = cJSON_GetObjectItemCaseSensitive(o, "best_of");
        (void)bo;  /* NEUTRAL: only 1 */
    } else {
        if ((st = integer(o, "n_predict", -2, 1 << 20, &i, err, cap, param)) > 1) return st;
        if (st == 1) r->max_tokens = i < 0 ? -1 : (int32_t)i;
        if ((st = integer(o, "n_probs", 0, 1e9, &i, err, cap, param)) > 1) return st;
        if (st == 1 && i > max_logprobs)
            return fail(err, cap, param, "n_probs", "\"n_probs\" is %lld; this server returns at most %d (--max-logprobs)",
                        (long long)i, max_logprobs);
        if (st == 1 && i > 0) r->logprobs = (int32_t)i;
        if ((st = boolean(o, "post_sampling_probs", &r->post_sampling, err, cap, param)) > 1) return st;
        if ((st = boolean(o, "return_tokens", &r->return_tokens, err, cap, param)) > 1) return st;
        if ((st = boolean(o, "ignore_eos", &r->ignore_eos, err, cap, param)) > 1) return st;
    }
    return 0;
}
