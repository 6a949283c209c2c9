/*
 * snapshot.c — a session saved and restored: whole snapshots, the changes
 * between them, and rebuilding a session from both.
 *
 * Why changes: a story of a thousand forks is megabytes of JSON, while one
 * decision adds a node, a fork and an event (a few kilobytes). Rewriting
 * everything after every click made the cost of a click grow with the
 * story; a front end that stores a snapshot now and then and the changes in
 * between (src/store does) pays for what changed only.
 *
 * A snapshot (format 2) is the tree plus everything needed to reopen any
 * fork: its candidates as first computed (base), what is shown now (only
 * when it differs from base), the decision, the event log, the path and the
 * generator state. No logits: a restored fork gets them back by decoding its
 * last token again when it is reopened (navigate.c reopen), so snapshots stay
 * the same size whatever the vocabulary. Candidates, probabilities and
 * previews come from the snapshot, never recomputed, so a reopened fork
 * shows exactly what it showed. Format 1 documents (with base64 logits, as
 * written before) still restore.
 *
 * A change document names the nodes and forks that are new or differ from
 * what a mark (fp_save_mark) remembers as saved, the events logged since,
 * and the small header (leaf, open fork, end, generator, settings). What can
 * differ, given session.c and navigate.c: nodes grow or are split (their small fields
 * change), a fork's node moves with a split, and only the open fork's
 * candidates and decision change (choosing, narrowing, settings, adapters,
 * reopening). So a change is found by comparing a few integers per node and
 * per fork, and the fork open now or at the mark is always written.
 * Cost: O(nodes + forks) integer comparisons, output proportional to what
 * changed. Invariant (tested: fp_session_restore_log of a snapshot and its
 * changes saves to the same snapshot as the live session).
 *
 * Restoring validates every field: a damaged document is an error, never a
 * crash.
 */
#include "core/internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double fin(double x) { return isfinite(x) ? x : 0.0; }

static char *print_free(cJSON *o) {
    if (!o) return NULL;
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* -------------------------------------------------------------- base64 */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Decodes exactly n bytes; false on any malformed input (format 1 logits). */
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

/* ------------------------------------------------------------- records */

static cJSON *position_json(const fp_position *p) {
    cJSON *a = cJSON_CreateArray();
    cJSON_AddItemToArray(a, cJSON_CreateNumber(p->token));
    cJSON_AddItemToArray(a, cJSON_CreateNumber(fin(p->unc.entropy_bits)));
    cJSON_AddItemToArray(a, cJSON_CreateNumber(fin(p->unc.top1)));
    cJSON_AddItemToArray(a, cJSON_CreateNumber(fin(p->unc.margin)));
    cJSON_AddItemToArray(a, cJSON_CreateNumber(p->reason));
    cJSON_AddItemToArray(a, cJSON_CreateNumber(p->fork_id));
    cJSON_AddItemToArray(a, cJSON_CreateNumber(p->by));
    return a;
}

static cJSON *node_json(const fp_node *n) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "parent", n->parent);
    cJSON_AddNumberToObject(j, "kind", n->kind);
    cJSON_AddNumberToObject(j, "start", n->start_pos);
    cJSON_AddNumberToObject(j, "fork", n->fork_id);
    cJSON_AddNumberToObject(j, "parent_fork", n->parent_fork);
    cJSON_AddItemToObject(j, "tokens", fpi_json_ints(n->tokens, n->n));
    if (n->kind != FP_NODE_PROMPT) {
        cJSON *pos = cJSON_AddArrayToObject(j, "pos");
        for (int32_t t = 0; t < n->n; t++) cJSON_AddItemToArray(pos, position_json(&n->pos[t]));
    }
    return j;
}

static bool cand_equal(const fp_candidate *a, const fp_candidate *b) {
    return strcmp(a->text, b->text) == 0 && strcmp(a->preview, b->preview) == 0 && a->n_tokens == b->n_tokens &&
           a->n_preview == b->n_preview && a->prob == b->prob && a->pref == b->pref && a->is_eog == b->is_eog &&
           memcmp(a->tokens, b->tokens, sizeof(int32_t) * (size_t)a->n_tokens) == 0 &&
           memcmp(a->preview_tokens, b->preview_tokens, sizeof(int32_t) * (size_t)a->n_preview) == 0;
}

/* True when what is shown is the cloud as first computed (then the snapshot
 * stores it once). */
static bool shown_is_base(const fp_fork_rec *f) {
    if (f->pub.typed_prefix[0] || f->n_shown != f->n_base || f->shown_other != f->base_other) return false;
    for (int32_t i = 0; i < f->n_base; i++) if (!cand_equal(&f->shown[i], &f->base[i])) return false;
    return true;
}

/* A fork as stored: its public view, node, base cloud; no logits. */
static cJSON *fork_rec_json(const fp_fork_rec *f) {
    cJSON *j = fpi_json_fork(&f->pub);
    cJSON_AddNumberToObject(j, "node", f->node);
    cJSON_AddItemToObject(j, "base", fpi_json_candidates(f->base, f->n_base));
    cJSON_AddNumberToObject(j, "base_other", fin(f->base_other));
    if (shown_is_base(f)) { /* restore shows base */
        cJSON_DeleteItemFromObjectCaseSensitive(j, "candidates");
        cJSON_DeleteItemFromObjectCaseSensitive(j, "other");
    }
    return j;
}

/* leaf, open fork, end, generator: written in snapshots and in every change. */
static void add_head(cJSON *o, const fp_session *s) {
    cJSON_AddNumberToObject(o, "leaf", s->leaf);
    cJSON_AddNumberToObject(o, "open_fork", s->open_fork);
    cJSON_AddStringToObject(o, "end_reason", s->state == FP_STATE_ENDED && s->end_reason ? s->end_reason : "");
    char rng[24];
    snprintf(rng, sizeof rng, "%016llx", (unsigned long long)s->rng);
    cJSON_AddStringToObject(o, "rng", rng);
}

/* ---------------------------------------------------------------- save */

char *fp_session_save(const fp_session *s) {
    fpi_json_exact(true);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "format", 2);
    cJSON_AddNumberToObject(o, "n_vocab", s->n_vocab);
    fpi_json_text(o, "prompt", s->prompt, s->prompt_len);
    cJSON_AddItemToObject(o, "settings", fpi_json_settings(&s->st));
    if (s->grammar) cJSON_AddStringToObject(o, "grammar", s->grammar);
    add_head(o, s);
    cJSON *nodes = cJSON_AddArrayToObject(o, "nodes");
    for (int32_t i = 0; i < s->n_nodes; i++) cJSON_AddItemToArray(nodes, node_json(&s->nodes[i]));
    cJSON *forks = cJSON_AddArrayToObject(o, "forks");
    for (int32_t i = 0; i < s->n_forks; i++) cJSON_AddItemToArray(forks, fork_rec_json(&s->forks[i]));
    cJSON *events = cJSON_AddArrayToObject(o, "events");
    for (int32_t i = 0; i < s->n_events; i++) cJSON_AddItemToArray(events, fpi_json_fork(&s->events[i]));
    char *out = print_free(o);
    fpi_json_exact(false);
    return out;
}

/* --------------------------------------------------------------- marks */

/* What a mark remembers of a node and a fork: the fields that change. */
typedef struct mk_node { int32_t parent, kind, start, n, fork_id, parent_fork; } mk_node;
typedef struct mk_fork {
    int32_t node, choice, choice_index, chooser, n_base, n_shown, n_candidates;
    double ms;
    uint64_t h;   /* hash of the small public fields (texts, offsets, masses) */
} mk_fork;

struct fp_save_mark {
    mk_node *nodes; int32_t n_nodes, cap_nodes;
    mk_fork *forks; int32_t n_forks, cap_forks;
    int32_t n_events;
    int32_t leaf, open_fork;
    fp_state state;
    uint64_t rng;
    fp_settings st;
};

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) { h ^= b[i]; h *= 0x100000001b3ULL; }
    return h;
}

static mk_node mk_of_node(const fp_node *n) {
    return (mk_node){ n->parent, (int32_t)n->kind, n->start_pos, n->n, n->fork_id, n->parent_fork };
}

static mk_fork mk_of_fork(const fp_fork_rec *f) {
    mk_fork m = { f->node, (int32_t)f->pub.choice, f->pub.choice_index, (int32_t)f->pub.chooser, f->n_base,
                  f->n_shown, f->pub.n_candidates, f->pub.ms_to_choose, 0xcbf29ce484222325ULL };
    m.h = fnv(m.h, f->pub.typed_prefix, strlen(f->pub.typed_prefix));
    m.h = fnv(m.h, f->pub.choice_text, strlen(f->pub.choice_text) + 1);
    float v[5] = { f->pub.other, f->base_other, f->shown_other, f->pub.unc.entropy_bits, f->pub.unc.top1 };
    int32_t w[3] = { f->pub.position, f->pub.text_offset, (int32_t)f->pub.reason };
    m.h = fnv(m.h, v, sizeof v);
    m.h = fnv(m.h, w, sizeof w);
    return m;
}

static bool mk_node_eq(const mk_node *a, const mk_node *b) { return memcmp(a, b, sizeof *a) == 0; }
static bool mk_fork_eq(const mk_fork *a, const mk_fork *b) {
    return a->node == b->node && a->choice == b->choice && a->choice_index == b->choice_index &&
           a->chooser == b->chooser && a->n_base == b->n_base && a->n_shown == b->n_shown &&
           a->n_candidates == b->n_candidates && a->ms == b->ms && a->h == b->h;
}

void fp_save_mark_free(fp_save_mark *m) {
    if (!m) return;
    free(m->nodes);
    free(m->forks);
    free(m);
}

fp_status fp_save_mark_update(fp_save_mark *m, const fp_session *s) {
    if (s->n_nodes > m->cap_nodes) {
        mk_node *n = realloc(m->nodes, sizeof *n * (size_t)(s->n_nodes * 2));
        if (!n) return FP_ERR_NOMEM;
        m->nodes = n;
        m->cap_nodes = s->n_nodes * 2;
    }
    if (s->n_forks > m->cap_forks) {
        mk_fork *f = realloc(m->forks, sizeof *f * (size_t)(s->n_forks * 2));
        if (!f) return FP_ERR_NOMEM;
        m->forks = f;
        m->cap_forks = s->n_forks * 2;
    }
    for (int32_t i = 0; i < s->n_nodes; i++) m->nodes[i] = mk_of_node(&s->nodes[i]);
    for (int32_t i = 0; i < s->n_forks; i++) m->forks[i] = mk_of_fork(&s->forks[i]);
    m->n_nodes = s->n_nodes;
    m->n_forks = s->n_forks;
    m->n_events = s->n_events;
    m->leaf = s->leaf;
    m->open_fork = s->open_fork;
    m->state = s->state;
    m->rng = s->rng;
    m->st = s->st;
    return FP_OK;
}

fp_save_mark *fp_save_mark_new(const fp_session *s) {
    fp_save_mark *m = calloc(1, sizeof *m);
    if (m && s && fp_save_mark_update(m, s) != FP_OK) { fp_save_mark_free(m); return NULL; }
    return m;
}

char *fp_session_save_changes(const fp_session *s, const fp_save_mark *m) {
    if (!s || !m) return NULL;
    fpi_json_exact(true);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "change", 1);
    /* what it follows: a change applied to another state is refused */
    cJSON_AddNumberToObject(o, "from_nodes", m->n_nodes);
    cJSON_AddNumberToObject(o, "from_forks", m->n_forks);
    cJSON_AddNumberToObject(o, "n_nodes", s->n_nodes);
    cJSON_AddNumberToObject(o, "n_forks", s->n_forks);
    cJSON *nodes = cJSON_AddArrayToObject(o, "nodes");
    for (int32_t i = 0; i < s->n_nodes; i++) {
        mk_node k = mk_of_node(&s->nodes[i]);
        if (i < m->n_nodes && mk_node_eq(&k, &m->nodes[i])) continue;
        cJSON *j = node_json(&s->nodes[i]);
        cJSON_AddNumberToObject(j, "id", i);
        cJSON_AddItemToArray(nodes, j);
    }
    cJSON *forks = cJSON_AddArrayToObject(o, "forks");
    for (int32_t i = 0; i < s->n_forks; i++) {
        mk_fork k = mk_of_fork(&s->forks[i]);
        bool open = i == s->open_fork || i == m->open_fork;
        if (i < m->n_forks && !open && mk_fork_eq(&k, &m->forks[i])) continue;
        cJSON_AddItemToArray(forks, fork_rec_json(&s->forks[i]));
    }
    cJSON_AddNumberToObject(o, "events_from", m->n_events);
    cJSON *events = cJSON_AddArrayToObject(o, "events");
    for (int32_t i = m->n_events; i < s->n_events; i++) cJSON_AddItemToArray(events, fpi_json_fork(&s->events[i]));
    add_head(o, s);
    if (memcmp(&s->st, &m->st, sizeof s->st) != 0) cJSON_AddItemToObject(o, "settings", fpi_json_settings(&s->st));
    char *out = print_free(o);
    fpi_json_exact(false);
    return out;
}

/* ------------------------------------------------------------- restore */

typedef struct rd { fp_error *err; bool bad; int32_t n_vocab; int format; const fp_model *model; } rd;

static bool rd_fail(rd *r, const char *what) {
    if (!r->bad) fpi_fail(r->err, FP_ERR_ARG, "saved session is damaged: %s", what);
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
        const cJSON *eog = cJSON_GetObjectItemCaseSensitive(c, "is_eog");
        d->is_eog = cJSON_IsTrue(eog ? eog : cJSON_GetObjectItemCaseSensitive(c, "eog")); /* format 1: "eog" */
        if (r->bad) return 0;
        if (!fp_utf8_valid(d->text, strlen(d->text)) || !fp_utf8_valid(d->preview, strlen(d->preview))) {
            rd_fail(r, "candidate text is not valid UTF-8");
            return 0;
        }
        fpi_preview_words(r->model, d);
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

/* Reads the public part of a fork or event (candidates into cands; a fork
 * stored without "candidates" shows its base, filled in by the caller). */
static void rd_fork_pub(rd *r, const cJSON *j, fp_fork *f, fp_candidate *cands, int32_t cap, bool may_omit) {
    /* the one vocabulary ("id", "uncertainty": {...}), or format 1's names */
    f->id = (int32_t)rd_num(r, j, cJSON_HasObjectItem(j, "id") ? "id" : "fork", 0, 1e9);
    f->position = (int32_t)rd_num(r, j, "position", 0, 1e9);
    f->text_offset = (int32_t)rd_num(r, j, "text_offset", 0, 1e12);
    f->reason = reason_from(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "reason")));
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(j, "uncertainty");
    if (!cJSON_IsObject(u)) u = j;
    f->unc.entropy_bits = (float)rd_num(r, u, "entropy_bits", -1, 1e6);
    f->unc.top1 = (float)rd_num(r, u, "top1", -1, 2);
    f->unc.margin = (float)rd_num(r, u, "margin", -1, 2);
    const cJSON *cl = cJSON_GetObjectItemCaseSensitive(j, "candidates");
    f->candidates = cands;
    if (!cl && may_omit) {
        f->n_candidates = -1; /* the base */
    } else {
        f->n_candidates = rd_candidates(r, cl, cands, cap);
        f->other = (float)rd_num(r, j, "other", 0, 1.0001);
    }
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
        s->n_forks = i + 1; /* owned from here on, freed with the session */
        if (!f->base || !f->shown) return rd_fail(r, "out of memory");
        rd_fork_pub(r, j, &f->pub, f->shown, cap, r->format >= 2);
        f->n_base = rd_candidates(r, cJSON_GetObjectItemCaseSensitive(j, "base"), f->base, cap);
        f->base_other = (float)rd_num(r, j, "base_other", 0, 1.0001);
        if (f->pub.n_candidates < 0) { /* shown = base */
            memcpy(f->shown, f->base, sizeof *f->base * (size_t)f->n_base);
            f->pub.n_candidates = f->n_base;
            f->pub.other = f->base_other;
        }
        f->n_shown = f->pub.n_candidates;
        f->shown_other = f->pub.other;
        f->node = (int32_t)rd_num(r, j, "node", 0, n_nodes - 1);
        if (r->bad || f->pub.id != i) return rd_fail(r, "fork record");
        if (r->format == 1) { /* format 1 kept every fork's logits */
            f->logits = malloc(sizeof(float) * (size_t)s->n_vocab);
            if (!f->logits) return rd_fail(r, "out of memory");
            const char *lg = rd_str(r, j, "logits", (size_t)s->n_vocab * 6 + 8);
            if (r->bad || !b64_decode(lg, (unsigned char *)f->logits, sizeof(float) * (size_t)s->n_vocab))
                return rd_fail(r, "fork record");
        }
        f->pub.candidates = f->shown;
        i++;
    }
    /* every node's fork stands at its end, and says so */
    for (int32_t id = 0; id < n_nodes; id++)
        if (s->nodes[id].fork_id >= 0 && s->forks[s->nodes[id].fork_id].node != id) return rd_fail(r, "node and fork disagree");
    /* and at its node's last position (undo and goto reopen it there) */
    for (int32_t id = 0; id < s->n_forks; id++) {
        const fp_node *n = &s->nodes[s->forks[id].node];
        if (s->forks[id].pub.position != n->start_pos + n->n) return rd_fail(r, "fork position");
    }
    /* events */
    int32_t n_ev = cJSON_GetArraySize(events);
    s->events = calloc((size_t)(n_ev > 0 ? n_ev : 1), sizeof *s->events);
    if (!s->events) return rd_fail(r, "out of memory");
    s->cap_events = n_ev > 0 ? n_ev : 1;
    cJSON_ArrayForEach(j, events) {
        /* room for the event's own candidates only (an event is never narrowed again) */
        int32_t nc = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "candidates"));
        if (nc > 64) return rd_fail(r, "too many candidates");
        fp_candidate *c = calloc((size_t)(nc > 0 ? nc : 1), sizeof *c);
        if (!c) return rd_fail(r, "out of memory");
        s->events[s->n_events++].candidates = c;
        rd_fork_pub(r, j, &s->events[s->n_events - 1], c, nc > 0 ? nc : 1, false);
        if (r->bad) return false;
    }
    /* the current path and state */
    int32_t leaf = (int32_t)rd_num(r, o, "leaf", 1, n_nodes - 1);
    int32_t open = (int32_t)rd_num(r, o, "open_fork", -1, n_forks - 1);
    const char *rng = rd_str(r, o, "rng", 24);
    if (r->bad) return false;
    if (open >= 0 && s->forks[open].node != leaf) return rd_fail(r, "open fork is not at the leaf");
    s->rng = strtoull(rng, NULL, 16);
    /* the open fork's logits: stored (format 1) or decoded again with the path */
    bool decode_logits = open < 0 || !s->forks[open].logits;
    fpi_heal_setup(s); /* was the prompt's last token held back (token healing)? */
    if (fpi_set_path(s, leaf, decode_logits, err) != FP_OK) { r->bad = true; return false; }
    if (open >= 0) {
        fp_fork_rec *f = &s->forks[open];
        if (!f->logits) {
            if (!(f->logits = malloc(sizeof(float) * (size_t)s->n_vocab))) return rd_fail(r, "out of memory");
            memcpy(f->logits, s->cur_logits, sizeof(float) * (size_t)s->n_vocab);
        } else {
            memcpy(s->cur_logits, f->logits, sizeof(float) * (size_t)s->n_vocab);
        }
        fpi_fork_show(s, f);
    } else {
        const char *why = rd_str(r, o, "end_reason", 32);
        s->state = FP_STATE_ENDED;
        s->open_fork = -1;
        s->end_reason = strcmp(why, "max_tokens") == 0 ? "max_tokens" : strcmp(why, "context") == 0 ? "context" : "eog";
    }
    /* every invariant check.c knows must hold, in every build: a document
     * that restores but breaks one (found by fuzz_dialogue) would fail later,
     * in the middle of a decision. O(path + tree + forks), once. */
    char why[200];
    if (!r->bad && !fpi_session_check(s, why, sizeof why)) return rd_fail(r, why);
    return !r->bad;
}

/* ------------------------------------------------------ applying changes */

/* The children of a cJSON array, detached into a vector (so that changes
 * replace records by index in O(1)); put back in order at the end. */
typedef struct vec { cJSON **v; int32_t n, cap; } vec;

static bool vec_push(vec *a, cJSON *it) {
    if (a->n == a->cap) {
        int32_t nc = a->cap ? a->cap * 2 : 64;
        cJSON **nv = realloc(a->v, sizeof *nv * (size_t)nc);
        if (!nv) return false;
        a->v = nv;
        a->cap = nc;
    }
    a->v[a->n++] = it;
    return true;
}

static bool vec_take(vec *a, cJSON *arr) {
    while (arr->child) if (!vec_push(a, cJSON_DetachItemViaPointer(arr, arr->child))) return false;
    return true;
}

static void vec_give(vec *a, cJSON *arr) {
    for (int32_t i = 0; i < a->n; i++) cJSON_AddItemToArray(arr, a->v[i]);
    a->n = 0;
}

static void vec_free(vec *a) {
    for (int32_t i = 0; i < a->n; i++) cJSON_Delete(a->v[i]);
    free(a->v);
}

/* Puts record `it` (detached) at index id: replaces one or appends. */
static bool vec_put(rd *r, vec *a, int32_t id, cJSON *it) {
    if (id < 0 || id > a->n) { cJSON_Delete(it); return rd_fail(r, "a change names a record that does not exist"); }
    if (id == a->n) return vec_push(a, it) || (cJSON_Delete(it), rd_fail(r, "out of memory"));
    cJSON_Delete(a->v[id]);
    a->v[id] = it;
    return true;
}

static void replace_field(cJSON *doc, cJSON *ch, const char *key) {
    cJSON *it = cJSON_DetachItemFromObjectCaseSensitive(ch, key);
    if (it) {
        if (cJSON_GetObjectItemCaseSensitive(doc, key)) cJSON_ReplaceItemInObjectCaseSensitive(doc, key, it);
        else cJSON_AddItemToObject(doc, key, it);
    }
}

/* Applies one change document to the snapshot being rebuilt. */
static bool apply_change(rd *r, cJSON *doc, vec *nodes, vec *forks, cJSON *events, const char *text) {
    cJSON *ch = cJSON_Parse(text);
    if (!ch) return rd_fail(r, "a change is not valid JSON");
    bool ok = false;
    if (rd_num(r, ch, "change", 1, 1) != 1) goto out;
    int32_t n_nodes = (int32_t)rd_num(r, ch, "n_nodes", 2, 1e9), n_forks = (int32_t)rd_num(r, ch, "n_forks", 0, 1e9);
    int32_t from = (int32_t)rd_num(r, ch, "events_from", 0, 1e9);
    cJSON *cn = cJSON_GetObjectItemCaseSensitive(ch, "nodes"), *cf = cJSON_GetObjectItemCaseSensitive(ch, "forks");
    cJSON *ce = cJSON_GetObjectItemCaseSensitive(ch, "events");
    if (r->bad) goto out;
    if (!cJSON_IsArray(cn) || !cJSON_IsArray(cf) || !cJSON_IsArray(ce)) { rd_fail(r, "a change lacks nodes, forks or events"); goto out; }
    int32_t from_nodes = (int32_t)rd_num(r, ch, "from_nodes", 0, 1e9), from_forks = (int32_t)rd_num(r, ch, "from_forks", 0, 1e9);
    if (r->bad) goto out;
    if (from != cJSON_GetArraySize(events) || from_nodes != nodes->n || from_forks != forks->n) {
        rd_fail(r, "a change does not follow the one before");
        goto out;
    }
    while (cn->child) {
        cJSON *it = cJSON_DetachItemViaPointer(cn, cn->child);
        int32_t id = (int32_t)rd_num(r, it, "id", 0, 1e9);
        cJSON_DeleteItemFromObjectCaseSensitive(it, "id");
        if (r->bad) { cJSON_Delete(it); goto out; }
        if (!vec_put(r, nodes, id, it)) goto out;
    }
    while (cf->child) {
        cJSON *it = cJSON_DetachItemViaPointer(cf, cf->child);
        int32_t id = (int32_t)rd_num(r, it, cJSON_HasObjectItem(it, "id") ? "id" : "fork", 0, 1e9);
        if (r->bad) { cJSON_Delete(it); goto out; }
        if (!vec_put(r, forks, id, it)) goto out;
    }
    while (ce->child) cJSON_AddItemToArray(events, cJSON_DetachItemViaPointer(ce, ce->child));
    if (nodes->n != n_nodes || forks->n != n_forks) { rd_fail(r, "a change leaves the wrong number of nodes or forks"); goto out; }
    replace_field(doc, ch, "leaf");
    replace_field(doc, ch, "open_fork");
    replace_field(doc, ch, "end_reason");
    replace_field(doc, ch, "rng");
    replace_field(doc, ch, "settings");
    ok = true;
out:
    cJSON_Delete(ch);
    return ok && !r->bad;
}

/* ------------------------------------------------------------ restoring */

fp_session *fp_session_restore_log(fp_engine *e, const char *snapshot, const char *const *changes, int32_t n_changes,
                                   fp_error *err) {
    if (!e || !snapshot || (n_changes > 0 && !changes) || n_changes < 0) {
        fpi_fail(err, FP_ERR_ARG, "no engine or document");
        return NULL;
    }
    cJSON *o = cJSON_Parse(snapshot);
    if (!o) { fpi_fail(err, FP_ERR_ARG, "saved session is not valid JSON"); return NULL; }
    rd r = { .err = err, .bad = false, .n_vocab = e->model->n_vocab, .model = e->model };
    fp_session *s = NULL;
    fp_settings st = fp_default_settings();
    int32_t nv = (int32_t)rd_num(&r, o, "n_vocab", 1, 1e8);
    r.format = (int)rd_num(&r, o, "format", 1, 2);   /* 1: with logits (older), 2: without */
    if (!r.bad && nv != e->model->n_vocab) {
        fpi_fail(err, FP_ERR_MODEL, "saved session is for a model with %d tokens; this model has %d", nv, e->model->n_vocab);
        r.bad = true;
    }
    if (!r.bad && n_changes > 0) {
        /* the changes go into the document first; it is then read as one */
        cJSON *nodes = cJSON_GetObjectItemCaseSensitive(o, "nodes"), *forks = cJSON_GetObjectItemCaseSensitive(o, "forks");
        cJSON *events = cJSON_GetObjectItemCaseSensitive(o, "events");
        if (!cJSON_IsArray(nodes) || !cJSON_IsArray(forks) || !cJSON_IsArray(events)) rd_fail(&r, "nodes, forks or events missing");
        vec vn = {0}, vf = {0};
        if (!r.bad && (!vec_take(&vn, nodes) || !vec_take(&vf, forks))) rd_fail(&r, "out of memory");
        for (int32_t i = 0; !r.bad && i < n_changes; i++) {
            if (!changes[i]) rd_fail(&r, "a change is missing");
            else apply_change(&r, o, &vn, &vf, events, changes[i]);
        }
        if (!r.bad) { vec_give(&vn, nodes); vec_give(&vf, forks); }
        vec_free(&vn);
        vec_free(&vf);
    }
    const char *prompt = r.bad ? "" : rd_str(&r, o, "prompt", 1 << 24);
    if (!r.bad && fpi_settings_from_cjson(cJSON_GetObjectItemCaseSensitive(o, "settings"), &st, err) != FP_OK) r.bad = true;
    if (!r.bad && (s = fpi_session_alloc(e, &st, err)) == NULL) r.bad = true;
    const cJSON *gj = r.bad ? NULL : cJSON_GetObjectItemCaseSensitive(o, "grammar");
    if (gj && (!cJSON_IsString(gj) || fpi_session_grammar(s, gj->valuestring, err) != FP_OK)) r.bad = true;
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

fp_session *fp_session_restore(fp_engine *e, const char *json, fp_error *err) {
    return fp_session_restore_log(e, json, NULL, 0, err);
}
