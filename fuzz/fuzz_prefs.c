/*
 * fuzz_prefs.c — fp_prefs_load (src/core/prefs.c): the preference profile
 * blobs `forkpoint profile show`, `write --profile` and the server read back
 * from the decision log's profiles table.
 *
 * Why: the blob comes from a SQLite file that may be damaged or written by
 * another tool. Loading must refuse what is not a profile (FP_ERR_ARG and a
 * message); what it accepts must be usable: its predictions on a fork are
 * finite and sum to 1, its auto-resolution threshold is a number, it learns
 * from a decision without turning non-finite, and it saves and loads again.
 * Seeds: a fresh profile and one trained on real forks (fuzz/seedgen.c).
 */
#include "fuzz_common.h"

#include <math.h>
#include <string.h>

static fp_candidate g_cands[4];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const char *words[4] = { " girl", " dog", ".", " big" };
    for (int i = 0; i < 4; i++) {
        snprintf(g_cands[i].text, sizeof g_cands[i].text, "%s", words[i]);
        snprintf(g_cands[i].preview, sizeof g_cands[i].preview, " named Lily.");
        g_cands[i].tokens[0] = 10 + i;
        g_cands[i].n_tokens = 1;
        g_cands[i].prob = 0.4f - 0.1f * (float)i;
        g_cands[i].pref = g_cands[i].prob;
    }
    return 0;
}

static void check_predict(const fp_prefs *p, const fp_fork *f, const char *ctx)
{
    float out[4];
    fp_prefs_predict(p, ctx, strlen(ctx), f, out);
    float sum = 0;
    for (int i = 0; i < f->n_candidates; i++) {
        FZ_CHECK(isfinite(out[i]) && out[i] >= 0 && out[i] <= 1.0001f, "P(%d) = %g", i, out[i]);
        sum += out[i];
    }
    FZ_CHECK(fabsf(sum - 1) < 1e-3f, "predictions sum to %g", sum);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fp_error err = {0};
    fp_prefs *p = fp_prefs_load(data, size, &err);
    if (!p) {
        FZ_CHECK(err.message[0] && (err.code == FP_ERR_ARG || err.code == FP_ERR_NOMEM), "refused with %s: %s",
                 fp_status_name(err.code), err.message);
        return 0;
    }
    FZ_CHECK(fp_prefs_n_learned(p) >= 0, "n_learned %lld", (long long)fp_prefs_n_learned(p));
    fp_fork f = { .candidates = g_cands, .n_candidates = 4, .choice = FP_CHOICE_INDEX, .choice_index = 1,
                  .chooser = FP_BY_HUMAN };
    const char *ctx = "Once upon a time, there was a little";
    check_predict(p, &f, ctx);
    float th = fp_prefs_auto_threshold(p);
    FZ_CHECK(!isnan(th), "threshold NaN");
    float before = fp_prefs_learn(p, ctx, strlen(ctx), &f);
    FZ_CHECK(before == -1.0f || (before >= 0 && before <= 1.0001f), "learn returned %g", before);
    check_predict(p, &f, ctx);
    fp_prefs_note_undo(p);
    (void)fp_prefs_auto_threshold(p);
    size_t len = 0;
    void *blob = fp_prefs_save(p, &len);
    FZ_CHECK(blob, "no blob");
    fp_prefs *q = fp_prefs_load(blob, len, &err);
    FZ_CHECK(q, "its own save is refused: %s", err.message);
    fp_prefs_free(q);
    free(blob);
    fp_prefs_free(p);
    return 0;
}
