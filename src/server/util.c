/*
 * util.c — small helpers shared by the server modules.
 *
 * Why: error bodies, status mapping, ids and token comparison are needed by
 * both the HTTP and the WebSocket paths and must behave identically there.
 */
#include "server/serve.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* Builds {"error": msg} with proper escaping. Why cJSON: messages can carry
 * user text (a bad field name) that must be escaped. Caller frees. */
char *srv_json_error(const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    if (!cJSON_AddStringToObject(o, "error", msg ? msg : "error")) {
        cJSON_Delete(o);
        return NULL;
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* Maps a library status to the HTTP code a client should see. Why here: one
 * table keeps the API documentation (docs/API.md) and the code in step. */
int srv_status_http(fp_status st)
{
    switch (st) {
    case FP_OK:           return 200;
    case FP_ERR_ARG:      return 400;
    case FP_ERR_UTF8:     return 400;
    case FP_ERR_EMPTY:    return 400;
    case FP_ERR_CONTEXT:  return 422;
    case FP_ERR_STATE:    return 409;
    case FP_ERR_CAPACITY: return 503;
    case FP_ERR_NOMEM:    return 503;
    case FP_ERR_REMOTE:   return 503;   /* the remote engine: nothing was decided, retry */
    case FP_ERR_IO:
    case FP_ERR_MODEL:
    case FP_ERR_DECODE:
    case FP_ERR_CHECKSUM:
    default:              return 500;
    }
}

/* Session ids are 16 lowercase hex digits; anything else is rejected before
 * it reaches SQL or the registry. */
bool srv_id_valid(const char *s, size_t len)
{
    if (!s || len != SRV_ID_LEN) return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    }
    return true;
}

/* A fresh random id from the kernel. Why random: ids appear in URLs and must
 * not be guessable from one another. Returns 0 or -1. */
int srv_random_id(char out[SRV_ID_LEN + 1])
{
    unsigned char b[SRV_ID_LEN / 2];
    size_t got = 0;
    while (got < sizeof b) {
        ssize_t n = getrandom(b + got, sizeof b - got, 0);
        if (n <= 0) return -1;
        got += (size_t)n;
    }
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof b; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[SRV_ID_LEN] = '\0';
    return 0;
}

/* Compares a presented token with the configured one in time independent of
 * where they differ, so the token cannot be found byte by byte. */
bool srv_token_equal(const char *a, const char *b)
{
    if (!a || !b) return false;
    size_t la = strlen(a), lb = strlen(b);
    unsigned char diff = (unsigned char)(la != lb);
    for (size_t i = 0; i < lb; i++) {
        unsigned char ca = i < la ? (unsigned char)a[i] : 0;
        diff |= (unsigned char)(ca ^ (unsigned char)b[i]);
    }
    return diff == 0;
}

/* Monotonic milliseconds, for timing engine work. */
double srv_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

void srv_adapters_json(srv_app *app, void *cjson_obj)
{
    cJSON *o = cjson_obj;
    pthread_mutex_lock(&app->adapters_mu);
    float ls = app->cfg.lora_scale, ss = app->cfg.steer_strength;
    pthread_mutex_unlock(&app->adapters_mu);
    if (app->cfg.lora) {
        cJSON_AddStringToObject(o, "lora", app->cfg.lora);
        cJSON_AddNumberToObject(o, "lora_scale", ls);
    }
    if (app->cfg.steer) {
        cJSON_AddStringToObject(o, "steer", app->cfg.steer);
        cJSON_AddNumberToObject(o, "steer_strength", ss);
    }
}
