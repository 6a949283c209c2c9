/*
 * ws.c — WebSocket endpoint /api/sessions/{id}/ws.
 *
 * Why: several clients may watch and steer one session at once — the page
 * on a screen, a switch or BCI device through examples/ws_client.c, a
 * caregiver's tablet. Every committed change is pushed to all of them as a
 * "state" message; a "highlight" from one client (the candidate it is
 * pointing at) is relayed to the others so every screen shows the same
 * preview; a "select" from any of them commits like POST .../choose.
 *
 * Sending: every client has a bounded queue of outgoing messages and its
 * own writer thread. Broadcasts (from the worker thread) and replies (from
 * the connection's thread) only enqueue, under ws_mu, and never block on a
 * socket; a client that falls SRV_WS_QUEUE_MSGS messages or
 * SRV_WS_QUEUE_BYTES bytes behind is dropped (its queue freed, the
 * connection closed), so one stalled reader cannot hold up the others.
 *
 * Receiving (civetweb hands us single frames): fragmented messages are
 * reassembled up to SRV_MAX_BODY; frames RFC 6455 forbids — RSV bits set
 * without an extension, control frames over 125 bytes or fragmented,
 * unknown opcodes, continuation without a start, and (wsmask.c) frames
 * without the client's mask — close the connection with status 1002.
 * Pings are answered here (civetweb's own ping handling
 * is off so that control frames reach us), and the writer pings an idle
 * peer, closing it when it stops answering.
 */
#include "server/serve.h"

#include <civetweb.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WS_PING_MS 15000.0   /* ping an idle peer this often */
#define WS_DEAD_MS 45000.0   /* no pong for this long: close */

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
    mg_disable_connection_keep_alive(mc);
    mg_printf(mc, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                  "Connection: close\r\n\r\n%s",
              status, mg_get_response_code_text(mc, status), strlen(body), body);
    free(j);
    return 1;
}

/* ------------------------------------------------------------ the queue */

static srv_wsmsg *msg_new(int opcode, const char *data, size_t len)
{
    srv_wsmsg *m = malloc(sizeof *m + len + 1);
    if (!m) return NULL;
    m->refs = 0;
    m->opcode = opcode;
    m->len = len;
    if (len) memcpy(m->data, data, len);
    m->data[len] = '\0';
    /* text frames MUST be UTF-8 (RFC 6455 §5.6): the last line of defence */
    if (opcode == MG_WEBSOCKET_OPCODE_TEXT) srv_utf8_scrub(m->data, len);
    return m;
}

/* Drops one reference (ws_mu held). */
static void msg_unref(srv_wsmsg *m)
{
    if (m && --m->refs <= 0) free(m);
}

/* Frees everything queued for w (ws_mu held). */
static void queue_clear(srv_ws *w)
{
    while (w->q_n > 0) {
        msg_unref(w->q[w->q_head]);
        w->q_head = (w->q_head + 1) % SRV_WS_QUEUE_MSGS;
        w->q_n--;
    }
    w->q_head = 0;
    w->q_bytes = 0;
}

/* Marks w as dropped: nothing more is sent, its queue is freed, and the
 * connection is told to close (civetweb's read loop ends at its next
 * timeout, or at once when the peer sends anything). ws_mu held. */
static void drop_client(srv_app *app, srv_ws *w, const char *why)
{
    if (w->dead) return;
    w->dead = true;
    queue_clear(w);
    app->ws_dropped++;
    mg_disable_connection_keep_alive(w->conn);
    pthread_cond_signal(&w->cv);
    if (!app->cfg.quiet) fprintf(stderr, "ws drop %s client %d: %s\n", w->sid, w->client_no, why);
}

/* Queues m for w (ws_mu held). A full queue drops the client. */
static void enqueue(srv_app *app, srv_ws *w, srv_wsmsg *m)
{
    if (w->dead || w->stop || !m) return;
    if (w->q_n >= SRV_WS_QUEUE_MSGS || w->q_bytes + m->len > SRV_WS_QUEUE_BYTES) {
        drop_client(app, w, "too far behind (outgoing queue full)");
        return;
    }
    m->refs++;
    w->q[(w->q_head + w->q_n) % SRV_WS_QUEUE_MSGS] = m;
    w->q_n++;
    w->q_bytes += m->len;
    pthread_cond_signal(&w->cv);
}

/* Queues one message for one client (any thread). */
static void send_msg(srv_app *app, srv_ws *w, int opcode, const char *data, size_t len)
{
    srv_wsmsg *m = msg_new(opcode, data, len);
    if (!m) return;
    pthread_mutex_lock(&app->ws_mu);
    enqueue(app, w, m);
    if (m->refs == 0) free(m);
    pthread_mutex_unlock(&app->ws_mu);
}

static void send_text(srv_app *app, srv_ws *w, const char *msg)
{
    send_msg(app, w, MG_WEBSOCKET_OPCODE_TEXT, msg, strlen(msg));
}

/* Queues a close frame with a status code (RFC 6455 §7.4). */
static void send_close(srv_app *app, srv_ws *w, int code, const char *reason)
{
    char b[64];
    size_t rl = strlen(reason);
    if (rl > sizeof b - 2) rl = sizeof b - 2;
    b[0] = (char)(code >> 8);
    b[1] = (char)(code & 0xff);
    memcpy(b + 2, reason, rl);
    send_msg(app, w, MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE, b, rl + 2);
}

/* The writer thread of one client: sends its queue in order, pings the
 * peer when idle, drops it when it stops answering. Exits when the
 * connection closes (after draining, unless the client was dropped). */
static void *writer_main(void *arg)
{
    srv_app *app = ((void **)arg)[0];
    srv_ws *w = ((void **)arg)[1];
    free(arg);
    pthread_mutex_lock(&app->ws_mu);
    for (;;) {
        while (!w->q_n && !w->stop && !w->dead) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += (time_t)(WS_PING_MS / 1000);
            if (pthread_cond_timedwait(&w->cv, &app->ws_mu, &ts) == ETIMEDOUT && !w->q_n && !w->stop && !w->dead) {
                if (srv_now_ms() - w->last_pong_ms > WS_DEAD_MS) {
                    drop_client(app, w, "no answer to pings");
                    break;
                }
                pthread_mutex_unlock(&app->ws_mu);
                mg_websocket_write(w->conn, MG_WEBSOCKET_OPCODE_PING, "fp", 2);
                pthread_mutex_lock(&app->ws_mu);
            }
        }
        if (w->dead || (w->stop && !w->q_n)) break;
        srv_wsmsg *m = w->q[w->q_head];
        w->q_head = (w->q_head + 1) % SRV_WS_QUEUE_MSGS;
        w->q_n--;
        w->q_bytes -= m->len;
        pthread_mutex_unlock(&app->ws_mu);
        /* blocks at most civetweb's request_timeout_ms on a full socket */
        int r = mg_websocket_write(w->conn, m->opcode, m->data, m->len);
        pthread_mutex_lock(&app->ws_mu);
        msg_unref(m);
        if (r <= 0) drop_client(app, w, "write failed");
    }
    pthread_mutex_unlock(&app->ws_mu);
    return NULL;
}

/* ------------------------------------------------------------- handlers */

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
    /* RFC 6455: the key is 16 random bytes in base64 (24 characters). Why
     * check: civetweb fails the handshake after this callback for a key too
     * long for its buffer, without calling on_close, which would leak the
     * client slot taken below. */
    const char *key = mg_get_header(c, "Sec-WebSocket-Key");
    if (!key || strlen(key) != 24 ||
        strspn(key, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") != 24)
        return refuse(c, 400, "Sec-WebSocket-Key must be 24 base64 characters");

    srv_job job = {.kind = JOB_GET};
    snprintf(job.sid, sizeof job.sid, "%s", sid);
    srv_worker_submit(app, &job);
    int st = job.status;
    free(job.body);
    if (st != 200) return refuse(c, st ? st : 500, st == 404 ? "unknown session" : "session unavailable");

    /* Why a per-address limit: every WebSocket holds a civetweb thread and a
     * writer for as long as it is open, so one remote host could take them
     * all. Loopback (the person's own machine, no token needed) is exempt.
     * Cost: one pass over the table, which the slot search makes anyway. */
    const char *addr = ri->remote_addr;
    bool limited = app->cfg.max_ws_per_addr > 0 && !srv_host_is_loopback(addr) &&
                   strncmp(addr, "::ffff:127.", 11) != 0;
    int same = 0;
    pthread_mutex_lock(&app->ws_mu);
    srv_ws *slot = NULL;
    for (int i = 0; i < SRV_MAX_WS; i++) {
        if (!app->ws[i].conn) { if (!slot) slot = &app->ws[i]; }
        else if (limited && strcmp(app->ws[i].addr, addr) == 0) same++;
    }
    if (limited && same >= app->cfg.max_ws_per_addr) {
        pthread_mutex_unlock(&app->ws_mu);
        return refuse(c, 503, "too many WebSockets from this address (--max-ws-per-addr)");
    }
    if (slot) {
        pthread_cond_t cv = slot->cv;   /* initialised once at start (srv_ws_register) */
        memset(slot, 0, sizeof *slot);
        slot->cv = cv;
        slot->conn = (struct mg_connection *)c;
        snprintf(slot->sid, sizeof slot->sid, "%s", sid);
        snprintf(slot->addr, sizeof slot->addr, "%s", addr);
        slot->client_no = ++app->ws_next_no;
        slot->last_pong_ms = srv_now_ms();
        mg_set_user_connection_data(c, slot);
    }
    pthread_mutex_unlock(&app->ws_mu);
    if (!slot) return refuse(c, 503, "too many WebSocket clients");
    if (app->cfg.log_requests) fprintf(stderr, "ws connect %s client %d\n", sid, slot->client_no);
    return 0;
}

/* Builds {"type":"state","state":S[,"req":R]}; malloc'd. */
static char *state_msg(const char *state, const cJSON *req)
{
    char *r = req ? cJSON_PrintUnformatted(req) : NULL;
    size_t n = strlen(state) + (r ? strlen(r) : 0) + 48;
    char *msg = malloc(n);
    if (msg) {
        if (r) snprintf(msg, n, "{\"type\":\"state\",\"state\":%s,\"req\":%s}", state, r);
        else snprintf(msg, n, "{\"type\":\"state\",\"state\":%s}", state);
    }
    free(r);
    return msg;
}

/* Counts the candidates of a state document (for highlight validation). */
static int count_candidates(const char *state)
{
    cJSON *st = cJSON_Parse(state);
    const cJSON *fork = st ? cJSON_GetObjectItem(st, "fork") : NULL;
    const cJSON *cands = fork ? cJSON_GetObjectItem(fork, "candidates") : NULL;
    int n = cands ? cJSON_GetArraySize(cands) : 0;
    cJSON_Delete(st);
    return n;
}

/* Sends {"type":"error","status":s,"error":msg[,"req":req]} plus the fields
 * of extra (a worker's error body: "state" on a 409). */
static void send_err(srv_app *app, srv_ws *w, int status, const char *msg, const cJSON *req,
                     const char *extra)
{
    cJSON *o = extra ? cJSON_Parse(extra) : NULL;
    if (!cJSON_IsObject(o)) { cJSON_Delete(o); o = cJSON_CreateObject(); }
    if (!o) return;
    cJSON_DeleteItemFromObjectCaseSensitive(o, "error");
    cJSON_AddStringToObject(o, "type", "error");
    cJSON_AddNumberToObject(o, "status", status);
    cJSON_AddStringToObject(o, "error", msg);
    if (req) cJSON_AddItemToObject(o, "req", cJSON_Duplicate(req, true));
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (s) send_text(app, w, s);
    free(s);
}

/* After the handshake: start the writer, greet, send the current state. */
static void on_ready(struct mg_connection *c, void *cbdata)
{
    srv_app *app = cbdata;
    srv_ws *slot = mg_get_user_connection_data(c);
    if (!slot) return;
    void **arg = malloc(2 * sizeof *arg);
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setstacksize(&at, 256 * 1024);
    bool started = false;
    if (arg) {
        arg[0] = app;
        arg[1] = slot;
        started = pthread_create(&slot->writer, &at, writer_main, arg) == 0;
        if (!started) free(arg);
    }
    pthread_attr_destroy(&at);
    char hello[96];
    pthread_mutex_lock(&app->ws_mu);
    slot->ready = started;
    if (!started) slot->dead = true;
    snprintf(hello, sizeof hello, "{\"type\":\"hello\",\"client\":%d}", slot->client_no);
    char sid[SRV_ID_LEN + 1];
    snprintf(sid, sizeof sid, "%s", slot->sid);
    pthread_mutex_unlock(&app->ws_mu);
    if (!started) { mg_disable_connection_keep_alive(c); return; }
    send_text(app, slot, hello);

    srv_job job = {.kind = JOB_GET};
    snprintf(job.sid, sizeof job.sid, "%s", sid);
    srv_worker_submit(app, &job);
    if (job.status == 200 && job.body) {
        char *msg = state_msg(job.body, NULL);
        int n = count_candidates(job.body);
        pthread_mutex_lock(&app->ws_mu);
        slot->n_candidates = n;
        pthread_mutex_unlock(&app->ws_mu);
        if (msg) send_text(app, slot, msg);
        free(msg);
    } else {
        send_err(app, slot, job.status ? job.status : 500, "session unavailable", NULL, NULL);
    }
    free(job.body);
    /* from here on this thread reads only this connection: watch its frame
     * headers for the mask bit civetweb does not report (wsmask.c) */
    const struct mg_request_info *ri = mg_get_request_info(c);
    srv_wsmask_arm(ri && ri->is_ssl);
}

/* Relays a highlight (index >= -1) or a switch press (button != NULL,
 * "select" or "step": a device working the page's scanning or its "look,
 * then confirm") to the session's other clients. */
static void relay_highlight(srv_app *app, srv_ws *from, int index, const char *button)
{
    char buf[96];
    pthread_mutex_lock(&app->ws_mu);
    if (button)
        snprintf(buf, sizeof buf, "{\"type\":\"switch\",\"button\":\"%s\",\"client\":%d}", button,
                 from->client_no);
    else
        snprintf(buf, sizeof buf, "{\"type\":\"highlight\",\"index\":%d,\"client\":%d}", index,
                 from->client_no);
    srv_wsmsg *m = msg_new(MG_WEBSOCKET_OPCODE_TEXT, buf, strlen(buf));
    for (int i = 0; m && i < SRV_MAX_WS; i++) {
        srv_ws *w = &app->ws[i];
        if (w->conn && w->ready && w != from && strcmp(w->sid, from->sid) == 0) enqueue(app, w, m);
    }
    if (m && m->refs == 0) free(m);
    pthread_mutex_unlock(&app->ws_mu);
}

/* One complete text message from a client: parse strictly, run, reply.
 * Every reply to it carries its "req" (state, ack or error). */
static void handle_message(srv_app *app, srv_ws *slot, const char *data, size_t len)
{
    char err[160];
    void *parsed = NULL;
    int pst = srv_parse_body(data, len, NULL, false, &parsed, err, sizeof err);
    if (pst) { send_err(app, slot, pst, err, NULL, NULL); return; }
    cJSON *j = parsed;
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(j, "req");
    const char *op = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "op"));
    int64_t v = 0;
    srv_job job = {0};
    snprintf(job.sid, sizeof job.sid, "%s", slot->sid);
    const char *bad = NULL;
    char *sj = NULL;

    if (!op) {
        bad = "\"op\" must be a string";
    } else if (strcmp(op, "highlight") == 0) {
        pthread_mutex_lock(&app->ws_mu);
        int n = slot->n_candidates;
        pthread_mutex_unlock(&app->ws_mu);
        if (srv_check_fields(j, srv_action_fields("highlight"), err, sizeof err)) bad = err;
        else if (srv_json_int(j, "index", &v) != 1) bad = "\"index\" must be an integer";
        else if (v < -1 || v >= n) bad = "index out of range";
        else relay_highlight(app, slot, (int)v, NULL);
        if (!bad) { cJSON_Delete(j); return; }  /* relayed, no reply */
    } else if (strcmp(op, "switch") == 0) {
        const char *b = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "button"));
        if (srv_check_fields(j, srv_action_fields("switch"), err, sizeof err)) bad = err;
        else if (!b || (strcmp(b, "select") != 0 && strcmp(b, "step") != 0))
            bad = "\"button\" must be \"select\" or \"step\"";
        else relay_highlight(app, slot, -1, b);
        if (!bad) { cJSON_Delete(j); return; }  /* relayed, no reply */
    } else if (!srv_action_fields(op) || strcmp(op, "settings") == 0) {
        bad = "unknown op";
    } else {
        bad = srv_parse_action(op, j, "ws", &job, &sj, err, sizeof err);
    }
    if (bad) {
        send_err(app, slot, 400, bad, req, NULL);
        free(sj);
        cJSON_Delete(j);
        return;
    }
    srv_worker_submit(app, &job);
    if (job.status >= 400) {
        cJSON *e = job.body ? cJSON_Parse(job.body) : NULL;
        const char *msg = e ? cJSON_GetStringValue(cJSON_GetObjectItem(e, "error")) : NULL;
        char copy[320];
        snprintf(copy, sizeof copy, "%s", msg ? msg : "error");
        cJSON_Delete(e);
        send_err(app, slot, job.status, copy, req, job.body);
    } else if (job.kind == JOB_GET && job.body) {
        char *msg = state_msg(job.body, req);
        if (msg) send_text(app, slot, msg);
        free(msg);
    } else {
        /* the new state reached every client (this one included) through
         * the broadcast, queued before this acknowledgement */
        cJSON *o = cJSON_CreateObject();
        if (o) {
            cJSON_AddStringToObject(o, "type", "ack");
            cJSON_AddStringToObject(o, "op", op);
            cJSON_AddNumberToObject(o, "status", job.status ? job.status : 200);
            cJSON_AddNumberToObject(o, "version", (double)job.out_version);
            if (req) cJSON_AddItemToObject(o, "req", cJSON_Duplicate(req, true));
            char *s = cJSON_PrintUnformatted(o);
            if (s) send_text(app, slot, s);
            free(s);
            cJSON_Delete(o);
        }
    }
    free(job.body);
    free(sj);
    cJSON_Delete(j);
}

/* Closes the connection for a protocol violation: a close frame with code,
 * then civetweb ends the read loop (we return 0). */
static int protocol_error(srv_app *app, srv_ws *slot, int code, const char *why)
{
    if (app->cfg.log_requests) fprintf(stderr, "ws close %s client %d: %s\n", slot->sid, slot->client_no, why);
    send_close(app, slot, code, why);
    return 0;
}

/* One frame from a client. bits is the frame's first byte: FIN (0x80), the
 * RSV bits (0x70) and the opcode. Returns 1 to keep the connection, 0 to
 * close it. */
static int on_data(struct mg_connection *c, int bits, char *data, size_t len, void *cbdata)
{
    srv_app *app = cbdata;
    srv_ws *slot = mg_get_user_connection_data(c);
    if (!slot) return 0;
    const int opcode = bits & 0x0f;
    const bool fin = (bits & 0x80) != 0;
    if (srv_wsmask_unmasked()) return protocol_error(app, slot, 1002, "unmasked client frame");
    if (bits & 0x70) return protocol_error(app, slot, 1002, "RSV bits set without an extension");
    if (opcode & 0x08) {  /* control frames: never fragmented, at most 125 bytes */
        if (!fin || len > 125) return protocol_error(app, slot, 1002, "bad control frame");
        switch (opcode) {
        case MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE: {
            /* answer with the peer's status code, then close */
            int code = len >= 2 ? (((unsigned char)data[0] << 8) | (unsigned char)data[1]) : 1000;
            send_close(app, slot, code == 1005 || code == 1006 ? 1000 : code, "");
            return 0;
        }
        case MG_WEBSOCKET_OPCODE_PING:
            send_msg(app, slot, MG_WEBSOCKET_OPCODE_PONG, data, len);
            return 1;
        case MG_WEBSOCKET_OPCODE_PONG:
            pthread_mutex_lock(&app->ws_mu);
            slot->last_pong_ms = srv_now_ms();
            pthread_mutex_unlock(&app->ws_mu);
            return 1;
        default:
            return protocol_error(app, slot, 1002, "unknown control opcode");
        }
    }
    pthread_mutex_lock(&app->ws_mu);
    slot->last_pong_ms = srv_now_ms();  /* any traffic shows the peer is alive */
    pthread_mutex_unlock(&app->ws_mu);
    if (opcode != MG_WEBSOCKET_OPCODE_CONTINUATION && opcode != MG_WEBSOCKET_OPCODE_TEXT &&
        opcode != MG_WEBSOCKET_OPCODE_BINARY)
        return protocol_error(app, slot, 1002, "unknown opcode");
    if (opcode == MG_WEBSOCKET_OPCODE_CONTINUATION) {
        if (!slot->frag_op) return protocol_error(app, slot, 1002, "continuation without a message");
    } else {
        if (slot->frag_op) return protocol_error(app, slot, 1002, "new message inside a fragmented one");
        if (!fin) slot->frag_op = opcode;
    }
    const char *msg = data;
    size_t mlen = len;
    int mop = opcode;
    if (slot->frag_op) {   /* part of a fragmented message: collect it */
        if (slot->frag_len + len > SRV_MAX_BODY)
            return protocol_error(app, slot, 1009, "message too large (limit 64 KiB)");
        if (!slot->frag) slot->frag = malloc(SRV_MAX_BODY + 1);
        if (!slot->frag) return protocol_error(app, slot, 1011, "out of memory");
        memcpy(slot->frag + slot->frag_len, data, len);
        slot->frag_len += len;
        if (!fin) return 1;
        msg = slot->frag;
        mlen = slot->frag_len;
        mop = slot->frag_op;
        slot->frag_op = 0;
        slot->frag_len = 0;
    }
    if (mop != MG_WEBSOCKET_OPCODE_TEXT) {
        send_err(app, slot, 400, "only text messages holding JSON are accepted", NULL, NULL);
        return 1;
    }
    if (mlen > SRV_MAX_BODY) {
        send_err(app, slot, 413, "message too large (limit 64 KiB)", NULL, NULL);
        return 1;
    }
    handle_message(app, slot, msg, mlen);
    return 1;
}

static void on_close(const struct mg_connection *c, void *cbdata)
{
    srv_app *app = cbdata;
    srv_wsmask_disarm();
    pthread_mutex_lock(&app->ws_mu);
    srv_ws *slot = mg_get_user_connection_data(c);
    bool join = false;
    if (slot) {
        if (app->cfg.log_requests) fprintf(stderr, "ws close %s client %d\n", slot->sid, slot->client_no);
        slot->stop = true;
        join = slot->ready;
        pthread_cond_signal(&slot->cv);
    }
    pthread_mutex_unlock(&app->ws_mu);
    if (!slot) return;
    /* the writer drains what is queued (e.g. a close frame) and exits; it
     * uses the connection, which civetweb frees after this returns */
    if (join) pthread_join(slot->writer, NULL);
    pthread_mutex_lock(&app->ws_mu);
    queue_clear(slot);
    free(slot->frag);
    pthread_cond_t cv = slot->cv;
    memset(slot, 0, sizeof *slot);
    slot->cv = cv;
    mg_set_user_connection_data(c, NULL);
    pthread_mutex_unlock(&app->ws_mu);
}

void srv_ws_register(srv_app *app)
{
    for (int i = 0; i < SRV_MAX_WS; i++) pthread_cond_init(&app->ws[i].cv, NULL);
    mg_set_websocket_handler(app->ctx, "/api/sessions", on_connect, on_ready, on_data, on_close, app);
}

/* Pushes a state document to all clients of sid: one shared message, queued
 * for each (never blocks on a socket). */
void srv_ws_broadcast_state(srv_app *app, const char *sid, const char *state_json,
                            int n_candidates)
{
    char *text = state_msg(state_json, NULL);
    if (!text) return;
    srv_wsmsg *m = msg_new(MG_WEBSOCKET_OPCODE_TEXT, text, strlen(text));
    free(text);
    if (!m) return;
    pthread_mutex_lock(&app->ws_mu);
    for (int i = 0; i < SRV_MAX_WS; i++) {
        srv_ws *w = &app->ws[i];
        if (!w->conn || !w->ready || strcmp(w->sid, sid) != 0) continue;
        w->n_candidates = n_candidates;
        enqueue(app, w, m);
    }
    if (m->refs == 0) free(m);
    pthread_mutex_unlock(&app->ws_mu);
}

/* Tells the clients of a deleted session and closes them. */
void srv_ws_drop_session(srv_app *app, const char *sid)
{
    static const char gone[] = "{\"type\":\"deleted\"}";
    static const char bye[] = {0x03, (char)0xe8};  /* 1000: normal closure */
    srv_wsmsg *m = msg_new(MG_WEBSOCKET_OPCODE_TEXT, gone, sizeof gone - 1);
    srv_wsmsg *cl = msg_new(MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE, bye, sizeof bye);
    pthread_mutex_lock(&app->ws_mu);
    for (int i = 0; m && cl && i < SRV_MAX_WS; i++) {
        srv_ws *w = &app->ws[i];
        if (!w->conn || !w->ready || strcmp(w->sid, sid) != 0) continue;
        enqueue(app, w, m);
        enqueue(app, w, cl);
        mg_disable_connection_keep_alive(w->conn);
    }
    if (m && m->refs == 0) free(m);
    if (cl && cl->refs == 0) free(cl);
    pthread_mutex_unlock(&app->ws_mu);
}
