/*
 * reqparse.c — strict validation of request bodies (HTTP) and messages (WS).
 *
 * Why a module of pure functions: every byte a client sends passes through
 * here before anything else looks at it, so it must be easy to test and to
 * fuzz without a civetweb connection. The rules, the same for both paths:
 *
 *   - at most SRV_MAX_BODY bytes, valid UTF-8, no NUL byte;
 *   - nesting depth at most SRV_MAX_DEPTH, checked by a linear scan BEFORE
 *     cJSON (whose parser recurses once per level: a deep input would blow
 *     the 100 KiB stacks of civetweb's threads);
 *   - no "\u0000" escape in a string (cJSON's C strings would silently end
 *     there: "Once\u0000 upon" would become "Once");
 *   - one JSON object and nothing after it but whitespace;
 *   - no duplicate and no unknown top-level field (the caller names the
 *     fields it understands), so a typo such as "acept_preview" is a 400,
 *     not a silently different request.
 *
 * Costs: one pass over the bytes for UTF-8, one for the depth scan, one
 * cJSON parse, and O(fields^2) name checks (bodies have a handful of fields).
 */
#include "server/serve.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int fail(char *err, size_t cap, int status, const char *fmt, ...)
{
    if (err && cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, cap, fmt, ap);
        va_end(ap);
    }
    return status;
}

/* The linear pre-scan: bracket depth outside strings and \u0000 escapes
 * inside them. Why not a full JSON check: cJSON does that next; this pass
 * only has to make sure cJSON's recursion stays shallow and that decoded
 * strings cannot hide a NUL. Returns 0 or 400 with err filled. */
int srv_json_prescan(const char *buf, size_t n, int max_depth, char *err, size_t cap)
{
    int depth = 0;
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        const char ch = buf[i];
        if (in_str) {
            if (ch == '\\') {
                if (i + 1 < n && buf[i + 1] == 'u' && i + 5 < n &&
                    memcmp(buf + i + 2, "0000", 4) == 0)
                    return fail(err, cap, 400, "a string holds \\u0000 (NUL is not accepted in text)");
                i++;  /* skip the escaped character */
            } else if (ch == '"') {
                in_str = false;
            }
            continue;
        }
        if (ch == '"') in_str = true;
        else if (ch == '{' || ch == '[') {
            if (++depth > max_depth)
                return fail(err, cap, 400, "JSON nested too deeply (limit %d levels)", max_depth);
        } else if (ch == '}' || ch == ']') {
            depth--;
        }
    }
    return 0;
}

/* Every string (keys included) of a parsed value must be valid UTF-8. cJSON
 * decodes \u escapes itself, so a check of the raw bytes is not enough.
 * Recursion is bounded by the pre-scan's depth limit. */
static bool strings_valid(const cJSON *v)
{
    for (; v; v = v->next) {
        if (v->string && !fp_utf8_valid(v->string, strlen(v->string))) return false;
        if (cJSON_IsString(v) && v->valuestring &&
            !fp_utf8_valid(v->valuestring, strlen(v->valuestring)))
            return false;
        if (v->child && !strings_valid(v->child)) return false;
    }
    return true;
}

/* Checks the top-level fields of obj: no duplicates and, when allowed is
 * not NULL, only names from the NULL-terminated list. Returns 0 or 400. */
int srv_check_fields(const void *cjson_obj, const char *const *allowed, char *err, size_t cap)
{
    const cJSON *o = cjson_obj;
    for (const cJSON *a = o ? o->child : NULL; a; a = a->next) {
        if (!a->string) continue;
        for (const cJSON *b = o->child; b != a; b = b->next)
            if (b->string && strcmp(a->string, b->string) == 0)
                return fail(err, cap, 400, "field \"%.64s\" appears twice", a->string);
        if (!allowed) continue;
        bool known = false;
        for (const char *const *f = allowed; *f && !known; f++) known = strcmp(*f, a->string) == 0;
        if (!known) return fail(err, cap, 400, "unknown field \"%.64s\"", a->string);
    }
    return 0;
}

/* Parses one request body (or WebSocket message) under the rules above.
 * An all-whitespace body is {} when empty_ok. On success returns 0 and sets
 * *out (caller frees with cJSON_Delete); otherwise returns the HTTP status
 * (400 or 413; 503 when out of memory) with a one-line message in err. */
int srv_parse_body(const char *buf, size_t n, const char *const *allowed, bool empty_ok,
                   void **out, char *err, size_t cap)
{
    return srv_parse_body_max(buf, n, SRV_MAX_BODY, allowed, empty_ok, out, err, cap);
}

int srv_parse_body_max(const char *buf, size_t n, size_t max, const char *const *allowed, bool empty_ok,
                       void **out, char *err, size_t cap)
{
    *out = NULL;
    if (n > max) return fail(err, cap, 413, "body too large (limit %zu KiB)", max / 1024);
    size_t ws = 0;
    while (ws < n && (buf[ws] == ' ' || buf[ws] == '\t' || buf[ws] == '\r' || buf[ws] == '\n')) ws++;
    if (ws == n) {
        if (!empty_ok) return fail(err, cap, 400, "a JSON body is required");
        cJSON *e = cJSON_CreateObject();
        if (!e) return fail(err, cap, 503, "out of memory");
        *out = e;
        return 0;
    }
    if (memchr(buf, '\0', n)) return fail(err, cap, 400, "body contains a NUL byte");
    if (!fp_utf8_valid(buf, n)) return fail(err, cap, 400, "body is not valid UTF-8");
    int st = srv_json_prescan(buf, n, SRV_MAX_DEPTH, err, cap);
    if (st) return st;
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(buf, n, &end, false);
    if (!j) return fail(err, cap, 400, "malformed JSON");
    size_t used = end ? (size_t)(end - buf) : n;
    while (used < n && (buf[used] == ' ' || buf[used] == '\t' || buf[used] == '\r' || buf[used] == '\n')) used++;
    if (used < n) {
        cJSON_Delete(j);
        return fail(err, cap, 400, "unexpected data after the JSON object (at byte %zu)", used);
    }
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return fail(err, cap, 400, "the body must be a JSON object");
    }
    if (!strings_valid(j->child)) {
        cJSON_Delete(j);
        return fail(err, cap, 400, "a string is not valid UTF-8 (lone surrogate escape?)");
    }
    if ((st = srv_check_fields(j, allowed, err, cap)) != 0) {
        cJSON_Delete(j);
        return st;
    }
    *out = j;
    return 0;
}

/* The fields each action understands, shared by HTTP and WebSocket (which
 * adds "op" and "req"). "fork_id" and "version" name what the client saw
 * (see srv_parse_expect); for goto, "fork_id" is the target. NULL for an
 * unknown action. */
const char *const *srv_action_fields(const char *action)
{
    static const char *const choose[] = {"index", "accept_preview", "preview_upto", "modality",
                                         "fork_id", "version", "op", "req", NULL};
    static const char *const type[] = {"text", "prefix", "modality", "fork_id", "version", "op", "req", NULL};
    static const char *const plain[] = {"modality", "fork_id", "version", "op", "req", NULL};
    static const char *const go[] = {"fork_id", "offset", "modality", "version", "op", "req", NULL};
    static const char *const settings[] = {"settings", "modality", "version", "op", "req", NULL};
    static const char *const highlight[] = {"index", "op", "req", NULL};
    static const char *const sw[] = {"button", "op", "req", NULL};
    static const char *const get[] = {"op", "req", NULL};
    static const char *const say[] = {"text", "modality", "fork_id", "version", "op", "req", NULL};   /* chats: say, reply */
    static const struct { const char *name; const char *const *f; } t[] = {
        {"choose", choose}, {"select", choose}, {"type", type}, {"prefix", type},
        {"undo", plain}, {"continue", plain}, {"shown", plain}, {"goto", go},
        {"settings", settings}, {"highlight", highlight}, {"get", get},
        {"switch", sw}, {"say", say}, {"reply", say}, {"end", plain},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (strcmp(t[i].name, action) == 0) return t[i].f;
    return NULL;
}

/* An integer field: 1 found, 0 absent, -1 present but not an integer in
 * [lo, hi]. Why the order of checks: converting a double outside int64_t's
 * range (1e300, NaN) to an integer is undefined behaviour, so range and
 * integrality are settled on the double first. */
int srv_json_int_range(const void *cjson_obj, const char *name, double lo, double hi, int64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive((const cJSON *)cjson_obj, name);
    if (!v) return 0;
    if (!cJSON_IsNumber(v)) return -1;
    const double d = v->valuedouble;
    if (!isfinite(d) || d < lo || d > hi || d != floor(d)) return -1;
    *out = (int64_t)d;
    return 1;
}

/* An int32 field (see srv_json_int_range). */
int srv_json_int(const void *cjson_obj, const char *name, int64_t *out)
{
    return srv_json_int_range(cjson_obj, name, -2147483648.0, 2147483647.0, out);
}

/* Reads the optional "fork_id" (the fork the action answers; not for goto,
 * where it is the target) and "version" (of the state the client saw) into
 * job. Returns NULL or what is wrong. */
const char *srv_parse_expect(const void *cjson_obj, bool fork_id_too, srv_job *job)
{
    int64_t v = 0;
    job->has_version = false;
    job->has_fork = false;
    int r = srv_json_int_range(cjson_obj, "version", 0, 9007199254740992.0, &v);
    if (r < 0) return "\"version\" must be a non-negative integer";
    if (r == 1) { job->has_version = true; job->want_version = (uint64_t)v; }
    if (!fork_id_too) return NULL;
    r = srv_json_int_range(cjson_obj, "fork_id", 0, 2147483647.0, &v);
    if (r < 0) return "\"fork_id\" must be a non-negative integer";
    if (r == 1) { job->has_fork = true; job->want_fork = (int32_t)v; }
    return NULL;
}

/* Replaces every byte that is not part of a valid UTF-8 sequence with '?'.
 * Why one byte for one byte: byte offsets in the state document (tokens,
 * text_offset, preview_words, goto offsets, preview_upto) stay exactly the
 * same in the emitted text, so nothing has to be remapped either way.
 * Why safe on whole JSON documents: cJSON writes bytes >= 0x80 unchanged
 * and the JSON syntax is ASCII, which is always valid. Returns how many
 * bytes were replaced. */
size_t srv_utf8_scrub(char *s, size_t n)
{
    unsigned char *p = (unsigned char *)s;
    size_t i = 0, fixed = 0;
    while (i < n) {
        unsigned c = p[i];
        if (c < 0x80) { i++; continue; }
        int len = 0;
        unsigned lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c < 0xE0) len = 2;
        else if (c >= 0xE0 && c < 0xF0) { len = 3; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
        else if (c >= 0xF0 && c < 0xF5) { len = 4; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
        bool ok = len > 0 && i + (size_t)len <= n;
        for (int k = 1; ok && k < len; k++) {
            unsigned b = p[i + (size_t)k];
            ok = k == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
        }
        if (ok) { i += (size_t)len; continue; }
        p[i++] = '?';
        fixed++;
    }
    return fixed;
}

/* A choice as HTTP and WebSocket clients send it: "index", and either
 * "accept_preview" or "preview_upto". Fills job; returns an error text or NULL. */
const char *srv_parse_choice(const void *cjson_obj, srv_job *job)
{
    const cJSON *j = cjson_obj;
    int64_t v = 0;
    const cJSON *ap = cJSON_GetObjectItemCaseSensitive(j, "accept_preview");
    job->kind = JOB_CHOOSE;
    if (srv_json_int(j, "index", &v) != 1) return "\"index\" must be an integer";
    if (ap && !cJSON_IsBool(ap)) return "\"accept_preview\" must be a boolean";
    job->index = (int32_t)v;
    job->flag = ap && cJSON_IsTrue(ap);
    const int ru = srv_json_int(j, "preview_upto", &v);
    if (ru < 0 || (ru == 1 && (v < 0 || v >= FP_MAX_TEXT))) return "\"preview_upto\" must be a byte offset into the preview";
    if (ru == 1 && job->flag) return "give either \"accept_preview\" or \"preview_upto\", not both";
    job->has_upto = ru == 1;
    job->upto = (int32_t)v;
    return NULL;
}

/* Reads the optional "modality" of a decision into out (default dflt).
 * Returns an error text for a value that is not 1-16 of [a-z0-9_-]. */
const char *srv_modality(const void *cjson_obj, const char *dflt, char out[17])
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive((const cJSON *)cjson_obj, "modality");
    snprintf(out, 17, "%s", dflt);
    if (!m) return NULL;
    const char *v = cJSON_GetStringValue(m);
    size_t n = v ? strlen(v) : 0;
    if (n == 0 || n > 16) return "\"modality\" must be a short name such as mouse, touch, keyboard, dwell or switch";
    for (size_t i = 0; i < n; i++)
        if (!((v[i] >= 'a' && v[i] <= 'z') || (v[i] >= '0' && v[i] <= '9') || v[i] == '_' || v[i] == '-'))
            return "\"modality\" may hold only a-z, 0-9, _ and -";
    snprintf(out, 17, "%s", v);
    return NULL;
}

/* Turns one action (HTTP path word or WebSocket op) and its parsed body
 * into a job: checks the fields (unknown ones are refused), their types and
 * the optional fork_id/version the client saw. *settings_out receives the
 * malloc'd settings text for "settings". Returns NULL, or what is wrong
 * (a 400); unknown actions return "unknown action". Shared by http.c and
 * ws.c so both paths accept exactly the same requests. */
const char *srv_parse_action(const char *action, const void *cjson_obj, const char *dflt_modality,
                             srv_job *job, char **settings_out, char *err, size_t cap)
{
    const cJSON *j = cjson_obj;
    int64_t v = 0;
    *settings_out = NULL;
    const char *const *fields = srv_action_fields(action);
    if (!fields) return "unknown action";
    bool bare_settings = strcmp(action, "settings") == 0 &&
                         !cJSON_GetObjectItemCaseSensitive(j, "settings");
    /* a bare settings object is checked field by field by fp_settings_from_json */
    if (srv_check_fields(j, bare_settings ? NULL : fields, err, cap)) return err;
    const char *bad = srv_modality(j, dflt_modality, job->modality);
    if (bad) return bad;
    bool go = strcmp(action, "goto") == 0;
    if ((bad = srv_parse_expect(j, !go, job)) != NULL) return bad;

    if (strcmp(action, "choose") == 0 || strcmp(action, "select") == 0) {
        return srv_parse_choice(j, job);
    } else if (strcmp(action, "type") == 0 || strcmp(action, "prefix") == 0) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "text");
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "prefix");
        if (t && p) return "give either \"text\" or \"prefix\", not both";
        if (t && cJSON_IsString(t)) { job->kind = JOB_TYPE; job->text = t->valuestring; return NULL; }
        if (p && cJSON_IsString(p)) { job->kind = JOB_PREFIX; job->text = p->valuestring; return NULL; }
        return strcmp(action, "prefix") == 0 ? "\"prefix\" must be a string"
                                               : "\"text\" or \"prefix\" must be a string";
    } else if (strcmp(action, "undo") == 0) {
        job->kind = JOB_UNDO;
    } else if (strcmp(action, "say") == 0 || strcmp(action, "reply") == 0) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "text");
        job->kind = action[0] == 's' ? JOB_SAY : JOB_REPLY;
        if (t && !cJSON_IsString(t)) return "\"text\" must be a string (or absent: the message is co-written)";
        job->text = t ? t->valuestring : NULL;
    } else if (strcmp(action, "end") == 0) {
        job->kind = JOB_END;
    } else if (strcmp(action, "continue") == 0) {
        job->kind = JOB_CONTINUE;
    } else if (strcmp(action, "shown") == 0) {
        job->kind = JOB_SHOWN;
    } else if (strcmp(action, "get") == 0) {
        job->kind = JOB_GET;
    } else if (go) {
        const int rf = srv_json_int(j, "fork_id", &v);
        const cJSON *off = cJSON_GetObjectItemCaseSensitive(j, "offset");
        if (rf == 1 && !off) { job->kind = JOB_GOTO_FORK; job->index = (int32_t)v; return NULL; }
        if (rf == 0 && srv_json_int_range(j, "offset", 0, 9007199254740992.0, &v) == 1) {
            job->kind = JOB_GOTO_OFFSET;
            job->offset = v;
            return NULL;
        }
        return "give an integer \"fork_id\" or a byte \"offset\" (not both)";
    } else if (strcmp(action, "settings") == 0) {
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "settings");
        job->kind = JOB_SETTINGS;
        if (s && !cJSON_IsObject(s)) return "\"settings\" must be an object";
        cJSON *copy = cJSON_Duplicate(s ? s : j, true);
        if (!copy) return "out of memory";
        if (!s) {   /* the body is the settings object: drop the action's own fields */
            cJSON_DeleteItemFromObjectCaseSensitive(copy, "modality");
            cJSON_DeleteItemFromObjectCaseSensitive(copy, "version");
            cJSON_DeleteItemFromObjectCaseSensitive(copy, "op");
            cJSON_DeleteItemFromObjectCaseSensitive(copy, "req");
        }
        *settings_out = cJSON_PrintUnformatted(copy);
        cJSON_Delete(copy);
        if (!*settings_out) return "out of memory";
        job->settings = *settings_out;
    } else {
        return "unknown action";   /* "highlight" and "switch" are handled by ws.c itself */
    }
    return NULL;
}
