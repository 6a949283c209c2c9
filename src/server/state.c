/*
 * state.c — the JSON view of a session that the page and API clients read.
 *
 * Why one document: the page renders everything from it without further
 * requests — the text split into tokens (with who put each token there and
 * its entropy, for the "auto vs chosen" styling and the uncertainty strip),
 * the open fork with every candidate's preview (so hover shows ghost text
 * at once), the forks on the current path (so clicking an earlier word can
 * reopen its fork) and the settings. Runs on the worker thread, because the
 * strings it reads belong to the session and change with it.
 */
#include "server/serve.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* JSON has no NaN/inf; a degenerate distribution must not break clients. */
static double fin(double x) { return isfinite(x) ? x : 0.0; }

/* Rounds to 4 decimals so documents stay small and diff-friendly. */
static double r4(double x) { return round(fin(x) * 10000.0) / 10000.0; }


/* The open fork with its candidates and their previews, in the core's one
 * vocabulary (fp_fork_to_json: the same names as fork events and the
 * decision log), with preview_words, the offsets preview_upto accepts. */
static cJSON *fork_json(const fp_session *s, const fp_fork *f)
{
    char *j = fp_fork_to_json(s, f);
    cJSON *o = j ? cJSON_Parse(j) : NULL;
    free(j);
    return o;
}

/* Finds the event record of a fork id (the decided fork), or NULL. */
static const fp_fork *event_by_id(const fp_session *s, int32_t id)
{
    int32_t n = fp_session_n_events(s);
    for (int32_t i = n - 1; i >= 0; i--) {
        const fp_fork *f = fp_session_event(s, i);
        if (f && f->id == id) return f;
    }
    return NULL;
}

/* Per-token view of the generated text: byte offset and length in the text
 * (the core's offsets: a token that finishes the prompt's last word, or the
 * start of a character still to come, shows fewer bytes than its piece),
 * who chose it, its entropy and whether a fork stood there. */
static cJSON *tokens_json(srv_app *app, const fp_session *s, cJSON *forks)
{
    cJSON *arr = cJSON_CreateArray();
    if (!arr) return NULL;
    size_t tlen = fp_session_text_len(s);
    int32_t n = fp_session_n_positions(s);
    for (int32_t i = 0; i < n; i++) {
        const fp_position *p = fp_session_position(s, i);
        if (!p) break;
        size_t start = fp_session_position_offset(s, i), end = fp_session_position_offset(s, i + 1);
        if (start > tlen) start = tlen;
        if (end > tlen) end = tlen;
        if (end < start) end = start;
        cJSON *t = cJSON_CreateArray();
        if (!t) break;
        /* compact tuple: [offset, length, by, fork_id, entropy, reason] */
        cJSON_AddItemToArray(t, cJSON_CreateNumber((double)start));
        cJSON_AddItemToArray(t, cJSON_CreateNumber((double)(end - start)));
        cJSON_AddItemToArray(t, cJSON_CreateString(fp_chooser_name(p->by)));
        cJSON_AddItemToArray(t, cJSON_CreateNumber(p->fork_id));
        cJSON_AddItemToArray(t, cJSON_CreateNumber(r4(p->unc.entropy_bits)));
        cJSON_AddItemToArray(t, cJSON_CreateString(fp_reason_name(p->reason)));
        cJSON_AddItemToArray(arr, t);
        if (p->fork_id >= 0 && forks) {
            const fp_fork *f = event_by_id(s, p->fork_id);
            cJSON *fo = cJSON_CreateObject();
            if (!fo) continue;
            cJSON_AddItemToArray(forks, fo);
            cJSON_AddNumberToObject(fo, "id", p->fork_id);
            cJSON_AddNumberToObject(fo, "token", i);
            cJSON_AddNumberToObject(fo, "text_offset", f ? f->text_offset : (double)start);
            cJSON_AddStringToObject(fo, "reason", fp_reason_name(p->reason));
            cJSON_AddStringToObject(fo, "choice", f ? fp_choice_name(f->choice) : "none");
            /* the core cuts choice_text on a character boundary */
            cJSON_AddStringToObject(fo, "choice_text", f ? f->choice_text : "");
            cJSON_AddStringToObject(fo, "chooser", fp_chooser_name(f ? f->chooser : p->by));
            cJSON_AddNumberToObject(fo, "ms_to_choose", f ? round(fin(f->ms_to_choose)) : 0);
        }
    }
    return arr;
}

/* The whole state document; malloc'd, the caller frees. */
char *srv_state_json(srv_app *app, const srv_live *l)
{
    return l->d ? srv_chat_state_json(app, l) : srv_session_state_json(app, l);
}

char *srv_session_state_json(srv_app *app, const srv_live *l)
{
    const fp_session *s = l->s;
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "id", l->id);
    cJSON_AddStringToObject(o, "title", l->title);
    cJSON_AddNumberToObject(o, "version", (double)l->version);
    /* the model it is written with (the running one: models.c) */
    const char *mslash = strrchr(app->model_path, '/');
    cJSON_AddStringToObject(o, "model", mslash ? mslash + 1 : app->model_path);
    bool ended = fp_session_state(s) == FP_STATE_ENDED;
    cJSON_AddStringToObject(o, "state", ended ? "ended" : "at_fork");
    if (ended) cJSON_AddStringToObject(o, "end_reason", fp_session_end_reason(s));
    else cJSON_AddNullToObject(o, "end_reason");

    /* text may in theory hold NULs from odd tokens: use the length */
    size_t tl = fp_session_text_len(s);
    const char *text = fp_session_text(s);
    char *copy = malloc(tl + 1);
    if (!copy) { cJSON_Delete(o); return NULL; }
    memcpy(copy, text, tl);
    copy[tl] = '\0';
    cJSON_AddStringToObject(o, "text", copy);
    free(copy);
    cJSON_AddNumberToObject(o, "prompt_len", (double)fp_session_prompt_len(s));
    cJSON_AddNumberToObject(o, "n_tokens", fp_session_n_tokens(s));

    cJSON *forks = cJSON_CreateArray();
    cJSON *toks = tokens_json(app, s, forks);
    cJSON_AddItemToObject(o, "tokens", toks ? toks : cJSON_CreateArray());
    cJSON_AddItemToObject(o, "path_forks", forks ? forks : cJSON_CreateArray());

    const fp_fork *f = fp_session_fork(s);
    if (f) cJSON_AddItemToObject(o, "fork", fork_json(s, f));
    else cJSON_AddNullToObject(o, "fork");

    char *sj = fp_settings_to_json(fp_session_settings(s));
    cJSON *so = sj ? cJSON_Parse(sj) : NULL;
    free(sj);
    cJSON_AddItemToObject(o, "settings", so ? so : cJSON_CreateObject());
    cJSON_AddNumberToObject(o, "n_events", fp_session_n_events(s));
    cJSON_AddNumberToObject(o, "last_ms", round(fin(l->last_ms) * 10.0) / 10.0);
    cJSON_AddBoolToObject(o, "last_prefetched", l->last_hit);
    cJSON *pf = cJSON_AddArrayToObject(o, "prefetched");
    const fp_fork *pff = fp_session_fork(s);
    for (int32_t i = 0; pff && i < pff->n_candidates; i++)
        for (int wp = 0; wp < 2; wp++)
            if (fp_session_is_prefetched(s, i, wp)) {
                cJSON *e = cJSON_CreateObject();
                cJSON_AddNumberToObject(e, "index", i);
                cJSON_AddBoolToObject(e, "accept_preview", wp);
                cJSON_AddItemToArray(pf, e);
            }

    char *out = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    /* Session text, candidates and previews are model bytes: a byte-level
     * token may be half a character. Every emitted byte must be valid
     * UTF-8, and offsets must keep counting bytes of the emitted text, so
     * each stray byte becomes one '?' (see srv_utf8_scrub). */
    if (out) srv_utf8_scrub(out, strlen(out));
    return out;
}

/* JSON lines: line(ctx, i) for i in [0, n), each malloc'd; NULL when
 * out of memory. Shared by a story's log and a chat's (chat.c). */
char *srv_jsonl(int32_t n, char *(*line)(const void *ctx, int32_t i), const void *ctx)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    buf[0] = '\0';
    for (int32_t i = 0; i < n; i++) {
        char *l = line(ctx, i);
        if (!l) { free(buf); return NULL; }
        size_t ll = strlen(l);
        if (len + ll + 2 > cap) {
            while (len + ll + 2 > cap) cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb) { free(l); free(buf); return NULL; }
            buf = nb;
        }
        memcpy(buf + len, l, ll);
        len += ll;
        buf[len++] = '\n';
        buf[len] = '\0';
        free(l);
    }
    return buf;
}

static char *event_line(const void *s, int32_t i) { return fp_fork_to_json(s, fp_session_event(s, i)); }

/* The event log as JSON lines, one decided fork per line. */
char *srv_events_jsonl(const fp_session *s)
{
    return srv_jsonl(fp_session_n_events(s), event_line, s);
}
