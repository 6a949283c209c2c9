/*
 * bench_remote.c — what a remote engine (--backend llama-server:URL) costs a
 * fork, against the local engine, on the same model in the same run.
 *
 * Why: over a remote engine every logits row is an HTTP request (remote.c);
 * the word beam's steps and the previews' steps are round trips, softened by
 * parallel requests, the server's prompt cache and the look-ahead each
 * request brings back. Whether that is fast enough decides when a person
 * should pick a remote engine. This program starts a forkpoint-serve on the
 * model as the remote engine (a child, on a free loopback port: the server
 * side of the comparison is the same llama.cpp code), then, alternating
 * local and remote, opens a fork on a fresh prompt each time (so no cache of
 * either side has seen it; a fork is forced at the end of the prompt, word
 * candidates, k, greedy previews) and times fp_session_new:
 *
 *   cloud     lookahead 0: the prompt and the cloud's words, no preview
 *   previews  lookahead L: the same and every preview
 *
 * It prints the medians, the remote/local ratios of this run and the remote
 * engine's request counts. Nothing here asserts a time.
 *
 * Usage: bench_remote [--model PATH] [--k N] [--lookahead L] [--reps N] [--threads N]
 */
#include "bench_util.h"
#include "forkpoint_fetch.h"

#include <curl/curl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void usage(void) {
    fprintf(stderr, "usage: bench_remote [--model PATH] [--k N] [--lookahead L] [--reps N] [--threads N]\n");
    exit(2);
}

static size_t sink(char *p, size_t s, size_t n, void *u) { (void)p; (void)u; return s * n; }

/* True once GET url answers 200 (polls for up to 120 s). */
static bool wait_up(const char *url) {
    for (int i = 0; i < 1200; i++) {
        CURL *h = curl_easy_init();
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 1000L);
        long code = 0;
        if (curl_easy_perform(h) == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
        curl_easy_cleanup(h);
        if (code == 200) return true;
        usleep(100 * 1000);
    }
    return false;
}

/* One fork on a fresh prompt; ms, or -1 with the reason printed. */
static double one_fork(fp_engine *e, int rep, const char *who, int32_t k, int32_t lookahead) {
    static const char *starts[] = { "Once upon a time, there was a", "One day, a little", "The sun was", "Tom and Sue went to the",
                                    "Lily had a big", "In the park, the dog", "Mom said to Ben that", "The bird flew over the" };
    char prompt[200];
    snprintf(prompt, sizeof prompt, "%s %s%s", starts[rep % 8], rep / 8 % 2 ? "happy " : "", rep / 16 % 2 ? "red" : "");
    fp_settings set = bench_forced_fork_settings(k, lookahead);
    set.granularity = FP_GRAN_WORD;
    set.beam_width = 2 * k;
    fp_error err = {0};
    /* the prompt varies by the lookahead too, so the second run finds no cache of the first */
    char p2[240];
    snprintf(p2, sizeof p2, "%s%s", prompt, lookahead ? "," : "");
    double t0 = bench_now_ms();
    fp_session *s = fp_session_new(e, p2, &set, &err);
    double ms = bench_now_ms() - t0;
    if (!s) { fprintf(stderr, "bench_remote: %s: %s\n", who, err.message); return -1; }
    fp_session_free(s);
    return ms;
}

int main(int argc, char **argv) {
    const char *model_path = NULL;
    int32_t k = 8, lookahead = 8, reps = 12, threads = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--model") && v) { model_path = v; i++; }
        else if (!strcmp(a, "--k") && v) { k = bench_int_arg("bench_remote", a, v, 1, 64, usage); i++; }
        else if (!strcmp(a, "--lookahead") && v) { lookahead = bench_int_arg("bench_remote", a, v, 1, 32, usage); i++; }
        else if (!strcmp(a, "--reps") && v) { reps = bench_int_arg("bench_remote", a, v, 1, 1000, usage); i++; }
        else if (!strcmp(a, "--threads") && v) { threads = bench_int_arg("bench_remote", a, v, 1, 64, usage); i++; }
        else usage();
    }
    char path[PATH_MAX];
    fp_error err = {0};
    if (fp_resolve_default_model(model_path, path, sizeof path, &err) != FP_OK) { fprintf(stderr, "bench_remote: %s\n", err.message); return 2; }

    /* the remote engine: build/release/forkpoint-serve beside build/release/bench/ */
    char exe[PATH_MAX], serve[PATH_MAX + 32];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return 1;
    exe[n] = 0;
    *strrchr(exe, '/') = 0;
    snprintf(serve, sizeof serve, "%s/../forkpoint-serve", exe);
    int port = 20000 + (int)(getpid() % 20000);
    char port_s[16], threads_s[16], db[64], url[64], health[96], backend[96];
    snprintf(port_s, sizeof port_s, "%d", port);
    snprintf(threads_s, sizeof threads_s, "%d", threads);
    snprintf(db, sizeof db, "/tmp/bench_remote_%d.db", (int)getpid());
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    snprintf(health, sizeof health, "%s/health", url);
    snprintf(backend, sizeof backend, "llama-server:%s", url);
    pid_t child = fork();
    if (child == 0) {
        if (!freopen("/dev/null", "w", stdout)) _exit(127);   /* its "listening on" line is not ours */
        execl(serve, serve, "--model", path, "--port", port_s, "--threads", threads_s, "--quiet", "--db", db, "--no-prefetch", (char *)NULL);
        _exit(127);
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (!wait_up(health)) { fprintf(stderr, "bench_remote: %s did not come up on %s\n", serve, url); kill(child, SIGTERM); return 1; }

    fp_model *model = fp_model_load(path, NULL, &err);
    fp_model_params vp = fp_model_default_params();
    vp.vocab_only = true;
    fp_model *vocab = model ? fp_model_load(path, &vp, &err) : NULL;
    fp_engine_params lp = fp_engine_default_params();
    lp.n_threads = threads;
    fp_engine *local = vocab ? fp_engine_new(model, &lp, &err) : NULL;
    fp_engine_params rp = fp_engine_default_params();
    rp.backend = backend;
    fp_engine *remote = local ? fp_engine_new(vocab, &rp, &err) : NULL;
    if (!remote) { fprintf(stderr, "bench_remote: %s\n", err.message); kill(child, SIGTERM); return 1; }

    char day[16];
    bench_today(day);
    printf("bench_remote %s: %s, k %d, lookahead %d, word candidates, %d forks each, threads %d; load %.1f\n",
           day, bench_basename(path), k, lookahead, reps, threads, bench_loadavg());
    double *m[4];
    for (int j = 0; j < 4; j++) m[j] = calloc((size_t)reps, sizeof(double));
    for (int r = 0; r < reps; r++) {
        /* alternate which goes first, so both see the same machine */
        for (int side = 0; side < 2; side++) {
            bool rem = (side + r) % 2 == 1;
            fp_engine *e = rem ? remote : local;
            double c = one_fork(e, r, rem ? "remote" : "local", k, 0);
            double p = one_fork(e, r, rem ? "remote" : "local", k, lookahead);
            if (c < 0 || p < 0) { kill(child, SIGTERM); return 1; }
            m[rem ? 2 : 0][r] = c;
            m[rem ? 3 : 1][r] = p;
        }
    }
    double med[4];
    for (int j = 0; j < 4; j++) med[j] = bench_median(m[j], reps);
    fp_remote_stats rs = fp_engine_remote_stats(remote);
    printf("%-34s %10s %10s\n", "median ms per fork", "cloud", "previews");
    printf("%-34s %10.1f %10.1f\n", "local engine", med[0], med[1]);
    printf("%-34s %10.1f %10.1f\n", "remote (llama-server API, loopback)", med[2], med[3]);
    printf("%-34s %9.2fx %9.2fx\n", "remote / local", med[2] / med[0], med[3] / med[1]);
    printf("remote requests %llu, rows from the look-ahead cache %llu, retries %llu; load %.1f\n",
           (unsigned long long)rs.requests, (unsigned long long)rs.cached, (unsigned long long)rs.retries, bench_loadavg());
    fp_engine_free(remote);
    fp_engine_free(local);
    fp_model_free(vocab);
    fp_model_free(model);
    kill(child, SIGTERM);
    waitpid(child, NULL, 0);
    unlink(db);
    return 0;
}
