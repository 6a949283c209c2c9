/*
 * harness.h — a small test harness: CHECK counts, TEST groups, a closing
 * "N passed, N failed" line, and helpers to find the real test models.
 *
 * Every check is counted; a failed one prints its file, line and condition
 * and the run goes on, so one broken behaviour does not hide the others.
 */
#ifndef FP_HARNESS_H
#define FP_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>

static int h_passed, h_failed;
static const char *h_test = "";

#define TEST(name) do { h_test = name; fprintf(stderr, "-- %s\n", name); } while (0)
#define CHECK(cond) do { if (cond) h_passed++; else { h_failed++; \
    fprintf(stderr, "FAIL %s: %s:%d: %s\n", h_test, __FILE__, __LINE__, #cond); } } while (0)
#define CHECKF(cond, ...) do { if (cond) h_passed++; else { h_failed++; \
    fprintf(stderr, "FAIL %s: %s:%d: %s: ", h_test, __FILE__, __LINE__, #cond); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)

static int h_finish(void) {
    printf("%d passed, %d failed\n", h_passed, h_failed);
    return h_failed ? 1 : 0;
}

/* The models folder: $FP_TEST_MODELS, else ../shared/models beside the repo. */
static const char *h_models(void) {
    const char *d = getenv("FP_TEST_MODELS");
    return d && *d ? d : "../shared/models";
}

static const char *h_model_path(const char *name) {
    static char buf[8][1024];
    static int next;
    char *b = buf[next++ % 8];
    snprintf(b, 1024, "%s/%s", h_models(), name);
    return b;
}

#ifdef FORKPOINT_H
/* stories260K and a one-thread engine on it; prints the failure line and
 * returns false if either cannot be made. */
static inline bool h_open_stories(fp_model **model, fp_engine **engine) {
    fp_error err = {0};
    *engine = NULL;
    *model = fp_model_load(h_model_path("stories260K.gguf"), NULL, &err);
    if (*model) {
        fp_engine_params ep = fp_engine_default_params();
        ep.n_threads = 1;
        *engine = fp_engine_new(*model, &ep, &err);
    }
    if (!*engine) {
        fprintf(stderr, "%s\n", err.message);
        printf("0 passed, 1 failed\n");
        fp_model_free(*model);
        return false;
    }
    return true;
}
#endif

#endif
