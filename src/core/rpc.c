/*
 * rpc.c — one model on many machines: llama.cpp's RPC back end (ggml-rpc).
 *
 * A worker (`forkpoint worker`) serves its machine's CPU and memory
 * through ggml_backend_rpc_start_server; a client (`--rpc HOST:PORT,...`)
 * registers each worker as a ggml device and fp_model_load places the
 * model's layers on those devices, as llama.cpp's common does for --rpc.
 *
 * Why a probe before ggml connects: llama.cpp b10679's RPC client has no
 * connect timeout and aborts the process when a worker cannot be reached,
 * is not a worker, or speaks another protocol version. Each endpoint is
 * first resolved, connected with a timeout and sent the protocol's HELLO
 * (the same bytes ggml sends: command 14, 24 zero capability bytes) with a
 * receive timeout; only when every worker answered with protocol major 6
 * does ggml get the endpoints. A worker serves one client at a time, so a
 * worker busy with another client shows up here as "did not answer".
 *
 * Why a lost handler: once connected, a failed RPC call (the worker died
 * mid-session) ends in GGML_ABORT on ggml's dispatcher thread, and abort()
 * follows whatever the abort callback does (upstream #25938). The callback
 * installed here finds which worker is gone (a short connect to each),
 * words one line and passes it to the front end's handler, which exits
 * cleanly (the CLI) or restarts the server (forkpoint-serve). Aborts that
 * are not about RPC keep ggml's message.
 */
#include "core/internal.h"

#include <errno.h>
#include <ggml-backend.h>
#include <ggml-rpc.h>
#include <ggml.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#define RPC_CMD_HELLO 14

/* ---- the --rpc list */

fp_status fp_rpc_parse(const char *list, fp_rpc_endpoint *out, int cap, int *n, fp_error *err) {
    *n = 0;
    if (!list || !*list) return fpi_fail(err, FP_ERR_ARG, "--rpc wants HOST:PORT[,HOST:PORT...]");
    const char *p = list;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *colon = NULL;
        for (size_t i = 0; i < len; i++) if (p[i] == ':') colon = p + i;
        if (len == 0) return fpi_fail(err, FP_ERR_ARG, "--rpc: an empty entry in \"%.80s\" (want HOST:PORT,...)", list);
        if (!colon || colon == p)
            return fpi_fail(err, FP_ERR_ARG, "--rpc: \"%.*s\" is not HOST:PORT", (int)(len > 80 ? 80 : len), p);
        size_t hl = (size_t)(colon - p), pl = len - hl - 1;
        if (hl >= sizeof out->host)
            return fpi_fail(err, FP_ERR_ARG, "--rpc: host \"%.40s...\" is too long", p);
        for (size_t i = 0; i < hl; i++) {
            unsigned char c = (unsigned char)p[i];
            if (!(c == '.' || c == '-' || c == '_' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
                return fpi_fail(err, FP_ERR_ARG, "--rpc: host \"%.*s\" has a character a host name cannot have (IPv4 or a name)",
                                (int)(hl > 80 ? 80 : hl), p);
        }
        long port = 0;
        if (pl == 0 || pl > 5) port = -1;
        for (size_t i = 0; i < pl && port >= 0; i++) {
            char c = colon[1 + i];
            port = c >= '0' && c <= '9' ? port * 10 + (c - '0') : -1;
        }
        if (port < 1 || port > 65535)
            return fpi_fail(err, FP_ERR_ARG, "--rpc: \"%.*s\" wants a port in 1..65535", (int)(len > 80 ? 80 : len), p);
        if (*n >= cap) return fpi_fail(err, FP_ERR_ARG, "--rpc: at most %d workers", cap);
        fp_rpc_endpoint *e = &out[*n];
        memcpy(e->host, p, hl);
        e->host[hl] = 0;
        e->port = (int)port;
        for (int j = 0; j < *n; j++)
            if (out[j].port == e->port && !strcmp(out[j].host, e->host))
                return fpi_fail(err, FP_ERR_ARG, "--rpc: %s:%d is given twice", e->host, e->port);
        (*n)++;
        if (!end) break;
        p = end + 1;
    }
    return FP_OK;
}

/* ---- probing a worker */

/* Connects to host:port (IPv4, as ggml-rpc does) within timeout_ms.
 * Returns the socket, or -1 with why filled. Cost: one DNS lookup and a TCP
 * handshake, bounded by the timeout. */
static int connect_timeout(const char *host, int port, int timeout_ms, char *why, size_t whylen) {
    struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *res = NULL;
    char ps[8];
    snprintf(ps, sizeof ps, "%d", port);
    int g = getaddrinfo(host, ps, &hints, &res);
    if (g != 0 || !res) { snprintf(why, whylen, "cannot resolve %s: %s", host, gai_strerror(g)); return -1; }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) { freeaddrinfo(res); snprintf(why, whylen, "socket: %s", strerror(errno)); return -1; }
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    int rc = connect(fd, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    if (rc != 0 && errno != EINPROGRESS) {
        snprintf(why, whylen, "%s", strerror(errno));
        close(fd);
        return -1;
    }
    if (rc != 0) {
        struct pollfd pf = { .fd = fd, .events = POLLOUT };
        int pr;
        do pr = poll(&pf, 1, timeout_ms); while (pr < 0 && errno == EINTR);
        if (pr == 0) { snprintf(why, whylen, "no connection within %d ms", timeout_ms); close(fd); return -1; }
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
        if (pr < 0 || soerr) { snprintf(why, whylen, "%s", strerror(pr < 0 ? errno : soerr)); close(fd); return -1; }
    }
    fcntl(fd, F_SETFL, fl);
    return fd;
}

/* Reads or writes exactly n bytes before the deadline (poll per chunk). */
static bool io_all(int fd, void *buf, size_t n, bool writing, int timeout_ms) {
    char *b = buf;
    while (n > 0) {
        struct pollfd pf = { .fd = fd, .events = writing ? POLLOUT : POLLIN };
        int pr;
        do pr = poll(&pf, 1, timeout_ms); while (pr < 0 && errno == EINTR);
        if (pr <= 0) return false;
        ssize_t k = writing ? send(fd, b, n, MSG_NOSIGNAL) : recv(fd, b, n, 0);
        if (k <= 0) return false;
        b += k;
        n -= (size_t)k;
    }
    return true;
}

fp_status fp_rpc_probe(const fp_rpc_endpoint *e, int timeout_ms, fp_error *err) {
    char why[160];
    int fd = connect_timeout(e->host, e->port, timeout_ms, why, sizeof why);
    if (fd < 0) return fpi_fail(err, FP_ERR_IO, "RPC worker %s:%d is unreachable: %s", e->host, e->port, why);
    /* HELLO: | cmd (1) | size (8) | caps (24) |, answer | size (8) = 28 | major minor patch pad caps(24) | */
    unsigned char req[1 + 8 + 24] = { RPC_CMD_HELLO };
    uint64_t sz = 24;
    memcpy(req + 1, &sz, sizeof sz);
    unsigned char rsp[4 + 24];
    uint64_t got = 0;
    bool ok = io_all(fd, req, sizeof req, true, timeout_ms) && io_all(fd, &got, sizeof got, false, timeout_ms);
    if (ok && got != sizeof rsp) {
        close(fd);
        return fpi_fail(err, FP_ERR_IO, "%s:%d is not a Forkpoint/llama.cpp RPC worker (unexpected answer)", e->host, e->port);
    }
    ok = ok && io_all(fd, rsp, sizeof rsp, false, timeout_ms);
    close(fd);
    if (!ok)
        return fpi_fail(err, FP_ERR_IO, "RPC worker %s:%d did not answer within %d ms (not a worker, or busy: "
                        "a worker serves one client at a time)", e->host, e->port, timeout_ms);
    if (rsp[0] != RPC_PROTO_MAJOR_VERSION || rsp[1] > RPC_PROTO_MINOR_VERSION)
        return fpi_fail(err, FP_ERR_IO, "RPC worker %s:%d speaks protocol %d.%d.%d, this build %d.%d.%d", e->host, e->port,
                        rsp[0], rsp[1], rsp[2], RPC_PROTO_MAJOR_VERSION, RPC_PROTO_MINOR_VERSION, RPC_PROTO_PATCH_VERSION);
    return FP_OK;
}

/* ---- a worker lost mid-session */

static fp_rpc_endpoint g_eps[FP_RPC_MAX];
static int g_n_eps;
static fp_rpc_lost_fn g_lost;

void fp_rpc_set_lost_handler(fp_rpc_lost_fn fn) { g_lost = fn; }

/* ggml's abort callback (any thread). Which worker is gone: the one whose
 * port no longer accepts. A dying worker's connection to us can close a
 * moment before its listening socket does, so the ports are tried up to 8
 * times 100 ms apart, until one refuses. (A HELLO cannot tell: a live
 * worker is busy serving this very process.) Cost: at most about a
 * second and a connect per worker per try, once, on the way out. */
static void on_ggml_abort(const char *msg) {
    if (!strstr(msg, "RPC") || !g_lost) {
        fprintf(stderr, "%s\n", msg);   /* what ggml prints without a callback */
        return;                          /* ggml aborts */
    }
    char why[512];
    int off = 0;
    for (int attempt = 0; attempt < 8 && off == 0; attempt++) {
        if (attempt) usleep(100 * 1000);
        for (int i = 0; i < g_n_eps; i++) {
            char w[160];
            int fd = connect_timeout(g_eps[i].host, g_eps[i].port, 300, w, sizeof w);
            if (fd >= 0) { close(fd); continue; }
            off += snprintf(why + off, sizeof why - (size_t)off, "%sRPC worker %s:%d is gone (%s)", off ? "; " : "",
                            g_eps[i].host, g_eps[i].port, w);
            if (off >= (int)sizeof why) break;
        }
    }
    if (off == 0) snprintf(why, sizeof why, "an RPC worker broke the connection (%s)", strchr(msg, ' ') ? strchr(msg, ' ') + 1 : msg);
    g_lost(why);
}

int32_t fpi_rpc_devices(const char *list, int timeout_ms, ggml_backend_dev_t *devs, int32_t cap, fp_error *err) {
    fp_rpc_endpoint eps[FP_RPC_MAX];
    int n = 0;
    if (fp_rpc_parse(list, eps, FP_RPC_MAX, &n, err) != FP_OK) return -1;
    for (int i = 0; i < n; i++)
        if (fp_rpc_probe(&eps[i], timeout_ms, err) != FP_OK) return -1;
    memcpy(g_eps, eps, sizeof eps);
    g_n_eps = n;
    ggml_set_abort_callback(on_ggml_abort);
    int32_t nd = 0;
    for (int i = 0; i < n; i++) {
        char ep[sizeof eps[i].host + 8];
        snprintf(ep, sizeof ep, "%.255s:%d", eps[i].host, eps[i].port);
        ggml_backend_reg_t reg = ggml_backend_rpc_add_server(ep);
        size_t k = reg ? ggml_backend_reg_dev_count(reg) : 0;
        if (k == 0) { fpi_fail(err, FP_ERR_IO, "RPC worker %s offers no device", ep); return -1; }
        for (size_t j = 0; j < k; j++) {
            if (nd + 1 >= cap) { fpi_fail(err, FP_ERR_ARG, "too many RPC devices"); return -1; }
            devs[nd++] = ggml_backend_reg_dev_get(reg, j);
        }
    }
    devs[nd] = NULL;
    return nd;
}

/* ---- serving this machine */

fp_status fp_rpc_serve(const char *host, int port, int threads, fp_error *err) {
    if (port < 1 || port > 65535) return fpi_fail(err, FP_ERR_ARG, "port %d is not in 1..65535", port);
    struct in_addr a;
    if (!host || inet_aton(host, &a) == 0)
        return fpi_fail(err, FP_ERR_ARG, "--host %s is not an IPv4 address (the RPC server binds IPv4)", host ? host : "");
    /* ggml's server only says "Failed to create server socket": bind once
     * here to name the reason (port in use, no permission) */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr = a };
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        int e = errno;
        if (fd >= 0) close(fd);
        return fpi_fail(err, FP_ERR_IO, "cannot listen on %s:%d: %s", host, port, strerror(e));
    }
    close(fd);
    ggml_backend_dev_t cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    if (!cpu) return fpi_fail(err, FP_ERR_MODEL, "this llama.cpp build has no CPU device");
    if (threads <= 0) threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (threads <= 0) threads = 1;
    char ep[64];
    snprintf(ep, sizeof ep, "%s:%d", host, port);
    ggml_backend_rpc_start_server(ep, NULL, (size_t)threads, 1, &cpu);   /* returns only on failure */
    return fpi_fail(err, FP_ERR_IO, "the RPC server on %s stopped", ep);
}
