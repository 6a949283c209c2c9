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
 * Speculation (prefetch) runs only when no executor has a job, and alone:
 * a job waits for its step to end, which a job that decodes cuts short
 * (it cancels speculation, as with one executor). --no-batching: one executor, no
 * batching, each job alone as before (the comparison the load bench makes).
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
        bool speculate = false;
        for (;;) {
            /* speculation runs alone: a job waits for its step to end (one
             * decode, when the job decodes: it cancels speculation) */
            if (!app->pf_running && (j = next_job(app))) break;
            if (app->stopping && queue_empty(app)) break;
            /* idle everywhere: speculate on the next fork (one executor) */
            if (!app->stopping && app->n_pf > 0 && app->n_in_core == 0 && !app->pf_running && queue_empty(app)) {
                speculate = true;
                break;
            }
            pthread_cond_wait(&app->q_cv, &app->q_mu);
        }
        /* a lane may have been freed: wake submitters waiting for one */
        pthread_cond_broadcast(&app->q_cv);
        if (!j && !speculate) {   /* stopping and empty */
            pthread_mutex_unlock(&app->q_mu);
            break;
        }
        if (j) {
            snprintf(app->exec_sid[me], sizeof app->exec_sid[me], "%s", j->sid);
            if (job_exclusive(j->kind)) {
                app->excl_waiting++;
                while (app->n_in_core > 0) pthread_cond_wait(&app->q_cv, &app->q_mu);
                app->excl_waiting--;
                app->excl_running++;
                tl_exclusive = true;
            }
        } else {
            /* about to speculate: a request queued from now on cancels it
             * (the flag is cleared under the queue lock, so no cancel is lost) */
            fp_engine_clear_cancel(app->engine);
            app->pf_running = true;
        }
        app->n_in_core++;
        pthread_mutex_unlock(&app->q_mu);

        fp_engine_lock(app->engine);
        bool finished = true;
        if (speculate) {
            srv_prefetch_step(app);
        } else {
            srv_exec(app, j);
            /* a long job (a completion, oai.c) yields between slices: back to
             * the tail of its lane, so the other lanes take their turn; with
             * every lane taken it simply goes on */
            while (j->requeue) {
                j->requeue = false;
                if (requeue(app, j)) { finished = false; break; }
                srv_exec(app, j);
            }
            if (finished) {
                /* every byte leaving the server is valid UTF-8 (core text may
                 * hold byte-token fragments); one byte for one, so offsets hold */
                if (j->body) srv_utf8_scrub(j->body, strlen(j->body));
                if (job_changes(j->kind) && j->status < 300) srv_prefetch_note(app, j->sid);
            }
        }
        fp_engine_unlock(app->engine);

        pthread_mutex_lock(&app->q_mu);
        app->n_in_core--;
        app->exec_sid[me][0] = '\0';
        if (tl_exclusive) { tl_exclusive = false; app->excl_running--; }
        if (speculate) app->pf_running = false;
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
