/*
 * store.c — the one SQLite module: the connection, the schema and its
 * migrations, the decision log, datasets and profiles. Stories (the
 * server's sessions) are in sessions.c over the same connection.
 *
 * Durability: WAL journal with synchronous=NORMAL; every decision is written
 * in a committed transaction (with the story's change, when a story is
 * being kept: sessions.c), so a process killed right after a choice has it
 * on disk (the WAL is written before COMMIT returns).
 *
 * Schema versions (PRAGMA user_version): 0 is a database made before the
 * schema was versioned (decisions and profiles by this library, a sessions
 * table of whole JSON documents by the server); 2 is the current one (see
 * docs/storage.md). Opening upgrades an older database in one transaction;
 * a newer one is refused.
 *
 * Invariant: a row of `decisions` is immutable once written; exports only
 * read. A profile row is replaced whole (its blob is fp_prefs_save's bytes).
 */
#include "store/store_int.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define SCHEMA_VERSION 2

#define fail fp_error_set

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS decisions("
    " id INTEGER PRIMARY KEY,"
    " at REAL NOT NULL,"                 /* unix seconds */
    " session TEXT NOT NULL,"
    " profile TEXT NOT NULL,"
    " model_sha256 TEXT NOT NULL,"
    " settings TEXT NOT NULL,"           /* JSON object */
    " context TEXT NOT NULL,"            /* the text before the fork */
    " context_tokens TEXT NOT NULL,"     /* JSON array */
    " fork TEXT NOT NULL,"               /* the fork event: candidates, probabilities, previews, choice */
    " choice_kind TEXT NOT NULL,"
    " choice_index INTEGER NOT NULL,"
    " accept_preview INTEGER NOT NULL,"
    " typed TEXT,"
    " chooser TEXT NOT NULL,"
    " modality TEXT NOT NULL,"
    " ms REAL NOT NULL,"
    " event INTEGER);"                   /* the event's number in its session (NULL before version 2) */
    "CREATE INDEX IF NOT EXISTS decisions_profile ON decisions(profile, id);"
    "CREATE INDEX IF NOT EXISTS decisions_session ON decisions(session, event);"
    "CREATE TABLE IF NOT EXISTS profiles("
    " name TEXT PRIMARY KEY,"
    " model_sha256 TEXT NOT NULL,"
    " n_learned INTEGER NOT NULL,"
    " data BLOB NOT NULL,"
    " updated REAL NOT NULL);"
    /* a story's small row is updated on every write; its snapshot (MBs for a
     * long story) lives in a table of its own, so that update never copies it */
    "CREATE TABLE IF NOT EXISTS sessions("
    " id TEXT PRIMARY KEY,"
    " title TEXT NOT NULL,"
    " created INTEGER NOT NULL,"         /* unix seconds */
    " updated INTEGER NOT NULL,"
    " version INTEGER NOT NULL DEFAULT 0," /* the version of the last write */
    " seq INTEGER NOT NULL DEFAULT 0);"  /* the last change written */
    "CREATE INDEX IF NOT EXISTS sessions_updated ON sessions(updated);"
    "CREATE TABLE IF NOT EXISTS session_snapshots("
    " session TEXT PRIMARY KEY,"
    " seq INTEGER NOT NULL,"             /* the change it includes */
    " snapshot TEXT NOT NULL);"          /* fp_session_save's document */
    "CREATE TABLE IF NOT EXISTS session_changes("
    " session TEXT NOT NULL,"
    " seq INTEGER NOT NULL,"             /* session_snapshots.seq < seq <= sessions.seq */
    " version INTEGER NOT NULL,"
    " change TEXT NOT NULL,"             /* fp_session_save_changes's document */
    " PRIMARY KEY(session, seq)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS counters(name TEXT PRIMARY KEY, value INTEGER NOT NULL);";

/* Whether table t has column c (0 no, 1 yes, -1 no such table). */
static int has_column(sqlite3 *db, const char *t, const char *c) {
    sqlite3_stmt *q = NULL;
    int found = -1;
    if (sqlite3_prepare_v2(db, "SELECT name FROM pragma_table_info(?)", -1, &q, NULL) != SQLITE_OK) return -1;
    sqlite3_bind_text(q, 1, t, -1, SQLITE_STATIC);
    while (sqlite3_step(q) == SQLITE_ROW) {
        if (found < 0) found = 0;
        if (strcmp((const char *)sqlite3_column_text(q, 0), c) == 0) found = 1;
    }
    sqlite3_finalize(q);
    return found;
}

/* Brings the schema to SCHEMA_VERSION in one transaction. Version 0 -> 2:
 * decisions gain `event`; the server's sessions table (id, title, created,
 * updated, doc) keeps its rows, each doc moving to session_snapshots (a
 * format 1 document, which fp_session_restore reads) with version 0 and no
 * changes.
 * The version counter starts at the clock in milliseconds, where the old
 * server started its versions, so a page open across the upgrade sees them
 * go on growing. */
static int migrate(sqlite3 *db, char **msg) {
    int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, msg);
    if (rc != SQLITE_OK) return rc;
    sqlite3_stmt *q = NULL;
    int version = -1;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
        version = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    if (version == SCHEMA_VERSION) return sqlite3_exec(db, "COMMIT", NULL, NULL, msg);
    if (version < 0 || version > SCHEMA_VERSION) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        *msg = sqlite3_mprintf(version < 0 ? "cannot read its schema version"
                                           : "its schema version %d is newer than this Forkpoint's (%d)", version, SCHEMA_VERSION);
        return SQLITE_ERROR;
    }
    if (has_column(db, "decisions", "event") == 0)
        rc = sqlite3_exec(db, "ALTER TABLE decisions ADD COLUMN event INTEGER", NULL, NULL, msg);
    if (rc == SQLITE_OK) rc = sqlite3_exec(db, SCHEMA, NULL, NULL, msg); /* the tables that are missing */
    if (rc == SQLITE_OK && has_column(db, "sessions", "doc") == 1)
        rc = sqlite3_exec(db, "INSERT INTO session_snapshots(session, seq, snapshot) SELECT id, 0, doc FROM sessions;"
                              "ALTER TABLE sessions DROP COLUMN doc;"
                              "ALTER TABLE sessions ADD COLUMN version INTEGER NOT NULL DEFAULT 0;"
                              "ALTER TABLE sessions ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;", NULL, NULL, msg);
    if (rc == SQLITE_OK) {
        char sql[160];
        snprintf(sql, sizeof sql, "INSERT OR IGNORE INTO counters(name, value) VALUES('version', %lld);"
                 "PRAGMA user_version = %d;", (long long)time(NULL) * 1000LL, SCHEMA_VERSION);
        rc = sqlite3_exec(db, sql, NULL, NULL, msg);
    }
    if (rc == SQLITE_OK) rc = sqlite3_exec(db, "COMMIT", NULL, NULL, msg);
    else sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

fp_store *fp_store_open(const char *path, bool create, fp_error *err) {
    struct stat sb;
    if (!path || !*path) { fail(err, FP_ERR_ARG, "no database path"); return NULL; }
    if (!create && stat(path, &sb) != 0) { fail(err, FP_ERR_IO, "no database at %s", path); return NULL; }
    sqlite3 *db = NULL;
    int flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) | SQLITE_OPEN_FULLMUTEX;
    if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
        fail(err, FP_ERR_IO, "cannot open database %s: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, 5000);
    char *msg = NULL;
    int rc = sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", NULL, NULL, &msg);
    if (rc == SQLITE_OK) rc = migrate(db, &msg);
    if (rc == SQLITE_OK) { /* an existing table of another shape is not ours */
        rc = sqlite3_exec(db, "SELECT id, at, session, profile, model_sha256, settings, context, context_tokens, fork,"
                              " choice_kind, choice_index, accept_preview, typed, chooser, modality, ms, event FROM decisions LIMIT 0;"
                              "SELECT name, model_sha256, n_learned, data, updated FROM profiles LIMIT 0;"
                              "SELECT id, title, created, updated, version, seq FROM sessions LIMIT 0;"
                              "SELECT session, seq, snapshot FROM session_snapshots LIMIT 0;"
                              "SELECT session, seq, version, change FROM session_changes LIMIT 0;", NULL, NULL, &msg);
    }
    if (rc != SQLITE_OK) {
        fail(err, FP_ERR_IO, "%s is not a usable Forkpoint database: %s", path, msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        sqlite3_close(db);
        return NULL;
    }
    fp_store *st = calloc(1, sizeof *st);
    if (!st) { sqlite3_close(db); fail(err, FP_ERR_NOMEM, "out of memory"); return NULL; }
    st->db = db;
    return st;
}

void fp_store_close(fp_store *st) {
    if (!st) return;
    sqlite3_close(st->db);
    free(st);
}

int32_t fp_store_schema_version(fp_store *st) {
    sqlite3_stmt *q = NULL;
    int32_t v = -1;
    if (sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
        v = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    return v;
}

fp_status fpi_store_begin(fp_store *st, fp_error *err) {
    if (sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return fail(err, FP_ERR_IO, "cannot start a transaction: %s", sqlite3_errmsg(st->db));
    return FP_OK;
}

fp_status fpi_store_commit(fp_store *st, fp_error *err) {
    if (sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        fail(err, FP_ERR_IO, "cannot commit: %s", sqlite3_errmsg(st->db));
        fpi_store_rollback(st);
        return FP_ERR_IO;
    }
    return FP_OK;
}

void fpi_store_rollback(fp_store *st) {
    if (!sqlite3_get_autocommit(st->db)) sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
}

/* ---------------------------------------------------------------- log */

double fpi_store_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
#define unix_now fpi_store_now

static char *tokens_json(const int32_t *t, int32_t n) {
    cJSON *a = cJSON_CreateArray();
    for (int32_t i = 0; a && i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(t[i]));
    char *s = a ? cJSON_PrintUnformatted(a) : NULL;
    cJSON_Delete(a);
    return s;
}

fp_status fpi_store_log_one(fp_store *st, const fp_session *s, int32_t ev, const fp_decision_meta *m, int64_t *bytes,
                            fp_error *err) {
    const fp_fork *f = fp_session_event(s, ev);
    if (!f) return fail(err, FP_ERR_ARG, "no event %d", ev);
    const char *text = fp_session_text(s);
    size_t off = (size_t)f->text_offset;
    if (off > fp_session_text_len(s)) off = fp_session_text_len(s);
    int32_t npos = f->position <= fp_session_n_tokens(s) ? f->position : fp_session_n_tokens(s);
    char *fork = fp_fork_to_json(s, f);
    char *settings = fp_settings_to_json(fp_session_settings(s));
    char *toks = tokens_json(fp_session_tokens(s), npos);
    fp_status rc = FP_OK;
    sqlite3_stmt *q = NULL;
    if (!fork || !settings || !toks) { rc = fail(err, FP_ERR_NOMEM, "out of memory"); goto out; }
    if (sqlite3_prepare_v3(st->db,
            "INSERT INTO decisions(at, session, profile, model_sha256, settings, context, context_tokens, fork,"
            " choice_kind, choice_index, accept_preview, typed, chooser, modality, ms, event)"
            " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", -1, SQLITE_PREPARE_PERSISTENT, &q, NULL) != SQLITE_OK) {
        rc = fail(err, FP_ERR_IO, "cannot log a decision: %s", sqlite3_errmsg(st->db));
        goto out;
    }
    sqlite3_bind_double(q, 1, unix_now());
    sqlite3_bind_text(q, 2, m->session_id ? m->session_id : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 3, m->profile ? m->profile : "default", -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 4, m->model_sha256 ? m->model_sha256 : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 5, settings, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 6, text, (int)off, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 7, toks, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 8, fork, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 9, fp_choice_name(f->choice), -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 10, f->choice_index);
    sqlite3_bind_int(q, 11, f->choice == FP_CHOICE_INDEX_PREVIEW);
    if (f->choice == FP_CHOICE_TYPED) sqlite3_bind_text(q, 12, f->choice_text, -1, SQLITE_TRANSIENT);
    else sqlite3_bind_null(q, 12);
    sqlite3_bind_text(q, 13, fp_chooser_name(f->chooser), -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 14, m->modality ? m->modality : "unknown", -1, SQLITE_TRANSIENT);
    sqlite3_bind_double(q, 15, f->ms_to_choose);
    sqlite3_bind_int(q, 16, ev);
    if (sqlite3_step(q) != SQLITE_DONE) rc = fail(err, FP_ERR_IO, "cannot log a decision: %s", sqlite3_errmsg(st->db));
    else if (bytes) *bytes += (int64_t)(off + strlen(settings) + strlen(toks) + strlen(fork) + 160);
out:
    sqlite3_finalize(q);
    free(fork); free(settings); free(toks);
    return rc;
}

int32_t fp_store_log_events(fp_store *st, const fp_session *s, int32_t from, const fp_decision_meta *meta, fp_error *err) {
    int32_t n = fp_session_n_events(s);
    if (from < 0) from = 0;
    if (from >= n) return from;
    /* one transaction for the lot: each decision is there, or none of them */
    if (fpi_store_begin(st, err) != FP_OK) return from;
    for (int32_t i = from; i < n; i++)
        if (fpi_store_log_one(st, s, i, meta, NULL, err) != FP_OK) { fpi_store_rollback(st); return from; }
    return fpi_store_commit(st, err) == FP_OK ? n : from;
}

int64_t fp_store_count(fp_store *st, const char *profile) {
    sqlite3_stmt *q = NULL;
    int64_t n = -1;
    if (sqlite3_prepare_v2(st->db, profile ? "SELECT count(*) FROM decisions WHERE profile = ?"
                                           : "SELECT count(*) FROM decisions", -1, &q, NULL) != SQLITE_OK) return -1;
    if (profile) sqlite3_bind_text(q, 1, profile, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(q) == SQLITE_ROW) n = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return n;
}

/* ------------------------------------------------------------- export */

/* FP_OK if profile is NULL (everyone) or has logged decisions. */
static fp_status profile_known(fp_store *st, const char *profile, fp_error *err) {
    if (!profile) return FP_OK;
    int64_t c = fp_store_count(st, profile);
    if (c < 0) return fail(err, FP_ERR_IO, "cannot read the database: %s", sqlite3_errmsg(st->db));
    if (c == 0) return fail(err, FP_ERR_ARG, "unknown profile \"%s\" (no decisions logged)", profile);
    return FP_OK;
}

bool fp_export_format_parse(const char *name, fp_export_format *out) {
    static const char *names[] = { "sft", "pairs", "kto", "raw" };
    for (int i = 0; i < 4; i++)
        if (name && strcmp(name, names[i]) == 0) { *out = (fp_export_format)i; return true; }
    return false;
}

static void emit(FILE *out, cJSON *o, int64_t *n) {
    char *s = cJSON_PrintUnformatted(o);
    if (s) { fprintf(out, "%s\n", s); free(s); (*n)++; }
    cJSON_Delete(o);
}

/* A candidate's text with its preview: the continuation it stands for. */
static char *continuation(const cJSON *cand) {
    const char *t = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cand, "text"));
    const char *p = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cand, "preview"));
    size_t n = strlen(t ? t : "") + strlen(p ? p : "") + 1;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s%s", t ? t : "", p ? p : "");
    return s;
}

/* Rows of one decision in the chosen format. Automatic decisions (chooser
 * "auto") were nobody's choice: only the raw log has them. */
static void export_row(fp_export_format fmt, sqlite3_stmt *q, FILE *out, int64_t *n) {
    const char *context = (const char *)sqlite3_column_text(q, 6);
    const char *fork_s = (const char *)sqlite3_column_text(q, 8);
    const char *chooser = (const char *)sqlite3_column_text(q, 13);
    if (fmt == FP_EXPORT_RAW) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "id", (double)sqlite3_column_int64(q, 0));
        cJSON_AddNumberToObject(o, "at", sqlite3_column_double(q, 1));
        cJSON_AddStringToObject(o, "session", (const char *)sqlite3_column_text(q, 2));
        cJSON_AddStringToObject(o, "profile", (const char *)sqlite3_column_text(q, 3));
        cJSON_AddStringToObject(o, "model_sha256", (const char *)sqlite3_column_text(q, 4));
        cJSON_AddItemToObject(o, "settings", cJSON_Parse((const char *)sqlite3_column_text(q, 5)));
        cJSON_AddStringToObject(o, "context", context);
        cJSON_AddItemToObject(o, "context_tokens", cJSON_Parse((const char *)sqlite3_column_text(q, 7)));
        cJSON_AddItemToObject(o, "fork", cJSON_Parse(fork_s));
        cJSON_AddStringToObject(o, "modality", (const char *)sqlite3_column_text(q, 14));
        cJSON_AddNumberToObject(o, "ms", sqlite3_column_double(q, 15));
        emit(out, o, n);
        return;
    }
    if (!chooser || strcmp(chooser, "auto") == 0) return;
    cJSON *fork = cJSON_Parse(fork_s);
    if (!fork) return;
    const cJSON *cands = cJSON_GetObjectItemCaseSensitive(fork, "candidates");
    const cJSON *choice = cJSON_GetObjectItemCaseSensitive(fork, "choice");
    const char *kind = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(choice, "kind"));
    const char *ctext = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(choice, "text"));
    /* a missing index is NaN, a damaged one may be 1e300: neither may be cast */
    double idx_d = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(choice, "index"));
    int idx = idx_d >= 0 && idx_d <= INT32_MAX ? (int)idx_d : -1;
    bool by_index = kind && (strcmp(kind, "index") == 0 || strcmp(kind, "index_preview") == 0);
    if (fmt == FP_EXPORT_SFT) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "prompt", context);
        cJSON_AddStringToObject(o, "completion", ctext ? ctext : "");
        emit(out, o, n);
    } else {
        /* the chosen side: the candidate with its preview, or the typed text */
        char *chosen = NULL;
        int ci = -1, i = 0;
        const cJSON *c;
        cJSON_ArrayForEach(c, cands) { if (by_index && i == idx) { ci = i; chosen = continuation(c); } i++; }
        if (!chosen) chosen = strdup(ctext ? ctext : "");
        if (fmt == FP_EXPORT_KTO) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "prompt", context);
            cJSON_AddStringToObject(o, "completion", chosen ? chosen : "");
            cJSON_AddBoolToObject(o, "label", true);
            emit(out, o, n);
        }
        i = 0;
        cJSON_ArrayForEach(c, cands) {
            if (i++ == ci) continue;
            char *rej = continuation(c);
            if (!rej || !chosen || strcmp(rej, chosen) == 0) { free(rej); continue; }
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "prompt", context);
            if (fmt == FP_EXPORT_PAIRS) {
                cJSON_AddStringToObject(o, "chosen", chosen);
                cJSON_AddStringToObject(o, "rejected", rej);
            } else {
                cJSON_AddStringToObject(o, "completion", rej);
                cJSON_AddBoolToObject(o, "label", false);
            }
            emit(out, o, n);
            free(rej);
        }
        free(chosen);
    }
    cJSON_Delete(fork);
}

fp_status fp_store_export(fp_store *st, fp_export_format fmt, const char *profile, FILE *out,
                          int64_t *n_rows, fp_error *err) {
    int64_t n = 0;
    if (n_rows) *n_rows = 0;
    fp_status known = profile_known(st, profile, err);
    if (known != FP_OK) return known;
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(st->db,
            profile ? "SELECT * FROM decisions WHERE profile = ? ORDER BY id" : "SELECT * FROM decisions ORDER BY id",
            -1, &q, NULL) != SQLITE_OK)
        return fail(err, FP_ERR_IO, "cannot read the database: %s", sqlite3_errmsg(st->db));
    if (profile) sqlite3_bind_text(q, 1, profile, -1, SQLITE_TRANSIENT);
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) export_row(fmt, q, out, &n);
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) return fail(err, FP_ERR_IO, "cannot read the database: %s", sqlite3_errstr(rc));
    if (n_rows) *n_rows = n;
    if (n == 0) return fail(err, FP_ERR_EMPTY, "nothing to export: no decisions%s%s", profile ? " for " : "", profile ? profile : "");
    if (fflush(out) != 0 || ferror(out)) return fail(err, FP_ERR_IO, "cannot write the export");
    return FP_OK;
}

/* ------------------------------------------------------------ profiles */

fp_status fp_store_profile_load(fp_store *st, const char *name, const char *sha, fp_prefs **out, fp_error *err) {
    *out = NULL;
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(st->db, "SELECT model_sha256, data FROM profiles WHERE name = ?", -1, &q, NULL) != SQLITE_OK)
        return fail(err, FP_ERR_IO, "cannot read profiles: %s", sqlite3_errmsg(st->db));
    sqlite3_bind_text(q, 1, name, -1, SQLITE_TRANSIENT);
    fp_status rc = FP_OK;
    if (sqlite3_step(q) == SQLITE_ROW) {
        const char *msha = (const char *)sqlite3_column_text(q, 0);
        if (sha && msha && strcmp(sha, msha) != 0)
            rc = fail(err, FP_ERR_MODEL, "profile \"%s\" was learned on another model (sha256 %.12s…, this one %.12s…)", name, msha, sha);
        else {
            *out = fp_prefs_load(sqlite3_column_blob(q, 1), (size_t)sqlite3_column_bytes(q, 1), err);
            if (!*out) rc = err ? err->code : FP_ERR_ARG;
        }
    }
    sqlite3_finalize(q);
    return rc;
}

fp_status fpi_store_profile_put(fp_store *st, const char *name, const char *sha, const fp_prefs *p, int64_t *bytes,
                                fp_error *err) {
    size_t len = 0;
    void *blob = fp_prefs_save(p, &len);
    if (!blob) return fail(err, FP_ERR_NOMEM, "out of memory");
    sqlite3_stmt *q = NULL;
    fp_status rc = FP_OK;
    if (sqlite3_prepare_v3(st->db, "INSERT OR REPLACE INTO profiles(name, model_sha256, n_learned, data, updated)"
                                   " VALUES(?,?,?,?,?)", -1, SQLITE_PREPARE_PERSISTENT, &q, NULL) != SQLITE_OK)
        rc = fail(err, FP_ERR_IO, "cannot save profile: %s", sqlite3_errmsg(st->db));
    else {
        sqlite3_bind_text(q, 1, name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(q, 2, sha ? sha : "", -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(q, 3, fp_prefs_n_learned(p));
        sqlite3_bind_blob(q, 4, blob, (int)len, SQLITE_TRANSIENT);
        sqlite3_bind_double(q, 5, unix_now());
        if (sqlite3_step(q) != SQLITE_DONE) rc = fail(err, FP_ERR_IO, "cannot save profile: %s", sqlite3_errmsg(st->db));
        else if (bytes) *bytes += (int64_t)len;
    }
    sqlite3_finalize(q);
    free(blob);
    return rc;
}

fp_status fp_store_profile_save(fp_store *st, const char *name, const char *sha, const fp_prefs *p, fp_error *err) {
    return fpi_store_profile_put(st, name, sha, p, NULL, err);
}

fp_status fp_store_profile_reset(fp_store *st, const char *name, fp_error *err) {
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(st->db, "DELETE FROM profiles WHERE name = ?", -1, &q, NULL) != SQLITE_OK)
        return fail(err, FP_ERR_IO, "cannot reset profile: %s", sqlite3_errmsg(st->db));
    sqlite3_bind_text(q, 1, name, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) return fail(err, FP_ERR_IO, "cannot reset profile: %s", sqlite3_errmsg(st->db));
    if (sqlite3_changes(st->db) == 0) return fail(err, FP_ERR_ARG, "unknown profile \"%s\"", name);
    return FP_OK;
}

fp_status fp_store_profile_list(fp_store *st, FILE *out, fp_error *err) {
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(st->db,
            "SELECT p.name, p.n_learned, p.model_sha256, (SELECT count(*) FROM decisions d WHERE d.profile = p.name)"
            " FROM profiles p ORDER BY p.name", -1, &q, NULL) != SQLITE_OK)
        return fail(err, FP_ERR_IO, "cannot read profiles: %s", sqlite3_errmsg(st->db));
    while (sqlite3_step(q) == SQLITE_ROW)
        fprintf(out, "%s\tlearned %lld\tlogged %lld\tmodel %.16s\n", (const char *)sqlite3_column_text(q, 0),
                (long long)sqlite3_column_int64(q, 1), (long long)sqlite3_column_int64(q, 3),
                (const char *)sqlite3_column_text(q, 2));
    sqlite3_finalize(q);
    return FP_OK;
}

/* ------------------------------------------------------ training data */

/* A JSON array of token ids as a malloc'd int array (never NULL unless out
 * of memory; *n = 0 for a missing or malformed array). */
static int32_t *json_tokens(const cJSON *a, int32_t *n) {
    int32_t cnt = cJSON_IsArray(a) ? cJSON_GetArraySize(a) : 0;
    int32_t *t = malloc(sizeof(int32_t) * (size_t)(cnt > 0 ? cnt : 1));
    *n = 0;
    if (!t || cnt == 0) return t; /* an object's members are children too: only walk arrays */
    const cJSON *x;
    cJSON_ArrayForEach(x, a) {
        /* a token id must be an int32 before it is cast (a damaged row may say 1e300) */
        if (!cJSON_IsNumber(x) || !(x->valuedouble >= 0 && x->valuedouble <= INT32_MAX)) { *n = 0; return t; }
        t[(*n)++] = (int32_t)x->valuedouble;
    }
    return t;
}

void fp_store_choices_free(fp_logged_choice *c, int32_t n) {
    if (!c) return;
    for (int32_t i = 0; i < n; i++) {
        free(c[i].context); free(c[i].chosen); free(c[i].accepted); free(c[i].rejected); free(c[i].typed);
    }
    free(c);
}

/* One row into a choice; false when the row is not a usable human decision. */
static bool choice_from_row(sqlite3_stmt *q, fp_logged_choice *c, bool *nomem) {
    memset(c, 0, sizeof *c);
    const char *kind = (const char *)sqlite3_column_text(q, 3);
    int idx = sqlite3_column_int(q, 4);
    bool with_preview = sqlite3_column_int(q, 5) != 0;
    const char *typed = (const char *)sqlite3_column_text(q, 6);
    cJSON *ctx = cJSON_Parse((const char *)sqlite3_column_text(q, 1));
    cJSON *fork = cJSON_Parse((const char *)sqlite3_column_text(q, 2));
    bool ok = false;
    if (!ctx || !fork) goto out;
    c->context = json_tokens(ctx, &c->n_context);
    if (!c->context) { *nomem = true; goto out; }
    const cJSON *cands = cJSON_GetObjectItemCaseSensitive(fork, "candidates");
    int32_t i = 0, best = -1;
    double best_p = -1;
    const cJSON *cand;
    cJSON_ArrayForEach(cand, cands) {
        double pr = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(cand, "prob"));
        const cJSON *ie = cJSON_GetObjectItemCaseSensitive(cand, "is_eog");
        bool eog = cJSON_IsTrue(ie ? ie : cJSON_GetObjectItemCaseSensitive(cand, "eog")); /* rows of format 1 say "eog" */
        if (kind && strncmp(kind, "index", 5) == 0 && i == idx) {
            c->chosen = json_tokens(cJSON_GetObjectItemCaseSensitive(cand, "tokens"), &c->n_chosen);
            if (with_preview)
                c->accepted = json_tokens(cJSON_GetObjectItemCaseSensitive(cand, "preview_tokens"), &c->n_accepted);
        } else if (!eog && pr > best_p) { best_p = pr; best = i; }
        i++;
    }
    if (best >= 0)
        c->rejected = json_tokens(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(cands, best), "tokens"), &c->n_rejected);
    if (kind && strcmp(kind, "typed") == 0 && typed && *typed) {
        c->typed = strdup(typed);
        if (!c->typed) { *nomem = true; goto out; }
    }
    ok = c->n_chosen > 0 || c->typed;
out:
    cJSON_Delete(ctx);
    cJSON_Delete(fork);
    if (!ok) { free(c->context); free(c->chosen); free(c->accepted); free(c->rejected); free(c->typed); memset(c, 0, sizeof *c); }
    return ok;
}

fp_status fp_store_choices(fp_store *st, const char *profile, const char *sha, fp_logged_choice **out, int32_t *n_out,
                           int32_t *n_other, fp_error *err) {
    *out = NULL;
    *n_out = 0;
    if (n_other) *n_other = 0;
    fp_status known = profile_known(st, profile, err);
    if (known != FP_OK) return known;
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(st->db,
            "SELECT model_sha256, context_tokens, fork, choice_kind, choice_index, accept_preview, typed FROM decisions"
            " WHERE chooser != 'auto' AND (?1 IS NULL OR profile = ?1) ORDER BY id", -1, &q, NULL) != SQLITE_OK)
        return fail(err, FP_ERR_IO, "cannot read the database: %s", sqlite3_errmsg(st->db));
    if (profile) sqlite3_bind_text(q, 1, profile, -1, SQLITE_TRANSIENT);
    else sqlite3_bind_null(q, 1);
    fp_logged_choice *v = NULL;
    int32_t n = 0, cap = 0, other = 0;
    bool nomem = false;
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        const char *msha = (const char *)sqlite3_column_text(q, 0);
        if (sha && (!msha || strcmp(msha, sha) != 0)) { other++; continue; }
        if (n == cap) {
            int32_t nc = cap ? cap * 2 : 64;
            fp_logged_choice *nv = realloc(v, sizeof *v * (size_t)nc);
            if (!nv) { nomem = true; break; }
            v = nv;
            cap = nc;
        }
        if (choice_from_row(q, &v[n], &nomem)) n++;
        if (nomem) break;
    }
    sqlite3_finalize(q);
    if (n_other) *n_other = other;
    if (nomem) { fp_store_choices_free(v, n); return fail(err, FP_ERR_NOMEM, "out of memory"); }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        fp_store_choices_free(v, n);
        return fail(err, FP_ERR_IO, "cannot read the database: %s", sqlite3_errstr(rc));
    }
    if (n == 0) {
        fp_store_choices_free(v, n);
        if (other > 0) return fail(err, FP_ERR_MODEL, "the %d decisions%s%s were logged with another model", other,
                                   profile ? " of " : "", profile ? profile : "");
        return fail(err, FP_ERR_EMPTY, "no decisions by a person%s%s to learn from", profile ? " in profile " : "",
                    profile ? profile : "");
    }
    *out = v;
    *n_out = n;
    return FP_OK;
}
