/*
 * adapt.c — settings that follow how a person enters text (issue 14).
 *
 * Why: the defaults suit nobody in particular. The person's own decisions
 * say what they are missing: a person who keeps typing letters did not see
 * the word they wanted (more candidates would have shown it); one who takes
 * most of each preview would take more of a longer one, and one who takes
 * none of it is shown text they do not read; one who keeps pointing back
 * into automatic text wanted a fork there (the fork budget and thresholds
 * held it back). The session counts these habits into the person's profile
 * (prefs.c stores them, so they persist with it), and
 * fp_prefs_adapt_settings turns them into settings. Only the person's own
 * actions are counted: nothing here sees the text they mean to write.
 *
 * Costs: O(1) per decision and per repair; the adapted settings make a fork
 * cost about k / 8 times as much for the cloud, and k x lookahead / 64 as
 * much for the previews, as at the defaults.
 */
#include "core/internal.h"

#include <assert.h>
#include <math.h>

#define HABIT_WINDOW 32      /* decisions the averages look back over, about */
#define ADAPT_MIN 16         /* no adaptation before this many decisions */

/* One step of a running mean that turns into an exponential average:
 * the first HABIT_WINDOW values weigh alike, then the newest 1/HABIT_WINDOW. */
static float step(float avg, float x, int64_t n) {
    const float a = n < HABIT_WINDOW ? 1.0f / (float)n : 1.0f / HABIT_WINDOW;
    return avg + a * (x - avg);
}

/* Counts one decision by the person. depth < 0: the candidate had no
 * preview (or the person typed): the depth average is left alone. */
void fpi_habits_decision(fp_prefs_habits *h, bool typed, bool pointed, float depth) {
    h->decisions++;
    h->typed = step(h->typed, typed ? 1.0f : 0.0f, h->decisions);
    h->pointed = step(h->pointed, pointed ? 1.0f : 0.0f, h->decisions);
    h->repairs = step(h->repairs, 0.0f, h->decisions);
    if (depth >= 0.0f) {
        h->depth_n++;
        h->depth = step(h->depth, depth > 1.0f ? 1.0f : depth, h->depth_n);
    }
    assert(h->typed >= 0.0f && h->typed <= 1.0f && h->pointed >= 0.0f && h->pointed <= 1.0f);
}

/* Counts a repair: it raises the repairs-per-decision average by one
 * decision's weight (a repair comes between decisions, not instead of one). */
void fpi_habits_repair(fp_prefs_habits *h) {
    const int64_t n = h->decisions > 0 ? h->decisions : 1;
    h->repairs += n < HABIT_WINDOW ? 1.0f / (float)n : 1.0f / HABIT_WINDOW;
    if (h->repairs > 4.0f) h->repairs = 4.0f;
}

static int32_t clampi(int32_t v, int32_t lo, int32_t hi) { return v < lo ? lo : v > hi ? hi : v; }

fp_settings fp_prefs_adapt_settings(const fp_prefs *p, const fp_settings *base) {
    fp_settings st = *base;
    const fp_prefs_habits h = fp_prefs_habits_get(p);
    if (h.decisions < ADAPT_MIN) return st;
    /* candidates: every 8% of decisions that needed letters doubles the
     * share of the cloud shown, up to 64 (k = base x (1 + typed / 0.08)) */
    st.k = clampi((int32_t)lroundf((float)base->k * (1.0f + h.typed / 0.08f)), base->k, 64);
    if (st.beam_width < st.k) st.beam_width = st.k;
    if (st.beam_width < 2 * st.k) st.beam_width = clampi(2 * st.k, st.k, 64);
    /* previews: a person who uses them (points into them, or takes them
     * whole) gets longer ones, up to twice as long; one who never does,
     * half as long: L x (0.5 + 1.5 use), use = pointed + depth, at most 1.
     * (Pointing takes the right part of a preview whatever its length, so
     * a longer one can only offer more: bench_textentry.) */
    if (h.depth_n >= ADAPT_MIN / 2 && base->lookahead > 0) {
        const float use = fminf(1.0f, h.pointed + h.depth);
        st.lookahead = clampi((int32_t)lroundf((float)base->lookahead * (0.5f + 1.5f * use)), 2, 32);
    }
    /* forks: repairs of automatic text are forks the budget or thresholds
     * withheld. One repair in 20 decisions lifts the per-sentence budget
     * and shortens the gap, more lifts the top-1 threshold too. */
    if (h.repairs > 0.05f) {
        st.max_forks_per_sentence = 0;
        st.min_gap_tokens = clampi((int32_t)lroundf((float)base->min_gap_tokens * (1.0f - 5.0f * h.repairs)), 1,
                                   base->min_gap_tokens > 1 ? base->min_gap_tokens : 1);
        if (base->fork_top1_below > 0.0f)
            st.fork_top1_below = fminf(0.9f, fmaxf(base->fork_top1_below, base->fork_top1_below + h.repairs));
    }
    assert(st.k >= 1 && st.k <= 64 && st.beam_width >= st.k && st.beam_width <= 64);
    assert(st.lookahead >= 0 && st.lookahead <= FP_MAX_PREVIEW);
    return st;
}
