/*
 * bench_fork.c — how long it takes to prepare a fork, three ways (and a reference).
 *
 * Why: a fork shows k candidates, each with an L-token preview of what it
 * would lead to. Preparing those previews is the cost a person waits for at
 * every fork, so it decides whether Forkpoint feels instant. The library
 * grows all k branches together from one shared prefix; the obvious
 * alternatives grow them one at a time. This program times, on the same
 * model, prompt and thread count, in the same run:
 *
 *   (a) the Forkpoint library: the session opens a fork at the end of the
 *       prompt (token granularity, k candidates, lookahead L, a fork forced
 *       by fork_top1_below = 1.01); each repetition has it recompute that
 *       fork with fp_session_set_settings (same settings), which drops the
 *       fork's branches and grows candidates and previews again. (The call
 *       the issue names, fp_session_fork_at at the end of the text, returns
 *       the already open fork without recomputing it; its cost is printed.)
 *   (b) plain llama.h, one branch at a time over a cached prefix: the prefix
 *       is decoded once into seq 0; for each candidate, llama_memory_seq_cp
 *       to seq 1, decode the candidate and then its preview one token at a
 *       time, llama_memory_seq_rm — what a front end gets by sending one
 *       request per branch to a caching server (with the cheapest possible
 *       cache: a unified KV cache, where the copy only tags cells);
 *   (c) plain llama.h, one branch at a time with no cache: clear the memory,
 *       decode prompt + candidate, then the preview one token at a time;
 *   (d) for reference only: plain llama.h growing all branches together,
 *       one batch per step — the library's technique without the library,
 *       so d/a shows how much the library itself costs on top.
 *
 * All of them grow the same branches (the library's candidates) to the same
 * preview lengths (the library's: up to L tokens, less where its preview
 * ends early at a phrase or sentence end), greedily, so they do the same
 * model work; the printed decode counts and the preview comparison show it.
 *
 * It prints the median time of each and the ratios b/a, c/a, d/a, measured in
 * this run (the machine is shared and noisy, so only same-run ratios mean
 * anything; nothing here asserts a time).
 *
 * Usage: bench_fork [--model PATH] [--k N] [--lookahead L] [--threads N]
 *                   [--prompt-tokens N] [--reps N] [--reps-c N] [--warmup N] [--show]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "core/testing.h"
#include "forkpoint.h"
#include "llama.h"

typedef struct options {
    char model[4096];
    int32_t k, lookahead, threads, prompt_tokens, reps, reps_c, warmup;
    bool show;   /* print every branch's preview, library and plain */
} options;

static void usage(void) {
    fprintf(stderr,
        "usage: bench_fork [--model PATH] [--k N] [--lookahead L] [--threads N]\n"
        "                  [--prompt-tokens N] [--reps N] [--reps-c N] [--warmup N] [--show]\n"
        "  defaults: stories260K, k 8, lookahead 12, threads 2, prompt 256 tokens,\n"
        "            7 timed repetitions of (a) and (b) after 1 warm-up, 3 of (c) (0 skips it)\n");
}

/* Integer flag values: shared parsing, this program's usage on junk. */
#define int_arg(flag, v, lo, hi) bench_int_arg("bench_fork", flag, v, lo, hi, usage)

static void parse(options *o, int argc, char **argv) {
    *o = (options){ .k = 8, .lookahead = 12, .threads = 2, .prompt_tokens = 256,
                    .reps = 7, .reps_c = 3, .warmup = 1 };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(); exit(0); }
        if (!strcmp(a, "--show")) { o->show = true; continue; }
        if (i + 1 >= argc) { usage(); exit(2); }
        const char *v = argv[++i];
        if (!strcmp(a, "--model")) snprintf(o->model, sizeof o->model, "%s", v);
        else if (!strcmp(a, "--k")) o->k = int_arg(a, v, 1, 64);
        else if (!strcmp(a, "--lookahead") || !strcmp(a, "-L")) o->lookahead = int_arg(a, v, 1, 64);
        else if (!strcmp(a, "--threads")) o->threads = int_arg(a, v, 1, 256);
        else if (!strcmp(a, "--prompt-tokens")) o->prompt_tokens = int_arg(a, v, 2, 1024);
        else if (!strcmp(a, "--reps")) o->reps = int_arg(a, v, 1, 1000);
        else if (!strcmp(a, "--reps-c")) o->reps_c = int_arg(a, v, 0, 1000);
        else if (!strcmp(a, "--warmup")) o->warmup = int_arg(a, v, 0, 100);
        else { usage(); exit(2); }
    }
}

/* What one way of preparing a fork did in one repetition (bench_util.h). */
typedef bench_run run;

/* (a) The library recomputes the open fork at the end of the text
 * (bench_time_refork). */
#define time_library bench_time_refork

/* Grows one preview of n_target tokens from the logits of the last decode
 * (those after the candidate): pick greedily, append, and unless the preview
 * is complete decode the token at the next position. Stops early at end of
 * generation, as the library does. Returns the preview length. */
static int32_t plain_preview(bench_raw *raw, llama_pos pos, llama_seq_id seq, int32_t n_target,
                             llama_token *preview, bool *ok) {
    int32_t n = 0;
    while (n < n_target) {
        const llama_token t = bench_raw_pick(raw);
        if (t < 0 || (raw->tok_kind[t] & BENCH_TOK_EOG)) break;
        preview[n++] = t;
        if (n == n_target) break;
        if (bench_raw_decode(raw, &t, 1, pos++, seq) != 0) { *ok = false; break; }
    }
    return n;
}

/* (b) One branch at a time from a cached prefix in seq 0 (n_prompt tokens):
 * copy the prefix to seq 1, decode the candidate, grow its preview of
 * target[i] tokens, drop seq 1. previews receives n_cand rows (stride L),
 * lens their lengths. */
static run time_seq_cp(bench_raw *raw, const llama_token *cands, const int32_t *target,
                       int32_t n_cand, int32_t L, int32_t n_prompt, llama_token *previews,
                       int32_t *lens) {
    run r = { .ok = true };
    llama_memory_t mem = llama_get_memory(raw->ctx);
    const uint64_t c0 = raw->decode_calls, t0 = raw->decoded_tokens;
    const double start = bench_now_ms();
    for (int32_t i = 0; i < n_cand; i++) {
        llama_memory_seq_cp(mem, 0, 1, -1, -1);
        if (bench_raw_decode(raw, &cands[i], 1, n_prompt, 1) != 0) r.ok = false;
        lens[i] = plain_preview(raw, n_prompt + 1, 1, target[i], &previews[i * L], &r.ok);
        llama_memory_seq_rm(mem, 1, -1, -1);
    }
    r.ms = bench_now_ms() - start;
    r.calls = raw->decode_calls - c0;
    r.tokens = raw->decoded_tokens - t0;
    return r;
}

/* (c) One branch at a time with nothing cached: each branch pays for the
 * whole prompt again. buf has room for n_prompt + 1 tokens and starts with
 * the prompt. */
static run time_recompute(bench_raw *raw, llama_token *buf, const llama_token *cands,
                          const int32_t *target, int32_t n_cand, int32_t L, int32_t n_prompt,
                          llama_token *previews, int32_t *lens) {
    run r = { .ok = true };
    llama_memory_t mem = llama_get_memory(raw->ctx);
    const uint64_t c0 = raw->decode_calls, t0 = raw->decoded_tokens;
    const double start = bench_now_ms();
    for (int32_t i = 0; i < n_cand; i++) {
        llama_memory_clear(mem, false);
        buf[n_prompt] = cands[i];
        if (bench_raw_decode(raw, buf, n_prompt + 1, 0, 0) != 0) r.ok = false;
        lens[i] = plain_preview(raw, n_prompt + 1, 0, target[i], &previews[i * L], &r.ok);
    }
    r.ms = bench_now_ms() - start;
    r.calls = raw->decode_calls - c0;
    r.tokens = raw->decoded_tokens - t0;
    return r;
}

/* (d) Reference, not a front-end pattern: the same plain llama.h, but with
 * all branches in one batch per step (one sequence per branch, prefix cells
 * shared by seq_cp) — the technique the library uses, without the library.
 * a/d is the library's own overhead; d/a near 1 means (a) is as fast as
 * this machine allows for the technique. */
static run time_batched(bench_raw *raw, const llama_token *cands, const int32_t *target,
                        int32_t n_cand, int32_t L, int32_t n_prompt, llama_token *previews,
                        int32_t *lens) {
    run r = { .ok = true };
    llama_memory_t mem = llama_get_memory(raw->ctx);
    llama_token tok[64];
    llama_pos pos[64];
    llama_seq_id seq[64];
    int32_t row_of[64];   /* batch row -> branch */
    const uint64_t c0 = raw->decode_calls, t0 = raw->decoded_tokens;
    const double start = bench_now_ms();
    int32_t n = 0;
    for (int32_t i = 0; i < n_cand; i++) {
        llama_memory_seq_cp(mem, 0, 1 + i, -1, -1);
        lens[i] = 0;
        tok[n] = cands[i]; pos[n] = n_prompt; seq[n] = 1 + i; row_of[n] = i; n++;
    }
    while (n > 0) {
        if (bench_raw_decode_rows(raw, tok, pos, seq, n) != 0) { r.ok = false; break; }
        int32_t next = 0;
        for (int32_t b = 0; b < n; b++) {
            const int32_t i = row_of[b];
            if (lens[i] >= target[i]) continue;
            const llama_token t = bench_raw_pick_ith(raw, b);
            if (t < 0 || (raw->tok_kind[t] & BENCH_TOK_EOG)) continue;
            previews[i * L + lens[i]++] = t;
            if (lens[i] == target[i]) continue;
            tok[next] = t; pos[next] = n_prompt + lens[i]; seq[next] = 1 + i; row_of[next] = i; next++;
        }
        n = next;
    }
    for (int32_t i = 0; i < n_cand; i++) llama_memory_seq_rm(mem, 1 + i, -1, -1);
    r.ms = bench_now_ms() - start;
    r.calls = raw->decode_calls - c0;
    r.tokens = raw->decoded_tokens - t0;
    return r;
}

/* Prints one line of results and returns the median; *min_ms gets the
 * fastest run (the one least disturbed by other work on the machine). */
static double report(const char *label, const run *runs, int n, double *min_ms) {
    double *ms = malloc(sizeof(double) * (size_t)n);
    if (!ms) exit(1);
    for (int i = 0; i < n; i++) ms[i] = runs[i].ms;
    const double med = bench_median(ms, n);
    printf("%-44s median %9.1f ms  [min %9.1f, max %9.1f]  per fork: %3llu llama_decode calls, %5llu tokens\n",
           label, med, ms[0], ms[n - 1],
           (unsigned long long)runs[0].calls, (unsigned long long)runs[0].tokens);
    *min_ms = ms[0];
    free(ms);
    return med;
}

/* Prints a token row as text, for --show. */
static void print_tokens(const fp_model *m, const char *label, const llama_token *t, int32_t n) {
    char buf[1024];
    const int32_t len = fp_detokenize(m, t, n, buf, (int32_t)sizeof buf - 1);
    printf("    %-8s %2d tokens |", label, n);
    for (int32_t i = 0; i < len; i++) {   /* newlines and tabs shown escaped */
        if (buf[i] == '\n') fputs("\\n", stdout);
        else if (buf[i] == '\t') fputs("\\t", stdout);
        else putchar(buf[i]);
    }
    printf("| ");
    for (int32_t i = 0; i < n; i++) printf(" %d", t[i]);
    printf("\n");
}

/* Do two sets of previews agree token for token? Returns how many rows do. */
static int32_t same_previews(const llama_token *a, const int32_t *alen, const llama_token *b,
                             const int32_t *blen, int32_t n, int32_t L) {
    int32_t same = 0;
    for (int32_t i = 0; i < n; i++)
        same += alen[i] == blen[i] &&
                memcmp(&a[i * L], &b[i * L], sizeof(llama_token) * (size_t)alen[i]) == 0;
    return same;
}

int main(int argc, char **argv) {
    options o;
    parse(&o, argc, argv);
    char path[4096];
    fp_model *model = bench_load_model("bench_fork", o.model[0] ? o.model : NULL, path, sizeof path);
    char date[16];
    bench_today(date);

    fp_error err = {0};

    int32_t n_prompt = 0;
    char *prompt = bench_prompt(model, o.prompt_tokens, &n_prompt);

    fp_engine_params ep = fp_engine_default_params();
    ep.n_threads = o.threads;
    fp_engine *engine = fp_engine_new(model, &ep, &err);
    if (!engine) { fprintf(stderr, "bench_fork: engine: %s\n", err.message); return 1; }

    /* Token candidates, a preview of up to L tokens each, a fork at every
     * position (top-1 is always below 1.01) and no budget: the session opens
     * a fork right at the end of the prompt. Plain distribution (no
     * penalties, no truncation), greedy previews. */
    fp_settings set = bench_forced_fork_settings(o.k, o.lookahead);

    const double t_new0 = bench_now_ms();
    fp_session *s = fp_session_new(engine, prompt, &set, &err);
    const double t_new = bench_now_ms() - t_new0;
    if (!s) { fprintf(stderr, "bench_fork: session: %s\n", err.message); return 1; }
    if (fp_session_state(s) != FP_STATE_AT_FORK) {
        fprintf(stderr, "bench_fork: the session did not open a fork after the prompt\n");
        return 1;
    }

    /* The plain side: its own context over the same file (the weights are
     * mmapped, so the pages are shared), same KV size and thread count, one
     * sequence for the prefix and one per branch (for (d)). */
    bench_raw raw;
    bench_raw_open(&raw, path, fp_engine_n_ctx(engine), (uint32_t)o.k + 1, o.threads);
    const int32_t k = o.k, L = o.lookahead;
    llama_token *ptoks = malloc(sizeof(llama_token) * (size_t)(n_prompt + 2));
    llama_token *cands = malloc(sizeof(llama_token) * (size_t)k);
    llama_token *prev_a = calloc((size_t)(k * L), sizeof(llama_token));
    llama_token *prev_b = calloc((size_t)(k * L), sizeof(llama_token));
    llama_token *prev_c = calloc((size_t)(k * L), sizeof(llama_token));
    llama_token *prev_d = calloc((size_t)(k * L), sizeof(llama_token));
    int32_t *len_a = calloc((size_t)k, sizeof(int32_t));
    int32_t *len_b = calloc((size_t)k, sizeof(int32_t));
    int32_t *len_c = calloc((size_t)k, sizeof(int32_t));
    int32_t *len_d = calloc((size_t)k, sizeof(int32_t));
    int32_t *target = calloc((size_t)k, sizeof(int32_t));
    run *ra = calloc((size_t)o.reps, sizeof(run));
    run *rb = calloc((size_t)o.reps, sizeof(run));
    run *rd = calloc((size_t)o.reps, sizeof(run));
    run *rc = calloc((size_t)(o.reps_c ? o.reps_c : 1), sizeof(run));
    if (!ptoks || !cands || !prev_a || !prev_b || !prev_c || !prev_d || !len_a || !len_b || !len_c || !len_d || !target || !ra || !rb || !rc || !rd) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    const int32_t n_raw = bench_raw_tokenize(&raw, prompt, ptoks, n_prompt + 2);

    char desc[128];
    llama_model_desc(raw.model, desc, sizeof desc);
    printf("bench_fork %s  model %s (%s, n_embd %d, %d layers, vocab %d); load average %.2f\n", date,
           bench_basename(path), desc, llama_model_n_embd(raw.model), llama_model_n_layer(raw.model),
           raw.n_vocab, bench_loadavg());
    printf("prompt %d tokens (library session: %d); k = %d, L = %d; %d threads; "
           "%d reps of (a),(b) after %d warm-up, %d of (c)\n",
           n_raw, fp_session_n_tokens(s), k, L, o.threads, o.reps, o.warmup, o.reps_c);
    printf("fp_session_new (prompt decode + first fork): %.1f ms; engine n_ctx %u\n",
           t_new, fp_engine_n_ctx(engine));
    if (n_raw != n_prompt || fp_session_n_tokens(s) != n_prompt)
        printf("note: prompt token counts differ (fp_tokenize %d, llama_tokenize %d, session %d)\n",
               n_prompt, n_raw, fp_session_n_tokens(s));

    /* fp_session_fork_at at the end of the text finds the fork already open
     * there and returns it as it is; recorded here, not used for (a). */
    {
        const uint64_t t0 = fpi_engine_decoded_tokens(engine);
        const double start = bench_now_ms();
        const fp_status st = fp_session_fork_at(s, fp_session_text_len(s), &err);
        printf("fp_session_fork_at(end of text) on the open fork: %s, %.3f ms, %llu tokens decoded "
               "(no recomputation; (a) uses fp_session_set_settings)\n",
               fp_status_name(st), bench_now_ms() - start,
               (unsigned long long)(fpi_engine_decoded_tokens(engine) - t0));
    }
    fflush(stdout);

    /* The branches: the library's single-token candidates (it leaves out
     * end-of-generation and tokens that are not a word by themselves, such
     * as a bare space), and for each the length of the library's preview
     * (up to L; the library ends a preview early at the end of a phrase or
     * sentence). The plain loops grow the same branches to the same lengths,
     * so all three do the same model work (the library's own trimming of a
     * cut-off word can only make it decode more, never less). */
    const fp_fork *f = fp_session_fork(s);
    int32_t n_cand = 0;
    for (int32_t i = 0; f && i < f->n_candidates && n_cand < k; i++) {
        const fp_candidate *c = &f->candidates[i];
        if (c->n_tokens != 1 || c->is_eog) continue;
        cands[n_cand] = c->tokens[0];
        target[n_cand] = c->n_preview < L ? c->n_preview : L;
        n_cand++;
    }
    if (n_cand == 0) {
        fprintf(stderr, "bench_fork: the fork at the end of the prompt has no single-token candidate\n");
        return 1;
    }

    /* The cached prefix for (b), and the plain top-k at its end to compare. */
    const double t_pre0 = bench_now_ms();
    if (bench_raw_decode(&raw, ptoks, n_raw, 0, 0) != 0) { fprintf(stderr, "prefix decode failed\n"); return 1; }
    printf("llama.h prefix decode (first decode of its context): %.1f ms\n", bench_now_ms() - t_pre0);
    {
        llama_token *top = malloc(sizeof(llama_token) * (size_t)k);
        if (!top) return 1;
        const int32_t n_top = bench_raw_top_k(&raw, k, top);
        int32_t in_top = 0;
        for (int32_t i = 0; i < n_cand; i++)
            for (int32_t j = 0; j < n_top; j++) in_top += cands[i] == top[j];
        printf("branches: %d (the library shows %d candidates for k = %d; %d single-token, "
               "%d of them in the plain top-%d)\n",
               n_cand, f ? f->n_candidates : 0, k, n_cand, in_top, k);
        free(top);
    }
    fflush(stdout);

    /* (a), (b) and (d) alternate, so drifting machine load hits them alike. */
    for (int i = -o.warmup; i < o.reps; i++) {
        run a = time_library(s, engine, &set, &err);
        if (!a.ok) {
            fprintf(stderr, "bench_fork: fp_session_set_settings failed: %s (%s)\n",
                    err.message, fp_status_name(err.code));
            return 1;
        }
        run b = time_seq_cp(&raw, cands, target, n_cand, L, n_raw, prev_b, len_b);
        run d = time_batched(&raw, cands, target, n_cand, L, n_raw, prev_d, len_d);
        if (!b.ok || !d.ok) { fprintf(stderr, "bench_fork: llama_decode failed in (b) or (d)\n"); return 1; }
        if (i >= 0) { ra[i] = a; rb[i] = b; rd[i] = d; }
    }
    /* (c) runs last (it clears the memory); its context is warm by now. */
    for (int i = 0; i < o.reps_c; i++) {
        rc[i] = time_recompute(&raw, ptoks, cands, target, n_cand, L, n_raw, prev_c, len_c);
        if (!rc[i].ok) { fprintf(stderr, "bench_fork: llama_decode failed in (c)\n"); return 1; }
    }

    /* The library's previews, row for row with the branches. */
    f = fp_session_fork(s);
    int32_t n_lib = 0;
    for (int32_t i = 0; f && i < f->n_candidates && n_lib < n_cand; i++) {
        const fp_candidate *c = &f->candidates[i];
        if (c->n_tokens != 1 || c->is_eog) continue;
        if (c->tokens[0] != cands[n_lib]) break;   /* the cloud changed: nothing to compare */
        len_a[n_lib] = c->n_preview < L ? c->n_preview : L;
        memcpy(&prev_a[n_lib * L], c->preview_tokens, sizeof(llama_token) * (size_t)len_a[n_lib]);
        n_lib++;
    }

    printf("\n");
    double na = 0, nb = 0, nc = NAN;
    const double ma = report("(a) forkpoint: recompute the open fork", ra, o.reps, &na);
    const double mb = report("(b) llama.h: seq_cp, one branch at a time", rb, o.reps, &nb);
    const double mc = o.reps_c ? report("(c) llama.h: whole prompt again per branch", rc, o.reps_c, &nc) : NAN;
    double nd = 0;
    const double md = report("(d) reference: llama.h, branches batched", rd, o.reps, &nd);
    printf("\n");
    printf("b/a = %.2f   (goal >= 2; ratio of the fastest runs: %.2f)\n", mb / ma, nb / na);
    if (o.reps_c) printf("c/a = %.2f   (goal >= 4; ratio of the fastest runs: %.2f)\n", mc / ma, nc / na);
    printf("d/a = %.2f   (the library against its own technique written directly; fastest runs: %.2f)\n",
           md / ma, nd / na);
    int32_t tot = 0;
    for (int32_t i = 0; i < n_cand; i++) tot += target[i];
    printf("previews: %d tokens over %d branches (lengths as the library's, at most L = %d);\n"
           "          same tokens: library = plain (b) for %d of %d branches",
           tot, n_cand, L, n_lib == n_cand ? same_previews(prev_a, len_a, prev_b, len_b, n_cand, L) : 0, n_cand);
    if (o.reps_c) printf(", plain (b) = plain (c) for %d of %d", same_previews(prev_b, len_b, prev_c, len_c, n_cand, L), n_cand);
    printf(", plain (b) = plain (d) for %d of %d", same_previews(prev_b, len_b, prev_d, len_d, n_cand, L), n_cand);
    printf("\n");
    if (o.show) {
        for (int32_t i = 0; i < n_cand; i++) {
            print_tokens(model, "branch", &cands[i], 1);
            if (i < n_lib) print_tokens(model, "(a)", &prev_a[i * L], len_a[i]);
            print_tokens(model, "(b)", &prev_b[i * L], len_b[i]);
            if (o.reps_c) print_tokens(model, "(c)", &prev_c[i * L], len_c[i]);
            print_tokens(model, "(d)", &prev_d[i * L], len_d[i]);
        }
    }
    printf("load average at the end: %.2f\n", bench_loadavg());
    if (ra[0].tokens == 0)
        printf("warning: the library decoded nothing while recomputing the fork; (a) did not measure a fork preparation\n");

    free(ra); free(rb); free(rc); free(rd);
    free(prev_a); free(prev_b); free(prev_c); free(prev_d);
    free(len_a); free(len_b); free(len_c); free(len_d); free(target);
    free(cands); free(ptoks); free(prompt);
    bench_raw_close(&raw);
    fp_session_free(s);
    fp_engine_free(engine);
    fp_model_free(model);
    return 0;
}
