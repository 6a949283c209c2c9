/*
 * store.c — where the server's database lives, opening it, and keeping
 * what the server holds in memory in step with a database it shares.
 *
 * Why so little: all of the database is in the store library (src/store:
 * schema, migrations, the decision log, stories written append-only,
 * versions); the server owns one connection to it (app->store), used by
 * the worker thread only. This file finds the path (--db: a SQLite file or
 * a postgresql:// URL, else the XDG data directory), makes its directory,
 * opens the store and takes the version counter, so versions go on growing
 * across restarts.
 *
 * Shared (PostgreSQL, several servers behind nginx: docs/deploy.md): any
 * other server may have written a story or the profile since this one read
 * it. Before a job, the profile is reloaded when its row changed (one
 * indexed read per job), and a resident story whose row moved on is
 * dropped and restored (one indexed read per request); a write that still
 * races another server is refused by the store (409, retryable) and
 * nothing is overwritten.
 */
#include "server/serve.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

bool srv_db_is_url(const char *path)
{
    return strncmp(path, "postgresql://", 13) == 0 || strncmp(path, "postgres://", 11) == 0;
}

/* Opens (creating if needed) the store. Returns 0, or -1 with a message. */
int srv_store_open(srv_app *app, char *err, size_t cap)
{
    if (resolve_db_path(app) != 0) {
        snprintf(err, cap, "database path too long");
        return -1;
    }
    if (strcmp(app->db_path, ":memory:") != 0 && !srv_db_is_url(app->db_path) && make_parent_dirs(app->db_path) != 0) {
        snprintf(err, cap, "cannot create the directory of %s", app->db_path);
        return -1;
    }
    fp_error e = {0};
    if (!(app->store = fp_store_open(app->db_path, true, &e))) {
        snprintf(err, cap, "%s", e.message);
        return -1;
    }
    app->version = fp_store_version(app->store);
    return 0;
}

void srv_store_close(srv_app *app)
{
    fp_store_close(app->store);
    app->store = NULL;
}

/* The database as it may be shown in a log: a URL loses its password. */
void srv_db_display(const srv_app *app, char *out, size_t cap)
{
    const char *p = app->db_path;
    const char *at = srv_db_is_url(p) ? strchr(p, '@') : NULL;
    const char *colon = at ? memchr(p + 11, ':', (size_t)(at - p - 11)) : NULL;
    if (colon && colon[1] != '/') snprintf(out, cap, "%.*s:***%s", (int)(colon - p), p, at);
    else snprintf(out, cap, "%s", p);
}

/* Versions only go forward across servers: before handing out new ones
 * after a restore, catch up with the highest any server stored. */
void srv_store_sync_version(srv_app *app)
{
    if (!fp_store_is_shared(app->store)) return;
    uint64_t v = fp_store_version(app->store);
    if (v > app->version) app->version = v;
}

/* The open cloud's order: a hash (FNV-1a) of its words in order; 0 with no
 * fork. O(candidates). */
static uint64_t cloud_order(const fp_session *s)
{
    const fp_fork *f = fp_session_fork(s);
    if (!f) return 0;
    uint64_t h = 1469598103934665603ull;
    for (int32_t i = 0; i < f->n_candidates; i++)
        for (const char *c = f->candidates[i].text;; c++) {
            h = (h ^ (unsigned char)*c) * 1099511628211ull;
            if (!*c) break;
        }
    return h;
}

bool srv_store_attach_prefs(fp_session *s, fp_prefs *p)
{
    uint64_t before = cloud_order(s);
    fp_session_set_prefs(s, p, NULL); /* same model: cannot fail */
    return cloud_order(s) != before;
}

/* The profile another server trained, before this job uses it: reloaded
 * and given to every resident session (they borrow app->prefs). A session
 * whose open cloud it reorders gets a new version, pushed to its
 * WebSocket clients: the index a client holds named a word of the old
 * order, and a request naming the old version is refused (409 with the
 * state) instead of taking another word. force:
 * also when unchanged there (what is in memory learned from a write that
 * was refused). When it cannot be read the old one stays (a write of it
 * would then be refused). */
void srv_store_refresh_prefs(srv_app *app, bool force)
{
    if (!app->prefs || !app->cfg.profile || !fp_store_is_shared(app->store)) return;
    if (force) app->prefs_stale = true;
    bool changed = app->prefs_stale;
    fp_error err = {0};
    if (!changed && fp_store_profile_changed(app->store, app->cfg.profile, &changed, &err) != FP_OK) return;
    if (!changed) return;
    /* swapping the profile under a session another executor is half-way
     * through is not safe: only when alone (a later job alone takes it).
     * Speculation alone does not hold it off: it is stopped, and this job
     * runs alone (else, with speculation always at work beside the jobs,
     * another server's training would never be taken and every save of
     * the profile would be refused) */
    if (!srv_worker_alone(app)) {
        if (!srv_worker_only_speculation(app)) return;
        srv_worker_exclusive(app);
    }
    fp_prefs *p = NULL;
    if (fp_store_profile_load(app->store, app->cfg.profile, app->model_sha, &p, &err) != FP_OK) {
        fprintf(stderr, "forkpoint-serve: profile: %s\n", err.message);
        return;
    }
    if (!p && !(p = fp_prefs_new(fp_model_n_vocab(app->model)))) return;
    fp_prefs_set_auto(p, app->cfg.auto_resolve, 0.95f);
    for (int i = 0; i < app->cfg.max_live; i++) {
        srv_live *l = &app->live[i];
        if (!l->used || !l->s || !srv_store_attach_prefs(l->s, p)) continue;   /* a chat between turns has no session */
        l->version = ++app->version;
        if (fp_store_note_version(app->store, app->version, &err) != FP_OK)
            fprintf(stderr, "forkpoint-serve: %s\n", err.message);
        char *state = srv_state_json(app, l);
        const fp_fork *f = fp_session_fork(l->s);
        if (state) srv_ws_broadcast_state(app, l->id, state, f ? f->n_candidates : 0);
        free(state);
    }
    fp_prefs_free(app->prefs);
    app->prefs = p;
    app->prefs_stale = false;
}

/* Whether a resident story is still what the database holds (always, for
 * a store no one else writes). A database that cannot be asked counts as
 * current: a change would fail at its write anyway, with a clear error. */
bool srv_store_current(srv_app *app, const srv_live *l)
{
    if (!fp_store_is_shared(app->store) || (!l->ps && !l->pc)) return true;
    bool cur = true;
    if ((l->pc ? fp_store_chat_current(app->store, l->pc, &cur, NULL)
               : fp_store_session_current(app->store, l->ps, &cur, NULL)) != FP_OK) return true;
    return cur;
}
