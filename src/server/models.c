/*
 * models.c — which model the server runs, the models folder it offers, and
 * switching between them while it runs.
 *
 *   GET  /api/models                {"current": MODEL, "models": [MODEL...], "dir": D,
 *                                    "can_switch": bool, "why_not": "..."}
 *   POST /api/models {"path": P}    switch to the model at P (one of "models",
 *                                    or the model the server started with)
 *
 * MODEL is fp_model_entry_json's object (the one `forkpoint model list
 * --json` prints) plus "sha256" for the current one.
 *
 * Why here, in one place: the running model's facts (app->current) are what
 * /api/models, /api/health and /v1/models report, so they are kept once,
 * under model_mu, and updated by the worker when it switches. The switch
 * itself is a job on the worker, which owns the engine: it loads the new
 * model and its engine beside the old ones (so a model that fails to load
 * changes nothing), drops the resident sessions (every change is saved
 * already: they restore on demand), then swaps them in under the queue
 * lock (handler threads read app->engine there to cancel speculation).
 *
 * The rule for stories: a story remembers the model it was written with
 * (the store's sessions row: path and sha256). Opening or acting on a story
 * of another model switches the server to that model first (sessions.c
 * load()); when its file is missing, or is no longer the same file, the
 * answer is 409 saying why. One model runs at a time, so people writing
 * with two models on one server take turns: each switch costs loading the
 * model and one sha256 pass over its file.
 */
#include "server/serve.h"
#include "forkpoint_fetch.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The engine for model: --ctx, else room for several documents (8 training
 * contexts, at most 16384), since the KV cells are shared by every resident
 * session. */
static fp_engine_params engine_params(const srv_app *app, const fp_model *model)
{
    fp_engine_params ep = fp_engine_default_params();
    if (app->cfg.n_ctx) {
        ep.n_ctx = app->cfg.n_ctx;
    } else {
        int32_t train = fp_model_n_ctx_train(model);
        uint32_t want = train > 0 ? (uint32_t)train * 8u : 4096u;
        ep.n_ctx = want > 16384u ? 16384u : want;
    }
    /* one output per sequence must fit one batch (fp_engine_new checks) */
    uint32_t fit = ep.n_ctx < 64 ? 64 : ep.n_ctx;
    ep.n_seq_max = app->cfg.n_seq_max ? app->cfg.n_seq_max : fit < 256 ? fit : 256;
    ep.n_threads = app->cfg.n_threads;
    ep.backend = app->cfg.backend;
    ep.api_key = app->cfg.api_key;
    ep.remote_model = app->cfg.remote_model;
    ep.remote_top = app->cfg.remote_top;
    ep.remote_timeout_ms = app->cfg.remote_timeout_ms;
    return ep;
}

int srv_model_open(srv_app *app, const char *path, fp_model **model, fp_engine **engine, char sha[65], fp_error *err)
{
    *model = NULL;
    *engine = NULL;
    fp_model_params mp = fp_model_default_params();
    mp.rpc = app->cfg.rpc;   /* --rpc: the layers on the workers */
    mp.vocab_only = app->cfg.backend != NULL;   /* a remote engine: only the tokenizer here */
    fp_model *m = fp_model_load(path, &mp, err);
    if (!m) return -1;
    if (!app->cfg.backend && fp_model_is_vocab_only(m)) {
        fp_error_set(err, FP_ERR_MODEL, "%s has no weights (a vocab-only file)", path);
        fp_model_free(m);
        return -1;
    }
    fp_engine_params ep = engine_params(app, m);
    fp_engine *e = fp_engine_new(m, &ep, err);
    if (!e) { fp_model_free(m); return -1; }
    /* every decision is logged with the model's sha256, and a story records it */
    if (fp_sha256_file(path, sha, err) != FP_OK) {
        fp_engine_free(e);
        fp_model_free(m);
        return -1;
    }
    *model = m;
    *engine = e;
    return 0;
}

void srv_model_note(srv_app *app)
{
    fp_model_entry cur = {0};
    snprintf(cur.path, sizeof cur.path, "%s", app->model_path);
    fp_error err = {0};
    if (fp_model_info_read(app->model_path, &cur.info, &err) != FP_OK)
        snprintf(cur.error, sizeof cur.error, "%s", err.message);
    pthread_mutex_lock(&app->model_mu);
    app->current = cur;
    snprintf(app->current_sha, sizeof app->current_sha, "%s", app->model_sha);
    pthread_mutex_unlock(&app->model_mu);
}

void srv_model_path(srv_app *app, char *out, size_t cap)
{
    pthread_mutex_lock(&app->model_mu);
    snprintf(out, cap, "%s", app->current.path);
    pthread_mutex_unlock(&app->model_mu);
}

/* The folder the picker offers: --models-dir, else the cache's. */
static void models_dir(const srv_app *app, char *out, size_t cap)
{
    fp_error err = {0};
    char given[PATH_MAX];
    if (app->cfg.models_dir) snprintf(given, sizeof given, "%s", app->cfg.models_dir);
    else if (fp_models_dir(given, sizeof given, &err) != FP_OK) given[0] = 0;
    /* absolute, so the paths offered (and recorded with stories) hold from anywhere */
    char real[PATH_MAX];
    snprintf(out, cap, "%s", given[0] && realpath(given, real) ? real : given);
}

/* Why this server cannot switch at all, or NULL. */
static const char *why_fixed(const srv_app *app)
{
    if (app->cfg.lora || app->cfg.steer || app->cfg.profile)
        return "this server runs with --lora, --steer or --profile, which were learned on its model";
    return NULL;
}

/* A completion of the compatible APIs is queued or between its slices: it
 * holds a generator on the current engine. Called on the worker. */
static bool completion_running(srv_app *app)
{
    bool busy = false;
    pthread_mutex_lock(&app->q_mu);
    for (int i = 0; i < SRV_MAX_LANES && !busy; i++)
        for (srv_job *j = app->lanes[i].used ? app->lanes[i].head : NULL; j && !busy; j = j->next)
            busy = j->kind == JOB_OAI;
    pthread_mutex_unlock(&app->q_mu);
    return busy;
}

fp_status srv_model_switch(srv_app *app, const char *path, const char *want_sha, fp_error *err)
{
    bool same_sha = !want_sha || !*want_sha || strcmp(want_sha, app->model_sha) == 0;
    if (strcmp(path, app->model_path) == 0 && same_sha) return FP_OK;
    if (want_sha && *want_sha && strcmp(want_sha, app->model_sha) == 0) return FP_OK; /* the same file elsewhere */
    const char *fixed = why_fixed(app);
    if (fixed) return fp_error_set(err, FP_ERR_STATE, "%s: it cannot switch models", fixed);
    if (completion_running(app))
        return fp_error_set(err, FP_ERR_STATE, "a completion is running on the current model; try again when it ends");
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return fp_error_set(err, FP_ERR_IO, "model file not found: %s", path);
    fp_model *m;
    fp_engine *e;
    char sha[65];
    if (srv_model_open(app, path, &m, &e, sha, err) != 0) return err->code ? err->code : FP_ERR_MODEL;
    if (want_sha && *want_sha && strcmp(sha, want_sha) != 0) {
        fp_engine_free(e);
        fp_model_free(m);
        return fp_error_set(err, FP_ERR_CHECKSUM, "%s is no longer the file it was (sha256 %.12s..., was %.12s...)",
                            path, sha, want_sha);
    }
    /* every session changes: no other executor may be half-way through
     * one (they finish first; with batching this job waits for them) */
    srv_worker_exclusive(app);
    if (app->n_exec > 1 && fp_engine_enable_batching(e, err) != FP_OK) {
        fp_engine_free(e);
        fp_model_free(m);
        return err->code;
    }
    srv_sessions_close(app);   /* all saved: they restore on demand, with their model */
    fp_model *old_m = app->model;
    fp_engine *old_e = app->engine;
    fp_engine_unlock(old_e);   /* this executor's hold passes to the new engine */
    pthread_mutex_lock(&app->q_mu);
    app->n_pf = 0;             /* nothing left to speculate on */
    app->model = m;
    app->engine = e;
    pthread_mutex_unlock(&app->q_mu);
    fp_engine_lock(e);
    fp_engine_free(old_e);
    fp_model_free(old_m);
    snprintf(app->model_path, sizeof app->model_path, "%s", path);
    memcpy(app->model_sha, sha, sizeof app->model_sha);
    srv_model_note(app);
    if (!app->cfg.quiet) fprintf(stderr, "forkpoint-serve: now running %s\n", path);
    return FP_OK;
}

/* The current model as JSON (fp_model_entry_json + sha256). */
static cJSON *current_json(srv_app *app)
{
    pthread_mutex_lock(&app->model_mu);
    char *s = fp_model_entry_json(&app->current);
    char sha[65];
    snprintf(sha, sizeof sha, "%s", app->current_sha);
    pthread_mutex_unlock(&app->model_mu);
    cJSON *o = s ? cJSON_Parse(s) : NULL;
    free(s);
    if (o) cJSON_AddStringToObject(o, "sha256", sha);
    return o;
}

void srv_model_current_json(srv_app *app, void *cjson_obj)
{
    cJSON *o = current_json(app);
    cJSON_AddItemToObject(cjson_obj, "model_info", o ? o : cJSON_CreateNull());
}

/* GET /api/models (handler thread): the folder is read here, headers only. */
static char *list_json(srv_app *app)
{
    char dir[PATH_MAX];
    models_dir(app, dir, sizeof dir);
    fp_model_entry *e = NULL;
    int32_t n = 0;
    fp_error err = {0};
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "current", current_json(app));
    cJSON_AddStringToObject(o, "dir", dir);
    const char *fixed = why_fixed(app);
    cJSON_AddBoolToObject(o, "can_switch", fixed == NULL);
    if (fixed) cJSON_AddStringToObject(o, "why_not", fixed);
    cJSON *arr = cJSON_AddArrayToObject(o, "models");
    if (dir[0] && fp_models_scan(dir, &e, &n, &err) != FP_OK && app->cfg.models_dir)
        cJSON_AddStringToObject(o, "dir_error", err.message);
    for (int32_t i = 0; i < n; i++) {
        char *s = fp_model_entry_json(&e[i]);
        cJSON *it = s ? cJSON_Parse(s) : NULL;
        free(s);
        if (it) cJSON_AddItemToArray(arr, it);
    }
    free(e);
    char *out = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return out;
}

/* True when path is a model of the folder or the one the server started
 * with: a client may switch only to those, never to any file it names. */
static bool offered(srv_app *app, const char *path)
{
    if (strcmp(path, app->start_path) == 0) return true;
    char dir[PATH_MAX];
    models_dir(app, dir, sizeof dir);
    fp_model_entry *e = NULL;
    int32_t n = 0;
    bool found = false;
    if (dir[0] && fp_models_scan(dir, &e, &n, NULL) == FP_OK)
        for (int32_t i = 0; i < n && !found; i++) found = !e[i].error[0] && e[i].info.has_weights && strcmp(e[i].path, path) == 0;
    free(e);
    return found;
}

int srv_models_route(srv_app *app, struct mg_connection *c, const char *method)
{
    if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0) {
        char *s = list_json(app);
        srv_send_json(c, s ? 200 : 500, s ? s : "{\"error\":\"out of memory\"}");
        free(s);
        return s ? 200 : 500;
    }
    if (strcmp(method, "POST") != 0) {
        srv_send_json(c, 405, "{\"error\":\"method not allowed\"}");
        return 405;
    }
    void *jv = NULL;
    char err[200];
    int st = srv_read_json(c, &jv, err, sizeof err);
    cJSON *j = jv;
    const char *bad = NULL;
    const cJSON *path = NULL;
    static const char *const fields[] = {"path", NULL};
    if (!st && !cJSON_IsObject(j)) bad = "the body must be a JSON object";
    else if (!st && (st = srv_check_fields(j, fields, err, sizeof err)) != 0) { /* err says which */ }
    if (!st && !bad) {
        path = cJSON_GetObjectItemCaseSensitive(j, "path");
        if (!cJSON_IsString(path) || !path->valuestring[0]) bad = "\"path\" must be the path of a model of GET /api/models";
        else if (strlen(path->valuestring) >= sizeof app->model_path) bad = "\"path\" is too long";
        else if (!offered(app, path->valuestring)) bad = "no such model in the models folder (see GET /api/models)";
    }
    if (st || bad) {
        char *e = srv_json_error(st ? err : bad);
        srv_send_json(c, st ? st : 400, e ? e : "{}");
        free(e);
        cJSON_Delete(j);
        return st ? st : 400;
    }
    srv_job job = {.kind = JOB_MODEL, .text = path->valuestring};
    snprintf(job.sid, sizeof job.sid, "~model");
    srv_worker_submit(app, &job);
    int status = job.status ? job.status : 500;
    srv_send_json(c, status, job.body ? job.body : "{}");
    free(job.body);
    cJSON_Delete(j);
    return status;
}

void srv_job_model(srv_app *app, srv_job *job)
{
    fp_error err = {0};
    fp_status st = srv_model_switch(app, job->text, NULL, &err);
    if (st != FP_OK) {
        job->status = st == FP_ERR_STATE ? 409 : st == FP_ERR_MODEL || st == FP_ERR_IO ? 422 : 500;
        job->body = srv_json_error(err.message);
        return;
    }
    job->status = 200;
    job->body = list_json(app);
}
