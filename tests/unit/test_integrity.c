/*
 * test_integrity.c — decisions happen whole or not at all; a prefetched
 * choice ends exactly where a direct one does; the invariants hold.
 *
 * Fault injection: the engine's decode hook (fault_at) fails the N-th decode
 * inside every kind of change a session knows (choose, with preview,
 * choose_until, type, prefix, continue, undo, goto, fork-at, settings, an
 * adapter change), for every N the change reaches. After each failure the
 * session must be exactly as before (text, tree, events, open fork and its
 * candidates, settings, the person's profile), pass fpi_session_check, and
 * the same change must then succeed and give the same text as on a twin
 * session that never saw a fault.
 *
 * White-box where it must be (internal.h for the fault hook and the check);
 * every other observation goes through the public API.
 */
#include "core/internal.h"
#include "harness.h"
#include "vivid_person.h"

#include <math.h>

static fp_model *g_model;
static const char *PROMPT = "Once upon a time, there was a little";

static fp_settings settings(void) {
    fp_settings st = fp_default_settings();
    st.fork_entropy_bits = 1.5f;
    st.fork_top1_below = 0.6f;
    st.min_gap_tokens = 2;
    st.max_forks_per_sentence = 0;
    st.max_tokens = 120;
    return st;
}

/* A profile taught by the vivid person over a few stories, auto-resolution on. */
static fp_prefs *trained(fp_engine *e) {
    fp_prefs *p = fp_prefs_new(fp_model_n_vocab(g_model));
    fp_error err = {0};
    for (uint32_t k = 0; k < 6; k++) {
        fp_settings st = settings();
        st.seed = 11 + k;
        st.sample_auto = true;
        fp_session *s = fp_session_new(e, PROMPT, &st, &err);
        if (!s) continue;
        fp_session_set_prefs(s, p, &err);
        for (int i = 0; i < 40 && fp_session_state(s) == FP_STATE_AT_FORK; i++)
            fp_session_choose(s, vivid_pick(fp_session_fork(s)), false, FP_BY_HUMAN, &err);
        fp_session_set_prefs(s, NULL, NULL);
        fp_session_free(s);
    }
    fp_prefs_set_auto(p, true, 0.8f);
    return p;
}

/* ----------------------------------------------------------- snapshots */

typedef struct snap {
    char *text, *tree, *prefs;
    size_t prefs_len;
    fp_state state;
    int32_t open, n_events, k, n_positions;
} snap;

static void snap_take(const fp_session *s, const fp_prefs *p, snap *out) {
    out->text = strdup(fp_session_text(s));
    out->tree = fp_session_tree_json(s);
    out->prefs_len = 0;
    out->prefs = p ? fp_prefs_save(p, &out->prefs_len) : NULL;
    out->state = fp_session_state(s);
    const fp_fork *f = fp_session_fork(s);
    out->open = f ? f->id : -1;
    out->n_events = fp_session_n_events(s);
    out->k = fp_session_settings(s)->k;
    out->n_positions = fp_session_n_positions(s);
}

static void snap_free(snap *x) { free(x->text); free(x->tree); free(x->prefs); }

static bool snap_equal(const snap *a, const snap *b, char *why, size_t cap) {
    if (strcmp(a->text, b->text) != 0) { snprintf(why, cap, "text changed"); return false; }
    if (strcmp(a->tree, b->tree) != 0) { snprintf(why, cap, "tree changed"); return false; }
    if (a->state != b->state || a->open != b->open) { snprintf(why, cap, "state/open fork changed"); return false; }
    if (a->n_events != b->n_events) { snprintf(why, cap, "events %d -> %d", a->n_events, b->n_events); return false; }
    if (a->k != b->k) { snprintf(why, cap, "settings changed"); return false; }
    if (a->n_positions != b->n_positions) { snprintf(why, cap, "positions changed"); return false; }
    if ((a->prefs == NULL) != (b->prefs == NULL) || a->prefs_len != b->prefs_len ||
        (a->prefs && memcmp(a->prefs, b->prefs, a->prefs_len) != 0)) { snprintf(why, cap, "profile changed"); return false; }
    return true;
}

/* --------------------------------------------------------------- changes */

typedef enum op {
    OP_CHOOSE, OP_CHOOSE_PREVIEW, OP_CHOOSE_UNTIL, OP_TYPE, OP_PREFIX, OP_CONTINUE,
    OP_UNDO, OP_GOTO, OP_FORK_AT, OP_SETTINGS, OP_PREFETCHED, OP_COUNT
} op;
static const char *op_name[] = { "choose", "choose+preview", "choose_until", "type", "prefix", "continue",
                                 "undo", "goto", "fork_at", "settings", "prefetched choose" };

/* The session every run starts from: two decisions in, a fork open. */
static fp_session *setup(fp_engine *e, fp_prefs *p) {
    fp_error err = {0};
    fp_settings st = settings();
    fp_session *s = fp_session_new(e, PROMPT, &st, &err);
    if (!s) { fprintf(stderr, "setup: %s\n", err.message); return NULL; }
    if (p) fp_session_set_prefs(s, p, &err);
    if (fp_session_state(s) == FP_STATE_AT_FORK) fp_session_choose(s, 1 % fp_session_fork(s)->n_candidates, false, FP_BY_HUMAN, &err);
    if (fp_session_state(s) == FP_STATE_AT_FORK) fp_session_choose(s, 0, true, FP_BY_HUMAN, &err);
    if (fp_session_state(s) != FP_STATE_AT_FORK) { fp_session_free(s); return NULL; }
    return s;
}

static fp_status apply(fp_session *s, op o, fp_error *err) {
    const fp_fork *f = fp_session_fork(s);
    int32_t last = f ? f->n_candidates - 1 : 0;
    switch (o) {
    case OP_CHOOSE: return fp_session_choose(s, last, false, FP_BY_HUMAN, err);
    case OP_CHOOSE_PREVIEW: return fp_session_choose(s, 0, true, FP_BY_HUMAN, err);
    case OP_CHOOSE_UNTIL: {
        int32_t i = 0;
        while (i < last && f->candidates[i].n_preview < 2) i++;
        return fp_session_choose_until(s, i, f->candidates[i].n_preview > 1 ? 1 : 0, FP_BY_HUMAN, err);
    }
    case OP_TYPE: return fp_session_type_commit(s, "dragon", FP_BY_HUMAN, err);
    case OP_PREFIX: return fp_session_type_prefix(s, "b", err);
    case OP_CONTINUE: return fp_session_continue(s, FP_BY_HUMAN, err);
    case OP_UNDO: return fp_session_undo(s, err);
    case OP_GOTO: return fp_session_goto_fork(s, 0, err);
    case OP_FORK_AT: return fp_session_fork_at(s, fp_session_prompt_len(s) + 3, err);
    case OP_SETTINGS: {
        fp_settings st = *fp_session_settings(s);
        st.k = 5;
        st.lookahead = 6;
        return fp_session_set_settings(s, &st, err);
    }
    case OP_PREFETCHED:
        /* speculation first (no fault), then the choice adopts it */
        return fp_session_choose(s, 0, false, FP_BY_HUMAN, err);
    default: return FP_ERR_ARG;
    }
}

static void test_faults(fp_engine *e, fp_prefs *p) {
    char label[64];
    snprintf(label, sizeof label, "a failed change leaves the session as it was (%s)", p ? "with a profile" : "no profile");
    TEST(label);
    int failures = 0;
    void *blob = NULL;
    size_t blob_len = 0;
    if (p) blob = fp_prefs_save(p, &blob_len); /* every run starts from a copy of this profile */
    for (int o = 0; o < OP_COUNT; o++) {
        /* the reference: the change on a twin that never sees a fault */
        fp_prefs *tp = p ? fp_prefs_load(blob, blob_len, NULL) : NULL;
        fp_session *twin = setup(e, tp);
        CHECK(twin != NULL);
        if (!twin) { fp_prefs_free(tp); continue; }
        fp_error err = {0};
        if (o == OP_PREFETCHED) fp_session_prefetch(twin, 0, false, &err);
        fp_status want_st = apply(twin, (op)o, &err);
        CHECKF(want_st == FP_OK, "%s on the twin: %s", op_name[o], err.message);
        char *want = strdup(fp_session_text(twin));
        fp_session_free(twin);
        fp_prefs_free(tp);
        int n_failed = 0;
        for (int64_t n = 1; n < 400; n++) {
            fp_prefs *q = p ? fp_prefs_load(blob, blob_len, NULL) : NULL;
            fp_session *s = setup(e, q);
            if (!s) { CHECK(s != NULL); fp_prefs_free(q); break; }
            if (o == OP_PREFETCHED) {
                fp_session_prefetch(s, 0, false, &err);
                CHECK(fp_session_is_prefetched(s, 0, false));
            }
            snap before, after;
            snap_take(s, q, &before);
            e->fault_at = n;
            fp_status st = apply(s, (op)o, &err);
            bool hit = e->fault_at == 0;
            e->fault_at = 0;
            if (!hit) {
                /* the change ran without reaching the n-th decode: it must have succeeded */
                CHECKF(st == FP_OK, "%s: %s", op_name[o], err.message);
                CHECKF(strcmp(fp_session_text(s), want) == 0, "%s: the text differs from the twin's", op_name[o]);
                snap_free(&before);
                fp_session_free(s);
                fp_prefs_free(q);
                break;
            }
            n_failed++;
            /* an automatic decision after a person's may fail on its own: the
             * person's decision then stands, and the fork is left open */
            if (st == FP_OK) { snap_free(&before); fp_session_free(s); fp_prefs_free(q); continue; }
            CHECKF(st == FP_ERR_DECODE, "%s fault %lld: status %d (%s)", op_name[o], (long long)n, st, err.message);
            snap_take(s, q, &after);
            char why[256] = "";
            bool same = snap_equal(&before, &after, why, sizeof why);
            CHECKF(same, "%s fault at decode %lld: %s", op_name[o], (long long)n, why);
            failures += !same;
            char inv[256] = "";
            CHECKF(fpi_session_check(s, inv, sizeof inv), "%s fault %lld: %s", op_name[o], (long long)n, inv);
            /* and the same change now succeeds, as on the twin */
            st = apply(s, (op)o, &err);
            CHECKF(st == FP_OK, "%s after fault %lld: %s", op_name[o], (long long)n, err.message);
            if (o != OP_PREFETCHED) /* the prefetched outcome went with the failure: a direct choice now */
                CHECKF(strcmp(fp_session_text(s), want) == 0, "%s after fault %lld: the text differs from the twin's",
                       op_name[o], (long long)n);
            snap_free(&before);
            snap_free(&after);
            fp_session_free(s);
            fp_prefs_free(q);
        }
        /* undo and goto to a fork on the path decode nothing: no fault to inject */
        if (o != OP_UNDO && o != OP_GOTO && o != OP_PREFETCHED)
            CHECKF(n_failed > 0, "%s never reached a decode", op_name[o]);
        fprintf(stderr, "  %s: %d faults injected\n", op_name[o], n_failed);
        free(want);
    }
    free(blob);
    CHECK(failures == 0);
}

/* goto onto another branch must decode (the trunk holds the other path) */
static void test_goto_branch_fault(fp_engine *e) {
    TEST("goto onto another branch: a failed decode leaves the session as it was");
    fp_error err = {0};
    int faults = 0;
    for (int64_t n = 1; n < 50; n++) {
        fp_session *s = setup(e, NULL);
        if (!s) { CHECK(s != NULL); return; }
        int32_t first = fp_session_fork(s)->id;
        /* a second branch: back to fork 0, choose another word, run on */
        fp_session_goto_fork(s, 0, &err);
        fp_session_choose(s, fp_session_fork(s)->n_candidates - 1, false, FP_BY_HUMAN, &err);
        snap before, after;
        snap_take(s, NULL, &before);
        e->fault_at = n;
        fp_status st = fp_session_goto_fork(s, first, &err);
        bool hit = e->fault_at == 0;
        e->fault_at = 0;
        if (!hit) { CHECK(st == FP_OK); snap_free(&before); fp_session_free(s); break; }
        faults++;
        CHECK(st == FP_ERR_DECODE);
        snap_take(s, NULL, &after);
        char why[256] = "", inv[256] = "";
        CHECKF(snap_equal(&before, &after, why, sizeof why), "fault %lld: %s", (long long)n, why);
        CHECKF(fpi_session_check(s, inv, sizeof inv), "fault %lld: %s", (long long)n, inv);
        CHECK(fp_session_goto_fork(s, first, &err) == FP_OK && fp_session_fork(s)->id == first);
        snap_free(&before);
        snap_free(&after);
        fp_session_free(s);
    }
    CHECKF(faults > 0, "goto onto another branch decoded nothing");
}

/* An adapter change whose re-decode fails leaves the session consistent;
 * its next use decodes again and gives what a session without the fault gives. */
static void test_adapter_fault(fp_engine *e) {
    TEST("a failed re-decode after an adapter change is finished on next use");
    fp_error err = {0};
    int32_t ctx[64], chosen[8], rejected[8];
    int32_t nc = fp_tokenize(g_model, PROMPT, strlen(PROMPT), ctx, 64, true);
    int32_t nch = fp_tokenize(g_model, " dog", 4, chosen, 8, false);
    int32_t nrj = fp_tokenize(g_model, " girl", 5, rejected, 8, false);
    CHECK(nc > 0 && nc <= 64 && nch > 0 && nch <= 8 && nrj > 0 && nrj <= 8);
    fp_steer_pair pair = { ctx, nc, chosen, nch, rejected, nrj };
    fp_steer *v = fp_steer_compute(g_model, &pair, 1, 1, &err);
    CHECKF(v != NULL, "%s", err.message);
    if (!v) return;
    /* the reference: the change without a fault */
    fp_session *twin = setup(e, NULL);
    CHECK(twin && fp_engine_set_steer(e, v, 2.0f, &err) == FP_OK);
    CHECK(twin && fp_session_choose(twin, 0, false, FP_BY_HUMAN, &err) == FP_OK);
    char *want = twin ? strdup(fp_session_text(twin)) : strdup("");
    fp_session_free(twin);
    CHECK(fp_engine_set_steer(e, NULL, 0.0f, &err) == FP_OK);
    int faults = 0;
    for (int64_t n = 1; n < 50; n++) {
        fp_session *s = setup(e, NULL);
        if (!s) break;
        e->fault_at = n;
        fp_status st = fp_engine_set_steer(e, v, 2.0f, &err);
        bool hit = e->fault_at == 0;
        e->fault_at = 0;
        char inv[256] = "";
        CHECKF(fpi_session_check(s, inv, sizeof inv), "fault %lld: %s", (long long)n, inv);
        if (!hit) { CHECK(st == FP_OK); fp_session_free(s); fp_engine_set_steer(e, NULL, 0.0f, &err); break; }
        faults++;
        CHECK(st == FP_ERR_DECODE);
        CHECKF(fp_session_choose(s, 0, false, FP_BY_HUMAN, &err) == FP_OK, "%s", err.message);
        CHECKF(strcmp(fp_session_text(s), want) == 0, "fault %lld: text differs from the unfaulted change", (long long)n);
        fp_session_free(s);
        CHECK(fp_engine_set_steer(e, NULL, 0.0f, &err) == FP_OK);
    }
    CHECK(faults > 0);
    free(want);
    fp_steer_free(v);
}

/* ------------------------------------------------------------- prefetch */

/* The same fork up to the last bits of float noise: the same candidates with
 * the same probabilities and preferences (within 2e-3 and 1e-2), in the same
 * order except where two preferences are that close, and the same preview
 * for the first one. */
static bool same_fork(const fp_fork *a, const fp_fork *b, char *why, size_t cap) {
    why[0] = 0;
    if (!a || !b) { snprintf(why, cap, "one has no fork"); return a == b; }
    if (a->n_candidates != b->n_candidates) { snprintf(why, cap, "%d vs %d candidates", a->n_candidates, b->n_candidates); return false; }
    for (int32_t i = 0; i < a->n_candidates; i++) {
        const fp_candidate *x = &a->candidates[i], *y = NULL;
        int32_t j = 0;
        for (; j < b->n_candidates; j++) if (strcmp(b->candidates[j].text, x->text) == 0) { y = &b->candidates[j]; break; }
        if (!y) { snprintf(why, cap, "candidate %d '%.60s' is missing", i, x->text); return false; }
        if (fabsf(x->pref - y->pref) > 1e-2f || fabsf(x->prob - y->prob) > 2e-3f) {
            snprintf(why, cap, "candidate %d '%.60s': pref %g vs %g, prob %g vs %g", i, x->text, x->pref, y->pref, x->prob, y->prob);
            return false;
        }
        if (j != i && fabsf(b->candidates[i].pref - x->pref) > 1e-2f) {
            snprintf(why, cap, "candidate %d '%.60s' is at %d", i, x->text, j);
            return false;
        }
    }
    if (a->n_candidates > 0 && strcmp(a->candidates[0].preview, b->candidates[0].preview) != 0) {
        snprintf(why, cap, "the first candidate's preview differs");
        return false;
    }
    return true;
}

/* At each fork of a story, the same decision twice from the same state: in
 * the session, adopted from prefetch; and on a copy restored from the saved
 * session with a copy of the profile, computed directly. The two must agree:
 * text, events (who decided, automatic decisions included), the next fork
 * with its order, probabilities and preferences. The copy's KV cells sit
 * elsewhere in the cache, so probabilities may differ in the last bits
 * (the same 2e-3 tolerance as test_engine's prefetch test). */
static void test_prefetch_with_profile(fp_engine *e) {
    TEST("with a profile, a prefetched choice and a direct one give identical states");
    fp_error err = {0};
    fp_prefs *p = trained(e);
    fp_settings st = settings();
    fp_session *a = fp_session_new(e, PROMPT, &st, &err);
    CHECK(a != NULL);
    if (!a) { fp_prefs_free(p); return; }
    fp_session_set_prefs(a, p, &err);
    int adopted = 0, autos = 0, compared = 0;
    for (int step = 0; step < 30 && fp_session_state(a) == FP_STATE_AT_FORK; step++) {
        int32_t pick = vivid_pick(fp_session_fork(a));
        char *saved = fp_session_save(a);
        size_t blob_len = 0;
        void *blob = fp_prefs_save(p, &blob_len);
        fp_prefs *q = fp_prefs_load(blob, blob_len, NULL);
        free(blob);
        fp_session *b = saved ? fp_session_restore(e, saved, &err) : NULL;
        free(saved);
        CHECKF(b != NULL, "restore: %s", err.message);
        if (!b || !q) { fp_session_free(b); fp_prefs_free(q); break; }
        fp_session_set_prefs(b, q, &err);
        int32_t ev0 = fp_session_n_events(a);
        for (int32_t i = 0; i < 3 && i < fp_session_fork(a)->n_candidates; i++) fp_session_prefetch(a, i, false, &err);
        bool pre = fp_session_is_prefetched(a, pick, false);
        adopted += pre;
        CHECK(fp_session_choose(a, pick, false, FP_BY_HUMAN, &err) == FP_OK);
        CHECK(fp_session_choose(b, pick, false, FP_BY_HUMAN, &err) == FP_OK);
        if (pre) {
            compared++;
            char why[256] = "";
            CHECKF(strcmp(fp_session_text(a), fp_session_text(b)) == 0, "step %d: texts differ", step);
            CHECK(fp_session_state(a) == fp_session_state(b));
            CHECKF(same_fork(fp_session_fork(a), fp_session_fork(b), why, sizeof why), "step %d: %s", step, why);
            int32_t na = fp_session_n_events(a), nb = fp_session_n_events(b);
            int32_t nb0 = nb - (na - ev0);
            CHECKF(nb0 >= 0 && nb - nb0 == na - ev0, "step %d: %d vs %d new events", step, na - ev0, nb - nb0);
            for (int32_t i = 0; nb0 >= 0 && i < na - ev0; i++) {
                const fp_fork *x = fp_session_event(a, ev0 + i), *y = fp_session_event(b, nb0 + i);
                CHECKF(x->chooser == y->chooser && x->choice_index == y->choice_index &&
                       strcmp(x->choice_text, y->choice_text) == 0, "step %d: event %d differs", step, i);
                autos += i > 0 && x->chooser == FP_BY_AUTO;
            }
        }
        fp_session_set_prefs(b, NULL, NULL);
        fp_session_free(b);
        fp_prefs_free(q);
    }
    fprintf(stderr, "  %d choices adopted from prefetch and compared, %d automatic decisions after them\n", compared, autos);
    CHECK(adopted >= 5 && compared == adopted);
    CHECKF(autos > 0, "no automatic decision: the profile is not confident enough for this test");
    fp_session_set_prefs(a, NULL, NULL);
    fp_session_free(a);
    fp_prefs_free(p);
}

/* ------------------------------------------------- register failure */

static void test_engine_register(void) {
    TEST("the engine tracks every session or refuses it");
    fp_error err = {0};
    fp_engine_params ep = fp_engine_default_params();
    ep.n_threads = 1;
    ep.n_seq_max = 4;
    fp_engine *e = fp_engine_new(g_model, &ep, &err);
    CHECK(e != NULL);
    if (!e) return;
    fp_session *s[6] = {0};
    int made = 0;
    for (int i = 0; i < 6; i++) {
        s[i] = fp_session_new(e, PROMPT, NULL, &err);
        if (s[i]) made++;
        else CHECKF(err.code == FP_ERR_CAPACITY, "session %d: %s", i, err.message);
    }
    CHECK(made >= 1 && made <= 4);
    CHECK(e->n_users == made);
    for (int i = 0; i < 6; i++) fp_session_free(s[i]);
    CHECK(e->n_users == 0);
    fp_engine_free(e);
}

int main(void) {
    fp_error err = {0};
    g_model = fp_model_load(h_model_path("stories260K.gguf"), NULL, &err);
    if (!g_model) { fprintf(stderr, "%s\n", err.message); printf("0 passed, 1 failed\n"); return 1; }
    fp_engine_params ep = fp_engine_default_params();
    ep.n_threads = 1;
    fp_engine *e = fp_engine_new(g_model, &ep, &err);
    if (!e) { fprintf(stderr, "%s\n", err.message); printf("0 passed, 1 failed\n"); return 1; }
    test_faults(e, NULL);
    fp_prefs *p = trained(e);
    test_faults(e, p);
    fp_prefs_free(p);
    test_goto_branch_fault(e);
    test_adapter_fault(e);
    test_prefetch_with_profile(e);
    test_engine_register();
    fp_engine_free(e);
    fp_model_free(g_model);
    return h_finish();
}
