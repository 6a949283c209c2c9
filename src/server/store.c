/*
 * store.c — SQLite persistence of sessions.
 *
 * Why SQLite: a restarted server must show the same sessions, trees and
 * forks, and a crash must not lose a committed decision. Each session is one
 * row holding fp_session_save()'s JSON document, rewritten after every
 * committed change inside its own transaction. WAL mode keeps those small
 * writes cheap and lets an external reader (the sqlite3 shell, a backup)
 * look at the file while the server runs. Only the worker thread uses the
 * connection.
 */
#include "server/serve.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static const char *SCHEMA =
    "CREATE TABLE IF NOT EXISTS sessions ("
    "  id TEXT PRIMARY KEY,"
    "  title TEXT NOT NULL,"
    "  created INTEGER NOT NULL,"
    "  updated INTEGER NOT NULL,"
    "  doc TEXT NOT NULL"
    ");"
    "CREATE INDEX IF NOT EXISTS sessions_updated ON sessions(updated);";

/* mkdir -p for the directory part of path. Why: the XDG default directory
 * usually does not exist on a first run. Returns 0 or -1. */
static int make_parent_dirs(const char *path)
{
    char buf[1024];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return -1;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    return 0;
}

/* Fills app->db_path from --db or ${XDG_DATA_HOME:-~/.local/share}. */
static int resolve_db_path(srv_app *app)
{
    int n;
    if (app->cfg.db_path) {
        n = snprintf(app->db_path, sizeof app->db_path, "%s", app->cfg.db_path);
    } else {
        const char *xdg = getenv("XDG_DATA_HOME");
        const char *home = getenv("HOME");
        if (xdg && *xdg)
            n = snprintf(app->db_path, sizeof app->db_path, "%s/forkpoint/forkpoint.db", xdg);
        else if (home && *home)
            n = snprintf(app->db_path, sizeof app->db_path,
                         "%s/.local/share/forkpoint/forkpoint.db", home);
        else
            n = snprintf(app->db_path, sizeof app->db_path, "forkpoint.db");
    }
    return (n > 0 && n < (int)sizeof app->db_path) ? 0 : -1;
}

/* Opens (creating if needed) the database in WAL mode with the schema.
 * Returns 0, or -1 with a message in err. */
int srv_store_open(srv_app *app, char *err, size_t cap)
{
    if (resolve_db_path(app) != 0) {
        snprintf(err, cap, "database path too long");
        return -1;
    }
    if (strcmp(app->db_path, ":memory:") != 0 && make_parent_dirs(app->db_path) != 0) {
        snprintf(err, cap, "cannot create the directory of %s", app->db_path);
        return -1;
    }
    if (sqlite3_open_v2(app->db_path, &app->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        snprintf(err, cap, "cannot open %s: %s", app->db_path,
                 app->db ? sqlite3_errmsg(app->db) : "out of memory");
        sqlite3_close(app->db);
        app->db = NULL;
        return -1;
    }
    sqlite3_busy_timeout(app->db, 5000);
    char *msg = NULL;
    if (sqlite3_exec(app->db, "PRAGMA journal_mode=WAL;", NULL, NULL, &msg) != SQLITE_OK ||
        sqlite3_exec(app->db, "PRAGMA synchronous=NORMAL;", NULL, NULL, &msg) != SQLITE_OK ||
        sqlite3_exec(app->db, SCHEMA, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, cap, "cannot initialise %s: %s", app->db_path, msg ? msg : "?");
        sqlite3_free(msg);
        sqlite3_close(app->db);
        app->db = NULL;
        return -1;
    }
    return 0;
}

void srv_store_close(srv_app *app)
{
    if (app->db) sqlite3_close(app->db);
    app->db = NULL;
}

/* Inserts or replaces one session row. Returns 0 or -1 (logged). */
int srv_store_put(srv_app *app, const char *id, const char *title, int64_t created,
                  const char *doc)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(app->db,
        "INSERT INTO sessions(id,title,created,updated,doc) VALUES(?,?,?,?,?) "
        "ON CONFLICT(id) DO UPDATE SET title=excluded.title, updated=excluded.updated, "
        "doc=excluded.doc", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, title, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, created);
        sqlite3_bind_int64(st, 4, (int64_t)time(NULL));
        sqlite3_bind_text(st, 5, doc, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        fprintf(stderr, "forkpoint-serve: saving session %s failed: %s\n", id,
                sqlite3_errmsg(app->db));
        return -1;
    }
    return 0;
}

/* Reads one session's document. */
char *srv_store_get(srv_app *app, const char *id, char *title, size_t title_cap,
                    int64_t *created, bool *found)
{
    *found = false;
    sqlite3_stmt *st = NULL;
    char *doc = NULL;
    if (sqlite3_prepare_v2(app->db, "SELECT title, created, doc FROM sessions WHERE id=?",
                           -1, &st, NULL) != SQLITE_OK)
        return NULL;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
        *found = true;
        const unsigned char *t = sqlite3_column_text(st, 0);
        snprintf(title, title_cap, "%s", t ? (const char *)t : "");
        *created = sqlite3_column_int64(st, 1);
        const unsigned char *d = sqlite3_column_text(st, 2);
        int n = sqlite3_column_bytes(st, 2);
        if (d && (doc = malloc((size_t)n + 1))) {
            memcpy(doc, d, (size_t)n);
            doc[n] = '\0';
        }
    }
    sqlite3_finalize(st);
    return doc;
}

/* Deletes one row; 0 when deleted, 1 when there was none, -1 on error. */
int srv_store_delete(srv_app *app, const char *id)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(app->db, "DELETE FROM sessions WHERE id=?", -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return -1;
    return sqlite3_changes(app->db) > 0 ? 0 : 1;
}

/* Appends one summary object per session to a cJSON array, newest first. */
int srv_store_list(srv_app *app, void *cjson_array)
{
    cJSON *arr = cjson_array;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(app->db,
                           "SELECT id, title, created, updated FROM sessions "
                           "ORDER BY updated DESC, created DESC LIMIT 1000",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        cJSON *o = cJSON_CreateObject();
        if (!o) break;
        cJSON_AddItemToArray(arr, o);
        cJSON_AddStringToObject(o, "id", (const char *)sqlite3_column_text(st, 0));
        cJSON_AddStringToObject(o, "title", (const char *)sqlite3_column_text(st, 1));
        cJSON_AddNumberToObject(o, "created", (double)sqlite3_column_int64(st, 2));
        cJSON_AddNumberToObject(o, "updated", (double)sqlite3_column_int64(st, 3));
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* The ids of the newest sessions, for restoring at start. */
int srv_store_recent(srv_app *app, char (*ids)[SRV_ID_LEN + 1], int cap)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(app->db, "SELECT id FROM sessions ORDER BY updated DESC LIMIT ?",
                           -1, &st, NULL) != SQLITE_OK)
        return 0;
    sqlite3_bind_int(st, 1, cap);
    int n = 0;
    while (n < cap && sqlite3_step(st) == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        if (!t || !srv_id_valid((const char *)t, strlen((const char *)t))) continue;
        snprintf(ids[n], SRV_ID_LEN + 1, "%s", (const char *)t);
        n++;
    }
    sqlite3_finalize(st);
    return n;
}
