/*
 * chat.c — chat sessions in the API: a conversation (fp_dialogue_*) whose
 * either side is co-written with forks.
 *
 * Why a session kind and not a second API: a chat's open turn is a writing
 * session, so every story action (choose, type, prefix, continue, goto,
 * shown) works on it unchanged, through sessions.c; this file adds what a
 * conversation has besides: creating one from a system prompt and
 * messages, its own actions (say: the person's message, reply: the
 * assistant's, end: end the open turn here; undo reaches back into the
 * turn before), the end of a turn at the model's end-of-turn token, its
 * state document and its decision log (each decision with its turn and
 * role). Storage is chats.c's (src/store); the executor rules are
 * sessions.c's.
 *
 * A turn ends by itself when its session ends (end-of-turn, or the turn's
 * max_tokens): sessions.c saves its decisions from the session first, then
 * calls srv_chat_commit. Cost of a turn: its prompt is the whole
 * conversation rendered through the template and decoded in a new session
 * (O(conversation) tokens); the previous turn's KV cells go back.
 */
#include "server/serve.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MESSAGES 1000   /* messages in a create request */

static bool role_ok(const char *r) { return r && (!strcmp(r, "user") || !strcmp(r, "assistant")); }

const char *srv_chat_check_create(const void *jv)
{
    const cJSON *j = jv;
    const cJSON *mode = cJSON_GetObjectItemCaseSensitive(j, "mode");
    const cJSON *sys = cJSON_GetObjectItemCaseSensitive(j, "system");
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(j, "messages");
    const cJSON *tm = cJSON_GetObjectItemCaseSensitive(j, "chat_template");
    if (mode && (!cJSON_IsString(mode) || (strcmp(mode->valuestring, "chat") && strcmp(mode->valuestring, "story"))))
        return "\"mode\" must be \"story\" or \"chat\"";
    bool chat = mode && !strcmp(mode->valuestring, "chat");
    if (!chat) return sys || ms || tm ? "\"system\", \"messages\" and \"chat_template\" need \"mode\":\"chat\"" : NULL;
    if (cJSON_GetObjectItemCaseSensitive(j, "prompt")) return "a chat has no \"prompt\": give \"system\" and \"messages\"";
    if (sys && !cJSON_IsString(sys)) return "\"system\" must be a string";
    if (tm && !cJSON_IsString(tm)) return "\"chat_template\" must be a string (a template llama.cpp knows, e.g. chatml, phi3)";
    if (ms && !cJSON_IsArray(ms)) return "\"messages\" must be an array of {\"role\", \"content\"}";
    if (cJSON_GetArraySize(ms) > MAX_MESSAGES) return "too many messages (at most 1000)";
    int i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, ms) {
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(m, "role");
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!cJSON_IsObject(m) || cJSON_GetArraySize(m) != 2 || !cJSON_IsString(r) || !cJSON_IsString(c))
            return "each message must be {\"role\": \"user\"|\"assistant\", \"content\": string}";
        if (!strcmp(r->valuestring, "system")) {
            if (i > 0 || sys) return "a \"system\" message may only come first, and not with \"system\"";
        } else if (!role_ok(r->valuestring)) {
            return "a message's role is \"system\" (first only), \"user\" or \"assistant\"";
        }
        i++;
    }
    return NULL;
}

fp_dialogue *srv_chat_new(srv_app *app, const void *jv, const fp_settings *set, char *title, size_t cap, fp_error *err)
{
    const cJSON *j = jv;
    const cJSON *sys = cJSON_GetObjectItemCaseSensitive(j, "system");
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(j, "messages");
    const cJSON *tm = cJSON_GetObjectItemCaseSensitive(j, "chat_template");
    const cJSON *first = cJSON_GetArrayItem(ms, 0);
    const char *r0 = first ? cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(first, "role")) : NULL;
    bool sys_first = r0 && !strcmp(r0, "system");
    const char *system = sys ? sys->valuestring
                       : sys_first ? cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(first, "content")) : NULL;
    /* the request's template, else the server's --chat-template, else the model's own */
    const char *tmpl = tm ? tm->valuestring : app->cfg.chat_template;
    fp_dialogue *d = fp_dialogue_new(app->engine, tmpl, system, set, err);
    if (!d) return NULL;
    const cJSON *m;
    const char *first_user = NULL;
    cJSON_ArrayForEach(m, ms) {
        if (m == first && sys_first) continue;
        const char *role = cJSON_GetObjectItemCaseSensitive(m, "role")->valuestring;
        const char *content = cJSON_GetObjectItemCaseSensitive(m, "content")->valuestring;
        if (fp_dialogue_add(d, role, content, err) != FP_OK) { fp_dialogue_free(d); return NULL; }
        if (!first_user && !strcmp(role, "user")) first_user = content;
    }
    /* a title people recognise: the first thing said, else the system prompt */
    snprintf(title, cap, "%s", first_user ? first_user : system && *system ? system : "Chat");
    return d;
}

/* Attaches the server's preferences to a turn that just opened (learning
 * and reranking work in a chat as in a story). */
static void attach(srv_app *app, srv_live *l)
{
    l->s = fp_dialogue_session(l->d);
    if (l->s && app->prefs) srv_store_attach_prefs(l->s, app->prefs);
}

static bool answer(srv_job *job, int status, const char *msg, bool *replied)
{
    job->status = status;
    job->body = srv_json_error(msg);
    *replied = true;
    return true;
}

bool srv_chat_apply(srv_app *app, srv_job *job, srv_live *l, fp_status *st, fp_error *err, bool *replied)
{
    fp_dialogue *d = l->d;
    *replied = false;
    switch (job->kind) {
    case JOB_SAY: case JOB_REPLY: {
        const char *role = job->kind == JOB_SAY ? "user" : "assistant";
        if (fp_dialogue_session(d))
            return answer(job, 409, "a turn is open: decide it, \"end\" it or \"undo\" it first", replied);
        *st = job->text ? fp_dialogue_add(d, role, job->text, err) : fp_dialogue_begin(d, role, err);
        attach(app, l);
        return true;
    }
    case JOB_END:
        if (!fp_dialogue_session(d)) return answer(job, 409, "no turn is open", replied);
        *st = fp_dialogue_end_turn(d, err);
        attach(app, l);
        return true;
    case JOB_UNDO:
        *st = fp_dialogue_undo(d, err);
        attach(app, l);
        return true;
    case JOB_SETTINGS:
        return answer(job, 400, "a chat's settings are given when it is created", replied);
    default:
        /* the story actions act on the open turn */
        if (!l->s) return answer(job, 409, "no turn is open: \"say\" or \"reply\" opens one", replied);
        return false;
    }
}

bool srv_chat_settle(srv_live *l)
{
    l->s = fp_dialogue_session(l->d);
    return l->s && fp_session_state(l->s) == FP_STATE_ENDED && fp_dialogue_turn_text(l->d)[strspn(fp_dialogue_turn_text(l->d), " \t\r\n")];
}

fp_status srv_chat_commit(srv_live *l, fp_error *err)
{
    fp_status st = fp_dialogue_end_turn(l->d, err);
    l->s = fp_dialogue_session(l->d);
    return st;
}

char *srv_chat_state_json(srv_app *app, const srv_live *l)
{
    const fp_dialogue *d = l->d;
    cJSON *o = NULL;
    if (l->s) {
        /* the open turn's session, as a story's state (its text is the
         * rendered conversation: the turn starts at prompt_len) */
        char *ss = srv_session_state_json(app, l);
        o = ss ? cJSON_Parse(ss) : NULL;
        free(ss);
    } else if ((o = cJSON_CreateObject())) {
        cJSON_AddStringToObject(o, "id", l->id);
        cJSON_AddStringToObject(o, "title", l->title);
        cJSON_AddNumberToObject(o, "version", (double)l->version);
        const char *mslash = strrchr(app->model_path, '/');
        cJSON_AddStringToObject(o, "model", mslash ? mslash + 1 : app->model_path);
        cJSON_AddStringToObject(o, "state", "between_turns");
        cJSON_AddNullToObject(o, "end_reason");
        cJSON_AddNullToObject(o, "fork");
        /* a story's fields with nothing in them: clients render one shape */
        cJSON_AddStringToObject(o, "text", "");
        cJSON_AddNumberToObject(o, "prompt_len", 0);
        cJSON_AddNumberToObject(o, "n_tokens", 0);
        cJSON_AddArrayToObject(o, "tokens");
        cJSON_AddArrayToObject(o, "path_forks");
        char *sj = fp_settings_to_json(fp_dialogue_settings(d));
        cJSON *so = sj ? cJSON_Parse(sj) : NULL;
        free(sj);
        cJSON_AddItemToObject(o, "settings", so ? so : cJSON_CreateObject());
        cJSON_AddNumberToObject(o, "n_events", 0);
    }
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "mode", "chat");
    cJSON *ms = cJSON_AddArrayToObject(o, "messages");
    for (int32_t i = 0; ms && i < fp_dialogue_n_messages(d); i++) {
        fp_chat_message m = fp_dialogue_message(d, i);
        cJSON *x = cJSON_CreateObject();
        if (!x || !cJSON_AddItemToArray(ms, x)) { cJSON_Delete(x); break; }
        cJSON_AddStringToObject(x, "role", m.role);
        cJSON_AddStringToObject(x, "content", m.content);
    }
    if (l->s) {
        cJSON *t = cJSON_AddObjectToObject(o, "turn");
        cJSON_AddStringToObject(t, "role", fp_dialogue_turn_role(d));
        cJSON_AddNumberToObject(t, "index", fp_dialogue_n_messages(d));
        cJSON_AddStringToObject(t, "text", fp_dialogue_turn_text(d));
    } else {
        cJSON_AddNullToObject(o, "turn");
    }
    cJSON_AddNumberToObject(o, "n_decisions", fp_dialogue_n_events(d));
    char *out = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (out) srv_utf8_scrub(out, strlen(out));
    return out;
}

static char *event_line(const void *d, int32_t i) { return fp_dialogue_event_json(d, i); }

char *srv_chat_events_jsonl(const srv_live *l)
{
    return srv_jsonl(fp_dialogue_n_events(l->d), event_line, l->d);
}
