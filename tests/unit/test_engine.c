/*
 * test_engine.c — the fork engine on the real stories260K model.
 *
 * Covers: candidate probabilities, word grouping and merging, batched
 * previews against one-branch-at-a-time previews, commits that decode no
 * accepted token twice, exact undo, fork budget, seeded determinism,
 * pointing into a preview (fp_session_choose_until).
 * White-box where the property is about internals (decode tracing).
 */
#include "core/internal.h"
#include "core/testing.h"
#include "harness.h"

#include <ctype.h>
#include <math.h>

static fp_model *g_model;

static fp_engine *new_engine(int32_t n_seq) {
    fp_error err = {0};
    fp_engine_params ep = fp_engine_default_params();
    ep.n_threads = 1;
    ep.n_seq_max = (uint32_t)n_seq;
    fp_engine *e = fp_engine_new(g_model, &ep, &err);
    if (!e) fprintf(stderr, "engine: %s\n", err.message);
    return e;
}

static const char *PROMPT = "Once upon a time, there was a little";

static fp_settings eager_settings(void) {
    fp_settings st = fp_default_settings();
    st.fork_entropy_bits = 1.5f;
    st.fork_top1_below = 0.6f;
    st.min_gap_tokens = 2;
    st.max_forks_per_sentence = 0;
    return st;
}

static const char *strip(const char *t) { while (*t == ' ' || *t == '\n') t++; return t; }

/* ---------------------------------------------------------------- tests */

static void test_probabilities(fp_engine *e) {
    TEST("candidate probabilities are valid and sorted");
    fp_error err = {0};
    fp_settings st = eager_settings();
    for (int g = FP_GRAN_TOKEN; g <= FP_GRAN_PHRASE; g++) {
        st.granularity = (fp_granularity)g;
        fp_session *s = fp_session_new(e, PROMPT, &st, &err);
        CHECKF(s != NULL, "%s", err.message);
        if (!s) continue;
        for (int step = 0; step < 6 && fp_session_state(s) == FP_STATE_AT_FORK; step++) {
            const fp_fork *f = fp_session_fork(s);
            CHECK(f->n_candidates >= 1 && f->n_candidates <= st.k);
            double sum = 0;
            for (int32_t i = 0; i < f->n_candidates; i++) {
                float p = f->candidates[i].prob;
                CHECKF(p > 0.0f && p <= 1.0f, "p=%g", p);
                if (i > 0) CHECKF(p <= f->candidates[i - 1].prob, "unsorted at %d", i);
                sum += p;
            }
            CHECKF(f->other >= 0.0f && fabs(sum + f->other - 1.0) < 1e-3, "sum %g other %g", sum, f->other);
            CHECK(f->unc.entropy_bits >= 0.0f && f->unc.top1 > 0.0f && f->unc.top1 <= 1.0f);
            CHECK(f->unc.margin >= 0.0f && f->unc.margin <= f->unc.top1);
            /* the fork really is uncertain under the settings */
            CHECK(f->unc.entropy_bits >= st.fork_entropy_bits || f->unc.top1 < st.fork_top1_below);
            if (g == FP_GRAN_TOKEN) for (int32_t i = 0; i < f->n_candidates; i++) CHECK(f->candidates[i].n_tokens == 1 || f->candidates[i].is_eog);
            CHECK(fp_session_choose(s, f->n_candidates - 1, false, FP_BY_SCRIPT, &err) == FP_OK);
        }
        fp_session_free(s);
    }
}

static void test_words(fp_engine *e) {
    TEST("word grouping: whole words, merged, sharing first tokens");
    fp_error err = {0};
    fp_settings st = eager_settings();
    fp_session *s = fp_session_new(e, PROMPT, &st, &err);
    CHECKF(s != NULL, "%s", err.message);
    if (!s) return;
    int multi = 0, shared_first = 0, forks = 0;
    const fp_model *m = g_model;
    for (int step = 0; step < 12 && fp_session_state(s) == FP_STATE_AT_FORK; step++, forks++) {
        const fp_fork *f = fp_session_fork(s);
        for (int32_t i = 0; i < f->n_candidates; i++) {
            const fp_candidate *c = &f->candidates[i];
            if (c->is_eog) continue;
            /* the tokens spell the text */
            char buf[FP_MAX_TEXT] = "";
            size_t len = 0;
            for (int32_t t = 0; t < c->n_tokens; t++) {
                int32_t n;
                const char *pc = fpi_piece(m, c->tokens[t], &n);
                memcpy(buf + len, pc, (size_t)n);
                len += (size_t)n;
            }
            buf[len] = 0;
            CHECKF(strcmp(buf, c->text) == 0, "'%s' vs '%s'", buf, c->text);
            /* a word: after its first token no token starts a new word */
            for (int32_t t = 1; t < c->n_tokens; t++) CHECK(!(m->tok_flags[c->tokens[t]] & FP_TOK_WORD_START));
            if (c->n_tokens > 1) multi++;
            for (int32_t j = 0; j < i; j++) {
                const fp_candidate *d = &f->candidates[j];
                /* merged: no two candidates spell the same word, with or without a leading space */
                CHECKF(strcmp(strip(c->text), strip(d->text)) != 0, "duplicate word '%s'", c->text);
                if (!d->is_eog && d->tokens[0] == c->tokens[0]) shared_first++;
            }
        }
        CHECK(fp_session_choose(s, 0, false, FP_BY_SCRIPT, &err) == FP_OK);
    }
    CHECKF(forks >= 5, "only %d forks", forks);
    CHECKF(multi > 0, "no multi-token words");
    CHECKF(shared_first > 0, "no two words share a first token");
    fp_session_free(s);
}

/* One branch at a time, in a context of its own: the reference previews. */
typedef struct { fp_engine *e; } ref_t;

/* The continuation's rule, one branch at a time: the session's sampler chain
 * (penalties with the prefix as history), fpi_pick_next, greedy. */
static int32_t ref_pick(struct llama_sampler *chain, fp_dist *d, const float *row, bool word_end) {
    fpi_dist_compute(d, row, g_model->n_vocab, chain, 2);
    int32_t t = fpi_pick_next(g_model, d, word_end, NULL, "", 0);
    if (t >= 0) llama_sampler_accept(chain, t);
    return t;
}

/* Greedy preview after prefix tokens, decoding one token per call. */
static int32_t ref_preview(fp_engine *r, const fp_settings *st, const int32_t *prefix, int32_t n, int32_t L, int32_t *out) {
    llama_memory_t mem = fpi_engine_mem(r);
    llama_memory_seq_rm(mem, 0, -1, -1);
    if (fpi_engine_decode_span(r, 0, prefix, n, 0, true, NULL) != FP_OK) return -1;
    struct llama_sampler *chain = fpi_chain_new(st, g_model, NULL, NULL);
    fp_dist d;
    fpi_dist_init(&d, g_model->n_vocab);
    for (int32_t i = n - st->repeat_last_n > 0 ? n - st->repeat_last_n : 0; i < n; i++) llama_sampler_accept(chain, prefix[i]);
    int32_t np = 0;
    const float *row = llama_get_logits_ith(r->ctx, -1);
    int32_t last = prefix[n - 1];
    int32_t t = ref_pick(chain, &d, row, !(g_model->tok_flags[last] & FP_TOK_WORD_END));
    bool ended = false;
    while (t >= 0 && !(g_model->tok_flags[t] & FP_TOK_EOG)) {
        out[np++] = t;
        if ((g_model->tok_flags[t] & FP_TOK_PHRASE_END) && np >= 4) { ended = true; break; }
        if (np >= L) break;
        fpi_batch_clear(r);
        fpi_batch_add(r, t, n + np - 1, 0, true);
        if (fpi_engine_decode(r, NULL) != FP_OK) { np = -1; break; }
        t = ref_pick(chain, &d, llama_get_logits_ith(r->ctx, -1), false);
    }
    llama_sampler_free(chain);
    fpi_dist_free(&d);
    if (np < 0) return -1;
    if (t < 0 || (t >= 0 && (g_model->tok_flags[t] & FP_TOK_EOG))) ended = true;
    if (!ended && np >= L) { /* trim a trailing partial word, as the engine does */
        int32_t cut = np - 1;
        while (cut > 0 && !(g_model->tok_flags[out[cut]] & FP_TOK_WORD_START) && !(g_model->tok_flags[out[cut - 1]] & FP_TOK_WORD_END)) cut--;
        if (cut > 0) np = cut;
    }
    return np;
}

static void test_previews(fp_engine *e) {
    TEST("batched previews equal one-branch-at-a-time previews");
    fp_error err = {0};
    fp_engine *r = new_engine(2);
    CHECK(r != NULL);
    if (!r) return;
    fp_settings st = eager_settings();
    st.lookahead = 10;
    fp_session *s = fp_session_new(e, PROMPT, &st, &err);
    CHECKF(s != NULL, "%s", err.message);
    int compared = 0;
    for (int step = 0; s && step < 5 && fp_session_state(s) == FP_STATE_AT_FORK; step++) {
        const fp_fork *f = fp_session_fork(s);
        int32_t prefix[4096];
        int32_t n = s->n_path;
        memcpy(prefix, s->path_tok, sizeof(int32_t) * (size_t)n);
        for (int32_t i = 0; i < f->n_candidates; i++) {
            const fp_candidate *c = &f->candidates[i];
            if (c->is_eog) continue;
            memcpy(prefix + n, c->tokens, sizeof(int32_t) * (size_t)c->n_tokens);
            int32_t out[FP_MAX_PREVIEW];
            int32_t np = ref_preview(r, &st, prefix, n + c->n_tokens, st.lookahead, out);
            CHECKF(np == c->n_preview, "fork %d cand %d: %d vs %d tokens ('%s')", f->id, i, np, c->n_preview, c->preview);
            bool same = np == c->n_preview && memcmp(out, c->preview_tokens, sizeof(int32_t) * (size_t)np) == 0;
            CHECKF(same, "fork %d candidate '%s': preview differs ('%s')", f->id, c->text, c->preview);
            compared++;
        }
        fp_session_choose(s, step % f->n_candidates, step % 2 == 1, FP_BY_SCRIPT, &err);
    }
    CHECKF(compared >= 20, "compared only %d previews", compared);
    fp_session_free(s);
    fp_engine_free(r);
}

/* Decode tracing: how often each trunk position went through llama_decode. */
typedef struct { int32_t seq; int32_t count[8192]; int32_t batches_with_trunk; } trace_t;

static void trace_cb(void *ud, const struct llama_batch *b) {
    trace_t *t = ud;
    for (int32_t i = 0; i < b->n_tokens; i++)
        if (b->seq_id[i][0] == t->seq && b->pos[i] >= 0 && b->pos[i] < 8192) t->count[b->pos[i]]++;
}

static void test_no_double_decode(fp_engine *e) {
    TEST("commit decodes no accepted token twice");
    fp_error err = {0};
    fp_settings st = eager_settings();
    static trace_t tr;
    memset(&tr, 0, sizeof tr);
    e->trace = trace_cb;
    e->trace_ud = &tr;
    tr.seq = 0;
    fp_session *s = fp_session_new(e, PROMPT, &st, &err);
    CHECKF(s != NULL, "%s", err.message);
    if (!s) { e->trace = NULL; return; }
    tr.seq = s->trunk_seq;
    /* the prompt went in before the trunk id was known: count from here, prompt excluded */
    memset(tr.count, 0, sizeof tr.count);
    int32_t np = s->nodes[0].n;
    int32_t copied_from_branch = 0;
    for (int step = 0; step < 10 && fp_session_state(s) == FP_STATE_AT_FORK; step++) {
        const fp_fork *f = fp_session_fork(s);
        int32_t idx = step % f->n_candidates;
        bool with_preview = step % 2 == 0;
        int32_t at = s->n_path;
        const fp_candidate *c = &f->candidates[idx];
        int32_t n_accept = c->n_tokens + (with_preview ? c->n_preview : 0);
        if (c->is_eog) break;
        uint64_t before = fpi_engine_decoded_tokens(e);
        CHECK(fp_session_choose(s, idx, with_preview, FP_BY_SCRIPT, &err) == FP_OK);
        (void)before;
        /* the accepted tokens: at most one of them (the last preview token) went through the trunk */
        int32_t decoded_here = 0;
        for (int32_t p = at; p < at + n_accept; p++) decoded_here += tr.count[p];
        CHECKF(decoded_here <= (with_preview && c->n_preview > 0 ? 1 : 0), "step %d: %d accepted tokens decoded in the trunk", step, decoded_here);
        copied_from_branch += n_accept - decoded_here;
    }
    for (int32_t p = np; p < s->n_path; p++) CHECKF(tr.count[p] <= 1, "position %d decoded %d times", p, tr.count[p]);
    CHECK(copied_from_branch > 10);
    /* the trunk really holds every token of the path */
    CHECK(llama_memory_seq_pos_max(fpi_engine_mem(e), s->trunk_seq) == s->n_path - 1);
    e->trace = NULL;
    fp_session_free(s);
}

static bool same_candidates(const fp_candidate *a, int32_t na, const fp_candidate *b, int32_t nb) {
    if (na != nb) return false;
    for (int32_t i = 0; i < na; i++) {
        if (strcmp(a[i].text, b[i].text) || a[i].prob != b[i].prob || strcmp(a[i].preview, b[i].preview)) return false;
        if (a[i].n_tokens != b[i].n_tokens || memcmp(a[i].tokens, b[i].tokens, sizeof(int32_t) * (size_t)a[i].n_tokens)) return false;
    }
    return true;
}

/* The same cloud up to float noise: two sessions' KV cells sit at different
 * places of the shared cache, so attention sums in another order. */
static bool close_candidates(const fp_candidate *a, int32_t na, const fp_candidate *b, int32_t nb) {
    if (na != nb) return false;
    for (int32_t i = 0; i < na; i++) {
        if (strcmp(a[i].text, b[i].text) || strcmp(a[i].preview, b[i].preview) || fabsf(a[i].prob - b[i].prob) > 2e-3f) return false;
    }
    return true;
}

/* Both sessions recorded the same positions (tokens, reasons, fork ids). */
static bool s_pos_equal(const fp_session *a, const fp_session *b) {
    if (fp_session_n_positions(a) != fp_session_n_positions(b)) return false;
    for (int32_t i = 0; i < fp_session_n_positions(a); i++) {
        const fp_position *x = fp_session_position(a, i), *y = fp_session_position(b, i);
        if (x->token != y->token || x->reason != y->reason || x->fork_id != y->fork_id || x->by != y->by) return false;
    }
    return true;
}

static void test_undo(fp_engine *e) {
    TEST("undo and goto restore identical candidates");
    fp_error err = {0};
    fp_settings st = eager_settings();
    fp_session *s = fp_session_new(e, PROMPT, &st, &err);
    CHECKF(s != NULL, "%s", err.message);
    if (!s) return;
    CHECK(fp_session_undo(s, &err) == FP_ERR_STATE); /* nothing decided yet */
    const fp_fork *f0 = fp_session_fork(s);
    int32_t id0 = f0->id, n0 = f0->n_candidates;
    fp_candidate saved[64];
    memcpy(saved, f0->candidates, sizeof(fp_candidate) * (size_t)n0);
    char text0[4096];
    snprintf(text0, sizeof text0, "%s", fp_session_text(s));
    CHECK(fp_session_choose(s, 1, true, FP_BY_SCRIPT, &err) == FP_OK);
    CHECK(fp_session_choose(s, 0, false, FP_BY_SCRIPT, &err) == FP_OK);
    CHECK(fp_session_undo(s, &err) == FP_OK);
    CHECK(fp_session_undo(s, &err) == FP_OK);
    const fp_fork *f = fp_session_fork(s);
    CHECK(f && f->id == id0);
    CHECK(f && same_candidates(saved, n0, f->candidates, f->n_candidates));
    CHECK(strcmp(text0, fp_session_text(s)) == 0);
    CHECK(s->n_past == s->n_path && llama_memory_seq_pos_max(fpi_engine_mem(e), s->trunk_seq) == s->n_path - 1);
    /* a different branch, then back to the first fork through goto */
    CHECK(fp_session_choose(s, 2, false, FP_BY_SCRIPT, &err) == FP_OK);
    for (int i = 0; i < 3 && fp_session_state(s) == FP_STATE_AT_FORK; i++) fp_session_continue(s, FP_BY_SCRIPT, &err);
    CHECK(fp_session_goto_fork(s, id0, &err) == FP_OK);
    f = fp_session_fork(s);
    CHECK(f && same_candidates(saved, n0, f->candidates, f->n_candidates));
    /* reopening by text offset finds the same fork */
    CHECK(fp_session_choose(s, 0, false, FP_BY_SCRIPT, &err) == FP_OK);
    CHECK(fp_session_fork_at(s, (size_t)saved[0].text[0] == 0 ? 0 : strlen(text0), &err) == FP_OK);
    f = fp_session_fork(s);
    CHECK(f && f->id == id0 && same_candidates(saved, n0, f->candidates, f->n_candidates));
    /* a forced fork in the middle of automatic text, and the tree keeps every branch */
    size_t mid = fp_session_text_len(s);
    CHECK(fp_session_choose(s, 0, true, FP_BY_SCRIPT, &err) == FP_OK);
    CHECK(fp_session_fork_at(s, mid + 3, &err) == FP_OK);
    f = fp_session_fork(s);
    CHECK(f && f->reason == FP_REASON_FORCED && f->n_candidates > 0);
    char *tree = fp_session_tree_json(s);
    CHECK(tree && strstr(tree, "\"nodes\"") && strstr(tree, "\"forks\""));
    free(tree);
    /* the event log kept every decision, including undone branches */
    CHECK(fp_session_n_events(s) >= 5);
    fp_session_free(s);
}


static void cancel_on_decode(void *ud, const struct llama_batch *b) {
    (void)b;
    fp_engine_cancel(ud);
}

static void test_prefetch(fp_engine *e) {
    TEST("prefetch: the next fork without decoding, identical to computing it; cancel");
    fp_error err = {0};
    fp_settings st = eager_settings();
    fp_session *a = fp_session_new(e, PROMPT, &st, &err), *b = fp_session_new(e, PROMPT, &st, &err);
    CHECK(a && b);
    if (!a || !b) { fp_session_free(a); fp_session_free(b); return; }
    for (int step = 0; step < 6 && fp_session_state(a) == FP_STATE_AT_FORK; step++) {
        int32_t idx = step % 2, n = fp_session_fork(a)->n_candidates;
        bool wp = step % 3 == 0;
        if (idx >= n) idx = 0;
        CHECK(fp_session_prefetch(a, idx, wp, &err) == FP_OK);
        CHECK(fp_session_prefetch(a, (idx + 1) % n, !wp, &err) == FP_OK);
        CHECK(fp_session_is_prefetched(a, idx, wp));
        uint64_t calls = fpi_engine_decode_calls(e);
        CHECKF(fp_session_choose(a, idx, wp, FP_BY_HUMAN, &err) == FP_OK, "%s", err.message);
        CHECKF(fpi_engine_decode_calls(e) == calls, "adopting decoded %d times", (int)(fpi_engine_decode_calls(e) - calls));
        CHECK(fp_session_choose(b, idx, wp, FP_BY_HUMAN, &err) == FP_OK);
        CHECK(strcmp(fp_session_text(a), fp_session_text(b)) == 0);
        CHECK(fp_session_state(a) == fp_session_state(b));
        const fp_fork *fa = fp_session_fork(a), *fb = fp_session_fork(b);
        CHECK((fa == NULL) == (fb == NULL));
        if (fa && fb) CHECKF(fa->id == fb->id && close_candidates(fa->candidates, fa->n_candidates, fb->candidates, fb->n_candidates),
                             "fork %d vs %d: '%s' %.9g '%s' vs '%s' %.9g '%s'", fa->id, fb->id, fa->candidates[0].text, fa->candidates[0].prob,
                             fa->candidates[0].preview, fb->candidates[0].text, fb->candidates[0].prob, fb->candidates[0].preview);
        CHECK(fp_session_n_events(a) == fp_session_n_events(b));
        CHECK(s_pos_equal(a, b));
        CHECK(a->n_past == a->n_path && llama_memory_seq_pos_max(fpi_engine_mem(e), a->trunk_seq) == a->n_path - 1);
    }
    /* the adopted live branches still serve a commit without decoding the word */
    if (fp_session_state(a) == FP_STATE_AT_FORK) {
        CHECK(fp_session_prefetch(a, 0, false, &err) == FP_OK);
        CHECK(fp_session_choose(a, 0, false, FP_BY_HUMAN, &err) == FP_OK);
        CHECK(fp_session_choose(b, 0, false, FP_BY_HUMAN, &err) == FP_OK);
        CHECK(strcmp(fp_session_text(a), fp_session_text(b)) == 0);
    }
    /* a change discards what was prefetched */
    if (fp_session_state(a) == FP_STATE_AT_FORK) {
        CHECK(fp_session_prefetch(a, 0, false, &err) == FP_OK);
        CHECK(fp_session_type_prefix(a, "b", &err) == FP_OK);
        CHECK(!fp_session_is_prefetched(a, 0, false));
        CHECK(fp_session_type_prefix(a, "", &err) == FP_OK);
        /* cancelled in its first decode: nothing kept, the session unchanged and working */
        char before[4096];
        snprintf(before, sizeof before, "%s", fp_session_text(a));
        e->trace = cancel_on_decode;
        e->trace_ud = e;
        CHECK(fp_session_prefetch(a, 0, true, &err) == FP_ERR_ABORTED);
        e->trace = NULL;
        CHECK(fp_session_prefetch(a, 0, true, &err) == FP_ERR_ABORTED); /* still cancelled */
        fp_engine_clear_cancel(e);
        CHECK(!fp_session_is_prefetched(a, 0, true));
        CHECK(strcmp(before, fp_session_text(a)) == 0);
        CHECK(fp_session_choose(a, 0, true, FP_BY_HUMAN, &err) == FP_OK);
        CHECK(fp_session_choose(b, 0, true, FP_BY_HUMAN, &err) == FP_OK);
        CHECK(strcmp(fp_session_text(a), fp_session_text(b)) == 0);
    }
    CHECK(fp_session_prefetch(a, 99, false, &err) == FP_ERR_ARG || fp_session_state(a) == FP_STATE_ENDED);
    fp_session_free(a);
    fp_session_free(b);
}


static void test_text_edges(fp_engine *e) {
    TEST("typed punctuation, fork inside the last token, chosen words stay whole");
    fp_error err = {0};
    fp_settings st = eager_settings();
    st.fork_top1_below = 1.01f; /* a fork at every word */
    st.min_gap_tokens = 1;
    fp_session *s = fp_session_new(e, "Once upon a time", &st, &err);
    CHECK(s != NULL);
    if (!s) return;
    /* "," right after a word: no space in between, whatever the tokenizer prefers */
    CHECK(fp_session_type_commit(s, ",", FP_BY_HUMAN, &err) == FP_OK);
    CHECK(strncmp(fp_session_text(s), "Once upon a time,", 17) == 0);
    /* a word taken alone is not extended by what follows */
    for (int i = 0; i < 12 && fp_session_state(s) == FP_STATE_AT_FORK; i++) {
        const fp_fork *f = fp_session_fork(s);
        int32_t idx = i % f->n_candidates;
        const fp_candidate *c = &f->candidates[idx];
        if (c->is_eog) idx = 0, c = &f->candidates[0];
        if (c->is_eog) break;
        size_t at = fp_session_text_len(s) + strlen(c->text);
        bool alnum_end = isalnum((unsigned char)c->text[strlen(c->text) - 1]);
        CHECK(fp_session_choose(s, idx, false, FP_BY_HUMAN, &err) == FP_OK);
        if (alnum_end && fp_session_text_len(s) > at)
            CHECKF(!isalnum((unsigned char)fp_session_text(s)[at]), "'%s' was extended: '%.20s'", c->text, fp_session_text(s) + at - strlen(c->text));
    }
    /* an offset inside the last token cuts that token */
    if (fp_session_state(s) == FP_STATE_AT_FORK) {
        int32_t n = fp_session_n_positions(s);
        size_t last = fp_session_position_offset(s, n - 1), len = fp_session_text_len(s);
        if (len - last >= 2) {
            CHECK(fp_session_fork_at(s, last + 1, &err) == FP_OK);
            CHECK(fp_session_text_len(s) == last);
        }
    }
    fp_session_free(s);
}

static void test_budget(fp_engine *e) {
    TEST("fork budget: gap and per-sentence limits, reasons recorded");
    fp_error err = {0};
    fp_settings st = eager_settings();
    st.fork_entropy_bits = 0.5f; /* almost every position is uncertain */
    st.min_gap_tokens = 5;
    st.max_forks_per_sentence = 1;
    st.max_tokens = 120;
    fp_session *s = fp_session_new(e, PROMPT, &st, &err);
    CHECKF(s != NULL, "%s", err.message);
    if (!s) return;
    while (fp_session_state(s) == FP_STATE_AT_FORK) CHECK(fp_session_continue(s, FP_BY_SCRIPT, &err) == FP_OK);
    int32_t n = fp_session_n_positions(s), last_fork = -1000, gaps = 0, sentences = 0, forks = 0;
    int32_t in_sentence = 0;
    for (int32_t i = 0; i < n; i++) {
        const fp_position *p = fp_session_position(s, i);
        if (p->reason == FP_REASON_BUDGET_GAP) gaps++;
        if (p->reason == FP_REASON_BUDGET_SENTENCE) sentences++;
        if (p->fork_id >= 0) {
            forks++;
            CHECKF(i - last_fork >= st.min_gap_tokens, "forks at %d and %d", last_fork, i);
            last_fork = i;
            in_sentence++;
            CHECKF(in_sentence <= st.max_forks_per_sentence, "%d forks in one sentence", in_sentence);
        }
        if (g_model->tok_flags[p->token] & FP_TOK_SENT_END) in_sentence = 0;
        CHECK(p->reason <= FP_REASON_IN_CHOICE);
    }
    CHECKF(forks >= 3, "%d forks", forks);
    CHECKF(gaps > 0 && sentences > 0, "gap %d sentence %d", gaps, sentences);
    fp_session_free(s);

    /* no uncertainty test enabled: no fork at all */
    st.fork_entropy_bits = 0; st.fork_top1_below = 0; st.fork_margin_below = 0; st.max_tokens = 40;
    s = fp_session_new(e, PROMPT, &st, &err);
    CHECK(s && fp_session_state(s) == FP_STATE_ENDED && fp_session_n_events(s) == 0);
    if (s) for (int32_t i = 0; i < fp_session_n_positions(s); i++) CHECK(fp_session_position(s, i)->reason == FP_REASON_CONFIDENT);
    fp_session_free(s);
}

static char *run_scripted(fp_engine *e, uint32_t seed) {
    fp_error err = {0};
    fp_settings st = eager_settings();
    st.sample_auto = true;
    st.seed = seed;
    st.max_tokens = 80;
    fp_session *s = fp_session_new(e, PROMPT, &st, &err);
    if (!s) return NULL;
    for (int i = 0; fp_session_state(s) == FP_STATE_AT_FORK && i < 50; i++)
        fp_session_choose(s, i % 3 < fp_session_fork(s)->n_candidates ? i % 3 : 0, i % 2, FP_BY_SCRIPT, &err);
    size_t cap = 1 << 16;
    char *out = malloc(cap);
    snprintf(out, cap, "%s", fp_session_text(s));
    for (int32_t i = 0; i < fp_session_n_events(s); i++) {
        char *j = fp_fork_to_json(s, fp_session_event(s, i));
        /* the time taken differs between runs; everything before it must not */
        char *ms = j ? strstr(j, ",\"ms\":") : NULL;
        if (ms) *ms = 0;
        if (j) { strncat(out, j, cap - strlen(out) - 1); free(j); }
    }
    fp_session_free(s);
    return out;
}

static void test_determinism(fp_engine *e) {
    TEST("seeded runs are deterministic");
    char *a = run_scripted(e, 7), *b = run_scripted(e, 7), *c = run_scripted(e, 8);
    CHECK(a && b && c);
    if (a && b) CHECK(strcmp(a, b) == 0);
    if (a && c) CHECK(strcmp(a, c) != 0);
    free(a); free(b); free(c);
}

static void test_save_restore(fp_engine *e) {
    TEST("a saved session restores to the same text, tree and fork");
    fp_error err = {0};
    fp_settings st = eager_settings();
    fp_session *s = fp_session_new(e, PROMPT, &st, &err);
    CHECK(s != NULL);
    if (!s) return;
    fp_session_choose(s, 1, true, FP_BY_HUMAN, &err);
    fp_session_type_commit(s, "dragon", FP_BY_HUMAN, &err);
    fp_session_undo(s, &err);
    fp_session_choose(s, 0, false, FP_BY_HUMAN, &err);
    char *saved = fp_session_save(s);
    CHECK(saved != NULL);
    fp_session *r = fp_session_restore(e, saved, &err);
    CHECKF(r != NULL, "%s", err.message);
    if (r) {
        CHECK(strcmp(fp_session_text(s), fp_session_text(r)) == 0);
        CHECK(fp_session_state(s) == fp_session_state(r));
        const fp_fork *a = fp_session_fork(s), *b = fp_session_fork(r);
        CHECK((a == NULL) == (b == NULL));
        if (a && b) CHECK(a->id == b->id && same_candidates(a->candidates, a->n_candidates, b->candidates, b->n_candidates));
        char *t1 = fp_session_tree_json(s), *t2 = fp_session_tree_json(r);
        CHECK(t1 && t2 && strcmp(t1, t2) == 0);
        free(t1); free(t2);
        CHECK(fp_session_n_events(r) == fp_session_n_events(s));
        /* the restored session goes on working */
        if (b) CHECK(fp_session_choose(r, 0, true, FP_BY_HUMAN, &err) == FP_OK);
        CHECK(fp_session_undo(r, &err) == FP_OK);
        char *again = fp_session_save(r);
        CHECK(again != NULL);
        free(again);
    }
    fp_session_free(r);
    /* damaged documents are refused with an error, never a crash */
    CHECK(fp_session_restore(e, "{", &err) == NULL && err.code == FP_ERR_ARG);
    CHECK(fp_session_restore(e, "{\"format\":1}", &err) == NULL);
    char *bad = strdup(saved);
    char *v = strstr(bad, "\"n_vocab\":512");
    if (v) { memcpy(v, "\"n_vocab\":513", 13); CHECK(fp_session_restore(e, bad, &err) == NULL && err.code == FP_ERR_MODEL); }
    /* cut the document anywhere: always an error */
    size_t len = strlen(saved);
    for (size_t cut = 1; cut < len; cut += len / 37 + 1) {
        char *part = strndup(saved, cut);
        fp_session *x = fp_session_restore(e, part, &err);
        CHECK(x == NULL);
        fp_session_free(x);
        free(part);
    }
    free(bad);
    /* a token id out of range, in an otherwise good document: refused for that */
    bad = strdup(saved);
    char *tok = strstr(bad, "\"tokens\":[");
    CHECK(tok != NULL);
    if (tok) {
        memcpy(tok + 10, "99999", 5);
        CHECK(fp_session_restore(e, bad, &err) == NULL && err.code == FP_ERR_ARG);
        CHECKF(strstr(err.message, "token") != NULL, "refused for another reason: %s", err.message);
    }
    free(bad);
    free(saved);
    /* a forced fork inside automatic text splits a node: the parent then comes after its children */
    size_t mid = fp_session_text_len(s) > 20 ? fp_session_text_len(s) - 7 : 0;
    CHECK(fp_session_fork_at(s, mid, &err) == FP_OK);
    saved = fp_session_save(s);
    r = fp_session_restore(e, saved, &err);
    CHECKF(r != NULL, "after a split: %s", err.message);
    if (r) {
        char *t1 = fp_session_tree_json(s), *t2 = fp_session_tree_json(r);
        CHECK(t1 && t2 && strcmp(t1, t2) == 0);
        free(t1); free(t2);
        CHECK(fp_session_choose(r, 0, false, FP_BY_HUMAN, &err) == FP_OK);
    }
    fp_session_free(r);
    free(saved);
    fp_session_free(s);
}

static void test_prefix(fp_engine *e) {
    TEST("prefix narrowing: constrained expansion, and unseen words can be typed");
    fp_error err = {0};
    fp_settings st = eager_settings();
    fp_session *s = fp_session_new(e, PROMPT, &st, &err);
    CHECK(s != NULL);
    if (!s) return;
    const char *prefixes[] = { "b", "ca", "d", "p", "sh" };
    int total = 0, outside_base = 0;
    const fp_fork *f = fp_session_fork(s);
    fp_candidate base[64];
    int32_t nb = f->n_candidates;
    memcpy(base, f->candidates, sizeof(fp_candidate) * (size_t)nb);
    for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++) {
        CHECK(fp_session_type_prefix(s, prefixes[i], &err) == FP_OK);
        f = fp_session_fork(s);
        CHECKF(f->n_candidates > 0, "no word for prefix %s", prefixes[i]);
        for (int32_t c = 0; c < f->n_candidates; c++) {
            const char *w = strip(f->candidates[c].text);
            CHECKF(strncasecmp(w, prefixes[i], strlen(prefixes[i])) == 0, "'%s' does not start with '%s'", w, prefixes[i]);
            bool in_base = false;
            for (int32_t j = 0; j < nb; j++) in_base |= strcmp(base[j].text, f->candidates[c].text) == 0;
            outside_base += !in_base;
            total++;
        }
    }
    CHECKF(outside_base > 0, "narrowing only filtered the words already shown");
    CHECK(fp_session_type_prefix(s, "", &err) == FP_OK);
    f = fp_session_fork(s);
    CHECK(same_candidates(base, nb, f->candidates, f->n_candidates));
    /* choose from a narrowed cloud */
    CHECK(fp_session_type_prefix(s, "ca", &err) == FP_OK);
    f = fp_session_fork(s);
    char want[FP_MAX_TEXT];
    snprintf(want, sizeof want, "%s", f->candidates[0].text);
    size_t before = fp_session_text_len(s);
    CHECK(fp_session_choose(s, 0, false, FP_BY_HUMAN, &err) == FP_OK);
    CHECK(strncmp(fp_session_text(s) + before, want, strlen(want)) == 0);
    /* a prefix the model never produces: no candidate, but the word can be committed */
    if (fp_session_state(s) == FP_STATE_AT_FORK) {
        CHECK(fp_session_type_prefix(s, "zqx", &err) == FP_OK);
        f = fp_session_fork(s);
        for (int32_t c = 0; c < f->n_candidates; c++) CHECK(strncasecmp(strip(f->candidates[c].text), "zqx", 3) == 0);
        before = fp_session_text_len(s);
        CHECK(fp_session_type_commit(s, "zqxwv", FP_BY_HUMAN, &err) == FP_OK);
        CHECK(strncmp(fp_session_text(s) + before, " zqxwv", 6) == 0);
    }
    CHECK(fp_session_type_prefix(s, "\xff", &err) != FP_OK || fp_session_state(s) == FP_STATE_ENDED);
    fp_session_free(s);
}

/* Pointing into a preview: the word and the preview tokens before the
 * pointed one are taken, and a fork opens right there (no automatic text). */
static void test_choose_until(fp_engine *e) {
    TEST("choose_until takes part of a preview and forks where the person pointed");
    fp_error err = {0};
    fp_settings st = fp_default_settings();
    st.lookahead = 8;
    fp_session *s = fp_session_new(e, PROMPT, &st, &err);
    CHECKF(s != NULL, "%s", err.message);
    if (!s) return;
    CHECK(fp_session_state(s) == FP_STATE_AT_FORK);
    const fp_fork *f = fp_session_fork(s);
    int32_t idx = -1;
    for (int32_t i = 0; i < f->n_candidates && idx < 0; i++)
        if (!f->candidates[i].is_eog && f->candidates[i].n_preview >= 2) idx = i;
    CHECK(idx >= 0);
    if (idx < 0) { fp_session_free(s); return; }
    const fp_candidate c = f->candidates[idx];
    const int32_t first_fork = f->id;
    char before[1024];
    snprintf(before, sizeof before, "%s", fp_session_text(s));
    const size_t n_before = fp_session_text_len(s);
    const int32_t tok_before = fp_session_n_tokens(s);
    /* out of range, and nothing changed */
    CHECK(fp_session_choose_until(s, idx, c.n_preview + 1, FP_BY_HUMAN, &err) == FP_ERR_ARG);
    CHECK(fp_session_choose_until(s, idx, -1, FP_BY_HUMAN, &err) == FP_ERR_ARG);
    CHECK(fp_session_choose_until(s, f->n_candidates, 0, FP_BY_HUMAN, &err) == FP_ERR_ARG);
    for (int32_t i = 0; i < f->n_candidates; i++)
        if (f->candidates[i].is_eog) CHECK(fp_session_choose_until(s, i, 0, FP_BY_HUMAN, &err) == FP_ERR_ARG);
    CHECK(fp_session_text_len(s) == n_before && fp_session_fork(s)->id == first_fork);

    /* the word and the first preview token, then a fork at the end */
    char piece[64];
    int32_t pl = fp_token_piece(g_model, c.preview_tokens[0], piece, (int32_t)sizeof piece);
    CHECK(pl >= 0);
    char want[2048];
    snprintf(want, sizeof want, "%s%s%.*s", before, c.text, pl, piece);
    CHECKF(fp_session_choose_until(s, idx, 1, FP_BY_HUMAN, &err) == FP_OK, "%s", err.message);
    CHECK(fp_session_state(s) == FP_STATE_AT_FORK);
    CHECKF(strcmp(fp_session_text(s), want) == 0, "text |%s| want |%s|", fp_session_text(s), want);
    CHECK(fp_session_n_tokens(s) == tok_before + c.n_tokens + 1);
    f = fp_session_fork(s);
    CHECK(f->id != first_fork && f->reason == FP_REASON_FORCED && (size_t)f->text_offset == strlen(want));
    CHECK(f->n_candidates > 0);
    const fp_fork *ev = fp_session_event(s, fp_session_n_events(s) - 1);
    CHECK(ev && ev->id == first_fork && ev->choice == FP_CHOICE_INDEX_PREVIEW && ev->choice_index == idx);
    CHECK(ev && strcmp(ev->choice_text, want + n_before) == 0);
    /* the trunk holds the path; the next decision works as usual */
    CHECK(llama_memory_seq_pos_max(fpi_engine_mem(e), s->trunk_seq) == s->n_path - 1);

    /* undo returns to the fork the choice was made at, with the same candidates */
    CHECK(fp_session_undo(s, &err) == FP_OK);
    CHECK(fp_session_fork(s)->id == first_fork && fp_session_text_len(s) == n_before);
    CHECK(strcmp(fp_session_fork(s)->candidates[idx].text, c.text) == 0);

    /* no preview token: the word alone, and a fork right after it */
    snprintf(want, sizeof want, "%s%s", before, c.text);
    CHECK(fp_session_choose_until(s, idx, 0, FP_BY_HUMAN, &err) == FP_OK);
    CHECK(strcmp(fp_session_text(s), want) == 0 && fp_session_state(s) == FP_STATE_AT_FORK);
    CHECK((size_t)fp_session_fork(s)->text_offset == strlen(want));
    CHECK(fp_session_event(s, fp_session_n_events(s) - 1)->choice == FP_CHOICE_INDEX);

    /* the whole preview: the same text as choosing with the preview, but no automatic run */
    CHECK(fp_session_undo(s, &err) == FP_OK);
    CHECK(fp_session_choose_until(s, idx, c.n_preview, FP_BY_HUMAN, &err) == FP_OK);
    snprintf(want, sizeof want, "%s%s%s", before, c.text, c.preview);
    CHECK(strcmp(fp_session_text(s), want) == 0 && fp_session_state(s) == FP_STATE_AT_FORK);

    /* a saved session comes back with the pointed fork open */
    char *js = fp_session_save(s);
    CHECK(js != NULL);
    fp_session *r = js ? fp_session_restore(e, js, &err) : NULL;
    CHECKF(r != NULL, "%s", err.message);
    if (r) {
        CHECK(strcmp(fp_session_text(r), want) == 0 && fp_session_state(r) == FP_STATE_AT_FORK);
        CHECK(fp_session_fork(r)->text_offset == fp_session_fork(s)->text_offset);
        fp_session_free(r);
    }
    free(js);
    fp_session_free(s);
}

int main(void) {
    fp_error err = {0};
    g_model = fp_model_load(h_model_path("stories260K.gguf"), NULL, &err);
    if (!g_model) { fprintf(stderr, "cannot load the test model: %s\n", err.message); printf("0 passed, 1 failed\n"); return 1; }
    fp_engine *e = new_engine(64);
    if (!e) { printf("0 passed, 1 failed\n"); return 1; }
    test_probabilities(e);
    test_words(e);
    test_previews(e);
    test_no_double_decode(e);
    test_undo(e);
    test_prefetch(e);
    test_text_edges(e);
    test_budget(e);
    test_determinism(e);
    test_save_restore(e);
    test_prefix(e);
    test_choose_until(e);
    fp_engine_free(e);
    fp_model_free(g_model);
    return h_finish();
}
