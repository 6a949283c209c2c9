/*
 * bench_util.c — helpers shared by the Forkpoint benchmarks (see bench_util.h).
 *
 * Why a separate plain-llama.cpp side: the benchmarks must show what the
 * library gains or costs against the simplest correct code a front end
 * would write by hand, so that code is written here once, straightforwardly,
 * with no tricks that the library could not use too.
 */
#include "bench_util.h"
#include "forkpoint_fetch.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double bench_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

fp_settings bench_forced_fork_settings(int32_t k, int32_t lookahead) {
    fp_settings set = fp_default_settings();
    set.granularity = FP_GRAN_TOKEN;
    set.k = k;
    set.lookahead = lookahead;
    set.temperature = 1.0f;
    set.top_k = 0;
    set.top_p = 1.0f;
    set.min_p = 0.0f;
    set.repeat_penalty = 1.0f;
    set.fork_entropy_bits = 0.0f;
    set.fork_top1_below = 1.01f;
    set.fork_margin_below = 0.0f;
    set.min_gap_tokens = 0;
    set.max_forks_per_sentence = 0;
    set.sample_auto = false;
    fp_error err = {0};
    if (fp_settings_validate(&set, &err) != FP_OK) {
        fprintf(stderr, "bench: settings rejected: %s\n", err.message);
        exit(1);
    }
    return set;
}

bench_run bench_time_refork(fp_session *s, fp_engine *e, const fp_settings *set, fp_error *err) {
    bench_run r = {0};
    const uint64_t c0 = fpi_engine_decode_calls(e), t0 = fpi_engine_decoded_tokens(e);
    const double start = bench_now_ms();
    const fp_status st = fp_session_set_settings(s, set, err);
    r.ms = bench_now_ms() - start;
    r.calls = fpi_engine_decode_calls(e) - c0;
    r.tokens = fpi_engine_decoded_tokens(e) - t0;
    r.ok = st == FP_OK && fp_session_state(s) == FP_STATE_AT_FORK;
    return r;
}

double bench_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

void bench_today(char out[16]) {
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(out, 16, "%Y-%m-%d", &tm);
}

double bench_loadavg(void) {
    double l = -1.0;
    FILE *f = fopen("/proc/loadavg", "r");
    if (!f) return -1.0;
    if (fscanf(f, "%lf", &l) != 1) l = -1.0;
    fclose(f);
    return l;
}

const char *bench_basename(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

void bench_resolve_model(const char *explicit_path, char *out, size_t cap) {
    fp_error err = {0};
    if (fp_resolve_default_model(explicit_path, out, cap, &err) != FP_OK) {
        fprintf(stderr, "bench: no model: %s\n", err.message);
        exit(1);
    }
}

/* Why: llama.cpp prints pages of load information; the benchmark output
 * must stay a short, readable record. Errors still get through. */
static void quiet_log(enum ggml_log_level level, const char *text, void *user) {
    static enum ggml_log_level last = GGML_LOG_LEVEL_INFO;
    (void)user;
    if (level != GGML_LOG_LEVEL_CONT) last = level;
    if (last >= GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

void bench_quiet_llama(void) {
    llama_log_set(quiet_log, NULL);
}

/* Plain story text in the register of TinyStories, written for this project
 * (no data set is copied). About 3,000 bytes: well over 256 tokens for the
 * 512-token stories vocabulary. */
static const char STORY[] =
    "Once upon a time, there was a little girl named Lily. She lived in a small house "
    "near the woods with her mom, her dad and a fat old cat called Max. Every morning "
    "Lily went out to the garden to look at the flowers. She liked the red ones best, "
    "because they were bright and smelled sweet. One day, Lily saw a tiny bird sitting "
    "under a big tree. The bird could not fly. Its wing was hurt, and it was very scared. "
    "Lily wanted to help the bird. She ran back to the house and said, \"Mom, Mom, there "
    "is a bird in the garden and it is sad!\" Her mom came out with a soft box and a "
    "little bowl of water. They put the bird in the box and gave it some seeds. The bird "
    "ate the seeds and drank the water. Lily sat next to the box all day. She sang songs "
    "to the bird and told it stories about the sun and the moon. Max the cat wanted to "
    "see the bird too, but Lily said, \"No, Max. You have to be nice and stay away.\" Max "
    "was not happy, so he went to sleep on the warm mat by the door. The next day, the "
    "bird looked better. It jumped out of the box and hopped on the grass. Lily clapped "
    "her hands and laughed. Her dad came home from work and saw the bird. He smiled and "
    "said, \"You are a good friend, Lily. You helped the bird get strong again.\" Lily felt "
    "proud and happy. A few days later, the bird moved its wings up and down. It went up "
    "into the air, then came down again. Lily said, \"Try again, little bird. You can do "
    "it!\" The bird tried again and again. At last it flew up to the top of the big tree. "
    "Lily waved and said goodbye. The bird sang a happy song, as if it wanted to say thank "
    "you. From that day on, the bird came back to the garden every morning. It sat on the "
    "fence and sang while Lily looked at the flowers. Lily and the bird were best friends. "
    "In the summer, Lily and her mom made a little house for the bird out of wood. They "
    "painted it blue and yellow and put it in the big tree. The bird liked its new home very "
    "much. Soon there were three small eggs in the house. Lily was so excited that she could "
    "not sleep. She asked her mom every day, \"When will the eggs open?\" Her mom said, \"You "
    "have to be patient. Good things take time.\" Lily waited and waited. Then one morning "
    "she heard a tiny sound from the tree. The eggs had opened, and three baby birds were "
    "calling for food. Lily ran inside to tell her dad, and the whole family came out to see "
    "the new birds. Even Max the cat sat still and watched. The mother bird flew back and "
    "forth all day with bugs and seeds for her babies. Lily learned that being kind and "
    "waiting can bring a lot of joy. When the baby birds grew up, they all sang together in "
    "the garden, and Lily sang with them.";

const char *bench_story(void) {
    return STORY;
}

char *bench_prompt(const fp_model *model, int32_t n_tokens, int32_t *got) {
    const size_t len = strlen(STORY);
    size_t best = 0;
    int32_t best_n = 0;
    int32_t *scratch = malloc(sizeof(int32_t) * (len + 8));
    if (!scratch) { fprintf(stderr, "bench: out of memory\n"); exit(1); }
    /* Try every word boundary in order; token counts only grow, so stop at
     * the first prefix that is too long. */
    for (size_t i = 1; i <= len; i++) {
        if (i < len && STORY[i] != ' ') continue;
        const int32_t n = fp_tokenize(model, STORY, i, scratch, (int32_t)len + 8, true);
        if (n < 0) { fprintf(stderr, "bench: tokenizing the story failed\n"); exit(1); }
        if (n > n_tokens) break;
        best = i;
        best_n = n;
    }
    free(scratch);
    if (best == 0 || (best == len && best_n < n_tokens)) {
        fprintf(stderr, "bench: the built-in story has only %d tokens, fewer than the %d asked for\n",
                best_n, n_tokens);
        exit(1);
    }
    char *p = malloc(best + 1);
    if (!p) { fprintf(stderr, "bench: out of memory\n"); exit(1); }
    memcpy(p, STORY, best);
    p[best] = '\0';
    *got = best_n;
    return p;
}

/* ---- plain llama.cpp ------------------------------------------------------ */

/* Token classes for greedy picks, from the token's attributes and the bytes
 * it renders as (a token that renders as nothing is never shown). */
static uint8_t classify(const struct llama_vocab *v, llama_token t) {
    if (llama_vocab_is_eog(v, t)) return BENCH_TOK_EOG;
    if (llama_vocab_get_attr(v, t) & (LLAMA_TOKEN_ATTR_CONTROL | LLAMA_TOKEN_ATTR_UNKNOWN | LLAMA_TOKEN_ATTR_UNUSED))
        return BENCH_TOK_SKIP;
    char piece[256];
    const int32_t n = llama_token_to_piece(v, t, piece, (int32_t)sizeof piece, 0, false);
    return n <= 0 ? BENCH_TOK_SKIP : 0;
}

void bench_raw_open(bench_raw *r, const char *path, uint32_t n_ctx, uint32_t n_seq_max,
                    int32_t n_threads) {
    memset(r, 0, sizeof *r);
    struct llama_model_params mp = llama_model_default_params();
    r->model = llama_model_load_from_file(path, mp);
    if (!r->model) { fprintf(stderr, "bench: llama.cpp cannot load %s\n", path); exit(1); }
    r->vocab = llama_model_get_vocab(r->model);
    r->n_vocab = llama_vocab_n_tokens(r->vocab);

    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_batch = n_ctx < 2048 ? n_ctx : 2048;
    cp.n_seq_max = n_seq_max;
    cp.n_threads = n_threads;
    cp.n_threads_batch = n_threads;
    cp.kv_unified = true;
    cp.no_perf = true;
    r->ctx = llama_init_from_model(r->model, cp);
    if (!r->ctx) { fprintf(stderr, "bench: llama_init_from_model failed\n"); exit(1); }
    r->n_batch = (int32_t)llama_n_batch(r->ctx);
    r->batch = llama_batch_init(r->n_batch, 0, 1);
    r->tok_kind = calloc((size_t)r->n_vocab, 1);
    if (!r->tok_kind) { fprintf(stderr, "bench: out of memory\n"); exit(1); }
    for (llama_token t = 0; t < r->n_vocab; t++) r->tok_kind[t] = classify(r->vocab, t);
}

void bench_raw_close(bench_raw *r) {
    llama_batch_free(r->batch);
    free(r->tok_kind);
    llama_free(r->ctx);
    llama_model_free(r->model);
    memset(r, 0, sizeof *r);
}

int32_t bench_raw_tokenize(const bench_raw *r, const char *text, llama_token *out, int32_t cap) {
    const int32_t n = llama_tokenize(r->vocab, text, (int32_t)strlen(text), out, cap, true, false);
    if (n < 0) { fprintf(stderr, "bench: prompt needs %d tokens, room for %d\n", -n, cap); exit(1); }
    return n;
}

int32_t bench_raw_decode(bench_raw *r, const llama_token *tokens, int32_t n,
                         llama_pos pos0, llama_seq_id seq) {
    if (n < 1 || n > r->n_batch) return -1;
    struct llama_batch *b = &r->batch;
    b->n_tokens = n;
    for (int32_t i = 0; i < n; i++) {
        b->token[i] = tokens[i];
        b->pos[i] = pos0 + i;
        b->n_seq_id[i] = 1;
        b->seq_id[i][0] = seq;
        b->logits[i] = i == n - 1;
    }
    r->decode_calls++;
    r->decoded_tokens += (uint64_t)n;
    return llama_decode(r->ctx, *b);
}

int32_t bench_raw_top_k(const bench_raw *r, int32_t k, llama_token *out) {
    const float *logits = llama_get_logits_ith(r->ctx, -1);
    int32_t n = 0;
    /* insertion into a small sorted list: k is at most 64 */
    for (int32_t t = 0; t < r->n_vocab; t++) {
        if (r->tok_kind[t] & (BENCH_TOK_SKIP | BENCH_TOK_EOG)) continue;
        if (n == k && logits[t] <= logits[out[k - 1]]) continue;
        int32_t j = n < k ? n++ : k - 1;
        while (j > 0 && logits[out[j - 1]] < logits[t]) { out[j] = out[j - 1]; j--; }
        out[j] = t;
    }
    return n;
}

int32_t bench_raw_decode_rows(bench_raw *r, const llama_token *tokens, const llama_pos *pos,
                              const llama_seq_id *seq, int32_t n) {
    if (n < 1 || n > r->n_batch) return -1;
    struct llama_batch *b = &r->batch;
    b->n_tokens = n;
    for (int32_t i = 0; i < n; i++) {
        b->token[i] = tokens[i];
        b->pos[i] = pos[i];
        b->n_seq_id[i] = 1;
        b->seq_id[i][0] = seq[i];
        b->logits[i] = 1;
    }
    r->decode_calls++;
    r->decoded_tokens += (uint64_t)n;
    return llama_decode(r->ctx, *b);
}

llama_token bench_raw_pick_ith(const bench_raw *r, int32_t i) {
    const float *logits = llama_get_logits_ith(r->ctx, i);
    if (!logits) return -1;
    llama_token best = -1;
    for (int32_t t = 0; t < r->n_vocab; t++) {
        if (r->tok_kind[t] & BENCH_TOK_SKIP) continue;
        if (best < 0 || logits[t] > logits[best]) best = t;
    }
    return best;
}

llama_token bench_raw_pick(const bench_raw *r) {
    return bench_raw_pick_ith(r, -1);
}

int32_t bench_int_arg(const char *prog, const char *flag, const char *v, int32_t lo, int32_t hi,
                      void (*usage)(void)) {
    char *end = NULL;
    const long x = strtol(v, &end, 10);
    if (!*v || *end || x < lo || x > hi) {
        fprintf(stderr, "%s: %s wants an integer in [%d, %d]\n", prog, flag, lo, hi);
        usage();
        exit(2);
    }
    return (int32_t)x;
}

fp_model *bench_load_model(const char *prog, const char *explicit_path, char *path, size_t cap) {
    bench_resolve_model(explicit_path, path, cap);
    fp_error err = {0};
    fp_model_params mp = fp_model_default_params();
    fp_model *m = fp_model_load(path, &mp, &err);
    if (!m) { fprintf(stderr, "%s: %s\n", prog, err.message); exit(1); }
    bench_quiet_llama(); /* after the load: the library sets its own log callback on first use */
    return m;
}
