/*
 * bench_rpc.c — what preparing a fork costs when the model's layers live on
 * RPC workers (docs/deploy.md "RPC workers"): local, over 1 worker and over 2
 * workers on loopback, in the same run.
 *
 * Why: --rpc lets a model bigger than one machine's memory run at all, but
 * every decode sends each token's activations through the workers in turn
 * and waits for each answer. On loopback the network itself is nearly free,
 * so the ratios printed here are the protocol's own floor (serialising the
 * graph, a round trip per device per decode, copies in and out); a real
 * network adds its latency per round trip on top.
 *
 * The workers are this program's own children (fork, then fp_rpc_serve on
 * a free loopback port, as `forkpoint worker` does), started before any
 * llama.cpp state exists: three, since a worker serves one client at a
 * time (one for "1 worker", two for "2 workers"). Each placement loads the
 * model, opens a fork forced at the end of the prompt
 * (bench_forced_fork_settings), and the three recompute their fork in turn
 * --reps times (bench_time_refork, as bench_fork's (a)). It prints the
 * median of each and the ratios to local; nothing here asserts a time.
 *
 * Usage: bench_rpc [--model PATH] [--k N] [--lookahead L] [--threads N]
 *                  [--prompt-tokens N] [--reps N]
 */
#include "bench_util.h"

#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct options {
    char model[4096];
    int32_t k, lookahead, threads, prompt_tokens, reps;
} options;

static void usage(void) {
    fprintf(stderr, "usage: bench_rpc [--model PATH] [--k N] [--lookahead L] [--threads N] [--prompt-tokens N] [--reps N]\n"
                    "  defaults: stories260K, k 8, lookahead 12, threads 1 (here and in each worker),\n"
                    "            prompt 128 tokens, 9 timed repetitions after 1 warm-up\n");
}

#define int_arg(flag, v, lo, hi) bench_int_arg("bench_rpc", flag, v, lo, hi, usage)

/* A free loopback port (bind to 0, read it, close: the worker binds it next). */
static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t l = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || getsockname(fd, (struct sockaddr *)&a, &l) != 0) {
        perror("bench_rpc: free port");
        exit(1);
    }
    close(fd);
    return ntohs(a.sin_port);
}

/* A worker child on port; returns its pid once it answers the protocol. */
static pid_t start_worker(int port, int threads) {
    pid_t pid = fork();
    if (pid < 0) { perror("bench_rpc: fork"); exit(1); }
    if (pid == 0) {
        signal(SIGPIPE, SIG_IGN);
        if (!freopen("/dev/null", "w", stdout)) _exit(1);   /* the server's banner */
        fp_error err = {0};
        fp_rpc_serve("127.0.0.1", port, threads, &err);
        fprintf(stderr, "bench_rpc: worker: %s\n", err.message);
        _exit(1);
    }
    fp_rpc_endpoint e = { .port = port };
    snprintf(e.host, sizeof e.host, "127.0.0.1");
    for (int i = 0; i < 200; i++) {
        fp_error err = {0};
        if (fp_rpc_probe(&e, 1000, &err) == FP_OK) return pid;
        usleep(50000);
    }
    fprintf(stderr, "bench_rpc: the worker on %d did not start\n", port);
    exit(1);
}

typedef struct placement {
    const char *name, *rpc;
    fp_model *m;
    fp_engine *e;
    fp_session *s;
    fp_settings set;
    double load_ms, new_ms, fork_ms, *ms;
    uint64_t calls;
    int32_t n_prompt;
} placement;

/* Loads the model on the placement and opens the forced fork (timed). */
static void open_placement(placement *pl, const options *o, const char *path) {
    fp_error err = {0};
    fp_model_params mp = fp_model_default_params();
    mp.rpc = pl->rpc;
    double t0 = bench_now_ms();
    pl->m = fp_model_load(path, &mp, &err);
    if (!pl->m) { fprintf(stderr, "bench_rpc: %s: %s\n", pl->name, err.message); exit(1); }
    fp_engine_params ep = fp_engine_default_params();
    ep.n_threads = o->threads;
    pl->e = fp_engine_new(pl->m, &ep, &err);
    if (!pl->e) { fprintf(stderr, "bench_rpc: %s: engine: %s\n", pl->name, err.message); exit(1); }
    pl->load_ms = bench_now_ms() - t0;
    char *prompt = bench_prompt(pl->m, o->prompt_tokens, &pl->n_prompt);
    pl->set = bench_forced_fork_settings(o->k, o->lookahead);
    t0 = bench_now_ms();
    pl->s = fp_session_new(pl->e, prompt, &pl->set, &err);
    pl->new_ms = bench_now_ms() - t0;
    free(prompt);
    if (!pl->s || fp_session_state(pl->s) != FP_STATE_AT_FORK) {
        fprintf(stderr, "bench_rpc: %s: no fork after the prompt: %s\n", pl->name, err.message);
        exit(1);
    }
    pl->ms = calloc((size_t)o->reps, sizeof *pl->ms);
    bench_time_refork(pl->s, pl->e, &pl->set, &err);   /* warm-up */
}

/* One timed recomputation of the placement's fork, as repetition i. */
static void time_placement(placement *pl, int i) {
    fp_error err = {0};
    bench_run r = bench_time_refork(pl->s, pl->e, &pl->set, &err);
    if (!r.ok) { fprintf(stderr, "bench_rpc: %s: %s\n", pl->name, err.message); exit(1); }
    pl->ms[i] = r.ms;
    pl->calls = r.calls;
}

static void close_placement(placement *pl) {
    fp_session_free(pl->s);
    fp_engine_free(pl->e);
    fp_model_free(pl->m);
    free(pl->ms);
}

int main(int argc, char **argv) {
    options o = { .k = 8, .lookahead = 12, .threads = 1, .prompt_tokens = 128, .reps = 9 };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(); return 0; }
        if (i + 1 >= argc) { usage(); return 2; }
        const char *v = argv[++i];
        if (!strcmp(a, "--model")) snprintf(o.model, sizeof o.model, "%s", v);
        else if (!strcmp(a, "--k")) o.k = int_arg(a, v, 1, 64);
        else if (!strcmp(a, "--lookahead")) o.lookahead = int_arg(a, v, 1, 64);
        else if (!strcmp(a, "--threads")) o.threads = int_arg(a, v, 1, 512);
        else if (!strcmp(a, "--prompt-tokens")) o.prompt_tokens = int_arg(a, v, 2, 1024);
        else if (!strcmp(a, "--reps")) o.reps = int_arg(a, v, 1, 1000);
        else { usage(); return 2; }
    }
    /* the workers first: fork before any llama.cpp thread exists. Three:
     * one for the 1-worker placement, two for the other, so that all three
     * placements stay loaded and their repetitions interleave (a shared
     * machine's load then falls on all of them alike) */
    pid_t w[3];
    int port[3];
    for (int i = 0; i < 3; i++) {
        port[i] = free_port();
        w[i] = start_worker(port[i], o.threads);
    }
    char one[64], two[128];
    snprintf(one, sizeof one, "127.0.0.1:%d", port[0]);
    snprintf(two, sizeof two, "127.0.0.1:%d,127.0.0.1:%d", port[1], port[2]);

    char path[4096], date[16];
    bench_resolve_model(o.model[0] ? o.model : NULL, path, sizeof path);
    bench_quiet_llama();
    bench_today(date);
    printf("bench_rpc %s: %s, k %d, lookahead %d, %d thread(s) here and per worker, load %.2f\n", date,
           bench_basename(path), o.k, o.lookahead, o.threads, bench_loadavg());
    placement pl[3] = { { .name = "local" }, { .name = "1 worker", .rpc = one }, { .name = "2 workers", .rpc = two } };
    for (int i = 0; i < 3; i++) open_placement(&pl[i], &o, path);
    for (int r = 0; r < o.reps; r++)
        for (int i = 0; i < 3; i++) time_placement(&pl[(i + r) % 3], r);
    for (int i = 0; i < 3; i++) {
        pl[i].fork_ms = bench_median(pl[i].ms, o.reps);
        printf("  %-10s model+engine %7.1f ms   prompt (%d tokens) %7.1f ms   fork median %7.2f ms (%llu decodes)\n",
               pl[i].name, pl[i].load_ms, pl[i].n_prompt, pl[i].new_ms, pl[i].fork_ms, (unsigned long long)pl[i].calls);
    }
    printf("  fork preparation: 1 worker / local %.2fx, 2 workers / local %.2fx (loopback); "
           "prompt: %.2fx, %.2fx; load %.2f\n",
           pl[1].fork_ms / pl[0].fork_ms, pl[2].fork_ms / pl[0].fork_ms,
           pl[1].new_ms / pl[0].new_ms, pl[2].new_ms / pl[0].new_ms, bench_loadavg());
    for (int i = 0; i < 3; i++) close_placement(&pl[i]);
    for (int i = 0; i < 3; i++) { kill(w[i], SIGTERM); waitpid(w[i], NULL, 0); }
    return 0;
}
