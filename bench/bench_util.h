/*
 * bench_util.h — small helpers shared by the Forkpoint benchmarks.
 *
 * Why: the benchmarks compare the Forkpoint library against plain llama.cpp
 * loops in the same process, on the same model file and the same prompt. The
 * plain side (context set-up, decoding, greedy picks), the clock, the median,
 * the load average and the prompt text must be identical in every program,
 * so they live here once.
 */
#ifndef FORKPOINT_BENCH_UTIL_H
#define FORKPOINT_BENCH_UTIL_H

#include <stdbool.h>
#include <stdint.h>

#include "forkpoint.h"
#include "forkpoint_learn.h"
#include "core/testing.h"
#include "llama.h"

/* Monotonic wall clock in milliseconds. */
double bench_now_ms(void);

/* Median of n values (n >= 1); v is reordered. */
double bench_median(double *v, int n);

/* Today's date as YYYY-MM-DD (for the printed record). */
void bench_today(char out[16]);

/* The 1-minute load average (from /proc/loadavg), or -1 where there is
 * none. Printed before and after each benchmark: on a shared machine it says
 * how much other work the figures had to share the cores with. */
double bench_loadavg(void);

/* Reads an integer flag value in [lo, hi]; on junk prints why, calls usage
 * and exits with status 2. */
int32_t bench_int_arg(const char *prog, const char *flag, const char *v, int32_t lo, int32_t hi,
                      void (*usage)(void));

/* Last path component, for printing. */
const char *bench_basename(const char *path);

/* Resolves --model: the given path, or the library's default (stories260K).
 * Exits with a message when nothing can be found. */
void bench_resolve_model(const char *explicit_path, char *out, size_t cap);

/* Resolves --model as above, loads it and silences llama.cpp's info
 * logging; prints "prog: why" and exits 1 when the model cannot be loaded.
 * The resolved path is left in path. */
fp_model *bench_load_model(const char *prog, const char *explicit_path, char *path, size_t cap);

/* Silences llama.cpp's info logging (errors still reach stderr). */
void bench_quiet_llama(void);

/* A built-in story, long enough for any prompt length we ask for. */
const char *bench_story(void);

/* Returns a malloc'd prefix of bench_story() that ends at a word boundary and
 * tokenizes (with BOS) to as many tokens as possible without exceeding
 * n_tokens. *got receives that count. Exits if the story is too short. */
char *bench_prompt(const fp_model *model, int32_t n_tokens, int32_t *got);

/* ---- a fork forced at the end of the prompt, recomputed and timed --------- */

/* Token candidates (k), previews of up to lookahead tokens, a fork at every
 * position (top-1 is always below 1.01) and no budget, plain distribution,
 * greedy previews: a session opens a fork right at the end of its prompt.
 * Exits when the settings are refused. */
fp_settings bench_forced_fork_settings(int32_t k, int32_t lookahead);

/* What one way of preparing a fork did in one repetition. */
typedef struct bench_run {
    double ms;
    uint64_t calls, tokens;
    bool ok;
} bench_run;

/* The library recomputes the open fork at the end of the text:
 * fp_session_set_settings with unchanged settings drops the fork's live
 * branches and computes its candidates and previews again (the documented
 * "the current fork is recomputed"). The decode counters show the work. */
bench_run bench_time_refork(fp_session *s, fp_engine *e, const fp_settings *set, fp_error *err);

/* ---- the plain llama.cpp side -------------------------------------------- */

/* What the plain loops need to know about a token to pick like the library. */
enum {
    BENCH_TOK_SKIP = 1,       /* control, unknown, unused or empty: never picked */
    BENCH_TOK_EOG = 2         /* end of generation: ends a preview, not part of it */
};

typedef struct bench_raw {
    struct llama_model   *model;
    struct llama_context *ctx;
    const struct llama_vocab *vocab;
    int32_t n_vocab;
    struct llama_batch batch;    /* room for n_batch tokens, one seq id each */
    int32_t n_batch;
    uint64_t decode_calls;       /* counted like fpi_engine_decode_calls */
    uint64_t decoded_tokens;
    uint8_t *tok_kind;           /* [n_vocab] BENCH_TOK_* flags */
} bench_raw;

/* Loads the model file and creates one context with n_ctx cells, n_seq_max
 * sequences and n_threads threads (for both generation and batches). The KV
 * cache is unified, so llama_memory_seq_cp only tags cells (the cheapest
 * possible prefix sharing — the best case for the one-branch-at-a-time
 * baseline). Exits on failure. */
void bench_raw_open(bench_raw *r, const char *path, uint32_t n_ctx, uint32_t n_seq_max,
                    int32_t n_threads);
void bench_raw_close(bench_raw *r);

/* Tokenizes text with BOS the way llama.cpp front ends do. Returns the count
 * (exits when cap is too small). */
int32_t bench_raw_tokenize(const bench_raw *r, const char *text, llama_token *out, int32_t cap);

/* Decodes n tokens at positions pos0.. into seq; only the last one outputs
 * logits. Returns llama_decode's result. */
int32_t bench_raw_decode(bench_raw *r, const llama_token *tokens, int32_t n,
                         llama_pos pos0, llama_seq_id seq);

/* The k most probable tokens of the last output row that the library could
 * show as candidates (no control or end-of-generation tokens), best first.
 * Returns how many were found (k unless the vocabulary is tiny). */
int32_t bench_raw_top_k(const bench_raw *r, int32_t k, llama_token *out);

/* Decodes n tokens that may belong to different sequences (token i at
 * pos[i] in seq[i]), every one producing logits. Returns llama_decode's result. */
int32_t bench_raw_decode_rows(bench_raw *r, const llama_token *tokens, const llama_pos *pos,
                              const llama_seq_id *seq, int32_t n);

/* The most probable token that is not BENCH_TOK_SKIP: a greedy pick that,
 * like the library's, never lands on a control token. -1 if none.
 * bench_raw_pick reads the last output row, bench_raw_pick_ith row i. */
llama_token bench_raw_pick(const bench_raw *r);
llama_token bench_raw_pick_ith(const bench_raw *r, int32_t i);

#endif
