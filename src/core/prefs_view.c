/*
 * prefs_view.c — what a person's profile has learned, in the shape a person
 * reads it: the history in buckets (agreement and interventions over their
 * choices), the words and features that moved most, the automatic
 * decisions and the undone ones. `forkpoint profile show` prints it as text,
 * the server sends fp_prefs_to_json (GET /api/profile) and web/profile.js
 * draws it; none of them re-derive these numbers.
 *
 * Cost: O(FP_PREFS_HISTORY + words) per call; nothing is kept.
 */
#include "core/internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* About 30 buckets, at least 10 forks each. */
static int32_t auto_bucket(int32_t n) { return n > 300 ? (n + 29) / 30 : 10; }

int32_t fp_prefs_curve(const fp_prefs *p, int32_t bucket, fp_prefs_point *out, int32_t cap) {
    uint8_t *h = malloc(FP_PREFS_HISTORY);
    if (!h || cap < 1) { free(h); return 0; }
    int32_t n = fp_prefs_history(p, h, FP_PREFS_HISTORY);
    if (bucket <= 0) bucket = auto_bucket(n);
    int32_t nb = 0;
    for (int32_t i = 0; i < n && nb <= cap; i++) {
        if (i % bucket == 0) {
            if (nb == cap) break;
            out[nb++] = (fp_prefs_point){ 0 };
        }
        fp_prefs_point *b = &out[nb - 1];
        b->forks++;
        if (h[i] & FP_PREFS_AUTO) { b->automatic++; b->undone += (h[i] & FP_PREFS_UNDONE) != 0; }
        else { b->decided++; b->agreed += (h[i] & FP_PREFS_AGREED) != 0; }
    }
    free(h);
    return nb;
}

static double r3(double x) { return isfinite(x) ? round(x * 1000.0) / 1000.0 : 0.0; }

char *fp_prefs_to_json(const fp_prefs *p) {
    enum { MAXB = 64, MAXW = 20 };
    fp_prefs_point pts[MAXB];
    fp_prefs_item it[MAXW];
    int64_t na, nu;
    fp_prefs_counts(p, &na, &nu);
    uint8_t *h = malloc(FP_PREFS_HISTORY);
    if (!h) return NULL;
    int32_t bucket = auto_bucket(fp_prefs_history(p, h, FP_PREFS_HISTORY));
    free(h);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "decisions", (double)fp_prefs_n_learned(p));
    cJSON_AddNumberToObject(o, "automatic", (double)na);
    cJSON_AddNumberToObject(o, "undone", (double)nu);
    float th = fp_prefs_auto_threshold(p);
    if (th <= 1.0f) cJSON_AddNumberToObject(o, "threshold", r3(th));
    else cJSON_AddNullToObject(o, "threshold");
    cJSON_AddNumberToObject(o, "bucket", bucket);
    /* how the person enters text, and the settings that asks for (adapt.c) */
    const fp_prefs_habits hb = fp_prefs_habits_get(p);
    const fp_settings d = fp_default_settings(), a = fp_prefs_adapt_settings(p, &d);
    cJSON *hj = cJSON_AddObjectToObject(o, "habits");
    cJSON_AddNumberToObject(hj, "decisions", (double)hb.decisions);
    cJSON_AddNumberToObject(hj, "typed", r3(hb.typed));
    cJSON_AddNumberToObject(hj, "pointed", r3(hb.pointed));
    cJSON_AddNumberToObject(hj, "preview_taken", r3(hb.depth));
    cJSON_AddNumberToObject(hj, "repairs", r3(hb.repairs));
    cJSON *aj = cJSON_AddObjectToObject(o, "adapted");
    cJSON_AddNumberToObject(aj, "k", a.k);
    cJSON_AddNumberToObject(aj, "lookahead", a.lookahead);
    cJSON_AddNumberToObject(aj, "min_gap_tokens", a.min_gap_tokens);
    cJSON_AddNumberToObject(aj, "max_forks_per_sentence", a.max_forks_per_sentence);
    cJSON_AddNumberToObject(aj, "fork_top1_below", r3(a.fork_top1_below));
    cJSON *curve = cJSON_AddArrayToObject(o, "curve");
    int32_t nb = fp_prefs_curve(p, bucket, pts, MAXB);
    for (int32_t i = 0; curve && i < nb; i++) {
        cJSON *b = cJSON_CreateObject();
        cJSON_AddNumberToObject(b, "forks", pts[i].forks);
        cJSON_AddNumberToObject(b, "decided", pts[i].decided);
        cJSON_AddNumberToObject(b, "agreed", pts[i].agreed);
        cJSON_AddNumberToObject(b, "automatic", pts[i].automatic);
        cJSON_AddNumberToObject(b, "undone", pts[i].undone);
        cJSON_AddItemToArray(curve, b);
    }
    cJSON *words = cJSON_AddArrayToObject(o, "words");
    int32_t nw = fp_prefs_top_words(p, it, MAXW);
    for (int32_t i = 0; words && i < nw; i++) {
        cJSON *w = cJSON_CreateObject();
        fpi_json_text(w, "word", it[i].name, strlen(it[i].name));
        cJSON_AddNumberToObject(w, "weight", r3(it[i].weight));
        cJSON_AddItemToArray(words, w);
    }
    cJSON *feats = cJSON_AddArrayToObject(o, "features");
    int32_t nf = fp_prefs_features(p, it, MAXW);
    for (int32_t i = 0; feats && i < nf; i++) {
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "name", it[i].name);
        cJSON_AddNumberToObject(f, "change", r3(it[i].weight));
        cJSON_AddItemToArray(feats, f);
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}
