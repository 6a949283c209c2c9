/*
 * fuzz_common.h — what the libFuzzer harnesses in fuzz/ share.
 *
 * Why: every harness needs a NUL-terminated copy of its input, some need the
 * test model loaded once, and all must fail loudly (abort, which libFuzzer
 * reports as a crash) when an invariant of the code under test breaks.
 */
#ifndef FP_FUZZ_COMMON_H
#define FP_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "forkpoint.h"
#include "forkpoint_learn.h"

/* Aborts with a message when cond is false: the fuzzer records the input.
 * The message goes to fz_report, a copy of stderr taken before libFuzzer
 * starts, so it is seen even under -close_fd_mask=2 (which silences what
 * the code under test prints). */
extern FILE *fz_report;
#define FZ_CHECK(cond, ...) do { if (!(cond)) { FILE *fz_f_ = fz_report ? fz_report : stderr; \
    fprintf(fz_f_, "fuzz invariant failed: %s: ", #cond); fprintf(fz_f_, __VA_ARGS__); fputc('\n', fz_f_); \
    fflush(fz_f_); abort(); } } while (0)

/* A malloc'd NUL-terminated copy of data[0..n). Aborts if out of memory. */
char *fz_strndup(const uint8_t *data, size_t n);

/* The directory of the test models: $FP_TEST_MODELS, else ../shared/models. */
const char *fz_models_dir(void);

/* Loads stories260K (and an engine on it) once per process; aborts when the
 * model is missing, since a harness that cannot reach its target must not
 * pass silently. */
void fz_model_engine(fp_model **model, fp_engine **engine);

/* Splits data at the byte sep into at most max fields (pointers into a
 * malloc'd NUL-terminated copy, *buf, freed by the caller). Returns the count. */
int fz_split(const uint8_t *data, size_t n, char sep, char **fields, int max, char **buf);

#endif
