/*
 * main.c — the `forkpoint` command: dispatches to its subcommands.
 *
 *   forkpoint write [...]   the terminal front end (default)
 *   forkpoint chat [...]    a dialogue in the terminal
 *   forkpoint serve [...]   the web app (the forkpoint-serve binary beside this one)
 *   forkpoint model ...     list the models folder, pull from the hub, check a model
 *   forkpoint export ...    datasets from the decision log
 *   forkpoint profile ...   learned preference profiles
 *   forkpoint learn ...     a personal LoRA adapter from the decision log
 *   forkpoint worker        serve this machine's CPU to --rpc clients (rpc_worker.c)
 *   forkpoint version
 */
#include "cli/cli.h"
#include "forkpoint_fetch.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A worker lost mid-session (fp_rpc_set_lost_handler, on llama.cpp's RPC
 * thread while the main thread waits inside a decode): one line, the
 * terminal put back, what was printed or logged flushed, exit 1. */
static void rpc_lost(const char *why) {
    cli_tty_restore();
    fflush(NULL);
    fprintf(stderr, "forkpoint: %s; stopping (decisions already logged are kept)\n", why);
    _exit(1);
}

int cli_backend_flag(const char *who, const char *a, const char *v, cli_backend *b) {
    const char **slot = !strcmp(a, "--backend") ? &b->backend : !strcmp(a, "--api-key") ? &b->api_key
                      : !strcmp(a, "--remote-model") ? &b->remote_model : NULL;
    bool top = !strcmp(a, "--remote-top"), tmo = !strcmp(a, "--remote-timeout");
    if (!slot && !top && !tmo) return 0;
    if (!v) { fprintf(stderr, "%s: %s needs a value\n", who, a); return -1; }
    if (top || tmo) {
        char *end;
        long n = strtol(v, &end, 10), lo = top ? 1 : 100, hi = top ? 64 : 3600000;
        if (*end || end == v || n < lo || n > hi) { fprintf(stderr, "%s: %s must be %ld..%ld (got %s)\n", who, a, lo, hi, v); return -1; }
        *(top ? &b->top : &b->timeout_ms) = (int)n;
        return 1;
    }
    if (slot == &b->backend && strcmp(v, "local") && strncmp(v, "llama-server:", 13) && strncmp(v, "openai:", 7)) {
        fprintf(stderr, "%s: --backend must be local, llama-server:URL or openai:URL (got %s)\n", who, v);
        return -1;
    }
    *slot = v;
    return 1;
}

int cli_load(const char *model_path, const char *hf, const char *models_dir, const char *rpc, bool verbose,
             int threads, uint32_t n_ctx, const cli_backend *be, fp_model **model, fp_engine **engine) {
    fp_error err = {0};
    bool remote = be && be->backend && strcmp(be->backend, "local") != 0;
    if (remote && rpc) { fprintf(stderr, "forkpoint: --rpc and a remote --backend exclude each other: the layers are on the server\n"); return 2; }
    char path[PATH_MAX];
    if (hf) {
        int rc = cli_pull(hf, models_dir, path, sizeof path);
        if (rc) return rc;
    } else if (fp_resolve_default_model(model_path, path, sizeof path, &err) != FP_OK) {
        fprintf(stderr, "forkpoint: %s\n", err.message);
        return err.code == FP_ERR_IO ? 2 : 1;
    }
    fp_model_params mp = fp_model_default_params();
    mp.verbose = verbose;
    mp.rpc = rpc;
    mp.vocab_only = remote;   /* the server has the weights: only the tokenizer here */
    if (rpc) {
        fp_rpc_set_lost_handler(rpc_lost);
        signal(SIGPIPE, SIG_IGN);   /* llama.cpp writes to a dead worker without MSG_NOSIGNAL */
    }
    *model = fp_model_load(path, &mp, &err);
    if (!*model) { fprintf(stderr, "forkpoint: %s\n", err.message); return 2; }
    fp_engine_params ep = fp_engine_default_params();
    ep.n_threads = threads;
    ep.n_ctx = n_ctx;
    if (remote) {
        ep.backend = be->backend;
        ep.api_key = be->api_key;
        ep.remote_model = be->remote_model;
        ep.remote_top = be->top;
        ep.remote_timeout_ms = be->timeout_ms;
    }
    *engine = fp_engine_new(*model, &ep, &err);
    if (!*engine) {
        fprintf(stderr, "forkpoint: %s\n", err.message);
        fp_model_free(*model);
        *model = NULL;
        return 1;
    }
    return 0;
}

/* Runs the forkpoint-serve binary that sits beside this executable. */
static int run_serve(int argc, char **argv) {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 32);
    if (n <= 0) { fprintf(stderr, "forkpoint: cannot locate myself\n"); return 1; }
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    strcpy(slash + 1, "forkpoint-serve");
    argv[0] = exe;
    execv(exe, argv);
    fprintf(stderr, "forkpoint: cannot run %s: %s (build it with make)\n", exe, strerror(errno));
    return 1;
}

int main(int argc, char **argv) {
    const char *cmd = argc > 1 ? argv[1] : "write";
    if (argc > 1 && argv[1][0] == '-' && strcmp(argv[1], "--help") && strcmp(argv[1], "-h")) cmd = "write";
    int skip = argc > 1 && cmd == argv[1] ? 2 : 1;
    if (!strcmp(cmd, "write")) return cli_write(argc - skip, argv + skip);
    if (!strcmp(cmd, "chat")) return cli_chat(argc - skip, argv + skip);
    if (!strcmp(cmd, "serve")) return run_serve(argc - skip + 1, argv + skip - 1);
    if (!strcmp(cmd, "model")) return cli_model(argc - skip, argv + skip);
    if (!strcmp(cmd, "export")) return cli_export(argc - skip, argv + skip);
    if (!strcmp(cmd, "profile")) return cli_profile(argc - skip, argv + skip);
    if (!strcmp(cmd, "learn")) return cli_learn(argc - skip, argv + skip);
    if (!strcmp(cmd, "worker") || !strcmp(cmd, "rpc-worker")) return cli_rpc_worker(argc - skip, argv + skip);
    if (!strcmp(cmd, "version")) { printf("forkpoint %s\n", FP_VERSION); return 0; }
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        printf("usage: forkpoint <command> [options]\n"
               "  write    steer generation in the terminal (forkpoint write --help)\n"
               "  chat     a dialogue, either side co-written (forkpoint chat --help)\n"
               "  serve    the web app (forkpoint serve --help)\n"
               "  model    list the models folder, pull a model from the hub (forkpoint model --help)\n"
               "  export   the decision log as datasets (sft, pairs, kto, raw)\n"
               "  profile  list, show or reset learned preference profiles\n"
               "  learn    train a personal LoRA adapter from the decision log (forkpoint learn --help)\n"
               "  worker      lend this machine's CPU and memory to --rpc clients (forkpoint worker --help)\n"
               "  version\n");
        return 0;
    }
    fprintf(stderr, "forkpoint: unknown command %s (try --help)\n", cmd);
    return 2;
}
