/*
 * data.c — `forkpoint export` and `forkpoint profile`: the decision log as
 * datasets, and the people whose preferences were learned.
 *
 *   forkpoint export --db PATH --format sft|pairs|kto|raw|chat-sft|chat-pairs|chat-kto [--profile NAME] [--out FILE]
 *   forkpoint profile list  --db PATH
 *   forkpoint profile reset --db PATH NAME
 *   forkpoint profile show  --db PATH NAME [--model PATH]
 *
 * Exit codes: 0 done, 2 bad input (missing or damaged database, unknown
 * profile or format, nothing to export, a profile of another model).
 */
#include "cli/cli.h"
#include "forkpoint_fetch.h"
#include "forkpoint_store.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_export(int argc, char **argv) {
    const char *db = NULL, *fmt_name = NULL, *profile = NULL, *out_path = NULL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help")) {
            puts("usage: forkpoint export --db PATH --format sft|pairs|kto|raw|chat-sft|chat-pairs|chat-kto [--profile NAME] [--out FILE]");
            return 0;
        }
        if (!v) { fprintf(stderr, "forkpoint export: %s needs a value\n", a); return 2; }
        if (!strcmp(a, "--db")) db = v;
        else if (!strcmp(a, "--format")) fmt_name = v;
        else if (!strcmp(a, "--profile")) profile = v;
        else if (!strcmp(a, "--out")) out_path = v;
        else { fprintf(stderr, "forkpoint export: unknown option %s\n", a); return 2; }
        i++;
    }
    fp_export_format fmt;
    if (!db) { fprintf(stderr, "forkpoint export: --db is required\n"); return 2; }
    if (!fp_export_format_parse(fmt_name, &fmt)) {
        fprintf(stderr, "forkpoint export: --format must be sft, pairs, kto, raw, chat-sft, chat-pairs or chat-kto\n");
        return 2;
    }
    fp_error err = {0};
    fp_store *st = fp_store_open(db, false, &err);
    if (!st) { fprintf(stderr, "forkpoint export: %s\n", err.message); return 2; }
    FILE *out = out_path ? fopen(out_path, "w") : stdout;
    if (!out) {
        fprintf(stderr, "forkpoint export: cannot write %s: %s\n", out_path, strerror(errno));
        fp_store_close(st);
        return 2;
    }
    int64_t n = 0;
    fp_status rc = fp_store_export(st, fmt, profile, out, &n, &err);
    if (out != stdout && fclose(out) != 0 && rc == FP_OK) rc = FP_ERR_IO;
    fp_store_close(st);
    if (rc != FP_OK) { fprintf(stderr, "forkpoint export: %s\n", err.message); return 2; }
    fprintf(stderr, "forkpoint export: %lld rows\n", (long long)n);
    return 0;
}

int cli_profile(int argc, char **argv) {
    const char *db = NULL, *name = NULL, *model = NULL, *verb = argc > 0 ? argv[0] : "";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--db") && v) { db = v; i++; }
        else if (!strcmp(a, "--model") && v) { model = v; i++; }
        else if (a[0] != '-' && !name) name = a;
        else { fprintf(stderr, "forkpoint profile: unexpected argument %s\n", a); return 2; }
    }
    bool list = !strcmp(verb, "list"), reset = !strcmp(verb, "reset"), show = !strcmp(verb, "show");
    if (!list && !reset && !show) {
        fprintf(stderr, "usage: forkpoint profile list|reset|show --db PATH [NAME]\n");
        return 2;
    }
    if (!db) { fprintf(stderr, "forkpoint profile: --db is required\n"); return 2; }
    if (!list && !name) { fprintf(stderr, "forkpoint profile %s: which profile?\n", verb); return 2; }
    fp_error err = {0};
    fp_store *st = fp_store_open(db, false, &err);
    if (!st) { fprintf(stderr, "forkpoint profile: %s\n", err.message); return 2; }
    int rc = 0;
    if (list) {
        if (fp_store_profile_list(st, stdout, &err) != FP_OK) rc = 2;
    } else if (reset) {
        if (fp_store_profile_reset(st, name, &err) != FP_OK) rc = 2;
        else printf("profile %s reset\n", name);
    } else {
        char path[PATH_MAX], sha[65];
        fp_prefs *p = NULL;
        if (fp_resolve_default_model(model, path, sizeof path, &err) != FP_OK || fp_sha256_file(path, sha, &err) != FP_OK
            || fp_store_profile_load(st, name, sha, &p, &err) != FP_OK)
            rc = 2;
        else if (!p) { snprintf(err.message, sizeof err.message, "unknown profile \"%s\"", name); rc = 2; }
        else {
            cli_profile_print(stdout, name, p, fp_store_count(st, name));
            fp_prefs_free(p);
        }
    }
    if (rc) fprintf(stderr, "forkpoint profile: %s\n", err.message);
    fp_store_close(st);
    return rc;
}
