/*
 * learn.c — `forkpoint learn --lora` / `--steer`: a personal LoRA adapter
 * and a steering vector from the decision log.
 *
 *   forkpoint learn --lora OUT.gguf | --steer OUT.gguf --db PATH [--profile NAME] [--model PATH]
 *                   [--rank N] [--alpha A] [--epochs N] [--lr X] [--stride N]
 *                   [--holdout F] [--resume ADAPTER] [--seed N] [--threads N] [--force]
 *
 * Why here and not in the library: choosing the data (whose decisions, which
 * model), holding some out and deciding whether the new adapter may replace
 * the old one are policy; the library (fp_lora_train) only trains.
 *
 * The scale the adapter is used at by default (write and serve read it from
 * the file) is the one of 0.5, 1, 2, 4 that does best on the newest fifth of
 * the training decisions (the adapter's validation windows) while the person's text stays as likely as under the base model
 * (fp_lora_pick_scale: an adapter at too high a scale writes fragments). The newest --holdout fraction of the decisions is not trained
 * on. On it the command reports the mean log p(chosen) - log p(rejected) (the chosen word
 * against the most probable word the person passed over) for the base model,
 * the new adapter and the adapter already at OUT, if any. The new adapter
 * replaces an existing one only if it does at least as well there (or with
 * --force); a diverged run never replaces anything.
 *
 * Exit codes: 0 written (or the existing adapter kept as better), 2 bad
 * input (no database, unknown profile, another model's decisions, nothing to
 * learn, bad options), 3 training diverged (nothing written), 1 other failures.
 */
#include "cli/cli.h"
#include "forkpoint_store.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f) {
    fputs("usage: forkpoint learn --lora OUT.gguf | --steer OUT.gguf --db PATH [options]\n"
          "  --lora OUT.gguf  train a LoRA adapter (forkpoint write --lora OUT.gguf)\n"
          "  --steer OUT.gguf compute a steering vector, llama.cpp's control-vector format\n"
          "                   (forkpoint write --steer OUT.gguf); both may be given\n"
          "  --profile NAME   learn from NAME's decisions (default: everyone's)\n"
          "  --model PATH     the model the decisions were made with (default: the default model)\n"
          "  --rank N         LoRA rank (default 8)\n"
          "  --alpha A        LoRA alpha; the adapter's scale is alpha/rank (default 8)\n"
          "  --epochs N       passes over the data (default 8)\n"
          "  --lr X           AdamW learning rate, at most 0.001 (default 0.001)\n"
          "  --stride N       tokens between training windows (default 256: no overlap)\n"
          "  --tail N         each choice trains with its sentence, at most N tokens either side\n"
          "                   (default 32; 0 = whole texts)\n"
          "  --validation F   share of training windows used only to pick the epoch kept (default 0.2)\n"
          "  --holdout F      newest fraction of decisions kept out of training, to judge by (default 0.2)\n"
          "  --resume PATH    go on training this adapter instead of a fresh one\n"
          "  --seed N         initial weights and data order (default 1234)\n"
          "  --threads N      CPU threads (default 1)\n"
          "  --force          replace OUT even if the existing adapter did better on held-out decisions\n",
          f);
}

/* The logged choices [from, to) as chosen-versus-rejected pairs. */
static fp_steer_pair *as_pairs(const fp_logged_choice *c, int32_t from, int32_t to) {
    fp_steer_pair *p = calloc((size_t)(to > from ? to - from : 1), sizeof *p);
    for (int32_t i = from; p && i < to; i++)
        p[i - from] = (fp_steer_pair){ c[i].context, c[i].n_context, c[i].chosen, c[i].n_chosen, c[i].rejected, c[i].n_rejected };
    return p;
}

/* Training examples from logged choices: the chosen tokens and any accepted
 * preview, or the typed text tokenized. Token arrays in *owned are freed by
 * the caller. */
static int32_t build_examples(const fp_model *m, const fp_logged_choice *c, int32_t n, fp_lora_example *ex,
                              int32_t **owned) {
    int32_t k = 0;
    for (int32_t i = 0; i < n; i++) {
        owned[i] = NULL;
        int32_t len;
        if (c[i].typed) {
            size_t tl = strlen(c[i].typed);
            int32_t need = fp_tokenize(m, c[i].typed, tl, NULL, 0, false);
            if (need < 1) continue;
            owned[i] = malloc(sizeof(int32_t) * (size_t)need);
            if (!owned[i]) continue;
            len = fp_tokenize(m, c[i].typed, tl, owned[i], need, false);
        } else {
            len = c[i].n_chosen + c[i].n_accepted;
            owned[i] = malloc(sizeof(int32_t) * (size_t)(len > 0 ? len : 1));
            if (!owned[i]) continue;
            memcpy(owned[i], c[i].chosen, sizeof(int32_t) * (size_t)c[i].n_chosen);
            if (c[i].n_accepted > 0)
                memcpy(owned[i] + c[i].n_chosen, c[i].accepted, sizeof(int32_t) * (size_t)c[i].n_accepted);
        }
        if (len < 1) continue;
        ex[k++] = (fp_lora_example){ .context = c[i].context, .n_context = c[i].n_context,
                                     .chosen = owned[i], .n_chosen = len };
    }
    return k;
}

/* Puts the adapter file at path on the engine at value (NAN: the value
 * stored in the file; path NULL: none). */
typedef int (*put_fn)(fp_engine *e, const char *path, float value, fp_error *err);

static int put_lora(fp_engine *e, const char *path, float scale, fp_error *err) {
    if (path && isnan(scale)) scale = fp_lora_scale_hint(path);
    return fp_engine_set_lora(e, path, path ? scale : 0.0f, err) != FP_OK;
}

static int put_steer(fp_engine *e, const char *path, float strength, fp_error *err) {
    if (!path) return fp_engine_set_steer(e, NULL, 0.0f, err) != FP_OK;
    float stored = 1.0f;
    fp_steer *v = fp_steer_load(fp_engine_model(e), path, &stored, err);
    if (!v) return 1;
    int rc = fp_engine_set_steer(e, v, isnan(strength) ? stored : strength, err) != FP_OK;
    fp_steer_free(v);
    return rc;
}

/* The engine's score on pairs with the file at path put on (NULL: none). */
static int score_with(fp_engine *e, put_fn put, const char *path, float value, const fp_steer_pair *p, int32_t n,
                      fp_pair_score *out) {
    fp_error err = {0};
    if (put(e, path, value, &err) || fp_engine_score_pairs(e, p, n, out, &err) != FP_OK) {
        fprintf(stderr, "forkpoint learn: %s\n", err.message);
        return 1;
    }
    return 0;
}

/* Judges the new file (cand, at value) against the base and the file already
 * at out on the held-out pairs, then moves it into place or drops it. */
static int judge_and_place(fp_engine *e, put_fn put, const char *what, const char *cand, float value, const char *out,
                           const fp_steer_pair *held, int32_t n_held, bool force, const char *use) {
    bool replace = true;
    int rc = 0;
    if (n_held > 0) {
        fp_pair_score base, fresh, old = {0};
        fp_error err = {0};
        bool have_old = access(out, R_OK) == 0;
        rc = score_with(e, put, NULL, 0, held, n_held, &base);
        if (!rc) rc = score_with(e, put, cand, value, held, n_held, &fresh);
        if (!rc && have_old) {
            if (put(e, out, NAN, &err)) {
                printf("learn: the existing %s cannot be used (%s); replacing it\n", out, err.message);
                have_old = false;
            } else rc = score_with(e, put, out, NAN, held, n_held, &old);
        }
        put(e, NULL, 0, NULL);
        if (!rc) {
            printf("learn: held-out over %d decisions: log p(chosen) - log p(rejected) base %.3f, new %s %.3f (%+.3f)",
                   fresh.n_pairs, base.margin, what, fresh.margin, fresh.margin - base.margin);
            if (have_old) printf(", existing %s %.3f", what, old.margin);
            printf("; text log p per token %.3f -> %.3f\n", base.text_logp, fresh.text_logp);
            if (fresh.n_pairs > 0 && fresh.margin < base.margin)
                printf("learn: warning: on the held-out decisions the %s does worse than the base model;\n"
                       "       more decisions, or a lower strength when writing, may help\n", what);
            if (have_old && fresh.n_pairs > 0 && !(fresh.margin >= old.margin) && !force) replace = false;
        }
    } else {
        printf("learn: too few decisions to hold any out; the %s is not judged\n", what);
    }
    if (rc) { unlink(cand); return rc; }
    if (!replace) {
        unlink(cand);
        printf("learn: kept the existing %s (it does better on the held-out decisions; --force replaces it)\n", out);
    } else if (rename(cand, out) != 0) {
        fprintf(stderr, "forkpoint learn: cannot write %s\n", out);
        unlink(cand);
        rc = 1;
    } else {
        printf("learn: wrote %s at strength %.2f (use it with: forkpoint write %s %s)\n", out, value, use, out);
    }
    return rc;
}

/* Reports the picked strength and warns when no strength keeps the text fluent. */
static void report_fit(const char *what, float value, const fp_pair_score *base, const fp_pair_score *best) {
    printf("learn: %s strength %.2f fits the newest training decisions best (log p(chosen) - log p(rejected) %.3f -> %.3f,"
           " text log p per token %.3f -> %.3f)\n", what, value, base->margin, best->margin, base->text_logp,
           best->text_logp);
    if (best->text_logp < base->text_logp - FP_LORA_FLUENCY_SLACK)
        printf("learn: warning: at every strength the %s writes less fluently than the base model\n", what);
}

static int learn_lora(fp_engine *e, const fp_model *m, const fp_logged_choice *c, int32_t n_train,
                      const fp_steer_pair *fit, int32_t n_fit, const fp_steer_pair *held, int32_t n_held,
                      const fp_lora_params *lp, const char *out, bool force) {
    fp_lora_example *ex = calloc((size_t)n_train, sizeof *ex);
    int32_t **owned = calloc((size_t)n_train, sizeof *owned);
    size_t cl = strlen(out) + 8;
    char *cand = malloc(cl);
    fp_error err = {0};
    int rc = 0;
    if (!ex || !owned || !cand) { fprintf(stderr, "forkpoint learn: out of memory\n"); rc = 1; goto done; }
    int32_t n_ex = build_examples(m, c, n_train, ex, owned);
    snprintf(cand, cl, "%s.new", out);
    fp_lora_report rep;
    fp_status ts = fp_lora_train(m, ex, n_ex, lp, cand, &rep, &err);
    if (ts != FP_OK) {
        fprintf(stderr, "forkpoint learn: %s\n", err.message);
        rc = ts == FP_ERR_DIVERGED ? 3 : ts == FP_ERR_NOMEM || ts == FP_ERR_IO || ts == FP_ERR_DECODE ? 1 : 2;
        goto done;
    }
    printf("learn: trained %d matrices on %lld tokens (%d windows, %d more for validation); kept epoch %d of %d"
           " (training loss %.3f -> %.3f, validation loss %.3f -> %.3f)\n", rep.n_tensors, (long long)rep.n_tokens,
           rep.n_windows, rep.n_val_windows, rep.best_epoch, rep.epochs, rep.loss_first, rep.loss_last, rep.val_first,
           rep.val_best);
    float scale = 1.0f;
    fp_pair_score base_fit, best_fit;
    if (score_with(e, put_lora, NULL, 0, fit, n_fit, &base_fit)) { rc = 1; goto done; }
    if (base_fit.n_pairs > 0) {
        if (fp_lora_pick_scale(e, cand, fit, n_fit, &scale, &best_fit, &err) != FP_OK) {
            fprintf(stderr, "forkpoint learn: %s\n", err.message);
            rc = 1;
            goto done;
        }
        report_fit("adapter", scale, &base_fit, &best_fit);
    }
    if (fp_lora_set_scale_hint(cand, scale, &err) != FP_OK) { fprintf(stderr, "forkpoint learn: %s\n", err.message); rc = 1; goto done; }
    rc = judge_and_place(e, put_lora, "adapter", cand, scale, out, held, n_held, force, "--lora");
done:
    if (rc && cand) unlink(cand);
    if (owned) for (int32_t i = 0; i < n_train; i++) free(owned[i]);
    free(owned);
    free(ex);
    free(cand);
    return rc;
}

static int learn_steer(fp_engine *e, const fp_model *m, const fp_logged_choice *c, int32_t n_train,
                       const fp_steer_pair *fit, int32_t n_fit, const fp_steer_pair *held, int32_t n_held,
                       int32_t threads, const char *out, bool force) {
    fp_steer_pair *pairs = as_pairs(c, 0, n_train);
    int32_t k = 0;
    for (int32_t i = 0; pairs && i < n_train; i++)   /* only choices with a rival and a context */
        if (pairs[i].n_chosen > 0 && pairs[i].n_rejected > 0 && pairs[i].n_context > 0) pairs[k++] = pairs[i];
    fp_error err = {0};
    fp_steer *v = k > 0 ? fp_steer_compute((fp_model *)m, pairs, k, threads, &err) : NULL;
    free(pairs);
    if (!v) {
        fprintf(stderr, "forkpoint learn: %s\n", k > 0 ? err.message : "no decision with a rejected candidate to steer by");
        return k > 0 ? 1 : 2;
    }
    printf("learn: steering vector from %d chosen-versus-rejected pairs\n", k);
    float strength = 1.0f;
    fp_pair_score base_fit, best_fit;
    int rc = score_with(e, put_steer, NULL, 0, fit, n_fit, &base_fit);
    if (!rc && base_fit.n_pairs > 0) {
        if (fp_steer_pick_strength(e, v, fit, n_fit, &strength, &best_fit, &err) != FP_OK) {
            fprintf(stderr, "forkpoint learn: %s\n", err.message);
            rc = 1;
        } else report_fit("steering vector", strength, &base_fit, &best_fit);
    }
    size_t cl = strlen(out) + 8;
    char *cand = malloc(cl);
    if (!rc && !cand) rc = 1;
    if (!rc) {
        snprintf(cand, cl, "%s.new", out);
        if (fp_steer_save(v, m, cand, strength, &err) != FP_OK) { fprintf(stderr, "forkpoint learn: %s\n", err.message); rc = 1; }
    }
    fp_steer_free(v);
    if (!rc) rc = judge_and_place(e, put_steer, "steering vector", cand, strength, out, held, n_held, force, "--steer");
    free(cand);
    return rc;
}

int cli_learn(int argc, char **argv) {
    const char *db = NULL, *profile = NULL, *model_path = NULL, *out = NULL, *steer_out = NULL;
    fp_lora_params lp = fp_lora_default_params();
    double holdout = 0.2;
    bool force = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        if (!strcmp(a, "--force")) { force = true; continue; }
        if (!v) { fprintf(stderr, "forkpoint learn: %s needs a value (try --help)\n", a); return 2; }
        char *end = NULL;
        double d = strtod(v, &end);
        bool num = end && end != v && *end == 0 && isfinite(d);
#define NUM(lo, hi) do { if (!num || d < (lo) || d > (hi)) { \
            fprintf(stderr, "forkpoint learn: %s must be a number in [%g, %g]\n", a, (double)(lo), (double)(hi)); return 2; } } while (0)
        if (!strcmp(a, "--lora")) out = v;
        else if (!strcmp(a, "--steer")) steer_out = v;
        else if (!strcmp(a, "--db")) db = v;
        else if (!strcmp(a, "--profile")) profile = v;
        else if (!strcmp(a, "--model")) model_path = v;
        else if (!strcmp(a, "--resume")) lp.resume = v;
        else if (!strcmp(a, "--rank")) { NUM(1, 256); lp.rank = (int32_t)d; }
        else if (!strcmp(a, "--alpha")) { NUM(1e-6, 1e6); lp.alpha = (float)d; }
        else if (!strcmp(a, "--epochs")) { NUM(1, 1000); lp.epochs = (int32_t)d; }
        else if (!strcmp(a, "--lr")) { NUM(1e-9, 1e-3); lp.learning_rate = (float)d; }
        else if (!strcmp(a, "--stride")) { NUM(1, 1 << 20); lp.stride = (int32_t)d; }
        else if (!strcmp(a, "--tail")) { NUM(0, 1 << 20); lp.context_tail = (int32_t)d; }
        else if (!strcmp(a, "--validation")) { NUM(0, 0.5); lp.validation = (float)d; }
        else if (!strcmp(a, "--holdout")) { NUM(0, 0.9); holdout = d; }
        else if (!strcmp(a, "--seed")) { NUM(0, 4294967295.0); lp.seed = (uint32_t)d; }
        else if (!strcmp(a, "--threads")) { NUM(1, 512); lp.n_threads = (int32_t)d; }
        else { fprintf(stderr, "forkpoint learn: unknown option %s (try --help)\n", a); return 2; }
#undef NUM
        i++;
    }
    if (!out && !steer_out) { fprintf(stderr, "forkpoint learn: --lora OUT.gguf or --steer OUT.gguf is required (try --help)\n"); return 2; }
    if (!db) { fprintf(stderr, "forkpoint learn: --db is required\n"); return 2; }

    fp_error err = {0};
    fp_store *st = fp_store_open(db, false, &err);
    if (!st) { fprintf(stderr, "forkpoint learn: %s\n", err.message); return 2; }
    fp_model *m = NULL;
    fp_engine *e = NULL;
    int rc = cli_load(model_path, NULL, NULL, NULL, false, lp.n_threads, 0, NULL, &m, &e);
    if (rc != 0) { fp_store_close(st); return rc; }
    char sha[65];
    fp_logged_choice *c = NULL;
    int32_t n = 0, n_other = 0;
    if (fp_sha256_file(fp_model_path(m), sha, &err) != FP_OK ||
        fp_store_choices(st, profile, sha, &c, &n, &n_other, &err) != FP_OK) {
        fprintf(stderr, "forkpoint learn: %s\n", err.message);
        fp_store_close(st);
        fp_engine_free(e);
        fp_model_free(m);
        return err.code == FP_ERR_NOMEM || err.code == FP_ERR_IO ? 1 : 2;
    }
    fp_store_close(st);

    /* the newest decisions are held out (kept only when there are enough);
     * strengths are fitted on the newest fifth of the training decisions
     * (at least 20): those of the adapter's validation windows, which it was
     * not trained on, so the fluency guard sees text the adapter has not
     * learned by heart */
    int32_t n_held = (int32_t)floor(holdout * n);
    if (n - n_held < 1) n_held = 0;
    int32_t n_train = n - n_held;
    int32_t n_fit = n_train / 5 > 20 ? n_train / 5 : 20;
    int32_t fit_from = n_train > n_fit ? n_train - n_fit : 0;
    printf("learn: %d decisions (%d for training, %d held out)%s\n", n, n_train, n_held,
           n_other ? ", decisions logged with other models skipped" : "");
    fp_steer_pair *fit = as_pairs(c, fit_from, n_train), *held = as_pairs(c, n_train, n);
    if (!fit || !held) { fprintf(stderr, "forkpoint learn: out of memory\n"); rc = 1; }
    if (!rc && out) rc = learn_lora(e, m, c, n_train, fit, n_train - fit_from, held, n_held, &lp, out, force);
    if (!rc && steer_out)
        rc = learn_steer(e, m, c, n_train, fit, n_train - fit_from, held, n_held, lp.n_threads, steer_out, force);
    free(fit);
    free(held);
    fp_store_choices_free(c, n);
    fp_engine_free(e);
    fp_model_free(m);
    return rc;
}
