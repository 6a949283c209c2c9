/*
 * testing.h — what the project's own tests and benchmarks may look at and
 * do inside the engine, and users may not: decode counters, and a hook that
 * makes a decode fail.
 *
 * Why apart from forkpoint.h: these are not part of the library's contract;
 * they exist so that tests can prove properties (no accepted token decoded
 * twice, a failed decode changes nothing) and benchmarks can count work.
 */
#ifndef FP_TESTING_H
#define FP_TESTING_H

#include "forkpoint.h"

/* llama_decode calls made so far, and the tokens they carried. */
uint64_t fpi_engine_decode_calls(const fp_engine *engine);
uint64_t fpi_engine_decoded_tokens(const fp_engine *engine);
/* Continuation tokens taken from a preview's plan where the trunk's own
 * decode would have picked another (last-bit float differences between a
 * batched branch decode and the trunk's; see session.c). */
uint64_t fpi_engine_plan_held(const fp_engine *engine);
/* The nth decode from now fails with FP_ERR_DECODE, decoding nothing
 * (0 = none); returns how many decodes were still to go before it (0 once
 * it fired). */
int64_t  fpi_engine_fail_decode(fp_engine *engine, int64_t nth);

/* Feature ablation for bench_learning (what each feature adds): the
 * preferences leave out the groups in mask from then on. */
#include "forkpoint_learn.h"
enum { FPI_PREFS_NO_MEANING = 1, FPI_PREFS_NO_WORDS = 2, FPI_PREFS_NO_CONTEXT = 4 };
void     fpi_prefs_ablate(fp_prefs *p, unsigned mask);

#endif
