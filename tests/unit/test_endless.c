/*
 * test_endless.c — the text goes on when the context window fills.
 *
 * stories260K in a window of 128 tokens (the engine gets 128 cells plus a
 * fork's branches, as `forkpoint write --ctx 128` does), for 2,000 generated
 * tokens, deciding at every fork by a fixed rule that mixes taking a word
 * alone, with its preview, undoing, going back to an early fork, and saving
 * and restoring the session. Checked:
 *   - nothing crashes (ASan, UBSan) and the session's invariants hold after
 *     every call (check.c: the trunk holds the kept start and the newest
 *     tokens at their window positions);
 *   - the window slid many times, the trunk never held more than the window,
 *     and the text was never cut: it ended by max_tokens, 2,000 tokens long;
 *   - no garbage: the text is printable ASCII (the model's alphabet), valid
 *     UTF-8, without control text;
 *   - forks keep appearing in every quarter of the text;
 *   - previews come true after the window slid (a word taken alone is
 *     followed by its preview, byte for byte, up to the next fork);
 *   - undo across a slide: going back to a fork from before the first slide
 *     shows exactly the candidates it showed, lays the window out again for
 *     it, and its previews come true again;
 *   - save and restore across a slide: the same text, the same open fork.
 */
#include "forkpoint.h"
#include "core/internal.h"
#include "core/testing.h"
#include "harness.h"

#include <string.h>

enum { WINDOW = 128, TOKENS = 2000 };

static bool printable(const char *t) {
    for (const unsigned char *p = (const unsigned char *)t; *p; p++)
        if (!(*p == '\n' || (*p >= ' ' && *p < 0x7F))) return false;
    return true;
}

/* Takes candidate idx alone and checks that what follows is its preview. */
static bool choose_true(fp_session *s, int32_t idx, int *compared, int *mismatch) {
    fp_error err = {0};
    const fp_fork *f = fp_session_fork(s);
    const fp_candidate *c = &f->candidates[idx];
    char want[FP_MAX_TEXT];
    snprintf(want, sizeof want, "%s", c->preview);
    size_t from = (size_t)f->text_offset + strlen(c->text);
    bool eog = c->is_eog;
    if (fp_session_choose(s, idx, false, FP_BY_SCRIPT, &err) != FP_OK) {
        fprintf(stderr, "choose: %s\n", err.message);
        return false;
    }
    if (eog) return true;
    const fp_fork *g = fp_session_fork(s);
    size_t to = g ? (size_t)g->text_offset : fp_session_text_len(s);
    size_t got = to > from ? to - from : 0, wn = strlen(want), n = got < wn ? got : wn;
    bool ok = memcmp(fp_session_text(s) + from, want, n) == 0 && (g || got >= wn || fp_session_end_reason(s));
    (*compared)++;
    if (!ok && (*mismatch)++ < 5)
        fprintf(stderr, "  preview '%s' became '%.*s'\n", want, (int)got, fp_session_text(s) + from);
    return true;
}

int main(void) {
    fp_model *m = NULL;
    fp_engine *e = NULL;
    fp_error err = {0};
    fp_settings st = fp_default_settings();
    st.max_tokens = TOKENS;
    m = fp_model_load(h_model_path("stories260K.gguf"), NULL, &err);
    if (m) {
        fp_engine_params ep = fp_engine_default_params();
        ep.n_threads = 1;
        ep.n_ctx = (uint32_t)(WINDOW + fp_settings_branch_cells(&st));
        e = fp_engine_new(m, &ep, &err);
    }
    if (!e) { fprintf(stderr, "%s\n", err.message); printf("0 passed, 1 failed\n"); return 1; }

    TEST("2,000 tokens in a 128-token window");
    fp_session *s = fp_session_new(e, "Once upon a time, there was a little", &st, &err);
    CHECKF(s != NULL, "%s", err.message);
    if (!s) return h_finish();
    CHECK(fpi_window(s) == WINDOW);
    int forks = 0, compared = 0, mismatch = 0, compared_slid = 0, undos = 0, restores = 0, max_kv = 0;
    int per_quarter[4] = {0};
    int faults = 0, failed_slides = 0, prefetched = 0, refused = 0;
    int32_t early_fork = -1;
    char early_cands[8][FP_MAX_TEXT] = {{0}};
    int32_t early_n = 0;
    bool went_back = false;
    for (int step = 0; step < 4000 && fp_session_state(s) == FP_STATE_AT_FORK; step++) {
        const fp_fork *f = fp_session_fork(s);   /* read again after any call that may move the forks */
        forks++;
        int q = (int)((int64_t)4 * (f->position - fpi_n_prompt(s)) / TOKENS);
        per_quarter[q < 0 ? 0 : q > 3 ? 3 : q]++;
        int kv = (int)llama_memory_seq_pos_max(fpi_engine_mem(e), s->trunk_seq) + 1;
        if (kv > max_kv) max_kv = kv;
        for (int32_t i = 0; i < f->n_candidates; i++)
            CHECKF(printable(f->candidates[i].text) && printable(f->candidates[i].preview), "garbage candidate '%s' / '%s'",
                   f->candidates[i].text, f->candidates[i].preview);
        if (early_fork < 0 && s->n_shift == 0 && f->n_candidates > 1) {
            early_fork = f->id;
            early_n = f->n_candidates < 8 ? f->n_candidates : 8;
            for (int32_t i = 0; i < early_n; i++) snprintf(early_cands[i], FP_MAX_TEXT, "%s", f->candidates[i].text);
        }
        /* undo across a slide: back to the early fork, exactly as it was */
        if (!went_back && s->n_shift > 0 && early_fork >= 0 && f->position - fpi_n_prompt(s) > 600) {
            went_back = true;
            CHECKF(fp_session_goto_fork(s, early_fork, &err) == FP_OK, "goto across a slide: %s", err.message);
            const fp_fork *g = fp_session_fork(s);
            CHECK(g && g->id == early_fork && g->n_candidates >= early_n);
            int same = 0;
            for (int32_t i = 0; g && i < early_n; i++) same += strcmp(g->candidates[i].text, early_cands[i]) == 0;
            CHECKF(same == early_n, "the early fork shows %d of its %d candidates again", same, early_n);
            CHECKF(s->n_shift == 0, "the window is laid out for the early fork (shift %d)", s->n_shift);
            int c0 = compared, m0 = mismatch;
            CHECK(choose_true(s, 0, &compared, &mismatch));
            CHECKF(compared > c0 && mismatch == m0, "the early fork's preview did not come true after going back");
            continue;
        }
        int r = step % 17;
        /* a decision that fails while the window slides changes nothing:
         * the same text and fork, and it then succeeds */
        if (s->n_path - s->n_shift >= WINDOW - 12 && faults < 12) {
            faults++;
            char before[8192];
            snprintf(before, sizeof before, "%s", fp_session_text(s));
            int32_t id = f->id;
            fpi_engine_fail_decode(e, 1 + faults * 2); /* early in the decision, or after its slide */
            fp_status fs = fp_session_choose(s, 0, false, FP_BY_SCRIPT, &err);
            fpi_engine_fail_decode(e, 0);
            if (fs == FP_OK) continue; /* the fault fell after the decision (another fork's work) */
            /* put back after a slide: the trunk is laid out again, to be decoded before its next use */
            failed_slides += s->n_past < s->n_path;
            f = fp_session_fork(s);
            CHECKF(f && f->id == id && strcmp(fp_session_text(s), before) == 0, "a failed decision changed the session");
            if (!f) break;
        }
        /* a prefetched outcome near the window's end: adopted, or refused where it would slide */
        if (r == 3) {
            fp_status ps = fp_session_prefetch(s, 0, false, &err);
            CHECKF(ps == FP_OK || ps == FP_ERR_CAPACITY, "prefetch: %s", err.message);
            prefetched += ps == FP_OK;
            refused += ps == FP_ERR_CAPACITY;
            bool slid = s->n_shift > 0;
            int c0 = compared;
            if (!choose_true(s, 0, &compared, &mismatch)) break;
            if (slid) compared_slid += compared - c0;
            continue;
        }
        if (r == 5 && step > 0) {
            undos++;
            CHECKF(fp_session_undo(s, &err) == FP_OK, "undo: %s", err.message);
            continue;
        }
        if (r == 9) {
            /* saved and restored, in whatever state the window is */
            char *js = fp_session_save(s);
            fp_session *rs = js ? fp_session_restore(e, js, &err) : NULL;
            CHECKF(rs != NULL, "restore: %s", err.message);
            if (rs) {
                CHECK(strcmp(fp_session_text(rs), fp_session_text(s)) == 0);
                const fp_fork *a = fp_session_fork(s), *b = fp_session_fork(rs);
                CHECK(a && b && a->id == b->id && a->n_candidates == b->n_candidates &&
                      strcmp(a->candidates[0].text, b->candidates[0].text) == 0);
                fp_session_free(s);
                s = rs;
                restores++;
            }
            free(js);
            continue;
        }
        if (r == 12) {
            CHECKF(fp_session_choose(s, 1 % f->n_candidates, true, FP_BY_SCRIPT, &err) == FP_OK, "with preview: %s",
                   err.message);
            continue;
        }
        bool slid = s->n_shift > 0;
        int c0 = compared;
        if (!choose_true(s, (int32_t)(step % 3) % f->n_candidates, &compared, &mismatch)) break;
        if (slid) compared_slid += compared - c0;
    }
    const char *t = fp_session_text(s);
    fprintf(stderr, "  %d forks (quarters %d %d %d %d), %d previews compared (%d after a slide), %d wrong; %d undos, "
                    "%d restores; window shift %d, trunk at most %d cells; %zu bytes\n",
            forks, per_quarter[0], per_quarter[1], per_quarter[2], per_quarter[3], compared, compared_slid, mismatch,
            undos, restores, s->n_shift, max_kv, strlen(t));
    CHECKF(fp_session_state(s) == FP_STATE_ENDED && strcmp(fp_session_end_reason(s), "max_tokens") == 0,
           "the text ended by %s", fp_session_end_reason(s) ? fp_session_end_reason(s) : "(open)");
    CHECKF(fp_session_n_positions(s) >= TOKENS, "%d tokens generated", fp_session_n_positions(s));
    CHECKF(s->n_shift > TOKENS - 2 * WINDOW, "the window slid %d tokens", s->n_shift);
    CHECKF(max_kv <= WINDOW, "the trunk held %d cells at a fork", max_kv);
    CHECK(printable(t) && fp_utf8_valid(t, strlen(t)) && !strstr(t, "<|"));
    CHECK(strncmp(t, "Once upon a time, there was a little", 36) == 0);
    for (int q = 0; q < 4; q++) CHECKF(per_quarter[q] >= 5, "quarter %d of the text has %d forks", q, per_quarter[q]);
    CHECKF(compared_slid >= 20 && mismatch == 0, "%d of %d previews wrong (%d after a slide)", mismatch, compared,
           compared_slid);
    CHECK(went_back && undos > 10 && restores > 10);
    fprintf(stderr, "  %d injected faults near the window's end (%d left the window laid out anew); %d prefetched, "
                    "%d refused where the window would slide\n", faults, failed_slides, prefetched, refused);
    CHECK(faults >= 6 && failed_slides >= 1 && prefetched > 5);
    /* memory per fork is bounded: only the newest forks keep their logits */
    int in_memory = 0;
    for (int32_t i = 0; i < s->n_forks; i++) in_memory += s->forks[i].logits != NULL;
    CHECKF(in_memory <= 17 && s->n_forks > 100, "%d of %d forks hold their logits", in_memory, s->n_forks);
    /* a fork that gave its logits back reopens exactly */
    int32_t old = -1;
    for (int32_t i = 0; i < s->n_forks && old < 0; i++)
        if (!s->forks[i].logits && s->forks[i].n_shown > 1) old = i;
    if (old >= 0) {
        char first[FP_MAX_TEXT];
        snprintf(first, sizeof first, "%s", s->forks[old].shown[0].text);
        CHECKF(fp_session_goto_fork(s, old, &err) == FP_OK, "goto: %s", err.message);
        const fp_fork *g = fp_session_fork(s);
        CHECK(g && g->id == old && strcmp(g->candidates[0].text, first) == 0 && s->forks[old].logits != NULL);
        int c0 = compared, m0 = mismatch;
        CHECK(choose_true(s, 0, &compared, &mismatch) && compared > c0 && mismatch == m0);
    } else CHECK(!"no fork gave its logits back");
    fp_session_free(s);

    TEST("a window too small for a fork's branches is refused");
    fp_engine_params ep = fp_engine_default_params();
    ep.n_threads = 1;
    ep.n_ctx = 128; /* all of it for the branches of the default settings */
    fp_engine *small = fp_engine_new(m, &ep, &err);
    CHECK(small != NULL);
    fp_session *x = small ? fp_session_new(small, "Once upon a time", &st, &err) : NULL;
    CHECKF(x == NULL && err.code == FP_ERR_CONTEXT && strstr(err.message, "branches"), "%s", err.message);
    fp_session_free(x);
    fp_engine_free(small);

    fp_engine_free(e);
    fp_model_free(m);
    return h_finish();
}
