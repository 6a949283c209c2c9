/*
 * db.c — the store's connection: SQLite (a file, the embedded default) or
 * PostgreSQL (a postgresql:// URL, through libpq, for several servers
 * sharing one database), behind one small query interface (store_int.h).
 *
 * Why a layer of our own and not two stores: the schema, the decision log,
 * stories and profiles are written once (store.c, sessions.c); only how a
 * statement is run and read differs. Cost: SQLite prepares each statement
 * per call (microseconds); PostgreSQL sends each as one PQexecParams round
 * trip (on loopback ~0.1 ms) and holds its whole result.
 *
 * Faults: a PostgreSQL server that goes away gives FP_ERR_IO with "lost the
 * connection to PostgreSQL"; nothing crashes. A lost connection is
 * re-established (PQreset) only where nothing is in flight: before a
 * transaction starts, or before a statement outside one; a BEGIN or a
 * SELECT outside a transaction that finds it dead is sent once more on the
 * new one (neither changed anything). Inside a transaction the transaction
 * is gone with the connection, so the caller gets the error and its write
 * is not committed (it retries as a whole).
 */
#include "store/store_int.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_PARAMS 24

bool fpi_db_is_url(const char *path)
{
    return path && (strncmp(path, "postgresql://", 13) == 0 || strncmp(path, "postgres://", 11) == 0);
}

static void set_msg(fp_store *st, const char *m)
{
    snprintf(st->msg, sizeof st->msg, "%s", m && *m ? m : "unknown error");
    size_t n = strlen(st->msg);
    while (n && (st->msg[n - 1] == '\n' || st->msg[n - 1] == ' ')) st->msg[--n] = 0;
}

/* PostgreSQL: the message for a failed call, naming a lost connection as such. */
static void pg_msg(fp_store *st, const PGresult *r)
{
    if (PQstatus(st->pg) == CONNECTION_BAD) {
        char b[400];
        snprintf(b, sizeof b, "lost the connection to PostgreSQL: %s", PQerrorMessage(st->pg));
        set_msg(st, b);
        st->in_tx = false;
        return;
    }
    set_msg(st, r ? PQresultErrorMessage(r) : PQerrorMessage(st->pg));
}

/* Every connection's settings. Why: the servers share rows (a story's, the
 * version counter's); one that stops mid-transaction (a hung process, a
 * SIGSTOP) must not hold their locks for ever, and one waiting for a lock
 * gets an error it can answer (503, retryable) instead of hanging. */
static void pg_setup(fp_store *st)
{
    PQclear(PQexec(st->pg, "SET idle_in_transaction_session_timeout = '10s'; SET lock_timeout = '5s';"
                           " SET client_min_messages = warning"));
}

/* Reconnects a lost connection when nothing is in flight. Cost: one new
 * connection (a few ms) when it was lost, else nothing. */
static void pg_heal(fp_store *st)
{
    if (st->in_tx || PQstatus(st->pg) == CONNECTION_OK) return;
    PQreset(st->pg);
    if (PQstatus(st->pg) == CONNECTION_OK) pg_setup(st);
}

/* SQL with `?` placeholders as PostgreSQL's `$n` (outside quoted text);
 * *n_marks gets how many. O(length of sql). */
static char *pg_sql(const char *sql, int *n_marks)
{
    size_t n = strlen(sql), cap = n * 3 + 1;
    char *o = malloc(cap);
    if (!o) return NULL;
    size_t j = 0;
    int k = 0;
    char quote = 0;
    for (size_t i = 0; i < n; i++) {
        char c = sql[i];
        if (quote) { if (c == quote) quote = 0; o[j++] = c; continue; }
        if (c == '\'' || c == '"') { quote = c; o[j++] = c; continue; }
        if (c == '?') { j += (size_t)snprintf(o + j, cap - j, "$%d", ++k); continue; }
        o[j++] = c;
    }
    o[j] = 0;
    *n_marks = k;
    return o;
}

static bool q_run(fp_store *st, fpi_q *q, const char *sql, const char *fmt, va_list ap)
{
    memset(q, 0, sizeof *q);
    q->st = st;
    q->first = true;
    size_t nfmt = strlen(fmt);
    if (nfmt > MAX_PARAMS) { set_msg(st, "too many parameters"); return false; }
    if (st->kind == FPI_SQLITE) {
        if (sqlite3_prepare_v2(st->db, sql, -1, &q->stmt, NULL) != SQLITE_OK) {
            set_msg(st, sqlite3_errmsg(st->db));
            return false;
        }
        for (int i = 0; fmt[i]; i++) {
            switch (fmt[i]) {
            case 't': { const char *s = va_arg(ap, const char *);
                        if (s) sqlite3_bind_text(q->stmt, i + 1, s, -1, SQLITE_STATIC);
                        else sqlite3_bind_null(q->stmt, i + 1);
                        break; }
            case 'T': { const char *s = va_arg(ap, const char *); int len = va_arg(ap, int);
                        sqlite3_bind_text(q->stmt, i + 1, s, len, SQLITE_STATIC); break; }
            case 'i': sqlite3_bind_int64(q->stmt, i + 1, va_arg(ap, int64_t)); break;
            case 'd': sqlite3_bind_double(q->stmt, i + 1, va_arg(ap, double)); break;
            case 'b': { const void *b = va_arg(ap, const void *); size_t len = va_arg(ap, size_t);
                        sqlite3_bind_blob64(q->stmt, i + 1, b, len, SQLITE_STATIC); break; }
            default: set_msg(st, "bad parameter format"); sqlite3_finalize(q->stmt); q->stmt = NULL; return false;
            }
        }
        assert(sqlite3_bind_parameter_count(q->stmt) == (int)nfmt); /* one value per placeholder */
        q->rc = sqlite3_step(q->stmt);
        if (q->rc != SQLITE_ROW && q->rc != SQLITE_DONE) {
            set_msg(st, sqlite3_errmsg(st->db));
            sqlite3_finalize(q->stmt);
            q->stmt = NULL;
            return false;
        }
        q->changes = q->rc == SQLITE_DONE ? sqlite3_changes(st->db) : 0;
        q->ok = true;
        return true;
    }
    /* PostgreSQL: every value as text except blobs (binary); results as text */
    const char *vals[MAX_PARAMS];
    int lens[MAX_PARAMS], fmts[MAX_PARAMS];
    char nums[MAX_PARAMS][32];
    char *owned[MAX_PARAMS] = {0};
    bool bad = false;
    for (int i = 0; fmt[i]; i++) {
        lens[i] = 0;
        fmts[i] = 0;
        switch (fmt[i]) {
        case 't': vals[i] = va_arg(ap, const char *); break;
        case 'T': { const char *s = va_arg(ap, const char *); int len = va_arg(ap, int);
                    /* libpq reads text to its NUL: copy the prefix */
                    owned[i] = malloc((size_t)len + 1);
                    if (!owned[i]) { bad = true; vals[i] = NULL; break; }
                    memcpy(owned[i], s, (size_t)len);
                    owned[i][len] = 0;
                    vals[i] = owned[i]; break; }
        case 'i': snprintf(nums[i], sizeof nums[i], "%lld", (long long)va_arg(ap, int64_t)); vals[i] = nums[i]; break;
        case 'd': snprintf(nums[i], sizeof nums[i], "%.17g", va_arg(ap, double)); vals[i] = nums[i]; break;
        case 'b': vals[i] = va_arg(ap, const void *); lens[i] = (int)va_arg(ap, size_t); fmts[i] = 1; break;
        default: bad = true; vals[i] = NULL;
        }
    }
    int marks = 0;
    char *psql = bad ? NULL : pg_sql(sql, &marks);
    if (psql) {
        assert(marks == (int)nfmt); /* one value per placeholder */
        if (!st->in_tx) pg_heal(st);
        q->res = PQexecParams(st->pg, psql, (int)nfmt, NULL, vals, lens, fmts, 0);
        /* a read outside a transaction that found the connection dead (the
         * server restarted since the last statement) changed nothing: once
         * more on a new connection */
        if (!st->in_tx && PQstatus(st->pg) == CONNECTION_BAD && strncmp(sql, "SELECT", 6) == 0) {
            PQclear(q->res);
            pg_heal(st);
            q->res = PQexecParams(st->pg, psql, (int)nfmt, NULL, vals, lens, fmts, 0);
        }
    }
    bool sent = psql != NULL;
    free(psql);
    for (size_t i = 0; i < nfmt; i++) free(owned[i]);
    if (!q->res) {
        if (!sent) set_msg(st, "out of memory or bad parameter format");
        else pg_msg(st, NULL);
        return false;
    }
    ExecStatusType es = PQresultStatus(q->res);
    if (es != PGRES_TUPLES_OK && es != PGRES_COMMAND_OK) {
        pg_msg(st, q->res);
        PQclear(q->res);
        q->res = NULL;
        return false;
    }
    q->nrows = es == PGRES_TUPLES_OK ? PQntuples(q->res) : 0;
    q->row = -1;
    const char *ct = PQcmdTuples(q->res);
    q->changes = ct && *ct ? strtoll(ct, NULL, 10) : 0;
    q->ok = true;
    return true;
}

bool fpi_q_run(fp_store *st, fpi_q *q, const char *sql, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bool ok = q_run(st, q, sql, fmt, ap);
    va_end(ap);
    return ok;
}

bool fpi_q_step(fpi_q *q)
{
    if (!q->ok) return false;
    if (q->st->kind == FPI_SQLITE) {
        if (!q->first) q->rc = sqlite3_step(q->stmt);
        q->first = false;
        if (q->rc == SQLITE_ROW) return true;
        if (q->rc != SQLITE_DONE) { set_msg(q->st, sqlite3_errmsg(q->st->db)); q->ok = false; }
        return false;
    }
    free(q->blob);
    q->blob = NULL;
    return ++q->row < q->nrows;
}

void fpi_q_end(fpi_q *q)
{
    if (q->stmt) sqlite3_finalize(q->stmt);
    if (q->res) PQclear(q->res);
    free(q->blob);
    q->stmt = NULL;
    q->res = NULL;
    q->blob = NULL;
}

const char *fpi_q_text(fpi_q *q, int col)
{
    if (q->st->kind == FPI_SQLITE) return (const char *)sqlite3_column_text(q->stmt, col);
    return PQgetisnull(q->res, q->row, col) ? NULL : PQgetvalue(q->res, q->row, col);
}

int fpi_q_bytes(fpi_q *q, int col)
{
    if (q->st->kind == FPI_SQLITE) return sqlite3_column_bytes(q->stmt, col);
    return PQgetlength(q->res, q->row, col);
}

int64_t fpi_q_int(fpi_q *q, int col)
{
    if (q->st->kind == FPI_SQLITE) return sqlite3_column_int64(q->stmt, col);
    const char *t = fpi_q_text(q, col);
    return t ? strtoll(t, NULL, 10) : 0;
}

double fpi_q_double(fpi_q *q, int col)
{
    if (q->st->kind == FPI_SQLITE) return sqlite3_column_double(q->stmt, col);
    const char *t = fpi_q_text(q, col);
    return t ? strtod(t, NULL) : 0;
}

const void *fpi_q_blob(fpi_q *q, int col, size_t *len)
{
    if (q->st->kind == FPI_SQLITE) {
        *len = (size_t)sqlite3_column_bytes(q->stmt, col);
        return sqlite3_column_blob(q->stmt, col);
    }
    /* bytea comes as text (\x hex): unescaped, kept until the next row */
    free(q->blob);
    q->blob = NULL;
    *len = 0;
    const char *t = fpi_q_text(q, col);
    if (!t) return NULL;
    unsigned char *b = PQunescapeBytea((const unsigned char *)t, len);
    if (!b) return NULL;
    q->blob = malloc(*len ? *len : 1);
    if (q->blob) memcpy(q->blob, b, *len);
    PQfreemem(b);
    return q->blob;
}

int64_t fpi_exec(fp_store *st, const char *sql, const char *fmt, ...)
{
    fpi_q q;
    va_list ap;
    va_start(ap, fmt);
    bool ok = q_run(st, &q, sql, fmt, ap);
    va_end(ap);
    int64_t n = ok ? q.changes : -1;
    fpi_q_end(&q);
    return n;
}

int fpi_exec_script(fp_store *st, const char *sql)
{
    if (st->kind == FPI_SQLITE) {
        char *m = NULL;
        int rc = sqlite3_exec(st->db, sql, NULL, NULL, &m);
        if (rc != SQLITE_OK) set_msg(st, m ? m : sqlite3_errstr(rc));
        sqlite3_free(m);
        return rc == SQLITE_OK ? 0 : -1;
    }
    if (!st->in_tx) pg_heal(st);
    PGresult *r = PQexec(st->pg, sql);
    int ok = r && (PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK);
    if (!ok) pg_msg(st, r);
    PQclear(r);
    return ok ? 0 : -1;
}

/* ------------------------------------------------------------ connections */

/* Notices (e.g. "relation already exists, skipping") are not errors: quiet. */
static void pg_quiet(void *arg, const char *message) { (void)arg; (void)message; }

fp_store *fpi_db_open(const char *path, bool create, fp_error *err)
{
    fp_store *st = calloc(1, sizeof *st);
    if (!st) { fp_error_set(err, FP_ERR_NOMEM, "out of memory"); return NULL; }
    if (fpi_db_is_url(path)) {
        st->kind = FPI_PG;
        st->pg = PQconnectdb(path);
        if (!st->pg || PQstatus(st->pg) != CONNECTION_OK) {
            /* the URL may hold a password: name the server, never the URL */
            fp_error_set(err, FP_ERR_IO, "cannot connect to PostgreSQL: %s",
                         st->pg ? PQerrorMessage(st->pg) : "out of memory");
            size_t n = strlen(err ? err->message : "");
            while (err && n && err->message[n - 1] == '\n') err->message[--n] = 0;
            PQfinish(st->pg);
            free(st);
            return NULL;
        }
        PQsetNoticeProcessor(st->pg, pg_quiet, NULL);
        pg_setup(st);
        return st;
    }
    struct stat sb;
    if (!create && stat(path, &sb) != 0) { fp_error_set(err, FP_ERR_IO, "no database at %s", path); free(st); return NULL; }
    int flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) | SQLITE_OPEN_FULLMUTEX;
    if (sqlite3_open_v2(path, &st->db, flags, NULL) != SQLITE_OK) {
        fp_error_set(err, FP_ERR_IO, "cannot open database %s: %s", path, st->db ? sqlite3_errmsg(st->db) : "out of memory");
        sqlite3_close(st->db);
        free(st);
        return NULL;
    }
    sqlite3_busy_timeout(st->db, 5000);
    return st;
}

void fpi_db_close(fp_store *st)
{
    if (!st) return;
    if (st->db) sqlite3_close(st->db);
    if (st->pg) PQfinish(st->pg);
    free(st);
}

fp_status fpi_store_begin(fp_store *st, fp_error *err)
{
    if (st->kind == FPI_PG) pg_heal(st);
    int rc = fpi_exec_script(st, st->kind == FPI_SQLITE ? "BEGIN IMMEDIATE" : "BEGIN");
    /* a connection found dead by BEGIN had nothing in flight: once more on a new one */
    if (rc != 0 && st->kind == FPI_PG && PQstatus(st->pg) == CONNECTION_BAD) {
        pg_heal(st);
        rc = fpi_exec_script(st, "BEGIN");
    }
    if (rc != 0)
        return fp_error_set(err, FP_ERR_IO, "cannot start a transaction: %s", st->msg);
    st->in_tx = true;
    return FP_OK;
}

fp_status fpi_store_begin_read(fp_store *st, fp_error *err)
{
    if (st->kind == FPI_PG) pg_heal(st);
    /* SQLite in WAL reads one snapshot from a deferred BEGIN; PostgreSQL's
     * default (read committed) would let two reads see two states */
    const char *sql = st->kind == FPI_SQLITE ? "BEGIN" : "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
    int rc = fpi_exec_script(st, sql);
    if (rc != 0 && st->kind == FPI_PG && PQstatus(st->pg) == CONNECTION_BAD) { pg_heal(st); rc = fpi_exec_script(st, sql); }
    if (rc != 0)
        return fp_error_set(err, FP_ERR_IO, "cannot start a transaction: %s", st->msg);
    st->in_tx = true;
    return FP_OK;
}

fp_status fpi_store_commit(fp_store *st, fp_error *err)
{
    bool ok;
    if (st->kind == FPI_PG) {
        /* COMMIT of a transaction that failed answers "ROLLBACK", not an error */
        PGresult *r = PQexec(st->pg, "COMMIT");
        ok = r && PQresultStatus(r) == PGRES_COMMAND_OK && strcmp(PQcmdStatus(r), "COMMIT") == 0;
        if (!ok) { if (r && PQresultStatus(r) == PGRES_COMMAND_OK) set_msg(st, "the transaction was rolled back"); else pg_msg(st, r); }
        PQclear(r);
    } else {
        ok = fpi_exec_script(st, "COMMIT") == 0;
    }
    if (!ok) {
        fp_error_set(err, FP_ERR_IO, "cannot commit: %s", st->msg);
        fpi_store_rollback(st);
        return FP_ERR_IO;
    }
    st->in_tx = false;
    return FP_OK;
}

void fpi_store_rollback(fp_store *st)
{
    if (st->kind == FPI_SQLITE) {
        if (!sqlite3_get_autocommit(st->db)) sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    } else if (st->in_tx) {
        if (PQstatus(st->pg) == CONNECTION_OK) PQclear(PQexec(st->pg, "ROLLBACK"));
    }
    st->in_tx = false;
}
