/*
 * store_int.h — what the files of the store library share: the connection
 * (SQLite or PostgreSQL), one small query interface over both, and the
 * error helper. Nothing here is public (include/forkpoint_store.h is).
 *
 * db.c       the two connections behind one query interface: open, run a
 *            statement with bound values, read its rows, transactions,
 *            reconnecting a lost PostgreSQL connection where that is safe
 * store.c    the schema and its migrations, the decision log, exports, profiles
 * sessions.c stories: snapshots, their changes, versions
 * chats.c    chats: dialogues kept as messages and an open turn
 *
 * SQL is written once, with `?` placeholders, in the dialect both accept
 * (upserts with ON CONFLICT, no scalar max()); db.c turns `?` into `$n`
 * for PostgreSQL. Where the dialects differ (column types, the schema
 * version's home) store.c says so.
 */
#ifndef FP_STORE_INT_H
#define FP_STORE_INT_H

#include "forkpoint_store.h"
#include <libpq-fe.h>
#include <sqlite3.h>

typedef enum fpi_db_kind { FPI_SQLITE = 0, FPI_PG } fpi_db_kind;

struct fp_store {
    fpi_db_kind kind;
    sqlite3 *db;             /* FPI_SQLITE */
    PGconn  *pg;             /* FPI_PG */
    bool     in_tx;          /* FPI_PG: inside BEGIN (a lost connection then loses the transaction) */
    char     msg[512];       /* the last database error, for messages */
    /* the profile last read or written through this handle and its row's
     * `updated`: a write of it checks that nobody wrote it since */
    char     prof_name[128];
    double   prof_stamp;
    bool     prof_known;
};

/* One statement being read. Between fpi_q_run and fpi_q_end; rows by
 * fpi_q_step. SQLite steps the statement; PostgreSQL holds the whole
 * result (PQexecParams), so a query reads all its rows at once. */
typedef struct fpi_q {
    fp_store     *st;
    sqlite3_stmt *stmt;
    int           rc;        /* SQLite: the last step's result */
    PGresult     *res;
    int           row, nrows;
    bool          first, ok;
    int64_t       changes;   /* rows changed by an INSERT/UPDATE/DELETE */
    unsigned char *blob;     /* PostgreSQL: the last unescaped bytea */
} fpi_q;

/* Runs sql with values bound from fmt: 't' text (NULL binds NULL), 'T' text
 * and an int length, 'i' int64, 'd' double, 'b' blob and a size_t length.
 * True when it ran; else false with st->msg set (and the query ended). */
bool        fpi_q_run(fp_store *st, fpi_q *q, const char *sql, const char *fmt, ...);
bool        fpi_q_step(fpi_q *q);                   /* the next row; false at the end or on error (q->ok false) */
void        fpi_q_end(fpi_q *q);
const char *fpi_q_text(fpi_q *q, int col);          /* NULL for NULL */
int         fpi_q_bytes(fpi_q *q, int col);
int64_t     fpi_q_int(fpi_q *q, int col);
double      fpi_q_double(fpi_q *q, int col);
const void *fpi_q_blob(fpi_q *q, int col, size_t *len);
/* A statement without rows: the rows it changed, or -1 (st->msg set). */
int64_t     fpi_exec(fp_store *st, const char *sql, const char *fmt, ...);
/* Several statements without bound values (the schema). 0 or -1. */
int         fpi_exec_script(fp_store *st, const char *sql);

/* Opens the connection given by path (a postgresql:// or postgres:// URL
 * for PostgreSQL, else a SQLite file). NULL with err set. */
fp_store   *fpi_db_open(const char *path, bool create, fp_error *err);
void        fpi_db_close(fp_store *st);
bool        fpi_db_is_url(const char *path);

double    fpi_store_now(void);   /* unix seconds */
/* One decision row for event i of s (inside the caller's transaction);
 * *bytes (may be NULL) gets the bytes of text bound. */
fp_status fpi_store_log_one(fp_store *st, const fp_session *s, int32_t i, const fp_decision_meta *m, int64_t *bytes,
                            fp_error *err);
/* fp_store_profile_save inside the caller's transaction. */
fp_status fpi_store_profile_put(fp_store *st, const char *name, const char *sha, const fp_prefs *p, int64_t *bytes,
                                fp_error *err);
/* sessions.c's row reader (the columns of its ROW_COLS, which chats.c
 * selects too) and a text column as a malloc'd string (NULL for NULL or
 * out of memory). */
#define FPI_ROW_COLS "s.id, s.title, s.created, s.updated, s.version, s.model_sha256, s.model_path, s.kind"
void      fpi_store_read_row(fpi_q *q, fp_story_info *r);
char     *fpi_store_dup_col(fpi_q *q, int i);
/* BEGIN (IMMEDIATE on SQLite) / COMMIT / ROLLBACK. Begin reconnects a lost
 * PostgreSQL connection first (nothing is in flight then). */
fp_status fpi_store_begin(fp_store *st, fp_error *err);
fp_status fpi_store_begin_read(fp_store *st, fp_error *err);   /* one consistent view for reads */
fp_status fpi_store_commit(fp_store *st, fp_error *err);
void      fpi_store_rollback(fp_store *st);

#endif
