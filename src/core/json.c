/*
 * json.c — the JSON the library speaks: fork events, the tree, settings.
 *
 * Fork events are the decision log (one JSON line each). The tree is what a
 * front end draws. Saved sessions (snapshots and their changes) are written
 * by snapshot.c with the helpers at the end of this file.
 *
 * Model text can contain invalid UTF-8 (a byte token on its own); strings are
 * written with invalid bytes replaced by U+FFFD so the output is always valid
 * JSON.
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

/* The one vocabulary of forks and candidates, for every consumer: fork
 * events and the decision log, saved sessions, the tree, and the server's
 * state documents (which embed fp_fork_to_json). Readers of older documents
 * also accept the names of format 1 ("eog", "fork", flat uncertainty). */
static cJSON *candidate_json(const fp_candidate *c, int32_t index) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "index", index);
    add_str(o, "text", c->text);
    cJSON_AddItemToObject(o, "tokens", int_array(c->tokens, c->n_tokens));
    cJSON_AddNumberToObject(o, "n_tokens", c->n_tokens);
    cJSON_AddNumberToObject(o, "prob", r6(c->prob));
    cJSON_AddNumberToObject(o, "pref", r6(c->pref));
    add_str(o, "preview", c->preview);
    cJSON_AddItemToObject(o, "preview_tokens", int_array(c->preview_tokens, c->n_preview));
    cJSON *w = cJSON_AddArrayToObject(o, "preview_words");
    for (int32_t i = 0; w && i < c->n_preview_words; i++) cJSON_AddItemToArray(w, cJSON_CreateNumber(c->preview_word_byte[i]));
    cJSON_AddBoolToObject(o, "is_eog", c->is_eog);
    return o;
}

static cJSON *candidates_json(const fp_candidate *c, int32_t n) {
    cJSON *a = cJSON_CreateArray();
    for (int32_t i = 0; a && i < n; i++) cJSON_AddItemToArray(a, candidate_json(&c[i], i));
    return a;
}

/* The public view of a fork (an event), without candidates. */
static cJSON *fork_head_json(const fp_fork *f) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", f->id);
    cJSON_AddNumberToObject(o, "position", f->position);
    cJSON_AddNumberToObject(o, "text_offset", f->text_offset);
    cJSON_AddStringToObject(o, "reason", fp_reason_name(f->reason));
    cJSON *u = cJSON_AddObjectToObject(o, "uncertainty");
    if (u) {
        cJSON_AddNumberToObject(u, "entropy_bits", r6(f->unc.entropy_bits));
        cJSON_AddNumberToObject(u, "top1", r6(f->unc.top1));
        cJSON_AddNumberToObject(u, "margin", r6(f->unc.margin));
    }
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
    if (!f) return NULL;
    cJSON *o = fork_json(f);
    /* a remote engine is named in every event (the decision log's record of
     * where the probabilities came from); the local one adds nothing */
    if (o && s && s->engine->remote) cJSON_AddStringToObject(o, "backend", fp_engine_backend(s->engine));
    return print_free(o);
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
        const char *pc = fpi_piece(s->engine->model, n->tokens[i], &pl);
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
    if (!cJSON_IsNumber(it)) return fpi_fail(err, FP_ERR_ARG, "settings.%s must be a number", it->string);
    double v = it->valuedouble;
    if (!isfinite(v) || v < lo || v > hi) return fpi_fail(err, FP_ERR_ARG, "settings.%s is out of range", it->string);
    *out = v;
    return FP_OK;
}

static fp_status settings_from_obj(const cJSON *o, fp_settings *out, fp_error *err) {
    if (!cJSON_IsObject(o)) return fpi_fail(err, FP_ERR_ARG, "settings must be a JSON object");
    fp_settings s = *out;
    const cJSON *it;
    cJSON_ArrayForEach(it, o) {
        const char *k = it->string;
        double v = 0;
        fp_status st = FP_OK;
#define F(name) else if (strcmp(k, #name) == 0) { if ((st = num_field(it, -1e9, 1e9, &v, err)) == FP_OK) s.name = (float)v; }
#define I(name) else if (strcmp(k, #name) == 0) {                                           \
            if ((st = num_field(it, -2147483647.0, 2147483647.0, &v, err)) == FP_OK) {        \
                if (v != floor(v)) return fpi_fail(err, FP_ERR_ARG, "settings.%s must be an integer", k); \
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
            if (!cJSON_IsBool(it)) return fpi_fail(err, FP_ERR_ARG, "settings.sample_auto must be true or false");
            s.sample_auto = cJSON_IsTrue(it);
        } else if (strcmp(k, "granularity") == 0) {
            const char *g = cJSON_GetStringValue(it);
            if (g && strcmp(g, "token") == 0) s.granularity = FP_GRAN_TOKEN;
            else if (g && strcmp(g, "word") == 0) s.granularity = FP_GRAN_WORD;
            else if (g && strcmp(g, "phrase") == 0) s.granularity = FP_GRAN_PHRASE;
            else return fpi_fail(err, FP_ERR_ARG, "settings.granularity must be \"token\", \"word\" or \"phrase\"");
        } else return fpi_fail(err, FP_ERR_ARG, "unknown setting \"%s\"", k);
#undef F
#undef I
        if (st != FP_OK) return st;
    }
    if (fp_settings_validate(&s, err) != FP_OK) return FP_ERR_ARG;
    *out = s;
    return FP_OK;
}

fp_status fp_settings_from_json(const char *json, fp_settings *out, fp_error *err) {
    if (!json || !out) return fpi_fail(err, FP_ERR_ARG, "no settings JSON");
    cJSON *o = cJSON_Parse(json);
    if (!o) return fpi_fail(err, FP_ERR_ARG, "settings are not valid JSON");
    fp_status st = settings_from_obj(o, out, err);
    cJSON_Delete(o);
    return st;
}


/* ------------------------------------------- shared with snapshot.c */

void   fpi_json_exact(bool on) { g_exact = on; }
void   fpi_json_text(cJSON *o, const char *key, const char *t, size_t n) { add_text(o, key, t, n); }
cJSON *fpi_json_ints(const int32_t *v, int32_t n) { return int_array(v, n); }
cJSON *fpi_json_candidates(const fp_candidate *c, int32_t n) { return candidates_json(c, n); }
cJSON *fpi_json_fork(const fp_fork *f) { return fork_json(f); }
cJSON *fpi_json_settings(const fp_settings *s) { return settings_obj(s); }
fp_status fpi_settings_from_cjson(const cJSON *o, fp_settings *out, fp_error *err) { return settings_from_obj(o, out, err); }
