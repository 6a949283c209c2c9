/*
 * store_int.h — what the files of the store library share: the connection
 * and the error helper. Nothing here is public (include/forkpoint_store.h is).
 *
 * store.c    the connection, the schema and its migrations, the decision
 *            log, exports, profiles
 * sessions.c stories: snapshots, their changes, versions
 */
#ifndef FP_STORE_INT_H
#define FP_STORE_INT_H

#include "forkpoint_store.h"
#include <sqlite3.h>

struct fp_store {
    sqlite3 *db;
};

double    fpi_store_now(void);   /* unix seconds */
/* One decision row for event i of s (inside the caller's transaction);
 * *bytes (may be NULL) gets the bytes of text bound. */
fp_status fpi_store_log_one(fp_store *st, const fp_session *s, int32_t i, const fp_decision_meta *m, int64_t *bytes,
                            fp_error *err);
/* fp_store_profile_save inside the caller's transaction. */
fp_status fpi_store_profile_put(fp_store *st, const char *name, const char *sha, const fp_prefs *p, int64_t *bytes,
                                fp_error *err);
/* BEGIN IMMEDIATE / COMMIT / ROLLBACK. */
fp_status fpi_store_begin(fp_store *st, fp_error *err);
fp_status fpi_store_commit(fp_store *st, fp_error *err);
void      fpi_store_rollback(fp_store *st);

#endif
