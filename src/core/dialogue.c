/*
 * dialogue.c — a conversation co-written turn by turn, on writing sessions.
 *
 * Why here: a dialogue is a writing session per turn whose prompt is the
 * conversation so far, rendered through the chat template, plus the opening
 * of the next message. Everything a session does (forks, choices, undo, the
 * tree, the decision log, snapshots) then works in a dialogue unchanged;
 * what this file adds is the conversation: the messages, the template, the
 * turn boundaries, the role and turn of every decision, and undo across a
 * turn (a finished turn is kept as its session's snapshot and reopened).
 *
 * The prompt of a turn is rendered from the whole conversation each time,
 * so it is byte-identical to llama_chat_apply_template's output. The delta
 * property (rendering a longer conversation only appends to the rendering
 * of the shorter one, and the opening of a message is what precedes its
 * content) is what makes a turn's text the message: it is checked on a
 * sample conversation when a dialogue starts and on every message
 * committed, and a template that breaks it is refused.
 *
 * The opening of a message of either role is found by rendering the
 * conversation with that message holding a sentinel and cutting there; for
 * the assistant this must also equal llama.cpp's add_assistant rendering.
 */
#include "core/internal.h"

#include <assert.h>
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#define SENTINEL "@@fp-turn-7f3a@@"

typedef struct dmsg {
    char *role, *content;
    char *snapshot;        /* the co-written turn's session, saved; NULL when typed */
    char **events;         /* its decision log: JSON lines with turn and role */
    int32_t n_events;
} dmsg;

struct fp_dialogue {
    fp_engine *engine;
    char *tmpl;            /* a name or template text; NULL = the model's own */
    fp_settings st;
    dmsg *msgs; int32_t n_msgs, cap_msgs;
    fp_session *cur;       /* the open turn, or NULL */
    char *cur_role;
};

static bool role_ok(const char *r) { return r && (!strcmp(r, "user") || !strcmp(r, "assistant")); }

/* Renders msgs[0..n) and, when role is given, a message of that role
 * holding `content` (the sentinel to find an opening). malloc'd in *out. */
static fp_status render(const fp_dialogue *d, const dmsg *msgs, int32_t n, const char *role, const char *content,
                        bool add_assistant, char **out, fp_error *err) {
    fp_chat_message *cm = malloc(sizeof *cm * (size_t)(n + 1));
    if (!cm) return fpi_fail(err, FP_ERR_NOMEM, "out of memory");
    for (int32_t i = 0; i < n; i++) cm[i] = (fp_chat_message){ msgs[i].role, msgs[i].content };
    int32_t k = n;
    if (role) cm[k++] = (fp_chat_message){ role, content };
    fp_status st = fp_chat_render(d->engine->model, d->tmpl, cm, k, add_assistant, out, err);
    free(cm);
    return st;
}

/* The prompt of a new message of role after msgs[0..n): the rendering up
 * to where its content would begin. For the assistant it must be the
 * add_assistant rendering too, byte for byte. */
static fp_status opening(const fp_dialogue *d, const dmsg *msgs, int32_t n, const char *role, char **out, fp_error *err) {
    *out = NULL;
    char *r = NULL;
    fp_status st = render(d, msgs, n, role, SENTINEL, false, &r, err);
    if (st != FP_OK) return st;
    char *at = strstr(r, SENTINEL);
    if (!at) { free(r); return fpi_fail(err, FP_ERR_ARG, "the chat template drops %s messages", role); }
    *at = '\0';
    if (!strcmp(role, "assistant")) {
        char *a = NULL;
        if ((st = render(d, msgs, n, NULL, NULL, true, &a, err)) != FP_OK) { free(r); return st; }
        bool same = !strcmp(a, r);
        free(a);
        if (!same) {
            free(r);
            return fpi_fail(err, FP_ERR_ARG, "the chat template opens an assistant turn differently from its messages; it cannot be co-written");
        }
    }
    *out = r;
    return FP_OK;
}

/* The delta property for one message: rendering msgs[0..n) with a message
 * (role, content) gives its opening, then its content, then what closes it. */
static fp_status delta_ok(const fp_dialogue *d, const dmsg *msgs, int32_t n, const char *role, const char *content,
                          fp_error *err) {
    char *open = NULL, *full = NULL;
    fp_status st = opening(d, msgs, n, role, &open, err);
    if (st == FP_OK) st = render(d, msgs, n, role, content, false, &full, err);
    if (st == FP_OK) {
        size_t ol = strlen(open), cl = strlen(content);
        if (strncmp(full, open, ol) != 0 || strncmp(full + ol, content, cl) != 0)
            st = fpi_fail(err, FP_ERR_ARG, "the chat template rewrites the conversation when a message is added; it cannot be co-written");
    }
    free(open);
    free(full);
    return st;
}

/* A sample conversation through the template: each message must only
 * append to the rendering before it. */
static fp_status probe(const fp_dialogue *d, fp_error *err) {
    static const char *const roles[] = { "user", "assistant", "user", "assistant" };
    static const char *const texts[] = { "Hello there.", "Hi! How can I help?", "Tell me a story.", "Once upon a time." };
    dmsg m[5] = { 0 };
    int32_t n = 0;
    if (d->n_msgs > 0) m[n++] = d->msgs[0];   /* the system message, as this dialogue has it */
    for (int i = 0; i < 4; i++) {
        fp_status st = delta_ok(d, m, n, roles[i], texts[i], err);
        if (st != FP_OK) return st;
        m[n++] = (dmsg){ .role = (char *)roles[i], .content = (char *)texts[i] };
    }
    return FP_OK;
}

static void msg_free(dmsg *m) {
    free(m->role); free(m->content); free(m->snapshot);
    for (int32_t i = 0; i < m->n_events; i++) free(m->events[i]);
    free(m->events);
}

/* Appends a message (copies role and content); snapshot and events are
 * taken over. */
static fp_status push_msg(fp_dialogue *d, const char *role, const char *content, char *snapshot, char **events,
                          int32_t n_events, fp_error *err) {
    if (!fpi_grow((void **)&d->msgs, &d->cap_msgs, d->n_msgs + 1, sizeof(dmsg)))
        return fpi_fail(err, FP_ERR_NOMEM, "out of memory");
    dmsg *m = &d->msgs[d->n_msgs];
    *m = (dmsg){ .role = strdup(role), .content = strdup(content), .snapshot = snapshot, .events = events,
                 .n_events = n_events };
    if (!m->role || !m->content) { msg_free(m); return fpi_fail(err, FP_ERR_NOMEM, "out of memory"); }
    d->n_msgs++;
    return FP_OK;
}

/* Content as a message holds it: white space around it trimmed. malloc'd. */
static char *trimmed(const char *t, size_t n) {
    while (n && strchr(" \t\r\n", t[0])) { t++; n--; }
    while (n && strchr(" \t\r\n", t[n - 1])) n--;
    char *c = malloc(n + 1);
    if (c) { memcpy(c, t, n); c[n] = '\0'; }
    return c;
}

fp_dialogue *fp_dialogue_new(fp_engine *e, const char *tmpl, const char *system, const fp_settings *settings,
                             fp_error *err) {
    if (!e) { fpi_fail(err, FP_ERR_ARG, "no engine"); return NULL; }
    fp_settings st = settings ? *settings : fp_default_settings();
    if (fp_settings_validate(&st, err) != FP_OK) return NULL;
    if (!tmpl && !fp_model_chat_template(e->model)) {
        fpi_fail(err, FP_ERR_MODEL, "the model has no chat template (tokenizer.chat_template); name one with --chat-template (chatml, llama3, phi3, gemma, ...)");
        return NULL;
    }
    fp_dialogue *d = calloc(1, sizeof *d);
    if (!d) { fpi_fail(err, FP_ERR_NOMEM, "out of memory"); return NULL; }
    d->engine = e;
    d->st = st;
    if (tmpl && !(d->tmpl = strdup(tmpl))) { free(d); fpi_fail(err, FP_ERR_NOMEM, "out of memory"); return NULL; }
    fp_status s = FP_OK;
    if (system && *system) {
        char *c = trimmed(system, strlen(system));
        s = !c ? fpi_fail(err, FP_ERR_NOMEM, "out of memory")
          : !fp_utf8_valid(c, strlen(c)) ? fpi_fail(err, FP_ERR_UTF8, "the system prompt is not valid UTF-8")
          : push_msg(d, "system", c, NULL, NULL, 0, err);
        free(c);
    }
    if (s == FP_OK) s = probe(d, err);
    if (s != FP_OK) { fp_dialogue_free(d); return NULL; }
    return d;
}

void fp_dialogue_free(fp_dialogue *d) {
    if (!d) return;
    fp_session_free(d->cur);
    free(d->cur_role);
    for (int32_t i = 0; i < d->n_msgs; i++) msg_free(&d->msgs[i]);
    free(d->msgs);
    free(d->tmpl);
    free(d);
}

fp_status fp_dialogue_add(fp_dialogue *d, const char *role, const char *content, fp_error *err) {
    if (!d || !content) return fpi_fail(err, FP_ERR_ARG, "no dialogue or content");
    if (!role_ok(role)) return fpi_fail(err, FP_ERR_ARG, "a message's role is \"user\" or \"assistant\"");
    if (d->cur) return fpi_fail(err, FP_ERR_STATE, "a turn is open; end it first");
    if (!fp_utf8_valid(content, strlen(content))) return fpi_fail(err, FP_ERR_UTF8, "the message is not valid UTF-8");
    char *c = trimmed(content, strlen(content));
    if (!c) return fpi_fail(err, FP_ERR_NOMEM, "out of memory");
    fp_status st = !*c ? fpi_fail(err, FP_ERR_EMPTY, "the message is empty") : delta_ok(d, d->msgs, d->n_msgs, role, c, err);
    if (st == FP_OK) st = push_msg(d, role, c, NULL, NULL, 0, err);
    free(c);
    return st;
}

/* Opens a turn from its prompt text (tokenized with its control tokens). */
static fp_session *turn_session(fp_dialogue *d, const char *prompt, fp_error *err) {
    const fp_model *m = d->engine->model;
    size_t len = strlen(prompt);
    int32_t cap = (int32_t)(len < 1u << 24 ? len : 1u << 24) + 8;
    int32_t *toks = malloc(sizeof(int32_t) * (size_t)cap);
    if (!toks) { fpi_fail(err, FP_ERR_NOMEM, "out of memory"); return NULL; }
    int32_t n = fp_tokenize_special(m, prompt, len, toks, cap, true);
    fp_session *s = NULL;
    if (n < 0) fpi_tokenize_fail(m, "the conversation", prompt, len, true, err);
    else if (n > cap) fpi_fail(err, FP_ERR_ARG, "the conversation cannot be tokenized");
    else s = fpi_session_start(d->engine, prompt, toks, n, false, NULL, &d->st, err);
    free(toks);
    return s;
}

/* Endless: a turn's prompt is the conversation through the template, and
 * when that is longer than the context window allows, the oldest messages
 * are left out of it, whole, from the first one after the system prompt
 * (which stays), starting each time at a user message, until the prompt
 * takes at most half the window (the rest is room for the turn, whose own
 * window slides as a story's does). The messages themselves are all kept.
 * k = 0: the whole conversation; else the prompt renders the system
 * message (when there is one) and msgs[k..n). */
static fp_status opening_from(const fp_dialogue *d, int32_t n, int32_t k, const char *role, char **out, fp_error *err) {
    if (k == 0) return opening(d, d->msgs, n, role, out, err);
    dmsg *tmp = malloc(sizeof *tmp * (size_t)(n + 1));
    if (!tmp) return fpi_fail(err, FP_ERR_NOMEM, "out of memory");
    int32_t c = 0;
    if (d->n_msgs > 0 && !strcmp(d->msgs[0].role, "system")) tmp[c++] = d->msgs[0];
    for (int32_t i = k; i < n; i++) tmp[c++] = d->msgs[i];
    fp_status st = opening(d, tmp, c, role, out, err);
    free(tmp);
    return st;
}

/* Tokens of a prompt with its control tokens (-1: cannot be tokenized);
 * *toks gets them when toks is given (malloc'd). */
static int32_t prompt_tokens(const fp_dialogue *d, const char *prompt, int32_t **toks) {
    size_t len = strlen(prompt);
    int32_t cap = (int32_t)(len < 1u << 24 ? len : 1u << 24) + 8;
    int32_t *t = malloc(sizeof(int32_t) * (size_t)cap);
    int32_t n = t ? fp_tokenize_special(d->engine->model, prompt, len, t, cap, true) : -1;
    if (n > cap) n = -1;
    if (toks && n >= 0) *toks = t; else free(t);
    return n;
}

/* The prompt of the next turn of role after msgs[0..n) (see opening_from). */
static fp_status turn_prompt(const fp_dialogue *d, int32_t n, const char *role, char **out, fp_error *err) {
    const fp_settings *st = &d->st;
    int32_t limit = d->engine->n_pos_max - (st->max_word_tokens + st->lookahead + 2);
    fp_status rc = opening_from(d, n, 0, role, out, err);
    if (rc != FP_OK || prompt_tokens(d, *out, NULL) <= limit) return rc;
    int32_t first = d->n_msgs > 0 && !strcmp(d->msgs[0].role, "system") ? 1 : 0;
    /* the first (longest) cut within half the window that still holds a
     * message; else the shortest one with a message that fits at all; else
     * the system prompt alone (or what is left: the session then says it
     * is too long) */
    char *fits = NULL;
    for (int32_t k = first + 1; k <= n; k++) {
        if (k < n && strcmp(d->msgs[k].role, "user")) continue;
        char *p = NULL;
        if ((rc = opening_from(d, n, k, role, &p, err)) != FP_OK) { free(fits); return rc; }
        int32_t nt = prompt_tokens(d, p, NULL);
        bool ok = nt >= 0 && nt <= limit;
        if (k < n && ok && nt <= limit / 2) { free(*out); free(fits); *out = p; return FP_OK; }
        if (k < n && ok) { free(fits); fits = p; continue; }
        if (k == n && !fits) { fits = p; continue; }
        free(p);
    }
    if (fits) { free(*out); *out = fits; }
    return FP_OK;
}

/* Is s (a restored session) a turn of role after msgs[0..n)? Its prompt
 * must be their rendering (whole, or leaving the oldest messages out, as a
 * turn_prompt under some window) and its first tokens that rendering's
 * tokens: a saved turn whose prompt or tokens were edited is refused. */
static fp_status turn_matches(const fp_dialogue *d, const fp_session *s, int32_t n, const char *role, fp_error *err) {
    int32_t first = d->n_msgs > 0 && !strcmp(d->msgs[0].role, "system") ? 1 : 0;
    for (int32_t k = 0; k <= n; k = k == 0 ? first + 1 : k + 1) {
        char *want = NULL;
        fp_status st = opening_from(d, n, k, role, &want, err);
        if (st != FP_OK) return st;
        size_t len = strlen(want);
        bool same = fp_session_prompt_len(s) == len && memcmp(fp_session_text(s), want, len) == 0;
        int32_t *toks = NULL;
        int32_t nt = same ? prompt_tokens(d, want, &toks) : -1;
        same = same && nt >= 1 && nt <= fp_session_n_tokens(s) &&
               memcmp(fp_session_tokens(s), toks, sizeof(int32_t) * (size_t)nt) == 0;
        free(toks);
        free(want);
        if (same) return FP_OK;
    }
    return fpi_fail(err, FP_ERR_ARG, "the saved %s turn does not follow the conversation (its prompt is not the messages' rendering)", role);
}

fp_status fp_dialogue_begin(fp_dialogue *d, const char *role, fp_error *err) {
    if (!d) return fpi_fail(err, FP_ERR_ARG, "no dialogue");
    if (!role_ok(role)) return fpi_fail(err, FP_ERR_ARG, "a turn's role is \"user\" or \"assistant\"");
    if (d->cur) return fpi_fail(err, FP_ERR_STATE, "a turn is open; end it first");
    char *prompt = NULL;
    fp_error e2 = { 0 };
    fp_status st = turn_prompt(d, d->n_msgs, role, &prompt, err);
    if (st != FP_OK) return st;
    char *r = strdup(role);
    fp_session *s = r ? turn_session(d, prompt, &e2) : NULL;
    if (!r) fpi_fail(&e2, FP_ERR_NOMEM, "out of memory");
    free(prompt);
    if (!s) { free(r); if (err) *err = e2; return e2.code; }
    d->cur = s;
    d->cur_role = r;
    return FP_OK;
}

fp_session *fp_dialogue_session(fp_dialogue *d) { return d ? d->cur : NULL; }
const char *fp_dialogue_turn_role(const fp_dialogue *d) { return d && d->cur ? d->cur_role : NULL; }
const char *fp_dialogue_turn_text(const fp_dialogue *d) {
    if (!d || !d->cur) return "";
    return fp_session_text(d->cur) + fp_session_prompt_len(d->cur);
}

/* One fork event of a turn as a JSON line with its turn and role. */
static char *event_line(const fp_fork *f, int32_t turn, const char *role) {
    cJSON *o = fpi_json_fork(f);
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "turn", turn);
    cJSON_AddStringToObject(o, "role", role);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

fp_status fp_dialogue_end_turn(fp_dialogue *d, fp_error *err) {
    if (!d) return fpi_fail(err, FP_ERR_ARG, "no dialogue");
    if (!d->cur) return fpi_fail(err, FP_ERR_STATE, "no turn is open");
    const char *t = fp_dialogue_turn_text(d);
    char *c = trimmed(t, strlen(t));
    if (!c) return fpi_fail(err, FP_ERR_NOMEM, "out of memory");
    fp_status st = !*c ? fpi_fail(err, FP_ERR_EMPTY, "the turn has no text yet") : delta_ok(d, d->msgs, d->n_msgs, d->cur_role, c, err);
    int32_t n_ev = fp_session_n_events(d->cur), turn = d->n_msgs;
    char *snap = st == FP_OK ? fp_session_save(d->cur) : NULL;
    char **ev = st == FP_OK ? calloc((size_t)(n_ev > 0 ? n_ev : 1), sizeof *ev) : NULL;
    if (st == FP_OK && (!snap || !ev)) st = fpi_fail(err, FP_ERR_NOMEM, "out of memory");
    for (int32_t i = 0; st == FP_OK && i < n_ev; i++)
        if (!(ev[i] = event_line(fp_session_event(d->cur, i), turn, d->cur_role))) st = fpi_fail(err, FP_ERR_NOMEM, "out of memory");
    if (st == FP_OK) st = push_msg(d, d->cur_role, c, snap, ev, n_ev, err);
    free(c);
    if (st != FP_OK) {
        free(snap);
        for (int32_t i = 0; ev && i < n_ev; i++) free(ev[i]);
        free(ev);
        return st;
    }
    fp_session_free(d->cur);   /* its KV goes back to the engine */
    d->cur = NULL;
    free(d->cur_role);
    d->cur_role = NULL;
    return FP_OK;
}

fp_status fp_dialogue_undo(fp_dialogue *d, fp_error *err) {
    if (!d) return fpi_fail(err, FP_ERR_ARG, "no dialogue");
    if (d->cur) {
        fp_error e2 = { 0 };
        fp_status st = fp_session_undo(d->cur, &e2);
        if (st == FP_OK) return FP_OK;
        if (st != FP_ERR_STATE) { if (err) *err = e2; return st; }
    }
    dmsg *last = d->n_msgs > 0 ? &d->msgs[d->n_msgs - 1] : NULL;
    if (!last || !last->snapshot)
        return fpi_fail(err, FP_ERR_STATE, last && strcmp(last->role, "system") ? "nothing to undo: the message before was typed" : "nothing to undo");
    /* reopen the previous turn where its last decision was taken */
    fp_error e3 = { 0 };
    fp_session *s = fp_session_restore(d->engine, last->snapshot, &e3);
    if (!s) { if (err) *err = e3; return e3.code; }
    fp_status ok = turn_matches(d, s, d->n_msgs - 1, last->role, err);
    if (ok != FP_OK) { fp_session_free(s); return ok; }
    char *role = strdup(last->role);
    if (!role) { fp_session_free(s); return fpi_fail(err, FP_ERR_NOMEM, "out of memory"); }
    bool reopened = fp_session_undo(s, NULL) == FP_OK;
    fp_session_free(d->cur);
    free(d->cur_role);
    d->cur = NULL;
    d->cur_role = NULL;
    if (reopened) { d->cur = s; d->cur_role = role; }
    else { fp_session_free(s); free(role); }   /* no decision in it: the message goes, no turn is open */
    msg_free(last);   /* its events are the reopened session's again */
    d->n_msgs--;
    return FP_OK;
}

int32_t fp_dialogue_n_messages(const fp_dialogue *d) { return d ? d->n_msgs : 0; }
const fp_settings *fp_dialogue_settings(const fp_dialogue *d) { return d ? &d->st : NULL; }
fp_chat_message fp_dialogue_message(const fp_dialogue *d, int32_t i) {
    if (!d || i < 0 || i >= d->n_msgs) return (fp_chat_message){ NULL, NULL };
    return (fp_chat_message){ d->msgs[i].role, d->msgs[i].content };
}

char *fp_dialogue_render(const fp_dialogue *d, fp_error *err) {
    char *out = NULL;
    if (!d) { fpi_fail(err, FP_ERR_ARG, "no dialogue"); return NULL; }
    if (d->cur) opening(d, d->msgs, d->n_msgs, d->cur_role, &out, err);
    else render(d, d->msgs, d->n_msgs, NULL, NULL, false, &out, err);
    return out;
}

int32_t fp_dialogue_n_events(const fp_dialogue *d) {
    if (!d) return 0;
    int32_t n = d->cur ? fp_session_n_events(d->cur) : 0;
    for (int32_t i = 0; i < d->n_msgs; i++) n += d->msgs[i].n_events;
    return n;
}

char *fp_dialogue_event_json(const fp_dialogue *d, int32_t i) {
    if (!d || i < 0) return NULL;
    for (int32_t m = 0; m < d->n_msgs; m++) {
        if (i < d->msgs[m].n_events) return strdup(d->msgs[m].events[i]);
        i -= d->msgs[m].n_events;
    }
    if (!d->cur || i >= fp_session_n_events(d->cur)) return NULL;
    return event_line(fp_session_event(d->cur, i), d->n_msgs, d->cur_role);
}

/* ------------------------------------------------------------ persistence */

/* One message as a saved dialogue holds it: role, content and, for a
 * co-written turn, its session snapshot and events. */
static cJSON *message_cjson(const dmsg *m) {
    cJSON *j = cJSON_CreateObject();
    bool ok = j && cJSON_AddStringToObject(j, "role", m->role) && cJSON_AddStringToObject(j, "content", m->content);
    if (ok && m->snapshot) {
        cJSON *ev = cJSON_AddArrayToObject(j, "events");
        ok = ev && cJSON_AddItemToObject(j, "session", cJSON_Parse(m->snapshot));
        for (int32_t k = 0; ok && k < m->n_events; k++) ok = cJSON_AddItemToArray(ev, cJSON_Parse(m->events[k]));
    }
    if (!ok) { cJSON_Delete(j); return NULL; }
    return j;
}

char *fp_dialogue_message_save(const fp_dialogue *d, int32_t i) {
    if (!d || i < 0 || i >= d->n_msgs) return NULL;
    cJSON *j = message_cjson(&d->msgs[i]);
    char *s = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    return s;
}

fp_status fp_dialogue_attach_turn(fp_dialogue *d, const char *role, fp_session *s, fp_error *err) {
    if (!d || !s) return fpi_fail(err, FP_ERR_ARG, "no dialogue or session");
    if (!role_ok(role)) return fpi_fail(err, FP_ERR_ARG, "a turn's role is \"user\" or \"assistant\"");
    if (d->cur) return fpi_fail(err, FP_ERR_STATE, "a turn is open; end it first");
    fp_status st = turn_matches(d, s, d->n_msgs, role, err);
    if (st != FP_OK) return st;
    if (!(d->cur_role = strdup(role))) return fpi_fail(err, FP_ERR_NOMEM, "out of memory");
    d->cur = s;
    return FP_OK;
}

char *fp_dialogue_save(const fp_dialogue *d) {
    if (!d) return NULL;
    cJSON *o = cJSON_CreateObject(), *ms = cJSON_CreateArray();
    bool ok = o && ms && cJSON_AddItemToObject(o, "messages", ms);
    if (!ok) { cJSON_Delete(o); cJSON_Delete(ms); return NULL; }
    cJSON_AddStringToObject(o, "format", "forkpoint-dialogue");
    cJSON_AddNumberToObject(o, "version", 1);
    if (d->tmpl) cJSON_AddStringToObject(o, "template", d->tmpl);
    else cJSON_AddNullToObject(o, "template");
    ok = cJSON_AddItemToObject(o, "settings", fpi_json_settings(&d->st));
    for (int32_t i = 0; ok && i < d->n_msgs; i++) {
        cJSON *j = message_cjson(&d->msgs[i]);
        ok = j && cJSON_AddItemToArray(ms, j);
        if (!ok) cJSON_Delete(j);
    }
    if (ok && d->cur) {
        cJSON *t = cJSON_AddObjectToObject(o, "open");
        char *snap = fp_session_save(d->cur);
        ok = t && snap && cJSON_AddStringToObject(t, "role", d->cur_role) &&
             cJSON_AddItemToObject(t, "session", cJSON_Parse(snap));
        free(snap);
    }
    char *s = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return s;
}

static const char *str_field(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

fp_dialogue *fp_dialogue_restore(fp_engine *e, const char *json, fp_error *err) {
    if (!e || !json) { fpi_fail(err, FP_ERR_ARG, "no engine or document"); return NULL; }
    cJSON *o = cJSON_Parse(json);
    const char *fmt = o ? str_field(o, "format") : NULL;
    const cJSON *ver = o ? cJSON_GetObjectItemCaseSensitive(o, "version") : NULL;
    const cJSON *tm = o ? cJSON_GetObjectItemCaseSensitive(o, "template") : NULL;
    const cJSON *ms = o ? cJSON_GetObjectItemCaseSensitive(o, "messages") : NULL;
    if (!o || !fmt || strcmp(fmt, "forkpoint-dialogue") || !cJSON_IsNumber(ver) || ver->valuedouble != 1 ||
        !(cJSON_IsString(tm) || cJSON_IsNull(tm)) || !cJSON_IsArray(ms)) {
        cJSON_Delete(o);
        fpi_fail(err, FP_ERR_ARG, "not a saved dialogue (format forkpoint-dialogue, version 1)");
        return NULL;
    }
    fp_settings st = fp_default_settings();
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(o, "settings");
    if (!cJSON_IsObject(so) || fpi_settings_from_cjson(so, &st, err) != FP_OK) {
        if (!cJSON_IsObject(so)) fpi_fail(err, FP_ERR_ARG, "the dialogue has no settings");
        cJSON_Delete(o);
        return NULL;
    }
    const cJSON *first = cJSON_GetArrayItem(ms, 0);
    const char *sys = first && str_field(first, "role") && !strcmp(str_field(first, "role"), "system") ? str_field(first, "content") : NULL;
    fp_error e2 = { 0 };
    if (!err) err = &e2;   /* the codes of the calls below are read back from it */
    fp_dialogue *d = fp_dialogue_new(e, cJSON_IsString(tm) ? tm->valuestring : NULL, sys, &st, err);
    fp_status rc = d ? FP_OK : err->code;
    const cJSON *m;
    int32_t i = 0;
    cJSON_ArrayForEach(m, ms) {
        if (rc != FP_OK) break;
        if (i++ == 0 && sys) continue;
        const char *role = str_field(m, "role"), *content = str_field(m, "content");
        const cJSON *ss = cJSON_GetObjectItemCaseSensitive(m, "session"), *ev = cJSON_GetObjectItemCaseSensitive(m, "events");
        if (!role_ok(role) || !content || (ss && !cJSON_IsObject(ss)) || (ss && !cJSON_IsArray(ev)) || (!ss && ev)) {
            rc = fpi_fail(err, FP_ERR_ARG, "message %d of the dialogue is malformed", i - 1);
            break;
        }
        if ((rc = fp_dialogue_add(d, role, content, err)) != FP_OK || !ss) continue;
        /* a co-written turn: its session and its events come back with it */
        dmsg *dm = &d->msgs[d->n_msgs - 1];
        int32_t n_ev = cJSON_GetArraySize(ev);
        dm->snapshot = cJSON_PrintUnformatted(ss);
        dm->events = calloc((size_t)(n_ev > 0 ? n_ev : 1), sizeof(char *));
        if (!dm->snapshot || !dm->events) { rc = fpi_fail(err, FP_ERR_NOMEM, "out of memory"); break; }
        const cJSON *x;
        cJSON_ArrayForEach(x, ev) {
            if (!cJSON_IsObject(x)) { rc = fpi_fail(err, FP_ERR_ARG, "an event of message %d is malformed", i - 1); break; }
            if (!(dm->events[dm->n_events] = cJSON_PrintUnformatted(x))) { rc = fpi_fail(err, FP_ERR_NOMEM, "out of memory"); break; }
            dm->n_events++;
        }
    }
    const cJSON *open = rc == FP_OK ? cJSON_GetObjectItemCaseSensitive(o, "open") : NULL;
    if (open) {
        const char *role = str_field(open, "role");
        const cJSON *ss = cJSON_GetObjectItemCaseSensitive(open, "session");
        char *snap = cJSON_IsObject(ss) ? cJSON_PrintUnformatted(ss) : NULL;
        if (!role_ok(role) || !snap) rc = fpi_fail(err, FP_ERR_ARG, "the open turn of the dialogue is malformed");
        else if ((d->cur = fp_session_restore(e, snap, err)) == NULL) rc = err->code;
        else if ((rc = turn_matches(d, d->cur, d->n_msgs, role, err)) == FP_OK && !(d->cur_role = strdup(role)))
            rc = fpi_fail(err, FP_ERR_NOMEM, "out of memory");
        free(snap);
    }
    cJSON_Delete(o);
    if (rc != FP_OK) { fp_dialogue_free(d); return NULL; }
    return d;
}
