/*
 * fuzz_flags.c — the command-line flag parsers: `forkpoint write`
 * (cli_write_opts), `forkpoint-serve` (srv_parse_args), the flag loops of
 * `forkpoint learn`, `export` and `profile`, cli_parse_num itself, and the
 * --rpc list (fp_rpc_parse, on every argument; `rpc-worker` is not driven:
 * a valid flag set would start serving).
 *
 * Input: the first byte picks the parser, the rest is argv, NUL-separated.
 * Why: numeric flags are where a double meets an int (a cast of an
 * out-of-range value is undefined); every value must be taken in range or
 * refused with exit code 2 / -1. learn, export and profile are only given
 * argument lists without "--db", so they stop after parsing (they would
 * otherwise open the database and load the model); write's parser is not
 * given --help, which exits.
 */
#include "fuzz_common.h"
#include "cli/cli.h"
#include "server/serve.h"

#include <math.h>
#include <string.h>

#define MAX_ARGS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    unsigned which = data[0] % 6;
    char *buf;
    char *argv[MAX_ARGS + 2];
    int argc = fz_split(data + 1, size - 1, 0, argv + 1, MAX_ARGS, &buf);
    argv[0] = "forkpoint";
    argv[argc + 1] = NULL;
    bool has_db = false, has_help = false;
    for (int i = 1; i <= argc; i++) {
        if (!strcmp(argv[i], "--db")) has_db = true;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) has_help = true;
    }
    /* every argument as an --rpc list: taken whole and in range, or refused with a message */
    for (int i = 1; i <= argc; i++) {
        fp_rpc_endpoint eps[FP_RPC_MAX];
        int n = -1;
        fp_error err = {0};
        if (fp_rpc_parse(argv[i], eps, FP_RPC_MAX, &n, &err) == FP_OK) {
            FZ_CHECK(n >= 1 && n <= FP_RPC_MAX, "rpc count %d", n);
            for (int j = 0; j < n; j++)
                FZ_CHECK(eps[j].host[0] && strlen(eps[j].host) < sizeof eps[j].host && eps[j].port >= 1 && eps[j].port <= 65535
                         && !strchr(eps[j].host, ',') && !strchr(eps[j].host, ':'), "rpc entry %d: %s:%d", j, eps[j].host, eps[j].port);
        } else {
            FZ_CHECK(err.code == FP_ERR_ARG && err.message[0], "rpc refusal without a message");
        }
    }
    switch (which) {
    case 0:
        if (!has_help) {
            write_opts o = {0};
            int rc = cli_write_opts(argc, argv + 1, &o);
            FZ_CHECK(rc == 0 || rc == 2, "rc %d", rc);
            if (rc == 0) {
                fp_error err = {0};
                FZ_CHECK(o.threads >= 0 && o.threads <= 512, "threads %d", o.threads);
                FZ_CHECK(isnan(o.lora_scale) || fabsf(o.lora_scale) <= 16, "lora scale %g", o.lora_scale);
                FZ_CHECK(isnan(o.steer_strength) || fabsf(o.steer_strength) <= 64, "steer %g", o.steer_strength);
                /* a combination the validator refuses is reported by write later,
                 * with a message; here the validator only has to cope with it */
                if (fp_settings_validate(&o.st, &err) != FP_OK) FZ_CHECK(err.message[0], "no message");
                int n;
                fp_rpc_endpoint eps[FP_RPC_MAX];
                if (o.rpc) FZ_CHECK(fp_rpc_parse(o.rpc, eps, FP_RPC_MAX, &n, &err) == FP_OK, "write took a bad --rpc %s", o.rpc);
            }
        }
        break;
    case 1: {
        srv_config cfg;
        int rc = srv_parse_args(argc + 1, argv, &cfg);
        FZ_CHECK(rc == 0 || rc == 1 || rc == -1, "rc %d", rc);
        if (rc == 0) {
            FZ_CHECK(cfg.port >= 0 && cfg.port <= 65535, "port %d", cfg.port);
            FZ_CHECK(cfg.n_seq_max == 0 || (cfg.n_seq_max >= 2 && cfg.n_seq_max <= 256), "seq max %u", cfg.n_seq_max);   /* 0: follows the context */
            FZ_CHECK(cfg.max_live >= 1 && cfg.max_live <= 256, "max live %d", cfg.max_live);
            FZ_CHECK(cfg.batch_sessions >= 1 && cfg.batch_sessions <= SRV_MAX_EXEC, "batch sessions %d", cfg.batch_sessions);
            FZ_CHECK(cfg.http_threads >= 4 && cfg.http_threads <= 8192, "http threads %d", cfg.http_threads);
            FZ_CHECK(srv_host_is_loopback(cfg.host) || cfg.token, "non-loopback %s without a token", cfg.host);
            fp_rpc_endpoint eps[FP_RPC_MAX];
            int n;
            fp_error err = {0};
            if (cfg.rpc) FZ_CHECK(fp_rpc_parse(cfg.rpc, eps, FP_RPC_MAX, &n, &err) == FP_OK, "serve took a bad --rpc %s", cfg.rpc);
        }
        break;
    }
    case 2: if (!has_db) FZ_CHECK(cli_learn(argc, argv + 1) != 0 || has_help, "learn ran without --db"); break;
    case 3: if (!has_db) FZ_CHECK(cli_export(argc, argv + 1) != 0 || has_help, "export ran without --db"); break;
    case 4: if (!has_db) FZ_CHECK(cli_profile(argc, argv + 1) != 0, "profile ran without --db"); break;
    case 5:
        if (argc >= 1) {
            double lo = -1e6, hi = 1e6, v = NAN;
            if (argc >= 3 && (!cli_parse_num(argv[2], -INFINITY, INFINITY, &lo) ||
                              !cli_parse_num(argv[3], -INFINITY, INFINITY, &hi))) break;
            if (cli_parse_num(argv[1], lo, hi, &v)) FZ_CHECK(v >= lo && v <= hi, "%g outside [%g, %g]", v, lo, hi);
        }
        break;
    }
    free(buf);
    return 0;
}
