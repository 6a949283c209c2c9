/*
 * store.c — the schema and its migrations, the decision log, datasets and
 * profiles, over either connection (db.c: SQLite, the embedded default, or
 * PostgreSQL, shared by several servers). Stories (the server's sessions)
 * are in sessions.c over the same connection.
 *
 * Durability: SQLite runs a WAL journal with synchronous=NORMAL;
 * PostgreSQL its own WAL (a committed transaction is on disk). Every
 * decision is written in a committed transaction (with the story's change,
 * when a story is being kept: sessions.c), so a process killed right after
 * a choice has it in the database.
 *
 * Schema versions: 0 is a SQLite database made before the schema was
 * versioned (decisions and profiles by this library, a sessions table of
 * whole JSON documents by the server); 4 is the current one (3: a story
 * remembers its model; 4: chats, and a decision's role and turn; see
 * docs/storage.md). Opening upgrades an older database in one transaction;
 * a newer one is refused. One schema text serves both databases; the
 * dialects force three differences, kept in SCHEMA's arguments: column
 * types (PostgreSQL's INTEGER is 32-bit and its REAL single precision:
 * BIGINT and DOUBLE PRECISION there; BYTEA for BLOB), the decision id
 * (SQLite's rowid, an identity column in PostgreSQL) and SQLite's WITHOUT
 * ROWID. The version lives in PRAGMA user_version on SQLite and in the
 * counters row 'schema' on PostgreSQL (which has no such pragma); the 0 -> 2
 * step exists only on SQLite (no PostgreSQL database predates version 2).
 * Servers starting together against one PostgreSQL migrate one at a time
 * (an advisory lock held for the migration's transaction).
 *
 * Invariant: a row of `decisions` is immutable once written; exports only
 * read. A profile row is replaced whole (its blob is fp_prefs_save's bytes),
 * and only by a writer that read its last version (prof_stamp).
 */
#include "store/store_int.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SCHEMA_VERSION 4

#define fail fp_error_set

/* The schema, in either dialect: ID the decision id column, INT a 64-bit
 * integer, REAL a double, BLOB bytes, NOROWID SQLite's clustered table. */
#define SCHEMA(ID, INT, REAL, BLOB, NOROWID) \
    "CREATE TABLE IF NOT EXISTS decisions(" \
    " id " ID "," \
    " at " REAL " NOT NULL,"             /* unix seconds */ \
    " session TEXT NOT NULL," \
    " profile TEXT NOT NULL," \
    " model_sha256 TEXT NOT NULL," \
    " settings TEXT NOT NULL,"           /* JSON object */ \
    " context TEXT NOT NULL,"            /* the text before the fork */ \
    " context_tokens TEXT NOT NULL,"     /* JSON array */ \
    " fork TEXT NOT NULL,"               /* the fork event: candidates, probabilities, previews, choice */ \
    " choice_kind TEXT NOT NULL," \
    " choice_index " INT " NOT NULL," \
    " accept_preview " INT " NOT NULL," \
    " typed TEXT," \
    " chooser TEXT NOT NULL," \
    " modality TEXT NOT NULL," \
    " ms " REAL " NOT NULL," \
    " event " INT ","                    /* the event's number in its session (NULL before version 2) */ \
    " role TEXT,"                        /* a chat's decision: the turn's role (NULL for stories and before version 4) */ \
    " turn " INT ","                     /* ... the turn's message index */ \
    " chat TEXT);"                       /* ... {"messages": the messages before the turn, "turn_start": bytes of context before it} */ \
    "CREATE INDEX IF NOT EXISTS decisions_profile ON decisions(profile, id);" \
    "CREATE INDEX IF NOT EXISTS decisions_session ON decisions(session, event);" \
    "CREATE TABLE IF NOT EXISTS profiles(" \
    " name TEXT PRIMARY KEY," \
    " model_sha256 TEXT NOT NULL," \
    " n_learned " INT " NOT NULL," \
    " data " BLOB " NOT NULL," \
    " updated " REAL " NOT NULL);" \
    /* a story's small row is updated on every write; its snapshot (MBs for a \
     * long story) lives in a table of its own, so that update never copies it */ \
    "CREATE TABLE IF NOT EXISTS sessions(" \
    " id TEXT PRIMARY KEY," \
    " title TEXT NOT NULL," \
    " created " INT " NOT NULL,"         /* unix seconds */ \
    " updated " INT " NOT NULL," \
    " version " INT " NOT NULL DEFAULT 0," /* the version of the last write */ \
    " seq " INT " NOT NULL DEFAULT 0,"   /* the last change written */ \
    " model_sha256 TEXT NOT NULL DEFAULT ''," /* the model it was written with ('' before version 3) */ \
    " model_path TEXT NOT NULL DEFAULT ''," \
    " kind TEXT NOT NULL DEFAULT 'story');" /* 'story' or 'chat' (chats.c; version 4) */ \
    "CREATE INDEX IF NOT EXISTS sessions_updated ON sessions(updated);" \
    "CREATE TABLE IF NOT EXISTS session_snapshots(" \
    " session TEXT PRIMARY KEY," \
    " seq " INT " NOT NULL,"             /* the change it includes */ \
    " snapshot TEXT NOT NULL);"          /* fp_session_save's document */ \
    "CREATE TABLE IF NOT EXISTS session_changes(" \
    " session TEXT NOT NULL," \
    " seq " INT " NOT NULL,"             /* session_snapshots.seq < seq <= sessions.seq */ \
    " version " INT " NOT NULL," \
    " change TEXT NOT NULL,"             /* fp_session_save_changes's document */ \
    " PRIMARY KEY(session, seq))" NOROWID ";" \
    "CREATE TABLE IF NOT EXISTS counters(name TEXT PRIMARY KEY, value " INT " NOT NULL);" \
    /* chats (version 4, chats.c): the dialogue's header, each committed message once, \
     * and the open turn as a snapshot and its changes, as stories are kept */ \
    "CREATE TABLE IF NOT EXISTS chats(" \
    " id TEXT PRIMARY KEY,"              /* = sessions.id */ \
    " header TEXT NOT NULL,"             /* template and settings (fp_dialogue_save's, without messages) */ \
    " n_messages " INT " NOT NULL," \
    " open_role TEXT,"                   /* the open turn, NULL when none */ \
    " open_seq " INT " NOT NULL DEFAULT 0," /* its last change */ \
    " open_snapshot TEXT);" \
    "CREATE TABLE IF NOT EXISTS chat_messages(" \
    " chat TEXT NOT NULL," \
    " turn " INT " NOT NULL," \
    " message TEXT NOT NULL,"            /* fp_dialogue_message_save's document */ \
    " PRIMARY KEY(chat, turn))" NOROWID ";" \
    "CREATE TABLE IF NOT EXISTS chat_changes(" \
    " chat TEXT NOT NULL," \
    " seq " INT " NOT NULL," \
    " change TEXT NOT NULL,"             /* fp_session_save_changes of the open turn */ \
    " PRIMARY KEY(chat, seq))" NOROWID ";"

static const char SCHEMA_SQLITE[] = SCHEMA("INTEGER PRIMARY KEY", "INTEGER", "REAL", "BLOB", " WITHOUT ROWID");
static const char SCHEMA_PG[] =
    SCHEMA("BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", "BIGINT", "DOUBLE PRECISION", "BYTEA", "");

/* Whether table t has column c (0 no, 1 yes, -1 no such table). SQLite only. */
static int has_column(fp_store *st, const char *t, const char *c) {
    fpi_q q;
    int found = -1;
    if (!fpi_q_run(st, &q, "SELECT name FROM pragma_table_info(?)", "t", t)) return -1;
    while (fpi_q_step(&q)) {
        if (found < 0) found = 0;
        if (strcmp(fpi_q_text(&q, 0), c) == 0) found = 1;
    }
    fpi_q_end(&q);
    return found;
}

/* The schema version: PRAGMA user_version (SQLite), the 'schema' counter
 * (PostgreSQL; 0 when there is none yet). -1 on error. */
static int32_t read_version(fp_store *st) {
    fpi_q q;
    int32_t v = -1;
    if (fpi_q_run(st, &q, st->kind == FPI_SQLITE ? "PRAGMA user_version" : "SELECT value FROM counters WHERE name = 'schema'", "")) {
        v = fpi_q_step(&q) ? (int32_t)fpi_q_int(&q, 0) : q.ok ? 0 : -1;
        fpi_q_end(&q);
    }
    return v;
}

/* Brings the schema to SCHEMA_VERSION in one transaction. Version 0 -> 2
 * (SQLite): decisions gain `event`; the server's sessions table (id, title,
 * created, updated, doc) keeps its rows, each doc moving to
 * session_snapshots (a format 1 document, which fp_session_restore reads)
 * with version 0 and no changes. Then, on either database, the tables that
 * are missing are made and the version counter starts at the clock in
 * milliseconds, where the old server started its versions, so a page open
 * across the upgrade sees them go on growing. Returns 0, or -1 with st->msg. */
static int migrate(fp_store *st) {
    bool pg = st->kind == FPI_PG;
    if (pg) st->in_tx = false;
    if (fpi_exec_script(st, pg ? "BEGIN" : "BEGIN IMMEDIATE") != 0) return -1;
    st->in_tx = true;
    /* PostgreSQL: one server at a time; the tables (and so the 'schema' row) may not exist yet */
    /* servers starting together wait here for the first one's migration: longer than a write may wait */
    int rc = pg ? fpi_exec_script(st, "SET LOCAL lock_timeout = '120s'; SELECT pg_advisory_xact_lock(7236277063)") : 0;
    if (rc == 0 && pg) rc = fpi_exec_script(st, SCHEMA_PG);
    int32_t version = rc == 0 ? read_version(st) : -1;
    if (rc == 0 && version == SCHEMA_VERSION) goto commit;
    if (version < 0 || version > SCHEMA_VERSION) {
        if (version > SCHEMA_VERSION)
            snprintf(st->msg, sizeof st->msg, "its schema version %d is newer than this Forkpoint's (%d)", version, SCHEMA_VERSION);
        else if (rc == 0) snprintf(st->msg, sizeof st->msg, "cannot read its schema version");
        fpi_store_rollback(st);
        return -1;
    }
    if (!pg && has_column(st, "decisions", "event") == 0)
        rc = fpi_exec_script(st, "ALTER TABLE decisions ADD COLUMN event INTEGER");
    if (rc == 0 && !pg) rc = fpi_exec_script(st, SCHEMA_SQLITE); /* the tables that are missing */
    if (rc == 0 && !pg && has_column(st, "sessions", "doc") == 1)
        rc = fpi_exec_script(st, "INSERT INTO session_snapshots(session, seq, snapshot) SELECT id, 0, doc FROM sessions;"
                                 "ALTER TABLE sessions DROP COLUMN doc;"
                                 "ALTER TABLE sessions ADD COLUMN version INTEGER NOT NULL DEFAULT 0;"
                                 "ALTER TABLE sessions ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;");
    /* version 3: a story remembers its model */
    if (rc == 0 && pg)
        rc = fpi_exec_script(st, "ALTER TABLE sessions ADD COLUMN IF NOT EXISTS model_sha256 TEXT NOT NULL DEFAULT '';"
                                 "ALTER TABLE sessions ADD COLUMN IF NOT EXISTS model_path TEXT NOT NULL DEFAULT '';");
    if (rc == 0 && !pg && has_column(st, "sessions", "model_sha256") == 0)
        rc = fpi_exec_script(st, "ALTER TABLE sessions ADD COLUMN model_sha256 TEXT NOT NULL DEFAULT '';"
                                 "ALTER TABLE sessions ADD COLUMN model_path TEXT NOT NULL DEFAULT '';");
    /* version 4: chats (their tables are made by the schema above), a decision's role and turn */
    if (rc == 0 && pg)
        rc = fpi_exec_script(st, "ALTER TABLE decisions ADD COLUMN IF NOT EXISTS role TEXT;"
                                 "ALTER TABLE decisions ADD COLUMN IF NOT EXISTS turn BIGINT;"
                                 "ALTER TABLE decisions ADD COLUMN IF NOT EXISTS chat TEXT;"
                                 "ALTER TABLE sessions ADD COLUMN IF NOT EXISTS kind TEXT NOT NULL DEFAULT 'story';");
    if (rc == 0 && !pg && has_column(st, "decisions", "role") == 0)
        rc = fpi_exec_script(st, "ALTER TABLE decisions ADD COLUMN role TEXT;"
                                 "ALTER TABLE decisions ADD COLUMN turn INTEGER;"
                                 "ALTER TABLE decisions ADD COLUMN chat TEXT;");
    if (rc == 0 && !pg && has_column(st, "sessions", "kind") == 0)
        rc = fpi_exec_script(st, "ALTER TABLE sessions ADD COLUMN kind TEXT NOT NULL DEFAULT 'story';");
    if (rc == 0)
        rc = fpi_exec(st, "INSERT INTO counters(name, value) VALUES('version', ?) ON CONFLICT(name) DO NOTHING", "i",
                      (int64_t)time(NULL) * 1000LL) < 0 ? -1 : 0;
    if (rc == 0) {
        char sql[120];
        if (pg) snprintf(sql, sizeof sql, "INSERT INTO counters(name, value) VALUES('schema', %d)"
                         " ON CONFLICT(name) DO UPDATE SET value = excluded.value", SCHEMA_VERSION);
        else snprintf(sql, sizeof sql, "PRAGMA user_version = %d", SCHEMA_VERSION);
        rc = fpi_exec_script(st, sql);
    }
    if (rc != 0) { fpi_store_rollback(st); return -1; }
commit:
    return fpi_store_commit(st, NULL) == FP_OK ? 0 : -1;
}

fp_store *fp_store_open(const char *path, bool create, fp_error *err) {
    if (!path || !*path) { fail(err, FP_ERR_ARG, "no database path"); return NULL; }
    fp_store *st = fpi_db_open(path, create, err);
    if (!st) return NULL;
    int rc = st->kind == FPI_SQLITE ? fpi_exec_script(st, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;") : 0;
    if (rc == 0) rc = migrate(st);
    if (rc == 0) /* an existing table of another shape is not ours */
        rc = fpi_exec_script(st, "SELECT id, at, session, profile, model_sha256, settings, context, context_tokens, fork,"
                                 " choice_kind, choice_index, accept_preview, typed, chooser, modality, ms, event, role, turn, chat FROM decisions LIMIT 0;"
                                 "SELECT name, model_sha256, n_learned, data, updated FROM profiles LIMIT 0;"
                                 "SELECT id, title, created, updated, version, seq, model_sha256, model_path, kind FROM sessions LIMIT 0;"
                                 "SELECT session, seq, snapshot FROM session_snapshots LIMIT 0;"
                                 "SELECT session, seq, version, change FROM session_changes LIMIT 0;"
                                 "SELECT id, header, n_messages, open_role, open_seq, open_snapshot FROM chats LIMIT 0;"
                                 "SELECT chat, turn, message FROM chat_messages LIMIT 0;"
                                 "SELECT chat, seq, change FROM chat_changes LIMIT 0;");
    if (rc != 0) {
        /* a URL may hold a password: PostgreSQL is named, not its URL */
        fail(err, FP_ERR_IO, "%s is not a usable Forkpoint database: %s", st->kind == FPI_PG ? "the PostgreSQL database" : path,
             st->msg);
        fpi_db_close(st);
        return NULL;
    }
    return st;
}

void fp_store_close(fp_store *st) { fpi_db_close(st); }

bool fp_store_is_shared(const fp_store *st) { return st && st->kind == FPI_PG; }

int32_t fp_store_schema_version(fp_store *st) { return read_version(st); }

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
    if (!fork || !settings || !toks) { rc = fail(err, FP_ERR_NOMEM, "out of memory"); goto out; }
    char turn[16];   /* bound as text: NULL for a story's decision, the number for a chat's */
    snprintf(turn, sizeof turn, "%d", (int)m->turn);
    if (fpi_exec(st,
            "INSERT INTO decisions(at, session, profile, model_sha256, settings, context, context_tokens, fork,"
            " choice_kind, choice_index, accept_preview, typed, chooser, modality, ms, event, role, turn, chat)"
            " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", "dttttTtttiitttdittt",
            unix_now(), m->session_id ? m->session_id : "", m->profile ? m->profile : "default",
            m->model_sha256 ? m->model_sha256 : "", settings, text, (int)off, toks, fork, fp_choice_name(f->choice),
            (int64_t)f->choice_index, (int64_t)(f->choice == FP_CHOICE_INDEX_PREVIEW),
            f->choice == FP_CHOICE_TYPED ? f->choice_text : NULL, fp_chooser_name(f->chooser),
            m->modality ? m->modality : "unknown", (double)f->ms_to_choose, (int64_t)ev,
            m->role, m->role ? turn : NULL, m->role ? m->chat : NULL) != 1)
        rc = fail(err, FP_ERR_IO, "cannot log a decision: %s", st->msg);
    else if (bytes) *bytes += (int64_t)(off + strlen(settings) + strlen(toks) + strlen(fork) + 160 +
                                        (m->role && m->chat ? strlen(m->chat) : 0));
out:
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
    fpi_q q;
    int64_t n = -1;
    if (!fpi_q_run(st, &q, profile ? "SELECT count(*) FROM decisions WHERE profile = ?" : "SELECT count(*) FROM decisions",
                   profile ? "t" : "", profile))
        return -1;
    if (fpi_q_step(&q)) n = fpi_q_int(&q, 0);
    fpi_q_end(&q);
    return n;
}

/* ------------------------------------------------------------- export */

/* FP_OK if profile is NULL (everyone) or has logged decisions. */
static fp_status profile_known(fp_store *st, const char *profile, fp_error *err) {
    if (!profile) return FP_OK;
    int64_t c = fp_store_count(st, profile);
    if (c < 0) return fail(err, FP_ERR_IO, "cannot read the database: %s", st->msg);
    if (c == 0) return fail(err, FP_ERR_ARG, "unknown profile \"%s\" (no decisions logged)", profile);
    return FP_OK;
}

bool fp_export_format_parse(const char *name, fp_export_format *out) {
    static const char *names[] = { "sft", "pairs", "kto", "raw", "chat-sft", "chat-pairs", "chat-kto" };
    for (int i = 0; i < 7; i++)
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

/* One side of a row: the prompt's continuation as text or, in the chat
 * formats (chat set), as one message of the turn's role holding the turn's
 * text before the fork and the continuation (white space at its start
 * trimmed, as a message is kept). */
typedef struct chat_row {
    const char *role, *prefix;   /* prefix: the turn's text before the fork */
    cJSON *messages;             /* the messages before the turn */
    int turn;
} chat_row;

static cJSON *side(const chat_row *c, const char *text) {
    if (!c) return cJSON_CreateString(text);
    size_t a = strlen(c->prefix), b = strlen(text);
    char *s = malloc(a + b + 1);
    if (!s) return NULL;
    memcpy(s, c->prefix, a);
    memcpy(s + a, text, b + 1);
    const char *t = s + strspn(s, " \t\r\n");
    cJSON *arr = cJSON_CreateArray(), *m = cJSON_CreateObject();
    if (arr && m && cJSON_AddItemToArray(arr, m)) {
        cJSON_AddStringToObject(m, "role", c->role);
        cJSON_AddStringToObject(m, "content", t);
    } else { cJSON_Delete(m); cJSON_Delete(arr); arr = NULL; }
    free(s);
    return arr;
}

/* A new row: its prompt (text, or the chat's messages) and, for chats, turn and role. */
static cJSON *row_start(const chat_row *c, const char *context) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddItemToObject(o, "prompt", c ? cJSON_Duplicate(c->messages, true) : cJSON_CreateString(context));
    if (c) {
        cJSON_AddNumberToObject(o, "turn", c->turn);
        cJSON_AddStringToObject(o, "role", c->role);
    }
    return o;
}

/* Rows of one decision in the chosen format. Automatic decisions (chooser
 * "auto") were nobody's choice: only the raw log has them. The chat
 * formats take only chats' decisions (columns role, turn, chat). */
static void export_row(fp_export_format fmt, fpi_q *q, FILE *out, int64_t *n) {
    const char *context = fpi_q_text(q, 6);
    const char *fork_s = fpi_q_text(q, 8);
    const char *chooser = fpi_q_text(q, 13);
    const char *role = fpi_q_text(q, 17), *chat_s = fpi_q_text(q, 19);
    bool chat_fmt = fmt >= FP_EXPORT_CHAT_SFT;
    chat_row cr = { 0 }, *cx = NULL;
    cJSON *chat = NULL;
    if (chat_fmt) {
        if (!role || !chat_s || !context) return;
        chat = cJSON_Parse(chat_s);
        double ts = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(chat, "turn_start"));
        cJSON *ms = cJSON_GetObjectItemCaseSensitive(chat, "messages");
        /* a damaged row (turn_start beyond the context) is left out */
        if (!cJSON_IsArray(ms) || !(ts >= 0 && ts <= (double)strlen(context))) { cJSON_Delete(chat); return; }
        cr = (chat_row){ .role = role, .prefix = context + (size_t)ts, .messages = ms, .turn = (int)fpi_q_int(q, 18) };
        cx = &cr;
        fmt = fmt == FP_EXPORT_CHAT_SFT ? FP_EXPORT_SFT : fmt == FP_EXPORT_CHAT_PAIRS ? FP_EXPORT_PAIRS : FP_EXPORT_KTO;
    }
    if (fmt == FP_EXPORT_RAW) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "id", (double)fpi_q_int(q, 0));
        cJSON_AddNumberToObject(o, "at", fpi_q_double(q, 1));
        cJSON_AddStringToObject(o, "session", fpi_q_text(q, 2));
        cJSON_AddStringToObject(o, "profile", fpi_q_text(q, 3));
        cJSON_AddStringToObject(o, "model_sha256", fpi_q_text(q, 4));
        cJSON_AddItemToObject(o, "settings", cJSON_Parse(fpi_q_text(q, 5)));
        cJSON_AddStringToObject(o, "context", context);
        cJSON_AddItemToObject(o, "context_tokens", cJSON_Parse(fpi_q_text(q, 7)));
        cJSON_AddItemToObject(o, "fork", cJSON_Parse(fork_s));
        cJSON_AddStringToObject(o, "modality", fpi_q_text(q, 14));
        cJSON_AddNumberToObject(o, "ms", fpi_q_double(q, 15));
        if (role) {   /* a chat's decision */
            cJSON_AddStringToObject(o, "role", role);
            cJSON_AddNumberToObject(o, "turn", (double)fpi_q_int(q, 18));
            cJSON_AddItemToObject(o, "chat", cJSON_Parse(chat_s ? chat_s : "null"));
        }
        emit(out, o, n);
        return;
    }
    cJSON *fork = chooser && strcmp(chooser, "auto") != 0 ? cJSON_Parse(fork_s) : NULL;
    if (!fork) { cJSON_Delete(chat); return; }
    const cJSON *cands = cJSON_GetObjectItemCaseSensitive(fork, "candidates");
    const cJSON *choice = cJSON_GetObjectItemCaseSensitive(fork, "choice");
    const char *kind = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(choice, "kind"));
    const char *ctext = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(choice, "text"));
    /* a missing index is NaN, a damaged one may be 1e300: neither may be cast */
    double idx_d = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(choice, "index"));
    int idx = idx_d >= 0 && idx_d <= INT32_MAX ? (int)idx_d : -1;
    bool by_index = kind && (strcmp(kind, "index") == 0 || strcmp(kind, "index_preview") == 0);
    if (fmt == FP_EXPORT_SFT) {
        cJSON *o = row_start(cx, context);
        cJSON_AddItemToObject(o, "completion", side(cx, ctext ? ctext : ""));
        emit(out, o, n);
    } else {
        /* the chosen side: the candidate with its preview, or the typed text */
        char *chosen = NULL;
        int ci = -1, i = 0;
        const cJSON *c;
        cJSON_ArrayForEach(c, cands) { if (by_index && i == idx) { ci = i; chosen = continuation(c); } i++; }
        if (!chosen) chosen = strdup(ctext ? ctext : "");
        if (fmt == FP_EXPORT_KTO) {
            cJSON *o = row_start(cx, context);
            cJSON_AddItemToObject(o, "completion", side(cx, chosen ? chosen : ""));
            cJSON_AddBoolToObject(o, "label", true);
            emit(out, o, n);
        }
        i = 0;
        cJSON_ArrayForEach(c, cands) {
            if (i++ == ci) continue;
            char *rej = continuation(c);
            if (!rej || !chosen || strcmp(rej, chosen) == 0) { free(rej); continue; }
            cJSON *o = row_start(cx, context);
            if (fmt == FP_EXPORT_PAIRS) {
                cJSON_AddItemToObject(o, "chosen", side(cx, chosen));
                cJSON_AddItemToObject(o, "rejected", side(cx, rej));
            } else {
                cJSON_AddItemToObject(o, "completion", side(cx, rej));
                cJSON_AddBoolToObject(o, "label", false);
            }
            emit(out, o, n);
            free(rej);
        }
        free(chosen);
    }
    cJSON_Delete(fork);
    cJSON_Delete(chat);
}

fp_status fp_store_export(fp_store *st, fp_export_format fmt, const char *profile, FILE *out,
                          int64_t *n_rows, fp_error *err) {
    int64_t n = 0;
    if (n_rows) *n_rows = 0;
    fp_status known = profile_known(st, profile, err);
    if (known != FP_OK) return known;
    fpi_q q;
    if (!fpi_q_run(st, &q, profile ? "SELECT * FROM decisions WHERE profile = ? ORDER BY id" : "SELECT * FROM decisions ORDER BY id",
                   profile ? "t" : "", profile))
        return fail(err, FP_ERR_IO, "cannot read the database: %s", st->msg);
    while (fpi_q_step(&q)) export_row(fmt, &q, out, &n);
    bool ok = q.ok;
    fpi_q_end(&q);
    if (!ok) return fail(err, FP_ERR_IO, "cannot read the database: %s", st->msg);
    if (n_rows) *n_rows = n;
    if (n == 0) return fail(err, FP_ERR_EMPTY, "nothing to export: no decisions%s%s", profile ? " for " : "", profile ? profile : "");
    if (fflush(out) != 0 || ferror(out)) return fail(err, FP_ERR_IO, "cannot write the export");
    return FP_OK;
}

/* ------------------------------------------------------------ profiles */

/* Remembers the row's `updated` of the profile this handle read or wrote
 * last, so that its next write can tell whether someone wrote in between. */
static void stamp(fp_store *st, const char *name, double updated) {
    st->prof_known = strlen(name) < sizeof st->prof_name;
    if (st->prof_known) snprintf(st->prof_name, sizeof st->prof_name, "%s", name);
    st->prof_stamp = updated;
}

fp_status fp_store_profile_load(fp_store *st, const char *name, const char *sha, fp_prefs **out, fp_error *err) {
    *out = NULL;
    fpi_q q;
    if (!fpi_q_run(st, &q, "SELECT model_sha256, data, updated FROM profiles WHERE name = ?", "t", name))
        return fail(err, FP_ERR_IO, "cannot read profiles: %s", st->msg);
    fp_status rc = FP_OK;
    if (fpi_q_step(&q)) {
        const char *msha = fpi_q_text(&q, 0);
        if (sha && msha && strcmp(sha, msha) != 0)
            rc = fail(err, FP_ERR_MODEL, "profile \"%s\" was learned on another model (sha256 %.12s…, this one %.12s…)", name, msha, sha);
        else {
            size_t len = 0;
            const void *blob = fpi_q_blob(&q, 1, &len);
            *out = blob ? fp_prefs_load(blob, len, err) : NULL;
            if (!*out) rc = blob ? (err ? err->code : FP_ERR_ARG) : fail(err, FP_ERR_NOMEM, "out of memory");
            else stamp(st, name, fpi_q_double(&q, 2));
        }
    } else if (!q.ok) {
        rc = fail(err, FP_ERR_IO, "cannot read profiles: %s", st->msg);
    } else {
        stamp(st, name, 0); /* none yet: a write must find none either */
    }
    fpi_q_end(&q);
    return rc;
}

fp_status fp_store_profile_changed(fp_store *st, const char *name, bool *changed, fp_error *err) {
    *changed = false;
    fpi_q q;
    if (!fpi_q_run(st, &q, "SELECT updated FROM profiles WHERE name = ?", "t", name))
        return fail(err, FP_ERR_IO, "cannot read profiles: %s", st->msg);
    double now = fpi_q_step(&q) ? fpi_q_double(&q, 0) : 0;
    bool ok = q.ok;
    fpi_q_end(&q);
    if (!ok) return fail(err, FP_ERR_IO, "cannot read profiles: %s", st->msg);
    *changed = !st->prof_known || strcmp(st->prof_name, name) != 0 || now != st->prof_stamp;
    return FP_OK;
}

/* Writes the profile whole. When this handle read or wrote it last, the
 * write only goes in if nobody wrote it since (its `updated` is the one
 * seen); else it is FP_ERR_STATE, retryable after reloading. Cost: one
 * statement (two for a first insert). */
fp_status fpi_store_profile_put(fp_store *st, const char *name, const char *sha, const fp_prefs *p, int64_t *bytes,
                                fp_error *err) {
    size_t len = 0;
    void *blob = fp_prefs_save(p, &len);
    if (!blob) return fail(err, FP_ERR_NOMEM, "out of memory");
    fp_status rc = FP_OK;
    double now = unix_now();
    if (now <= st->prof_stamp) now = st->prof_stamp + 1e-6; /* a new stamp, even if the clock stood still */
    bool known = st->prof_known && strcmp(st->prof_name, name) == 0;
    int64_t n;
    if (known && st->prof_stamp != 0)
        n = fpi_exec(st, "UPDATE profiles SET model_sha256 = ?, n_learned = ?, data = ?, updated = ? WHERE name = ? AND updated = ?",
                     "tibdtd", sha ? sha : "", (int64_t)fp_prefs_n_learned(p), blob, len, now, name, st->prof_stamp);
    else if (known) /* it had no row when read: it must still have none */
        n = fpi_exec(st, "INSERT INTO profiles(name, model_sha256, n_learned, data, updated) VALUES(?,?,?,?,?)"
                     " ON CONFLICT(name) DO NOTHING", "ttibd", name, sha ? sha : "", (int64_t)fp_prefs_n_learned(p), blob, len, now);
    else
        n = fpi_exec(st, "INSERT INTO profiles(name, model_sha256, n_learned, data, updated) VALUES(?,?,?,?,?)"
                     " ON CONFLICT(name) DO UPDATE SET model_sha256 = excluded.model_sha256, n_learned = excluded.n_learned,"
                     " data = excluded.data, updated = excluded.updated",
                     "ttibd", name, sha ? sha : "", (int64_t)fp_prefs_n_learned(p), blob, len, now);
    if (n < 0) rc = fail(err, FP_ERR_IO, "cannot save profile: %s", st->msg);
    else if (n == 0) {
        st->prof_known = false; /* reload before writing again */
        rc = fail(err, FP_ERR_STATE, "profile \"%s\" was changed by another writer (another server?); reload and retry", name);
    } else {
        /* stamped only here: a caller's rollback leaves a stamp the row may not have, so its next write conflicts
         * and reloads, which is safe */
        stamp(st, name, now);
        if (bytes) *bytes += (int64_t)len;
    }
    free(blob);
    return rc;
}

fp_status fp_store_profile_save(fp_store *st, const char *name, const char *sha, const fp_prefs *p, fp_error *err) {
    return fpi_store_profile_put(st, name, sha, p, NULL, err);
}

fp_status fp_store_profile_reset(fp_store *st, const char *name, fp_error *err) {
    int64_t n = fpi_exec(st, "DELETE FROM profiles WHERE name = ?", "t", name);
    if (n < 0) return fail(err, FP_ERR_IO, "cannot reset profile: %s", st->msg);
    if (st->prof_known && strcmp(st->prof_name, name) == 0) st->prof_known = false;
    if (n == 0) return fail(err, FP_ERR_ARG, "unknown profile \"%s\"", name);
    return FP_OK;
}

fp_status fp_store_profile_list(fp_store *st, FILE *out, fp_error *err) {
    fpi_q q;
    if (!fpi_q_run(st, &q,
            "SELECT p.name, p.n_learned, p.model_sha256, (SELECT count(*) FROM decisions d WHERE d.profile = p.name)"
            " FROM profiles p ORDER BY p.name", ""))
        return fail(err, FP_ERR_IO, "cannot read profiles: %s", st->msg);
    while (fpi_q_step(&q))
        fprintf(out, "%s\tlearned %lld\tlogged %lld\tmodel %.16s\n", fpi_q_text(&q, 0),
                (long long)fpi_q_int(&q, 1), (long long)fpi_q_int(&q, 3), fpi_q_text(&q, 2));
    bool ok = q.ok;
    fpi_q_end(&q);
    return ok ? FP_OK : fail(err, FP_ERR_IO, "cannot read profiles: %s", st->msg);
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
static bool choice_from_row(fpi_q *q, fp_logged_choice *c, bool *nomem) {
    memset(c, 0, sizeof *c);
    const char *kind = fpi_q_text(q, 3);
    int idx = (int)fpi_q_int(q, 4);
    bool with_preview = fpi_q_int(q, 5) != 0;
    const char *typed = fpi_q_text(q, 6);
    cJSON *ctx = cJSON_Parse(fpi_q_text(q, 1));
    cJSON *fork = cJSON_Parse(fpi_q_text(q, 2));
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
    fpi_q q;
    if (!fpi_q_run(st, &q,
            profile ? "SELECT model_sha256, context_tokens, fork, choice_kind, choice_index, accept_preview, typed FROM decisions"
                      " WHERE chooser != 'auto' AND profile = ? ORDER BY id"
                    : "SELECT model_sha256, context_tokens, fork, choice_kind, choice_index, accept_preview, typed FROM decisions"
                      " WHERE chooser != 'auto' ORDER BY id", profile ? "t" : "", profile))
        return fail(err, FP_ERR_IO, "cannot read the database: %s", st->msg);
    fp_logged_choice *v = NULL;
    int32_t n = 0, cap = 0, other = 0;
    bool nomem = false;
    while (fpi_q_step(&q)) {
        const char *msha = fpi_q_text(&q, 0);
        if (sha && (!msha || strcmp(msha, sha) != 0)) { other++; continue; }
        if (n == cap) {
            int32_t nc = cap ? cap * 2 : 64;
            fp_logged_choice *nv = realloc(v, sizeof *v * (size_t)nc);
            if (!nv) { nomem = true; break; }
            v = nv;
            cap = nc;
        }
        if (choice_from_row(&q, &v[n], &nomem)) n++;
        if (nomem) break;
    }
    bool ok = q.ok;
    fpi_q_end(&q);
    if (n_other) *n_other = other;
    if (nomem) { fp_store_choices_free(v, n); return fail(err, FP_ERR_NOMEM, "out of memory"); }
    if (!nomem && !ok) {
        fp_store_choices_free(v, n);
        return fail(err, FP_ERR_IO, "cannot read the database: %s", st->msg);
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
