/*
 * profile.c — GET /api/profile and DELETE /api/profile: what the server's
 * --profile has learned (the core's fp_prefs_to_json, with the profile's
 * name), and forgetting it. Runs on the worker thread, which owns the
 * preferences every session borrows.
 *
 * A reset clears the preferences in place (sessions keep their pointer and
 * their sampler's bias array) and saves the empty profile at once, so a
 * restart does not bring the old one back. Open forks keep the order they
 * were shown in until their next change.
 */
#include "server/serve.h"

#include <cjson/cJSON.h>
#include <stdlib.h>

void srv_job_profile(srv_app *app, srv_job *job)
{
    job->status = 500;
    if (!app->prefs) {
        job->status = 404;
        job->body = srv_json_error("this server learns no profile (start it with --profile NAME)");
        return;
    }
    if (job->kind == JOB_PROFILE_RESET) {
        fp_error err = {0};
        fp_prefs_reset(app->prefs);
        if (fp_store_profile_save(app->store, app->cfg.profile, app->model_sha, app->prefs, &err) != FP_OK) {
            job->body = srv_json_error("the profile was reset but could not be saved");
            return;
        }
    }
    char *s = fp_prefs_to_json(app->prefs);
    cJSON *o = s ? cJSON_Parse(s) : NULL;
    free(s);
    if (o) cJSON_AddStringToObject(o, "profile", app->cfg.profile);
    job->body = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (job->body) job->status = 200;
    else job->body = srv_json_error("out of memory");
}
