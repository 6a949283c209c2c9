/*
 * sessions.c — the session registry and the job executor (worker thread).
 *
 * Why: every call into the core library happens here, on the worker thread.
 * Sessions are resident in the engine (a srv_live slot) or only in the
 * store; a job naming a non-resident session restores it first. The engine
 * has a fixed number of sequences (each session takes 1 + beam_width), so
 * when the resident table is full or the engine reports FP_ERR_CAPACITY the
 * least recently used other session is evicted (it is saved after every
 * change, so eviction loses nothing) and the call is retried; only when
 * nothing is left to evict does the client get 503.
 *
 * Saving: after every change the worker writes what changed (the store's
 * fp_store_session_write: the change, the decisions it adds to the log, the
 * new version and the profile, in one transaction) before it answers or
 * broadcasts. A write that fails is answered with 500 and the session is
 * dropped from memory, so what clients see never runs ahead of the disk.
 */
#include "server/serve.h"
#include "server/oai.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ----------------------------------------------------------- registry */

static srv_live *live_find(srv_app *app, const char *id)
{
    for (int i = 0; i < app->cfg.max_live; i++)
        if (app->live[i].used && strcmp(app->live[i].id, id) == 0) return &app->live[i];
    return NULL;
}

/* Remembers the version of a session leaving the engine, so that when it is
 * restored (from the state saved at that very version) clients that send
 * the version they saw are not told their view is stale. */
static void stash_version(srv_app *app, const srv_live *l)
{
    int i = app->vstash_next++ % SRV_VSTASH;
    snprintf(app->vstash[i].id, sizeof app->vstash[i].id, "%s", l->id);
    app->vstash[i].version = l->version;
}

static uint64_t stashed_version(srv_app *app, const char *id)
{
    for (int i = 0; i < SRV_VSTASH; i++)
        if (strcmp(app->vstash[i].id, id) == 0) return app->vstash[i].version;
    return 0;
}

static void drop_live(srv_app *app, srv_live *l);

/* Frees the least recently used resident session other than keep.
 * Returns true when one was evicted. */
static bool evict_lru(srv_app *app, const srv_live *keep)
{
    if (app->cfg.no_evict) return false;
    srv_live *victim = NULL;
    for (int i = 0; i < app->cfg.max_live; i++) {
        srv_live *l = &app->live[i];
        if (!l->used || l == keep || l->busy) continue;   /* busy: a job is at work on it */
        if (!victim || l->last_used < victim->last_used) victim = l;
    }
    if (!victim) return false;
    if (!app->cfg.quiet) fprintf(stderr, "forkpoint-serve: evicting session %s\n", victim->id);
    drop_live(app, victim);
    return true;
}

/* A free slot, evicting the LRU session if the table is full. The slot
 * comes reserved (used and busy, no id): making its session decodes, and
 * meanwhile another executor must not take the slot too. The caller fills
 * it in, or gives it back with memset. */
static srv_live *free_slot(srv_app *app)
{
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < app->cfg.max_live; i++)
            if (!app->live[i].used) {
                srv_live *l = &app->live[i];
                memset(l, 0, sizeof *l);
                l->used = l->busy = true;
                return l;
            }
        if (!evict_lru(app, NULL)) break;
    }
    return NULL;
}

static void touch(srv_app *app, srv_live *l) { l->last_used = ++app->tick; }

static fp_decision_meta meta_for(srv_app *app, const srv_live *l, const srv_job *job)
{
    return (fp_decision_meta){ .session_id = l->id, .profile = app->cfg.profile ? app->cfg.profile : "default",
                               .model_sha256 = app->model_sha, .model_path = app->model_path,
                               .modality = job->modality[0] ? job->modality : "api" };
}

/* Writes what changed (and the decisions made) in one transaction. Why
 * after every change: a restarted (or crashed) server shows every decision
 * that was answered. Returns FP_OK, or the store's status with the error
 * logged and in *err. */
static fp_status persist(srv_app *app, srv_live *l, const srv_job *job, fp_error *err)
{
    fp_decision_meta meta = meta_for(app, l, job);
    fp_status st = l->d ? fp_store_chat_write(app->store, l->pc, l->d, l->version, &meta, app->prefs, err)
                        : fp_store_session_write(app->store, l->ps, l->s, l->version, &meta, app->prefs, err);
    if (st != FP_OK) fprintf(stderr, "forkpoint-serve: saving session %s failed: %s\n", l->id, err->message);
    return st;
}

/* The answer to a write the store refused. Another server wrote the story
 * or the profile (FP_ERR_STATE): 409, retryable once the client has the
 * new state. A shared database out of reach: 503, retryable. Else 500. */
static void reply_unsaved(srv_app *app, srv_job *job, fp_status st, const fp_error *err)
{
    bool shared = fp_store_is_shared(app->store);
    if (st == FP_ERR_STATE || shared) {
        cJSON *o = cJSON_CreateObject();
        char msg[400];
        snprintf(msg, sizeof msg, "%s: %s", st == FP_ERR_STATE ? "not saved, another server changed it first"
                                                                 : "not done, the database is out of reach or busy", err->message);
        cJSON_AddStringToObject(o, "error", msg);
        cJSON_AddBoolToObject(o, "retryable", true);
        job->body = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        job->status = st == FP_ERR_STATE ? 409 : 503;
        if (job->body) return;
    }
    job->status = 500;
    job->body = srv_json_error("cannot save the session");
}

/* Frees one resident session without saving (its last committed state is
 * in the store); its version is remembered for when it comes back. */
static void drop_live(srv_app *app, srv_live *l)
{
    stash_version(app, l);
    if (l->d) fp_dialogue_free(l->d);   /* a chat's open turn is its dialogue's */
    else fp_session_free(l->s);
    fp_store_session_free(l->ps);
    fp_store_chat_free(l->pc);
    memset(l, 0, sizeof *l);
}

/* A story written with another model than the running one: switches to
 * it (models.c), or answers 409 saying why it cannot. may_switch false (the
 * restore at start) leaves such a story for later. True when it may load. */
static bool with_its_model(srv_app *app, srv_job *job, bool may_switch, bool *is_chat)
{
    fp_story_info row;
    fp_error err = {0};
    *is_chat = false;
    /* unknown ids and store errors are load's to report */
    if (fp_store_session_info(app->store, job->sid, &row, &err) != FP_OK) return true;
    *is_chat = strcmp(row.kind, "chat") == 0;
    if (!row.model_sha256[0] || strcmp(row.model_sha256, app->model_sha) == 0) return true;
    const char *slash = strrchr(row.model_path, '/');
    const char *file = slash ? slash + 1 : row.model_path;
    char msg[1400];
    if (!may_switch) {
        snprintf(msg, sizeof msg, "written with %s, not the running model", file);
    } else if (srv_model_switch(app, row.model_path, row.model_sha256, &err) == FP_OK) {
        return true;
    } else {
        snprintf(msg, sizeof msg, "this story was written with %s and cannot reopen with it: %s", file, err.message);
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", msg);
    cJSON *m = cJSON_AddObjectToObject(o, "model");
    cJSON_AddStringToObject(m, "path", row.model_path);
    cJSON_AddStringToObject(m, "sha256", row.model_sha256);
    job->body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    job->status = 409;
    if (!job->body) { job->status = 500; job->body = srv_json_error("out of memory"); }
    return false;
}

/* Makes a session resident: found in the table, or restored from SQLite
 * (with its model: with_its_model). On failure sets job->status/body and
 * returns NULL. */
static srv_live *load_as(srv_app *app, srv_job *job, bool may_switch)
{
    srv_live *l = live_find(app, job->sid);
    /* another server sharing the database may have written it since */
    if (l && !srv_store_current(app, l)) {
        drop_live(app, l);
        l = NULL;
    }
    if (l) { touch(app, l); return l; }
    bool is_chat;
    if (!with_its_model(app, job, may_switch, &is_chat)) return NULL;

    l = free_slot(app);
    if (!l) {
        job->status = 503;
        job->body = srv_json_error("no room for another session");
        return NULL;
    }
    fp_error err = {0};
    fp_session *s = NULL;
    fp_store_session *ps = NULL;
    fp_dialogue *d = NULL;
    fp_store_chat *pc = NULL;
    fp_story_info info;
    /* a chat: its dialogue (chats.c), whose open turn may be none */
    while (!(is_chat ? (d = fp_store_chat_load(app->store, app->engine, job->sid, &pc, &info, &err)) != NULL
                     : (s = fp_store_session_load(app->store, app->engine, job->sid, &ps, &info, &err)) != NULL) &&
           (err.code == FP_ERR_CAPACITY || err.code == FP_ERR_CONTEXT) && evict_lru(app, NULL))
        memset(&err, 0, sizeof err);
    if (d) s = fp_dialogue_session(d);
    if (!s && !d) {
        memset(l, 0, sizeof *l);   /* the reserved slot goes back */
        char msg[320];
        snprintf(msg, sizeof msg, "cannot restore session: %s", err.message);
        if (err.code == FP_ERR_IO && fp_store_is_shared(app->store)) {
            /* the shared database is out of reach or busy: nothing was done, try again */
            reply_unsaved(app, job, err.code, &err);
            return NULL;
        }
        job->status = err.code == FP_ERR_EMPTY ? 404 : err.code == FP_ERR_CAPACITY ? 503 : 500;
        job->body = srv_json_error(err.code == FP_ERR_EMPTY ? "unknown session" : msg);
        return NULL;
    }
    l->used = true;
    l->s = s;
    l->ps = ps;
    l->d = d;
    l->pc = pc;
    /* the preferences may have changed since it was saved (learning here or,
     * on a shared database, on another server): a reordered cloud is a state
     * clients have not seen */
    bool reordered = app->prefs && s && srv_store_attach_prefs(s, app->prefs);
    snprintf(l->id, sizeof l->id, "%s", job->sid);
    snprintf(l->title, sizeof l->title, "%.*s", (int)sizeof l->title - 1, info.title);
    l->created = info.created;
    /* the version its clients saw before it was evicted in this run (the
     * state restored is the one saved at it); else a new one, stored so that
     * it is not handed out again after a restart */
    l->version = reordered ? 0 : stashed_version(app, l->id);
    if (fp_store_is_shared(app->store)) {
        /* the state restored is the one committed at info.version, by this
         * server or another: clients of a server that died go on with it */
        srv_store_sync_version(app);
        if (!reordered && info.version > l->version) l->version = info.version;
    }
    if (l->version == 0) {
        l->version = ++app->version;
        if (fp_store_note_version(app->store, app->version, &err) != FP_OK)
            fprintf(stderr, "forkpoint-serve: %s\n", err.message);
    }
    touch(app, l);
    return l;
}

static srv_live *load(srv_app *app, srv_job *job) { return load_as(app, job, true); }

/* Puts the session's state into the response; when changed, bumps the
 * version, saves, and pushes the state to its WebSocket clients. */
/* Bumps the version and saves; false (job answered, session dropped) when
 * the store refused. */
static bool save_change(srv_app *app, srv_live *l, srv_job *job)
{
    l->version = ++app->version;
    fp_error err = {0};
    fp_status st = persist(app, l, job, &err);
    if (st == FP_OK) return true;
    /* memory is ahead of the disk: forget it, the next request reloads
     * (the profile too, when it trained on what was not saved) */
    drop_live(app, l);
    srv_store_refresh_prefs(app, true);
    reply_unsaved(app, job, st, &err);
    return false;
}

static void reply_state(srv_app *app, srv_live *l, srv_job *job, bool changed)
{
    if (changed && !save_change(app, l, job)) return;
    job->out_version = l->version;
    char *state = srv_state_json(app, l);
    if (!state) {
        job->status = 500;
        job->body = srv_json_error("out of memory");
        return;
    }
    if (changed) {
        const fp_fork *f = l->s ? fp_session_fork(l->s) : NULL;
        srv_ws_broadcast_state(app, l->id, state, f ? f->n_candidates : 0);
    }
    job->status = 200;
    job->body = state;
}

static void reply_fp_error(srv_job *job, const fp_error *err, fp_status st)
{
    job->status = srv_status_http(st);
    char msg[300];
    snprintf(msg, sizeof msg, "%s", err->message[0] ? err->message : fp_status_name(st));
    if (st == FP_ERR_REMOTE) {   /* the remote engine failed: nothing was decided, the same call may be sent again */
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "error", msg);
        cJSON_AddBoolToObject(o, "retryable", true);
        job->body = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        if (job->body) return;
    }
    job->body = srv_json_error(msg);
}

/* A session title: the prompt's first line, cut at a character boundary. */
static void make_title(const char *prompt, char *out, size_t cap)
{
    size_t n = strcspn(prompt, "\r\n");
    if (n > cap - 1) n = cap - 1;
    n = fp_utf8_complete_prefix(prompt, n);
    memcpy(out, prompt, n);
    out[n] = '\0';
}

/* ---------------------------------------------------------------- jobs */

static void job_list(srv_app *app, srv_job *job)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(o, "sessions");
    enum { MAX_LISTED = 1000 };
    fp_story_info *rows = malloc(sizeof *rows * MAX_LISTED);
    int32_t n = rows ? fp_store_sessions(app->store, rows, MAX_LISTED, NULL) : -1;
    if (!o || !arr || n < 0) {
        cJSON_Delete(o);
        free(rows);
        job->status = 500;
        job->body = srv_json_error("cannot list sessions");
        return;
    }
    for (int32_t i = 0; i < n; i++) {
        cJSON *it = cJSON_CreateObject();
        if (!it) break;
        cJSON_AddItemToArray(arr, it);
        cJSON_AddStringToObject(it, "id", rows[i].id);
        cJSON_AddStringToObject(it, "title", rows[i].title);
        cJSON_AddNumberToObject(it, "created", (double)rows[i].created);
        cJSON_AddNumberToObject(it, "updated", (double)rows[i].updated);
        cJSON_AddBoolToObject(it, "live", live_find(app, rows[i].id) != NULL);
        const char *slash = strrchr(rows[i].model_path, '/');
        cJSON_AddStringToObject(it, "model", slash ? slash + 1 : rows[i].model_path);
        cJSON_AddBoolToObject(it, "model_running", !rows[i].model_sha256[0] || !strcmp(rows[i].model_sha256, app->model_sha));
    }
    free(rows);
    job->body = cJSON_PrintUnformatted(o);
    job->status = job->body ? 200 : 500;
    cJSON_Delete(o);
}

static void job_create(srv_app *app, srv_job *job)
{
    fp_settings set = fp_default_settings();
    fp_error err = {0};
    fp_status st;
    if (job->settings && (st = fp_settings_from_json(job->settings, &set, &err)) != FP_OK) {
        reply_fp_error(job, &err, st);
        return;
    }
    if ((st = fp_settings_validate(&set, &err)) != FP_OK) {
        reply_fp_error(job, &err, st);
        return;
    }
    char id[SRV_ID_LEN + 1];
    if (srv_random_id(id) != 0) {
        job->status = 500;
        job->body = srv_json_error("no randomness for a session id");
        return;
    }
    srv_live *l = free_slot(app);
    if (!l) {
        job->status = 503;
        job->body = srv_json_error("no room for another session");
        return;
    }
    double t0 = srv_now_ms();
    fp_session *s = NULL;
    fp_dialogue *d = NULL;   /* a chat (chat.c): no session until a turn opens */
    char title[SRV_TITLE_MAX] = "";
    while (!(job->ext ? (d = srv_chat_new(app, job->ext, &set, title, sizeof title, &err)) != NULL
                      : (s = fp_session_new(app->engine, job->text, &set, &err)) != NULL) &&
           (err.code == FP_ERR_CAPACITY || err.code == FP_ERR_CONTEXT) && evict_lru(app, NULL))
        memset(&err, 0, sizeof err);
    if (!s && !d) {
        memset(l, 0, sizeof *l);   /* the reserved slot goes back */
        if (err.code == FP_ERR_CAPACITY) {
            job->status = 503;
            char msg[320];
            snprintf(msg, sizeof msg, "server at capacity: %s", err.message);
            job->body = srv_json_error(msg);
        } else {
            reply_fp_error(job, &err, err.code ? err.code : FP_ERR_ARG);
        }
        return;
    }
    if (app->prefs && s) fp_session_set_prefs(s, app->prefs, NULL); /* same model: cannot fail */
    l->used = true;
    l->s = s;
    l->d = d;
    snprintf(l->id, sizeof l->id, "%s", id);
    snprintf(job->sid, sizeof job->sid, "%s", id);
    make_title(d ? title : job->text, l->title, sizeof l->title);
    l->created = (int64_t)time(NULL);
    l->last_ms = srv_now_ms() - t0;
    srv_store_sync_version(app);
    l->version = ++app->version;
    /* the row, the first snapshot and any decision already made, at once */
    fp_decision_meta meta = meta_for(app, l, job);
    if (d ? !(l->pc = fp_store_chat_create(app->store, l->title, l->created, l->version, d, &meta, app->prefs, &err))
          : !(l->ps = fp_store_session_create(app->store, l->title, l->created, l->version, s, &meta, app->prefs, &err))) {
        fprintf(stderr, "forkpoint-serve: saving session %s failed: %s\n", id, err.message);
        drop_live(app, l);
        reply_unsaved(app, job, err.code, &err);
        return;
    }
    touch(app, l);
    reply_state(app, l, job, false); /* saved already; nobody is subscribed yet */
    if (job->status == 200) job->status = 201;
}

static void job_delete(srv_app *app, srv_job *job)
{
    srv_live *l = live_find(app, job->sid);
    if (l) drop_live(app, l);
    bool existed = false;
    if (fp_store_session_delete(app->store, job->sid, &existed, NULL) != FP_OK) {
        job->status = 500;
        job->body = srv_json_error("cannot delete the session");
        return;
    }
    if (!existed && !l) {
        job->status = 404;
        job->body = srv_json_error("unknown session");
        return;
    }
    srv_ws_drop_session(app, job->sid);
    job->status = 200;
    job->body = strdup("{\"deleted\":true}");
}

/* Frees every resident session except keep; returns how many. Why all:
 * FP_ERR_CONTEXT means the KV cells shared by all sessions are used up, and
 * evicted sessions come back from SQLite on their next request. */
static int evict_others(srv_app *app, const srv_live *keep)
{
    int n = 0;
    while (evict_lru(app, keep)) n++;
    return n;
}

/* Applies one decision or navigation call. Returns its status; *replied is
 * set when the job already holds a response (a validation error). */
static fp_status apply_change(srv_app *app, srv_job *job, srv_live *l, fp_error *err,
                              bool *replied)
{
    fp_session *s = l->s;
    const fp_fork *f = fp_session_fork(s);
    *replied = true;
    l->last_hit = false;
    bool needs_fork = job->kind == JOB_CHOOSE || job->kind == JOB_CONTINUE ||
                      job->kind == JOB_TYPE || job->kind == JOB_PREFIX;
    if (needs_fork && !f) {
        job->status = 409;
        job->body = srv_json_error("the session has ended");
        return FP_ERR_STATE;
    }
    switch (job->kind) {
    case JOB_CHOOSE:
        if (job->index < 0 || job->index >= f->n_candidates) {
            job->status = 400;
            job->body = srv_json_error("index out of range");
            return FP_ERR_ARG;
        }
        if (job->has_upto) {
            /* pointing into the preview: the byte offset must start one of its
             * words (as the core splits them), or be its length (all of it) */
            const fp_candidate *c = &f->candidates[job->index];
            int32_t words = -1;
            if (!c->is_eog && job->upto == (int64_t)strlen(c->preview)) words = c->n_preview_words;
            for (int32_t w = 0; w < c->n_preview_words && words < 0; w++)
                if (c->preview_word_byte[w] == job->upto) words = w;
            if (!c->is_eog && c->n_preview_words == 0 && job->upto == 0) words = 0;
            if (words < 0) {
                job->status = 400;
                job->body = srv_json_error("preview_upto is not where a word of the preview begins (see preview_words)");
                return FP_ERR_ARG;
            }
            *replied = false;
            return fp_session_choose_words(s, job->index, words, FP_BY_HUMAN, err);
        }
        *replied = false;
        l->last_hit = fp_session_is_prefetched(s, job->index, job->flag);
        return fp_session_choose(s, job->index, job->flag, FP_BY_HUMAN, err);
    case JOB_CONTINUE:
        *replied = false;
        return fp_session_continue(s, FP_BY_HUMAN, err);
    case JOB_TYPE:
        *replied = false;
        return fp_session_type_commit(s, job->text, FP_BY_HUMAN, err);
    case JOB_PREFIX:
        *replied = false;
        return fp_session_type_prefix(s, job->text, err);
    case JOB_UNDO:
        *replied = false;
        return fp_session_undo(s, err);
    case JOB_GOTO_FORK:
        *replied = false;
        return fp_session_goto_fork(s, job->index, err);
    case JOB_GOTO_OFFSET:
        if (job->offset < 0 || (size_t)job->offset > fp_session_text_len(s)) {
            job->status = 400;
            job->body = srv_json_error("offset out of range");
            return FP_ERR_ARG;
        }
        if ((size_t)job->offset < fp_session_prompt_len(s)) {
            job->status = 400;
            job->body = srv_json_error("offset is inside the prompt");
            return FP_ERR_ARG;
        }
        *replied = false;
        return fp_session_fork_at(s, (size_t)job->offset, err);
    case JOB_SETTINGS: {
        if (!job->settings) {
            job->status = 400;
            job->body = srv_json_error("missing settings");
            return FP_ERR_ARG;
        }
        fp_settings set = *fp_session_settings(s);
        fp_status st;
        *replied = false;
        if ((st = fp_settings_from_json(job->settings, &set, err)) != FP_OK) return st;
        if ((st = fp_settings_validate(&set, err)) != FP_OK) return st;
        return fp_session_set_settings(s, &set, err);
    }
    case JOB_SAY: case JOB_REPLY: case JOB_END:
        job->status = 400;
        job->body = srv_json_error("say, reply and end are for chats (create one with \"mode\":\"chat\")");
        return FP_ERR_ARG;
    case JOB_SHOWN:
        fp_session_mark_shown(s);
        job->status = 200;
        job->body = strdup("{\"ok\":true}");
        return FP_OK;
    default:
        job->status = 500;
        job->body = srv_json_error("internal: unknown job");
        return FP_ERR_ARG;
    }
}

/* Why: two people (or a page and a switch) may both answer the same fork;
 * a client that names the fork its action answers ("fork_id") or the state
 * version it saw ("version") gets 409 with the current state when that is
 * no longer what the session shows, instead of a decision it did not mean.
 * Returns true when the job was answered so. */
static bool stale(srv_app *app, srv_job *job, srv_live *l)
{
    const fp_fork *f = l->s ? fp_session_fork(l->s) : NULL;   /* a chat between turns has none */
    char why[200] = "";
    if (job->has_version && job->want_version != l->version)
        snprintf(why, sizeof why, "stale: the session is at version %llu, not %llu",
                 (unsigned long long)l->version, (unsigned long long)job->want_version);
    else if (job->has_fork && !f)
        snprintf(why, sizeof why, "stale: the session has ended, fork %d is not open", (int)job->want_fork);
    else if (job->has_fork && f->id != job->want_fork)
        snprintf(why, sizeof why, "stale: the open fork is %d, not %d", (int)f->id, (int)job->want_fork);
    if (!why[0]) return false;
    char *state = srv_state_json(app, l);
    char *err = srv_json_error(why);
    size_t n = (state ? strlen(state) : 4) + (err ? strlen(err) : 2) + 16;
    char *body = state && err ? malloc(n) : NULL;
    if (body) {
        /* {"error":...,"state":{...}}: err is an object; splice state in */
        size_t el = strlen(err);
        snprintf(body, n, "%.*s,\"state\":%s}", (int)(el - 1), err, state);
    }
    free(state);
    free(err);
    job->status = body ? 409 : 500;
    job->body = body ? body : srv_json_error("out of memory");
    return true;
}

/* Decisions and navigation: the calls that change a session. When the
 * engine runs out of sequences or KV cells (shared by all sessions), the
 * other resident sessions are evicted, this one is reloaded from its last
 * saved state (so a half-done call leaves no trace) and the call is retried
 * once; if it still fails the client gets 503 and may retry later. */
static void job_change(srv_app *app, srv_job *job, srv_live *l)
{
    if (stale(app, job, l)) return;
    fp_error err = {0};
    bool replied = false;
    double t0 = srv_now_ms();
    fp_status st;
    if (!(l->d && srv_chat_apply(app, job, l, &st, &err, &replied))) st = apply_change(app, job, l, &err, &replied);
    if (replied) return;
    if ((st == FP_ERR_CAPACITY || st == FP_ERR_CONTEXT) && evict_others(app, l) > 0) {
        if (!app->cfg.quiet)
            fprintf(stderr, "forkpoint-serve: %s on %s: evicted other sessions, retrying\n",
                    fp_status_name(st), job->sid);
        drop_live(app, l);
        if (!(l = load(app, job))) return;
        memset(&err, 0, sizeof err);
        t0 = srv_now_ms();
        if (!(l->d && srv_chat_apply(app, job, l, &st, &err, &replied))) st = apply_change(app, job, l, &err, &replied);
        if (replied) return;
    }
    if (st != FP_OK) {
        if (st == FP_ERR_CAPACITY || st == FP_ERR_CONTEXT || st == FP_ERR_DECODE ||
            st == FP_ERR_NOMEM || st == FP_ERR_REMOTE) {
            /* the call may have left the in-memory session half-changed:
             * reload it from SQLite on the next request */
            drop_live(app, l);
        }
        if (st == FP_ERR_CAPACITY) {
            char msg[320];
            snprintf(msg, sizeof msg, "server at capacity: %s", err.message);
            job->status = 503;
            job->body = srv_json_error(msg);
        } else {
            reply_fp_error(job, &err, st);
        }
        return;
    }
    l->last_ms = srv_now_ms() - t0;
    /* a chat's turn that has ended: its decisions are saved from its
     * session, then it becomes a message (both written: two transactions) */
    if (l->d && srv_chat_settle(l)) {
        if (!save_change(app, l, job)) return;
        fp_status cst = srv_chat_commit(l, &err);
        if (cst != FP_OK && cst != FP_ERR_EMPTY) { drop_live(app, l); reply_fp_error(job, &err, cst); return; }
        /* empty (the model ended the turn at once): it stays open, ended; undo or end it */
    }
    /* a prefix narrows the cloud but commits nothing; it is still state the
     * other clients should see, so it is broadcast (and saved: cheap) too */
    reply_state(app, l, job, true);
}

/* New adapter strengths: the engine re-decodes every resident session (the
 * library does), and each one's clients get its recomputed state. */
static void job_adapters(srv_app *app, srv_job *job)
{
    fp_error err = {0};
    fp_status st = FP_OK;
    if (!isnan(job->lora_scale)) st = fp_engine_set_lora(app->engine, app->cfg.lora, job->lora_scale, &err);
    if (st == FP_OK && !isnan(job->steer_strength))
        st = fp_engine_set_steer(app->engine, app->steer, job->steer_strength, &err);
    if (st != FP_OK) {
        /* sessions may be half re-decoded: reload them from SQLite when next used */
        for (int i = 0; i < app->cfg.max_live; i++) if (app->live[i].used) drop_live(app, &app->live[i]);
        reply_fp_error(job, &err, st);
        return;
    }
    pthread_mutex_lock(&app->adapters_mu);
    if (!isnan(job->lora_scale)) app->cfg.lora_scale = job->lora_scale;
    if (!isnan(job->steer_strength)) app->cfg.steer_strength = job->steer_strength;
    pthread_mutex_unlock(&app->adapters_mu);
    for (int i = 0; i < app->cfg.max_live; i++) {
        srv_live *l = &app->live[i];
        if (!l->used) continue;
        srv_job note = { .kind = JOB_GET };
        reply_state(app, l, &note, true);
        free(note.body);
    }
    cJSON *o = cJSON_CreateObject();
    srv_adapters_json(app, o);
    job->body = cJSON_PrintUnformatted(o);
    job->status = job->body ? 200 : 500;
    cJSON_Delete(o);
    if (!job->body) job->body = srv_json_error("out of memory");
}

static void exec_job(srv_app *app, srv_job *job);

/* Runs one job. Called by an executor holding the engine lock. Its session
 * is marked busy meanwhile (not evicted while its executor waits in a
 * decode and another one runs). */
void srv_exec(srv_app *app, srv_job *job)
{
    srv_store_refresh_prefs(app, false); /* another server may have trained it */
    exec_job(app, job);
    srv_live *l = job->sid[0] ? live_find(app, job->sid) : NULL;
    if (l) l->busy = false;
}

static void exec_job(srv_app *app, srv_job *job)
{
    switch (job->kind) {
    case JOB_LIST:   job_list(app, job); return;
    case JOB_ADAPTERS: job_adapters(app, job); return;
    case JOB_PROFILE: case JOB_PROFILE_RESET: srv_job_profile(app, job); return;
    case JOB_CREATE: job_create(app, job); return;
    case JOB_DELETE: job_delete(app, job); return;
    case JOB_OAI:    srv_oai_exec(app, job); return;
    case JOB_MODEL:  srv_job_model(app, job); return;
    default: break;
    }
    srv_live *l = load(app, job);
    if (!l) return;
    l->busy = true;
    job->out_version = l->version;
    switch (job->kind) {
    case JOB_GET:
        reply_state(app, l, job, false);
        return;
    case JOB_TREE:
        if (!l->s) { job->status = 409; job->body = srv_json_error("no turn is open: the tree is the open turn's"); return; }
        job->body = fp_session_tree_json(l->s);
        job->status = job->body ? 200 : 500;
        if (!job->body) job->body = srv_json_error("out of memory");
        return;
    case JOB_EVENTS:
        job->body = l->d ? srv_chat_events_jsonl(l) : srv_events_jsonl(l->s);
        job->status = job->body ? 200 : 500;
        job->ctype = "application/x-ndjson; charset=utf-8";
        if (!job->body) { job->body = srv_json_error("out of memory"); job->ctype = NULL; }
        return;
    default:
        job_change(app, job, l);
        return;
    }
}

/* ------------------------------------------------------------ prefetch */

/* What a person is likely to do next, in order: the top candidate alone, the
 * second, the top with its phrase, the third (FP_MAX_PREFETCH outcomes). */
static const struct { int32_t index; bool with_preview; } k_plan[FP_MAX_PREFETCH] = {
    { 0, false }, { 1, false }, { 0, true }, { 2, false },
};

static void pf_remove(srv_app *app, int i)
{
    memmove(app->pf_sids[i], app->pf_sids[i + 1], sizeof app->pf_sids[0] * (size_t)(app->n_pf - i - 1));
    app->n_pf--;
}

void srv_prefetch_drop(srv_app *app, const char *sid)
{
    for (int i = 0; i < app->n_pf; i++)
        if (strcmp(app->pf_sids[i], sid) == 0) { pf_remove(app, i); return; }
}

void srv_prefetch_note(srv_app *app, const char *sid)
{
    if (!sid[0] || app->cfg.no_prefetch) return;
    srv_prefetch_drop(app, sid);
    if (app->n_pf == 8) app->n_pf--;  /* the least recent falls off */
    memmove(app->pf_sids[1], app->pf_sids[0], sizeof app->pf_sids[0] * (size_t)app->n_pf);
    snprintf(app->pf_sids[0], sizeof app->pf_sids[0], "%s", sid);
    app->n_pf++;
}

/* The plan's next outcome not yet computed for s, or -1. */
static int next_plan(const fp_session *s)
{
    if (fp_session_state(s) != FP_STATE_AT_FORK) return -1;
    int32_t n = fp_session_fork(s)->n_candidates;
    for (int k = 0; k < FP_MAX_PREFETCH; k++)
        if (k_plan[k].index < n && !fp_session_is_prefetched(s, k_plan[k].index, k_plan[k].with_preview)) return k;
    return -1;
}

fp_session *srv_prefetch_target(srv_app *app, const char *sid)
{
    srv_live *l = live_find(app, sid);
    if (!l || !l->s || l->busy || next_plan(l->s) < 0) return NULL;   /* a chat between turns has no session */
    l->busy = true;   /* not evicted while this executor waits in a decode */
    return l->s;
}

/* One outcome (none when s is NULL: only the busy mark is given back). An
 * interrupted call (a request arrived) keeps the session listed: it is
 * tried again when an executor is next free. */
bool srv_prefetch_run(srv_app *app, const char *sid, fp_session *s)
{
    srv_live *l = live_find(app, sid);
    bool keep = !s;   /* NULL: not run after all (a request came first), keep it listed */
    int k = s ? next_plan(s) : -1;
    if (k >= 0) {
        fp_error err = {0};
        fp_status st = fp_session_prefetch(s, k_plan[k].index, k_plan[k].with_preview, &err);
        keep = st == FP_OK || st == FP_ERR_ABORTED;   /* otherwise no room: leave it be */
    }
    if (l) l->busy = false;
    return keep;
}

/* Restores the most recently used sessions at start, so a restarted server
 * comes back with its sessions resident (the others restore on demand). */
int srv_sessions_open(srv_app *app, fp_error *err)
{
    /* a shared database holds every server's stories: each restores the
     * ones routed to it, on demand */
    if (fp_store_is_shared(app->store)) return 0;
    int cap = app->cfg.max_live;
    fp_story_info *rows = calloc((size_t)cap, sizeof *rows);
    if (!rows) return -1;
    int n = fp_store_sessions(app->store, rows, cap, err);
    int ok = 0, n_other = 0;
    for (int i = 0; i < n; i++) {
        if (!srv_id_valid(rows[i].id, strlen(rows[i].id))) continue;
        srv_job job = {.kind = JOB_GET};
        snprintf(job.sid, sizeof job.sid, "%.*s", SRV_ID_LEN, rows[i].id);
        srv_live *l = load_as(app, &job, false);
        if (l) { l->busy = false; ok++; }
        else if (job.status == 409) n_other++;   /* another model's story: restored when opened */
        else fprintf(stderr, "forkpoint-serve: session %s not restored: %s\n", rows[i].id,
                     job.body ? job.body : "?");
        free(job.body);
    }
    free(rows);
    if (!app->cfg.quiet && n > 0)
        fprintf(stderr, "forkpoint-serve: restored %d of %d recent sessions\n", ok, n - n_other);
    return 0;
}

void srv_sessions_close(srv_app *app)
{
    for (int i = 0; i < app->cfg.max_live; i++)
        if (app->live[i].used) drop_live(app, &app->live[i]);
}
