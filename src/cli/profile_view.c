/*
 * profile_view.c — `forkpoint profile show` as plain text: what a profile
 * learned, for the person it belongs to. Two text plots over their choices
 * (how often the learned top pick was theirs; how often they had to step in),
 * the automatic decisions and the undone ones, and the words and features
 * that moved most. The numbers come from the core (fp_prefs_curve and
 * friends, the same the server's GET /api/profile sends); this file only
 * lays them out. Cost: O(history) per call.
 */
#include "cli/cli.h"

#include <math.h>
#include <stdio.h>

#define ROWS 5

/* A column chart of percentages (one column per bucket), ROWS lines high;
 * a bucket with nothing to count is a blank column. */
static void chart(FILE *out, const char *title, const double *pct, const bool *has, int32_t n, int32_t bucket) {
    fprintf(out, "\n%s (one column per %d forks, oldest left)\n", title, bucket);
    for (int r = ROWS; r >= 1; r--) {
        double level = 100.0 * (r - 0.5) / ROWS;
        fprintf(out, "%4d%% |", 100 * r / ROWS);
        for (int32_t i = 0; i < n; i++) fputc(has[i] && pct[i] >= level ? '#' : ' ', out);
        fputc('\n', out);
    }
    fprintf(out, "      +");
    for (int32_t i = 0; i < n; i++) fputc('-', out);
    fputc('\n', out);
}

void cli_profile_print(FILE *out, const char *name, const fp_prefs *p, int64_t logged) {
    enum { MAXB = 64, MAXW = 12 };
    fp_prefs_point pt[MAXB];
    fp_prefs_item it[MAXW];
    int64_t na, nu;
    fp_prefs_counts(p, &na, &nu);
    float th = fp_prefs_auto_threshold(p);
    fprintf(out, "profile %s: %lld decisions learned, %lld logged\n", name, (long long)fp_prefs_n_learned(p),
            (long long)logged);
    fprintf(out, "decided automatically: %lld, undone by the person: %lld (%.1f%%)\n", (long long)na, (long long)nu,
            na ? 100.0 * (double)nu / (double)na : 0.0);
    if (th <= 1.0f) fprintf(out, "auto-resolution threshold %.3f\n", th);
    else fprintf(out, "auto-resolution: off or not enough history yet\n");
    /* how the person enters text, and the settings that asks for (adapt.c; write --adapt) */
    const fp_prefs_habits h = fp_prefs_habits_get(p);
    const fp_settings d = fp_default_settings(), a = fp_prefs_adapt_settings(p, &d);
    fprintf(out, "entry habits over %lld decisions: typed letters %.0f%%, pointed into a preview %.0f%%, "
            "preview taken %.0f%%, repairs %.2f per decision\n", (long long)h.decisions, 100.0 * h.typed,
            100.0 * h.pointed, 100.0 * h.depth, h.repairs);
    fprintf(out, "settings they ask for (from the defaults): %d candidates, previews of %d tokens, gap %d, "
            "%d forks per sentence (0: no limit)\n", a.k, a.lookahead, a.min_gap_tokens, a.max_forks_per_sentence);
    int32_t nb = fp_prefs_curve(p, 0, pt, MAXB), forks = 0;
    for (int32_t i = 0; i < nb; i++) forks += pt[i].forks;
    if (nb > 0) {
        double a[MAXB], v[MAXB];
        bool ha[MAXB], hv[MAXB];
        int32_t da = 0, ag = 0, iv = 0;
        for (int32_t i = 0; i < nb; i++) {
            ha[i] = pt[i].decided > 0;
            a[i] = ha[i] ? 100.0 * pt[i].agreed / pt[i].decided : 0;
            hv[i] = pt[i].forks > 0;
            v[i] = hv[i] ? 100.0 * (pt[i].decided + pt[i].undone) / pt[i].forks : 0;
            da += pt[i].decided; ag += pt[i].agreed; iv += pt[i].decided + pt[i].undone;
        }
        int32_t bucket = pt[0].forks;
        chart(out, "agreement: the learned top pick was the person's choice", a, ha, nb, bucket);
        chart(out, "interventions: forks the person decided or undid", v, hv, nb, bucket);
        fprintf(out, "over the last %d forks: agreement %.1f%% of %d decided, interventions %.1f%%\n", forks,
                da ? 100.0 * ag / da : 0.0, da, forks ? 100.0 * iv / forks : 0.0);
    } else {
        fprintf(out, "no decisions yet\n");
    }
    int32_t nw = fp_prefs_top_words(p, it, MAXW);
    fprintf(out, "\nwords that moved most (weight; > 0 chosen over the model's odds, < 0 passed over):\n");
    if (nw == 0) fprintf(out, "  (none yet)\n");
    for (int32_t i = 0; i < nw; i++) fprintf(out, "  %+7.2f  %s\n", it[i].weight, it[i].name);
    int32_t nf = fp_prefs_features(p, it, MAXW);
    fprintf(out, "\nfeatures (change since learning began):\n");
    for (int32_t i = 0; i < nf; i++) fprintf(out, "  %+7.2f  %s\n", it[i].weight, it[i].name);
}
