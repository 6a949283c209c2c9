/*
 * worker.c — the executors that own the engine, and their fair queue.
 *
 * Why: the core library is not thread-safe, while civetweb serves each
 * connection on its own thread. Handler threads therefore hand their work to
 * the executors and wait. Work is queued in lanes, one per session (plus one
 * for global jobs such as "create" and "list"); executors serve the lanes
 * round-robin, taking one job from each in turn, so a client that fires many
 * requests at one session delays other sessions by at most one job each.
 * Jobs are owned by the submitting threads (they live on their stacks), so
 * the queue itself never allocates; when all lanes are in use a submitter
 * waits for one to free up (back-pressure).
 *
 * Several executors (--batch-sessions, default 16): each takes a job whose
 * session no other executor is working on, then runs it holding the engine
 * lock (fp_engine_lock). When it decodes, the lock passes to the next one;
 * once all of them wait in a decode, one llama_decode runs their batches
 * together (src/core/batch.c). So sixteen people choosing at once share
 * decodes instead of queueing behind each other, and a new session's prompt
 * is decoded beside everyone else's work instead of after it. Global jobs
 * run side by side too, except the exclusive ones (new adapter strengths, a
 * profile reset: they change what every session computes), which wait until
 * no other executor is at work and hold the others off meanwhile.
 * Speculation (prefetch: the outcomes of a session's likeliest choices,
 * computed while the person decides) runs on executors that find no job
 * they may take, up to a quarter of them at once, each on a session nobody
 * works on; its decodes share rounds with the jobs'. A request for that
 * session cancels it within one decode (fp_session_cancel_prefetch), and
 * an exclusive job all of it. Why beside the jobs and not only when the
 * server is idle: with many people choosing, the server is seldom idle,
 * and speculation that waits for idleness hardly ever runs.
 * --no-batching: one executor, no batching, each job alone as before (the
 * comparison the load bench makes); speculation then runs only when no job
 * is queued, and any job that decodes cancels it.
 */
#include "server/serve.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Finds the lane for sid or claims a free one; -1 when all are busy.
 * Called with q_mu held. */
static int lane_for(srv_app *app, const char *sid)
{
    int free_i = -1;
    for (int i = 0; i < SRV_MAX_LANES; i++) {
        if (app->lanes[i].used) {
            if (strcmp(app->lanes[i].sid, sid) == 0) return i;
        } else if (free_i < 0) {
            free_i = i;
        }
    }
    if (free_i >= 0) {
        app->lanes[free_i].used = true;
        snprintf(app->lanes[free_i].sid, sizeof app->lanes[free_i].sid, "%s", sid);
        app->lanes[free_i].head = app->lanes[free_i].tail = NULL;
    }
    return free_i;
}

/* Whether another executor works on sid now ("" is never busy: global
 * jobs run side by side). Called with q_mu held. O(executors). */
static bool sid_busy(const srv_app *app, const char *sid)
{
    if (!sid[0]) return false;
    for (int i = 0; i < app->n_exec; i++)
        if (strcmp(app->exec_sid[i], sid) == 0) return true;
    return false;
}

/* Takes the next job in round-robin order whose session is not being
 * worked on; NULL when there is none (or an exclusive job is waiting).
 * Called with q_mu held. */
static srv_job *next_job(srv_app *app)
{
    if (app->excl_waiting || app->excl_running) return NULL;
    for (int n = 0; n < SRV_MAX_LANES; n++) {
        int i = (app->rr + n) % SRV_MAX_LANES;
        if (!app->lanes[i].used || !app->lanes[i].head || sid_busy(app, app->lanes[i].sid)) continue;
        srv_job *j = app->lanes[i].head;
        app->lanes[i].head = j->next;
        if (!app->lanes[i].head) {
            app->lanes[i].tail = NULL;
            app->lanes[i].used = false;   /* free the lane for others */
        }
        app->rr = (i + 1) % SRV_MAX_LANES;
        j->next = NULL;
        return j;
    }
    return NULL;
}

/* True when no job is queued at all. Called with q_mu held. */
static bool queue_empty(const srv_app *app)
{
    for (int i = 0; i < SRV_MAX_LANES; i++)
        if (app->lanes[i].used && app->lanes[i].head) return false;
    return true;
}

/* Jobs that change a session (and so may leave a new fork to speculate on). */
static bool job_changes(srv_job_kind k)
{
    return k != JOB_LIST && k != JOB_GET && k != JOB_TREE && k != JOB_EVENTS && k != JOB_DELETE && k != JOB_SHOWN
        && k != JOB_PROFILE && k != JOB_PROFILE_RESET && k != JOB_OAI && k != JOB_MODEL;
}

/* Jobs that run the model. Why only these cancel speculation: a job that
 * merely reads (a state, a list, a tree, "shown" after each paint) waits at
 * most for the current speculative step to end, while cancelling would
 * throw that step away and start it over after every repaint. */
static bool job_decodes(srv_job_kind k)
{
    switch (k) {
    case JOB_LIST: case JOB_GET: case JOB_TREE: case JOB_EVENTS: case JOB_SHOWN: case JOB_DELETE:
    case JOB_PROFILE: case JOB_PROFILE_RESET:
        return false;
    default:
        return true;
    }
}

/* Whether this executor holds the others off (until its job ends). */
static _Thread_local bool tl_exclusive;

/* Jobs that change what every session computes: they run alone. */
static bool job_exclusive(srv_job_kind k)
{
    return k == JOB_ADAPTERS || k == JOB_PROFILE_RESET || k == JOB_MODEL;
}

/* Puts a job that yielded (j->requeue) back at the tail of its lane.
 * Returns false when every lane is taken: it then simply goes on. */
static bool requeue(srv_app *app, srv_job *j)
{
    pthread_mutex_lock(&app->q_mu);
    int lane = lane_for(app, j->sid);
    if (lane >= 0) {
        if (app->lanes[lane].tail) app->lanes[lane].tail->next = j;
        else app->lanes[lane].head = j;
        app->lanes[lane].tail = j;
        pthread_cond_broadcast(&app->q_cv);
    }
    pthread_mutex_unlock(&app->q_mu);
    return lane >= 0;
}

/* Whether a job waits in sid's lane. Called with q_mu held. O(lanes). */
static bool lane_has_job(const srv_app *app, const char *sid)
{
    for (int i = 0; i < SRV_MAX_LANES; i++)
        if (app->lanes[i].used && app->lanes[i].head && strcmp(app->lanes[i].sid, sid) == 0) return true;
    return false;
}

/* Picks a session to speculate on, into sid; false when none may be.
 * Called with q_mu held, after next_job found nothing for this executor.
 * One executor (--no-batching): only when nothing at all is queued or
 * running, as before. With batching: beside the jobs, up to max_spec at
 * once, on a listed session that nobody works on and nothing waits for
 * (interactive work goes first: an executor takes a job whenever there is
 * one it may run). */
static bool pick_speculation(srv_app *app, char *sid)
{
    if (app->stopping || app->n_pf == 0 || app->excl_queued || app->excl_waiting || app->excl_running) return false;
    if (app->n_exec <= 1) {
        if (app->n_in_core || app->n_spec || !queue_empty(app)) return false;
        snprintf(sid, SRV_ID_LEN + 1, "%s", app->pf_sids[0]);
        return true;
    }
    if (app->n_spec >= app->max_spec) return false;
    for (int i = 0; i < app->n_pf; i++) {
        if (sid_busy(app, app->pf_sids[i]) || lane_has_job(app, app->pf_sids[i])) continue;
        snprintf(sid, SRV_ID_LEN + 1, "%s", app->pf_sids[i]);
        return true;
    }
    return false;
}

/* One step of speculation by executor me on sid (claimed in exec_sid):
 * one outcome of its open fork. Holds the engine lock meanwhile; a request
 * for sid (or an exclusive job) cancels it within one decode. */
static void speculate(srv_app *app, int me, const char *sid)
{
    fp_engine_lock(app->engine);
    fp_session *s = srv_prefetch_target(app, sid);
    bool keep = false;
    if (s) {
        pthread_mutex_lock(&app->q_mu);
        bool go = !app->spec_stop[me];   /* a request came before s was known */
        if (go) { app->spec_s[me] = s; fp_session_clear_cancel(s); }
        pthread_mutex_unlock(&app->q_mu);
        keep = srv_prefetch_run(app, sid, go ? s : NULL);
        pthread_mutex_lock(&app->q_mu);
        app->spec_s[me] = NULL;
        pthread_mutex_unlock(&app->q_mu);
    }
    fp_engine_unlock(app->engine);
    pthread_mutex_lock(&app->q_mu);
    if (!keep) srv_prefetch_drop(app, sid);
    pthread_mutex_unlock(&app->q_mu);
}

/* One executor: run jobs until told to stop and the queue is drained.
 * Why drain: a handler thread blocked in srv_worker_submit must be woken. */
static void *exec_main(void *arg)
{
    srv_app *app = ((void **)arg)[0];
    int me = (int)(intptr_t)((void **)arg)[1];
    free(arg);
    for (;;) {
        pthread_mutex_lock(&app->q_mu);
        srv_job *j = NULL;
        char spec_sid[SRV_ID_LEN + 1] = "";
        for (;;) {
            /* one executor: speculation runs alone, a job waits for its
             * step to end (one decode, when the job decodes: it cancels
             * speculation); with batching they run side by side */
            if ((app->n_exec > 1 || !app->n_spec) && (j = next_job(app))) break;
            if (app->stopping && queue_empty(app)) break;
            if (pick_speculation(app, spec_sid)) break;
            pthread_cond_wait(&app->q_cv, &app->q_mu);
        }
        /* a lane may have been freed: wake submitters waiting for one */
        pthread_cond_broadcast(&app->q_cv);
        if (!j && !spec_sid[0]) {   /* stopping and empty */
            pthread_mutex_unlock(&app->q_mu);
            break;
        }
        if (j) {
            snprintf(app->exec_sid[me], sizeof app->exec_sid[me], "%s", j->sid);
            if (job_exclusive(j->kind)) {
                app->excl_queued--;
                app->excl_waiting++;
                while (app->n_in_core > 0) pthread_cond_wait(&app->q_cv, &app->q_mu);
                app->excl_waiting--;
                app->excl_running++;
                tl_exclusive = true;
            }
        } else {
            /* about to speculate: a request queued from now on cancels it
             * (the flags are cleared under the queue lock, so no cancel is
             * lost; no exclusive job is queued or running, see pick_speculation) */
            snprintf(app->exec_sid[me], sizeof app->exec_sid[me], "%s", spec_sid);
            fp_engine_clear_cancel(app->engine);
            app->spec[me] = true;
            app->spec_stop[me] = false;
            app->n_spec++;
        }
        app->n_in_core++;
        pthread_mutex_unlock(&app->q_mu);

        bool finished = true;
        if (!j) {
            speculate(app, me, spec_sid);
        } else {
            fp_engine_lock(app->engine);
            srv_exec(app, j);
            /* a long job (a completion, oai.c) yields between slices: back to
             * the tail of its lane, so the other lanes take their turn; with
             * every lane taken it simply goes on */
            while (j->requeue) {
                j->requeue = false;
                if (requeue(app, j)) { finished = false; break; }
                srv_exec(app, j);
            }
            /* every byte leaving the server is valid UTF-8 (core text may
             * hold byte-token fragments); one byte for one, so offsets hold */
            if (finished && j->body) srv_utf8_scrub(j->body, strlen(j->body));
            fp_engine_unlock(app->engine);
        }

        pthread_mutex_lock(&app->q_mu);
        if (j && finished && job_changes(j->kind) && j->status < 300) srv_prefetch_note(app, j->sid);
        app->n_in_core--;
        app->exec_sid[me][0] = '\0';
        if (tl_exclusive) { tl_exclusive = false; app->excl_running--; }
        if (!j) { app->spec[me] = false; app->n_spec--; }
        if (j && finished) {
            j->done = true;
            pthread_cond_broadcast(&app->done_cv);
        }
        pthread_cond_broadcast(&app->q_cv);   /* its session's lane, an exclusive job, speculation */
        pthread_mutex_unlock(&app->q_mu);
    }
    return NULL;
}

void srv_worker_exclusive(srv_app *app)
{
    pthread_mutex_lock(&app->q_mu);
    if (!tl_exclusive) { tl_exclusive = true; app->excl_running++; }   /* no new job starts */
    fp_engine_cancel(app->engine);   /* speculation in flight stops within a decode */
    if (app->n_in_core <= 1) { pthread_mutex_unlock(&app->q_mu); return; }
    /* step out of the engine, so the others can finish what they are in */
    app->n_in_core--;
    app->excl_waiting++;
    pthread_mutex_unlock(&app->q_mu);
    fp_engine_unlock(app->engine);
    pthread_mutex_lock(&app->q_mu);
    while (app->n_in_core > 0) pthread_cond_wait(&app->q_cv, &app->q_mu);
    app->excl_waiting--;
    app->n_in_core++;
    pthread_mutex_unlock(&app->q_mu);
    fp_engine_lock(app->engine);
}

bool srv_worker_only_speculation(srv_app *app)
{
    pthread_mutex_lock(&app->q_mu);
    bool only = app->n_in_core - app->n_spec <= 1;
    pthread_mutex_unlock(&app->q_mu);
    return only;
}

bool srv_worker_alone(srv_app *app)
{
    pthread_mutex_lock(&app->q_mu);
    bool alone = app->n_in_core <= 1;
    pthread_mutex_unlock(&app->q_mu);
    return alone;
}

/* Starts the executors: --batch-sessions of them, sharing decodes (one,
 * each job alone, with --no-batching). Returns 0 or -1. */
int srv_worker_start(srv_app *app)
{
    int n = app->cfg.batch_sessions < 1 ? 1 : app->cfg.batch_sessions > SRV_MAX_EXEC ? SRV_MAX_EXEC : app->cfg.batch_sessions;
    if (n > 1) {
        fp_error err = {0};
        if (fp_engine_enable_batching(app->engine, &err) != FP_OK) {
            fprintf(stderr, "forkpoint-serve: batching: %s\n", err.message);
            return -1;
        }
    }
    /* a quarter of the executors may speculate at once, beside the jobs */
    app->max_spec = n > 1 ? (n / 4 > 1 ? n / 4 : 1) : 1;
    for (int i = 0; i < n; i++) {
        void **arg = malloc(2 * sizeof *arg);
        if (!arg) break;
        arg[0] = app;
        arg[1] = (void *)(intptr_t)i;
        app->exec_sid[i][0] = '\0';
        if (pthread_create(&app->exec[i], NULL, exec_main, arg) != 0) { free(arg); break; }
        app->n_exec = i + 1;
    }
    return app->n_exec > 0 ? 0 : -1;
}

/* Queues job on its session's lane and waits for it. Why block: civetweb
 * gives each request its own thread, so waiting here is the natural way to
 * turn the serial engine into ordinary request/response handling. */
int srv_worker_submit(srv_app *app, srv_job *job)
{
    if (srv_worker_enqueue(app, job) != 0) return -1;
    srv_worker_wait(app, job);
    return 0;
}

/* The first half: queues job (the caller keeps it alive until it is done). */
int srv_worker_enqueue(srv_app *app, srv_job *job)
{
    job->done = false;
    job->requeue = false;
    job->next = NULL;
    job->status = 0;
    job->body = NULL;
    job->ctype = NULL;
    job->out_version = 0;
    pthread_mutex_lock(&app->q_mu);
    int lane = -1;
    while (!app->stopping && (lane = lane_for(app, job->sid)) < 0)
        pthread_cond_wait(&app->q_cv, &app->q_mu);
    if (app->stopping) {
        pthread_mutex_unlock(&app->q_mu);
        job->status = 503;
        job->body = srv_json_error("server is shutting down");
        job->done = true;
        return -1;
    }
    if (app->lanes[lane].tail) app->lanes[lane].tail->next = job;
    else app->lanes[lane].head = job;
    app->lanes[lane].tail = job;
    pthread_cond_broadcast(&app->q_cv);
    if (job_exclusive(job->kind)) app->excl_queued++;
    /* a job that runs the model is waiting: stop speculation within one
     * decode step: all of it with one executor (it would wait behind it) or
     * for an exclusive job; with batching only the speculation on its own
     * session (the others share rounds with it) */
    if (app->engine && job_decodes(job->kind)) {
        if (app->n_exec <= 1 || job_exclusive(job->kind)) {
            fp_engine_cancel(app->engine);
            app->n_cancels++;
        } else {
            bool hit = false;
            for (int i = 0; i < app->n_exec; i++) {
                if (!app->spec[i] || strcmp(app->exec_sid[i], job->sid) != 0) continue;
                if (app->spec_s[i]) fp_session_cancel_prefetch(app->spec_s[i]);
                else app->spec_stop[i] = true;
                hit = true;
            }
            /* counted too: speculation still due for it (the job changes
             * the session, so what was planned is given up) */
            for (int i = 0; i < app->n_pf && !hit; i++) hit = strcmp(app->pf_sids[i], job->sid) == 0;
            app->n_cancels += hit;
        }
    }
    pthread_mutex_unlock(&app->q_mu);
    return 0;
}

/* The second half: blocks until the worker has run job. */
void srv_worker_wait(srv_app *app, srv_job *job)
{
    pthread_mutex_lock(&app->q_mu);
    while (!job->done) pthread_cond_wait(&app->done_cv, &app->q_mu);
    pthread_mutex_unlock(&app->q_mu);
}

/* Lets the executors finish what is queued, then joins them. */
void srv_worker_stop(srv_app *app)
{
    pthread_mutex_lock(&app->q_mu);
    app->stopping = true;
    pthread_cond_broadcast(&app->q_cv);
    pthread_mutex_unlock(&app->q_mu);
    for (int i = 0; i < app->n_exec; i++) pthread_join(app->exec[i], NULL);
    app->n_exec = 0;
}
