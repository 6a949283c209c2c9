/*
 * json.c — every JSON the library speaks: fork events, the tree, settings,
 * and a whole session saved and restored.
 *
 * Fork events are the decision log (one JSON line each). The tree is what a
 * front end draws. A saved session is the tree plus everything needed to
 * reopen any fork exactly: candidates and the logits at the fork (stored as
 * base64 of little-endian float32), so a restarted server shows the same
 * forks without recomputing them.
 *
 * Model text can contain invalid UTF-8 (a byte token on its own); strings are
 * written with invalid bytes replaced by U+FFFD so the output is always valid
 * JSON. Restoring validates every field: a damaged document is an error,
 * never a crash.
 */
#include "core/internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- writing */

/* When set, floats are written exactly (saved sessions must restore bit for
 * bit); otherwise they are rounded for people. */
static _Thread_local bool g_exact;

/* Rounds to 6 significant digits so floats print as people expect. */
static double r6(double x) {
    if (!isfinite(x)) return 0.0;
    if (g_exact) return x;
    char b[32];
    snprintf(b, sizeof b, "%.6g", x);
    return strtod(b, NULL);
}

/* Adds a string with invalid UTF-8 bytes replaced by U+FFFD. */
static void add_text(cJSON *o, const char *key, const char *t, size_t n) {
    if (fp_utf8_valid(t, n)) {
        char *c = malloc(n + 1);
        if (!c) return;
        memcpy(c, t, n);
        c[n] = 0;
        cJSON_AddStringToObject(o, key, c);
        free(c);
        return;
    }
    char *c = malloc(n * 3 + 1);
    if (!c) return;
    size_t o2 = 0;
    for (size_t i = 0; i < n; ) {
        size_t good = 0;
        for (size_t l = 1; l <= 4 && i + l <= n; l++)
            if (fp_utf8_valid(t + i, l)) { good = l; break; }
        if (good) { memcpy(c + o2, t + i, good); o2 += good; i += good; }
        else { memcpy(c + o2, "\xEF\xBF\xBD", 3); o2 += 3; i++; }
    }
    c[o2] = 0;
    cJSON_AddStringToObject(o, key, c);
    free(c);
}

static void add_str(cJSON *o, const char *key, const char *t) { add_text(o, key, t, strlen(t)); }

static cJSON *int_array(const int32_t *v, int32_t n) {
    cJSON *a = cJSON_CreateArray();
    for (int32_t i = 0; a && i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

static cJSON *candidate_json(const fp_candidate *c) {
    cJSON *o = cJSON_CreateObject();
    add_str(o, "text", c->text);
    cJSON_AddItemToObject(o, "tokens", int_array(c->tokens, c->n_tokens));
    cJSON_AddNumberToObject(o, "prob", r6(c->prob));
    cJSON_AddNumberToObject(o, "pref", r6(c->pref));
    add_str(o, "preview", c->preview);
    cJSON_AddItemToObject(o, "preview_tokens", int_array(c->preview_tokens, c->n_preview));
    cJSON_AddBoolToObject(o, "eog", c->is_eog);
    return o;
}

static cJSON *candidates_json(const fp_candidate *c, int32_t n) {
    cJSON *a = cJSON_CreateArray();
    for (int32_t i = 0; a && i < n; i++) cJSON_AddItemToArray(a, candidate_json(&c[i]));
    return a;
}

/* The public view of a fork (an event), without candidates. */
static cJSON *fork_head_json(const fp_fork *f) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "fork", f->id);
    cJSON_AddNumberToObject(o, "position", f->position);
    cJSON_AddNumberToObject(o, "text_offset", f->text_offset);
    cJSON_AddStringToObject(o, "reason", fp_reason_name(f->reason));
    cJSON_AddNumberToObject(o, "entropy_bits", r6(f->unc.entropy_bits));
    cJSON_AddNumberToObject(o, "top1", r6(f->unc.top1));
    cJSON_AddNumberToObject(o, "margin", r6(f->unc.margin));
    return o;
}

static void add_choice(cJSON *o, const fp_fork *f) {
    cJSON *c = cJSON_AddObjectToObject(o, "choice");
    cJSON_AddStringToObject(c, "kind", fp_choice_name(f->choice));
    cJSON_AddNumberToObject(c, "index", f->choice_index);
    add_str(c, "text", f->choice_text);
    cJSON_AddStringToObject(o, "by", fp_chooser_name(f->chooser));
    cJSON_AddNumberToObject(o, "ms", r6(f->ms_to_choose));
}

static cJSON *fork_json(const fp_fork *f) {
    cJSON *o = fork_head_json(f);
    cJSON_AddItemToObject(o, "candidates", candidates_json(f->candidates, f->n_candidates));
    cJSON_AddNumberToObject(o, "other", r6(f->other));
    add_str(o, "typed_prefix", f->typed_prefix);
    add_choice(o, f);
    return o;
}

static char *print_free(cJSON *o) {
    if (!o) return NULL;
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

char *fp_fork_to_json(const fp_session *s, const fp_fork *f) {
    (void)s;
    return f ? print_free(fork_json(f)) : NULL;
}

static const char *node_kind_name(fp_node_kind k) {
    switch (k) {
    case FP_NODE_PROMPT: return "prompt";
    case FP_NODE_CHOICE: return "choice";
    case FP_NODE_TYPED: return "typed";
    case FP_NODE_AUTO: return "auto";
    case FP_NODE_SPLIT: return "split";
    }
    return "auto";
}

/* The text of a node: the prompt for the root, the token pieces otherwise. */
static void add_node_text(cJSON *o, const fp_session *s, const fp_node *n) {
    if (n->kind == FP_NODE_PROMPT) { add_text(o, "text", s->prompt, s->prompt_len); return; }
    size_t cap = 64, len = 0;
    char *b = malloc(cap);
    for (int32_t i = 0; b && i < n->n; i++) {
        int32_t pl;
        const char *pc = fp_piece(s->engine->model, n->tokens[i], &pl);
        if (len + (size_t)pl + 1 > cap) {
            while (len + (size_t)pl + 1 > cap) cap *= 2;
            char *nb = realloc(b, cap);
            if (!nb) { free(b); b = NULL; break; }
            b = nb;
        }
        memcpy(b + len, pc, (size_t)pl);
        len += (size_t)pl;
    }
    if (b) add_text(o, "text", b, len);
    free(b);
}

char *fp_session_tree_json(const fp_session *s) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "leaf", s->leaf);
    cJSON_AddNumberToObject(o, "open_fork", s->open_fork);
    cJSON *nodes = cJSON_AddArrayToObject(o, "nodes");
    for (int32_t i = 0; i < s->n_nodes; i++) {
        const fp_node *n = &s->nodes[i];
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "id", n->id);
        cJSON_AddNumberToObject(j, "parent", n->parent);
        cJSON_AddStringToObject(j, "kind", node_kind_name(n->kind));
        cJSON_AddNumberToObject(j, "start", n->start_pos);
        cJSON_AddNumberToObject(j, "n_tokens", n->n);
        cJSON_AddNumberToObject(j, "fork", n->fork_id);
        cJSON_AddNumberToObject(j, "parent_fork", n->parent_fork);
        bool on_path = false;
        for (int32_t id = s->leaf; id >= 0; id = s->nodes[id].parent) if (id == i) on_path = true;
        cJSON_AddBoolToObject(j, "on_path", on_path);
        add_node_text(j, s, n);
        cJSON_AddItemToArray(nodes, j);
    }
    cJSON *forks = cJSON_AddArrayToObject(o, "forks");
    for (int32_t i = 0; i < s->n_forks; i++) {
        const fp_fork_rec *f = &s->forks[i];
        cJSON *j = fork_head_json(&f->pub);
        cJSON_AddNumberToObject(j, "node", f->node);
        cJSON_AddItemToObject(j, "candidates", candidates_json(f->base, f->n_base));
        cJSON_AddNumberToObject(j, "other", r6(f->base_other));
        cJSON_AddItemToArray(forks, j);
    }
    return print_free(o);
}

/* ------------------------------------------------------------ settings */

static const char *gran_name(fp_granularity g) {
    return g == FP_GRAN_TOKEN ? "token" : g == FP_GRAN_PHRASE ? "phrase" : "word";
}

static cJSON *settings_obj(const fp_settings *s) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "temperature", r6(s->temperature));
    cJSON_AddNumberToObject(o, "top_k", s->top_k);
    cJSON_AddNumberToObject(o, "top_p", r6(s->top_p));
    cJSON_AddNumberToObject(o, "min_p", r6(s->min_p));
    cJSON_AddNumberToObject(o, "repeat_penalty", r6(s->repeat_penalty));
    cJSON_AddNumberToObject(o, "repeat_last_n", s->repeat_last_n);
    cJSON_AddNumberToObject(o, "k", s->k);
    cJSON_AddStringToObject(o, "granularity", gran_name(s->granularity));
    cJSON_AddNumberToObject(o, "beam_width", s->beam_width);
    cJSON_AddNumberToObject(o, "max_word_tokens", s->max_word_tokens);
    cJSON_AddNumberToObject(o, "lookahead", s->lookahead);
    cJSON_AddNumberToObject(o, "fork_entropy_bits", r6(s->fork_entropy_bits));
    cJSON_AddNumberToObject(o, "fork_top1_below", r6(s->fork_top1_below));
    cJSON_AddNumberToObject(o, "fork_margin_below", r6(s->fork_margin_below));
    cJSON_AddNumberToObject(o, "min_gap_tokens", s->min_gap_tokens);
    cJSON_AddNumberToObject(o, "max_forks_per_sentence", s->max_forks_per_sentence);
    cJSON_AddBoolToObject(o, "sample_auto", s->sample_auto);
    cJSON_AddNumberToObject(o, "seed", s->seed);
    cJSON_AddNumberToObject(o, "max_tokens", s->max_tokens);
    return o;
}

char *fp_settings_to_json(const fp_settings *s) { return print_free(settings_obj(s)); }

/* Reads a number field into a float or int, with a type check. */
static fp_status num_field(const cJSON *it, double lo, double hi, double *out, fp_error *err) {
    if (!cJSON_IsNumber(it)) return fp_fail(err, FP_ERR_ARG, "settings.%s must be a number", it->string);
    double v = it->valuedouble;
    if (!isfinite(v) || v < lo || v > hi) return fp_fail(err, FP_ERR_ARG, "settings.%s is out of range", it->string);
    *out = v;
    return FP_OK;
}

static fp_status settings_from_obj(const cJSON *o, fp_settings *out, fp_error *err) {
    if (!cJSON_IsObject(o)) return fp_fail(err, FP_ERR_ARG, "settings must be a JSON object");
    fp_settings s = *out;
    const cJSON *it;
    cJSON_ArrayForEach(it, o) {
        const char *k = it->string;
        double v = 0;
        fp_status st = FP_OK;
#define F(name) else if (strcmp(k, #name) == 0) { if ((st = num_field(it, -1e9, 1e9, &v, err)) == FP_OK) s.name = (float)v; }
#define I(name) else if (strcmp(k, #name) == 0) {                                           \
            if ((st = num_field(it, -2147483647.0, 2147483647.0, &v, err)) == FP_OK) {        \
                if (v != floor(v)) return fp_fail(err, FP_ERR_ARG, "settings.%s must be an integer", k); \
                s.name = (int32_t)v;                                                          \
            }                                                                                 \
        }
        if (0) {}
        F(temperature) I(top_k) F(top_p) F(min_p) F(repeat_penalty) I(repeat_last_n) I(k) I(beam_width)
        I(max_word_tokens) I(lookahead) F(fork_entropy_bits) F(fork_top1_below) F(fork_margin_below)
        I(min_gap_tokens) I(max_forks_per_sentence) I(max_tokens)
        else if (strcmp(k, "seed") == 0) {
            if ((st = num_field(it, 0, 4294967295.0, &v, err)) == FP_OK) s.seed = (uint32_t)v;
        } else if (strcmp(k, "sample_auto") == 0) {
            if (!cJSON_IsBool(it)) return fp_fail(err, FP_ERR_ARG, "settings.sample_auto must be true or false");
            s.sample_auto = cJSON_IsTrue(it);
        } else if (strcmp(k, "granularity") == 0) {
            const char *g = cJSON_GetStringValue(it);
            if (g && strcmp(g, "token") == 0) s.granularity = FP_GRAN_TOKEN;
            else if (g && strcmp(g, "word") == 0) s.granularity = FP_GRAN_WORD;
            else if (g && strcmp(g, "phrase") == 0) s.granularity = FP_GRAN_PHRASE;
            else return fp_fail(err, FP_ERR_ARG, "settings.granularity must be \"token\", \"word\" or \"phrase\"");
        } else return fp_fail(err, FP_ERR_ARG, "unknown setting \"%s\"", k);
#undef F
#undef I
        if (st != FP_OK) return st;
    }
    if (fp_settings_validate(&s, err) != FP_OK) return FP_ERR_ARG;
    *out = s;
    return FP_OK;
}

fp_status fp_settings_from_json(const char *json, fp_settings *out, fp_error *err) {
    if (!json || !out) return fp_fail(err, FP_ERR_ARG, "no settings JSON");
    cJSON *o = cJSON_Parse(json);
    if (!o) return fp_fail(err, FP_ERR_ARG, "settings are not valid JSON");
    fp_status st = settings_from_obj(o, out, err);
    cJSON_Delete(o);
    return st;
}

/* -------------------------------------------------------------- base64 */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *b64_encode(const unsigned char *d, size_t n) {
    char *o = malloc(4 * ((n + 2) / 3) + 1), *p = o;
    if (!o) return NULL;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < n ? (uint32_t)d[i + 1] << 8 : 0) | (i + 2 < n ? d[i + 2] : 0);
        *p++ = B64[v >> 18 & 63];
        *p++ = B64[v >> 12 & 63];
        *p++ = i + 1 < n ? B64[v >> 6 & 63] : '=';
        *p++ = i + 2 < n ? B64[v & 63] : '=';
    }
    *p = 0;
    return o;
}

/* Decodes exactly n bytes; false on any malformed input. */
static bool b64_decode(const char *s, unsigned char *out, size_t n) {
    size_t len = strlen(s);
    if (len != 4 * ((n + 2) / 3)) return false;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        uint32_t v = 0;
        for (int j = 0; j < 4; j++) {
            char c = s[i + j];
            const char *q = c == '=' ? NULL : strchr(B64, c);
            if (c == 0 || (c != '=' && !q)) return false;
            v = v << 6 | (uint32_t)(q ? q - B64 : 0);
        }
        for (int j = 0; j < 3 && o < n; j++) out[o++] = (unsigned char)(v >> (16 - 8 * j));
    }
    return true;
}

/* ---------------------------------------------------------------- save */

static cJSON *position_json(const fp_position *p) {
    cJSON *a = cJSON_CreateArray();
    cJSON_AddItemToArray(a, cJSON_CreateNumber(p->token));
    cJSON_AddItemToArray(a, cJSON_CreateNumber(r6(p->unc.entropy_bits)));
    cJSON_AddItemToArray(a, cJSON_CreateNumber(r6(p->unc.top1)));
    cJSON_AddItemToArray(a, cJSON_CreateNumber(r6(p->unc.margin)));
    cJSON_AddItemToArray(a, cJSON_CreateNumber(p->reason));
    cJSON_AddItemToArray(a, cJSON_CreateNumber(p->fork_id));
    cJSON_AddItemToArray(a, cJSON_CreateNumber(p->by));
    return a;
}

char *fp_session_save(const fp_session *s) {
    g_exact = true;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "format", 1);
    cJSON_AddNumberToObject(o, "n_vocab", s->n_vocab);
    add_text(o, "prompt", s->prompt, s->prompt_len);
    cJSON_AddItemToObject(o, "settings", settings_obj(&s->st));
    cJSON_AddNumberToObject(o, "leaf", s->leaf);
    cJSON_AddNumberToObject(o, "open_fork", s->open_fork);
    cJSON_AddStringToObject(o, "end_reason", s->state == FP_STATE_ENDED && s->end_reason ? s->end_reason : "");
    char rng[24];
    snprintf(rng, sizeof rng, "%016llx", (unsigned long long)s->rng);
    cJSON_AddStringToObject(o, "rng", rng);
    cJSON *nodes = cJSON_AddArrayToObject(o, "nodes");
    for (int32_t i = 0; i < s->n_nodes; i++) {
        const fp_node *n = &s->nodes[i];
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "parent", n->parent);
        cJSON_AddNumberToObject(j, "kind", n->kind);
        cJSON_AddNumberToObject(j, "start", n->start_pos);
        cJSON_AddNumberToObject(j, "fork", n->fork_id);
        cJSON_AddNumberToObject(j, "parent_fork", n->parent_fork);
        cJSON_AddItemToObject(j, "tokens", int_array(n->tokens, n->n));
        if (n->kind != FP_NODE_PROMPT) {
            cJSON *pos = cJSON_AddArrayToObject(j, "pos");
            for (int32_t t = 0; t < n->n; t++) cJSON_AddItemToArray(pos, position_json(&n->pos[t]));
        }
        cJSON_AddItemToArray(nodes, j);
    }
    cJSON *forks = cJSON_AddArrayToObject(o, "forks");
    for (int32_t i = 0; i < s->n_forks; i++) {
        const fp_fork_rec *f = &s->forks[i];
        cJSON *j = fork_json(&f->pub);
        cJSON_AddNumberToObject(j, "node", f->node);
        cJSON_AddItemToObject(j, "base", candidates_json(f->base, f->n_base));
        cJSON_AddNumberToObject(j, "base_other", r6(f->base_other));
        char *lg = b64_encode((const unsigned char *)f->logits, sizeof(float) * (size_t)s->n_vocab);
        if (lg) cJSON_AddStringToObject(j, "logits", lg);
        free(lg);
        cJSON_AddItemToArray(forks, j);
    }
    cJSON *events = cJSON_AddArrayToObject(o, "events");
    for (int32_t i = 0; i < s->n_events; i++) cJSON_AddItemToArray(events, fork_json(&s->events[i]));
    char *out = print_free(o);
    g_exact = false;
    return out;
}

/* ------------------------------------------------------------- restore */

typedef struct rd { fp_error *err; bool bad; int32_t n_vocab; } rd;

static bool rd_fail(rd *r, const char *what) {
    if (!r->bad) fp_fail(r->err, FP_ERR_ARG, "saved session is damaged: %s", what);
    r->bad = true;
    return false;
}

static double rd_num(rd *r, const cJSON *o, const char *key, double lo, double hi) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble) || it->valuedouble < lo || it->valuedouble > hi) {
        char m[96];
        snprintf(m, sizeof m, "field \"%s\" missing or out of range", key);
        rd_fail(r, m);
        return lo;
    }
    return it->valuedouble;
}

static const char *rd_str(rd *r, const cJSON *o, const char *key, size_t max) {
    const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
    /* not UTF-8: never written by fp_session_save (add_text replaces bad
     * bytes), and saving it again would grow it past max (found by fuzzing) */
    if (!v || strlen(v) >= max || !fp_utf8_valid(v, strlen(v))) {
        char m[96];
        snprintf(m, sizeof m, "field \"%s\" missing, too long or not UTF-8", key);
        rd_fail(r, m);
        return "";
    }
    return v;
}

static int32_t rd_tokens(rd *r, const cJSON *a, int32_t *out, int32_t cap) {
    if (!cJSON_IsArray(a)) { rd_fail(r, "token list is not an array"); return 0; }
    int32_t n = cJSON_GetArraySize(a);
    if (n > cap) { rd_fail(r, "token list too long"); return 0; }
    int32_t i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, a) {
        if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble >= r->n_vocab) { rd_fail(r, "token id out of range"); return 0; }
        if (out) out[i] = (int32_t)it->valuedouble;
        i++;
    }
    return n;
}

static int32_t rd_candidates(rd *r, const cJSON *a, fp_candidate *out, int32_t cap) {
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) > cap) { rd_fail(r, "candidate list"); return 0; }
    int32_t n = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, a) {
        fp_candidate *d = &out[n++];
        memset(d, 0, sizeof *d);
        snprintf(d->text, sizeof d->text, "%s", rd_str(r, c, "text", FP_MAX_TEXT));
        snprintf(d->preview, sizeof d->preview, "%s", rd_str(r, c, "preview", FP_MAX_TEXT));
        d->n_tokens = rd_tokens(r, cJSON_GetObjectItemCaseSensitive(c, "tokens"), d->tokens, FP_MAX_PATH);
        d->n_preview = rd_tokens(r, cJSON_GetObjectItemCaseSensitive(c, "preview_tokens"), d->preview_tokens, FP_MAX_PREVIEW);
        d->prob = (float)rd_num(r, c, "prob", 0, 1.0001);
        const cJSON *pf = cJSON_GetObjectItemCaseSensitive(c, "pref");
        d->pref = cJSON_IsNumber(pf) && pf->valuedouble >= 0 && pf->valuedouble <= 1.0001 ? (float)pf->valuedouble : d->prob;
        d->is_eog = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "eog"));
        if (r->bad) return 0;
    }
    return n;
}

static fp_choice_kind choice_from(const char *k) {
    if (!k) return FP_CHOICE_NONE;
    if (strcmp(k, "index") == 0) return FP_CHOICE_INDEX;
    if (strcmp(k, "index_preview") == 0) return FP_CHOICE_INDEX_PREVIEW;
    if (strcmp(k, "typed") == 0) return FP_CHOICE_TYPED;
    if (strcmp(k, "auto") == 0) return FP_CHOICE_AUTO;
    return FP_CHOICE_NONE;
}

static fp_chooser chooser_from(const char *k) {
    if (k && strcmp(k, "human") == 0) return FP_BY_HUMAN;
    if (k && strcmp(k, "script") == 0) return FP_BY_SCRIPT;
    return FP_BY_AUTO;
}

static fp_reason reason_from(const char *k) {
    for (int r = FP_REASON_CONFIDENT; r <= FP_REASON_IN_CHOICE; r++)
        if (k && strcmp(k, fp_reason_name((fp_reason)r)) == 0) return (fp_reason)r;
    return FP_REASON_UNCERTAIN;
}

/* Reads the public part of a fork or event (candidates into cands). */
static void rd_fork_pub(rd *r, const cJSON *j, fp_fork *f, fp_candidate *cands, int32_t cap) {
    f->id = (int32_t)rd_num(r, j, "fork", 0, 1e9);
    f->position = (int32_t)rd_num(r, j, "position", 0, 1e9);
    f->text_offset = (int32_t)rd_num(r, j, "text_offset", 0, 1e12);
    f->reason = reason_from(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "reason")));
    f->unc.entropy_bits = (float)rd_num(r, j, "entropy_bits", -1, 1e6);
    f->unc.top1 = (float)rd_num(r, j, "top1", -1, 2);
    f->unc.margin = (float)rd_num(r, j, "margin", -1, 2);
    f->n_candidates = rd_candidates(r, cJSON_GetObjectItemCaseSensitive(j, "candidates"), cands, cap);
    f->candidates = cands;
    f->other = (float)rd_num(r, j, "other", 0, 1.0001);
    snprintf(f->typed_prefix, sizeof f->typed_prefix, "%s", rd_str(r, j, "typed_prefix", FP_MAX_TEXT));
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "choice");
    if (!cJSON_IsObject(c)) { rd_fail(r, "choice"); return; }
    f->choice = choice_from(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "kind")));
    f->choice_index = (int32_t)rd_num(r, c, "index", -1, 64);
    snprintf(f->choice_text, sizeof f->choice_text, "%s", rd_str(r, c, "text", FP_MAX_TEXT * 2));
    f->chooser = chooser_from(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "by")));
    f->ms_to_choose = rd_num(r, j, "ms", 0, 1e15);
}

static bool restore_into(fp_session *s, const cJSON *o, rd *r, fp_error *err) {
    const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(o, "nodes");
    const cJSON *forks = cJSON_GetObjectItemCaseSensitive(o, "forks");
    const cJSON *events = cJSON_GetObjectItemCaseSensitive(o, "events");
    if (!cJSON_IsArray(nodes) || cJSON_GetArraySize(nodes) < 2 || !cJSON_IsArray(forks) || !cJSON_IsArray(events))
        return rd_fail(r, "nodes, forks or events missing");
    int32_t n_nodes = cJSON_GetArraySize(nodes), n_forks = cJSON_GetArraySize(forks);
    int32_t k = s->st.k;
    /* nodes (a split puts a parent after its children: order is checked below) */
    const cJSON *j;
    int32_t i = 0;
    cJSON_ArrayForEach(j, nodes) {
        int32_t parent = (int32_t)rd_num(r, j, "parent", -1, n_nodes - 1);
        int32_t kind = (int32_t)rd_num(r, j, "kind", 0, FP_NODE_SPLIT);
        int32_t start = (int32_t)rd_num(r, j, "start", 0, 1e9);
        if (r->bad || parent == i || (i == 0) != (parent == -1) || (i == 0) != (kind == FP_NODE_PROMPT)) return rd_fail(r, "node structure");
        int32_t id = fpi_node_new(s, (fp_node_kind)kind, parent, (int32_t)rd_num(r, j, "parent_fork", -1, n_forks - 1), start);
        if (id < 0) return rd_fail(r, "out of memory");
        s->nodes[id].fork_id = (int32_t)rd_num(r, j, "fork", -1, n_forks - 1);
        const cJSON *toks = cJSON_GetObjectItemCaseSensitive(j, "tokens");
        int32_t nt = rd_tokens(r, toks, NULL, 1 << 20);
        const cJSON *pos = cJSON_GetObjectItemCaseSensitive(j, "pos");
        if (r->bad || (kind != FP_NODE_PROMPT && (!cJSON_IsArray(pos) || cJSON_GetArraySize(pos) != nt)))
            return rd_fail(r, "node tokens");
        const cJSON *t = toks->child, *pp = pos ? pos->child : NULL;
        for (; t; t = t->next) {
            fp_position rec = { .token = (int32_t)t->valuedouble, .fork_id = -1 };
            if (pp) {
                double v[7];
                int32_t q = 0;
                const cJSON *e;
                if (!cJSON_IsArray(pp) || cJSON_GetArraySize(pp) != 7) return rd_fail(r, "position record");
                cJSON_ArrayForEach(e, pp) v[q++] = cJSON_IsNumber(e) ? e->valuedouble : NAN;
                if (v[0] != rec.token || !(v[4] >= 0 && v[4] <= FP_REASON_IN_CHOICE) || !(v[5] >= -1 && v[5] < n_forks)
                    || !(v[6] >= 0 && v[6] <= FP_BY_SCRIPT) || !isfinite(v[1]) || !isfinite(v[2]) || !isfinite(v[3]))
                    return rd_fail(r, "position record");
                rec.unc = (fp_uncertainty){ (float)v[1], (float)v[2], (float)v[3] };
                rec.reason = (fp_reason)(int)v[4];
                rec.fork_id = (int32_t)v[5];
                rec.by = (fp_chooser)(int)v[6];
                pp = pp->next;
            }
            if (!fpi_node_push(s, id, rec.token, kind == FP_NODE_PROMPT ? NULL : &rec)) return rd_fail(r, "out of memory");
        }
        i++;
    }
    if (s->nodes[0].n < 1) return rd_fail(r, "empty prompt node");
    /* every node reaches the root, and starts where its parent ends */
    for (int32_t id = 1; id < n_nodes; id++) {
        int32_t up = id, steps = 0;
        while (up > 0 && steps++ <= n_nodes) up = s->nodes[up].parent;
        if (up != 0) return rd_fail(r, "node tree has a cycle");
        const fp_node *p = &s->nodes[s->nodes[id].parent];
        if (s->nodes[id].start_pos != p->start_pos + p->n) return rd_fail(r, "node start");
    }
    /* forks */
    s->forks = calloc((size_t)(n_forks > 0 ? n_forks : 1), sizeof *s->forks);
    if (!s->forks) return rd_fail(r, "out of memory");
    s->cap_forks = n_forks > 0 ? n_forks : 1;
    i = 0;
    cJSON_ArrayForEach(j, forks) {
        fp_fork_rec *f = &s->forks[i];
        int32_t cap = k;
        int32_t nb = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "base"));
        int32_t ns = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "candidates"));
        if (nb > cap) cap = nb;
        if (ns > cap) cap = ns;
        if (cap > 64) return rd_fail(r, "too many candidates");
        f->cap = cap;
        f->base = calloc((size_t)cap, sizeof *f->base);
        f->shown = calloc((size_t)cap, sizeof *f->shown);
        f->logits = malloc(sizeof(float) * (size_t)s->n_vocab);
        s->n_forks = i + 1; /* owned from here on, freed with the session */
        if (!f->base || !f->shown || !f->logits) return rd_fail(r, "out of memory");
        rd_fork_pub(r, j, &f->pub, f->shown, cap);
        f->n_shown = f->pub.n_candidates;
        f->shown_other = f->pub.other;
        f->n_base = rd_candidates(r, cJSON_GetObjectItemCaseSensitive(j, "base"), f->base, cap);
        f->base_other = (float)rd_num(r, j, "base_other", 0, 1.0001);
        f->node = (int32_t)rd_num(r, j, "node", 0, n_nodes - 1);
        const char *lg = rd_str(r, j, "logits", (size_t)s->n_vocab * 6 + 8);
        if (r->bad || f->pub.id != i || !b64_decode(lg, (unsigned char *)f->logits, sizeof(float) * (size_t)s->n_vocab))
            return rd_fail(r, "fork record");
        f->pub.candidates = f->shown;
        i++;
    }
    /* events */
    int32_t n_ev = cJSON_GetArraySize(events);
    s->events = calloc((size_t)(n_ev > 0 ? n_ev : 1), sizeof *s->events);
    if (!s->events) return rd_fail(r, "out of memory");
    s->cap_events = n_ev > 0 ? n_ev : 1;
    cJSON_ArrayForEach(j, events) {
        fp_candidate *c = calloc(64, sizeof *c);
        if (!c) return rd_fail(r, "out of memory");
        s->events[s->n_events++].candidates = c;
        rd_fork_pub(r, j, &s->events[s->n_events - 1], c, 64);
        if (r->bad) return false;
    }
    /* the current path and state */
    int32_t leaf = (int32_t)rd_num(r, o, "leaf", 1, n_nodes - 1);
    int32_t open = (int32_t)rd_num(r, o, "open_fork", -1, n_forks - 1);
    const char *rng = rd_str(r, o, "rng", 24);
    if (r->bad) return false;
    if (open >= 0 && s->forks[open].node != leaf) return rd_fail(r, "open fork is not at the leaf");
    s->rng = strtoull(rng, NULL, 16);
    if (fpi_set_path(s, leaf, open < 0, err) != FP_OK) { r->bad = true; return false; }
    if (open >= 0) {
        memcpy(s->cur_logits, s->forks[open].logits, sizeof(float) * (size_t)s->n_vocab);
        fp_fork_rec *f = &s->forks[open];
        fpi_fork_show(s, f);
    } else {
        const char *why = rd_str(r, o, "end_reason", 32);
        s->state = FP_STATE_ENDED;
        s->open_fork = -1;
        s->end_reason = strcmp(why, "max_tokens") == 0 ? "max_tokens" : strcmp(why, "context") == 0 ? "context" : "eog";
    }
    return !r->bad;
}

fp_session *fp_session_restore(fp_engine *e, const char *json, fp_error *err) {
    if (!e || !json) { fp_fail(err, FP_ERR_ARG, "no engine or document"); return NULL; }
    cJSON *o = cJSON_Parse(json);
    if (!o) { fp_fail(err, FP_ERR_ARG, "saved session is not valid JSON"); return NULL; }
    rd r = { .err = err, .bad = false, .n_vocab = e->model->n_vocab };
    fp_session *s = NULL;
    fp_settings st = fp_default_settings();
    int32_t nv = (int32_t)rd_num(&r, o, "n_vocab", 1, 1e8);
    const char *prompt = rd_str(&r, o, "prompt", 1 << 24);
    if (!r.bad && rd_num(&r, o, "format", 1, 1) != 1) rd_fail(&r, "unknown format");
    if (!r.bad && nv != e->model->n_vocab) {
        fp_fail(err, FP_ERR_MODEL, "saved session is for a model with %d tokens; this model has %d", nv, e->model->n_vocab);
        r.bad = true;
    }
    if (!r.bad && settings_from_obj(cJSON_GetObjectItemCaseSensitive(o, "settings"), &st, err) != FP_OK) r.bad = true;
    if (!r.bad && (s = fpi_session_alloc(e, &st, err)) == NULL) r.bad = true;
    if (!r.bad) {
        s->prompt = strdup(prompt);
        s->prompt_len = strlen(prompt);
        if (!s->prompt) rd_fail(&r, "out of memory");
        else restore_into(s, o, &r, err);
    }
    cJSON_Delete(o);
    if (r.bad) { fp_session_free(s); return NULL; }
    return s;
}
