/*
 * cli.h — what the subcommands of the `forkpoint` binary share.
 */
#ifndef FP_CLI_H
#define FP_CLI_H

#include "forkpoint.h"
#include "forkpoint_learn.h"

#include <stdio.h>

/* Resolves the model (hf: --hf OWNER/REPO[:QUANT] downloaded into models_dir,
 * NULL = the cache; else model_path, $FORKPOINT_MODEL, cache, ../shared,
 * download) and loads it and an engine of n_ctx KV cells (0: the engine's
 * default); prints a one-line error and returns non-zero on failure.
 * rpc non-NULL: the layers go to those RPC workers (fp_model_params.rpc); an
 * unreachable worker is the one-line error, and a worker lost later ends the
 * process with one line and exit code 1 (what was logged stays logged). */
/* --backend and what goes with it (fp_engine_params: backend, api_key,
 * remote_model, remote_top); all NULL/0 = the local engine. */
typedef struct cli_backend { const char *backend, *api_key, *remote_model; int top, timeout_ms; } cli_backend;
/* Takes flag a (value v) if it is one of --backend, --api-key,
 * --remote-model, --remote-top: 1 taken (value used), 0 not ours, -1 bad
 * (a line printed, prefixed with who). */
int cli_backend_flag(const char *who, const char *a, const char *v, cli_backend *b);
#define CLI_BACKEND_HELP \
    "  --backend B           local (default), llama-server:URL or openai:URL: run on a remote engine\n" \
    "                        (the model file gives the tokenizer; docs/deploy.md)\n" \
    "  --api-key KEY         sent as a Bearer token (default: $FORKPOINT_API_KEY, $OPENAI_API_KEY)\n" \
    "  --remote-model NAME   the \"model\" field for openai: (default: the server's first model)\n" \
    "  --remote-top N        top log-probabilities asked per position (1..64, default 20)\n" \
    "  --remote-timeout MS   one request's limit before a retry (default 30000)\n"
/* be: --backend and its flags (NULL: local). With a remote back end the
 * model is loaded vocab-only (the tokenizer) and --rpc is refused. */
int cli_load(const char *model_path, const char *hf, const char *models_dir, const char *rpc, bool verbose,
             int threads, uint32_t n_ctx, const cli_backend *be, fp_model **model, fp_engine **engine);
/* --hf SPEC into models_dir (NULL = the cache) with a progress bar on a
 * terminal; the path into out. 0, or the exit code after a one-line error
 * (2 bad input: spec, repository, quant; 1 network, transfer, checksum). */
int cli_pull(const char *spec, const char *models_dir, char *out, size_t cap);
int cli_model(int argc, char **argv);   /* model.c: `forkpoint model list|pull|PATH` */

/* Puts the terminal back (write's raw key mode); safe from any thread. */
void cli_tty_restore(void);
int cli_rpc_worker(int argc, char **argv);   /* rpc_worker.c: `forkpoint worker` */

int cli_write(int argc, char **argv);
int cli_chat(int argc, char **argv);    /* chat.c: a dialogue, either side co-written */
int cli_export(int argc, char **argv);
int cli_profile(int argc, char **argv);
int cli_learn(int argc, char **argv);
/* `forkpoint profile show`: what a profile learned, as plain text (profile_view.c). */
void cli_profile_print(FILE *out, const char *name, const fp_prefs *p, int64_t logged);

/* ---- `forkpoint write`: its option and script-line parsers (write.c).
 * Not static so the fuzz harnesses (fuzz/) can drive them directly. */
typedef enum { CMD_CHOOSE, CMD_PREVIEW, CMD_UNTIL, CMD_TYPE, CMD_PREFIX, CMD_UNDO, CMD_CONTINUE, CMD_QUIT, CMD_EOF, CMD_BAD } cmd_kind;
typedef struct { cmd_kind kind; int index; int words; char text[FP_MAX_TEXT]; } command; /* words: CMD_UNTIL */

typedef struct {
    const char *model_path;
    const char *hf;        /* --hf OWNER/REPO[:QUANT], NULL = none */
    const char *models_dir; /* --models-dir: where --hf downloads go, NULL = the cache */
    const char *prompt;
    const char *choices;   /* NULL = keyboard if a terminal, else stdin */
    const char *json;      /* NULL = no event log; "-" = stdout */
    fp_settings st;
    int threads;
    int ctx;               /* the text's context window in tokens, 0 = the model's (up to 4096) */
    const char *grammar;   /* a GBNF file, NULL = none */
    bool verbose;
    const char *db;        /* decision log (SQLite), NULL = none */
    const char *profile;   /* learn this person's preferences */
    bool auto_resolve;     /* let confident preferences decide forks */
    bool adapt;            /* start from the settings the profile's entry habits ask for */
    const char *lora;      /* a LoRA adapter (forkpoint learn --lora), NULL = none */
    float lora_scale;
    const char *rpc;       /* --rpc HOST:PORT,...: the layers on these RPC workers, NULL = here */
    const char *steer;     /* a steering vector (forkpoint learn --steer), NULL = none */
    float steer_strength;
    cli_backend be;        /* --backend and its flags */
} write_opts;

/* A number in [lo, hi] (NaN and trailing text refused); true when it is one. */
bool cli_parse_num(const char *s, double lo, double hi, double *out);
/* The options of `forkpoint write` into o. Returns 0, or 2 on a usage error
 * (message on stderr); --help prints the usage and exits 0. */
int cli_write_opts(int argc, char **argv, write_opts *o);
/* One line of a --choices script (modified in place: comment cut, trimmed).
 * Blank and comment lines give CMD_EOF; a malformed pN.K gives CMD_BAD with
 * index -2 and the message in text; other unknown lines CMD_BAD with the line. */
command cli_parse_command(char *line);

/* ---- terminal columns (width.c) */
int     cli_char_width(uint32_t cp);                /* 0, 1 or 2 columns */
int     cli_text_width(const char *text, size_t n); /* columns of UTF-8 text */
/* Where text[0..n) must break to fit cols columns: the byte offsets that
 * begin a new line (words are kept whole, wide characters break anywhere),
 * at most cap of them; returns their count. */
int32_t cli_wrap(const char *text, size_t n, int cols, size_t *breaks, int32_t cap);

#endif
