/*
 * bench_serve.c — how long a person waits for the next fork, through the
 * real web API of a real forkpoint-serve process.
 *
 * Why: what a person feels is the time from clicking a candidate to seeing
 * the next fork. The server's speculative prefetch computes the next fork
 * behind the likeliest candidates while the person is still deciding, so a
 * matching choice should come back without running the model. Only a real
 * server, driven over HTTP at a human pace, shows whether that works: the
 * worker has to use the think time, cancel speculation when a request comes,
 * and share one engine among several sessions. This program therefore starts
 * build/release/forkpoint-serve itself (--port 0, a database in a temporary
 * directory, --quiet), reads its URL from stdout, drives it with scripted
 * choosers over libcurl, and stops it at the end. It measures, in one run:
 *
 *   1. selection -> next fork: the wall time of POST /api/sessions/{id}/choose
 *      until the whole response (the state with the next fork) has arrived,
 *      one session at a time, on a server with prefetch (the default) and on
 *      one with --no-prefetch; p50, p95, mean, the hit rate (responses with
 *      "last_prefetched": true) and the speed-up (no-prefetch p50 / prefetch
 *      p50). On stories260K and, when it exists, on the synthetic 0.5B-body
 *      model made by gen_model.
 *   2. several sessions at once (1, 4 and 16 by default), one thread and one
 *      session each, prefetch on: latency p50/p95/p99, hit rate and
 *      throughput (selections per second and forks shown per second).
 *
 * The scripted chooser: at each fork it "thinks" for think-ms +-30% (a
 * fixed-seed generator, so every run and both modes see the same choices),
 * then takes the top candidate 70% of the time and otherwise one of the
 * others uniformly, the candidate alone (accept_preview false). Sessions use
 * the prompt "Once upon a time, there was a little" and {"max_tokens": 300};
 * when one ends, the chooser starts a new one. The generation is greedy and
 * seeded and the choices come from a fixed seed, so both servers write the
 * same stories wherever a prefetched outcome equals the direct one (checked
 * on stories260K; on a random-weight model near-ties can differ).
 *
 * The machine is shared and noisy: only ratios within one run mean much, and
 * nothing here asserts a time.
 *
 * Usage: bench_serve [--server PATH] [--model PATH] [--synth PATH] [--threads N]
 *                    [--forks N] [--synth-forks N] [--think-ms N] [--synth-think-ms N]
 *                    [--conc LIST] [--conc-seconds N] [--conc-think-ms N] [--seed N]
 *                    [--verbose]
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#define PROMPT "Once upon a time, there was a little"
#define CREATE_BODY "{\"prompt\":\"" PROMPT "\",\"settings\":{\"max_tokens\":300}}"
#define MAX_LEVELS 8

/* ---- options --------------------------------------------------------------- */

typedef struct options {
    char server[4096];       /* forkpoint-serve binary */
    char model[4096];        /* "" = the server's own default (stories260K) */
    char synth[4096];        /* the synthetic 0.5B-body model */
    int threads;             /* the server's --threads */
    int forks;               /* part 1: selections per mode on the main model */
    int synth_forks;         /* part 1 on the synthetic model (0 skips it) */
    int think_ms;            /* part 1: mean decision time */
    int synth_think_ms;      /* part 1 on the synthetic model: mean decision time */
    int conc[MAX_LEVELS];    /* part 2: numbers of concurrent sessions */
    int n_conc;
    int conc_seconds;        /* part 2: timed window per level */
    int conc_think_ms;       /* part 2: mean decision time */
    unsigned seed;
    bool verbose;            /* one line per selection on stderr */
} options;

/* Why a help text with the defaults: the defaults decide the runtime (about
 * five minutes), and whoever raises them should see what they trade. */
static void usage(void)
{
    fprintf(stderr,
        "usage: bench_serve [--server PATH] [--model PATH] [--synth PATH] [--threads N]\n"
        "                   [--forks N] [--synth-forks N] [--think-ms N] [--synth-think-ms N]\n"
        "                   [--conc LIST] [--conc-seconds N] [--conc-think-ms N] [--seed N]\n"
        "                   [--verbose]\n"
        "  --server        forkpoint-serve (default: ../forkpoint-serve beside this program)\n"
        "  --model         main model (default: the server's default, stories260K)\n"
        "  --synth         synthetic model (default: ${FORKPOINT_CACHE:-${XDG_CACHE_HOME:-~/.cache}/forkpoint}\n"
        "                  /models/synthetic-0.5b-q8_0.gguf; skipped when absent)\n"
        "  --threads       the server's model threads (default 1)\n"
        "  --forks         part 1: selections per mode on the main model (default 60)\n"
        "  --synth-forks   part 1: selections per mode on the synthetic model (default 10, 0 skips)\n"
        "  --think-ms      part 1: mean decision time, jittered +-30%% (default 1000)\n"
        "  --synth-think-ms part 1 on the synthetic model: mean decision time (default: --think-ms)\n"
        "  --conc          part 2: concurrent sessions, comma-separated (default 1,4,16; 0 skips)\n"
        "  --conc-seconds  part 2: timed window per level (default 12)\n"
        "  --conc-think-ms part 2: mean decision time (default: --think-ms)\n"
        "  --seed          chooser seed (default 1)\n"
        "  --verbose       one line per selection on stderr (latency, server's last_ms, hit)\n");
}

/* Reads an integer flag value; exits with the usage on junk or out of range. */
static int int_arg(const char *flag, const char *v, int lo, int hi)
{
    char *end = NULL;
    errno = 0;
    const long x = strtol(v, &end, 10);
    if (!*v || *end || errno || x < lo || x > hi) {
        fprintf(stderr, "bench_serve: %s wants an integer in [%d, %d]\n", flag, lo, hi);
        usage();
        exit(2);
    }
    return (int)x;
}

/* Parses "1,4,16" into o->conc. Why a list: the levels are what part 2 is
 * about, and a quick check wants fewer ("--conc 4") or none ("--conc 0"). */
static void parse_levels(options *o, const char *v)
{
    o->n_conc = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", v);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        const int n = int_arg("--conc", t, 0, 64);
        if (n == 0) continue;
        if (o->n_conc == MAX_LEVELS) { fprintf(stderr, "bench_serve: at most %d levels\n", MAX_LEVELS); exit(2); }
        o->conc[o->n_conc++] = n;
    }
}

/* Where gen_model writes the synthetic model (same rule as gen_model). */
static void default_synth(char *out, size_t cap)
{
    const char *fc = getenv("FORKPOINT_CACHE"), *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (fc && *fc) snprintf(out, cap, "%s/models/synthetic-0.5b-q8_0.gguf", fc);
    else if (xdg && *xdg) snprintf(out, cap, "%s/forkpoint/models/synthetic-0.5b-q8_0.gguf", xdg);
    else if (home && *home) snprintf(out, cap, "%s/.cache/forkpoint/models/synthetic-0.5b-q8_0.gguf", home);
    else out[0] = '\0';
}

/* The server binary beside the benchmarks: build/release/bench/bench_serve
 * -> build/release/forkpoint-serve. Why from /proc/self/exe: the benchmark
 * then works from any directory, like the others. */
static void default_server(char *out, size_t cap)
{
    char exe[4000];            /* leaves room for the suffix in out[4096] */
    const ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) { snprintf(out, cap, "build/release/forkpoint-serve"); return; }
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash) *slash = '\0';
    snprintf(out, cap, "%s/../forkpoint-serve", exe);
}

static void parse(options *o, int argc, char **argv)
{
    *o = (options){ .threads = 1, .forks = 60, .synth_forks = 10, .think_ms = 1000,
                    .synth_think_ms = -1, .conc = {1, 4, 16}, .n_conc = 3, .conc_seconds = 12,
                    .conc_think_ms = -1, .seed = 1 };
    default_server(o->server, sizeof o->server);
    default_synth(o->synth, sizeof o->synth);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(); exit(0); }
        if (!strcmp(a, "--verbose") || !strcmp(a, "-v")) { o->verbose = true; continue; }
        if (i + 1 >= argc) { usage(); exit(2); }
        const char *v = argv[++i];
        if (!strcmp(a, "--server")) snprintf(o->server, sizeof o->server, "%s", v);
        else if (!strcmp(a, "--model")) snprintf(o->model, sizeof o->model, "%s", v);
        else if (!strcmp(a, "--synth")) snprintf(o->synth, sizeof o->synth, "%s", v);
        else if (!strcmp(a, "--threads")) o->threads = int_arg(a, v, 0, 256);
        else if (!strcmp(a, "--forks")) o->forks = int_arg(a, v, 1, 100000);
        else if (!strcmp(a, "--synth-forks")) o->synth_forks = int_arg(a, v, 0, 100000);
        else if (!strcmp(a, "--think-ms")) o->think_ms = int_arg(a, v, 0, 600000);
        else if (!strcmp(a, "--synth-think-ms")) o->synth_think_ms = int_arg(a, v, 0, 600000);
        else if (!strcmp(a, "--conc")) parse_levels(o, v);
        else if (!strcmp(a, "--conc-seconds")) o->conc_seconds = int_arg(a, v, 1, 36000);
        else if (!strcmp(a, "--conc-think-ms")) o->conc_think_ms = int_arg(a, v, 0, 600000);
        else if (!strcmp(a, "--seed")) o->seed = (unsigned)int_arg(a, v, 0, 1 << 30);
        else { usage(); exit(2); }
    }
    if (o->conc_think_ms < 0) o->conc_think_ms = o->think_ms;
    if (o->synth_think_ms < 0) o->synth_think_ms = o->think_ms;
}

/* ---- small helpers ----------------------------------------------------------- */

/* Monotonic wall clock in milliseconds: immune to clock adjustments. */
static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Sleeps ms milliseconds, resuming after signals: the think time must be
 * whole, or the server gets less time to speculate than a person gives it. */
static void sleep_ms(double ms)
{
    if (ms <= 0) return;
    struct timespec ts = { .tv_sec = (time_t)(ms / 1e3),
                           .tv_nsec = (long)(fmod(ms, 1e3) * 1e6) };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* The 1-minute load average, -1 where there is none. Why: printed before and
 * after, it tells how much other work shared the two cores with this run. */
static double loadavg(void)
{
    double l = -1.0;
    FILE *f = fopen("/proc/loadavg", "r");
    if (!f) return -1.0;
    if (fscanf(f, "%lf", &l) != 1) l = -1.0;
    fclose(f);
    return l;
}

static const char *basename_of(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static bool file_exists(const char *path)
{
    struct stat st;
    return path[0] && stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* A seeded generator (splitmix64). Why our own: rand() is shared by all
 * threads and differs between C libraries; each scripted person needs its
 * own reproducible stream. */
typedef struct rng { uint64_t s; } rng;

static double rng_unit(rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(z >> 11) / 9007199254740992.0;   /* [0, 1) */
}

/* ---- statistics --------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of a sorted array: the smallest value that at
 * least p% of the samples do not exceed. Why nearest rank: with 60 samples
 * it is an actual measured latency, not an interpolation between two. */
static double percentile(const double *sorted, int n, double p)
{
    if (n <= 0) return NAN;
    int rank = (int)ceil(p / 100.0 * n);
    if (rank < 1) rank = 1;
    if (rank > n) rank = n;
    return sorted[rank - 1];
}

/* ---- the server process -------------------------------------------------------- */

typedef struct server {
    pid_t pid;
    int out_fd;              /* its stdout (kept open so it never gets SIGPIPE) */
    char dir[256];           /* temporary directory with the database */
    char url[128];           /* http://127.0.0.1:PORT, no trailing slash */
} server;

/* The running server, for the signal handler. */
static volatile pid_t g_server_pid = 0;

/* Why: an interrupted benchmark must not leave a server holding a core on a
 * shared machine. (The server also gets SIGTERM if this process dies, via
 * PR_SET_PDEATHSIG.) */
static void on_signal(int sig)
{
    if (g_server_pid > 0) kill(g_server_pid, SIGTERM);
    _exit(128 + sig);
}

/* Reads the server's stdout until "listening on URL" (or timeout_ms, or the
 * server's exit). Why wait for that line: the server prints it once the
 * model is loaded and the port is open, so the first request cannot race
 * the start-up. */
static bool read_url(server *s, double timeout_ms)
{
    char buf[2048];
    size_t len = 0;
    const double deadline = now_ms() + timeout_ms;
    while (len < sizeof buf - 1) {
        const int left = (int)(deadline - now_ms());
        if (left <= 0) return false;
        struct pollfd p = { .fd = s->out_fd, .events = POLLIN };
        const int r = poll(&p, 1, left);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        const ssize_t n = read(s->out_fd, buf + len, sizeof buf - 1 - len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;              /* EOF: it exited */
        len += (size_t)n;
        buf[len] = '\0';
        char *nl = strchr(buf, '\n');
        if (!nl) continue;
        *nl = '\0';
        const char *u = strstr(buf, "listening on ");
        if (!u) return false;
        snprintf(s->url, sizeof s->url, "%s", u + strlen("listening on "));
        const size_t ul = strlen(s->url);
        if (ul > 0 && s->url[ul - 1] == '/') s->url[ul - 1] = '\0';
        return true;
    }
    return false;
}

/* Starts forkpoint-serve on a free port with a fresh database and the given
 * extra flags (NULL-terminated). Exits when it cannot. */
static void server_start(server *s, const options *o, const char *model, const char *const *extra)
{
    memset(s, 0, sizeof *s);
    const char *tmp = getenv("TMPDIR");
    snprintf(s->dir, sizeof s->dir, "%s/bench_serve.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(s->dir)) { fprintf(stderr, "bench_serve: mkdtemp: %s\n", strerror(errno)); exit(1); }

    char db[320], threads[16];
    snprintf(db, sizeof db, "%s/bench.db", s->dir);
    snprintf(threads, sizeof threads, "%d", o->threads);
    const char *argv[40];
    int n = 0;
    argv[n++] = o->server;
    argv[n++] = "--port"; argv[n++] = "0";
    argv[n++] = "--db"; argv[n++] = db;
    argv[n++] = "--quiet";
    argv[n++] = "--threads"; argv[n++] = threads;
    if (model && *model) { argv[n++] = "--model"; argv[n++] = model; }
    for (int i = 0; extra && extra[i] && n < 39; i++) argv[n++] = extra[i];
    argv[n] = NULL;

    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) { fprintf(stderr, "bench_serve: pipe: %s\n", strerror(errno)); exit(1); }
    fflush(stdout);
    fflush(stderr);
    const pid_t pid = fork();
    if (pid < 0) { fprintf(stderr, "bench_serve: fork: %s\n", strerror(errno)); exit(1); }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        dup2(fds[1], STDOUT_FILENO);            /* dup2 clears close-on-exec */
        execv(o->server, (char *const *)argv);
        fprintf(stderr, "bench_serve: cannot run %s: %s\n", o->server, strerror(errno));
        _exit(127);
    }
    close(fds[1]);
    s->pid = pid;
    s->out_fd = fds[0];
    g_server_pid = pid;
    if (!read_url(s, 300000.0)) {
        fprintf(stderr, "bench_serve: %s did not report its address (see its messages above)\n", o->server);
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
        exit(1);
    }
}

/* Stops the server (SIGTERM, then SIGKILL after 10 s) and removes its
 * temporary directory. Why the grace period: SIGTERM lets it close SQLite
 * cleanly; a wedged server must still not outlive the benchmark. */
static void server_stop(server *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        int status = 0;
        const double deadline = now_ms() + 10000.0;
        while (waitpid(s->pid, &status, WNOHANG) == 0) {
            if (now_ms() > deadline) {
                kill(s->pid, SIGKILL);
                waitpid(s->pid, &status, 0);
                break;
            }
            sleep_ms(20);
        }
        g_server_pid = 0;
        s->pid = 0;
    }
    if (s->out_fd > 0) close(s->out_fd);
    s->out_fd = -1;
    static const char *const files[] = { "bench.db", "bench.db-wal", "bench.db-shm", "bench.db-journal" };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char p[400];
        snprintf(p, sizeof p, "%s/%s", s->dir, files[i]);
        unlink(p);
    }
    rmdir(s->dir);
}

/* ---- HTTP ------------------------------------------------------------------------ */

/* One connection's worth of client state. Why one per thread: a curl easy
 * handle must not be shared between threads, and keeping it keeps the TCP
 * connection alive between requests, as a browser would. */
typedef struct http {
    CURL *curl;
    struct curl_slist *headers;
    const char *base;
    char *buf;                 /* the last response body, NUL-terminated */
    size_t len, cap;
    char error[CURL_ERROR_SIZE];
} http;

/* Why: libcurl hands the body over in pieces; they are collected here. */
static size_t on_body(char *data, size_t size, size_t nmemb, void *user)
{
    http *h = user;
    const size_t n = size * nmemb;
    if (h->len + n + 1 > h->cap) {
        size_t cap = h->cap ? h->cap : 16384;
        while (h->len + n + 1 > cap) cap *= 2;
        char *b = realloc(h->buf, cap);
        if (!b) return 0;                       /* makes curl fail the transfer */
        h->buf = b;
        h->cap = cap;
    }
    memcpy(h->buf + h->len, data, n);
    h->len += n;
    h->buf[h->len] = '\0';
    return n;
}

static void http_open(http *h, const char *base)
{
    memset(h, 0, sizeof *h);
    h->base = base;
    h->curl = curl_easy_init();
    if (!h->curl) { fprintf(stderr, "bench_serve: curl_easy_init failed\n"); exit(1); }
    h->headers = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(h->curl, CURLOPT_NOSIGNAL, 1L);           /* threads */
    curl_easy_setopt(h->curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h->curl, CURLOPT_WRITEDATA, h);
    curl_easy_setopt(h->curl, CURLOPT_ERRORBUFFER, h->error);
    curl_easy_setopt(h->curl, CURLOPT_TIMEOUT, 600L);
    curl_easy_setopt(h->curl, CURLOPT_TCP_NODELAY, 1L);
}

static void http_close(http *h)
{
    curl_easy_cleanup(h->curl);
    curl_slist_free_all(h->headers);
    free(h->buf);
    memset(h, 0, sizeof *h);
}

/* GET (body NULL) or POST (body given) of base+path. Returns the HTTP status,
 * or -1 when the request did not complete (then h->error says why). The body
 * is in h->buf. */
static long http_call(http *h, const char *path, const char *body)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s", h->base, path);
    h->len = 0;
    h->error[0] = '\0';
    if (h->buf) h->buf[0] = '\0';
    curl_easy_setopt(h->curl, CURLOPT_URL, url);
    if (body) {
        curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, h->headers);
    } else {
        curl_easy_setopt(h->curl, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, NULL);
    }
    if (curl_easy_perform(h->curl) != CURLE_OK) return -1;
    long status = 0;
    curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &status);
    return status;
}

/* ---- the scripted chooser ------------------------------------------------------ */

/* What a state response tells the chooser. */
typedef struct view {
    char id[64];
    bool at_fork;
    int n_candidates;
    bool prefetched;          /* "last_prefetched" */
    double engine_ms;         /* "last_ms" */
} view;

/* Reads the fields the chooser needs from a state document. Why cJSON and
 * not string search: the state holds generated text, which can contain
 * anything. Returns false when the body is not a usable state. */
static bool parse_state(const char *body, size_t len, view *v)
{
    memset(v, 0, sizeof *v);
    v->engine_ms = NAN;
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (!root) return false;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "id");
    const cJSON *state = cJSON_GetObjectItemCaseSensitive(root, "state");
    bool ok = cJSON_IsString(id) && cJSON_IsString(state);
    if (ok) {
        snprintf(v->id, sizeof v->id, "%s", id->valuestring);
        v->at_fork = strcmp(state->valuestring, "at_fork") == 0;
        const cJSON *fork = cJSON_GetObjectItemCaseSensitive(root, "fork");
        const cJSON *cands = cJSON_GetObjectItemCaseSensitive(fork, "candidates");
        v->n_candidates = cJSON_IsArray(cands) ? cJSON_GetArraySize(cands) : 0;
        if (v->at_fork && v->n_candidates < 1) ok = false;
        v->prefetched = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "last_prefetched"));
        const cJSON *ms = cJSON_GetObjectItemCaseSensitive(root, "last_ms");
        if (cJSON_IsNumber(ms)) v->engine_ms = ms->valuedouble;
    }
    cJSON_Delete(root);
    return ok;
}

/* One scripted person: its own session, connection and random stream, and
 * what it measured. */
typedef struct client {
    /* given */
    const char *base;
    int think_ms;
    int want;                  /* stop after this many timed selections (0: no limit) */
    int seconds;               /* stop after this window (0: no limit) */
    uint64_t seed;
    bool verbose;
    pthread_barrier_t *start;
    /* measured: one entry per selection that reached a next fork */
    double *ms, *engine_ms;
    bool *hit;
    int n, cap;
    int selections;            /* choose calls answered (at fork, ended or refused) */
    int ended;                 /* selections that ended the story */
    int refused;               /* choose calls answered with an error status */
    int creates;               /* sessions created inside the timed window */
    char failure[512];         /* set when the client had to give up */
} client;

/* Keeps one timed selection. */
static bool client_keep(client *c, double ms, const view *v)
{
    if (c->n == c->cap) {
        const int cap = c->cap ? c->cap * 2 : 128;
        double *a = realloc(c->ms, sizeof *a * (size_t)cap);
        if (a) c->ms = a;
        double *b = realloc(c->engine_ms, sizeof *b * (size_t)cap);
        if (b) c->engine_ms = b;
        bool *h = realloc(c->hit, sizeof *h * (size_t)cap);
        if (h) c->hit = h;
        if (!a || !b || !h) return false;
        c->cap = cap;
    }
    c->ms[c->n] = ms;
    c->engine_ms[c->n] = v->engine_ms;
    c->hit[c->n] = v->prefetched;
    c->n++;
    return true;
}

/* Creates a session and reads its first fork into *v. Why retry: a story
 * can end before its first fork (then a new one is started), and a server at
 * capacity may refuse for a moment. */
static bool client_create(client *c, http *h, view *v)
{
    for (int attempt = 0; attempt < 20; attempt++) {
        const long st = http_call(h, "/api/sessions", CREATE_BODY);
        if (st < 0) {
            snprintf(c->failure, sizeof c->failure, "POST /api/sessions: %s", h->error);
            return false;
        }
        if (st == 201 && parse_state(h->buf, h->len, v) && v->at_fork) return true;
        if (st != 201) sleep_ms(100);
    }
    snprintf(c->failure, sizeof c->failure, "POST /api/sessions keeps failing; last answer: %.200s",
             h->buf ? h->buf : "");
    return false;
}

/* The chooser's pick: the top candidate 70% of the time, otherwise one of
 * the others uniformly. Why these odds: people mostly take the model's first
 * guess, and the prefetch plan is built on that. */
static int choose_index(rng *r, int n_candidates)
{
    if (n_candidates <= 1 || rng_unit(r) < 0.70) return 0;
    int i = 1 + (int)(rng_unit(r) * (n_candidates - 1));
    return i < n_candidates ? i : n_candidates - 1;
}

/* The thread body: create a session, then think, choose and time, until
 * enough selections are collected or the window closes. Why the first
 * session is created before the start barrier: a person starts from a fork
 * on screen, and the window should measure steady decisions, not start-up. */
static void *client_run(void *arg)
{
    client *c = arg;
    rng r = { c->seed };
    http h;
    http_open(&h, c->base);
    view v;
    const bool created = client_create(c, &h, &v);
    pthread_barrier_wait(c->start);
    if (!created) { http_close(&h); return NULL; }

    const double deadline = c->seconds > 0 ? now_ms() + c->seconds * 1e3 : INFINITY;
    char path[160], body[96];
    while ((c->want == 0 || c->n < c->want) && now_ms() < deadline) {
        sleep_ms(c->think_ms * (0.7 + 0.6 * rng_unit(&r)));
        if (now_ms() >= deadline) break;
        const int index = choose_index(&r, v.n_candidates);
        snprintf(path, sizeof path, "/api/sessions/%s/choose", v.id);
        snprintf(body, sizeof body, "{\"index\":%d,\"accept_preview\":false}", index);

        const double t0 = now_ms();
        const long st = http_call(&h, path, body);
        const double ms = now_ms() - t0;

        if (st < 0) {
            snprintf(c->failure, sizeof c->failure, "POST %s: %s", path, h.error);
            break;
        }
        c->selections++;
        view next;
        if (st == 200 && parse_state(h.buf, h.len, &next)) {
            if (c->verbose)
                fprintf(stderr, "  %s choose %d of %d: %8.1f ms, server last_ms %8.1f, %s%s\n", v.id,
                        index, v.n_candidates, ms, next.engine_ms, next.prefetched ? "hit" : "miss",
                        next.at_fork ? "" : ", story ended");
            if (next.at_fork) {
                if (!client_keep(c, ms, &next)) { snprintf(c->failure, sizeof c->failure, "out of memory"); break; }
                v = next;
                continue;
            }
            c->ended++;
        } else {
            c->refused++;
            fprintf(stderr, "bench_serve: choose answered %ld: %.200s\n", st, h.buf ? h.buf : "");
        }
        /* the story ended (or the session was refused): start a new one */
        if (!client_create(c, &h, &v)) break;
        c->creates++;
    }
    http_close(&h);
    return NULL;
}

/* What a group of clients measured together. */
typedef struct result {
    int n;                         /* timed selections (those that reached a fork) */
    double p50, p95, p99, mean;    /* their latency, ms */
    double engine_p50;             /* the server's own last_ms, ms */
    double hit_p50, miss_p50;      /* latency of prefetch hits and of the rest, ms */
    double hit_rate;
    int selections, ended, refused, creates;
    double wall_s;                 /* the timed window as it really lasted */
    bool failed;
} result;

/* Runs n_clients scripted people against one server and pools what they
 * measured. Why pooled: a person does not care which session a slow fork
 * came from; the percentiles are over all selections. */
static result run_clients(const char *base, int n_clients, int think_ms, int want, int seconds,
                          uint64_t seed, bool verbose)
{
    result res = {0};
    client *cl = calloc((size_t)n_clients, sizeof *cl);
    pthread_t *th = calloc((size_t)n_clients, sizeof *th);
    if (!cl || !th) { fprintf(stderr, "bench_serve: out of memory\n"); exit(1); }
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)n_clients + 1);
    for (int i = 0; i < n_clients; i++) {
        cl[i] = (client){ .base = base, .think_ms = think_ms, .want = want, .seconds = seconds,
                          .seed = seed * 1000003u + (uint64_t)i, .verbose = verbose,
                          .start = &start };
        if (pthread_create(&th[i], NULL, client_run, &cl[i]) != 0) {
            fprintf(stderr, "bench_serve: cannot start a client thread\n");
            exit(1);
        }
    }
    pthread_barrier_wait(&start);
    const double t0 = now_ms();
    for (int i = 0; i < n_clients; i++) pthread_join(th[i], NULL);
    res.wall_s = (now_ms() - t0) / 1e3;
    pthread_barrier_destroy(&start);

    int total = 0, hits = 0, misses = 0, n_engine = 0;
    for (int i = 0; i < n_clients; i++) total += cl[i].n;
    double *ms = malloc(sizeof *ms * (size_t)(total + 1));
    double *eng = malloc(sizeof *eng * (size_t)(total + 1));
    double *hit_ms = malloc(sizeof *hit_ms * (size_t)(total + 1));
    double *miss_ms = malloc(sizeof *miss_ms * (size_t)(total + 1));
    if (!ms || !eng || !hit_ms || !miss_ms) { fprintf(stderr, "bench_serve: out of memory\n"); exit(1); }
    double sum = 0;
    for (int i = 0; i < n_clients; i++) {
        const client *c = &cl[i];
        for (int j = 0; j < c->n; j++) {
            ms[res.n++] = c->ms[j];
            sum += c->ms[j];
            if (c->hit[j]) hit_ms[hits++] = c->ms[j];
            else miss_ms[misses++] = c->ms[j];
            if (!isnan(c->engine_ms[j])) eng[n_engine++] = c->engine_ms[j];
        }
        res.selections += c->selections;
        res.ended += c->ended;
        res.refused += c->refused;
        res.creates += c->creates;
        if (c->failure[0]) {
            fprintf(stderr, "bench_serve: client %d: %s\n", i, c->failure);
            res.failed = true;
        }
        free(c->ms);
        free(c->engine_ms);
        free(c->hit);
    }
    qsort(ms, (size_t)res.n, sizeof *ms, cmp_double);
    qsort(eng, (size_t)n_engine, sizeof *eng, cmp_double);
    qsort(hit_ms, (size_t)hits, sizeof *hit_ms, cmp_double);
    qsort(miss_ms, (size_t)misses, sizeof *miss_ms, cmp_double);
    res.p50 = percentile(ms, res.n, 50);
    res.p95 = percentile(ms, res.n, 95);
    res.p99 = percentile(ms, res.n, 99);
    res.mean = res.n ? sum / res.n : NAN;
    res.engine_p50 = percentile(eng, n_engine, 50);
    res.hit_p50 = percentile(hit_ms, hits, 50);
    res.miss_p50 = percentile(miss_ms, misses, 50);
    res.hit_rate = res.n ? (double)hits / res.n : NAN;
    free(ms);
    free(eng);
    free(hit_ms);
    free(miss_ms);
    free(cl);
    free(th);
    return res;
}

/* Asks the server which model it loaded (GET /api/health). Why: with no
 * --model the server resolves its default itself; the record should name
 * the file it really used. */
static void server_model(const server *s, char *out, size_t cap)
{
    snprintf(out, cap, "?");
    http h;
    http_open(&h, s->url);
    if (http_call(&h, "/api/health", NULL) == 200) {
        cJSON *root = cJSON_ParseWithLength(h.buf, h.len);
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "model");
        if (cJSON_IsString(m)) snprintf(out, cap, "%s", m->valuestring);
        cJSON_Delete(root);
    }
    http_close(&h);
}

/* ---- part 1: selection -> next fork, with and without prefetch ----------------- */

/* Formats one figure right-aligned in width, or "-" when there is none
 * (no hits without prefetch, say). Why: "nan" in a table reads like a bug. */
static const char *cell(char *buf, size_t cap, int width, double v)
{
    if (isnan(v)) snprintf(buf, cap, "%*s", width, "-");
    else snprintf(buf, cap, "%*.1f", width, v);
    return buf;
}

static void print_mode_row(const char *mode, const result *r)
{
    char a[32], b[32], c[32];
    printf("  %-12s %5d %9.1f %9.1f %9.1f %9.0f%% %s %s %s %8d\n", mode, r->n, r->p50,
           r->p95, r->mean, 100.0 * r->hit_rate, cell(a, sizeof a, 8, r->hit_p50),
           cell(b, sizeof b, 9, r->miss_p50), cell(c, sizeof c, 11, r->engine_p50), r->ended);
}

/* Part 1 on one model: a server with prefetch, then one without, the same
 * chooser (same seed) on both. Why two servers in one run: the machine's
 * load changes from minute to minute; only a ratio taken a minute apart
 * says what prefetch buys. Returns false when a run failed. */
static bool part1(const options *o, const char *model, int forks, int think_ms)
{
    static const char *const no_prefetch[] = { "--no-prefetch", NULL };
    result r[2];
    char used[4096] = "?";
    for (int mode = 0; mode < 2; mode++) {
        server s;
        server_start(&s, o, model, mode == 0 ? NULL : no_prefetch);
        if (mode == 0) {
            server_model(&s, used, sizeof used);
            printf("model %s, think %d ms +-30%%\n", used, think_ms);
            printf("  %-12s %5s %9s %9s %9s %10s %8s %9s %11s %8s\n", "server", "n", "p50 ms", "p95 ms",
                   "mean ms", "hit rate", "hit p50", "miss p50", "engine p50", "endings");
            fflush(stdout);
        }
        r[mode] = run_clients(s.url, 1, think_ms, forks, 0, o->seed, o->verbose);
        server_stop(&s);
        print_mode_row(mode == 0 ? "prefetch" : "no-prefetch", &r[mode]);
        fflush(stdout);
        if (r[mode].failed || r[mode].n == 0) return false;
    }
    printf("  speed-up (no-prefetch p50 / prefetch p50): %.1fx; mean: %.1fx; prefetch p50 under 30 ms: %s\n",
           r[1].p50 / r[0].p50, r[1].mean / r[0].mean, r[0].p50 < 30.0 ? "yes" : "no");
    return true;
}

/* ---- part 2: several sessions at once ---------------------------------------------- */

/* Part 2: for each level, a fresh server (prefetch on) and that many
 * scripted people for a fixed window. Why --max-live 32 and --ctx 16384: 16
 * resident stories of up to 300 tokens, and the sessions begun when others
 * end, must fit without evictions, which would measure SQLite rather than
 * the engine. */
static bool part2(const options *o)
{
    static const char *const extra[] = { "--max-live", "32", "--ctx", "16384", NULL };
    bool ok = true;
    for (int i = 0; i < o->n_conc; i++) {
        const int k = o->conc[i];
        server s;
        server_start(&s, o, o->model, extra);
        if (i == 0) {
            char used[4096];
            server_model(&s, used, sizeof used);
            printf("model %s\n", used);
            printf("  %-8s %6s %9s %9s %9s %10s %11s %14s %8s %8s %8s\n", "sessions", "n", "p50 ms",
                   "p95 ms", "p99 ms", "hit rate", "engine p50", "sel/s/session", "sel/s", "forks/s",
                   "refused");
            fflush(stdout);
        }
        const result r = run_clients(s.url, k, o->conc_think_ms, 0, o->conc_seconds, o->seed, o->verbose);
        server_stop(&s);
        /* forks shown: each timed selection brought one, and so did each
         * session begun inside the window */
        const double sel_s = r.selections / r.wall_s;
        const double forks_s = (r.n + r.creates) / r.wall_s;
        printf("  %-8d %6d %9.1f %9.1f %9.1f %9.0f%% %11.1f %14.2f %8.2f %8.2f %8d\n", k, r.n, r.p50,
               r.p95, r.p99, 100.0 * r.hit_rate, r.engine_p50, sel_s / k, sel_s, forks_s, r.refused);
        fflush(stdout);
        if (r.failed) ok = false;
    }
    return ok;
}

int main(int argc, char **argv)
{
    options o;
    parse(&o, argc, argv);
    if (access(o.server, X_OK) != 0) {
        fprintf(stderr, "bench_serve: no server at %s (make build/release/forkpoint-serve, or --server)\n", o.server);
        return 1;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) { fprintf(stderr, "bench_serve: curl_global_init failed\n"); return 1; }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);

    char date[16];
    const time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(date, sizeof date, "%Y-%m-%d", &tm);
    const double t_start = now_ms();
    printf("bench_serve %s  server %s --threads %d; %ld cores online; load average %.2f\n", date,
           basename_of(o.server), o.threads, sysconf(_SC_NPROCESSORS_ONLN), loadavg());
    printf("chooser (seed %u): thinks, then takes the top candidate 70%% of the time, else one of the\n"
           "         others uniformly, candidate alone; prompt \"%s\", settings {\"max_tokens\": 300}\n\n",
           o.seed, PROMPT);

    bool ok = true;
    printf("1. selection -> next fork: POST .../choose until its state has arrived, one session;\n"
           "   \"hit p50\"/\"miss p50\": selections that were / were not prefetched; \"engine p50\":\n"
           "   the server's own last_ms; \"endings\": selections that ended a story (not timed)\n");
    ok &= part1(&o, o.model, o.forks, o.think_ms);
    if (o.synth_forks > 0) {
        if (file_exists(o.synth)) {
            printf("\n");
            ok &= part1(&o, o.synth, o.synth_forks, o.synth_think_ms);
        } else {
            printf("\nsynthetic model skipped: %s not found (make it with build/release/bench/gen_model)\n",
                   o.synth[0] ? o.synth : "(no cache directory)");
        }
    }
    if (o.n_conc > 0) {
        printf("\n2. concurrent sessions, prefetch on, think %d ms +-30%%, %d s window each,\n"
               "   server --max-live 32 --ctx 16384 (a fresh server per level); sel/s counts every\n"
               "   choose answered, forks/s every fork shown (next forks and new stories' first)\n",
               o.conc_think_ms, o.conc_seconds);
        ok &= part2(&o);
    }
    printf("\nload average at the end: %.2f; %.0f s in all\n", loadavg(), (now_ms() - t_start) / 1e3);
    curl_global_cleanup();
    return ok ? 0 : 1;
}
