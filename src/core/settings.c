/*
 * settings.c — the settings a session runs with, checked, and the names of
 * the enums front ends print.
 *
 * Why a file of its own: every front end (terminal flags, the server's JSON,
 * saved sessions) builds an fp_settings; the one place that says what a
 * valid one is keeps them from drifting apart.
 */
#include "core/internal.h"

#include <math.h>


fp_settings fp_default_settings(void) {
    fp_settings s = {
        .temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f,
        .repeat_penalty = 1.1f, .repeat_last_n = 64,
        .k = 8, .granularity = FP_GRAN_WORD, .beam_width = 16, .max_word_tokens = 6, .lookahead = 8,
        .fork_entropy_bits = 2.5f, .fork_top1_below = 0.35f, .fork_margin_below = 0.0f,
        .min_gap_tokens = 4, .max_forks_per_sentence = 2,
        .sample_auto = false, .seed = 42, .max_tokens = 200,
    };
    return s;
}

fp_status fp_settings_validate(const fp_settings *s, fp_error *err) {
    if (!s) return fpi_fail(err, FP_ERR_ARG, "no settings");
    if (!(s->temperature > 0.0f && s->temperature <= 100.0f)) return fpi_fail(err, FP_ERR_ARG, "temperature must be in (0, 100]");
    if (s->top_k < 0) return fpi_fail(err, FP_ERR_ARG, "top_k must be >= 0");
    if (!(s->top_p > 0.0f && s->top_p <= 1.0f)) return fpi_fail(err, FP_ERR_ARG, "top_p must be in (0, 1]");
    if (!(s->min_p >= 0.0f && s->min_p < 1.0f)) return fpi_fail(err, FP_ERR_ARG, "min_p must be in [0, 1)");
    if (!(s->repeat_penalty > 0.0f && s->repeat_penalty <= 10.0f)) return fpi_fail(err, FP_ERR_ARG, "repeat_penalty must be in (0, 10]");
    if (s->repeat_last_n < 0 || s->repeat_last_n > 4096) return fpi_fail(err, FP_ERR_ARG, "repeat_last_n must be 0..4096");
    if (s->k < 1 || s->k > 64) return fpi_fail(err, FP_ERR_ARG, "k must be 1..64");
    if (s->granularity < FP_GRAN_TOKEN || s->granularity > FP_GRAN_PHRASE) return fpi_fail(err, FP_ERR_ARG, "granularity must be token, word or phrase");
    if (s->beam_width < s->k || s->beam_width > 64) return fpi_fail(err, FP_ERR_ARG, "beam_width must be k..64");
    if (s->max_word_tokens < 1 || s->max_word_tokens > FP_MAX_PATH) return fpi_fail(err, FP_ERR_ARG, "max_word_tokens must be 1..%d", FP_MAX_PATH);
    if (s->lookahead < 0 || s->lookahead > FP_MAX_PREVIEW) return fpi_fail(err, FP_ERR_ARG, "lookahead must be 0..%d", FP_MAX_PREVIEW);
    if (!isfinite(s->fork_entropy_bits) || !isfinite(s->fork_top1_below) || !isfinite(s->fork_margin_below))
        return fpi_fail(err, FP_ERR_ARG, "fork thresholds must be finite");
    if (s->min_gap_tokens < 0) return fpi_fail(err, FP_ERR_ARG, "min_gap_tokens must be >= 0");
    if (s->max_forks_per_sentence < 0) return fpi_fail(err, FP_ERR_ARG, "max_forks_per_sentence must be >= 0");
    if (s->max_tokens < 0) return fpi_fail(err, FP_ERR_ARG, "max_tokens must be >= 0");
    return FP_OK;
}

const char *fp_reason_name(fp_reason r) {
    switch (r) {
    case FP_REASON_CONFIDENT: return "confident";
    case FP_REASON_UNCERTAIN: return "uncertain";
    case FP_REASON_BUDGET_GAP: return "budget_gap";
    case FP_REASON_BUDGET_SENTENCE: return "budget_sentence";
    case FP_REASON_MID_WORD: return "mid_word";
    case FP_REASON_FORCED: return "forced";
    case FP_REASON_TYPED: return "typed";
    case FP_REASON_IN_CHOICE: return "in_choice";
    }
    return "unknown";
}

const char *fp_choice_name(fp_choice_kind k) {
    switch (k) {
    case FP_CHOICE_NONE: return "none";
    case FP_CHOICE_INDEX: return "index";
    case FP_CHOICE_INDEX_PREVIEW: return "index_preview";
    case FP_CHOICE_TYPED: return "typed";
    case FP_CHOICE_AUTO: return "auto";
    }
    return "none";
}

const char *fp_chooser_name(fp_chooser c) {
    switch (c) {
    case FP_BY_AUTO: return "auto";
    case FP_BY_HUMAN: return "human";
    case FP_BY_SCRIPT: return "script";
    }
    return "unknown";
}


/* The beam's paths (each up to max_word_tokens cells of its own) and the
 * shown words' previews: an upper bound, O(1). */
int32_t fp_settings_branch_cells(const fp_settings *s) {
    return s->beam_width * s->max_word_tokens + s->k * (s->lookahead + 1);
}
