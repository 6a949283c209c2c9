/*
 * navigate.c — moving through the document tree: undo, going to any fork,
 * and forcing a fork where the model did not stop.
 *
 * Going back never destroys: every decided branch stays in the tree, and a
 * reopened fork shows exactly the candidates it first showed (stored, not
 * recomputed). Each call either succeeds or leaves the session where it
 * was: a decode that fails on the way (a full cache, a fault) puts the path
 * back, and the trunk then holds a prefix of it that fpi_trunk_repair
 * completes before the next decode.
 */
#include "core/internal.h"

#include <stdlib.h>
#include <string.h>

/* Reopens a stored fork: the path goes to its node, the candidates are the
 * ones first shown, the trunk holds exactly the tokens before it. */
static fp_status reopen(fp_session *s, fp_fork_rec *f, fp_error *err) {
    fpi_prefetch_clear(s);
    fpi_cloud_drop_live(s);
    int32_t old_leaf = s->leaf;
    /* a restored fork has no logits in memory (snapshots do not store them):
     * the trunk decodes its last token again and they are kept from now on */
    float *fresh = f->logits ? NULL : malloc(sizeof(float) * (size_t)s->n_vocab);
    if (!f->logits && !fresh) return fpi_fail(err, FP_ERR_NOMEM, "out of memory");
    fp_status st = fpi_set_path(s, f->node, fresh != NULL, err);
    if (st != FP_OK) {
        /* back where it was: the trunk keeps the common prefix it holds */
        /* the trunk may hold part of the other path, laid out for it: it is
         * laid out again for this one and decoded before its next use */
        fpi_path_rebuild(s, old_leaf);
        fpi_trunk_reset(s);
        fpi_chain_resync(s);
        free(fresh);
        return st;
    }
    if (fresh) {
        memcpy(fresh, s->cur_logits, sizeof(float) * (size_t)s->n_vocab);
        f->logits = fresh;
    }
    memcpy(s->cur_logits, f->logits, sizeof(float) * (size_t)s->n_vocab);
    s->n_plan = s->plan_at = 0;
    s->word_end_pending = false;
    fpi_fork_show_base(f);
    fpi_fork_show(s, f);
    return FP_OK;
}

fp_status fp_session_undo(fp_session *s, fp_error *err) {
    fp_status st = fpi_session_ready(s, err);
    if (st != FP_OK) return st;
    s->last_use = ++s->engine->use_clock;
    for (int32_t id = s->leaf; id >= 0; id = s->nodes[id].parent) {
        if (s->nodes[id].parent_fork < 0) continue;
        fp_fork_rec *f = &s->forks[s->nodes[id].parent_fork];
        bool was_auto = f->pub.chooser == FP_BY_AUTO && f->pub.choice == FP_CHOICE_INDEX;
        st = reopen(s, f, err);
        /* undoing an automatic decision tells the preferences they were too sure */
        if (st == FP_OK && s->prefs && was_auto) fp_prefs_note_undo(s->prefs);
        fpi_check(s);
        return st;
    }
    return fpi_fail(err, FP_ERR_STATE, "nothing to undo: no decision has been made on this path");
}

fp_status fp_session_goto_fork(fp_session *s, int32_t fork_id, fp_error *err) {
    if (fork_id < 0 || fork_id >= s->n_forks)
        return fpi_fail(err, FP_ERR_ARG, "fork %d does not exist (the session has %d)", fork_id, s->n_forks);
    fp_status st = fpi_session_ready(s, err);
    if (st != FP_OK) return st;
    s->last_use = ++s->engine->use_clock;
    st = reopen(s, &s->forks[fork_id], err);
    fpi_check(s);
    return st;
}

/* Puts back what a failed fork_at changed: the split of a node (and the
 * continuation it made an alternative of the new fork), then the mark. */
static void fork_at_rollback(fp_session *s, const fpi_mark *mk, int32_t split_y, int32_t split_z, int32_t after,
                             int32_t after_parent_fork) {
    if (after >= 0) s->nodes[after].parent_fork = after_parent_fork;
    if (split_z >= 0) fpi_node_unsplit(s, split_y, split_z);
    fpi_mark_restore(s, mk);
}

/* Pointing back into written text: a fork the person wanted there, which
 * the fork budget or thresholds withheld; counted in their habits (adapt.c). */
static void note_repair(fp_session *s) {
    if (s->prefs && !s->shadow) fpi_habits_repair(fpi_prefs_habits(s->prefs));
}

fp_status fp_session_fork_at(fp_session *s, size_t offset, fp_error *err) {
    fp_status st = fpi_session_ready(s, err);
    if (st != FP_OK) return st;
    s->last_use = ++s->engine->use_clock;
    if (offset > s->text_len) return fpi_fail(err, FP_ERR_ARG, "offset %zu is past the end of the text (%zu bytes)", offset, s->text_len);
    fpi_prefetch_clear(s);
    int32_t np = fpi_n_prompt(s);
    /* the generated token that starts at or before offset (rounded down) */
    int32_t p = np;
    for (int32_t i = np; i < s->n_path; i++) if ((size_t)s->path_off[i] <= offset) p = i;
    if (offset >= s->text_len) p = s->n_path;
    int32_t healed = fpi_heal_end(s); /* no fork inside the prompt's healed last word */
    if (p < healed) p = healed < s->n_path ? healed : s->n_path;
    if (p == s->n_path && s->state == FP_STATE_AT_FORK) return FP_OK; /* already open here */
    if (p == s->n_path && s->text_complete < s->text_len)
        return fpi_fail(err, FP_ERR_ARG, "the text ends inside a character: no fork can stand there");
    fpi_mark mk;
    fpi_mark_take(s, &mk);
    int32_t split_y = -1, split_z = -1, moved = -1, moved_parent_fork = -1;
    if (p < s->n_path) {
        int32_t y = s->path_node[p];
        fp_node *ny = &s->nodes[y];
        if (p == ny->start_pos && ny->parent_fork >= 0) { /* a fork already stands here */
            st = reopen(s, &s->forks[ny->parent_fork], err);
            if (st == FP_OK) note_repair(s);
            fpi_check(s);
            return st;
        }
        int32_t at;      /* the node the new fork ends */
        int32_t after;   /* the existing continuation */
        if (p == ny->start_pos) { at = ny->parent; after = y; }
        else {
            after = fpi_node_split(s, y, p);
            if (after < 0) return fpi_fail(err, FP_ERR_NOMEM, "out of memory");
            split_y = y;
            split_z = after;
            at = y;
        }
        if (s->nodes[at].fork_id >= 0) {
            st = reopen(s, &s->forks[s->nodes[at].fork_id], err);
            if (st == FP_OK) note_repair(s);
            fpi_check(s);
            return st;
        }
        fpi_cloud_drop_live(s);
        if ((st = fpi_set_path(s, at, true, err)) != FP_OK) {
            fork_at_rollback(s, &mk, split_y, split_z, moved, moved_parent_fork);
            fpi_check(s);
            return st;
        }
        moved = after;
        moved_parent_fork = s->nodes[after].parent_fork;
        s->nodes[after].parent_fork = s->n_forks; /* the old text is one alternative of the new fork */
    } else {
        /* an ended text: a fork after its last token, with fresh logits */
        fpi_cloud_drop_live(s);
        if ((st = fpi_set_path(s, s->leaf, true, err)) != FP_OK) {
            fork_at_rollback(s, &mk, split_y, split_z, moved, moved_parent_fork);
            fpi_check(s);
            return st;
        }
    }
    s->n_plan = s->plan_at = 0;
    s->word_end_pending = false;
    fpi_dist_compute(&s->dist, s->cur_logits, s->n_vocab, s->chain, 2);
    st = fpi_open_fork(s, FP_REASON_FORCED, fpi_dist_uncertainty(&s->dist), err);
    if (st != FP_OK) fork_at_rollback(s, &mk, split_y, split_z, moved, moved_parent_fork);
    else {
        fpi_fork_present(s);
        if (moved >= 0) note_repair(s);
    }
    fpi_check(s);
    return st;
}
