/*
 * vivid_person.h — the simulated person the learning tests share: a hidden,
 * consistent taste for long words over plain ones, judged against the
 * model's own probability (bench/bench_learning's "vivid" user).
 */
#ifndef FP_VIVID_PERSON_H
#define FP_VIVID_PERSON_H

#include "forkpoint.h"
#include <math.h>
#include <string.h>
#include <strings.h>

/* u(c) = log p(c) + 0.45 per letter, - 2.5 for a plain word, - 2 for the end. */
static float vivid_utility(const fp_candidate *c) {
    static const char *plain[] = { "the", "a", "and", "was", "to", "her", "his", "it", "he", "she", "they", NULL };
    const char *t = c->text;
    while (*t == ' ') t++;
    float v = logf(c->prob > 1e-9f ? c->prob : 1e-9f) + 0.45f * (float)strlen(t);
    for (int i = 0; plain[i]; i++) if (strcasecmp(t, plain[i]) == 0) v -= 2.5f;
    return c->is_eog ? v - 2.0f : v;
}

/* The candidate the person picks: the highest utility. */
static int32_t vivid_pick(const fp_fork *f) {
    int32_t b = 0;
    for (int32_t i = 1; i < f->n_candidates; i++)
        if (vivid_utility(&f->candidates[i]) > vivid_utility(&f->candidates[b])) b = i;
    return b;
}

#endif
