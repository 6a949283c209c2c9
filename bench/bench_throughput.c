/*
 * bench_throughput.c — speed of automatic continuation against a plain loop.
 *
 * Why: between forks Forkpoint continues by itself, and at every position it
 * also measures the uncertainty and keeps a record of it. That bookkeeping
 * must not make plain generation noticeably slower than llama.cpp alone
 * (goal: at least 0.90 of its tokens per second). This program times, on
 * the same model, prompt and thread count, in the same run:
 *
 *   library: fp_session_new with fork detection disabled (every threshold
 *            <= 0), greedy, max_tokens N — it decodes the prompt and runs
 *            on to the end without a single fork;
 *   plain:   llama_decode of the prompt, then argmax (over non-control
 *            tokens) and llama_decode one token at a time, N times
 *            (stopping early at end-of-generation, as the library does).
 *
 * Both timings cover the same work (prompt + N tokens), and the prompt is
 * short, so the rate is essentially the generation rate. Runs alternate
 * between the two; medians and their ratio are printed, together with the
 * decode counts and a check that both produced the same greedy tokens.
 *
 * Usage: bench_throughput [--model PATH] [--tokens N] [--threads N]
 *                         [--reps N] [--warmup N] [--prompt TEXT]
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
    const char *prompt;
    int32_t tokens, threads, reps, warmup;
} options;

static void usage(void) {
    fprintf(stderr,
        "usage: bench_throughput [--model PATH] [--tokens N] [--threads N] [--reps N]\n"
        "                        [--warmup N] [--prompt TEXT]\n"
        "  defaults: stories260K, 256 tokens, 2 threads, 5 reps, 1 warm-up,\n"
        "            prompt \"Once upon a time\"\n");
}

/* Integer flag values: shared parsing, this program's usage on junk. */
#define int_arg(flag, v, lo, hi) bench_int_arg("bench_throughput", flag, v, lo, hi, usage)

static void parse(options *o, int argc, char **argv) {
    *o = (options){ .prompt = "Once upon a time", .tokens = 256, .threads = 2, .reps = 5, .warmup = 1 };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(); exit(0); }
        if (i + 1 >= argc) { usage(); exit(2); }
        const char *v = argv[++i];
        if (!strcmp(a, "--model")) snprintf(o->model, sizeof o->model, "%s", v);
        else if (!strcmp(a, "--prompt")) o->prompt = v;
        else if (!strcmp(a, "--tokens")) o->tokens = int_arg(a, v, 1, 100000);
        else if (!strcmp(a, "--threads")) o->threads = int_arg(a, v, 1, 256);
        else if (!strcmp(a, "--reps")) o->reps = int_arg(a, v, 1, 1000);
        else if (!strcmp(a, "--warmup")) o->warmup = int_arg(a, v, 0, 100);
        else { usage(); exit(2); }
    }
}

typedef struct run {
    double ms;
    int32_t generated;
    uint64_t calls, tokens;
} run;

/* The library: one session that never forks, from prompt to max_tokens.
 * out receives the generated tokens (at most cap). */
static run time_library(fp_engine *e, const char *prompt, const fp_settings *set,
                        int32_t *out, int32_t cap, char *end_reason, size_t end_cap) {
    run r = {0};
    fp_error err = {0};
    const uint64_t c0 = fpi_engine_decode_calls(e), t0 = fpi_engine_decoded_tokens(e);
    const double start = bench_now_ms();
    fp_session *s = fp_session_new(e, prompt, set, &err);
    r.ms = bench_now_ms() - start;
    if (!s) { fprintf(stderr, "bench_throughput: session: %s\n", err.message); exit(1); }
    if (fp_session_state(s) != FP_STATE_ENDED) {
        fprintf(stderr, "bench_throughput: the session stopped at a fork although fork detection is off\n");
        exit(1);
    }
    r.calls = fpi_engine_decode_calls(e) - c0;
    r.tokens = fpi_engine_decoded_tokens(e) - t0;
    r.generated = fp_session_n_positions(s);
    for (int32_t i = 0; i < r.generated && i < cap; i++) out[i] = fp_session_position(s, i)->token;
    snprintf(end_reason, end_cap, "%s", fp_session_end_reason(s));
    fp_session_free(s);
    return r;
}

/* The plain loop: prompt, then argmax + one-token llama_decode, N times.
 * The argmax skips control tokens (BOS, UNK, ...), which render as nothing
 * and which the library never continues with either; a random-weight model
 * would otherwise happily emit BOS and the two texts would part ways. */
static run time_plain(bench_raw *raw, const llama_token *prompt, int32_t n_prompt,
                      int32_t n_gen, int32_t *out) {
    run r = {0};
    const uint64_t c0 = raw->decode_calls, t0 = raw->decoded_tokens;
    const double start = bench_now_ms();
    llama_memory_clear(llama_get_memory(raw->ctx), false);
    if (bench_raw_decode(raw, prompt, n_prompt, 0, 0) != 0) {
        fprintf(stderr, "bench_throughput: prompt decode failed\n");
        exit(1);
    }
    for (int32_t i = 0; i < n_gen; i++) {
        llama_token tok = bench_raw_pick(raw);
        if (tok < 0 || llama_vocab_is_eog(raw->vocab, tok)) break;
        out[r.generated++] = tok;
        if (bench_raw_decode(raw, &tok, 1, n_prompt + i, 0) != 0) {
            fprintf(stderr, "bench_throughput: decode failed at token %d\n", i);
            exit(1);
        }
    }
    r.ms = bench_now_ms() - start;
    r.calls = raw->decode_calls - c0;
    r.tokens = raw->decoded_tokens - t0;
    return r;
}

/* Prints one result line and returns the median tokens per second; *best
 * gets the rate of the fastest run (the one least disturbed by other work). */
static double report(const char *label, const run *runs, int n, double *best) {
    double *ms = malloc(sizeof(double) * (size_t)n);
    if (!ms) exit(1);
    for (int i = 0; i < n; i++) ms[i] = runs[i].ms;
    const double med = bench_median(ms, n);
    const double tps = runs[0].generated / (med / 1e3);
    printf("%-36s %8.1f tokens/s  (median %8.1f ms for %d tokens, [min %.1f, max %.1f]; "
           "%llu llama_decode calls, %llu tokens)\n",
           label, tps, med, runs[0].generated, ms[0], ms[n - 1],
           (unsigned long long)runs[0].calls, (unsigned long long)runs[0].tokens);
    *best = runs[0].generated / (ms[0] / 1e3);
    free(ms);
    return tps;
}

int main(int argc, char **argv) {
    options o;
    parse(&o, argc, argv);
    char path[4096];
    fp_model *model = bench_load_model("bench_throughput", o.model[0] ? o.model : NULL, path, sizeof path);
    char date[16];
    bench_today(date);

    fp_error err = {0};

    fp_engine_params ep = fp_engine_default_params();
    ep.n_threads = o.threads;
    fp_engine *engine = fp_engine_new(model, &ep, &err);
    if (!engine) { fprintf(stderr, "bench_throughput: engine: %s\n", err.message); return 1; }

    /* No fork test enabled, greedy, plain distribution, stop after N. */
    fp_settings set = fp_default_settings();
    set.fork_entropy_bits = 0.0f;
    set.fork_top1_below = 0.0f;
    set.fork_margin_below = 0.0f;
    set.sample_auto = false;
    set.temperature = 1.0f;
    set.top_k = 0;
    set.top_p = 1.0f;
    set.min_p = 0.0f;
    set.repeat_penalty = 1.0f;
    set.max_tokens = o.tokens;
    if (fp_settings_validate(&set, &err) != FP_OK) {
        fprintf(stderr, "bench_throughput: settings rejected: %s\n", err.message);
        return 1;
    }

    bench_raw raw;
    bench_raw_open(&raw, path, fp_engine_n_ctx(engine), 1, o.threads);
    llama_token ptoks[512];
    const int32_t n_prompt = bench_raw_tokenize(&raw, o.prompt, ptoks, 512);
    if (n_prompt + o.tokens > (int32_t)fp_engine_n_ctx(engine)) {
        fprintf(stderr, "bench_throughput: prompt + %d tokens do not fit n_ctx %u\n",
                o.tokens, fp_engine_n_ctx(engine));
        return 1;
    }

    int32_t *gen_lib = malloc(sizeof(int32_t) * (size_t)o.tokens);
    int32_t *gen_raw = malloc(sizeof(int32_t) * (size_t)o.tokens);
    run *rl = calloc((size_t)o.reps, sizeof(run));
    run *rr = calloc((size_t)o.reps, sizeof(run));
    if (!gen_lib || !gen_raw || !rl || !rr) { fprintf(stderr, "out of memory\n"); return 1; }

    char desc[128];
    llama_model_desc(raw.model, desc, sizeof desc);
    printf("bench_throughput %s  model %s (%s, n_embd %d, %d layers, vocab %d); load average %.2f\n", date,
           bench_basename(path), desc, llama_model_n_embd(raw.model), llama_model_n_layer(raw.model),
           raw.n_vocab, bench_loadavg());
    printf("prompt \"%s\" (%d tokens); up to %d greedy tokens; %d threads; %d reps, %d warm-up\n\n",
           o.prompt, n_prompt, o.tokens, o.threads, o.reps, o.warmup);
    fflush(stdout);

    char end_reason[32] = "";
    for (int i = -o.warmup; i < o.reps; i++) {
        run a = time_library(engine, o.prompt, &set, gen_lib, o.tokens, end_reason, sizeof end_reason);
        run b = time_plain(&raw, ptoks, n_prompt, o.tokens, gen_raw);
        if (i >= 0) { rl[i] = a; rr[i] = b; }
    }

    double bl = 0, br = 0;
    const double tl = report("forkpoint auto-continuation", rl, o.reps, &bl);
    const double tr = report("llama.h decode + argmax loop", rr, o.reps, &br);
    printf("\nratio forkpoint / llama.h = %.3f   (goal >= 0.90; ratio of the fastest runs: %.3f)\n",
           tl / tr, bl / br);

    const int32_t n = rl[0].generated < rr[0].generated ? rl[0].generated : rr[0].generated;
    int32_t same = 0;
    while (same < n && gen_lib[same] == gen_raw[same]) same++;
    printf("library ended by \"%s\" after %d tokens, plain loop after %d; "
           "the first %d tokens are identical", end_reason, rl[0].generated, rr[0].generated, same);
    if (same < n) printf(" (then library %d, plain %d)", gen_lib[same], gen_raw[same]);
    printf("\n");
    printf("load average at the end: %.2f\n", bench_loadavg());

    free(gen_lib); free(gen_raw); free(rl); free(rr);
    bench_raw_close(&raw);
    fp_engine_free(engine);
    fp_model_free(model);
    return 0;
}
