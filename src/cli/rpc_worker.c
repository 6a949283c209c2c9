/*
 * rpc_worker.c — `forkpoint worker`: lend this machine's CPU and memory
 * to `--rpc` clients (write, chat, serve), through llama.cpp's RPC server.
 *
 *   forkpoint worker [--host 127.0.0.1] [--port 50052] [--threads N]
 *
 * Thin: the flags, then fp_rpc_serve (src/core/rpc.c), which blocks. The
 * protocol has no authentication and no encryption (upstream calls it a
 * proof of concept): loopback by default, and another address needs
 * --allow-remote and prints a warning, as upstream's rpc-server does.
 * A worker serves one client at a time.
 */
#include "cli/cli.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fputs("usage: forkpoint worker [options]\n"
          "  --host ADDR      IPv4 address to listen on (default 127.0.0.1)\n"
          "  --allow-remote   needed for an address other than loopback: the RPC protocol has\n"
          "                   no authentication or encryption (a private network only, docs/deploy.md)\n"
          "  --port N         port (default 50052)\n"
          "  --threads N      CPU threads for the layers this worker holds (default: all)\n"
          "Clients: forkpoint write|chat|serve --rpc HOST:PORT[,HOST:PORT...]. One client at a time.\n", f);
}

int cli_rpc_worker(int argc, char **argv) {
    const char *host = "127.0.0.1";
    double port = 50052, threads = 0;
    bool remote = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        if (!strcmp(a, "--allow-remote")) { remote = true; continue; }
        if (!v) { fprintf(stderr, "forkpoint worker: %s needs a value (see --help)\n", a); return 2; }
        i++;
        if (!strcmp(a, "--host")) host = v;
        else if (!strcmp(a, "--port")) {
            if (!cli_parse_num(v, 1, 65535, &port) || port != (int)port) {
                fprintf(stderr, "forkpoint worker: --port wants 1..65535, got %s\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--threads")) {
            if (!cli_parse_num(v, 1, 512, &threads) || threads != (int)threads) {
                fprintf(stderr, "forkpoint worker: --threads wants 1..512, got %s\n", v);
                return 2;
            }
        } else { fprintf(stderr, "forkpoint worker: unknown option %s (see --help)\n", a); return 2; }
    }
    bool loopback = !strncmp(host, "127.", 4);
    if (!loopback && !remote) {
        fprintf(stderr, "forkpoint worker: --host %s is not loopback: the RPC protocol has no authentication, "
                        "so anyone who reaches the port can use this machine's memory and CPU and send it crafted tensors; give --allow-remote "
                        "on a private network only\n", host);
        return 2;
    }
    if (!loopback)
        fprintf(stderr, "forkpoint worker: WARNING: listening on %s, off loopback. The RPC protocol has no "
                        "authentication or encryption: keep this port on a private network (docs/deploy.md)\n", host);
    /* a client that left while its request waited (a worker serves one at a
     * time) must not end the worker with SIGPIPE when it is answered */
    signal(SIGPIPE, SIG_IGN);
    fp_error err = {0};
    fp_rpc_serve(host, (int)port, (int)threads, &err);   /* returns only when it cannot serve */
    fprintf(stderr, "forkpoint worker: %s\n", err.message);
    return err.code == FP_ERR_ARG ? 2 : 1;
}
