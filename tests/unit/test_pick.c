/*
 * test_pick.c — the one-pass greedy preview pick is the full path's pick.
 *
 * Why: a preview is a promise. Preview steps take their token with
 * fpi_pick_greedy (one pass over the logits) instead of the full
 * distribution (fpi_dist_compute + fpi_pick_next) whenever it can decide;
 * the continuation always uses the full path. So wherever the fast pick
 * decides, it must be exactly the full path's token, or a preview would
 * show a word the continuation does not write. This suite checks, on the
 * stories260K vocabulary and real sampler chains (fpi_chain_new: learned
 * bias, repetition penalty, top-k, top-p, min-p, temperature):
 *   - the windowed repetition penalty gives bit for bit the logits of
 *     llama.cpp's own penalty sampler, on the id-ordered array and on a
 *     shuffled part of it, after more tokens than its window, after a
 *     reset and in a clone;
 *   - on thousands of random logit rows (with exact ties at the top, ties
 *     one float step apart, -inf entries, huge and tiny magnitudes, a
 *     control token or a token that breaks the UTF-8 tail on top) the fast
 *     pick is undecided or equal to the full path's token, and it decides
 *     most rows (it is really used);
 *   - an exact tie at the top, a control token on top, and a grammar in the
 *     chain leave it undecided.
 * Every preview grown in the test build is also checked against the full
 * path inside the library (cloud.c, FP_CHECKS): the truth and integrity
 * suites run that check on every preview step.
 */
#include "forkpoint.h"
#include "core/internal.h"
#include "harness.h"

#include <math.h>
#include <stdint.h>

static uint64_t g_rng = 0x9E3779B97F4A7C15ULL;
static double urand(void) { return fpi_rng_next(&g_rng); }
static int32_t irand(int32_t n) { return (int32_t)(urand() * n) % n; }
static float nrand(void) { /* Box-Muller */
    double u = urand(), v = urand();
    if (u < 1e-12) u = 1e-12;
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

/* A random logit row of one of several shapes that stress the pick. */
static void random_row(const fp_model *m, float *z, int32_t V, int shape) {
    float scale = shape % 4 == 0 ? 0.01f : shape % 4 == 1 ? 3.0f : shape % 4 == 2 ? 30.0f : 1e4f;
    for (int32_t i = 0; i < V; i++) z[i] = nrand() * scale;
    int32_t top = 0;
    for (int32_t i = 1; i < V; i++) if (z[i] > z[top]) top = i;
    int32_t other = irand(V);
    switch (shape % 7) {
    case 0: if (other != top) z[other] = z[top]; break;                          /* exact tie */
    case 1: if (other != top) z[other] = nextafterf(z[top], -INFINITY); break;   /* one float step */
    case 2: for (int32_t i = 0; i < V / 3; i++) z[irand(V)] = -INFINITY; break; /* masked entries */
    case 3: {                                                                     /* a control token on top */
        for (int32_t t = 0; t < V; t++)
            if (m->tok_flags[t] & FP_TOK_CONTROL) { z[t] = z[top] + 1.0f; break; }
        break;
    }
    case 4: z[other] = z[top] + 1e-5f * fabsf(z[top]); break;                     /* a near tie above */
    default: break;
    }
}

static void test_penalty_matches_llama(const fp_model *m) {
    TEST("the windowed penalty is llama.cpp's, bit for bit");
    const int32_t V = m->n_vocab;
    llama_token_data *a = malloc(sizeof *a * (size_t)V), *b = malloc(sizeof *b * (size_t)V);
    const int32_t windows[] = { 1, 3, 64 };
    const float repeats[] = { 1.1f, 0.7f, 3.0f };
    int32_t mismatches = 0, compared = 0;
    for (int wi = 0; wi < 3; wi++) {
        struct llama_sampler *mine = fpi_penalties_new(V, windows[wi], repeats[wi]);
        struct llama_sampler *ref = llama_sampler_init_penalties(V, windows[wi], repeats[wi], 0.0f, 0.0f);
        CHECK(mine && ref);
        for (int round = 0; round < 40; round++) {
            int32_t acc = 1 + irand(2 * windows[wi] + 3);         /* more than the window, often */
            for (int32_t j = 0; j < acc; j++) {
                llama_token t = irand(4) == 0 ? irand(8) : irand(V); /* repeats in the window */
                llama_sampler_accept(mine, t);
                llama_sampler_accept(ref, t);
            }
            if (round == 20) { llama_sampler_reset(mine); llama_sampler_reset(ref); }
            struct llama_sampler *use = round % 5 == 4 ? llama_sampler_clone(mine) : mine;
            bool shuffled = round % 2 == 1;
            size_t n = shuffled ? (size_t)(1 + irand(V)) : (size_t)V;
            for (int32_t i = 0; i < V; i++) {
                a[i] = (llama_token_data){ i, nrand() * 4.0f, 0.0f };
                if (i % 17 == 0) a[i].logit = 0.0f;
            }
            if (shuffled)
                for (int32_t i = V - 1; i > 0; i--) { int32_t j = irand(i + 1); llama_token_data x = a[i]; a[i] = a[j]; a[j] = x; }
            memcpy(b, a, sizeof *a * (size_t)V);
            llama_token_data_array ca = { a, n, -1, false }, cb = { b, n, -1, false };
            llama_sampler_apply(use, &ca);
            llama_sampler_apply(ref, &cb);
            for (size_t i = 0; i < n; i++) {
                compared++;
                if (a[i].id != b[i].id || memcmp(&a[i].logit, &b[i].logit, sizeof(float)) != 0) mismatches++;
            }
            if (use != mine) llama_sampler_free(use);
        }
        llama_sampler_free(mine);
        llama_sampler_free(ref);
    }
    CHECKF(mismatches == 0, "%d of %d logits differ", mismatches, compared);
    CHECK(compared > 10000);
    free(a);
    free(b);
}

static void test_fast_equals_full(const fp_model *m) {
    TEST("the fast greedy pick is the full path's token, on random rows");
    const int32_t V = m->n_vocab;
    fp_dist fast, full;
    CHECK(fpi_dist_init(&fast, V) == FP_OK && fpi_dist_init(&full, V) == FP_OK);
    float *row = malloc(sizeof *row * (size_t)V), *bias = malloc(sizeof *bias * (size_t)V);
    const float temps[] = { 0.05f, 0.7f, 1.0f, 2.0f, 100.0f };
    const int32_t top_ks[] = { 0, 1, 5, 40 };
    const float top_ps[] = { 1.0f, 0.9f, 0.05f };
    const float min_ps[] = { 0.0f, 0.05f, 0.5f };
    const float repeats[] = { 1.0f, 1.1f, 0.8f, 3.0f };
    const int32_t last_ns[] = { 0, 1, 64 };
    int32_t trials = 0, decided = 0, wrong = 0, plain = 0, plain_decided = 0;
    for (int trial = 0; trial < 3000; trial++) {
        fp_settings st = fp_default_settings();
        st.temperature = temps[irand(5)];
        st.top_k = top_ks[irand(4)];
        st.top_p = top_ps[irand(3)];
        st.min_p = min_ps[irand(3)];
        st.repeat_penalty = repeats[irand(4)];
        st.repeat_last_n = last_ns[irand(3)];
        bool with_bias = irand(3) == 0;
        if (with_bias) for (int32_t i = 0; i < V; i++) bias[i] = irand(4) == 0 ? nrand() : 0.0f;
        struct llama_sampler *chain = fpi_chain_new(&st, m, with_bias ? bias : NULL, NULL);
        if (!chain) { CHECK(chain != NULL); break; }
        int32_t hist = irand(100);
        for (int32_t j = 0; j < hist; j++) llama_sampler_accept(chain, irand(V));
        random_row(m, row, V, trial);
        /* sometimes the penalized window holds the top token */
        if (st.repeat_last_n > 0 && irand(3) == 0) {
            int32_t top = fpi_argmax(row, V);
            llama_sampler_accept(chain, top);
        }
        const char *tail = irand(6) == 0 ? "\xC3" : "";
        int32_t tn = (int32_t)strlen(tail);
        int32_t t = fpi_pick_greedy(m, &fast, row, V, chain, st.temperature, tail, tn);
        fpi_dist_compute(&full, row, V, chain, 2);
        int32_t want = fpi_pick_next(m, &full, false, NULL, tail, tn);
        trials++;
        /* rows with no tie, control token or tail: the fast pick decides most (not
         * those whose best is a lone byte of a UTF-8 character: half this vocabulary) */
        bool is_plain = (trial % 7 == 2 || trial % 7 >= 5) && tn == 0;
        plain += is_plain;
        plain_decided += is_plain && t != FPI_PICK_UNDECIDED;
        if (t != FPI_PICK_UNDECIDED) {
            decided++;
            if (t != want) {
                wrong++;
                fprintf(stderr, "trial %d: fast %d, full %d (temp %g top_k %d top_p %g min_p %g pen %g/%d)\n",
                        trial, t, want, st.temperature, st.top_k, st.top_p, st.min_p, st.repeat_penalty, st.repeat_last_n);
            }
        }
        llama_sampler_free(chain);
    }
    CHECKF(wrong == 0, "%d of %d decided picks differ from the full path", wrong, decided);
    CHECKF(plain_decided * 4 >= plain * 3, "decided only %d of %d plain rows", plain_decided, plain);
    CHECKF(decided < trials, "decided every row, even the ties");
    fprintf(stderr, "   %d of %d rows decided by the fast pick (%d of %d plain ones)\n", decided, trials, plain_decided, plain);
    free(row);
    free(bias);
    fpi_dist_free(&fast);
    fpi_dist_free(&full);
}

/* A token that may plainly be taken: not control, not end of text, a whole
 * printable ASCII piece. The first one from `from` stepping by `step`. */
static int32_t plain_token(const fp_model *m, int32_t from, int32_t step) {
    for (int32_t t = from; t >= 0 && t < m->n_vocab; t += step) {
        if (m->tok_flags[t] & (FP_TOK_CONTROL | FP_TOK_EOG)) continue;
        int32_t n;
        const char *p = fpi_piece(m, t, &n);
        bool ok = n > 0;
        for (int32_t i = 0; i < n && ok; i++) ok = p[i] > ' ' && p[i] < 127;
        if (ok) return t;
    }
    return -1;
}

static void test_undecided_cases(const fp_model *m) {
    TEST("ties, control tokens and grammars go to the full path");
    const int32_t V = m->n_vocab;
    fp_dist d;
    CHECK(fpi_dist_init(&d, V) == FP_OK);
    float *row = malloc(sizeof *row * (size_t)V);
    for (int32_t i = 0; i < V; i++) row[i] = (float)(i % 50) * 0.01f;
    fp_settings st = fp_default_settings();
    struct llama_sampler *chain = fpi_chain_new(&st, m, NULL, NULL);
    /* the best token stands alone: decided, and it is the full path's */
    int32_t word = plain_token(m, V - 1, -1), low = plain_token(m, 0, 1);
    CHECK(word > low && low >= 0);
    row[word] = 5.0f;
    int32_t got = fpi_pick_greedy(m, &d, row, V, chain, st.temperature, "", 0);
    CHECK(got == word);
    /* an exact tie with a lower id: the full path takes the lower id */
    row[low] = 5.0f;
    CHECK(fpi_pick_greedy(m, &d, row, V, chain, st.temperature, "", 0) == FPI_PICK_UNDECIDED);
    fpi_dist_compute(&d, row, V, chain, 2);
    CHECK(fpi_pick_next(m, &d, false, NULL, "", 0) == low);
    row[low] = 0.0f;
    /* once the penalty's window holds it, the best is penalized: another one wins */
    llama_sampler_accept(chain, word);
    row[low] = 4.6f; /* 5.0 / 1.1 = 4.545 */
    CHECK(fpi_pick_greedy(m, &d, row, V, chain, st.temperature, "", 0) == low);
    llama_sampler_free(chain);
    row[low] = 0.0f;
    /* a control token on top */
    int32_t ctl = -1;
    for (int32_t t = 0; t < V && ctl < 0; t++) if (m->tok_flags[t] & FP_TOK_CONTROL) ctl = t;
    CHECK(ctl >= 0);
    chain = fpi_chain_new(&st, m, NULL, NULL);
    row[ctl] = 9.0f;
    CHECK(fpi_pick_greedy(m, &d, row, V, chain, st.temperature, "", 0) == FPI_PICK_UNDECIDED);
    llama_sampler_free(chain);
    row[ctl] = 0.0f;
    /* a grammar: it masks tokens the pass cannot see */
    chain = fpi_chain_new(&st, m, NULL, "root ::= [a-z]+");
    CHECK(chain != NULL);
    if (chain) CHECK(fpi_pick_greedy(m, &d, row, V, chain, st.temperature, "", 0) == FPI_PICK_UNDECIDED);
    llama_sampler_free(chain);
    free(row);
    fpi_dist_free(&d);
}

int main(void) {
    fp_error err = {0};
    fp_model *m = fp_model_load(h_model_path("stories260K.gguf"), NULL, &err);
    if (!m) { fprintf(stderr, "%s\n", err.message); printf("0 passed, 1 failed\n"); return 1; }
    test_penalty_matches_llama(m);
    test_fast_equals_full(m);
    test_undecided_cases(m);
    fp_model_free(m);
    return h_finish();
}
