/*
 * http.c — civetweb set-up, access checks and the JSON API routes.
 *
 * Why a single catch-all handler: the routes are few and share the same
 * checks (token, Host, Origin, body limit, UTF-8, JSON), which are easiest to
 * keep correct in one place. The handler threads only parse and validate;
 * anything touching a session becomes an srv_job for the worker thread.
 * The page itself (web/) is compiled into the binary: nothing is served from
 * disk, so the server never exposes files.
 */
#include "server/serve.h"
#include "server/oai.h"

#include <civetweb.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CSP "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " \
            "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

/* ------------------------------------------------------------ sending */

/* Writes a complete response. extra_name/extra_value add one header (a
 * cookie) when non-NULL. */
static void send_response(struct mg_connection *c, int status, const char *ctype,
                          const char *body, size_t len, const char *extra_name,
                          const char *extra_value)
{
    char lenbuf[32];
    snprintf(lenbuf, sizeof lenbuf, "%zu", len);
    mg_response_header_start(c, status);
    mg_response_header_add(c, "Content-Type", ctype, -1);
    mg_response_header_add(c, "Content-Length", lenbuf, -1);
    mg_response_header_add(c, "Cache-Control", "no-store", -1);
    mg_response_header_add(c, "X-Content-Type-Options", "nosniff", -1);
    mg_response_header_add(c, "Referrer-Policy", "no-referrer", -1);
    if (strncmp(ctype, "text/html", 9) == 0)
        mg_response_header_add(c, "Content-Security-Policy", CSP, -1);
    if (extra_name && extra_value) mg_response_header_add(c, extra_name, extra_value, -1);
    mg_response_header_send(c);
    const struct mg_request_info *ri = mg_get_request_info(c);
    if (len > 0 && strcmp(ri->request_method, "HEAD") != 0) mg_write(c, body, len);
}

/* Sends a JSON body. Why the UTF-8 check: every byte the server emits must
 * be valid UTF-8; bodies built by the worker are scrubbed already, this
 * catches anything else (a copy is scrubbed, offsets keep their meaning). */
static void send_json(struct mg_connection *c, int status, const char *json)
{
    size_t n = strlen(json);
    if (fp_utf8_valid(json, n)) {
        send_response(c, status, "application/json; charset=utf-8", json, n, NULL, NULL);
        return;
    }
    char *copy = strdup(json);
    if (copy) srv_utf8_scrub(copy, n);
    send_response(c, status, "application/json; charset=utf-8", copy ? copy : "{\"error\":\"out of memory\"}",
                  copy ? n : 27, NULL, NULL);
    free(copy);
}

/* Sends {"error": msg} with the given status. */
static int send_error(struct mg_connection *c, int status, const char *msg)
{
    char *j = srv_json_error(msg);
    send_json(c, status, j ? j : "{\"error\":\"out of memory\"}");
    free(j);
    return status;
}

/* ------------------------------------------------------------- checks */

/* Finds the token the client presented: Authorization: Bearer, the
 * X-Forkpoint-Token header, ?token= or the fp_token cookie (set when the
 * page was opened with ?token=, so the browser's own requests carry it). */
static bool token_ok(const struct mg_connection *c, const char *want, bool *from_query)
{
    *from_query = false;
    char buf[256];
    const char *h = mg_get_header(c, "Authorization");
    if (h && strncmp(h, "Bearer ", 7) == 0 && srv_token_equal(h + 7, want)) return true;
    h = mg_get_header(c, "X-Forkpoint-Token");
    if (h && srv_token_equal(h, want)) return true;
    const struct mg_request_info *ri = mg_get_request_info(c);
    if (ri->query_string &&
        mg_get_var(ri->query_string, strlen(ri->query_string), "token", buf, sizeof buf) > 0 &&
        srv_token_equal(buf, want)) {
        *from_query = true;
        return true;
    }
    h = mg_get_header(c, "Cookie");
    if (h && mg_get_cookie(h, "fp_token", buf, sizeof buf) > 0 && srv_token_equal(buf, want))
        return true;
    return false;
}

/* Length of the host part of a Host header value ("[v6]" or "name"), and
 * where its ":port" starts (or NULL). */
static size_t host_part(const char *h, const char **port)
{
    size_t n;
    if (h[0] == '[') {
        const char *rb = strchr(h, ']');
        n = rb ? (size_t)(rb - h) + 1 : strlen(h);
    } else {
        n = strcspn(h, ":");
    }
    *port = h[n] == ':' ? h + n + 1 : NULL;
    return n;
}

/* Why: a page on another site must not drive a local server (CSRF), and a
 * name that an attacker re-points at 127.0.0.1 (DNS rebinding) must not
 * reach it either, token or not. The Host header must name this server:
 * 127.0.0.1, localhost or [::1], or the --host it is bound to, each with
 * the port it listens on when a port is given (civetweb's own WebSocket
 * client sends none; the name is what rebinding changes). Off loopback (--token required),
 * a wildcard bind (0.0.0.0, ::) accepts any name with the right port,
 * since there the token is the guard. Behind a proxy, --public-host names
 * the one other Host (the proxy's, exactly) that is this server too. A missing Host is refused for
 * HTTP/1.1 (RFC 9112 makes it mandatory) and allowed for HTTP/1.0. */
static bool host_ok(srv_app *app, const struct mg_connection *c)
{
    const char *h = mg_get_header(c, "Host");
    if (!h) {
        const struct mg_request_info *ri = mg_get_request_info(c);
        return ri->http_version && strcmp(ri->http_version, "1.0") == 0;
    }
    /* the address a proxy in front (nginx) is reached at, named by --public-host */
    if (app->cfg.public_host && strcasecmp(h, app->cfg.public_host) == 0) return true;
    const char *port;
    size_t n = host_part(h, &port);
    if (h[n] != '\0' && h[n] != ':') return false;   /* "[::1]junk" */
    char want[16];
    snprintf(want, sizeof want, "%d", app->port);
    if (port && strcmp(port, want) != 0) return false;
    if ((n == 9 && strncmp(h, "127.0.0.1", 9) == 0) || (n == 9 && strncasecmp(h, "localhost", 9) == 0) ||
        (n == 5 && strncmp(h, "[::1]", 5) == 0))
        return true;
    const char *bound = app->cfg.host;
    size_t bl = strlen(bound);
    bool v6 = strchr(bound, ':') != NULL;
    if (app->cfg.token && (strcmp(bound, "0.0.0.0") == 0 || strcmp(bound, "::") == 0)) return true;
    if (v6) return n == bl + 2 && h[0] == '[' && strncasecmp(h + 1, bound, bl) == 0;
    return n == bl && strncasecmp(h, bound, bl) == 0;
}

/* True when the request has no Origin or its Origin is this very server
 * (the scheme of this connection, http or https, and the Host the request
 * was sent to, already checked by host_ok). "null" (sandboxed frames, file
 * pages) is foreign. */
bool srv_origin_ok(const struct mg_connection *c)
{
    const char *o = mg_get_header(c, "Origin");
    if (!o) return true;
    const char *h = mg_get_header(c, "Host");
    if (!h) return false;
    const char *scheme = mg_get_request_info(c)->is_ssl ? "https://" : "http://";
    size_t sl = strlen(scheme);
    if (strncmp(o, scheme, sl) != 0) return false;
    return strcasecmp(o + sl, h) == 0;
}

/* Why: when two parsers in a chain (a proxy and this server) could read a
 * request's length differently, one request can hide another ("request
 * smuggling"). Refuse every ambiguous framing: two Content-Length headers,
 * Content-Length with Transfer-Encoding, a Content-Length that is not a
 * plain decimal number, more than one Transfer-Encoding or Host header.
 * Returns NULL or what is wrong. */
static const char *framing_bad(const struct mg_connection *c)
{
    const struct mg_request_info *ri = mg_get_request_info(c);
    int ncl = 0, nte = 0, nhost = 0;
    const char *cl = NULL;
    for (int i = 0; i < ri->num_headers; i++) {
        const char *name = ri->http_headers[i].name;
        if (!name) continue;
        if (strcasecmp(name, "Content-Length") == 0) { ncl++; cl = ri->http_headers[i].value; }
        else if (strcasecmp(name, "Transfer-Encoding") == 0) nte++;
        else if (strcasecmp(name, "Host") == 0) nhost++;
    }
    if (ncl > 1) return "more than one Content-Length header";
    if (ncl && nte) return "Content-Length together with Transfer-Encoding";
    if (nte > 1) return "more than one Transfer-Encoding header";
    if (nhost > 1) return "more than one Host header";
    if (cl) {
        size_t n = strlen(cl);
        if (n == 0 || n > 18 || strspn(cl, "0123456789") != n) return "Content-Length must be a decimal number";
    }
    return NULL;
}

/* All access checks for HTTP and WebSocket requests. Returns 0 when the
 * request may proceed, else the HTTP status with *why set. A 400 here is a
 * framing problem: the caller must close the connection after answering. */
int srv_access_check(srv_app *app, const struct mg_connection *c, bool *set_cookie, const char **why)
{
    *set_cookie = false;
    const char *bad = framing_bad(c);
    if (bad) { *why = bad; return 400; }
    if (!host_ok(app, c)) {
        *why = mg_get_header(c, "Host") ? "Host header does not name this server"
                                        : "an HTTP/1.1 request needs a Host header";
        return mg_get_header(c, "Host") ? 403 : 400;
    }
    if (app->cfg.token) {
        bool from_query;
        if (!token_ok(c, app->cfg.token, &from_query)) {
            *why = "missing or wrong token";
            return 401;
        }
        *set_cookie = from_query;
    }
    return 0;
}

/* ------------------------------------------------------------- bodies */

/* Reads the request body into a malloc'd NUL-terminated buffer of at most
 * max bytes. Returns 0, or an HTTP status: 413 when too large, 400 when the
 * client went away before sending all of it. */
static int read_body(struct mg_connection *c, size_t max, char **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    const struct mg_request_info *ri = mg_get_request_info(c);
    if (ri->content_length > (long long)max) return 413;
    /* the buffer fits what Content-Length announces (chunked: the limit) */
    size_t want = ri->content_length >= 0 ? (size_t)ri->content_length : max;
    char *buf = malloc(want + 2);
    if (!buf) return 503;
    size_t len = 0;
    for (;;) {
        int n = mg_read(c, buf + len, want + 1 - len);
        if (n < 0) { free(buf); return 400; }
        if (n == 0) break;
        len += (size_t)n;
        if (len > want) { free(buf); return len > max ? 413 : 400; }
    }
    if (ri->content_length >= 0 && (long long)len != ri->content_length) {
        free(buf);
        return 400;  /* truncated: the client disconnected mid-request */
    }
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    return 0;
}

/* Reads and parses a JSON object body under the strict rules of
 * reqparse.c (allowed names the fields understood; NULL = checked later).
 * Returns 0 with *json set, or a status after sending the error. */
static int parse_body(struct mg_connection *c, cJSON **json, bool empty_ok, const char *const *allowed)
{
    *json = NULL;
    char *body;
    size_t len;
    int st = read_body(c, SRV_MAX_BODY, &body, &len);
    if (st == 413) return send_error(c, 413, "request body too large (limit 64 KiB)");
    if (st == 503) return send_error(c, 503, "out of memory");
    if (st) return send_error(c, 400, "incomplete request body");
    char err[160];
    void *j = NULL;
    st = srv_parse_body(body, len, allowed, empty_ok, &j, err, sizeof err);
    free(body);
    if (st) return send_error(c, st, err);
    *json = j;
    return 0;
}

/* ------------------------------------------------------------- routes */

/* Runs a job and sends its result. */
static int run_job(srv_app *app, struct mg_connection *c, srv_job *job)
{
    srv_worker_submit(app, job);
    int st = job->status ? job->status : 500;
    if (!job->body) {
        send_error(c, 500, "internal error");
    } else if (job->ctype) {
        send_response(c, st, job->ctype, job->body, strlen(job->body), NULL, NULL);
    } else {
        send_json(c, st, job->body);
    }
    free(job->body);
    job->body = NULL;
    return st;
}

static int method_not_allowed(struct mg_connection *c)
{
    return send_error(c, 405, "method not allowed");
}

/* POST /api/sessions */
/* Sends a cJSON object as a 200 response and frees it. */
static int send_object(struct mg_connection *c, cJSON *o)
{
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    send_json(c, 200, s ? s : "{}");
    free(s);
    return 200;
}

/* POST /api/adapters {"lora_scale": S, "steer_strength": S}: changes the
 * strength of the adapters the server was started with; every resident
 * session is re-decoded and its clients get the new state. */
static int route_adapters(srv_app *app, struct mg_connection *c)
{
    static const char *const fields[] = {"lora_scale", "steer_strength", NULL};
    cJSON *j;
    int st = parse_body(c, &j, false, fields);
    if (st) return st;
    srv_job job = { .kind = JOB_ADAPTERS, .lora_scale = NAN, .steer_strength = NAN };
    const char *bad = NULL;
    const cJSON *ls = cJSON_GetObjectItemCaseSensitive(j, "lora_scale");
    const cJSON *ss = cJSON_GetObjectItemCaseSensitive(j, "steer_strength");
    if (!ls && !ss) bad = "give \"lora_scale\" and/or \"steer_strength\"";
    else if (ls && (!cJSON_IsNumber(ls) || !(ls->valuedouble >= -16 && ls->valuedouble <= 16)))
        bad = "\"lora_scale\" must be a number in -16..16";
    else if (ss && (!cJSON_IsNumber(ss) || !(ss->valuedouble >= -64 && ss->valuedouble <= 64)))
        bad = "\"steer_strength\" must be a number in -64..64";
    else if (ls && !app->cfg.lora) bad = "this server has no LoRA adapter (start it with --lora)";
    else if (ss && !app->cfg.steer) bad = "this server has no steering vector (start it with --steer)";
    if (ls && !bad) job.lora_scale = (float)ls->valuedouble;
    if (ss && !bad) job.steer_strength = (float)ss->valuedouble;
    cJSON_Delete(j);
    if (bad) return send_error(c, 400, bad);
    return run_job(app, c, &job);
}

static int route_create(srv_app *app, struct mg_connection *c)
{
    static const char *const fields[] = {"prompt", "settings", "mode", "system", "messages", "chat_template", NULL};
    cJSON *j;
    int st = parse_body(c, &j, false, fields);
    if (st) return st;
    const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(j, "prompt");
    const cJSON *settings = cJSON_GetObjectItemCaseSensitive(j, "settings");
    const char *bad = srv_chat_check_create(j);   /* chat.c: "mode", and a chat's fields */
    bool chat = !bad && cJSON_GetObjectItemCaseSensitive(j, "mode") &&
                strcmp(cJSON_GetObjectItemCaseSensitive(j, "mode")->valuestring, "chat") == 0;
    if (bad) {
        cJSON_Delete(j);
        return send_error(c, 400, bad);
    }
    if (!chat && !cJSON_IsString(prompt)) {
        cJSON_Delete(j);
        return send_error(c, 400, "\"prompt\" must be a string");
    }
    if (settings && !cJSON_IsObject(settings) && !cJSON_IsNull(settings)) {
        cJSON_Delete(j);
        return send_error(c, 400, "\"settings\" must be an object");
    }
    char *sj = cJSON_IsObject(settings) ? cJSON_PrintUnformatted(settings) : NULL;
    srv_job job = {.kind = JOB_CREATE, .text = chat ? NULL : prompt->valuestring, .settings = sj, .ext = chat ? j : NULL};
    st = run_job(app, c, &job);
    free(sj);
    cJSON_Delete(j);
    return st;
}

/* POST /api/sessions/{id}/{action} */
static int route_action(srv_app *app, struct mg_connection *c, const char *sid,
                        const char *action)
{
    static const char *const http_actions[] = {"choose", "type", "undo", "continue", "shown",
                                               "goto", "settings", "say", "reply", "end", NULL};
    bool known = false;
    for (const char *const *a = http_actions; *a && !known; a++) known = strcmp(*a, action) == 0;
    if (!known) return send_error(c, 404, "unknown action");
    cJSON *j;
    int st = parse_body(c, &j, true, NULL);  /* fields: srv_parse_action */
    if (st) return st;
    srv_job job = {0};
    snprintf(job.sid, sizeof job.sid, "%s", sid);
    char *sj = NULL;
    char err[160];
    const char *bad = srv_parse_action(action, j, "api", &job, &sj, err, sizeof err);
    if (bad) {
        free(sj);
        cJSON_Delete(j);
        return send_error(c, 400, bad);
    }
    st = run_job(app, c, &job);
    free(sj);
    cJSON_Delete(j);
    return st;
}

/* Everything under /api/. path is the part after "/api/". */
static int route_api(srv_app *app, struct mg_connection *c, const char *method, const char *path)
{
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    bool post = strcmp(method, "POST") == 0;

    if (strcmp(path, "health") == 0) {
        if (!get) return method_not_allowed(c);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddBoolToObject(o, "ok", true);
        cJSON_AddStringToObject(o, "version", FP_VERSION);
        char mp[1024];
        srv_model_path(app, mp, sizeof mp);
        cJSON_AddStringToObject(o, "model", mp);
        if (app->cfg.rpc) {   /* --rpc: the workers, and the supervisor's restarts (supervise.c) */
            cJSON *r = cJSON_AddObjectToObject(o, "rpc");
            const char *n = getenv("FORKPOINT_RPC_RESTARTS"), *why = getenv("FORKPOINT_RPC_LAST_LOSS");
            cJSON_AddStringToObject(r, "workers", app->cfg.rpc);
            cJSON_AddNumberToObject(r, "restarts", n ? atoi(n) : 0);
            if (why) cJSON_AddStringToObject(r, "last_loss", why);
        }
        if (app->cfg.backend) {   /* --backend: the remote engine and how its requests went */
            cJSON *b = cJSON_AddObjectToObject(o, "backend");
            fp_remote_stats rs = fp_engine_remote_stats(app->engine);   /* counters: a torn read is harmless */
            cJSON_AddStringToObject(b, "name", fp_engine_backend(app->engine));
            cJSON_AddNumberToObject(b, "requests", (double)rs.requests);
            cJSON_AddNumberToObject(b, "retries", (double)rs.retries);
            cJSON_AddNumberToObject(b, "cached", (double)rs.cached);
            cJSON_AddNumberToObject(b, "short_replies", (double)rs.short_replies);
            if (rs.logit_bias) cJSON_AddStringToObject(b, "logit_bias", rs.logit_bias);
        }
        srv_adapters_json(app, o);
        pthread_mutex_lock(&app->q_mu);
        cJSON_AddNumberToObject(o, "prefetch_cancels", (double)app->n_cancels);
        int n_exec = app->n_exec;
        pthread_mutex_unlock(&app->q_mu);
        /* cross-session batching: decodes that shared a round */
        uint64_t decodes = 0, rounds = fp_engine_decode_rounds(app->engine, &decodes);
        cJSON *bo = cJSON_AddObjectToObject(o, "batching");
        cJSON_AddNumberToObject(bo, "sessions", n_exec);
        cJSON_AddNumberToObject(bo, "rounds", (double)rounds);
        cJSON_AddNumberToObject(bo, "decodes", (double)decodes);
        pthread_mutex_lock(&app->ws_mu);
        cJSON_AddNumberToObject(o, "ws_dropped", (double)app->ws_dropped);
        pthread_mutex_unlock(&app->ws_mu);
        return send_object(c, o);
    }
    if (strcmp(path, "adapters") == 0) {
        if (get) {
            cJSON *o = cJSON_CreateObject();
            srv_adapters_json(app, o);
            return send_object(c, o);
        }
        if (post) return route_adapters(app, c);
        return method_not_allowed(c);
    }
    if (strcmp(path, "models") == 0) return srv_models_route(app, c, method);   /* models.c */
    if (strcmp(path, "profile") == 0) {   /* profile.c */
        srv_job job = {.kind = get ? JOB_PROFILE : JOB_PROFILE_RESET};
        return get || strcmp(method, "DELETE") == 0 ? run_job(app, c, &job) : method_not_allowed(c);
    }
    if (strncmp(path, "sessions", 8) != 0 || (path[8] != '\0' && path[8] != '/'))
        return send_error(c, 404, "not found");
    const char *rest = path[8] ? path + 9 : "";
    if (*rest == '\0') {
        if (get) { srv_job job = {.kind = JOB_LIST}; return run_job(app, c, &job); }
        if (post) return route_create(app, c);
        return method_not_allowed(c);
    }
    const char *slash = strchr(rest, '/');
    size_t idlen = slash ? (size_t)(slash - rest) : strlen(rest);
    if (!srv_id_valid(rest, idlen)) return send_error(c, 404, "unknown session");
    char sid[SRV_ID_LEN + 1];
    memcpy(sid, rest, SRV_ID_LEN);
    sid[SRV_ID_LEN] = '\0';
    const char *action = slash ? slash + 1 : "";

    srv_job job = {0};
    snprintf(job.sid, sizeof job.sid, "%s", sid);
    if (*action == '\0') {
        if (get) { job.kind = JOB_GET; return run_job(app, c, &job); }
        if (strcmp(method, "DELETE") == 0) { job.kind = JOB_DELETE; return run_job(app, c, &job); }
        return method_not_allowed(c);
    }
    if (strcmp(action, "tree") == 0) {
        if (!get) return method_not_allowed(c);
        job.kind = JOB_TREE;
        return run_job(app, c, &job);
    }
    if (strcmp(action, "events.jsonl") == 0) {
        if (!get) return method_not_allowed(c);
        job.kind = JOB_EVENTS;
        return run_job(app, c, &job);
    }
    if (strcmp(action, "ws") == 0) return send_error(c, 400, "WebSocket upgrade required");
    if (!post) return method_not_allowed(c);
    return route_action(app, c, sid, action);
}

/* The catch-all request handler. */
static int handle(struct mg_connection *c, void *cbdata)
{
    srv_app *app = cbdata;
    const struct mg_request_info *ri = mg_get_request_info(c);
    const char *method = ri->request_method;
    const char *uri = ri->local_uri ? ri->local_uri : "/";
    double t0 = srv_now_ms();
    int st;

    bool set_cookie;
    const char *why = NULL;
    int deny = srv_access_check(app, c, &set_cookie, &why);
    if (deny) {
        /* a framing error leaves the rest of the stream unreadable: close */
        if (deny == 400) mg_disable_connection_keep_alive(c);
        st = send_error(c, deny, why);
    } else if (srv_oai_route(app, c, method, uri, &st)) {
        /* the OpenAI- and llama.cpp-compatible API: oai.c */
    } else if (strncmp(uri, "/api/", 5) == 0) {
        bool mutating = strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0;
        if (mutating && !srv_origin_ok(c))
            st = send_error(c, 403, "cross-origin request refused");
        else
            st = route_api(app, c, method, uri + 5);
    } else {
        const char *p = strcmp(uri, "/") == 0 ? "/index.html" : uri;
        const srv_asset *a = NULL;
        for (size_t i = 0; i < srv_n_assets; i++)
            if (strcmp(srv_assets[i].path, p) == 0) a = &srv_assets[i];
        if (!a) {
            st = send_error(c, 404, "not found");
        } else if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
            st = method_not_allowed(c);
        } else {
            char cookie[400];
            if (set_cookie)
                snprintf(cookie, sizeof cookie, "fp_token=%s; Path=/; HttpOnly; SameSite=Strict%s",
                         app->cfg.token, ri->is_ssl ? "; Secure" : "");
            send_response(c, 200, a->ctype, (const char *)a->data, a->len,
                          set_cookie ? "Set-Cookie" : NULL, set_cookie ? cookie : NULL);
            st = 200;
        }
    }
    if (app->cfg.log_requests)
        fprintf(stderr, "%s %s -> %d (%.1f ms)\n", method, uri, st, srv_now_ms() - t0);
    return st;
}

/* civetweb logs through this; keep its noise to real errors. A plain-HTTP
 * request on the TLS port is the one a person makes by mistake (http://
 * typed for https://): OpenSSL reads it as a bad handshake and the
 * connection is closed without an answer (nothing can be said in clear
 * on a TLS port), so the log says what happened in words. */
static char bind_error[200]; /* civetweb's reason for a failed bind, for srv_http_start */

static int log_message(const struct mg_connection *c, const char *msg)
{
    (void)c;
    /* start-up: srv_http_start says in one line why it cannot listen */
    if (strncmp(msg, "cannot bind to", 14) == 0) {
        snprintf(bind_error, sizeof bind_error, "%s", msg);
        bind_error[strcspn(bind_error, "\r\n")] = '\0';
        return 1;
    }
    if (strcmp(msg, "Failed to setup server ports") == 0) return 1;
    /* a refused --tls-cert/--tls-key: srv_tls_init's own message follows */
    if (strncmp(msg, "SSL callback returned error", 27) == 0 || strcmp(msg, "Error initializing SSL context") == 0)
        return 1;
    if (strstr(msg, "sslize error") && strstr(msg, "http request"))
        fprintf(stderr, "forkpoint-serve: a plain-HTTP request came to the TLS port and was closed (use https://)\n");
    else
        fprintf(stderr, "civetweb: %s\n", msg);
    return 1;
}

/* Why: civetweb says only "Failed to setup server ports" when the port is
 * taken; a person starting `make run` a second time needs the way out.
 * Called after mg_start2 failed: binds host:port itself to learn whether
 * the port is in use. Cost: one socket. */
static bool port_in_use(const char *host, int port)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *ai = NULL;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    if (getaddrinfo(host, ps, &hints, &ai) != 0 || !ai) return false;
    bool busy = false;
    int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd >= 0) {
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        busy = bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno == EADDRINUSE;
        close(fd);
    }
    freeaddrinfo(ai);
    return busy;
}

/* civetweb's own errors (a malformed request line, header or version, a
 * bad Content-Length, headers too large...) get the same JSON shape as
 * ours. The connection is closed after them: the stream may be out of
 * step. Returns 0 = handled. */
static int http_error(struct mg_connection *c, int status, const char *msg)
{
    mg_disable_connection_keep_alive(c);
    char line[160];
    snprintf(line, sizeof line, "%s", msg && *msg ? msg : mg_get_response_code_text(c, status));
    line[strcspn(line, "\r\n")] = '\0';
    char *j = srv_json_error(line);
    const char *body = j ? j : "{\"error\":\"error\"}";
    if (j) srv_utf8_scrub(j, strlen(j));
    mg_printf(c, "HTTP/1.1 %d %s\r\nContent-Type: application/json; charset=utf-8\r\n"
                 "Content-Length: %zu\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
                 "Connection: close\r\n\r\n%s",
              status, mg_get_response_code_text(c, status), strlen(body), body);
    free(j);
    return 0;
}

/* Starts listening. Fills app->port with the port actually bound. */
int srv_http_start(srv_app *app, char *err, size_t cap)
{
    char ports[300], threads[16];
    const char *h = app->cfg.host;
    bool v6 = strchr(h, ':') != NULL;
    bool tls = app->cfg.tls_cert != NULL;
    snprintf(ports, sizeof ports, v6 ? "[%s]:%d%s" : "%s:%d%s", h, app->cfg.port, tls ? "s" : "");
    snprintf(threads, sizeof threads, "%d", app->cfg.http_threads);
    const char *opts[] = {
        "listening_ports", ports,
        "num_threads", threads,
        /* a connection holds a thread until its request is in: a client
         * that trickles bytes (slowloris) or sends none is cut off here */
        "request_timeout_ms", "10000",
        /* the read loop of a WebSocket wakes this often to notice a client
         * dropped by ws.c; ws.c pings idle peers itself (civetweb's own
         * ping handling would hide control frames from the checks there) */
        "websocket_timeout_ms", "10000",
        "enable_websocket_ping_pong", "no",
        "enable_keep_alive", "yes",
        "keep_alive_timeout_ms", "5000",
        NULL
    };
    struct mg_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.log_message = log_message;
    cb.http_error = http_error;
    if (tls) cb.init_ssl = srv_tls_init;
    struct mg_init_data init = {.callbacks = &cb, .user_data = app, .configuration_options = opts};
    struct mg_error_data ed;
    char ebuf[256] = "";
    memset(&ed, 0, sizeof ed);
    ed.text = ebuf;
    ed.text_buffer_size = sizeof ebuf;
    app->ctx = mg_start2(&init, &ed);
    if (!app->ctx) {
        if (app->tls_error[0])
            snprintf(err, cap, "%s", app->tls_error);
        else if (app->cfg.port && port_in_use(h, app->cfg.port))
            snprintf(err, cap, "port %d on %s is in use (is another forkpoint-serve running?): "
                               "choose another with --port N (make run ARGS=\"--port N\"), or --port 0 for any free port",
                     app->cfg.port, h);
        else
            snprintf(err, cap, "cannot listen on %s: %s", ports,
                     bind_error[0] ? bind_error : ebuf[0] ? ebuf : "unknown error");
        return -1;
    }
    struct mg_server_port sp[4];
    int n = mg_get_server_ports(app->ctx, 4, sp);
    app->port = n > 0 ? sp[0].port : app->cfg.port;
    mg_set_request_handler(app->ctx, "**", handle, app);
    srv_ws_register(app);
    return 0;
}

/* For oai.c: the same sending and strict body reading as the routes here. */
void srv_send_json(struct mg_connection *c, int status, const char *json) { send_json(c, status, json); }

int srv_read_json(struct mg_connection *c, void **out, char *err, size_t cap)
{
    *out = NULL;
    char *body;
    size_t len;
    int st = read_body(c, SRV_MAX_API_BODY, &body, &len);
    if (st) {
        snprintf(err, cap, "%s", st == 413 ? "request body too large (limit 1 MiB)" : st == 503 ? "out of memory"
                                                                                       : "incomplete request body");
        return st;
    }
    st = srv_parse_body_max(body, len, SRV_MAX_API_BODY, NULL, false, out, err, cap);
    free(body);
    return st;
}

void srv_http_stop(srv_app *app)
{
    if (app->ctx) mg_stop(app->ctx);
    app->ctx = NULL;
}
