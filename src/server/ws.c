/*
 * ws.c — WebSocket endpoint /api/sessions/{id}/ws.
 *
 * Why: several clients may watch and steer one session at once — the page
 * on a screen, a switch or BCI device through examples/ws_client.c, a
 * caregiver's tablet. Every committed change is pushed to all of them as a
 * "state" message; a "highlight" from one client (the candidate it is
 * pointing at) is relayed to the others so every screen shows the same
 * preview; a "select" from any of them commits like POST .../choose.
 * Clients live in a fixed table (no allocation per message besides the
 * JSON parse); the table's mutex is held while writing so a closing
 * connection cannot be freed under a writer.
 */
#include "server/serve.h"

#include <civetweb.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Extracts the session id from /api/sessions/{id}/ws; false if malformed. */
static bool ws_path_sid(const char *uri, char sid[SRV_ID_LEN + 1])
{
    static const char pre[] = "/api/sessions/";
    if (!uri || strncmp(uri, pre, sizeof pre - 1) != 0) return false;
    const char *p = uri + sizeof pre - 1;
    if (strnlen(p, SRV_ID_LEN) < SRV_ID_LEN || !srv_id_valid(p, SRV_ID_LEN)) return false;
    if (strcmp(p + SRV_ID_LEN, "/ws") != 0) return false;
    memcpy(sid, p, SRV_ID_LEN);
    sid[SRV_ID_LEN] = '\0';
    return true;
}

/* Refuses the handshake with an HTTP error. civetweb hands the connect
 * handler a const connection, but nothing has been written on it yet, so
 * an ordinary error response is still possible. */
static int refuse(const struct mg_connection *c, int status, const char *msg)
{
    struct mg_connection *mc = (struct mg_connection *)c;
    char *j = srv_json_error(msg);
    const char *body = j ? j : "{}";
    mg_printf(mc, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                  "Connection: close\r\n\r\n%s",
              status, mg_get_response_code_text(mc, status), strlen(body), body);
    free(j);
    return 1;
}

static int on_connect(const struct mg_connection *c, void *cbdata)
{
    srv_app *app = cbdata;
    const struct mg_request_info *ri = mg_get_request_info(c);
    char sid[SRV_ID_LEN + 1];
    bool set_cookie;
    const char *why = NULL;
    int deny = srv_access_check(app, c, &set_cookie, &why);
    if (deny) return refuse(c, deny, why);
    if (!srv_origin_ok(c)) return refuse(c, 403, "cross-origin WebSocket refused");
    if (!ws_path_sid(ri->local_uri, sid)) return refuse(c, 404, "not found");

    srv_job job = {.kind = JOB_GET};
    snprintf(job.sid, sizeof job.sid, "%s", sid);
    srv_worker_submit(app, &job);
    int st = job.status;
    free(job.body);
    if (st != 200) return refuse(c, st ? st : 500, st == 404 ? "unknown session" : "session unavailable");

    pthread_mutex_lock(&app->ws_mu);
    srv_ws *slot = NULL;
    for (int i = 0; i < SRV_MAX_WS; i++)
        if (!app->ws[i].conn) { slot = &app->ws[i]; break; }
    if (slot) {
        memset(slot, 0, sizeof *slot);
        slot->conn = (struct mg_connection *)c;
        snprintf(slot->sid, sizeof slot->sid, "%s", sid);
        slot->client_no = ++app->ws_next_no;
        mg_set_user_connection_data(c, slot);
    }
    pthread_mutex_unlock(&app->ws_mu);
    if (!slot) return refuse(c, 503, "too many WebSocket clients");
    if (!app->cfg.quiet) fprintf(stderr, "ws connect %s client %d\n", sid, slot->client_no);
    return 0;
}

/* Sends one text message to one client (caller need not hold ws_mu, but
 * the slot must stay valid: the connection's own thread is the caller). */
static void send_text(struct mg_connection *c, const char *msg)
{
    mg_websocket_write(c, MG_WEBSOCKET_OPCODE_TEXT, msg, strlen(msg));
}

/* Sends {"type":"error","status":s,"error":msg[,"req":req]}. */
static void send_err(struct mg_connection *c, int status, const char *msg, const cJSON *req)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return;
    cJSON_AddStringToObject(o, "type", "error");
    cJSON_AddNumberToObject(o, "status", status);
    cJSON_AddStringToObject(o, "error", msg);
    if (req) cJSON_AddItemToObject(o, "req", cJSON_Duplicate(req, true));
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (s) send_text(c, s);
    free(s);
}

/* After the handshake: greet, then send the current state. */
static void on_ready(struct mg_connection *c, void *cbdata)
{
    srv_app *app = cbdata;
    srv_ws *slot = mg_get_user_connection_data(c);
    if (!slot) return;
    char hello[96];
    pthread_mutex_lock(&app->ws_mu);
    slot->ready = true;
    snprintf(hello, sizeof hello, "{\"type\":\"hello\",\"client\":%d}", slot->client_no);
    char sid[SRV_ID_LEN + 1];
    snprintf(sid, sizeof sid, "%s", slot->sid);
    pthread_mutex_unlock(&app->ws_mu);
    send_text(c, hello);

    srv_job job = {.kind = JOB_GET};
    snprintf(job.sid, sizeof job.sid, "%s", sid);
    srv_worker_submit(app, &job);
    if (job.status == 200 && job.body) {
        size_t n = strlen(job.body) + 40;
        char *msg = malloc(n);
        if (msg) {
            snprintf(msg, n, "{\"type\":\"state\",\"state\":%s}", job.body);
            const cJSON *fork = NULL;
            cJSON *st = cJSON_Parse(job.body);
            if (st) fork = cJSON_GetObjectItem(st, "fork");
            const cJSON *cands = fork ? cJSON_GetObjectItem(fork, "candidates") : NULL;
            pthread_mutex_lock(&app->ws_mu);
            slot->n_candidates = cands ? cJSON_GetArraySize(cands) : 0;
            pthread_mutex_unlock(&app->ws_mu);
            cJSON_Delete(st);
            send_text(c, msg);
            free(msg);
        }
    } else {
        send_err(c, job.status ? job.status : 500, "session unavailable", NULL);
    }
    free(job.body);
}

/* Relays a highlight to the session's other clients. */
static void relay_highlight(srv_app *app, srv_ws *from, int index)
{
    char msg[96];
    pthread_mutex_lock(&app->ws_mu);
    snprintf(msg, sizeof msg, "{\"type\":\"highlight\",\"index\":%d,\"client\":%d}", index,
             from->client_no);
    for (int i = 0; i < SRV_MAX_WS; i++) {
        srv_ws *w = &app->ws[i];
        if (w->conn && w->ready && w != from && strcmp(w->sid, from->sid) == 0)
            send_text(w->conn, msg);
    }
    pthread_mutex_unlock(&app->ws_mu);
}

/* Reads an integer field: 1 present and integral, 0 absent, -1 wrong type. */
/* One message from a client. Returns 1 to keep the connection, 0 to close. */
static int on_data(struct mg_connection *c, int bits, char *data, size_t len, void *cbdata)
{
    srv_app *app = cbdata;
    srv_ws *slot = mg_get_user_connection_data(c);
    int opcode = bits & 0x0f;
    if (opcode == MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE) return 0;
    if (opcode == MG_WEBSOCKET_OPCODE_PING || opcode == MG_WEBSOCKET_OPCODE_PONG) return 1;
    if (!slot) return 0;
    if (opcode != MG_WEBSOCKET_OPCODE_TEXT) {
        send_err(c, 400, "only text messages holding JSON are accepted", NULL);
        return 1;
    }
    if (len > SRV_MAX_BODY) { send_err(c, 413, "message too large (limit 64 KiB)", NULL); return 1; }
    if (!fp_utf8_valid(data, len)) { send_err(c, 400, "message is not valid UTF-8", NULL); return 1; }
    cJSON *j = cJSON_ParseWithLength(data, len);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        send_err(c, 400, "malformed JSON", NULL);
        return 1;
    }
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(j, "req");
    const char *op = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "op"));
    int64_t v = 0;
    srv_job job = {0};
    snprintf(job.sid, sizeof job.sid, "%s", slot->sid);
    const char *bad = NULL;

    if (!op) {
        bad = "\"op\" must be a string";
    } else if ((bad = srv_modality(j, "ws", job.modality)) != NULL) {
    } else if (strcmp(op, "highlight") == 0) {
        pthread_mutex_lock(&app->ws_mu);
        int n = slot->n_candidates;
        pthread_mutex_unlock(&app->ws_mu);
        if (srv_json_int(j, "index", &v) != 1) bad = "\"index\" must be an integer";
        else if (v < -1 || v >= n) bad = "index out of range";
        else relay_highlight(app, slot, (int)v);
        if (!bad) { cJSON_Delete(j); return 1; }
    } else if (strcmp(op, "select") == 0 || strcmp(op, "choose") == 0) {
        bad = srv_parse_choice(j, &job);
    } else if (strcmp(op, "continue") == 0) {
        job.kind = JOB_CONTINUE;
    } else if (strcmp(op, "undo") == 0) {
        job.kind = JOB_UNDO;
    } else if (strcmp(op, "shown") == 0) {
        job.kind = JOB_SHOWN;
    } else if (strcmp(op, "get") == 0) {
        job.kind = JOB_GET;
    } else if (strcmp(op, "type") == 0 || strcmp(op, "prefix") == 0) {
        bool commit = strcmp(op, "type") == 0;
        const char *t = cJSON_GetStringValue(
            cJSON_GetObjectItemCaseSensitive(j, commit ? "text" : "prefix"));
        if (!t) bad = commit ? "\"text\" must be a string" : "\"prefix\" must be a string";
        job.kind = commit ? JOB_TYPE : JOB_PREFIX;
        job.text = t;
    } else if (strcmp(op, "goto") == 0) {
        int r = srv_json_int(j, "fork_id", &v);
        if (r == 1) { job.kind = JOB_GOTO_FORK; job.index = (int32_t)v; }
        else if (r == 0 && srv_json_int(j, "offset", &v) == 1) { job.kind = JOB_GOTO_OFFSET; job.offset = v; }
        else bad = "give an integer \"fork_id\" or \"offset\"";
    } else {
        bad = "unknown op";
    }
    if (bad) {
        send_err(c, 400, bad, req);
        cJSON_Delete(j);
        return 1;
    }
    srv_worker_submit(app, &job);
    if (job.status >= 400) {
        cJSON *e = job.body ? cJSON_Parse(job.body) : NULL;
        const char *msg = e ? cJSON_GetStringValue(cJSON_GetObjectItem(e, "error")) : NULL;
        send_err(c, job.status, msg ? msg : "error", req);
        cJSON_Delete(e);
    } else if (job.kind == JOB_GET && job.body) {
        size_t n = strlen(job.body) + 40;
        char *msg = malloc(n);
        if (msg) {
            snprintf(msg, n, "{\"type\":\"state\",\"state\":%s}", job.body);
            send_text(c, msg);
            free(msg);
        }
    }
    /* successful changes reach this client through the broadcast */
    free(job.body);
    cJSON_Delete(j);
    return 1;
}

static void on_close(const struct mg_connection *c, void *cbdata)
{
    srv_app *app = cbdata;
    pthread_mutex_lock(&app->ws_mu);
    srv_ws *slot = mg_get_user_connection_data(c);
    if (slot) {
        if (!app->cfg.quiet) fprintf(stderr, "ws close %s client %d\n", slot->sid, slot->client_no);
        memset(slot, 0, sizeof *slot);
    }
    mg_set_user_connection_data(c, NULL);
    pthread_mutex_unlock(&app->ws_mu);
}

void srv_ws_register(srv_app *app)
{
    mg_set_websocket_handler(app->ctx, "/api/sessions", on_connect, on_ready, on_data, on_close, app);
}

/* Pushes a state document to all clients of sid. */
void srv_ws_broadcast_state(srv_app *app, const char *sid, const char *state_json,
                            int n_candidates)
{
    size_t n = strlen(state_json) + 40;
    char *msg = malloc(n);
    if (!msg) return;
    snprintf(msg, n, "{\"type\":\"state\",\"state\":%s}", state_json);
    pthread_mutex_lock(&app->ws_mu);
    for (int i = 0; i < SRV_MAX_WS; i++) {
        srv_ws *w = &app->ws[i];
        if (!w->conn || !w->ready || strcmp(w->sid, sid) != 0) continue;
        w->n_candidates = n_candidates;
        send_text(w->conn, msg);
    }
    pthread_mutex_unlock(&app->ws_mu);
    free(msg);
}

/* Tells the clients of a deleted session and closes them. */
void srv_ws_drop_session(srv_app *app, const char *sid)
{
    static const char gone[] = "{\"type\":\"deleted\"}";
    pthread_mutex_lock(&app->ws_mu);
    for (int i = 0; i < SRV_MAX_WS; i++) {
        srv_ws *w = &app->ws[i];
        if (!w->conn || !w->ready || strcmp(w->sid, sid) != 0) continue;
        send_text(w->conn, gone);
        mg_websocket_write(w->conn, MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE, "", 0);
    }
    pthread_mutex_unlock(&app->ws_mu);
}
