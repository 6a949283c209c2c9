/*
 * session.c — a document: the generation loop, the fork lifecycle, and
 * decisions that happen whole or not at all.
 *
 * The flow, top-down (as in llama2.c's generate()):
 *
 *   fp_session_new      tokenize the prompt, decode it once into the trunk
 *   run_until_fork      at each position: distribution -> uncertainty ->
 *                       fork or not (and why) -> if not, pick a token, decode
 *   open_fork           store the logits, compute the cloud (cloud.c)
 *   settle              the one end of every path that leaves a fork open:
 *                       order it by the person's preferences, show it, and
 *                       let confident preferences decide it
 *   decide              the person's decision: save a mark, do the work
 *                       (commit, or adopt a prefetched outcome), and only
 *                       when all of it succeeded record and learn from it;
 *                       on failure go back to the mark, exactly
 *
 * A preview is a promise. The preview of a candidate is computed with the
 * same pick rule (fpi_pick_next), sampler chain, penalty history, random
 * state and word-start rule as the continuation after it. When the person
 * then takes the candidate alone, the continuation follows the preview's
 * tokens as its plan: the rules already agree, and the plan also absorbs the
 * last-bit float differences between a batched branch decode and the trunk's
 * own, so what follows a choice is what was shown, up to the next fork.
 *
 * Undo, goto and forced forks are in navigate.c; the tree and the trunk in
 * tree.c. The invariants are written in internal.h and checked by
 * fpi_session_check (check.c) after every public mutator in test builds.
 */
#include "core/internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------- fork detection */

/* Bytes of an unfinished character at the end of the text (0..3). */
int32_t fpi_text_tail(const fp_session *s) {
    return (int32_t)(s->text_len - fp_utf8_complete_prefix(s->text, s->text_len));
}

static bool mid_word(const fp_session *s) {
    const fp_model *m = s->engine->model;
    if (fpi_text_tail(s) > 0) return true; /* half a character is half a word */
    if (s->dist.n == 0 || s->text_len == 0) return false;
    uint16_t top = m->tok_flags[s->dist.items[0].token];
    unsigned char last = (unsigned char)s->text[s->text_len - 1];
    bool after_space = last == ' ' || last == '\n' || last == '\t';
    return !(top & FP_TOK_WORD_START) && !after_space;
}

/* Why the current position is, or is not, a fork. */
static fp_reason decide_position(fp_session *s, fp_uncertainty u) {
    const fp_settings *st = &s->st;
    bool hit = (st->fork_entropy_bits > 0 && u.entropy_bits >= st->fork_entropy_bits)
            || (st->fork_top1_below > 0 && u.top1 < st->fork_top1_below)
            || (st->fork_margin_below > 0 && u.margin < st->fork_margin_below);
    if (!hit) return FP_REASON_CONFIDENT;
    if ((st->granularity != FP_GRAN_TOKEN && mid_word(s)) || fpi_text_tail(s) > 0) return FP_REASON_MID_WORD;
    if (fpi_control_suffix(s->engine->model, s->text, s->text_len, NULL) > 0) return FP_REASON_MID_WORD; /* maybe spelling a control text */
    int32_t np = fpi_n_prompt(s);
    /* tokens since the last fork on this path */
    int32_t gap = -1, forks_in_sentence = 0;
    bool sentence_open = true;
    const fp_model *m = s->engine->model;
    for (int32_t p = s->n_path - 1; p >= np; p--) {
        const fp_position *ps = fpi_path_pos(s, p);
        if (sentence_open && (m->tok_flags[ps->token] & FP_TOK_SENT_END)) sentence_open = false;
        if (ps->fork_id >= 0) {
            if (gap < 0) gap = s->n_path - p;
            if (sentence_open) forks_in_sentence++;
        }
        if (gap >= 0 && !sentence_open) break;
    }
    if (gap >= 0 && gap < st->min_gap_tokens) return FP_REASON_BUDGET_GAP;
    if (st->max_forks_per_sentence > 0 && forks_in_sentence >= st->max_forks_per_sentence)
        return FP_REASON_BUDGET_SENTENCE;
    return FP_REASON_UNCERTAIN;
}

/* --------------------------------------------------------- token healing */

/* Why: a prompt ends where a person stopped typing, not where the model's
 * vocabulary would split. "...a little" ends in a piece the model only ever
 * saw inside a longer word (on TinyStories-656K, whose pieces carry the word
 * mark at the end, "little" without its mark is half of "littleopard"); a
 * prompt ending in a space ends where the next piece would have carried it.
 * So the prompt's last token is held back, and the first generated tokens
 * must spell its text again: the model finishes the prompt's last word its
 * own way, and what follows is what it would have written. */

void fpi_heal_init(fp_session *s, const int32_t *toks, int32_t n) {
    s->heal_len = s->heal_done = 0;
    const fp_model *m = s->engine->model;
    if (n < 2 || s->nodes[0].n != n - 1) return;
    /* only a prompt node that is these tokens but the last was held back (a
     * dialogue turn's prompt, tokenized with its control tokens, is not) */
    if (memcmp(s->nodes[0].tokens, toks, sizeof(int32_t) * (size_t)(n - 1)) != 0) return;
    int32_t t = toks[n - 1], pl;
    const char *pc = fpi_piece(m, t, &pl);
    if ((m->tok_flags[t] & (FP_TOK_CONTROL | FP_TOK_EOG)) || pl <= 0 || pl >= FP_MAX_TEXT || (size_t)pl > s->prompt_len ||
        memcmp(s->prompt + s->prompt_len - (size_t)pl, pc, (size_t)pl) != 0)
        return;
    memcpy(s->heal, pc, (size_t)pl);
    s->heal_len = pl;
}

void fpi_heal_setup(fp_session *s) {
    size_t len = s->prompt_len;
    int32_t cap = (int32_t)(len < 1u << 20 ? len : 1u << 20) + 8;
    int32_t *toks = malloc(sizeof(int32_t) * (size_t)cap);
    if (!toks) return;
    int32_t n = fp_tokenize(s->engine->model, s->prompt, len, toks, cap, true);
    if (n > 0 && n <= cap) fpi_heal_init(s, toks, n);
    free(toks);
}

/* The prompt's token count to decode: all but a last token that can be healed. */
static int32_t heal_keep(const fp_model *m, const char *prompt, size_t len, const int32_t *toks, int32_t n) {
    if (n < 2) return n;
    int32_t t = toks[n - 1], pl;
    const char *pc = fpi_piece(m, t, &pl);
    if ((m->tok_flags[t] & (FP_TOK_CONTROL | FP_TOK_EOG)) || pl <= 0 || pl >= FP_MAX_TEXT || (size_t)pl > len ||
        memcmp(prompt + len - (size_t)pl, pc, (size_t)pl) != 0)
        return n;
    return n - 1;
}

/* Can token t come next while healing? Its piece must go on spelling the
 * held-back text (or finish it and go on). */
static bool heal_fits(const fp_session *s, int32_t t) {
    const fp_model *m = s->engine->model;
    if (m->tok_flags[t] & (FP_TOK_CONTROL | FP_TOK_EOG)) return false;
    int32_t n, r = s->heal_len - s->heal_done;
    const char *pc = fpi_piece(m, t, &n);
    if (n <= 0) return false;
    if (memcmp(pc, s->heal + s->heal_done, (size_t)(n < r ? n : r)) != 0) return false;
    /* what it adds beyond the held-back text must keep the text valid UTF-8
     * (a byte-level piece can spell the end of one character and the start
     * of nothing: "\xb9\xbe" after "\xe5\xa5") */
    return n <= r || fpi_utf8_continues("", 0, pc + r, (size_t)(n - r));
}

int32_t fpi_heal_end(const fp_session *s) {
    int32_t p = fpi_n_prompt(s), done = 0;
    const fp_model *m = s->engine->model;
    while (done < s->heal_len && p < s->n_path) {
        int32_t n;
        fpi_piece(m, s->path_tok[p++], &n);
        done += n;
    }
    return p;
}

/* The most probable token that goes on healing (one draw when sampling). */
static int32_t heal_pick(fp_session *s) {
    int32_t best = -1;
    float bp = -1.0f;
    for (int32_t i = 0; i < s->dist.n; i++) {
        int32_t t = s->dist.items[i].token;
        if (s->dist.items[i].p > bp && heal_fits(s, t)) { best = t; bp = s->dist.items[i].p; }
    }
    return best;
}

/* ---------------------------------------------------------------- limits */

/* Positions to keep free beyond the text: a word plus its preview. */
int32_t fpi_reserve_tokens(const fp_session *s) { return s->st.max_word_tokens + s->st.lookahead + 1; }

/* KV cells a fork's branches may take on top of the trunk (cells, unlike
 * positions, are shared by all sequences). */
int32_t fpi_branch_cells(const fp_session *s) { return fp_settings_branch_cells(&s->st); }

int32_t fpi_room(const fp_session *s, int32_t path_len) {
    /* endless: the window slides (tree.c), only max_tokens ends the text */
    int32_t room = INT32_MAX / 4;
    if (!s->engine->can_shift) {
        room = s->engine->n_pos_max - fpi_reserve_tokens(s) - path_len;
        int32_t cells = (int32_t)s->engine->n_ctx - fpi_branch_cells(s) - path_len;
        if (cells < room) room = cells;
    }
    if (s->st.max_tokens > 0) {
        int32_t left = s->st.max_tokens - (path_len - fpi_n_prompt(s));
        if (left < room) room = left;
    }
    return room > 0 ? room : 0;
}

/* Slides the window until the trunk has room for the next token and a fork's
 * branches (tree.c). O(1) per slide: nothing is decoded. */
static fp_status make_room(fp_session *s, fp_error *err) {
    while (s->engine->can_shift && s->n_past - s->n_shift >= fpi_window(s)) {
        fp_status st = fpi_window_slide(s, err);
        if (st != FP_OK) return st;
    }
    return FP_OK;
}

/* The reason the text ends here, or NULL while it may go on. */
static const char *limit_reached(const fp_session *s) {
    if (fpi_room(s, s->n_path) > 0) return NULL;
    if (s->st.max_tokens > 0 && fpi_n_generated(s) >= s->st.max_tokens) return "max_tokens";
    return "context";
}

/* -------------------------------------------------------------- forks */

void fpi_session_end(fp_session *s, const char *why) {
    fpi_cloud_drop_live(s);
    s->state = FP_STATE_ENDED;
    s->end_reason = why;
    s->open_fork = -1;
    s->n_plan = 0;
}

fp_status fpi_fork_fit(fp_fork_rec *f, int32_t k, fp_error *err) {
    if (k <= f->cap) return FP_OK;
    fp_candidate *b = realloc(f->base, sizeof *b * (size_t)k);
    if (b) f->base = b;
    fp_candidate *sh = b ? realloc(f->shown, sizeof *sh * (size_t)k) : NULL;
    if (sh) f->shown = sh;
    if (!b || !sh) return fpi_fail(err, FP_ERR_NOMEM, "out of memory");
    f->cap = k;
    f->pub.candidates = f->shown;
    return FP_OK;
}

void fpi_fork_show_base(fp_fork_rec *f) {
    memcpy(f->shown, f->base, sizeof(fp_candidate) * (size_t)f->n_base);
    f->n_shown = f->n_base;
    f->shown_other = f->base_other;
    f->pub.typed_prefix[0] = 0;
}

void fpi_fork_show(fp_session *s, fp_fork_rec *f) {
    f->pub.candidates = f->shown;
    f->pub.n_candidates = f->n_shown;
    f->pub.other = f->shown_other;
    f->pub.choice = FP_CHOICE_NONE;
    f->pub.choice_index = -1;
    f->pub.choice_text[0] = 0;
    f->pub.ms_to_choose = 0;
    f->shown_at_ms = fpi_now_ms();
    s->state = FP_STATE_AT_FORK;
    s->open_fork = f->pub.id;
    s->end_reason = NULL;
}

/* Reorders c[0..n) (and the live branches with it) by descending key,
 * stably: new slot i takes old slot perm[i]. n <= 64. */
static void reorder(fp_session *s, fp_candidate *c, int32_t n, const float *key) {
    int32_t perm[64];
    for (int32_t i = 0; i < n; i++) perm[i] = i;
    for (int32_t i = 1; i < n; i++) { /* insertion sort: stable */
        int32_t v = perm[i], j = i;
        while (j > 0 && key[perm[j - 1]] < key[v]) { perm[j] = perm[j - 1]; j--; }
        perm[j] = v;
    }
    fp_candidate tmp[64];
    memcpy(tmp, c, sizeof *c * (size_t)n);
    for (int32_t i = 0; i < n; i++) c[i] = tmp[perm[i]];
    fpi_cloud_permute(s, perm, n);
}

/* Orders the shown cloud by the person's predicted choice (pref), keeping
 * the live branches in step; without preferences pref = prob. The
 * prediction sees the candidates in probability order (their rank is one of
 * its features), so applying it again, or to a restored cloud already in
 * the person's order, gives the same preferences. */
static void apply_prefs(fp_session *s, const fp_fork_rec *f, fp_candidate *c, int32_t n) {
    if (!s->prefs) {
        for (int32_t i = 0; i < n; i++) c[i].pref = c[i].prob;
        return;
    }
    if (n < 1) return;
    float key[64];
    for (int32_t i = 0; i < n; i++) key[i] = c[i].prob;
    reorder(s, c, n, key);
    fp_fork view = f->pub;
    view.candidates = c;
    view.n_candidates = n;
    fp_prefs_predict(s->prefs, s->text, (size_t)f->pub.text_offset, &view, key);
    for (int32_t i = 0; i < n; i++) c[i].pref = key[i];
    reorder(s, c, n, key);
}

/* Shows the open fork in the person's order. Every path that leaves a fork
 * open, or changes what it shows, ends here (settle adds auto-resolution). */
void fpi_fork_present(fp_session *s) {
    if (s->state != FP_STATE_AT_FORK || s->open_fork < 0) return;
    fp_fork_rec *f = &s->forks[s->open_fork];
    apply_prefs(s, f, f->shown, f->n_shown);
    if (!f->pub.typed_prefix[0]) {
        memcpy(f->base, f->shown, sizeof(fp_candidate) * (size_t)f->n_shown);
        f->n_base = f->n_shown;
        f->base_other = f->shown_other;
    }
    f->pub.candidates = f->shown;
    f->pub.n_candidates = f->n_shown;
    f->pub.other = f->shown_other;
}

/* Creates a fork at the end of the leaf and computes its cloud (in
 * probability order: fpi_fork_present orders it for the person). */
fp_status fpi_open_fork(fp_session *s, fp_reason reason, fp_uncertainty u, fp_error *err) {
    if (!fpi_grow((void **)&s->forks, &s->cap_forks, s->n_forks + 1, sizeof *s->forks))
        return fpi_fail(err, FP_ERR_NOMEM, "out of memory");
    fp_fork_rec *f = &s->forks[s->n_forks];
    memset(f, 0, sizeof *f);
    f->pub.id = s->n_forks;
    f->pub.position = s->n_path;
    f->pub.text_offset = (int32_t)s->text_len;
    f->pub.reason = reason;
    f->pub.unc = u;
    f->node = s->leaf;
    size_t V = (size_t)s->n_vocab;
    f->logits = malloc(sizeof(float) * V);
    f->base = malloc(sizeof(fp_candidate) * (size_t)s->st.k);
    f->shown = malloc(sizeof(fp_candidate) * (size_t)s->st.k);
    f->cap = s->st.k;
    if (!f->logits || !f->base || !f->shown) {
        free(f->logits); free(f->base); free(f->shown);
        return fpi_fail(err, FP_ERR_NOMEM, "out of memory");
    }
    memcpy(f->logits, s->cur_logits, sizeof(float) * V);
    fp_status st = fpi_cloud_compute(s, f->logits, "", f->base, &f->n_base, &f->base_other, err);
    if (st != FP_OK) { free(f->logits); free(f->base); free(f->shown); return st; }
    fpi_fork_show_base(f);
    s->live.fork_id = f->pub.id;
    s->nodes[s->leaf].fork_id = f->pub.id;
    s->n_forks++;
    s->n_plan = 0;
    fpi_fork_show(s, f);
    return FP_OK;
}

/* Appends a token to the leaf node and the path, and to the sampler history. */
fp_status fpi_append_token(fp_session *s, int32_t tok, const fp_position *rec) {
    if (!fpi_node_push(s, s->leaf, tok, rec)) return FP_ERR_NOMEM;
    fp_status st = fpi_path_push(s, tok, s->leaf);
    if (st != FP_OK) return st;
    llama_sampler_accept(s->chain, tok);
    return FP_OK;
}

/* -------------------------------------------------- the generation loop */

/* Continues automatically until a fork opens or the text ends. */
static fp_status run_until_fork(fp_session *s, fp_error *err) {
    const fp_model *m = s->engine->model;
    for (;;) {
        const char *end = limit_reached(s);
        if (end) { fpi_session_end(s, end); return FP_OK; }
        fp_status rs = make_room(s, err);
        if (rs != FP_OK) return rs;
        fpi_dist_compute(&s->dist, s->cur_logits, s->n_vocab, s->chain, 2);
        fp_uncertainty u = fpi_dist_uncertainty(&s->dist);
        fp_reason why = decide_position(s, u);
        if (s->heal_done < s->heal_len && why != FP_REASON_CONFIDENT) why = FP_REASON_MID_WORD; /* finishing the prompt's word */
        if (why == FP_REASON_UNCERTAIN) {
            s->word_end_pending = false;
            return fpi_open_fork(s, why, u, err);
        }
        int32_t tail = fpi_text_tail(s);
        /* after a word that ends in its mark, whatever comes next starts a new one */
        char last = s->text_len ? s->text[s->text_len - 1] : ' ';
        bool word_start = s->word_end_pending && !(last == ' ' || last == '\n' || last == '\t');
        int32_t tok = s->heal_done < s->heal_len ? heal_pick(s)
                    : fpi_pick_next(m, &s->dist, word_start, s->st.sample_auto ? &s->rng : NULL,
                                    s->text + s->text_len - tail, tail);
        if (s->plan_at < s->n_plan && !fpi_tok_fits(m, s->plan[s->plan_at], s->text + s->text_len - tail, tail))
            s->n_plan = s->plan_at;   /* a damaged plan (a restored file) would break a character: the model's own pick */
        if (s->plan_at < s->n_plan) {
            /* the promise of the preview the person saw: its token, even where
             * the trunk's own decode differs from the branch's in the last bit
             * (a preview's tokens always fit: the cloud picked them so) */
            if (tok != s->plan[s->plan_at]) s->engine->n_plan_held++;
            tok = s->plan[s->plan_at++];
        }
        s->word_end_pending = false;
        if (tok < 0 || (m->tok_flags[tok] & FP_TOK_EOG)) { fpi_session_end(s, "eog"); return FP_OK; }
        fp_position rec = { .token = tok, .unc = u, .reason = why, .fork_id = -1, .by = FP_BY_AUTO };
        fp_status st = fpi_append_token(s, tok, &rec);
        if (st != FP_OK) return fpi_fail(err, st, "out of memory");
        bool spelled = false;
        int32_t ctl = fpi_control_suffix(m, s->text, s->text_len, &spelled);
        if (spelled) {
            /* the model spelled a control text ("<|end_story|>"): its tokens
             * are taken back and the text ends, as at the end token */
            size_t start = s->text_len - (size_t)ctl;
            fp_node *leaf = &s->nodes[s->leaf];
            while (leaf->n > 0 && s->n_path > fpi_n_prompt(s) && s->path_node[s->n_path - 1] == s->leaf &&
                   (size_t)s->path_off[s->n_path - 1] >= start) {
                leaf->n--;
                s->n_path--;
            }
            if (fpi_path_rebuild(s, s->leaf) != FP_OK) return fpi_fail(err, FP_ERR_NOMEM, "out of memory");
            if (s->n_past > s->n_path) s->n_past = s->n_path;
            if (s->n_shift > 0 && s->n_path < s->n_keep + s->n_shift) fpi_trunk_reset(s); /* back into the gap */
            else fpi_seq_rm(s->engine, s->trunk_seq, fpi_kv_pos(s, s->n_past), -1);
            fpi_chain_resync(s);
            fpi_session_end(s, "eog");
            return FP_OK;
        }
        fpi_batch_clear(s->engine);
        fpi_batch_add(s->engine, tok, fpi_kv_pos(s, s->n_past), s->trunk_seq, true);
        if ((st = fpi_engine_decode(s->engine, err)) != FP_OK) return st;
        s->n_past++;
        memcpy(s->cur_logits, fpi_engine_logits(s->engine, -1), sizeof(float) * (size_t)s->n_vocab);
    }
}

/* -------------------------------------------------------- marks (undo log) */

void fpi_mark_take(const fp_session *s, fpi_mark *mk) {
    mk->n_nodes = s->n_nodes;
    mk->n_forks = s->n_forks;
    mk->n_events = s->n_events;
    mk->leaf = s->leaf;
    mk->open_fork = s->open_fork;
    mk->n_past = s->n_past;
    mk->n_keep = s->n_keep;
    mk->n_shift = s->n_shift;
    mk->state = s->state;
    mk->end_reason = s->end_reason;
    mk->word_end_pending = s->word_end_pending;
    mk->rng = s->rng;
    if (s->open_fork >= 0) mk->pub = s->forks[s->open_fork].pub;
}

void fpi_mark_restore(fp_session *s, const fpi_mark *mk) {
    fpi_prefetch_clear(s);
    fpi_cloud_drop_live(s);
    for (int32_t i = mk->n_forks; i < s->n_forks; i++) {
        free(s->forks[i].logits); free(s->forks[i].base); free(s->forks[i].shown);
    }
    s->n_forks = mk->n_forks;
    while (s->n_nodes > mk->n_nodes) fpi_node_drop_last(s);
    for (int32_t i = 0; i < s->n_nodes; i++)
        if (s->nodes[i].fork_id >= s->n_forks) s->nodes[i].fork_id = -1;
    for (int32_t i = mk->n_events; i < s->n_events; i++) free((void *)s->events[i].candidates);
    s->n_events = mk->n_events;
    if (mk->open_fork >= 0) s->forks[mk->open_fork].pub = mk->pub;
    int32_t kept = s->n_past < mk->n_past ? s->n_past : mk->n_past; /* cells the trunk surely still holds */
    bool rebuilt = fpi_path_rebuild(s, mk->leaf) == FP_OK;
    if (!rebuilt || s->n_keep != mk->n_keep || s->n_shift != mk->n_shift) {
        /* out of memory, or the window slid since the mark: laid out again,
         * the trunk is decoded again before its next use */
        fpi_trunk_reset(s);
    } else {
        fpi_seq_rm(s->engine, s->trunk_seq, fpi_kv_pos(s, kept), -1);
        s->n_past = kept < s->n_path ? kept : s->n_path;
    }
    fpi_chain_resync(s);
    s->state = mk->state;
    s->end_reason = mk->end_reason;
    s->open_fork = mk->open_fork;
    s->word_end_pending = mk->word_end_pending;
    s->rng = mk->rng;
    s->n_plan = s->plan_at = 0;
    if (s->open_fork >= 0) memcpy(s->cur_logits, s->forks[s->open_fork].logits, sizeof(float) * (size_t)s->n_vocab);
}

/* ------------------------------------------------------------ decisions */

static fp_status need_fork(fp_session *s, fp_error *err) {
    fp_status st = fpi_session_ready(s, err);
    if (st != FP_OK) return st;
    if (s->state != FP_STATE_AT_FORK || s->open_fork < 0)
        return fpi_fail(err, FP_ERR_STATE, "there is no open fork (the text has ended)");
    s->last_use = ++s->engine->use_clock;
    return FP_OK;
}

/* The commit point of a decision: it is recorded on the fork and in the
 * event log, and (if a person made it) teaches their preferences. Only
 * called once everything the decision does has succeeded. */
static fp_status record_decision(fp_session *s, int32_t fork_id, fp_choice_kind kind, int32_t index,
                                 const char *text, fp_chooser by) {
    if (!fpi_grow((void **)&s->events, &s->cap_events, s->n_events + 1, sizeof *s->events)) return FP_ERR_NOMEM;
    fp_fork_rec *f = &s->forks[fork_id];
    fp_fork *ev = &s->events[s->n_events];
    *ev = f->pub;
    ev->choice = kind;
    ev->choice_index = index;
    fpi_utf8_copy(ev->choice_text, sizeof ev->choice_text, text ? text : "");
    ev->chooser = by;
    ev->ms_to_choose = fpi_now_ms() - f->shown_at_ms;
    ev->candidates = fpi_candidates_dup(f->shown, f->n_shown);
    if (!ev->candidates) return FP_ERR_NOMEM;
    s->n_events++;
    /* the stored fork remembers how it was decided */
    fp_fork keep = f->pub;
    f->pub = *ev;
    f->pub.candidates = keep.candidates;
    /* test-then-train: the person's decision teaches their preferences */
    if (s->prefs && by != FP_BY_AUTO) fp_prefs_learn(s->prefs, s->text, (size_t)f->pub.text_offset, ev);
    if (s->prefs && by == FP_BY_AUTO && !s->shadow) fpi_prefs_note_auto(s->prefs); /* a shadow's speculative picks are not decisions */
    return FP_OK;
}

/* What comes after the tokens of a decision. */
typedef enum then { THEN_RUN, THEN_FORK } then;

/* The work of a decision, before its commit point: the tokens go on a new
 * node at the open fork, their KV cells come from the candidate's live
 * branch where it holds them (cand >= 0) and are decoded otherwise, then
 * the text runs on to the next fork (THEN_RUN), or a fork opens right there
 * (THEN_FORK). n_word says how many tokens are the word (the rest is
 * accepted preview). On failure the caller restores its mark. */
static fp_status commit(fp_session *s, const int32_t *toks, int32_t n, int32_t n_word, int32_t cand,
                        fp_node_kind kind, fp_chooser by, then after, fp_error *err) {
    fp_status st = fpi_trunk_repair(s, err);
    if (st != FP_OK) return st;
    const int32_t fork_id = s->open_fork;
    int32_t node = fpi_node_new(s, kind, s->forks[fork_id].node, fork_id, s->n_path);
    if (node < 0) return fpi_fail(err, FP_ERR_NOMEM, "out of memory");
    fp_fork_rec *f = &s->forks[fork_id];
    s->leaf = node;
    s->open_fork = -1;
    const fp_model *m = s->engine->model;
    if (n > 0 && (m->tok_flags[toks[n - 1]] & FP_TOK_EOG)) n--; /* the end-of-text candidate adds no token */
    bool ends = n < 1 || (cand >= 0 && f->shown[cand].is_eog);
    for (int32_t i = 0; i < n; i++) {
        fp_position rec = { .token = toks[i], .unc = { -1, -1, -1 }, .reason = FP_REASON_IN_CHOICE, .fork_id = -1, .by = by };
        if (i == 0) { rec.unc = f->pub.unc; rec.reason = kind == FP_NODE_TYPED ? FP_REASON_TYPED : f->pub.reason; rec.fork_id = fork_id; }
        if ((st = fpi_append_token(s, toks[i], &rec)) != FP_OK) return fpi_fail(err, st, "out of memory");
    }
    if (ends) { fpi_session_end(s, "eog"); return FP_OK; }
    /* a word taken alone (or typed) ends there: the next token starts a new
     * word, as the candidate's preview assumed; and the preview is the plan */
    bool alone = n == n_word;
    s->word_end_pending = alone && (kind == FP_NODE_TYPED || (cand >= 0 && s->st.granularity != FP_GRAN_TOKEN));
    s->n_plan = s->plan_at = 0;
    if (alone && cand >= 0 && after == THEN_RUN) {
        s->n_plan = f->shown[cand].n_preview;
        memcpy(s->plan, f->shown[cand].preview_tokens, sizeof(int32_t) * (size_t)s->n_plan);
    }

    /* KV: take what the live branch already holds, decode only the rest */
    fp_engine *mem_e = s->engine;
    int32_t from_branch = 0;
    bool live = cand >= 0 && s->live.valid && s->live.fork_id == fork_id && s->live.seq[cand] >= 0;
    if (live) {
        int32_t n_prev = n - n_word;
        int32_t dec_prev = s->live.n_decoded_preview[cand];
        if (n_prev == 0) from_branch = n_word;           /* logits after the word are stored */
        else from_branch = n_word + (dec_prev < n_prev - 1 ? dec_prev : n_prev - 1);
        int32_t kv = fpi_kv_pos(s, s->n_past);
        fpi_seq_cp(mem_e, s->live.seq[cand], s->trunk_seq, kv, kv + from_branch);
        if (from_branch == n)
            memcpy(s->cur_logits, s->live.word_logits + (size_t)cand * (size_t)s->n_vocab, sizeof(float) * (size_t)s->n_vocab);
    }
    fpi_cloud_drop_live(s);
    int32_t base = s->n_past;
    s->n_past += from_branch;
    if (from_branch < n) {
        st = fpi_engine_decode_span(s->engine, s->trunk_seq, toks + from_branch, n - from_branch,
                                   fpi_kv_pos(s, base) + from_branch, true, err);
        if (st != FP_OK) return st;
        memcpy(s->cur_logits, fpi_engine_logits(s->engine, -1), sizeof(float) * (size_t)s->n_vocab);
    }
    s->n_past = s->n_path;
    if (after == THEN_RUN) return run_until_fork(s, err);
    /* THEN_FORK: the limits automatic continuation would meet end the text instead */
    const char *end = limit_reached(s);
    if (end) { fpi_session_end(s, end); return FP_OK; }
    if ((st = make_room(s, err)) != FP_OK) return st;
    s->word_end_pending = false;
    fpi_dist_compute(&s->dist, s->cur_logits, s->n_vocab, s->chain, 2);
    return fpi_open_fork(s, FP_REASON_FORCED, fpi_dist_uncertainty(&s->dist), err);
}

/* Auto-resolution: the open fork's top preference reaches the threshold the
 * person's history supports. */
static bool auto_resolvable(const fp_session *s) {
    if (!s->prefs || s->shadow || s->state != FP_STATE_AT_FORK) return false;
    const fp_fork_rec *f = &s->forks[s->open_fork];
    return f->n_shown > 0 && f->shown[0].pref >= fp_prefs_auto_threshold(s->prefs);
}

/* The end of every decision and of a new session: the open fork is shown in
 * the person's order and, while their preferences are sure enough, decided
 * for them (they can undo). A shadow (prefetch.c) leaves its fork as
 * computed: the session that adopts it settles it, with the preferences as
 * they stand then, so a prefetched and a direct choice end the same. An
 * automatic decision that fails leaves the fork open for the person. */
static fp_status settle(fp_session *s) {
    if (s->shadow) return FP_OK;
    for (;;) {
        fpi_fork_present(s);
        if (!auto_resolvable(s)) return FP_OK;
        fp_fork_rec *f = &s->forks[s->open_fork];
        const fp_candidate c = f->shown[0];
        fpi_mark mk;
        fpi_mark_take(s, &mk);
        fp_status st = commit(s, c.tokens, c.is_eog ? 0 : c.n_tokens, c.n_tokens, 0, FP_NODE_CHOICE, FP_BY_AUTO, THEN_RUN, NULL);
        if (st == FP_OK) st = record_decision(s, mk.open_fork, FP_CHOICE_INDEX, 0, c.text, FP_BY_AUTO);
        if (st != FP_OK) { fpi_mark_restore(s, &mk); fpi_fork_present(s); return FP_OK; }
    }
}

/* Memory per fork stays bounded: a fork keeps its logits (n_vocab floats:
 * 256 KB at 65K tokens, 600 KB at 152K) only while it is open or among the
 * FPI_LOGITS_KEPT newest; the rest give them back, and reopening one decodes
 * them again (navigate.c, as for a restored fork). Its candidates and
 * previews stay, so it shows exactly what it showed. Run after a decision
 * has fully succeeded, never inside one (a mark's open fork keeps its
 * logits). O(forks). */
#define FPI_LOGITS_KEPT 16
static void bound_fork_memory(fp_session *s) {
    int32_t kept = 0;
    for (int32_t i = s->n_forks - 1; i >= 0; i--) {
        fp_fork_rec *f = &s->forks[i];
        if (!f->logits || i == s->open_fork) continue;
        if (kept < FPI_LOGITS_KEPT) { kept++; continue; }
        free(f->logits);
        f->logits = NULL;
    }
}

/* Counts the person's decision just recorded (the newest event) into their
 * entry habits (adapt.c): letters typed before it or text of their own,
 * pointing into a preview (THEN_FORK), and the share of the candidate's
 * preview taken (n - n_word of its n_preview tokens). O(1). */
static void note_habits(fp_session *s, int32_t cand, int32_t n, int32_t n_word, bool pointed) {
    const fp_fork *ev = &s->events[s->n_events - 1];
    const bool typed = ev->choice == FP_CHOICE_TYPED || ev->typed_prefix[0] != 0;
    float depth = -1.0f;
    if (!typed && cand >= 0 && cand < ev->n_candidates && ev->candidates[cand].n_preview > 0 && !ev->candidates[cand].is_eog)
        depth = (float)(n - n_word) / (float)ev->candidates[cand].n_preview;
    fpi_habits_decision(fpi_prefs_habits(s->prefs), typed, pointed, depth);
}

/* One decision, whole or not at all. pf >= 0 adopts that prefetched outcome
 * instead of computing it. */
static fp_status decide(fp_session *s, const int32_t *toks, int32_t n, int32_t n_word, int32_t cand, fp_node_kind kind,
                        fp_choice_kind ckind, const char *text, fp_chooser by, then after, int32_t pf, fp_error *err) {
    fpi_mark mk;
    fpi_mark_take(s, &mk);
    fp_status st;
    if (pf >= 0) st = fpi_prefetch_adopt(s, pf, by, err);
    else {
        fpi_prefetch_clear(s);
        st = commit(s, toks, n, n_word, cand, kind, by, after, err);
    }
    if (st == FP_OK) {
        st = record_decision(s, mk.open_fork, ckind, cand, text, by);
        if (st != FP_OK) fpi_fail(err, st, "out of memory");
    }
    if (st == FP_OK && s->prefs && by != FP_BY_AUTO && !s->shadow) note_habits(s, cand, n, n_word, after == THEN_FORK);
    if (st != FP_OK) { fpi_mark_restore(s, &mk); return st; }
    if (after == THEN_FORK) fpi_fork_present(s); /* the person pointed here: theirs to decide */
    else st = settle(s);
    if (!s->shadow) bound_fork_memory(s);
    return st;
}

/* The open fork and its shown candidate `index`, checked. */
static fp_status open_candidate(fp_session *s, int32_t index, fp_fork_rec **fork, fp_candidate **cand, fp_error *err) {
    fp_status st = need_fork(s, err);
    if (st != FP_OK) return st;
    fp_fork_rec *f = &s->forks[s->open_fork];
    if (index < 0 || index >= f->n_shown)
        return fpi_fail(err, FP_ERR_ARG, "choice %d is out of range (the fork has %d candidates)", index, f->n_shown);
    *fork = f;
    *cand = &f->shown[index];
    return FP_OK;
}

/* The text a candidate with its first n_preview preview tokens spells,
 * shown whole (cut to complete characters). Returns whether it already was
 * whole: it ends on a complete character and not in the start of a control
 * text, so a fork may stand right after it. */
static bool taken_text(const fp_session *s, const fp_candidate *c, int32_t n_preview, char *out, size_t cap) {
    size_t tl = (size_t)snprintf(out, cap, "%s", c->text);
    if (tl >= cap) tl = cap - 1;
    for (int32_t i = 0; i < n_preview && tl < cap - 1; i++) {
        int32_t pl;
        const char *pc = fpi_piece(s->engine->model, c->preview_tokens[i], &pl);
        size_t take = (size_t)pl < cap - 1 - tl ? (size_t)pl : cap - 1 - tl;
        memcpy(out + tl, pc, take);
        tl += take;
    }
    out[tl] = 0;
    size_t whole = fp_utf8_complete_prefix(out, tl);
    bool ok = whole == tl && fpi_control_suffix(s->engine->model, out, tl, NULL) == 0;
    out[whole] = 0;
    return ok;
}

fp_status fp_session_choose(fp_session *s, int32_t index, bool with_preview, fp_chooser by, fp_error *err) {
    fp_fork_rec *f = NULL;
    fp_candidate *c = NULL;
    fp_status st = open_candidate(s, index, &f, &c, err);
    if (st != FP_OK) return st;
    bool phrase = with_preview || s->st.granularity == FP_GRAN_PHRASE;
    int32_t toks[FP_MAX_PATH + FP_MAX_PREVIEW];
    int32_t n = c->n_tokens, np = phrase ? c->n_preview : 0;
    memcpy(toks, c->tokens, sizeof(int32_t) * (size_t)n);
    memcpy(toks + n, c->preview_tokens, sizeof(int32_t) * (size_t)np);
    char text[FP_MAX_TEXT * 2];
    taken_text(s, c, np, text, sizeof text);
    fp_choice_kind kind = np > 0 ? FP_CHOICE_INDEX_PREVIEW : FP_CHOICE_INDEX;
    st = decide(s, toks, n + np, n, index, FP_NODE_CHOICE, kind, text, by, THEN_RUN,
                fpi_prefetch_find(s, index, phrase), err);
    fpi_check(s);
    return st;
}

fp_status fp_session_choose_until(fp_session *s, int32_t index, int32_t n_preview, fp_chooser by, fp_error *err) {
    fp_fork_rec *f = NULL;
    fp_candidate *c = NULL;
    fp_status st = open_candidate(s, index, &f, &c, err);
    if (st != FP_OK) return st;
    if (c->is_eog) return fpi_fail(err, FP_ERR_ARG, "the end of the text has no preview to point into");
    if (n_preview < 0 || n_preview > c->n_preview)
        return fpi_fail(err, FP_ERR_ARG, "%d preview tokens asked for; candidate %d has %d", n_preview, index, c->n_preview);
    int32_t toks[FP_MAX_PATH + FP_MAX_PREVIEW];
    memcpy(toks, c->tokens, sizeof(int32_t) * (size_t)c->n_tokens);
    memcpy(toks + c->n_tokens, c->preview_tokens, sizeof(int32_t) * (size_t)n_preview);
    char text[FP_MAX_TEXT * 2];
    /* the fork opens where the taken text ends: on a whole character, not in
     * the start of a control text (a fork stands where the shown text ends) */
    if (!taken_text(s, c, n_preview, text, sizeof text))
        return fpi_fail(err, FP_ERR_ARG, "%d preview tokens of candidate %d end inside a character: no fork can stand there",
                        n_preview, index);
    fp_choice_kind kind = n_preview > 0 ? FP_CHOICE_INDEX_PREVIEW : FP_CHOICE_INDEX;
    st = decide(s, toks, c->n_tokens + n_preview, c->n_tokens, index, FP_NODE_CHOICE, kind, text, by, THEN_FORK, -1, err);
    fpi_check(s);
    return st;
}

fp_status fp_session_choose_words(fp_session *s, int32_t index, int32_t n_words, fp_chooser by, fp_error *err) {
    fp_fork_rec *f = NULL;
    fp_candidate *c = NULL;
    fp_status st = open_candidate(s, index, &f, &c, err);
    if (st != FP_OK) return st;
    if (c->is_eog) return fpi_fail(err, FP_ERR_ARG, "the end of the text has no preview to point into");
    if (n_words < 0 || n_words > c->n_preview_words)
        return fpi_fail(err, FP_ERR_ARG, "preview words out of range: %d asked for, candidate %d has %d (0-%d)", n_words,
                       index + 1, c->n_preview_words, c->n_preview_words);
    return fp_session_choose_until(s, index, n_words < c->n_preview_words ? c->preview_word_tok[n_words] : c->n_preview,
                                   by, err);
}

fp_status fp_session_continue(fp_session *s, fp_chooser by, fp_error *err) {
    fp_status st = need_fork(s, err);
    if (st != FP_OK) return st;
    fp_fork_rec *f = &s->forks[s->open_fork];
    if (f->n_shown == 0) {
        /* a narrowed cloud can be empty: the model's own next token then */
        fpi_dist_compute(&s->dist, f->logits, s->n_vocab, s->chain, 2);
        uint64_t rng0 = s->rng;
        int32_t t = fpi_pick_next(s->engine->model, &s->dist, false, s->st.sample_auto ? &s->rng : NULL, "", 0);
        if (t < 0) { s->rng = rng0; return fpi_fail(err, FP_ERR_STATE, "the model has no token to continue with"); }
        char text[FP_MAX_TEXT];
        int32_t n;
        const char *pc = fpi_piece(s->engine->model, t, &n);
        snprintf(text, sizeof text, "%.*s", n, pc);
        st = decide(s, &t, 1, 1, -1, FP_NODE_AUTO, FP_CHOICE_AUTO, text, by, THEN_RUN, -1, err);
        if (st != FP_OK) s->rng = rng0;
    } else {
        fp_candidate *c = &f->shown[0];
        st = decide(s, c->tokens, c->is_eog ? 0 : c->n_tokens, c->n_tokens, 0, FP_NODE_AUTO, FP_CHOICE_AUTO, c->text,
                    by, THEN_RUN, -1, err);
    }
    fpi_check(s);
    return st;
}

fp_status fp_session_type_prefix(fp_session *s, const char *prefix, fp_error *err) {
    fp_status st = need_fork(s, err);
    if (st != FP_OK) return st;
    if (!prefix) return fpi_fail(err, FP_ERR_ARG, "no prefix");
    size_t len = strlen(prefix);
    if (len >= FP_MAX_TEXT) return fpi_fail(err, FP_ERR_ARG, "the prefix is longer than %d bytes", FP_MAX_TEXT - 1);
    if (!fp_utf8_valid(prefix, len)) return fpi_fail(err, FP_ERR_UTF8, "the prefix is not valid UTF-8");
    fpi_prefetch_clear(s);
    fp_fork_rec *f = &s->forks[s->open_fork];
    /* the prefix is matched against the word without its leading space */
    while (*prefix == ' ') prefix++;
    if (!*prefix) {
        fpi_cloud_drop_live(s); /* the base cloud's branches are gone: committing decodes */
        fpi_fork_show_base(f);
    } else {
        /* computed aside: a failure leaves the cloud as it was */
        fp_candidate tmp[64];
        int32_t n_tmp = 0;
        float other = 0;
        if ((st = fpi_trunk_repair(s, err)) != FP_OK) return st;
        if ((st = fpi_cloud_compute(s, f->logits, prefix, tmp, &n_tmp, &other, err)) != FP_OK) {
            fpi_check(s);
            return st;
        }
        if ((st = fpi_fork_fit(f, s->st.k, err)) != FP_OK) { fpi_cloud_drop_live(s); return st; }
        memcpy(f->shown, tmp, sizeof(fp_candidate) * (size_t)n_tmp);
        f->n_shown = n_tmp;
        f->shown_other = other;
        snprintf(f->pub.typed_prefix, sizeof f->pub.typed_prefix, "%s", prefix);
        s->live.fork_id = f->pub.id;
    }
    fpi_fork_present(s);
    fpi_check(s);
    return FP_OK;
}

/* Is every token of toks[0..n) one the grammar allows after the path? */
static bool grammar_allows(const fp_session *s, const int32_t *toks, int32_t n) {
    if (!s->grammar) return true;
    struct llama_sampler *g = llama_sampler_clone(llama_sampler_chain_get(s->chain, 0));
    if (!g) return false;
    bool ok = true;
    for (int32_t i = 0; i < n && ok; i++) {
        llama_token_data td = { toks[i], 0.0f, 0.0f };
        llama_token_data_array a = { &td, 1, -1, false };
        llama_sampler_apply(g, &a);
        ok = isfinite(td.logit);
        if (ok) llama_sampler_accept(g, toks[i]); /* accepting a forbidden token would abort llama.cpp */
    }
    llama_sampler_free(g);
    return ok;
}

/* Tokenizes typed text so that its pieces spell exactly `want`: SentencePiece
 * adds its own leading space, byte-level BPE does not, so both spellings are tried. */
static int32_t tokenize_exact(const fp_model *m, const char *want, int32_t *toks, int32_t cap) {
    const char *variants[2] = { want, want[0] == ' ' ? want + 1 : NULL };
    int32_t best = -1;
    for (int v = 0; v < 2 && variants[v]; v++) {
        int32_t n = fp_tokenize(m, variants[v], strlen(variants[v]), toks, cap, false);
        if (n <= 0 || n > cap) continue;
        char buf[FP_MAX_TEXT * 2];
        int32_t len = 0;
        bool fits = true;
        for (int32_t i = 0; i < n && fits; i++) {
            int32_t pl;
            const char *pc = fpi_piece(m, toks[i], &pl);
            if (len + pl >= (int32_t)sizeof buf) fits = false;
            else { memcpy(buf + len, pc, (size_t)pl); len += pl; }
        }
        if (fits && (size_t)len == strlen(want) && memcmp(buf, want, (size_t)len) == 0) return n;
        if (best < 0) best = v;
    }
    /* the tokenizer cannot spell it (SentencePiece insists on a leading space
     * before ","): spell it piece by piece, longest piece first */
    int32_t n = 0;
    size_t len = strlen(want);
    for (size_t at = 0; at < len && n < cap; ) {
        int32_t best_t = -1, best_n = 0;
        for (int32_t t = 0; t < m->n_vocab; t++) {
            int32_t pl;
            const char *pc = fpi_piece(m, t, &pl);
            if (pl > best_n && (size_t)pl <= len - at && !(m->tok_flags[t] & FP_TOK_CONTROL) && memcmp(pc, want + at, (size_t)pl) == 0) {
                best_t = t;
                best_n = pl;
            }
        }
        if (best_t < 0) break;
        toks[n++] = best_t;
        at += (size_t)best_n;
        if (at == len) return n;
    }
    if (best < 0) return -1;
    return fp_tokenize(m, variants[best], strlen(variants[best]), toks, cap, false);
}

fp_status fp_session_type_commit(fp_session *s, const char *text, fp_chooser by, fp_error *err) {
    fp_status st = need_fork(s, err);
    if (st != FP_OK) return st;
    if (!text) return fpi_fail(err, FP_ERR_ARG, "no text");
    size_t len = strlen(text);
    if (len == 0) return fpi_fail(err, FP_ERR_EMPTY, "the typed text is empty");
    if (len >= FP_MAX_TEXT - 1) return fpi_fail(err, FP_ERR_ARG, "the typed text is longer than %d bytes", FP_MAX_TEXT - 2);
    if (!fp_utf8_valid(text, len)) return fpi_fail(err, FP_ERR_UTF8, "the typed text is not valid UTF-8");
    /* a new word after a word gets its space, as the model's own words carry one */
    char want[FP_MAX_TEXT];
    unsigned char last = s->text_len ? (unsigned char)s->text[s->text_len - 1] : ' ';
    unsigned char first = (unsigned char)text[0];
    bool need_space = !(last == ' ' || last == '\n' || last == '\t') &&
                      (first >= 0x80 || (first >= '0' && first <= '9') || ((first | 0x20) >= 'a' && (first | 0x20) <= 'z'));
    snprintf(want, sizeof want, "%s%s", need_space ? " " : "", text);
    int32_t toks[FP_MAX_TEXT];
    int32_t n = tokenize_exact(s->engine->model, want, toks, FP_MAX_TEXT);
    if (n <= 0) return fpi_tokenize_fail(s->engine->model, "the typed text", want, strlen(want), false, err);
    if (!grammar_allows(s, toks, n)) return fpi_fail(err, FP_ERR_ARG, "the typed text does not fit the session's grammar");
    int32_t kv_len = s->n_path - s->n_shift; /* the window slides after it, not while the fork's branches share cells */
    if (kv_len + n + fpi_reserve_tokens(s) >= s->engine->n_pos_max || kv_len + n > (int32_t)s->engine->n_ctx)
        return fpi_fail(err, FP_ERR_CONTEXT, "the typed text does not fit the context");
    st = decide(s, toks, n, n, -1, FP_NODE_TYPED, FP_CHOICE_TYPED, want, by, THEN_RUN, -1, err);
    fpi_check(s);
    return st;
}

/* ------------------------------------------------------------ session */

/* The engine's view of a session: it reclaims idle branches and asks for a
 * re-decode through these, and knows nothing else of sessions. */
static void user_release(fpi_seq_user *u) { fpi_cloud_drop_live((fp_session *)u->ud); }
static bool user_drop_spec(fpi_seq_user *u) {
    fp_session *s = u->ud;
    if (s->n_prefetch == 0) return false;
    fpi_prefetch_clear(s);
    return true;
}
static void user_stale(fpi_seq_user *u) {
    fp_session *s = u->ud;
    fpi_prefetch_clear(s);
    fpi_cloud_drop_live(s);
    s->stale = true;
}
static fp_status user_refresh(fpi_seq_user *u, fp_error *err) {
    fp_status st = fpi_session_ready(u->ud, err);
    fpi_check(u->ud);
    return st;
}

fp_session *fpi_session_alloc(fp_engine *e, const fp_settings *st, fp_error *err) {
    fp_session *s = calloc(1, sizeof *s);
    if (!s) { fpi_fail(err, FP_ERR_NOMEM, "out of memory"); return NULL; }
    s->engine = e;
    s->st = *st;
    s->n_vocab = e->model->n_vocab;
    s->trunk_seq = -1;
    s->open_fork = -1;
    s->live.fork_id = -1;
    s->rng = st->seed ? (uint64_t)st->seed * 0x9E3779B97F4A7C15ULL : 0x2545F4914F6CDD1DULL;
    s->user = (fpi_seq_user){ .ud = s, .last_use = &s->last_use, .n_reclaimable = &s->n_scratch,
                              .release = user_release, .drop_spec = user_drop_spec, .stale = user_stale,
                              .refresh = user_refresh };
    s->scratch = malloc(sizeof(int32_t) * e->n_seq_max);
    s->cur_logits = malloc(sizeof(float) * (size_t)s->n_vocab);
    s->chain = fpi_chain_new(st, e->model, NULL, NULL);
    if (!s->scratch || !s->cur_logits || !s->chain || fpi_dist_init(&s->dist, s->n_vocab) != FP_OK) {
        fpi_fail(err, FP_ERR_NOMEM, "out of memory");
        fp_session_free(s);
        return NULL;
    }
    if (fpi_engine_attach(e, &s->user) != FP_OK) {
        fpi_fail(err, FP_ERR_NOMEM, "out of memory (the engine cannot track another session)");
        fp_session_free(s);
        return NULL;
    }
    s->trunk_seq = fpi_seq_alloc(e, &s->user);
    if (s->trunk_seq < 0) {
        fpi_fail(err, FP_ERR_CAPACITY, "the engine has no free sequence for another session (n_seq_max %u)", e->n_seq_max);
        fp_session_free(s);
        return NULL;
    }
    return s;
}

fp_status fpi_session_grammar(fp_session *s, const char *gbnf, fp_error *err) {
    if (!gbnf) return FP_OK;
    /* the grammar masks the whole vocabulary; a remote engine lists only its
     * top tokens, which the grammar may all forbid (the allowed ones are not
     * listed, so no candidate could be grown): refused, not half done */
    if (s->engine->remote)
        return fpi_fail(err, FP_ERR_ARG, "a grammar needs every token's probability, which the remote engine (%s) does not send: not available with --backend",
                        fp_engine_backend(s->engine));
    size_t gl = strlen(gbnf);
    if (!fp_utf8_valid(gbnf, gl) || !*gbnf) return fpi_fail(err, FP_ERR_ARG, "the grammar is empty or not valid UTF-8");
    /* llama.cpp's parser recurses once per group: a saved session or a
     * request must not be able to exhaust the stack with "((((..." */
    int32_t depth = 0, deepest = 0;
    for (size_t i = 0; i < gl; i++) {
        if (gbnf[i] == '"' || gbnf[i] == '[') { /* skip literals and character classes */
            char close = gbnf[i] == '"' ? '"' : ']';
            for (i++; i < gl && gbnf[i] != close; i++) if (gbnf[i] == '\\' && i + 1 < gl) i++;
            continue;
        }
        if (gbnf[i] == '(') { if (++depth > deepest) deepest = depth; }
        else if (gbnf[i] == ')') depth--;
    }
    if (gl > (1u << 20) || deepest > 64)
        return fpi_fail(err, FP_ERR_ARG, "the grammar is too large (over 1 MB, or groups nested deeper than 64)");
    struct llama_sampler *chain = fpi_chain_new(&s->st, s->engine->model, s->prefs ? fpi_prefs_bias(s->prefs) : NULL, gbnf);
    if (!chain) return fpi_fail(err, FP_ERR_ARG, "the grammar does not parse (GBNF, with a rule named root)");
    char *copy = strdup(gbnf);
    if (!copy) { llama_sampler_free(chain); return fpi_fail(err, FP_ERR_NOMEM, "out of memory"); }
    free(s->grammar);
    s->grammar = copy;
    llama_sampler_free(s->chain);
    s->chain = chain;
    return FP_OK;
}

fp_session *fp_session_new(fp_engine *e, const char *prompt, const fp_settings *settings, fp_error *err) {
    return fp_session_new_grammar(e, prompt, settings, NULL, err);
}

fp_session *fp_session_new_grammar(fp_engine *e, const char *prompt, const fp_settings *settings, const char *grammar,
                                   fp_error *err) {
    fp_settings st = settings ? *settings : fp_default_settings();
    if (!e || !prompt) { fpi_fail(err, FP_ERR_ARG, "no engine or prompt"); return NULL; }
    if (fp_settings_validate(&st, err) != FP_OK) return NULL;
    size_t len = strlen(prompt);
    if (!fp_utf8_valid(prompt, len)) { fpi_fail(err, FP_ERR_UTF8, "the prompt is not valid UTF-8"); return NULL; }
    bool blank = true;
    for (size_t i = 0; i < len; i++) if (!strchr(" \t\r\n", prompt[i])) blank = false;
    if (blank) { fpi_fail(err, FP_ERR_EMPTY, "the prompt is empty"); return NULL; }
    /* tokenize first: a prompt that cannot fit is rejected before anything is allocated */
    int32_t cap = (int32_t)(len < 1u << 20 ? len : 1u << 20) + 8;
    int32_t *toks = malloc(sizeof(int32_t) * (size_t)cap);
    if (!toks) { fpi_fail(err, FP_ERR_NOMEM, "out of memory"); return NULL; }
    int32_t n = fp_tokenize(e->model, prompt, len, toks, cap, true);
    int32_t limit = e->n_pos_max - (st.max_word_tokens + st.lookahead + 2);
    if (n < 0 || n > cap || n > limit) {
        free(toks);
        if (n < 0) fpi_tokenize_fail(e->model, "the prompt", prompt, len, false, err);
        else fpi_fail(err, FP_ERR_CONTEXT, "the prompt is %d tokens; the context allows %d (n_ctx %d minus room for a fork)",
                     n, limit, e->n_pos_max);
        return NULL;
    }
    fp_session *s = fpi_session_start(e, prompt, toks, n, true, grammar, &st, err);
    free(toks);
    return s;
}

/* The rest of fp_session_new, given the prompt's tokens: dialogue.c starts
 * turns from prompts whose tokens spell control tokens ("<|user|>"), which
 * fp_tokenize would spell as text, and whose ends are the template's, not a
 * person's, so there is nothing to heal. grammar: as fp_session_new_grammar
 * (NULL: none). toks stays the caller's. */
fp_session *fpi_session_start(fp_engine *e, const char *prompt, const int32_t *toks, int32_t n, bool heal,
                              const char *grammar, const fp_settings *settings, fp_error *err) {
    fp_settings st = *settings;
    size_t len = strlen(prompt);
    int32_t limit = e->n_pos_max - (st.max_word_tokens + st.lookahead + 2);
    if (n < 1 || n > limit) {
        fpi_fail(err, n < 1 ? FP_ERR_EMPTY : FP_ERR_CONTEXT, "the prompt is %d tokens; the context allows %d (n_ctx %d minus room for a fork)",
                 n, limit, e->n_pos_max);
        return NULL;
    }
    fp_session *s = fpi_session_alloc(e, &st, err);
    if (!s) return NULL;
    if (fpi_window(s) < 8) {
        fpi_fail(err, FP_ERR_CONTEXT, "the context (%u cells) leaves no room for the text: a fork's branches and previews take %d",
                 e->n_ctx, fpi_branch_cells(s));
        fp_session_free(s);
        return NULL;
    }
    if (fpi_session_grammar(s, grammar, err) != FP_OK) { fp_session_free(s); return NULL; }
    s->prompt = strdup(prompt);
    s->prompt_len = len;
    /* with a grammar the prompt is taken whole: the grammar constrains what comes after it */
    int32_t keep = heal && !grammar ? heal_keep(e->model, prompt, len, toks, n) : n;
    int32_t root = fpi_node_new(s, FP_NODE_PROMPT, -1, -1, 0);
    bool ok = s->prompt && root == 0;
    for (int32_t i = 0; ok && i < keep; i++) ok = fpi_node_push(s, root, toks[i], NULL);
    if (ok) fpi_heal_init(s, toks, n);
    int32_t first = ok ? fpi_node_new(s, FP_NODE_AUTO, root, -1, keep) : -1;
    if (!ok || first < 0 || fpi_path_rebuild(s, first) != FP_OK) {
        fpi_fail(err, FP_ERR_NOMEM, "out of memory");
        fp_session_free(s);
        return NULL;
    }
    s->last_use = ++e->use_clock;
    if (fpi_trunk_sync(s, NULL, 0, true, err) != FP_OK || (fpi_chain_resync(s), run_until_fork(s, err)) != FP_OK) {
        fp_session_free(s);
        return NULL;
    }
    settle(s);
    fpi_check(s);
    return s;
}

void fp_session_free(fp_session *s) {
    if (!s) return;
    fpi_prefetch_clear(s);
    if (s->engine) {
        fpi_cloud_drop_live(s);
        fpi_engine_detach(s->engine, &s->user); /* returns the trunk sequence too */
    }
    fpi_cloud_free(s);
    for (int32_t i = 0; i < s->n_nodes; i++) { free(s->nodes[i].tokens); free(s->nodes[i].pos); }
    for (int32_t i = 0; i < s->n_forks; i++) { free(s->forks[i].logits); free(s->forks[i].base); free(s->forks[i].shown); }
    for (int32_t i = 0; i < s->n_events; i++) free((void *)s->events[i].candidates);
    free(s->nodes); free(s->forks); free(s->events);
    free(s->path_tok); free(s->path_node); free(s->path_off);
    free(s->text); free(s->disp); free(s->prompt); free(s->grammar);
    free(s->scratch); free(s->cur_logits);
    if (s->chain) llama_sampler_free(s->chain);
    fpi_dist_free(&s->dist);
    free(s);
}

/* ------------------------------------------------------------ accessors */

fp_state fp_session_state(const fp_session *s) { return s->state; }
const fp_settings *fp_session_settings(const fp_session *s) { return &s->st; }
const char *fp_session_text(const fp_session *s) { return s->disp ? s->disp : ""; }
size_t fp_session_text_len(const fp_session *s) { return s->text_complete; }
size_t fp_session_prompt_len(const fp_session *s) { return s->prompt_len; }
int32_t fp_session_n_tokens(const fp_session *s) { return s->n_path; }
const int32_t *fp_session_tokens(const fp_session *s) { return s->path_tok; }
const char *fp_session_end_reason(const fp_session *s) { return s->state == FP_STATE_ENDED ? s->end_reason : NULL; }
const char *fp_session_grammar(const fp_session *s) { return s->grammar; }
const fp_fork *fp_session_fork(const fp_session *s) {
    return s->open_fork >= 0 ? &s->forks[s->open_fork].pub : NULL;
}
void fp_session_mark_shown(fp_session *s) {
    if (s->open_fork >= 0) s->forks[s->open_fork].shown_at_ms = fpi_now_ms();
}
int32_t fp_session_n_positions(const fp_session *s) { return fpi_n_generated(s); }
const fp_position *fp_session_position(const fp_session *s, int32_t i) {
    if (i < 0 || i >= fpi_n_generated(s)) return NULL;
    return fpi_path_pos((fp_session *)s, fpi_n_prompt(s) + i);
}
size_t fp_session_position_offset(const fp_session *s, int32_t i) {
    if (i < 0) return 0;
    if (i >= fpi_n_generated(s)) return s->text_len;
    return (size_t)s->path_off[fpi_n_prompt(s) + i];
}
int32_t fp_session_n_events(const fp_session *s) { return s->n_events; }
const fp_fork *fp_session_event(const fp_session *s, int32_t i) {
    return i >= 0 && i < s->n_events ? &s->events[i] : NULL;
}

/* ------------------------------------------- settings, preferences, adapters */

/* Computes the open fork's cloud again (settings or the model changed),
 * into a buffer aside: a failure leaves the shown cloud as it was. */
static fp_status recompute_open_fork(fp_session *s, fp_error *err) {
    fp_fork_rec *f = &s->forks[s->open_fork];
    fp_candidate tmp[64];
    int32_t n_tmp = 0;
    float other = 0;
    fp_status st = fpi_trunk_repair(s, err);
    if (st != FP_OK) return st;
    if ((st = fpi_cloud_compute(s, f->logits, "", tmp, &n_tmp, &other, err)) != FP_OK) return st;
    if ((st = fpi_fork_fit(f, s->st.k, err)) != FP_OK) { fpi_cloud_drop_live(s); return st; }
    memcpy(f->base, tmp, sizeof(fp_candidate) * (size_t)n_tmp);
    f->n_base = n_tmp;
    f->base_other = other;
    fpi_fork_show_base(f);
    s->live.fork_id = f->pub.id;
    fpi_fork_show(s, f);
    fpi_fork_present(s);
    return FP_OK;
}

fp_status fp_session_set_settings(fp_session *s, const fp_settings *settings, fp_error *err) {
    fp_status st = fp_settings_validate(settings, err);
    if (st != FP_OK) return st;
    if ((st = fpi_session_ready(s, err)) != FP_OK) return st;
    struct llama_sampler *chain = fpi_chain_new(settings, s->engine->model, s->prefs ? fpi_prefs_bias(s->prefs) : NULL, s->grammar);
    if (!chain) return fpi_fail(err, FP_ERR_NOMEM, "out of memory");
    fpi_prefetch_clear(s);
    fpi_cloud_drop_live(s);
    struct llama_sampler *old_chain = s->chain;
    fp_settings old = s->st;
    s->chain = chain;
    s->st = *settings;
    fpi_chain_resync(s);
    /* a fork's branches take another share of the context: the window is laid out again if it no longer fits */
    bool relaid = !fpi_window_fits(s);
    if (relaid && fpi_window(s) < 8) st = fpi_fail(err, FP_ERR_CONTEXT, "the context leaves no room for the text with these settings");
    else if (relaid) st = fpi_set_path(s, s->leaf, false, err);
    if ((relaid && st != FP_OK) || (s->state == FP_STATE_AT_FORK && (st = recompute_open_fork(s, err)) != FP_OK)) {
        /* the old settings stay, with the cloud they computed */
        s->chain = old_chain;
        s->st = old;
        llama_sampler_free(chain);
        fpi_chain_resync(s);
        if (relaid) fpi_trunk_reset(s); /* laid out for the old settings again, decoded before the next use */
        fpi_check(s);
        return st;
    }
    llama_sampler_free(old_chain);
    fpi_check(s);
    return FP_OK;
}

fp_status fp_session_set_prefs(fp_session *s, fp_prefs *p, fp_error *err) {
    if (p && fp_prefs_n_vocab(p) != s->n_vocab)
        return fpi_fail(err, FP_ERR_MODEL, "the preferences were learned on a model with %d tokens; this one has %d",
                       fp_prefs_n_vocab(p), s->n_vocab);
    struct llama_sampler *chain = fpi_chain_new(&s->st, s->engine->model, p ? fpi_prefs_bias(p) : NULL, s->grammar);
    if (!chain) return fpi_fail(err, FP_ERR_NOMEM, "out of memory");
    fpi_prefetch_clear(s);
    llama_sampler_free(s->chain);
    s->chain = chain;
    s->prefs = p;
    s->user.bias = p ? fpi_prefs_bias(p) : NULL;
    if (p) fpi_prefs_bind(p, fpi_tokvec(s->engine->model));
    fpi_chain_resync(s);
    fpi_fork_present(s); /* the open cloud, in the person's order */
    fpi_check(s);
    return FP_OK;
}

fp_status fpi_session_ready(fp_session *s, fp_error *err) {
    if (!s->stale) return FP_OK;
    /* the adapters changed: the whole path is decoded again, and the open
     * fork computed as the adapted model sees it now */
    fpi_seq_rm(s->engine, s->trunk_seq, -1, -1);
    s->n_past = 0;
    fp_status st = fpi_trunk_sync(s, NULL, 0, true, err);
    if (st != FP_OK) return st;
    if (s->state == FP_STATE_AT_FORK) {
        fp_fork_rec *f = &s->forks[s->open_fork];
        float *old = malloc(sizeof(float) * (size_t)s->n_vocab);
        if (!old) return fpi_fail(err, FP_ERR_NOMEM, "out of memory");
        memcpy(old, f->logits, sizeof(float) * (size_t)s->n_vocab);
        memcpy(f->logits, s->cur_logits, sizeof(float) * (size_t)s->n_vocab);
        if ((st = recompute_open_fork(s, err)) != FP_OK) {
            memcpy(f->logits, old, sizeof(float) * (size_t)s->n_vocab);
            free(old);
            return st;
        }
        free(old);
    }
    s->stale = false;
    return FP_OK;
}
