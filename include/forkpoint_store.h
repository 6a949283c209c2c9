/*
 * forkpoint_store.h — the decision log and preference profiles, in SQLite.
 *
 * A separate small library over the core (libforkpoint_store.a): the core
 * stays free of storage, front ends that keep history link this as well.
 *
 * Every decision is written in its own transaction the moment it is made
 * (WAL journal, so a killed process loses nothing that was committed).
 * Profiles hold a person's learned preferences (fp_prefs), tied to the model
 * they were learned on by the model file's sha256.
 */
#ifndef FORKPOINT_STORE_H
#define FORKPOINT_STORE_H

#include "forkpoint.h"
#include "forkpoint_learn.h"
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fp_store fp_store;

/* Opens (create = true: creates if missing) a store. An existing file that is
 * not a Forkpoint store, or is damaged, is refused with a clear error. */
fp_store *fp_store_open(const char *path, bool create, fp_error *err);
void      fp_store_close(fp_store *st);

typedef struct fp_decision_meta {
    const char *session_id;    /* any stable id of the writing session */
    const char *profile;       /* whose decision ("default" when NULL) */
    const char *model_sha256;  /* the model file's sha256 */
    const char *modality;      /* mouse, touch, keyboard, dwell, switch, script, api, ... */
} fp_decision_meta;

/* Logs the session's decisions from event `from` to the last one, each in
 * its own transaction; returns the number of the next event to log. The
 * context (text and tokens before each fork) is read from the session, so
 * call it right after the decisions, before the path changes. */
int32_t fp_store_log_events(fp_store *st, const fp_session *s, int32_t from,
                            const fp_decision_meta *meta, fp_error *err);
int64_t fp_store_count(fp_store *st, const char *profile);   /* -1 on error */

typedef enum fp_export_format {
    FP_EXPORT_SFT = 0,   /* {"prompt","completion"} per decision */
    FP_EXPORT_PAIRS,     /* {"prompt","chosen","rejected"} per rejected candidate */
    FP_EXPORT_KTO,       /* {"prompt","completion","label"} chosen true, rejected false */
    FP_EXPORT_RAW        /* the logged records as JSON lines */
} fp_export_format;

/* Parses "sft", "pairs", "kto", "raw"; false if unknown. */
bool      fp_export_format_parse(const char *name, fp_export_format *out);
/* Writes a dataset; profile NULL = everyone. Returns FP_ERR_ARG for an
 * unknown profile and FP_ERR_EMPTY when there is nothing to export. */
fp_status fp_store_export(fp_store *st, fp_export_format fmt, const char *profile, FILE *out,
                          int64_t *n_rows, fp_error *err);

/* A person's decision as training data: what came before the fork and what
 * they chose there. Only human decisions by index or by typing (automatic
 * ones were nobody's choice). */
typedef struct fp_logged_choice {
    int32_t *context;  int32_t n_context;   /* tokens before the fork (with BOS) */
    int32_t *chosen;   int32_t n_chosen;    /* the chosen candidate's tokens; 0 when typed */
    int32_t *accepted; int32_t n_accepted;  /* its preview, when that was accepted too */
    int32_t *rejected; int32_t n_rejected;  /* the most probable candidate not chosen; 0 if none */
    char    *typed;                         /* the typed text, or NULL */
} fp_logged_choice;

/* Reads the human decisions of a profile (NULL = everyone) logged with the
 * model whose sha256 is given, oldest first; *out is malloc'd, free it with
 * fp_store_choices_free. FP_ERR_ARG for an unknown profile, FP_ERR_MODEL when
 * every decision was logged with another model, FP_ERR_EMPTY when none is
 * usable. Decisions logged with other models are skipped (*n_other counts
 * them; may be NULL). */
fp_status fp_store_choices(fp_store *st, const char *profile, const char *model_sha256,
                           fp_logged_choice **out, int32_t *n, int32_t *n_other, fp_error *err);
void      fp_store_choices_free(fp_logged_choice *c, int32_t n);

/* Profiles. Load: *out is NULL when the profile does not exist yet;
 * FP_ERR_MODEL when it was learned on another model. */
fp_status fp_store_profile_load(fp_store *st, const char *name, const char *model_sha256,
                                fp_prefs **out, fp_error *err);
fp_status fp_store_profile_save(fp_store *st, const char *name, const char *model_sha256,
                                const fp_prefs *p, fp_error *err);
/* Forgets a profile's learned preferences (its logged decisions stay). */
fp_status fp_store_profile_reset(fp_store *st, const char *name, fp_error *err);
/* One line per profile: name, decisions learned, model. */
fp_status fp_store_profile_list(fp_store *st, FILE *out, fp_error *err);

#ifdef __cplusplus
}
#endif
#endif
