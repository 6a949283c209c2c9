/*
 * main.c — `forkpoint-serve`: the Forkpoint web app (HTTP + WebSocket).
 *
 * Why a separate binary: the server links civetweb and SQLite, which the
 * terminal front end does not need; `forkpoint serve ...` runs this program
 * with the same flags (a leading "serve" word is accepted and skipped).
 *
 * Start-up order matters: the model, engine, database and restored sessions
 * are set up before the worker thread exists, then handed to it; signals are
 * blocked before any thread starts so that only main's sigwait sees them.
 * Shutdown runs the other way: stop HTTP (whose handlers may still wait on
 * jobs, so the worker keeps running), then the worker, then free.
 * With --rpc a supervisor parent is forked first (supervise.c).
 */
#include "server/serve.h"
#include "forkpoint_fetch.h"

#include <civetweb.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fprintf(f,
        "usage: forkpoint-serve [serve] [options]\n"
        "  --model PATH       GGUF model (default: the stories260K default model)\n"
        "  --hf OWNER/REPO[:Q] download a GGUF model from the Hugging Face hub, picked by its\n"
        "                     quantization Q (default Q4_K_M), into --models-dir, and serve it\n"
        "  --models-dir DIR   the models the page's picker offers, and --hf's downloads\n"
        "                     (default: the cache's models folder)\n"
        "  --host ADDR        address to bind (default 127.0.0.1); off loopback needs --token\n"
        "  --port N           port (default 8080; 0 = any free port)\n"
        "  --token SECRET     require this token (also $FORKPOINT_TOKEN)\n"
        "  --public-host H:P  also accept this Host (and Origin http://H:P): a proxy in front, e.g. nginx\n"
        "  --db PATH          SQLite database (default ${XDG_DATA_HOME:-~/.local/share}/forkpoint/forkpoint.db),\n"
        "                     or postgresql://USER:PASS@HOST:PORT/DB shared by several servers (docs/deploy.md)\n"
        "  --ctx N            KV cells shared by all sessions (default 8 x the model's context, max 16384)\n"
        "  --seq-max N        engine sequences, 2..256 (default 256, at most the --ctx cells)\n"
        "  --threads N        CPU threads for the model (0 = all)\n"
        "  --backend B        local (default), llama-server:URL or openai:URL: forks over a remote\n"
        "                     engine (the model file gives the tokenizer; docs/deploy.md)\n"
        "  --api-key KEY      its Bearer token (default: $FORKPOINT_API_KEY, $OPENAI_API_KEY)\n"
        "  --remote-model M   openai: the \"model\" field (default: the server's first model)\n"
        "  --remote-top N     top log-probabilities asked per position, 1..64 (default 20)\n"
        "  --remote-timeout MS  one request's limit before a retry (default 30000)\n"
        "  --rpc H:P,...      put the model's layers on these RPC workers (forkpoint worker);\n"
        "                     a worker lost mid-session restarts the server, stories reopen from --db\n"
        "  --max-live N       sessions kept resident in the engine (default 16)\n"
        "  --http-threads N   HTTP worker threads, 4..8192 (default 2048; each open connection holds one)\n"
        "  --max-ws-per-addr N WebSockets one remote address may hold open (default 32,\n"
        "                     0 = no limit; loopback is never limited)\n"
        "  --no-evict         at capacity answer 503 instead of evicting idle sessions\n"
        "  --no-prefetch      do not compute likely next forks while people decide\n"
        "  --batch-sessions N sessions whose work shares one decode, 1..64 (default 16)\n"
        "  --no-batching      one session's work at a time (--batch-sessions 1)\n"
        "  --profile NAME     learn NAME's preferences from every decision (stored in --db)\n"
        "  --auto-resolve     with --profile: forks the preferences are sure of decide themselves\n"
        "  --lora PATH        apply a LoRA adapter (forkpoint learn --lora)\n"
        "  --lora-scale S     its strength, -16..16 (default: the scale learn chose, else 1)\n"
        "  --steer PATH       apply a steering vector (forkpoint learn --steer)\n"
        "  --steer-strength S its strength, -64..64 (default: the one learn chose, else 1)\n"
        "  --tls-cert PATH    serve HTTPS and WSS with this PEM certificate chain (needs --tls-key)\n"
        "  --tls-key PATH     the PEM private key of --tls-cert\n"
        "  --log-requests     one line per request and WebSocket on stderr\n"
        "  --chat-template T  chat template for /v1/chat/completions: a llama.cpp built-in name\n"
        "                     (chatml, llama3, phi3, ...) or template text (default: the model's)\n"
        "  --max-logprobs N   most alternatives per token in the compatible APIs, 1..256 (default 20)\n"
        "  --cors-origin O    let pages from origin O (e.g. http://127.0.0.1:8000, or null for\n"
        "                     file:// pages) call the compatible APIs (/v1, /completion, ...)\n"
        "  --lenient-fields   the compatible APIs ignore unknown body fields instead of a 400\n"
        "                     (for clients that send every back end's fields, e.g. SillyTavern)\n"
        "  --quiet            nothing on stderr but errors\n"
        "  --help, --version\n"
        "Prints \"listening on http://HOST:PORT/\" (https with --tls-cert) on stdout,\n"
        "as its last line of start-up, once it is serving.\n");
}

/* Parses a non-negative integer flag value in [lo, hi]. */
static bool parse_num(const char *flag, const char *v, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < lo || n > hi) {
        fprintf(stderr, "forkpoint-serve: %s wants a number in %ld..%ld, got \"%s\"\n", flag, lo, hi, v);
        return false;
    }
    *out = n;
    return true;
}

bool srv_host_is_loopback(const char *h)
{
    return strncmp(h, "127.", 4) == 0 || strcmp(h, "::1") == 0 || strcmp(h, "localhost") == 0;
}

int srv_parse_args(int argc, char **argv, srv_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->host = "127.0.0.1";
    cfg->port = 8080;
    cfg->n_seq_max = 0;   /* 256, or what the context holds (models.c) */
    cfg->max_live = 16;
    cfg->batch_sessions = 16;
    cfg->http_threads = 2048;
    cfg->max_ws_per_addr = 32;
    cfg->lora_scale = NAN;   /* the adapter's own recommendation */
    cfg->steer_strength = NAN;
    cfg->max_logprobs = 20;   /* vLLM's default cap; OpenAI's chat API allows 0..20 */
    const char *env_token = getenv("FORKPOINT_TOKEN");
    if (env_token && *env_token) cfg->token = env_token;

    int i = 1;
    if (i < argc && strcmp(argv[i], "serve") == 0) i++;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) { usage(stdout); return 1; }
        if (strcmp(a, "--version") == 0) { printf("forkpoint-serve %s\n", FP_VERSION); return 1; }
        if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) { cfg->quiet = true; continue; }
        if (strcmp(a, "--log-requests") == 0) { cfg->log_requests = true; continue; }
        if (strcmp(a, "--no-evict") == 0) { cfg->no_evict = true; continue; }
        if (strcmp(a, "--no-prefetch") == 0) { cfg->no_prefetch = true; continue; }
        if (strcmp(a, "--no-batching") == 0) { cfg->batch_sessions = 1; continue; }
        if (strcmp(a, "--auto-resolve") == 0) { cfg->auto_resolve = true; continue; }
        if (strcmp(a, "--lenient-fields") == 0) { cfg->lenient_fields = true; continue; }
        /* --flag value or --flag=value */
        char name[32];
        const char *val = NULL;
        const char *eq = strchr(a, '=');
        if (strncmp(a, "--", 2) == 0 && eq && (size_t)(eq - a) < sizeof name) {
            memcpy(name, a, (size_t)(eq - a));
            name[eq - a] = '\0';
            val = eq + 1;
        } else {
            snprintf(name, sizeof name, "%s", a);
            if (i + 1 < argc) val = argv[i + 1], i++;
        }
        bool known = true;
        long n = 0;
        if (!val) { fprintf(stderr, "forkpoint-serve: %s needs a value\n", name); return -1; }
        if (strcmp(name, "--model") == 0) cfg->model = val;
        else if (strcmp(name, "--hf") == 0) cfg->hf = val;
        else if (strcmp(name, "--models-dir") == 0) cfg->models_dir = val;
        else if (strcmp(name, "--host") == 0) cfg->host = val;
        else if (strcmp(name, "--token") == 0) cfg->token = val;
        else if (strcmp(name, "--db") == 0) cfg->db_path = val;
        else if (strcmp(name, "--public-host") == 0) cfg->public_host = val;
        else if (strcmp(name, "--profile") == 0) cfg->profile = val;
        else if (strcmp(name, "--lora") == 0) cfg->lora = val;
        else if (strcmp(name, "--lora-scale") == 0 || strcmp(name, "--steer-strength") == 0) {
            char *end;
            double d = strtod(val, &end);
            double lim = name[2] == 'l' ? 16 : 64;
            if (end == val || *end || !(d >= -lim && d <= lim)) {
                fprintf(stderr, "forkpoint-serve: %s wants a number in -%g..%g, got \"%s\"\n", name, lim, lim, val);
                return -1;
            }
            if (name[2] == 'l') cfg->lora_scale = (float)d;
            else cfg->steer_strength = (float)d;
        }
        else if (strcmp(name, "--steer") == 0) cfg->steer = val;
        else if (strcmp(name, "--rpc") == 0) {
            fp_rpc_endpoint eps[FP_RPC_MAX];
            int n_eps;
            fp_error err = {0};
            if (fp_rpc_parse(val, eps, FP_RPC_MAX, &n_eps, &err) != FP_OK) {
                fprintf(stderr, "forkpoint-serve: %s\n", err.message);
                return -1;
            }
            cfg->rpc = val;
        }
        else if (strcmp(name, "--backend") == 0) {
            if (strcmp(val, "local") && strncmp(val, "llama-server:", 13) && strncmp(val, "openai:", 7)) {
                fprintf(stderr, "forkpoint-serve: --backend must be local, llama-server:URL or openai:URL (got %s)\n", val);
                return -1;
            }
            cfg->backend = strcmp(val, "local") ? val : NULL;
        }
        else if (strcmp(name, "--api-key") == 0) cfg->api_key = val;
        else if (strcmp(name, "--remote-model") == 0) cfg->remote_model = val;
        else if (strcmp(name, "--remote-top") == 0) { if (!parse_num(name, val, 1, 64, &n)) return -1; cfg->remote_top = (int)n; }
        else if (strcmp(name, "--remote-timeout") == 0) { if (!parse_num(name, val, 100, 3600000, &n)) return -1; cfg->remote_timeout_ms = (int)n; }
        else if (strcmp(name, "--tls-cert") == 0) cfg->tls_cert = val;
        else if (strcmp(name, "--tls-key") == 0) cfg->tls_key = val;
        else if (strcmp(name, "--chat-template") == 0) cfg->chat_template = val;
        else if (strcmp(name, "--cors-origin") == 0) cfg->cors_origin = val;
        else if (strcmp(name, "--max-logprobs") == 0) { if (!parse_num(name, val, 1, 256, &n)) return -1; cfg->max_logprobs = (int)n; }
        else if (strcmp(name, "--port") == 0) { if (!parse_num(name, val, 0, 65535, &n)) return -1; cfg->port = (int)n; }
        else if (strcmp(name, "--ctx") == 0) { if (!parse_num(name, val, 0, 1 << 20, &n)) return -1; cfg->n_ctx = (uint32_t)n; }
        else if (strcmp(name, "--seq-max") == 0) { if (!parse_num(name, val, 2, 256, &n)) return -1; cfg->n_seq_max = (uint32_t)n; }
        else if (strcmp(name, "--threads") == 0) { if (!parse_num(name, val, 0, 1024, &n)) return -1; cfg->n_threads = (int32_t)n; }
        else if (strcmp(name, "--batch-sessions") == 0) { if (!parse_num(name, val, 1, SRV_MAX_EXEC, &n)) return -1; cfg->batch_sessions = (int)n; }
        else if (strcmp(name, "--max-live") == 0) { if (!parse_num(name, val, 1, 256, &n)) return -1; cfg->max_live = (int)n; }
        else if (strcmp(name, "--http-threads") == 0) { if (!parse_num(name, val, 4, 8192, &n)) return -1; cfg->http_threads = (int)n; }
        else if (strcmp(name, "--max-ws-per-addr") == 0) { if (!parse_num(name, val, 0, SRV_MAX_WS, &n)) return -1; cfg->max_ws_per_addr = (int)n; }
        else known = false;
        if (!known) {
            fprintf(stderr, "forkpoint-serve: unknown option %s (try --help)\n", name);
            return -1;
        }
    }
    if (cfg->hf && cfg->model) {
        fprintf(stderr, "forkpoint-serve: give --model or --hf, not both\n");
        return -1;
    }
    if (!cfg->tls_cert != !cfg->tls_key) {
        fprintf(stderr, "forkpoint-serve: --tls-cert and --tls-key go together\n");
        return -1;
    }
    if (cfg->auto_resolve && !cfg->profile) {
        fprintf(stderr, "forkpoint-serve: --auto-resolve needs --profile\n");
        return -1;
    }
    if (cfg->token && (!*cfg->token || strlen(cfg->token) > 200 || strpbrk(cfg->token, " ;,\"\\\r\n"))) {
        fprintf(stderr, "forkpoint-serve: --token must be 1..200 characters without spaces, ';', ',', quotes or backslashes\n");
        return -1;
    }
    if (cfg->rpc && cfg->backend) {
        fprintf(stderr, "forkpoint-serve: --rpc and a remote --backend exclude each other: the layers are on the server\n");
        return -1;
    }
    if (cfg->rpc && cfg->port == 0) {
        fprintf(stderr, "forkpoint-serve: --rpc restarts the server on its port when a worker is lost: give --port N, not 0\n");
        return -1;
    }
    if (!srv_host_is_loopback(cfg->host) && !cfg->token) {
        fprintf(stderr, "forkpoint-serve: --host %s is not loopback: give --token (or $FORKPOINT_TOKEN)\n",
                cfg->host);
        return -1;
    }
    return 0;
}

/* Loads model and engine, opens the database and restores sessions. */
static int setup_engine(srv_app *app)
{
    fp_error err = {0};
    if (app->cfg.hf) {
        if (fp_hf_pull(app->cfg.hf, app->cfg.models_dir, isatty(STDERR_FILENO) ? fp_fetch_progress_bar : NULL, NULL,
                       app->model_path, sizeof app->model_path, &err) != FP_OK) {
            fprintf(stderr, "forkpoint-serve: %s\n", err.message);
            return -1;
        }
    } else if (fp_resolve_default_model(app->cfg.model, app->model_path, sizeof app->model_path, &err) != FP_OK) {
        fprintf(stderr, "forkpoint-serve: no model: %s\n", err.message);
        return -1;
    }
    /* stories record the model's path: one that holds from any directory
     * (its folder made absolute; the file's own name kept, a link too, so
     * it is the path the models folder lists) */
    char dir[PATH_MAX], real[PATH_MAX], abs_path[PATH_MAX + 256];
    snprintf(dir, sizeof dir, "%s", app->model_path);
    char *slash = strrchr(dir, '/');
    const char *base = slash ? app->model_path + (slash - dir) + 1 : app->model_path;
    if (slash) *slash = 0;
    if (realpath(slash ? (dir[0] ? dir : "/") : ".", real)) {
        int w = snprintf(abs_path, sizeof abs_path, "%s/%s", strcmp(real, "/") ? real : "", base);
        if (w > 0 && (size_t)w < sizeof app->model_path) memcpy(app->model_path, abs_path, (size_t)w + 1);
    }
    if (srv_model_open(app, app->model_path, &app->model, &app->engine, app->model_sha, &err) != 0) {
        fprintf(stderr, "forkpoint-serve: cannot load %s: %s\n", app->model_path, err.message);
        /* a restart that finds a worker still gone: the supervisor tries
         * again (the loss that started it stays the reason /api/health gives) */
        if (app->cfg.rpc && err.code == FP_ERR_IO && getenv("FORKPOINT_RPC_RESTARTS")) exit(SRV_EXIT_RPC);
        return -1;
    }
    snprintf(app->start_path, sizeof app->start_path, "%s", app->model_path);
    srv_model_note(app);
    /* a remote engine has no weights here: LoRA and steering are refused in one line */
    if ((app->cfg.lora && fp_engine_set_lora(app->engine, NULL, 1.0f, &err) != FP_OK) ||
        (app->cfg.steer && fp_engine_set_steer(app->engine, NULL, 1.0f, &err) != FP_OK)) {
        fprintf(stderr, "forkpoint-serve: %s\n", err.message);
        return -1;
    }
    if (app->cfg.steer) {
        float stored = 1.0f;
        app->steer = fp_steer_load(app->model, app->cfg.steer, &stored, &err);
        if (app->steer && isnan(app->cfg.steer_strength)) app->cfg.steer_strength = stored;
        if (!app->steer || fp_engine_set_steer(app->engine, app->steer, app->cfg.steer_strength, &err) != FP_OK) {
            fprintf(stderr, "forkpoint-serve: %s\n", err.message);
            return -1;
        }
    }
    if (app->cfg.lora && isnan(app->cfg.lora_scale)) app->cfg.lora_scale = fp_lora_scale_hint(app->cfg.lora);
    if (app->cfg.lora && fp_engine_set_lora(app->engine, app->cfg.lora, app->cfg.lora_scale, &err) != FP_OK) {
        fprintf(stderr, "forkpoint-serve: %s\n", err.message);
        return -1;
    }
    char msg[512];
    if (srv_store_open(app, msg, sizeof msg) != 0) {
        fprintf(stderr, "forkpoint-serve: %s\n", msg);
        return -1;
    }
    if (app->cfg.profile) { /* the person's learned preferences, or a fresh start */
        if (fp_store_profile_load(app->store, app->cfg.profile, app->model_sha, &app->prefs, &err) != FP_OK) {
            fprintf(stderr, "forkpoint-serve: profile: %s\n", err.message);
            return -1;
        }
        if (!app->prefs && !(app->prefs = fp_prefs_new(fp_model_n_vocab(app->model)))) return -1;
        fp_prefs_set_auto(app->prefs, app->cfg.auto_resolve, 0.95f);
    }
    app->live = calloc((size_t)app->cfg.max_live, sizeof *app->live);
    if (!app->live) return -1;
    return srv_sessions_open(app, &err);
}

static void teardown(srv_app *app)
{
    if (app->live) srv_sessions_close(app);
    free(app->live);
    app->live = NULL;
    srv_store_close(app);
    fp_prefs_free(app->prefs); /* after the sessions that borrowed it */
    app->prefs = NULL;
    if (app->engine) fp_engine_free(app->engine);
    fp_steer_free(app->steer);
    app->steer = NULL;
    if (app->model) fp_model_free(app->model);
    app->engine = NULL;
    app->model = NULL;
}

int main(int argc, char **argv)
{
    static srv_app app;  /* large (lanes, ws table): not on the stack */
    int pr = srv_parse_args(argc, argv, &app.cfg);
    if (pr != 0) return pr > 0 ? 0 : 2;

    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (app.cfg.rpc) {   /* before any thread: the parent stays, the child serves */
        int code = srv_supervise(&app.cfg);
        if (code >= 0) return code;
    }

    pthread_mutex_init(&app.q_mu, NULL);
    pthread_cond_init(&app.q_cv, NULL);
    pthread_cond_init(&app.done_cv, NULL);
    pthread_mutex_init(&app.ws_mu, NULL);
    pthread_mutex_init(&app.adapters_mu, NULL);
    pthread_mutex_init(&app.model_mu, NULL);
    /* versions only grow, also across restarts: srv_store_open takes the
     * store's counter (every change stores its version) */

    /* every connection is a descriptor: take the hard limit (capped), since
     * the usual soft limit of 1024 is below --http-threads' default */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rlim_t want = (rlim_t)app.cfg.http_threads * 2 + 256;
        if (want > rl.rlim_max) want = rl.rlim_max;
        if (want > rl.rlim_cur) { rl.rlim_cur = want; setrlimit(RLIMIT_NOFILE, &rl); }
    }

    int rc = 1;
    /* MG_FEATURES_TLS makes civetweb load OpenSSL (see tls.c) */
    mg_init_library(app.cfg.tls_cert ? MG_FEATURES_TLS : 0);
    if (setup_engine(&app) != 0) goto out;
    if (srv_worker_start(&app) != 0) {
        fprintf(stderr, "forkpoint-serve: cannot start the worker thread\n");
        goto out;
    }
    char err[512];
    if (srv_http_start(&app, err, sizeof err) != 0) {
        fprintf(stderr, "forkpoint-serve: %s\n", err);
        srv_worker_stop(&app);
        goto out;
    }
    /* the URL comes last, after anything else start-up says, so that it is
     * the line a person sees */
    if (!app.cfg.quiet) {
        char shown[1100];
        srv_db_display(&app, shown, sizeof shown);
        fprintf(stderr, "forkpoint-serve: model %s, database %s\n", app.model_path, shown);
        if (!app.cfg.log_requests) fprintf(stderr, "forkpoint-serve: --log-requests shows each request\n");
    }
    fflush(stderr);
    bool v6 = strchr(app.cfg.host, ':') != NULL;
    const char *scheme = app.cfg.tls_cert ? "https" : "http";
    printf(v6 ? "listening on %s://[%s]:%d/\n" : "listening on %s://%s:%d/\n",
           scheme, app.cfg.host, app.port);
    fflush(stdout);

    int sig = 0;
    sigwait(&sigs, &sig);
    if (!app.cfg.quiet) fprintf(stderr, "forkpoint-serve: signal %d, stopping\n", sig);
    srv_http_stop(&app);
    srv_worker_stop(&app);
    rc = 0;
out:
    teardown(&app);
    mg_exit_library();
    pthread_mutex_destroy(&app.ws_mu);
    pthread_mutex_destroy(&app.adapters_mu);
    pthread_mutex_destroy(&app.model_mu);
    pthread_cond_destroy(&app.done_cv);
    pthread_cond_destroy(&app.q_cv);
    pthread_mutex_destroy(&app.q_mu);
    return rc;
}
