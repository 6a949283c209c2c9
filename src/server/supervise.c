/*
 * supervise.c — keeping `forkpoint-serve --rpc` up when an RPC worker dies.
 *
 * Why a supervisor process: llama.cpp b10679's RPC client aborts the whole
 * process when a connected worker fails (no error return exists; upstream
 * #25938), so a server whose layers live on workers cannot survive that in
 * process. With --rpc, main forks before any thread exists: the child is
 * the server; the parent only waits. When the child reports a lost worker
 * (it prints which one and exits SRV_EXIT_RPC), the parent starts a new
 * child, once the workers answer again, with backoff (1 s doubling to 30 s). The
 * new child reopens every story from the database, so nothing committed
 * is lost (the same path as a restart after kill -9: tests/crash); a
 * choice in flight when the worker died gets its connection closed and is
 * not committed, and the client retries it. /api/health of the new child
 * says how many restarts there were and why the last one happened.
 *
 * Between children the parent answers on the server's port itself: every
 * request gets 503 {"error": why, "retryable": true} with Retry-After, so a
 * client learns why instead of meeting a closed port. It stops (civetweb's
 * threads joined, the port freed) before the next child is forked; the
 * port is closed only while a child loads the model. Not with --tls-cert
 * (the stand-in speaks plain HTTP): then the port stays closed meanwhile.
 *
 * SIGINT/SIGTERM to the parent go to the child, and the parent exits with
 * the child's code. Any other exit of the child ends the parent too.
 */
#include "server/serve.h"

#include <civetweb.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int g_why_fd = -1;   /* the child's end of the pipe that carries why */

/* The lost worker, in the child (on llama.cpp's RPC thread): say why (the
 * log, and the parent for the next child's /api/health), exit for the
 * parent to restart. */
void srv_supervise_tell(const char *why)
{
    if (g_why_fd >= 0 && write(g_why_fd, why, strlen(why)) < 0) { /* the log line still says it */ }
}

static void rpc_lost(const char *why)
{
    srv_supervise_tell(why);
    fprintf(stderr, "forkpoint-serve: %s; restarting the server when the workers answer "
                    "(committed choices are in the database)\n", why);
    _exit(SRV_EXIT_RPC);
}

/* The stand-in's one handler: 503, why, retry. */
static int unavailable(struct mg_connection *c, void *why)
{
    char msg[700];
    snprintf(msg, sizeof msg, "the model is unavailable: %s; the server restarts when its RPC workers answer",
             (const char *)why);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", msg);
    cJSON_AddBoolToObject(o, "retryable", true);
    char *j = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!j) return 500;
    mg_printf(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json; charset=utf-8\r\n"
                 "Content-Length: %zu\r\nRetry-After: 2\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n%s",
              strlen(j), j);
    free(j);
    return 503;
}

/* Starts the stand-in on the server's address, or NULL (TLS, or the port
 * is not free yet). A few threads: it only says why. */
static struct mg_context *stand_in(const srv_config *cfg, const char *why)
{
    if (cfg->tls_cert) return NULL;
    char ports[300];
    snprintf(ports, sizeof ports, strchr(cfg->host, ':') ? "[%s]:%d" : "%s:%d", cfg->host, cfg->port);
    const char *opts[] = { "listening_ports", ports, "num_threads", "4", "request_timeout_ms", "5000", NULL };
    struct mg_callbacks cb;
    memset(&cb, 0, sizeof cb);
    mg_init_library(0);
    struct mg_context *ctx = mg_start(&cb, NULL, opts);
    if (ctx) mg_set_request_handler(ctx, "**", unavailable, (void *)why);
    else mg_exit_library();
    return ctx;
}

static void stand_in_stop(struct mg_context *ctx)
{
    if (!ctx) return;
    mg_stop(ctx);   /* joins its threads: the parent forks single-threaded again */
    mg_exit_library();
}

int srv_supervise(const srv_config *cfg)
{
    fp_rpc_set_lost_handler(rpc_lost);
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGCHLD);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    int restarts = 0, delay = 1;
    char last[600] = "";
    for (;;) {
        fflush(NULL);
        int why_pipe[2];
        if (pipe(why_pipe) != 0) { fprintf(stderr, "forkpoint-serve: pipe: %s\n", strerror(errno)); return 1; }
        pid_t pid = fork();
        if (pid < 0) { fprintf(stderr, "forkpoint-serve: fork: %s\n", strerror(errno)); return 1; }
        if (pid == 0) {
            sigset_t chld;
            sigemptyset(&chld);
            sigaddset(&chld, SIGCHLD);
            pthread_sigmask(SIG_UNBLOCK, &chld, NULL);
            close(why_pipe[0]);
            g_why_fd = why_pipe[1];
            if (restarts) {
                char n[16];
                snprintf(n, sizeof n, "%d", restarts);
                setenv("FORKPOINT_RPC_RESTARTS", n, 1);
                setenv("FORKPOINT_RPC_LAST_LOSS", last, 1);
            }
            return -1;   /* serve */
        }
        close(why_pipe[1]);
        time_t started = time(NULL);
        int status = 0;
        for (;;) {
            int sig = 0;
            sigwait(&sigs, &sig);
            if (sig == SIGCHLD) {
                if (waitpid(pid, &status, WNOHANG) == pid) break;
                continue;
            }
            kill(pid, sig);   /* SIGINT / SIGTERM: the child stops cleanly */
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
            return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
        }
        char why[sizeof last];
        ssize_t got = read(why_pipe[0], why, sizeof why - 1);   /* the child has exited: no wait */
        close(why_pipe[0]);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != SRV_EXIT_RPC)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (time(NULL) - started > 60) delay = 1;   /* it had served: start over */
        restarts++;
        if (got > 0) { why[got] = 0; snprintf(last, sizeof last, "%s", why); }
        else if (!last[0]) snprintf(last, sizeof last, "an RPC worker of %s was lost", cfg->rpc);
        fprintf(stderr, "forkpoint-serve: restart %d in %d s\n", restarts, delay);
        struct timespec ts = { .tv_sec = delay };
        sigset_t stop;
        sigemptyset(&stop);
        sigaddset(&stop, SIGINT);
        sigaddset(&stop, SIGTERM);
        struct mg_context *ctx = stand_in(cfg, last);
        int got_sig = sigtimedwait(&stop, NULL, &ts);
        stand_in_stop(ctx);
        if (got_sig > 0) return 0;
        if (delay < 30) delay = delay * 2 > 30 ? 30 : delay * 2;
    }
}
