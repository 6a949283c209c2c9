/*
 * test_prefs.c — learned preferences on the real model: a simulated person
 * with a hidden, consistent taste is learned (test-then-train) better than
 * the model's own ranking predicts them; profiles survive storage; auto-
 * resolution starts once the history supports it and backs off on undo.
 * (bench/bench_learning is the full-size version.)
 */
#include "forkpoint.h"
#include "forkpoint_store.h"
#include "harness.h"
#include "vivid_person.h"

#include <ctype.h>
#include <math.h>
#include <unistd.h>

static fp_model *g_model;
static fp_engine *g_engine;


static fp_session *session(fp_prefs *p, uint32_t seed) {
    fp_error err = {0};
    fp_settings st = fp_default_settings();
    st.sample_auto = true;
    st.seed = seed;
    st.max_tokens = 120;
    st.lookahead = 3;
    /* the stories start from three prompts in turn, so no single story
     * decides the outcome */
    static const char *const prompts[] = { "Once upon a time, there was a little", "One day, a", "Every morning," };
    fp_session *s = fp_session_new(g_engine, prompts[seed % 3], &st, &err);
    if (s && p) fp_session_set_prefs(s, p, &err);
    return s;
}

static void test_learns(void) {
    TEST("preferences learn a consistent taste better than the model predicts it");
    fp_prefs *p = fp_prefs_new(fp_model_n_vocab(g_model));
    CHECK(p != NULL);
    int n = 0, agree_late = 0, model_late = 0, late = 0;
    uint32_t seed = 1;
    fp_error err = {0};
    while (n < 260) {
        fp_session *s = session(p, seed++);
        CHECK(s != NULL);
        if (!s) break;
        while (fp_session_state(s) == FP_STATE_AT_FORK && n < 260) {
            const fp_fork *f = fp_session_fork(s);
            int32_t y = vivid_pick(f), mt = 0;
            for (int32_t i = 1; i < f->n_candidates; i++) if (f->candidates[i].prob > f->candidates[mt].prob) mt = i;
            /* candidates come in the learned order: index 0 is the prediction */
            for (int32_t i = 1; i < f->n_candidates; i++) CHECK(f->candidates[i].pref <= f->candidates[i - 1].pref);
            if (n >= 180) { late++; agree_late += y == 0; model_late += y == mt; }
            CHECK(fp_session_choose(s, y, false, FP_BY_HUMAN, &err) == FP_OK);
            n++;
        }
        fp_session_set_prefs(s, NULL, NULL);
        fp_session_free(s);
    }
    fprintf(stderr, "   last %d forks: learned top-1 %d, model top-1 %d\n", late, agree_late, model_late);
    CHECK(fp_prefs_n_learned(p) >= 150);
    CHECKF(agree_late >= model_late + late / 10, "learned %d vs model %d of %d", agree_late, model_late, late);
    /* errors, the measure: at most 3/4 of the model's own (bench_learning: about 0.4) */
    CHECKF(4 * (late - agree_late) <= 3 * (late - model_late), "errors: learned %d vs model %d of %d", late - agree_late,
           late - model_late, late);
    /* what the person sees: one history entry per learned fork, named words */
    uint8_t hist[FP_PREFS_HISTORY];
    CHECK(fp_prefs_history(p, hist, FP_PREFS_HISTORY) == (int32_t)fp_prefs_n_learned(p));
    fp_prefs_point pts[64];
    int32_t nb = fp_prefs_curve(p, 10, pts, 64), dec = 0, agr = 0;
    for (int32_t i = 0; i < nb; i++) { dec += pts[i].decided; agr += pts[i].agreed; }
    CHECK(dec == (int32_t)fp_prefs_n_learned(p) && agr > dec / 2);
    fp_prefs_item words[8];
    CHECK(fp_prefs_top_words(p, words, 8) == 8 && fabsf(words[0].weight) >= fabsf(words[7].weight));
    char *js = fp_prefs_to_json(p);
    CHECK(js && strstr(js, "\"curve\":[{") && strstr(js, "\"words\":[{"));
    free(js);

    /* storage: the same predictions after a round trip; damage is refused */
    size_t len = 0;
    void *blob = fp_prefs_save(p, &len);
    fp_prefs *q = blob ? fp_prefs_load(blob, len, &err) : NULL;
    CHECK(q != NULL);
    fp_session *s = session(NULL, 99);
    /* a loaded profile takes the model's word-meaning vectors when attached, as p did */
    if (q && s) { CHECK(fp_session_set_prefs(s, q, &err) == FP_OK); fp_session_set_prefs(s, NULL, NULL); }
    if (q && s && fp_session_state(s) == FP_STATE_AT_FORK) {
        const fp_fork *f = fp_session_fork(s);
        float a[64], b[64];
        const char *ctx = fp_session_text(s);
        fp_prefs_predict(p, ctx, strlen(ctx), f, a);
        fp_prefs_predict(q, ctx, strlen(ctx), f, b);
        CHECK(memcmp(a, b, sizeof(float) * (size_t)f->n_candidates) == 0);
    }
    fp_session_free(s);
    CHECK(fp_prefs_load(blob, len - 1, &err) == NULL && err.code == FP_ERR_ARG);
    ((char *)blob)[0] = 'X';
    CHECK(fp_prefs_load(blob, len, &err) == NULL);
    free(blob);
    fp_prefs_free(q);
    /* another vocabulary is refused */
    fp_prefs *other = fp_prefs_new(32000);
    s = session(NULL, 5);
    CHECK(s && fp_session_set_prefs(s, other, &err) == FP_ERR_MODEL);
    fp_session_free(s);
    fp_prefs_free(other);

    /* auto-resolution: on with enough history, decisions by itself, backs off on undo */
    fp_prefs_set_auto(p, true, 0.9f);
    float th = fp_prefs_auto_threshold(p);
    CHECKF(th > 0.0f && th <= 1.0f, "threshold %g", th);
    int autos = 0;
    for (uint32_t k = 0; k < 6; k++) {
        s = session(p, 200 + k);
        while (s && fp_session_state(s) == FP_STATE_AT_FORK) fp_session_choose(s, vivid_pick(fp_session_fork(s)), false, FP_BY_HUMAN, &err);
        for (int32_t i = 0; s && i < fp_session_n_events(s); i++) autos += fp_session_event(s, i)->chooser == FP_BY_AUTO;
        if (s && autos > 0) {
            /* undo back to an automatic decision */
            bool undone = false;
            for (int guard = 0; guard < 50 && !undone && fp_session_undo(s, &err) == FP_OK; guard++) {
                const fp_fork *f = fp_session_fork(s);
                for (int32_t i = 0; i < fp_session_n_events(s); i++) {
                    const fp_fork *e = fp_session_event(s, i);
                    if (e->id == f->id && e->chooser == FP_BY_AUTO) undone = true;
                }
            }
            if (undone) CHECK(fp_prefs_auto_threshold(p) > th || fp_prefs_auto_threshold(p) >= 1.0f);
        }
        if (s) fp_session_set_prefs(s, NULL, NULL);
        fp_session_free(s);
    }
    CHECKF(autos > 0, "no automatic decisions");
    int64_t na = 0, nu = 0;
    fp_prefs_counts(p, &na, &nu);
    CHECKF(na == autos, "automatic decisions counted: %lld of %d", (long long)na, autos);
    /* reset: nothing learned, the model's own order again, auto-resolution kept */
    fp_prefs_reset(p);
    CHECK(fp_prefs_n_learned(p) == 0 && fp_prefs_history(p, hist, FP_PREFS_HISTORY) == 0);
    fp_prefs_counts(p, &na, &nu);
    CHECK(na == 0 && nu == 0 && fp_prefs_auto_threshold(p) == 2.0f);
    s = session(NULL, 7);
    if (s && fp_session_state(s) == FP_STATE_AT_FORK) {
        const fp_fork *f = fp_session_fork(s);
        float a[64], sum = 0;
        const char *ctx = fp_session_text(s);
        fp_prefs_predict(p, ctx, strlen(ctx), f, a);
        for (int32_t i = 0; i < f->n_candidates; i++) sum += f->candidates[i].prob;
        for (int32_t i = 0; i < f->n_candidates; i++)
            CHECKF(fabsf(a[i] - f->candidates[i].prob / sum) < 1e-3f, "reset predicts as the model: %g vs %g", a[i], f->candidates[i].prob / sum);
    }
    fp_session_free(s);
    fp_prefs_free(p);
}

static void test_store(void) {
    TEST("decision log and profiles in SQLite");
    char path[128];
    snprintf(path, sizeof path, "/tmp/fp-store-%d.db", (int)getpid());
    unlink(path);
    fp_error err = {0};
    CHECK(fp_store_open(path, false, &err) == NULL && err.code == FP_ERR_IO);
    fp_store *st = fp_store_open(path, true, &err);
    CHECKF(st != NULL, "%s", err.message);
    if (!st) return;
    int64_t rows = 0;
    FILE *devnull = fopen("/dev/null", "w");
    CHECK(fp_store_export(st, FP_EXPORT_SFT, NULL, devnull, &rows, &err) == FP_ERR_EMPTY);
    fp_session *s = session(NULL, 3);
    fp_decision_meta meta = { "s1", "ann", "abc", "script" };
    int32_t logged = 0;
    for (int i = 0; s && i < 5 && fp_session_state(s) == FP_STATE_AT_FORK; i++) {
        CHECK(fp_session_choose(s, i % 2, i % 2 == 0, FP_BY_HUMAN, &err) == FP_OK);
        logged = fp_store_log_events(st, s, logged, &meta, &err);
        CHECK(logged == fp_session_n_events(s));
    }
    CHECK(fp_store_count(st, "ann") == logged && fp_store_count(st, "bob") == 0);
    CHECK(fp_store_export(st, FP_EXPORT_SFT, "ann", devnull, &rows, &err) == FP_OK && rows == logged);
    CHECK(fp_store_export(st, FP_EXPORT_PAIRS, NULL, devnull, &rows, &err) == FP_OK && rows >= logged);
    CHECK(fp_store_export(st, FP_EXPORT_KTO, NULL, devnull, &rows, &err) == FP_OK && rows > logged);
    CHECK(fp_store_export(st, FP_EXPORT_RAW, NULL, devnull, &rows, &err) == FP_OK && rows == logged);
    CHECK(fp_store_export(st, FP_EXPORT_RAW, "bob", devnull, &rows, &err) == FP_ERR_ARG);
    fp_export_format fmt;
    CHECK(fp_export_format_parse("kto", &fmt) && fmt == FP_EXPORT_KTO && !fp_export_format_parse("csv", &fmt));
    /* profiles */
    fp_prefs *p = fp_prefs_new(fp_model_n_vocab(g_model)), *q = NULL;
    CHECK(fp_store_profile_load(st, "ann", "abc", &q, &err) == FP_OK && q == NULL);
    CHECK(fp_store_profile_save(st, "ann", "abc", p, &err) == FP_OK);
    CHECK(fp_store_profile_load(st, "ann", "abc", &q, &err) == FP_OK && q != NULL);
    fp_prefs_free(q);
    q = NULL;
    CHECK(fp_store_profile_load(st, "ann", "other-model", &q, &err) == FP_ERR_MODEL && q == NULL);
    CHECK(fp_store_profile_reset(st, "ann", &err) == FP_OK);
    CHECK(fp_store_profile_reset(st, "ann", &err) == FP_ERR_ARG);
    fp_prefs_free(p);
    fp_session_free(s);
    fclose(devnull);
    fp_store_close(st);
    /* a file that is not a database is refused */
    FILE *f = fopen(path, "w");
    if (f) { fputs("this is not sqlite, just text that is long enough to look like a header......", f); fclose(f); }
    CHECK(fp_store_open(path, false, &err) == NULL && err.code == FP_ERR_IO);
    unlink(path);
    char wal[160];
    snprintf(wal, sizeof wal, "%s-wal", path); unlink(wal);
    snprintf(wal, sizeof wal, "%s-shm", path); unlink(wal);
}

static void test_steer(void) {
    TEST("steering vectors: computed from pairs, applied, removed, sessions re-decoded");
    fp_error err = {0};
    fp_session *s = session(NULL, 11);
    CHECK(s && fp_session_state(s) == FP_STATE_AT_FORK);
    if (!s) return;
    /* pairs: at each of a few forks, the last candidate chosen over the first */
    fp_steer_pair pairs[8];
    int32_t ctx[8][512], ch[8][FP_MAX_PATH], rj[8][FP_MAX_PATH];
    int n = 0;
    while (n < 8 && fp_session_state(s) == FP_STATE_AT_FORK) {
        const fp_fork *f = fp_session_fork(s);
        int32_t last = f->n_candidates - 1;
        if (last > 0 && !f->candidates[0].is_eog && !f->candidates[last].is_eog && fp_session_n_tokens(s) < 512) {
            memcpy(ctx[n], fp_session_tokens(s), sizeof(int32_t) * (size_t)fp_session_n_tokens(s));
            memcpy(ch[n], f->candidates[last].tokens, sizeof(int32_t) * (size_t)f->candidates[last].n_tokens);
            memcpy(rj[n], f->candidates[0].tokens, sizeof(int32_t) * (size_t)f->candidates[0].n_tokens);
            pairs[n] = (fp_steer_pair){ ctx[n], fp_session_n_tokens(s), ch[n], f->candidates[last].n_tokens,
                                        rj[n], f->candidates[0].n_tokens };
            n++;
        }
        fp_session_choose(s, 0, false, FP_BY_HUMAN, &err);
    }
    CHECK(n >= 4);
    fp_steer *v = fp_steer_compute(g_model, pairs, n, 1, &err);
    CHECKF(v != NULL, "%s", err.message);
    CHECK(fp_steer_compute(g_model, pairs, 0, 1, &err) == NULL && err.code == FP_ERR_ARG);
    if (v) {
        double a0, a1, b0, b1, c0;
        CHECK(fp_engine_logprob(g_engine, pairs[0].context, pairs[0].n_context, pairs[0].chosen, pairs[0].n_chosen, &a0, &err) == FP_OK);
        CHECK(fp_engine_logprob(g_engine, pairs[0].context, pairs[0].n_context, pairs[0].rejected, pairs[0].n_rejected, &b0, &err) == FP_OK);
        const char *before = fp_session_text(s);
        char keep[4096];
        snprintf(keep, sizeof keep, "%s", before);
        CHECK(fp_engine_set_steer(g_engine, v, 4.0f, &err) == FP_OK);
        CHECK(strcmp(keep, fp_session_text(s)) == 0); /* the text stays; its KV was decoded again */
        CHECK(fp_engine_logprob(g_engine, pairs[0].context, pairs[0].n_context, pairs[0].chosen, pairs[0].n_chosen, &a1, &err) == FP_OK);
        CHECK(fp_engine_logprob(g_engine, pairs[0].context, pairs[0].n_context, pairs[0].rejected, pairs[0].n_rejected, &b1, &err) == FP_OK);
        /* applied: the scores move (whether they move the person's way is bench_learning's question) */
        CHECKF(fabs((a1 - b1) - (a0 - b0)) > 1e-3, "the vector changed nothing (%g -> %g)", a0 - b0, a1 - b1);
        if (fp_session_state(s) == FP_STATE_AT_FORK) CHECK(fp_session_choose(s, 0, true, FP_BY_HUMAN, &err) == FP_OK);
        CHECK(fp_engine_set_steer(g_engine, NULL, 0, &err) == FP_OK);
        CHECK(fp_engine_logprob(g_engine, pairs[0].context, pairs[0].n_context, pairs[0].chosen, pairs[0].n_chosen, &c0, &err) == FP_OK);
        CHECKF(fabs(c0 - a0) < 1e-3, "removing the vector restores scores (%g vs %g)", c0, a0);
        CHECK(fp_engine_set_steer(g_engine, v, NAN, &err) == FP_ERR_ARG);

        /* as a file: llama.cpp's control-vector GGUF with the strength */
        char dir[] = "/tmp/fp-test-steer-XXXXXX", path[64], junk[64];
        CHECK(mkdtemp(dir) != NULL);
        snprintf(path, sizeof path, "%s/v.gguf", dir);
        snprintf(junk, sizeof junk, "%s/junk.gguf", dir);
        CHECK(fp_steer_save(v, g_model, path, 2.5f, &err) == FP_OK);
        CHECK(fp_steer_save(v, g_model, path, NAN, &err) == FP_ERR_ARG);
        float strength = 0;
        fp_steer *w = fp_steer_load(g_model, path, &strength, &err);
        CHECKF(w != NULL, "%s", err.message);
        CHECK(strength == 2.5f);
        if (w) {
            double b2, b3;
            CHECK(fp_engine_set_steer(g_engine, v, 4.0f, &err) == FP_OK);
            CHECK(fp_engine_logprob(g_engine, pairs[0].context, pairs[0].n_context, pairs[0].chosen, pairs[0].n_chosen, &b2, &err) == FP_OK);
            CHECK(fp_engine_set_steer(g_engine, w, 4.0f, &err) == FP_OK);
            CHECK(fp_engine_logprob(g_engine, pairs[0].context, pairs[0].n_context, pairs[0].chosen, pairs[0].n_chosen, &b3, &err) == FP_OK);
            CHECKF(b2 == b3, "the loaded vector steers exactly as the saved one (%g vs %g)", b2, b3);
            CHECK(fp_engine_set_steer(g_engine, NULL, 0, &err) == FP_OK);
            fp_steer_free(w);
        }
        /* the strength is picked on pairs, and the engine is left unsteered */
        fp_pair_score at;
        float picked = 0;
        CHECK(fp_steer_pick_strength(g_engine, v, pairs, n, &picked, &at, &err) == FP_OK);
        CHECK(picked >= 0.25f && picked <= 4.0f && at.n_pairs == n);
        CHECK(fp_engine_logprob(g_engine, pairs[0].context, pairs[0].n_context, pairs[0].chosen, pairs[0].n_chosen, &c0, &err) == FP_OK);
        CHECKF(fabs(c0 - a0) < 1e-3, "picking leaves the engine unsteered");
        /* files that are not steering vectors for this model */
        CHECK(fp_steer_load(g_model, "/nonexistent/v.gguf", NULL, &err) == NULL && err.code == FP_ERR_IO);
        FILE *f = fopen(junk, "wb");
        if (f) { fputs("GGUF not really", f); fclose(f); }
        CHECK(fp_steer_load(g_model, junk, NULL, &err) == NULL && err.code == FP_ERR_MODEL);
        CHECK(fp_steer_load(g_model, h_model_path("stories260K.gguf"), NULL, &err) == NULL && err.code == FP_ERR_MODEL);
        fp_model *other = fp_model_load(h_model_path("llama-2-tiny-random.gguf"), NULL, &err);
        CHECK(other && fp_steer_load(other, path, NULL, &err) == NULL && err.code == FP_ERR_MODEL);
        fp_model_free(other);
        unlink(path);
        unlink(junk);
        CHECK(rmdir(dir) == 0);   /* nothing else (no temporary file) was left */
        fp_steer_free(v);
    }
    fp_session_free(s);
}

int main(void) {
    if (!h_open_stories(&g_model, &g_engine)) return 1;
    test_learns();
    test_store();
    test_steer();
    fp_engine_free(g_engine);
    fp_model_free(g_model);
    return h_finish();
}
