/*
 * test_lora.c — personal LoRA adapters on the real model (stories260K):
 * training on a simulated person's choices raises log p(chosen) -
 * log p(rejected) on held-out forks; the adapter file loads, applies, scales
 * and comes off again with the sessions re-decoded; bad input and a
 * diverging run are refused without touching a good adapter; the decision
 * log gives back the choices it was given.
 * (bench/bench_learning is the full-size version.)
 */
#include "forkpoint.h"
#include "forkpoint_store.h"
#include "harness.h"
#include "vivid_person.h"

#include <dirent.h>
#include <strings.h>
#include <ggml.h>
#include <gguf.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

static fp_model *g_model;
static fp_engine *g_engine;
static char g_dir[64];


/* A fork as data: the context, the chosen word and the strongest rival. */
typedef struct sample {
    int32_t ctx[512], n_ctx, ch[FP_MAX_PATH], n_ch, rj[FP_MAX_PATH], n_rj;
} sample;

/* Collects n forks decided by the simulated person. */
static int collect(sample *out, int n) {
    fp_error err = {0};
    int k = 0;
    for (uint32_t seed = 1; k < n && seed < 200; seed++) {
        fp_settings st = fp_default_settings();
        st.sample_auto = true;
        st.seed = seed;
        st.max_tokens = 100;
        st.lookahead = 2;
        fp_session *s = fp_session_new(g_engine, "Once upon a time, there was a little", &st, &err);
        while (s && k < n && fp_session_state(s) == FP_STATE_AT_FORK) {
            const fp_fork *f = fp_session_fork(s);
            int32_t y = vivid_pick(f), r = -1;
            for (int32_t i = 0; i < f->n_candidates; i++)
                if (i != y && !f->candidates[i].is_eog && (r < 0 || f->candidates[i].prob > f->candidates[r].prob)) r = i;
            if (r >= 0 && !f->candidates[y].is_eog && fp_session_n_tokens(s) <= 512) {
                sample *x = &out[k++];
                x->n_ctx = fp_session_n_tokens(s);
                memcpy(x->ctx, fp_session_tokens(s), sizeof(int32_t) * (size_t)x->n_ctx);
                x->n_ch = f->candidates[y].n_tokens;
                memcpy(x->ch, f->candidates[y].tokens, sizeof(int32_t) * (size_t)x->n_ch);
                x->n_rj = f->candidates[r].n_tokens;
                memcpy(x->rj, f->candidates[r].tokens, sizeof(int32_t) * (size_t)x->n_rj);
            }
            if (fp_session_choose(s, y, false, FP_BY_HUMAN, &err) != FP_OK) break;
        }
        fp_session_free(s);
    }
    return k;
}

static double margin(const sample *x, int from, int to) {
    double sum = 0;
    fp_error err = {0};
    for (int i = from; i < to; i++) {
        double a = 0, b = 0;
        CHECK(fp_engine_logprob(g_engine, x[i].ctx, x[i].n_ctx, x[i].ch, x[i].n_ch, &a, &err) == FP_OK);
        CHECK(fp_engine_logprob(g_engine, x[i].ctx, x[i].n_ctx, x[i].rj, x[i].n_rj, &b, &err) == FP_OK);
        sum += a - b;
    }
    return sum / (to - from);
}

static char *path_in(const char *name) {
    static char buf[8][256];
    static int next;
    char *b = buf[next++ % 8];
    snprintf(b, 256, "%s/%s", g_dir, name);
    return b;
}

/* Bytes of a file (malloc'd), or NULL. */
static char *slurp(const char *path, long *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *len = ftell(f);
    rewind(f);
    char *b = malloc((size_t)*len + 1);
    if (b && fread(b, 1, (size_t)*len, f) != (size_t)*len) { free(b); b = NULL; }
    fclose(f);
    return b;
}

/* Files in the test directory (no temporary leftovers may stay). */
static int count_files(void) {
    DIR *d = opendir(g_dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) n += e->d_name[0] != '.';
    if (d) closedir(d);
    return n;
}

/* A copy of an adapter file with one weight of every lora_b set to NaN. */
static bool poison(const char *src, const char *dst) {
    struct ggml_context *data = NULL;
    struct gguf_init_params gp = { .no_alloc = false, .ctx = &data };
    struct gguf_context *g = gguf_init_from_file(src, gp);
    if (!g) return false;
    struct gguf_context *out = gguf_init_empty();
    gguf_set_kv(out, g);
    for (struct ggml_tensor *t = ggml_get_first_tensor(data); t; t = ggml_get_next_tensor(data, t)) {
        if (!strstr(t->name, ".lora_")) continue;   /* the context also holds the file's data blob */
        if (strstr(t->name, ".lora_b")) ((float *)t->data)[0] = NAN;
        gguf_add_tensor(out, t);
    }
    bool ok = gguf_write_to_file(out, dst, false);
    gguf_free(out);
    gguf_free(g);
    ggml_free(data);
    return ok;
}

static sample g_samples[160];
static int g_n;

static void test_learns(void) {
    TEST("an adapter trained on a person's choices raises their held-out margin");
    g_n = collect(g_samples, 160);
    CHECKF(g_n == 160, "only %d forks", g_n);
    int train = 120;
    fp_lora_example ex[120];
    for (int i = 0; i < train; i++)
        ex[i] = (fp_lora_example){ g_samples[i].ctx, g_samples[i].n_ctx, g_samples[i].ch, g_samples[i].n_ch };
    fp_lora_params p = fp_lora_default_params();
    fp_lora_report rep;
    fp_error err = {0};
    fp_status st = fp_lora_train(g_model, ex, train, &p, path_in("a.gguf"), &rep, &err);
    CHECKF(st == FP_OK, "%s", err.message);
    CHECK(rep.n_tensors == 10);           /* 5 weights (last block's 4, output) x A and B */
    CHECK(rep.epochs == p.epochs && rep.n_windows >= 1);
    CHECKF(rep.loss_last < rep.loss_first, "loss %g -> %g", rep.loss_first, rep.loss_last);
    fprintf(stderr, "   %d windows, loss %.3f -> %.3f\n", rep.n_windows, rep.loss_first, rep.loss_last);
    double trained_first = rep.loss_first;
    CHECK(count_files() == 1);            /* the adapter, no temporary files */

    /* the scale is picked on the training forks, judged on the held-out ones */
    fp_steer_pair pairs[160];
    for (int i = 0; i < g_n; i++)
        pairs[i] = (fp_steer_pair){ g_samples[i].ctx, g_samples[i].n_ctx, g_samples[i].ch, g_samples[i].n_ch,
                                    g_samples[i].rj, g_samples[i].n_rj };
    float scale = 0;
    fp_pair_score fit, held0, held1;
    CHECK(fp_lora_pick_scale(g_engine, path_in("a.gguf"), pairs, train, &scale, &fit, &err) == FP_OK);
    CHECK(scale == 0.5f || scale == 1.0f || scale == 2.0f || scale == 4.0f);
    CHECK(fp_engine_score_pairs(g_engine, pairs + train, g_n - train, &held0, &err) == FP_OK);   /* no adapter now */
    CHECK(held0.n_pairs == g_n - train);
    double base = margin(g_samples, train, g_n);
    CHECKF(fabs(held0.margin - base) < 1e-6, "score_pairs agrees with logprob (%g vs %g)", held0.margin, base);
    CHECK(fp_engine_set_lora(g_engine, path_in("a.gguf"), scale, &err) == FP_OK);
    CHECK(fp_engine_score_pairs(g_engine, pairs + train, g_n - train, &held1, &err) == FP_OK);
    double with = held1.margin;
    fprintf(stderr, "   scale %.1f: held-out log p(chosen) - log p(rejected) %.3f -> %.3f, text log p/token %.3f -> %.3f\n",
            scale, held0.margin, held1.margin, held0.text_logp, held1.text_logp);
    CHECKF(with > base + 0.1, "held-out margin %g -> %g", base, with);
    /* it still writes: a recipe that taught fragments dropped this by more than
     * 1 nat; this one drops 0.39-0.42 on the forks collected since the cloud
     * has no fragments and words may end in their mark (0.3 before) */
    CHECKF(held1.text_logp > held0.text_logp - 0.5, "the adapter still writes the person's text (%g -> %g)",
           held0.text_logp, held1.text_logp);
    /* scale 0 and NULL take it off exactly */
    CHECK(fp_engine_set_lora(g_engine, path_in("a.gguf"), 0.0f, &err) == FP_OK);
    CHECKF(fabs(margin(g_samples, train, g_n) - base) < 1e-4, "scale 0 is the base model");
    CHECK(fp_engine_set_lora(g_engine, path_in("a.gguf"), scale / 2, &err) == FP_OK);
    double half = margin(g_samples, train, g_n);
    CHECKF(half > base && half < with, "half the scale lies between (%g, %g, %g)", base, half, with);
    CHECK(fp_engine_set_lora(g_engine, NULL, 0.0f, &err) == FP_OK);
    CHECKF(fabs(margin(g_samples, train, g_n) - base) < 1e-4, "removed");

    /* the recommended scale travels in the file */
    CHECK(fp_lora_scale_hint(path_in("a.gguf")) == 1.0f);
    CHECK(fp_lora_set_scale_hint(path_in("a.gguf"), 2.5f, &err) == FP_OK);
    CHECK(fp_lora_scale_hint(path_in("a.gguf")) == 2.5f);
    CHECK(fp_engine_set_lora(g_engine, path_in("a.gguf"), scale, &err) == FP_OK);
    CHECKF(fabs(margin(g_samples, train, g_n) - with) < 1e-4, "the rewritten file has the same weights");
    CHECK(fp_engine_set_lora(g_engine, NULL, 0.0f, &err) == FP_OK);
    CHECK(fp_lora_set_scale_hint(path_in("a.gguf"), NAN, &err) == FP_ERR_ARG);
    CHECK(fp_lora_set_scale_hint(path_in("missing.gguf"), 1.0f, &err) == FP_ERR_IO);
    CHECK(fp_lora_scale_hint(path_in("missing.gguf")) == 1.0f);
    CHECK(count_files() == 1);

    /* resuming training from the adapter goes on from where it was */
    p.resume = path_in("a.gguf");
    p.epochs = 2;
    st = fp_lora_train(g_model, ex, train, &p, path_in("b.gguf"), &rep, &err);
    CHECKF(st == FP_OK, "%s", err.message);
    fprintf(stderr, "   resumed: loss %.3f -> %.3f\n", rep.loss_first, rep.loss_last);
    CHECKF(rep.loss_first < trained_first, "resumed loss %g, fresh %g", rep.loss_first, trained_first);
}

static void test_sessions(void) {
    TEST("applying an adapter re-decodes open sessions and changes their clouds");
    fp_error err = {0};
    fp_settings st = fp_default_settings();
    st.max_tokens = 60;
    fp_session *s = fp_session_new(g_engine, "Once upon a time, there was a little", &st, &err);
    CHECK(s && fp_session_state(s) == FP_STATE_AT_FORK);
    if (!s || fp_session_state(s) != FP_STATE_AT_FORK) { fp_session_free(s); return; }
    char text[4096];
    snprintf(text, sizeof text, "%s", fp_session_text(s));
    float p0 = fp_session_fork(s)->candidates[0].prob;
    CHECK(fp_engine_set_lora(g_engine, path_in("a.gguf"), 4.0f, &err) == FP_OK);
    CHECK(strcmp(text, fp_session_text(s)) == 0);          /* the text stays */
    CHECK(fp_session_state(s) == FP_STATE_AT_FORK);
    const fp_fork *f = fp_session_fork(s);
    float sum = 0;
    for (int32_t i = 0; i < f->n_candidates; i++) sum += f->candidates[i].prob;
    CHECK(sum > 0.0f && sum <= 1.0001f);
    bool changed = fabsf(f->candidates[0].prob - p0) > 1e-4f;
    CHECKF(changed, "the open fork was recomputed under the adapter");
    CHECK(fp_session_choose(s, 0, true, FP_BY_HUMAN, &err) == FP_OK);
    CHECK(fp_engine_set_lora(g_engine, NULL, 0.0f, &err) == FP_OK);
    fp_session_free(s);
}

static void test_bad_input(void) {
    TEST("bad input: parameters, examples, models, adapter files");
    fp_error err = {0};
    fp_lora_example ex[1] = { { g_samples[0].ctx, g_samples[0].n_ctx, g_samples[0].ch, g_samples[0].n_ch } };
    fp_lora_params p = fp_lora_default_params();
    p.epochs = 1;
    const char *out = path_in("bad.gguf");
    p.learning_rate = 1e-2f;
    CHECK(fp_lora_train(g_model, ex, 1, &p, out, NULL, &err) == FP_ERR_ARG && strstr(err.message, "0.001"));
    p = fp_lora_default_params(); p.epochs = 1; p.rank = 0;
    CHECK(fp_lora_train(g_model, ex, 1, &p, out, NULL, &err) == FP_ERR_ARG);
    p.rank = 4; p.learning_rate = NAN;
    CHECK(fp_lora_train(g_model, ex, 1, &p, out, NULL, &err) == FP_ERR_ARG);
    p = fp_lora_default_params(); p.epochs = 1;
    CHECK(fp_lora_train(g_model, ex, 0, &p, out, NULL, &err) == FP_ERR_EMPTY);
    CHECK(fp_lora_train(g_model, NULL, 1, &p, out, NULL, &err) == FP_ERR_EMPTY);
    int32_t wild = 1 << 20;
    fp_lora_example bad = { g_samples[0].ctx, g_samples[0].n_ctx, &wild, 1 };
    CHECK(fp_lora_train(g_model, &bad, 1, &p, out, NULL, &err) == FP_ERR_ARG && strstr(err.message, "vocabulary"));
    fp_lora_example none = { g_samples[0].ctx, g_samples[0].n_ctx, g_samples[0].ch, 0 };
    CHECK(fp_lora_train(g_model, &none, 1, &p, out, NULL, &err) == FP_ERR_ARG);
    CHECK(fp_lora_train(g_model, ex, 1, &p, "/nonexistent-dir/x.gguf", NULL, &err) == FP_ERR_IO);
    p.resume = path_in("missing.gguf");
    CHECK(fp_lora_train(g_model, ex, 1, &p, out, NULL, &err) == FP_ERR_IO);
    p.resume = h_model_path("stories260K.gguf");   /* a model, not an adapter */
    CHECK(fp_lora_train(g_model, ex, 1, &p, out, NULL, &err) == FP_ERR_MODEL);
    CHECK(access(out, F_OK) != 0);

    /* models it cannot train: F16 weights, a tokenizer alone */
    fp_model *f16 = fp_model_load(h_model_path("llama-2-tiny-random.gguf"), NULL, &err);
    CHECK(f16 != NULL);
    if (f16) {
        int32_t t[2] = { 1, 100 };
        fp_lora_example e2 = { t, 1, t + 1, 1 };
        p = fp_lora_default_params(); p.epochs = 1;
        CHECK(fp_lora_train(f16, &e2, 1, &p, out, NULL, &err) == FP_ERR_MODEL && strstr(err.message, "F32"));
        /* an adapter made for stories260K does not fit it */
        fp_engine_params ep = fp_engine_default_params();
        ep.n_threads = 1;
        fp_engine *e16 = fp_engine_new(f16, &ep, &err);
        CHECK(e16 && fp_engine_set_lora(e16, path_in("a.gguf"), 1.0f, &err) == FP_ERR_MODEL);
        fp_engine_free(e16);
        fp_model_free(f16);
    }
    fp_model_params vp = fp_model_default_params();
    vp.vocab_only = true;
    fp_model *vocab = fp_model_load(h_model_path("stories260K.gguf"), &vp, &err);
    CHECK(vocab && fp_lora_train(vocab, ex, 1, &p, out, NULL, &err) == FP_ERR_MODEL);
    fp_model_free(vocab);

    /* adapter files the engine must refuse */
    CHECK(fp_engine_set_lora(g_engine, path_in("missing.gguf"), 1.0f, &err) == FP_ERR_IO);
    FILE *f = fopen(path_in("junk.gguf"), "wb");
    if (f) { fputs("GGUF this is not a real adapter", f); fclose(f); }
    CHECK(fp_engine_set_lora(g_engine, path_in("junk.gguf"), 1.0f, &err) == FP_ERR_MODEL);
    CHECK(fp_engine_set_lora(g_engine, h_model_path("stories260K.gguf"), 1.0f, &err) == FP_ERR_MODEL);
    CHECK(fp_engine_set_lora(g_engine, path_in("a.gguf"), NAN, &err) == FP_ERR_ARG);
    CHECK(fp_engine_set_lora(g_engine, path_in("a.gguf"), 100.0f, &err) == FP_ERR_ARG);
    unlink(path_in("junk.gguf"));
}

static void test_divergence(void) {
    TEST("a diverging run is discarded and never replaces a good adapter");
    fp_error err = {0};
    CHECK(poison(path_in("a.gguf"), path_in("nan.gguf")));
    long len0 = 0, len1 = 0;
    char *before = slurp(path_in("b.gguf"), &len0);
    CHECK(before != NULL);
    fp_lora_example ex[20];
    for (int i = 0; i < 20; i++)
        ex[i] = (fp_lora_example){ g_samples[i].ctx, g_samples[i].n_ctx, g_samples[i].ch, g_samples[i].n_ch };
    fp_lora_params p = fp_lora_default_params();
    p.epochs = 2;
    p.resume = path_in("nan.gguf");
    int files = count_files();
    fp_lora_report rep;
    fp_status st = fp_lora_train(g_model, ex, 20, &p, path_in("b.gguf"), &rep, &err);
    CHECKF(st == FP_ERR_DIVERGED, "status %s: %s", fp_status_name(st), err.message);
    CHECK(strstr(err.message, "diverged") != NULL);
    CHECK(rep.epochs == 1);                 /* stopped at the first bad epoch */
    char *after = slurp(path_in("b.gguf"), &len1);
    CHECK(after && len0 == len1 && memcmp(before, after, (size_t)len0) == 0);
    CHECK(count_files() == files);          /* no temporary file left behind */
    CHECK(fp_engine_set_lora(g_engine, path_in("b.gguf"), 1.0f, &err) == FP_OK);   /* still good */
    CHECK(fp_engine_set_lora(g_engine, NULL, 0, &err) == FP_OK);
    free(before);
    free(after);
}

static void test_store_choices(void) {
    TEST("the decision log gives back the choices, their rivals and accepted previews");
    fp_error err = {0};
    const char *db = path_in("log.db");
    fp_store *st = fp_store_open(db, true, &err);
    CHECK(st != NULL);
    if (!st) return;
    fp_logged_choice *c = NULL;
    int32_t n = 0, other = 0;
    CHECK(fp_store_choices(st, NULL, "abc", &c, &n, &other, &err) == FP_ERR_EMPTY);
    fp_settings ss = fp_default_settings();
    ss.max_tokens = 60;
    fp_session *s = fp_session_new(g_engine, "Once upon a time", &ss, &err);
    int32_t chosen[4][FP_MAX_PATH], n_chosen[4], n_prev[4], k = 0;
    while (s && k < 4 && fp_session_state(s) == FP_STATE_AT_FORK) {
        const fp_fork *f = fp_session_fork(s);
        int32_t y = f->n_candidates > 1 ? 1 : 0;
        bool prev = k % 2 == 1;
        n_chosen[k] = f->candidates[y].n_tokens;
        n_prev[k] = prev ? f->candidates[y].n_preview : 0;
        memcpy(chosen[k], f->candidates[y].tokens, sizeof(int32_t) * (size_t)n_chosen[k]);
        CHECK(fp_session_choose(s, y, prev, FP_BY_HUMAN, &err) == FP_OK);
        k++;
    }
    CHECK(k >= 2);
    fp_decision_meta meta = { .session_id = "s1", .profile = "ann", .model_sha256 = "abc", .modality = "keyboard" };
    CHECK(fp_store_log_events(st, s, 0, &meta, &err) == fp_session_n_events(s));
    fp_session_free(s);

    CHECK(fp_store_choices(st, "ann", "abc", &c, &n, &other, &err) == FP_OK);
    CHECKF(n == k, "%d choices of %d", n, k);
    for (int32_t i = 0; i < n && i < k; i++) {
        CHECK(c[i].n_chosen == n_chosen[i] && memcmp(c[i].chosen, chosen[i], sizeof(int32_t) * (size_t)n_chosen[i]) == 0);
        CHECK(c[i].n_accepted == n_prev[i]);
        CHECK(c[i].n_rejected > 0 && c[i].n_context > 0 && c[i].typed == NULL);
    }
    fp_store_choices_free(c, n);
    CHECK(fp_store_choices(st, "zed", "abc", &c, &n, &other, &err) == FP_ERR_ARG && strstr(err.message, "unknown profile"));
    CHECK(fp_store_choices(st, "ann", "def", &c, &n, &other, &err) == FP_ERR_MODEL && other == k);
    CHECK(strstr(err.message, "another model") != NULL);
    fp_store_close(st);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/fp-test-lora-XXXXXX");
    if (!mkdtemp(g_dir)) { printf("0 passed, 1 failed\n"); return 1; }
    if (!h_open_stories(&g_model, &g_engine)) return 1;
    test_learns();
    test_sessions();
    test_bad_input();
    test_divergence();
    test_store_choices();
    fp_engine_free(g_engine);
    fp_model_free(g_model);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
    return h_finish();
}
