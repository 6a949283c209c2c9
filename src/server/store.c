/*
 * store.c — where the server's database lives, and opening it.
 *
 * Why so little: all of SQLite is in the store library (src/store: schema,
 * migrations, the decision log, stories written append-only, versions); the
 * server owns one connection to it (app->store), used by the worker thread
 * only. This file finds the path (--db or the XDG data directory), makes its
 * directory, opens the store and takes the version counter, so versions go
 * on growing across restarts.
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

/* Opens (creating if needed) the store. Returns 0, or -1 with a message. */
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
