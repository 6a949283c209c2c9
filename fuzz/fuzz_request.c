/*
 * fuzz_request.c — the JSON bodies of the HTTP API and the WebSocket
 * messages of forkpoint-serve, through the validation the server runs on
 * them before any job reaches the engine.
 *
 * What runs: the body checks of http.c's parse_body (UTF-8, NUL bytes,
 * cJSON_ParseWithLength, must be an object), then every field reader the
 * routes and ws.c's on_data call: srv_modality, srv_parse_choice (choose,
 * select), srv_json_int (goto's fork_id / offset, highlight's index),
 * srv_id_valid, the settings object as /settings and POST /api/sessions pass
 * it on (printed, then fp_settings_from_json), and srv_json_error on the
 * resulting message. First, though, the input goes through exactly what
 * http.c and ws.c run on a body: srv_parse_body (size, NUL, UTF-8, the
 * depth pre-scan, trailing data, unknown fields) and srv_parse_action, for
 * every action (src/server/reqparse.c).
 *
 * Invariants: an integer srv_json_int accepts is an int32 and integral; an
 * accepted choice has an in-range preview_upto; every error text is
 * non-empty and becomes valid JSON.
 */
#include "fuzz_common.h"
#include "server/serve.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

static void check_error_text(const char *bad)
{
    if (!bad) return;
    FZ_CHECK(bad[0], "empty error text");
    char *j = srv_json_error(bad);
    FZ_CHECK(j, "no error body");
    cJSON *back = cJSON_Parse(j);
    FZ_CHECK(back && cJSON_IsString(cJSON_GetObjectItem(back, "error")), "error body is not JSON: %s", j);
    cJSON_Delete(back);
    free(j);
}

static void check_int(const cJSON *j, const char *name)
{
    int64_t v = INT64_MIN;
    int r = srv_json_int(j, name, &v);
    FZ_CHECK(r == 1 || r == 0 || r == -1, "srv_json_int returned %d", r);
    if (r == 1) {
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(j, name);
        FZ_CHECK(v >= INT32_MIN && v <= INT32_MAX, "%s = %lld is not an int32", name, (long long)v);
        FZ_CHECK((double)v == it->valuedouble, "%s = %lld from %.17g", name, (long long)v, it->valuedouble);
    }
}

/* The settings object a route passes to the worker (sj), parsed as it does. */
static void check_settings(const cJSON *s)
{
    char *sj = cJSON_PrintUnformatted(s);
    if (!sj) return;
    fp_settings st = fp_default_settings();
    fp_error err = {0};
    if (fp_settings_from_json(sj, &st, &err) != FP_OK) check_error_text(err.message);
    free(sj);
}

/* The server's own path for one action: body rules, then the action's fields. */
static void check_action(const char *body, size_t size, const char *action)
{
    char err[256] = "";
    void *obj = NULL;
    int st = srv_parse_body(body, size, srv_action_fields(action), true, &obj, err, sizeof err);
    if (st != 0) {
        FZ_CHECK(obj == NULL && (st == 400 || st == 413 || st == 503), "%s: status %d", action, st);
        check_error_text(err);
        return;
    }
    FZ_CHECK(obj != NULL, "%s: accepted with no object", action);
    srv_job job = {0};
    char *settings = NULL;
    char err2[256] = "";
    const char *bad = srv_parse_action(action, obj, "api", &job, &settings, err2, sizeof err2);
    if (bad) check_error_text(bad);
    if (settings) {
        cJSON *back = cJSON_Parse(settings);
        FZ_CHECK(back != NULL, "%s: the settings text is not JSON", action);
        cJSON_Delete(back);
        free(settings);
    }
    cJSON_Delete(obj);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > SRV_MAX_BODY) return 0;
    const char *body = (const char *)data;
    static const char *const actions[] = { "choose", "select", "type", "prefix", "undo", "continue", "shown",
                                           "goto", "settings", "highlight", "get" };
    for (size_t i = 0; i < sizeof actions / sizeof actions[0]; i++) check_action(body, size, actions[i]);
    if (!fp_utf8_valid(body, size) || memchr(body, 0, size)) return 0;
    cJSON *j = cJSON_ParseWithLength(body, size);
    if (!j) return 0;
    if (!cJSON_IsObject(j)) { cJSON_Delete(j); return 0; }

    char modality[17];
    const char *bad = srv_modality(j, "api", modality);
    check_error_text(bad);
    FZ_CHECK(strlen(modality) >= 1 && strlen(modality) <= 16, "modality \"%s\"", modality);

    /* POST .../choose and the WebSocket ops select / choose */
    srv_job job = {0};
    bad = srv_parse_choice(j, &job);
    check_error_text(bad);
    if (!bad) {
        FZ_CHECK(job.kind == JOB_CHOOSE, "kind %d", (int)job.kind);
        FZ_CHECK(!job.has_upto || (job.upto >= 0 && job.upto < FP_MAX_TEXT), "upto %d", job.upto);
        FZ_CHECK(!(job.has_upto && job.flag), "both accept_preview and preview_upto");
    }
    /* goto (fork_id, offset), highlight (index) */
    check_int(j, "fork_id");
    check_int(j, "offset");
    check_int(j, "index");
    check_int(j, "preview_upto");

    /* POST .../type: text or prefix; POST /api/sessions: prompt and settings */
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "text");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "prefix");
    if (cJSON_IsString(t)) FZ_CHECK(fp_utf8_valid(t->valuestring, strlen(t->valuestring)), "text lost UTF-8");
    if (cJSON_IsString(p)) FZ_CHECK(fp_utf8_valid(p->valuestring, strlen(p->valuestring)), "prefix lost UTF-8");
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "settings");
    if (cJSON_IsObject(s)) check_settings(s);
    check_settings(j); /* POST .../settings with the fields at the top level */

    /* POST /api/adapters */
    const cJSON *ls = cJSON_GetObjectItemCaseSensitive(j, "lora_scale");
    if (cJSON_IsNumber(ls) && ls->valuedouble >= -16 && ls->valuedouble <= 16)
        FZ_CHECK(isfinite((float)ls->valuedouble), "lora_scale");

    /* session ids in a body (the WebSocket path carries one in the URL) */
    const char *sid = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "session"));
    if (sid && srv_id_valid(sid, strlen(sid))) FZ_CHECK(strlen(sid) == SRV_ID_LEN, "id length");

    /* WebSocket: "op" must be a string; "req" is echoed back in errors */
    const char *op = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "op"));
    if (!op) check_error_text("\"op\" must be a string");
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(j, "req");
    if (req) {
        cJSON *copy = cJSON_Duplicate(req, true);
        char *echo = copy ? cJSON_PrintUnformatted(copy) : NULL;
        free(echo);
        cJSON_Delete(copy);
    }
    cJSON_Delete(j);
    return 0;
}
