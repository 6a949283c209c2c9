/*
 * worker.c — the one thread that owns the engine, and its fair queue.
 *
 * Why: the core library is not thread-safe, while civetweb serves each
 * connection on its own thread. Handler threads therefore hand their work to
 * this thread and wait. Work is queued in lanes, one per session (plus one
 * for global jobs such as "create" and "list"); the worker serves the lanes
 * round-robin, taking one job from each in turn, so a client that fires many
 * requests at one session delays other sessions by at most one job each.
 * Jobs are owned by the submitting threads (they live on their stacks), so
 * the queue itself never allocates; when all lanes are in use a submitter
 * waits for one to free up (back-pressure).
 */
#include "server/serve.h"

#include <stdio.h>
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

/* Takes the next job in round-robin order; NULL when the queue is empty.
 * Called with q_mu held. */
static srv_job *next_job(srv_app *app)
{
    for (int n = 0; n < SRV_MAX_LANES; n++) {
        int i = (app->rr + n) % SRV_MAX_LANES;
        if (!app->lanes[i].used || !app->lanes[i].head) continue;
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

/* The worker loop: run jobs until told to stop and the queue is drained.
 * Why drain: a handler thread blocked in srv_worker_submit must be woken. */
static void *worker_main(void *arg)
{
    srv_app *app = arg;
    for (;;) {
        pthread_mutex_lock(&app->q_mu);
        srv_job *j;
        /* idle: speculate on the next fork (n_pf is the worker's own) */
        while (!(j = next_job(app)) && !app->stopping && app->n_pf == 0)
            pthread_cond_wait(&app->q_cv, &app->q_mu);
        /* a lane may have been freed: wake submitters waiting for one */
        pthread_cond_broadcast(&app->q_cv);
        bool stop = app->stopping;
        /* about to speculate: a request queued from now on cancels it (the
         * flag is cleared under the queue lock, so no cancel is lost) */
        if (!j && !stop) fp_engine_clear_cancel(app->engine);
        pthread_mutex_unlock(&app->q_mu);
        if (!j) {
            if (stop) break;  /* stopping and empty */
            srv_prefetch_step(app);
            continue;
        }

        /* a long job (a completion, oai.c) yields between slices: back to
         * the tail of its lane, so the other lanes take their turn; with
         * every lane taken it simply goes on */
        for (;;) {
            srv_exec(app, j);
            if (!j->requeue) break;
            j->requeue = false;
            pthread_mutex_lock(&app->q_mu);
            int lane = lane_for(app, j->sid);
            if (lane >= 0) {
                if (app->lanes[lane].tail) app->lanes[lane].tail->next = j;
                else app->lanes[lane].head = j;
                app->lanes[lane].tail = j;
            }
            pthread_mutex_unlock(&app->q_mu);
            if (lane >= 0) { j = NULL; break; }
        }
        if (!j) continue;
        /* every byte leaving the server is valid UTF-8 (core text may hold
         * byte-token fragments); one byte for one, so offsets hold */
        if (j->body) srv_utf8_scrub(j->body, strlen(j->body));
        if (job_changes(j->kind) && j->status < 300) srv_prefetch_note(app, j->sid);

        pthread_mutex_lock(&app->q_mu);
        j->done = true;
        pthread_cond_broadcast(&app->done_cv);
        pthread_mutex_unlock(&app->q_mu);
    }
    return NULL;
}

/* Starts the worker thread. Returns 0 or -1. */
int srv_worker_start(srv_app *app)
{
    if (pthread_create(&app->worker, NULL, worker_main, app) != 0) return -1;
    app->worker_started = true;
    return 0;
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
    /* a job that runs the model is waiting: stop any speculation within
     * one decode step */
    if (app->engine && job_decodes(job->kind)) {
        fp_engine_cancel(app->engine);
        app->n_cancels++;
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

/* Lets the worker finish what is queued, then joins it. */
void srv_worker_stop(srv_app *app)
{
    pthread_mutex_lock(&app->q_mu);
    app->stopping = true;
    pthread_cond_broadcast(&app->q_cv);
    pthread_mutex_unlock(&app->q_mu);
    if (app->worker_started) {
        pthread_join(app->worker, NULL);
        app->worker_started = false;
    }
}
