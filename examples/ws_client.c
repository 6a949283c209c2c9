/*
 * ws_client.c — a small WebSocket client for forkpoint-serve.
 *
 * Why: it is the hook for input devices that are not a mouse or a keyboard —
 * a single switch, a sip-and-puff, a BCI decoder, an eye tracker with its
 * own software. Such a device only needs to say "this one" (highlight an
 * index, which every open page shows as a preview) and "take it" (select).
 * This program shows how, with civetweb's client API, in three modes:
 *
 *   ws_client [opts] SESSION                 commands from stdin, one a line:
 *       h N   highlight candidate N      s N   select N      p N   select N with its phrase
 *       c     let the model continue     u     undo          q     quit
 *       w select | w step   a switch press, relayed to the pages (their scanning)
 *   ws_client [opts] --script "h 1; s 1" SESSION   run commands, print replies, exit
 *   ws_client [opts] --scan MS SESSION       switch scanning: the highlight steps through
 *                                            the candidates every MS ms; a line on stdin
 *                                            (the switch) selects the highlighted one
 *
 * Every message from the server is printed on stdout as one JSON line.
 * Selections, "continue" and "undo" carry the fork_id and version of the
 * newest state received, so if another client (a caregiver's tablet, the
 * page) decided first, the server answers 409 with the current state
 * instead of applying a choice the person did not see.
 * Options: --host H (127.0.0.1) --port N (8080) --token T --origin URL
 *          --wait MS (after a script, how long to keep printing; default 1500)
 * Build: cc -std=c11 ws_client.c -lcivetweb -lcjson -lpthread
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <civetweb.h>
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/select.h>
#include <unistd.h>

/* What the receive thread learns, read by the main thread. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    int  n_candidates;   /* of the latest state */
    int  fork_id;        /* its open fork, -1 when ended */
    double version;      /* its version: sent with every action, so a stale one gets 409 */
    int  messages;       /* received so far */
    bool closed;
} g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, -1, 0, 0, false};

/* Prints each server message and tracks the number of candidates. */
static int on_data(struct mg_connection *c, int bits, char *data, size_t len, void *user)
{
    (void)c; (void)user;
    int op = bits & 0x0f;
    if (op == MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE) return 0;
    if (op != MG_WEBSOCKET_OPCODE_TEXT) return 1;
    fwrite(data, 1, len, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    cJSON *j = cJSON_ParseWithLength(data, len);
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItem(j, "type"));
    pthread_mutex_lock(&g.mu);
    /* a state, or a 409 error carrying the current state */
    const cJSON *st = type ? cJSON_GetObjectItem(j, "state") : NULL;
    if (cJSON_IsObject(st) && (strcmp(type, "state") == 0 || strcmp(type, "error") == 0)) {
        const cJSON *fork = cJSON_GetObjectItem(st, "fork");
        const cJSON *cands = cJSON_GetObjectItem(fork, "candidates");
        const cJSON *ver = cJSON_GetObjectItem(st, "version");
        if (!cJSON_IsNumber(ver) || ver->valuedouble >= g.version) {  /* newest wins */
            g.n_candidates = cJSON_IsArray(cands) ? cJSON_GetArraySize(cands) : 0;
            const cJSON *fid = cJSON_GetObjectItem(fork, "id");
            g.fork_id = cJSON_IsNumber(fid) ? fid->valueint : -1;
            if (cJSON_IsNumber(ver)) g.version = ver->valuedouble;
        }
    }
    g.messages++;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    cJSON_Delete(j);
    return 1;
}

static void on_close(const struct mg_connection *c, void *user)
{
    (void)c; (void)user;
    pthread_mutex_lock(&g.mu);
    g.closed = true;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
}

static int send_json(struct mg_connection *c, const char *json)
{
    return mg_websocket_client_write(c, MG_WEBSOCKET_OPCODE_TEXT, json, strlen(json)) > 0 ? 0 : -1;
}

/* The ",\"fork_id\":F,\"version\":V" an action carries: the fork and state
 * this client shows, so the server refuses the action (409) when another
 * client changed the session first. with_fork is false for undo. */
static void expect_fields(char *out, size_t cap, bool with_fork)
{
    pthread_mutex_lock(&g.mu);
    int f = g.fork_id;
    double v = g.version;
    pthread_mutex_unlock(&g.mu);
    if (with_fork && f >= 0) snprintf(out, cap, ",\"fork_id\":%d,\"version\":%.0f", f, v);
    else if (v > 0) snprintf(out, cap, ",\"version\":%.0f", v);
    else out[0] = '\0';
}

/* Turns one command ("h 2", "s 0", "p 1", "c", "u", or raw {json}) into a
 * message and sends it. Returns 0, 1 for quit, -1 on a bad command. */
static int run_command(struct mg_connection *c, const char *cmd)
{
    while (*cmd == ' ' || *cmd == '\t') cmd++;
    if (*cmd == '\0' || *cmd == '\n') return 0;
    if (*cmd == '{') return send_json(c, cmd);
    char msg[192], ex[80];
    int idx = 0;
    switch (cmd[0]) {
    case 'q': return 1;
    case 'c':
        expect_fields(ex, sizeof ex, true);
        snprintf(msg, sizeof msg, "{\"op\":\"continue\"%s}", ex);
        return send_json(c, msg);
    case 'u':
        expect_fields(ex, sizeof ex, false);
        snprintf(msg, sizeof msg, "{\"op\":\"undo\"%s}", ex);
        return send_json(c, msg);
    case 'h': case 's': case 'p':
        if (sscanf(cmd + 1, "%d", &idx) != 1) return -1;
        expect_fields(ex, sizeof ex, true);
        if (cmd[0] == 'h') snprintf(msg, sizeof msg, "{\"op\":\"highlight\",\"index\":%d}", idx);
        else snprintf(msg, sizeof msg, "{\"op\":\"select\",\"index\":%d,\"accept_preview\":%s%s}",
                      idx, cmd[0] == 'p' ? "true" : "false", ex);
        return send_json(c, msg);
    case 'w':   /* a switch press for the page's scanning: "w select" or "w step" */
        if (strstr(cmd + 1, "select")) return send_json(c, "{\"op\":\"switch\",\"button\":\"select\"}");
        if (strstr(cmd + 1, "step")) return send_json(c, "{\"op\":\"switch\",\"button\":\"step\"}");
        return -1;
    default:
        return -1;
    }
}

/* Waits until n messages have arrived in total, or ms pass. */
static void wait_messages(int n, int ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) { until.tv_sec++; until.tv_nsec -= 1000000000L; }
    pthread_mutex_lock(&g.mu);
    while (g.messages < n && !g.closed)
        if (pthread_cond_timedwait(&g.cv, &g.mu, &until) != 0) break;
    pthread_mutex_unlock(&g.mu);
}

/* Switch scanning: step the highlight; any line on stdin selects. */
static void scan(struct mg_connection *c, int step_ms)
{
    int cur = -1;
    for (;;) {
        fd_set rd;
        FD_ZERO(&rd);
        FD_SET(0, &rd);
        struct timeval tv = {step_ms / 1000, (step_ms % 1000) * 1000};
        int r = select(1, &rd, NULL, NULL, &tv);
        pthread_mutex_lock(&g.mu);
        int n = g.n_candidates;
        bool closed = g.closed;
        pthread_mutex_unlock(&g.mu);
        if (closed) return;
        char line[64], msg[192], ex[80];
        if (r > 0) {
            if (!fgets(line, sizeof line, stdin)) return;  /* EOF: done */
            if (cur >= 0 && cur < n) {
                expect_fields(ex, sizeof ex, true);
                snprintf(msg, sizeof msg, "{\"op\":\"select\",\"index\":%d%s}", cur, ex);
                send_json(c, msg);
                cur = -1;
            }
            continue;
        }
        if (n <= 0) continue;
        cur = (cur + 1) % n;
        snprintf(msg, sizeof msg, "{\"op\":\"highlight\",\"index\":%d}", cur);
        send_json(c, msg);
    }
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *token = NULL, *origin = NULL, *script = NULL, *sid = NULL;
    int port = 8080, scan_ms = 0, wait_ms = 1500;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--host") == 0 && v) host = v, i++;
        else if (strcmp(a, "--port") == 0 && v) port = atoi(v), i++;
        else if (strcmp(a, "--token") == 0 && v) token = v, i++;
        else if (strcmp(a, "--origin") == 0 && v) origin = v, i++;
        else if (strcmp(a, "--script") == 0 && v) script = v, i++;
        else if (strcmp(a, "--scan") == 0 && v) scan_ms = atoi(v), i++;
        else if (strcmp(a, "--wait") == 0 && v) wait_ms = atoi(v), i++;
        else if (a[0] != '-' && !sid) sid = a;
        else {
            fprintf(stderr, "usage: %s [--host H] [--port N] [--token T] [--origin URL]\n"
                            "          [--script \"h 1; s 1\" [--wait MS] | --scan MS] SESSION\n", argv[0]);
            return 2;
        }
    }
    if (!sid) { fprintf(stderr, "ws_client: no session id\n"); return 2; }

    char path[512], err[256] = "";
    if (token) snprintf(path, sizeof path, "/api/sessions/%s/ws?token=%s", sid, token);
    else snprintf(path, sizeof path, "/api/sessions/%s/ws", sid);
    mg_init_library(0);
    struct mg_connection *c = mg_connect_websocket_client(host, port, 0, err, sizeof err, path,
                                                          origin, on_data, on_close, NULL);
    if (!c) {
        fprintf(stderr, "ws_client: cannot connect: %s\n", err[0] ? err : "refused");
        mg_exit_library();
        return 1;
    }
    wait_messages(2, 5000);  /* hello + the first state */

    int rc = 0;
    if (script) {
        char *copy = strdup(script);
        char *save = NULL;
        for (char *cmd = copy ? strtok_r(copy, ";", &save) : NULL; cmd;
             cmd = strtok_r(NULL, ";", &save)) {
            int before;
            pthread_mutex_lock(&g.mu);
            before = g.messages;
            pthread_mutex_unlock(&g.mu);
            int r = run_command(c, cmd);
            if (r < 0) { fprintf(stderr, "ws_client: bad command \"%s\"\n", cmd); rc = 2; break; }
            if (r > 0) break;
            const char c0 = cmd[strspn(cmd, " ")];
            if (c0 != 'h' && c0 != 'w') wait_messages(before + 1, 10000);  /* relayed: no reply */
            else usleep(100000);
        }
        free(copy);
        usleep((useconds_t)wait_ms * 1000);
    } else if (scan_ms > 0) {
        scan(c, scan_ms);
    } else {
        char line[1024];
        while (fgets(line, sizeof line, stdin)) {
            int r = run_command(c, line);
            if (r > 0) break;
            if (r < 0) fprintf(stderr, "ws_client: commands: h N, s N, p N, c, u, q\n");
        }
    }
    mg_websocket_client_write(c, MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE, "", 0);
    mg_close_connection(c);
    mg_exit_library();
    return rc;
}
