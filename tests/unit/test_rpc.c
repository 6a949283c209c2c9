/*
 * test_rpc.c — the library's side of one model on many machines
 * (src/core/rpc.c): the --rpc list parser, the probe's answers for each
 * kind of unreachable worker, fp_rpc_serve's refusals, a model placed on a
 * real worker (a forked child running fp_rpc_serve) computing the same
 * fork as the local engine, and a worker killed under a session routed to
 * the lost handler with the worker named (in a child process, since the
 * handler ends the process). tests/rpc/run.sh drives the same through the
 * command line and the server.
 */
#include "forkpoint.h"
#include "harness.h"

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* llama.cpp's RPC client keeps or leaks a few objects of its own
 * (tests/rpc/lsan.supp says which); the tests run from the repository root. */
const char *__lsan_default_options(void);
const char *__lsan_default_options(void) { return "suppressions=tests/rpc/lsan.supp:print_suppressions=0"; }
/* the clang build's operator new is libstdc++'s (no frame pointers): the slow
 * unwinder sees past it to the function the suppressions name */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "fast_unwind_on_malloc=0"; }

/* A listening loopback socket on a free port (never accepted from). */
static int listener(int *port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t l = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 4) || getsockname(fd, (struct sockaddr *)&a, &l))
        return -1;
    *port = ntohs(a.sin_port);
    return fd;
}

static int free_port(void) {
    int p = 0, fd = listener(&p);
    if (fd >= 0) close(fd);
    return p;
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static fp_rpc_endpoint ep(int port) {
    fp_rpc_endpoint e = { .port = port };
    snprintf(e.host, sizeof e.host, "127.0.0.1");
    return e;
}

/* A worker in a child process; returns its pid once it answers. */
static pid_t start_worker(int port) {
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGPIPE, SIG_IGN);
        if (!freopen("/dev/null", "w", stdout)) _exit(1);
        fp_error err = {0};
        fp_rpc_serve("127.0.0.1", port, 1, &err);
        _exit(1);
    }
    fp_rpc_endpoint e = ep(port);
    for (int i = 0; i < 200; i++) {
        fp_error err = {0};
        if (fp_rpc_probe(&e, 500, &err) == FP_OK) return pid;
        usleep(50000);
    }
    return pid;
}

static void parse_lists(void) {
    TEST("--rpc lists");
    fp_rpc_endpoint e[FP_RPC_MAX];
    int n = -1;
    fp_error err = {0};
    CHECK(fp_rpc_parse("127.0.0.1:50052", e, FP_RPC_MAX, &n, &err) == FP_OK && n == 1 && e[0].port == 50052 &&
          !strcmp(e[0].host, "127.0.0.1"));
    CHECK(fp_rpc_parse("a.example:1,b-2:65535,10.0.0.3:50052", e, FP_RPC_MAX, &n, &err) == FP_OK && n == 3 &&
          !strcmp(e[1].host, "b-2") && e[1].port == 65535 && !strcmp(e[2].host, "10.0.0.3"));
    char many[512] = "";
    for (int i = 0; i < FP_RPC_MAX; i++) snprintf(many + strlen(many), sizeof many - strlen(many), "%sh%d:1", i ? "," : "", i);
    CHECK(fp_rpc_parse(many, e, FP_RPC_MAX, &n, &err) == FP_OK && n == FP_RPC_MAX);
    strcat(many, ",one-more:2");
    CHECK(fp_rpc_parse(many, e, FP_RPC_MAX, &n, &err) == FP_ERR_ARG && strstr(err.message, "at most 16"));
    const char *bad[] = { "", "host", ":80", "h:", "h:0", "h:65536", "h:123456", "h:8x", "h:-1", "a:1,,b:2", "a:1,",
                          ",a:1", "a:1,a:1", "a b:1", "[::1]:80", "h:1:2" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&err, 0, sizeof err);
        fp_status st = fp_rpc_parse(bad[i], e, FP_RPC_MAX, &n, &err);
        CHECKF(st == FP_ERR_ARG && strstr(err.message, "--rpc"), "\"%s\": %s", bad[i], err.message);
    }
    CHECK(fp_rpc_parse(NULL, e, FP_RPC_MAX, &n, &err) == FP_ERR_ARG);
    char longhost[400];
    memset(longhost, 'h', 300);
    strcpy(longhost + 300, ":1");
    CHECK(fp_rpc_parse(longhost, e, FP_RPC_MAX, &n, &err) == FP_ERR_ARG && strstr(err.message, "too long"));
}

static void probes(void) {
    TEST("the probe: refused, silent, not a worker, unknown host");
    fp_error err = {0};
    fp_rpc_endpoint dead = ep(free_port());
    CHECKF(fp_rpc_probe(&dead, 500, &err) == FP_ERR_IO && strstr(err.message, "unreachable"), "%s", err.message);
    int sp = 0, sfd = listener(&sp);   /* accepts (the kernel queues it), never answers */
    fp_rpc_endpoint silent = ep(sp);
    double t0 = now_ms();
    CHECKF(fp_rpc_probe(&silent, 300, &err) == FP_ERR_IO && strstr(err.message, "did not answer"), "%s", err.message);
    CHECKF(now_ms() - t0 < 3000, "the silent probe took %.0f ms", now_ms() - t0);
    close(sfd);
    int hp = 0, hfd = listener(&hp);
    pid_t http = fork();
    if (http == 0) {   /* answers like an HTTP server */
        int c = accept(hfd, NULL, NULL);
        char buf[64];
        if (recv(c, buf, sizeof buf, 0) > 0 && send(c, "HTTP/1.1 400 Bad Request\r\n\r\n", 28, MSG_NOSIGNAL) < 0) _exit(1);
        _exit(0);
    }
    close(hfd);
    fp_rpc_endpoint h = ep(hp);
    CHECKF(fp_rpc_probe(&h, 2000, &err) == FP_ERR_IO && strstr(err.message, "not a"), "%s", err.message);
    waitpid(http, NULL, 0);
    fp_rpc_endpoint unknown = { .port = 1 };
    snprintf(unknown.host, sizeof unknown.host, "no-such-host.invalid");
    CHECKF(fp_rpc_probe(&unknown, 500, &err) == FP_ERR_IO && strstr(err.message, "cannot resolve"), "%s", err.message);
}

static void serve_refusals(void) {
    TEST("fp_rpc_serve refuses what it cannot serve");
    fp_error err = {0};
    CHECK(fp_rpc_serve("127.0.0.1", 0, 1, &err) == FP_ERR_ARG);
    CHECK(fp_rpc_serve("::1", 50052, 1, &err) == FP_ERR_ARG && strstr(err.message, "IPv4"));
    CHECK(fp_rpc_serve("localhost", 50052, 1, &err) == FP_ERR_ARG);
    int p = 0, fd = listener(&p);
    CHECKF(fp_rpc_serve("127.0.0.1", p, 1, &err) == FP_ERR_IO && strstr(err.message, "in use"), "%s", err.message);
    close(fd);
}

/* The first fork of a fixed prompt on a model (local or on workers). */
static bool first_fork(const char *rpc, fp_candidate *out, int32_t *n, fp_error *err) {
    fp_model_params mp = fp_model_default_params();
    mp.rpc = rpc;
    fp_model *m = fp_model_load(h_model_path("stories260K.gguf"), &mp, err);
    if (!m) return false;
    fp_engine_params ep = fp_engine_default_params();
    ep.n_threads = 1;
    fp_engine *e = fp_engine_new(m, &ep, err);
    fp_session *s = e ? fp_session_new(e, "Once upon a time, there was a", NULL, err) : NULL;
    const fp_fork *f = s ? fp_session_fork(s) : NULL;
    if (f) {
        *n = f->n_candidates;
        for (int32_t i = 0; i < f->n_candidates; i++) out[i] = f->candidates[i];
    }
    fp_session_free(s);
    fp_engine_free(e);
    fp_model_free(m);
    return f != NULL;
}

static int g_pipe[2];
static void lost_to_pipe(const char *why) {
    if (write(g_pipe[1], why, strlen(why)) < 0) _exit(41);
    _exit(42);
}

static void on_a_worker(void) {
    TEST("a model on a worker computes the local fork; a lost worker reaches the handler");
    int port = free_port();
    pid_t w = start_worker(port);
    char rpc[64];
    snprintf(rpc, sizeof rpc, "127.0.0.1:%d", port);
    fp_error err = {0};
    static fp_candidate local[64], remote[64];
    int32_t nl = 0, nr = 0;
    CHECKF(first_fork(NULL, local, &nl, &err), "%s", err.message);
    CHECKF(first_fork(rpc, remote, &nr, &err), "%s", err.message);
    CHECK(nl > 0 && nl == nr);
    for (int32_t i = 0; i < nl && i < nr; i++)
        CHECKF(!strcmp(local[i].text, remote[i].text) && local[i].prob == remote[i].prob, "candidate %d: %s %g vs %s %g", i,
               local[i].text, local[i].prob, remote[i].text, remote[i].prob);
    /* unreachable at load: NULL and why, no abort */
    fp_model_params mp = fp_model_default_params();
    char dead[64];
    snprintf(dead, sizeof dead, "127.0.0.1:%d", free_port());
    mp.rpc = dead;
    fp_model *m = fp_model_load(h_model_path("stories260K.gguf"), &mp, &err);
    CHECKF(!m && err.code == FP_ERR_IO && strstr(err.message, "unreachable"), "%s", err.message);
    fp_model_free(m);
    mp.vocab_only = true;   /* a tokenizer needs no worker */
    m = fp_model_load(h_model_path("stories260K.gguf"), &mp, &err);
    CHECK(m != NULL);
    fp_model_free(m);

    /* the worker dies under a session: in a child, whose handler reports why */
    if (pipe(g_pipe) != 0) { CHECK(false); return; }
    int go[2];
    if (pipe(go) != 0) { CHECK(false); return; }
    pid_t c = fork();
    if (c == 0) {
        signal(SIGPIPE, SIG_IGN);
        close(g_pipe[0]);
        close(go[1]);
        fp_rpc_set_lost_handler(lost_to_pipe);
        fp_model_params p = fp_model_default_params();
        p.rpc = rpc;
        fp_error e2 = {0};
        fp_model *cm = fp_model_load(h_model_path("stories260K.gguf"), &p, &e2);
        fp_engine_params ep = fp_engine_default_params();
        ep.n_threads = 1;
        fp_engine *ce = cm ? fp_engine_new(cm, &ep, &e2) : NULL;
        fp_session *s = ce ? fp_session_new(ce, "Once upon a time", NULL, &e2) : NULL;
        if (!s) _exit(40);
        char ready = 1;
        if (read(go[0], &ready, 1) != 1) _exit(38);   /* the parent has killed the worker */
        for (int i = 0; i < 20; i++) fp_session_choose(s, 0, false, FP_BY_SCRIPT, &e2);
        _exit(43);   /* the session went on without its worker: wrong */
    }
    close(g_pipe[1]);
    close(go[0]);
    /* wait until the child's model is on the worker: the worker holds it */
    usleep(300 * 1000);
    for (int i = 0; i < 100; i++) {
        fp_rpc_endpoint e = ep(port);
        fp_error pe = {0};
        if (fp_rpc_probe(&e, 100, &pe) != FP_OK) break;   /* busy with the child: it is loaded */
        usleep(100 * 1000);
    }
    kill(w, SIGKILL);
    waitpid(w, NULL, 0);
    if (write(go[1], "g", 1) != 1) CHECK(false);
    close(go[1]);
    int st = 0;
    waitpid(c, &st, 0);
    char why[600] = "";
    ssize_t got = read(g_pipe[0], why, sizeof why - 1);
    if (got > 0) why[got] = 0;
    close(g_pipe[0]);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 42, "the child ended with %d (%s)", WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st), why);
    char want[64];
    snprintf(want, sizeof want, "RPC worker 127.0.0.1:%d is gone", port);
    CHECKF(strstr(why, want) != NULL, "why: \"%s\"", why);
}

int main(void) {
    parse_lists();
    probes();
    serve_refusals();
    on_a_worker();
    return h_finish();
}
