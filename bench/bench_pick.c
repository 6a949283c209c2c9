/*
 * bench_pick.c — what one preview step's pick costs, by vocabulary size.
 *
 * Why: bench_fork times whole forks, decodes included, and on a shared
 * 2-vCPU machine its times swing with the load. The part of a preview step
 * that grows with the vocabulary is its pick: the full path (fpi_dist_compute
 * + fpi_pick_next: the sampler chain, an exp and a heap pass over every
 * token) or the one-pass fpi_pick_greedy. This program measures both in
 * thread CPU time, which the load does not inflate much, on random logit
 * rows over a model's real vocabulary (loaded vocab-only), with bench_fork's
 * settings (no penalty, temperature 1) and the defaults (repetition penalty
 * 1.1 over 64 tokens). It checks that both pick the same token on every
 * row where the fast pick decides. Times: the median per pick over --rows rows.
 *
 * Usage: bench_pick --model PATH [--model PATH ...] [--rows N]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "core/internal.h"
#include "forkpoint.h"

static double cpu_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* One model: both settings, --rows rows each. */
static int run(const char *path, int rows) {
    fp_error err = {0};
    fp_model_params mp = fp_model_default_params();
    mp.vocab_only = true;
    fp_model *m = fp_model_load(path, &mp, &err);
    if (!m) { fprintf(stderr, "bench_pick: %s\n", err.message); return 1; }
    const int32_t V = m->n_vocab;
    float *row = malloc(sizeof *row * (size_t)V);
    double *tf = malloc(sizeof *tf * (size_t)rows), *tg = malloc(sizeof *tg * (size_t)rows);
    fp_dist d;
    if (!row || !tf || !tg || fpi_dist_init(&d, V) != FP_OK) { fprintf(stderr, "bench_pick: out of memory\n"); return 1; }
    uint64_t rng = 12345;
    for (int pen = 0; pen < 2; pen++) {
        fp_settings st = fp_default_settings();
        if (!pen) st.repeat_penalty = 1.0f;
        struct llama_sampler *chain = fpi_chain_new(&st, m, NULL, NULL);
        for (int i = 0; i < 64; i++) llama_sampler_accept(chain, (int32_t)(fpi_rng_next(&rng) * V));
        int decided = 0, same = 0;
        for (int r = 0; r < rows; r++) {
            /* a peaked row: most tokens far below a few */
            for (int32_t i = 0; i < V; i++) row[i] = (float)(fpi_rng_next(&rng) * 4.0 - 2.0);
            for (int j = 0; j < 5; j++) row[(int32_t)(fpi_rng_next(&rng) * V)] += 6.0f + (float)j;
            double t0 = cpu_us();
            fpi_dist_compute(&d, row, V, chain, 2);
            int32_t full = fpi_pick_next(m, &d, false, NULL, "", 0);
            double t1 = cpu_us();
            int32_t fast = fpi_pick_greedy(m, &d, row, V, chain, st.temperature, "", 0);
            double t2 = cpu_us();
            tf[r] = t1 - t0;
            tg[r] = t2 - t1;
            if (fast != FPI_PICK_UNDECIDED) { decided++; same += fast == full; }
        }
        double mf = median(tf, rows), mg = median(tg, rows);
        printf("vocab %6d  %-26s full path %8.1f us   one pass %7.1f us   %5.1fx   decided %d of %d, same token %d of %d\n",
               V, pen ? "penalty 1.1 over 64" : "no penalty (bench_fork)", mf, mg, mf / mg, decided, rows, same, decided);
        llama_sampler_free(chain);
    }
    fpi_dist_free(&d);
    free(row); free(tf); free(tg);
    fp_model_free(m);
    return 0;
}

int main(int argc, char **argv) {
    int rows = 200, n_models = 0;
    const char *models[16];
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc && n_models < 16) models[n_models++] = argv[++i];
        else if (!strcmp(argv[i], "--rows") && i + 1 < argc) rows = atoi(argv[++i]);
        else { fprintf(stderr, "usage: bench_pick --model PATH [--model PATH ...] [--rows N]\n"); return 2; }
    }
    if (n_models == 0 || rows < 1) { fprintf(stderr, "usage: bench_pick --model PATH [--model PATH ...] [--rows N]\n"); return 2; }
    printf("bench_pick: thread CPU time per preview-step pick, median of %d random rows; load average %.2f\n", rows, bench_loadavg());
    for (int i = 0; i < n_models; i++) if (run(models[i], rows)) return 1;
    printf("load average at the end: %.2f\n", bench_loadavg());
    return 0;
}
