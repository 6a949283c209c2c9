/*
 * chats.c — chats: dialogues (fp_dialogue_*) kept in the store across
 * restarts, beside the stories of sessions.c.
 *
 * Why in parts, not fp_dialogue_save's one document: that document holds
 * every committed turn's session snapshot, and each snapshot holds the
 * whole conversation before it, so rewriting it after every decision would
 * cost O(turns x conversation) bytes per click. Here:
 *   - the story row in `sessions` (kind 'chat'): title, times, version, seq,
 *     the model; listing, deleting and the model check are the stories' own;
 *   - `chats`: the header (template and settings, written once), the number
 *     of committed messages, the open turn's role and its snapshot;
 *   - `chat_messages`: one row per committed message, written once when it is
 *     committed, deleted when an undo takes it back;
 *   - `chat_changes`: the open turn's changes since its snapshot
 *     (fp_session_save_changes), one per write, as stories keep theirs.
 * A write then costs what changed: a decision is one change row and its
 * decision row; a committed message is its row plus a new snapshot of the
 * next turn when one opens. The snapshot rule is the stories': a new one
 * when the turn changes or its changes would outgrow both the snapshot and
 * FP_STORE_SNAPSHOT_MIN.
 *
 * Which messages changed since the last write: messages only ever change at
 * the tail (fp_dialogue_undo takes the last one back, end_turn appends), so
 * the handle keeps each saved message's role and content and the hash of
 * the last one's document; the first that differs, and everything after,
 * is rewritten. The open turn's decisions are logged from its session:
 * events [logged, n) with the turn's role and index; a turn an undo reopens
 * had its events logged while it was open, so it starts with all of them
 * counted.
 *
 * Invariants: chats.n_messages is the number of chat_messages rows of the
 * chat (turn 0 .. n-1); chat_changes holds exactly the open turn's seqs
 * 1 .. open_seq; the handle's seq equals its sessions row's (a second
 * writer is noticed, as for stories).
 */
#include "store/store_int.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct saved_msg {
    char *role, *content;
    uint64_t hash;        /* of its fp_dialogue_message_save document */
} saved_msg;

struct fp_store_chat {
    char id[65];
    saved_msg *msgs;
    int32_t n_msgs, cap_msgs;
    int32_t open_turn;    /* the open turn's message index, -1 = none */
    fp_save_mark *mark;   /* what of the open turn is on disk; NULL: snapshot next */
    int32_t logged;       /* the open turn's events with their decision row */
    int64_t seq, open_seq;
    fp_story_stats stats;
};

/* FNV-1a: telling a message document apart from the one saved, not security. */
static uint64_t fnv(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void saved_clear(fp_store_chat *pc, int32_t from) {
    for (int32_t i = from; i < pc->n_msgs; i++) { free(pc->msgs[i].role); free(pc->msgs[i].content); }
    if (from < pc->n_msgs) pc->n_msgs = from;
}

void fp_store_chat_free(fp_store_chat *pc) {
    if (!pc) return;
    saved_clear(pc, 0);
    free(pc->msgs);
    fp_save_mark_free(pc->mark);
    free(pc);
}

void fp_store_chat_stats(const fp_store_chat *pc, fp_story_stats *out) { *out = pc->stats; }

/* The first message that differs from what the handle saved. */
static int32_t first_changed(const fp_store_chat *pc, const fp_dialogue *d) {
    int32_t n = fp_dialogue_n_messages(d), common = n < pc->n_msgs ? n : pc->n_msgs, k = 0;
    for (; k < common; k++) {
        fp_chat_message m = fp_dialogue_message(d, k);
        if (strcmp(m.role, pc->msgs[k].role) || strcmp(m.content, pc->msgs[k].content)) return k;
    }
    /* the last common message may have been taken back and committed again
     * with the same words (another tree, other events): its document says */
    if (k > 0) {
        char *doc = fp_dialogue_message_save(d, k - 1);
        if (!doc || fnv(doc) != pc->msgs[k - 1].hash) k--;
        free(doc);
    }
    return k;
}

/* A chat decision's conversation: {"messages": [0, n) as {role, content},
 * "turn_start": where the turn begins in its session's text} (the exports'
 * prompt, and the turn's text before each fork). */
static char *chat_json(const fp_dialogue *d, int32_t n, size_t turn_start) {
    cJSON *top = cJSON_CreateObject();
    cJSON *a = top ? cJSON_AddArrayToObject(top, "messages") : NULL;
    if (!a) { cJSON_Delete(top); return NULL; }
    cJSON_AddNumberToObject(top, "turn_start", (double)turn_start);
    for (int32_t i = 0; a && i < n; i++) {
        fp_chat_message m = fp_dialogue_message(d, i);
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToArray(a, o)) { cJSON_Delete(o); cJSON_Delete(top); return NULL; }
        cJSON_AddStringToObject(o, "role", m.role);
        cJSON_AddStringToObject(o, "content", m.content);
    }
    char *s = cJSON_PrintUnformatted(top);
    cJSON_Delete(top);
    return s;
}

/* What a write does, worked out before its transaction. */
typedef struct plan {
    int32_t from;          /* messages [from, n) are written, rows >= from deleted */
    char **docs;           /* their documents */
    int32_t n;
    fp_session *open;      /* the open turn, or NULL */
    const char *open_role;
    bool snapshot;         /* the open turn gets a new snapshot */
    char *doc;             /* that snapshot, or the change */
    int32_t logged;        /* the open turn's events already logged */
} plan;

static void plan_free(plan *p) {
    for (int32_t i = 0; p->docs && i < p->n - p->from; i++) free(p->docs[i]);
    free(p->docs);
    free(p->doc);
}

static fp_status make_plan(fp_store_chat *pc, fp_dialogue *d, plan *p, fp_error *err) {
    memset(p, 0, sizeof *p);
    p->n = fp_dialogue_n_messages(d);
    p->from = first_changed(pc, d);
    p->docs = calloc((size_t)(p->n - p->from + 1), sizeof *p->docs);
    if (!p->docs) return fp_error_set(err, FP_ERR_NOMEM, "out of memory");
    for (int32_t i = p->from; i < p->n; i++)
        if (!(p->docs[i - p->from] = fp_dialogue_message_save(d, i))) return fp_error_set(err, FP_ERR_NOMEM, "out of memory");
    p->open = fp_dialogue_session(d);
    p->open_role = fp_dialogue_turn_role(d);
    int32_t turn = p->open ? p->n : -1;
    bool same_turn = turn >= 0 && turn == pc->open_turn && p->from >= p->n && pc->mark;
    if (!p->open) return FP_OK;
    /* a turn an undo reopened (its message was saved) had its decisions logged while it was open */
    p->logged = same_turn ? pc->logged : turn < pc->n_msgs ? fp_session_n_events(p->open) : 0;
    if (p->logged > fp_session_n_events(p->open)) p->logged = fp_session_n_events(p->open);   /* undone */
    if (same_turn) {
        p->doc = fp_session_save_changes(p->open, pc->mark);
        if (!p->doc) return fp_error_set(err, FP_ERR_NOMEM, "out of memory");
        int64_t limit = pc->stats.snapshot_bytes > FP_STORE_SNAPSHOT_MIN ? pc->stats.snapshot_bytes : FP_STORE_SNAPSHOT_MIN;
        if (pc->stats.log_bytes + (int64_t)strlen(p->doc) <= limit) return FP_OK;
        free(p->doc);
        p->doc = NULL;
    }
    p->snapshot = true;
    if (!(p->doc = fp_session_save(p->open))) return fp_error_set(err, FP_ERR_NOMEM, "out of memory");
    return FP_OK;
}

/* The plan's statements, inside the caller's transaction. */
static fp_status run_plan(fp_store *st, fp_store_chat *pc, const fp_dialogue *d, const plan *p, uint64_t version,
                          const fp_decision_meta *meta, const fp_prefs *prefs, int64_t *bytes, fp_error *err) {
    bool ok = fpi_exec(st, "DELETE FROM chat_messages WHERE chat = ? AND turn >= ?", "ti", pc->id, (int64_t)p->from) >= 0;
    for (int32_t i = p->from; ok && i < p->n; i++) {
        ok = fpi_exec(st, "INSERT INTO chat_messages(chat, turn, message) VALUES(?,?,?)", "tit", pc->id, (int64_t)i,
                      p->docs[i - p->from]) == 1;
        *bytes += (int64_t)strlen(p->docs[i - p->from]);
    }
    if (ok && (p->snapshot || !p->open))
        ok = fpi_exec(st, "UPDATE chats SET n_messages = ?, open_role = ?, open_seq = 0, open_snapshot = ? WHERE id = ?", "ittt",
                      (int64_t)p->n, p->open_role, p->open ? p->doc : NULL, pc->id) == 1 &&
             fpi_exec(st, "DELETE FROM chat_changes WHERE chat = ?", "t", pc->id) >= 0;
    else if (ok)
        ok = fpi_exec(st, "INSERT INTO chat_changes(chat, seq, change) VALUES(?,?,?)", "tit", pc->id, pc->open_seq + 1, p->doc) == 1 &&
             fpi_exec(st, "UPDATE chats SET n_messages = ?, open_seq = ? WHERE id = ?", "iit", (int64_t)p->n, pc->open_seq + 1,
                      pc->id) == 1;
    if (!ok) return fp_error_set(err, FP_ERR_IO, "cannot store the chat: %s", st->msg);
    if (p->doc) *bytes += (int64_t)strlen(p->doc);
    int32_t n_ev = p->open ? fp_session_n_events(p->open) : 0;
    if (p->logged < n_ev) {
        char *before = chat_json(d, p->n, fp_session_prompt_len(p->open));
        if (!before) return fp_error_set(err, FP_ERR_NOMEM, "out of memory");
        fp_decision_meta m = *meta;
        m.session_id = pc->id;
        m.role = p->open_role;
        m.turn = p->n;
        m.chat = before;
        fp_status rc = FP_OK;
        for (int32_t i = p->logged; rc == FP_OK && i < n_ev; i++) rc = fpi_store_log_one(st, p->open, i, &m, bytes, err);
        free(before);
        if (rc != FP_OK) return rc;
    }
    fp_status rc = fp_store_note_version(st, version, err);
    if (rc == FP_OK && prefs && meta->profile) rc = fpi_store_profile_put(st, meta->profile, meta->model_sha256, prefs, bytes, err);
    return rc;
}

/* The handle's copy of messages [from, n) (docs: their documents);
 * false when out of memory (fewer are known: the next write rewrites them). */
static bool remember(fp_store_chat *pc, const fp_dialogue *d, int32_t from, int32_t n, char *const *docs) {
    saved_clear(pc, from);
    if (pc->cap_msgs < n) {
        saved_msg *nm = realloc(pc->msgs, sizeof *nm * (size_t)n);
        if (!nm) return false;
        pc->msgs = nm;
        pc->cap_msgs = n;
    }
    for (int32_t i = from; i < n; i++) {
        fp_chat_message m = fp_dialogue_message(d, i);
        saved_msg *s = &pc->msgs[i];
        s->role = strdup(m.role);
        s->content = strdup(m.content);
        s->hash = fnv(docs[i - from]);
        if (!s->role || !s->content) { free(s->role); free(s->content); return false; }
        pc->n_msgs = i + 1;
    }
    return true;
}

/* After a committed write: the handle follows the disk. */
static void written(fp_store_chat *pc, fp_dialogue *d, const plan *p, int64_t bytes) {
    remember(pc, d, p->from, p->n, p->docs);
    /* out of memory above leaves fewer messages known: the next write rewrites them */
    pc->seq++;
    pc->open_turn = p->open ? p->n : -1;
    pc->logged = p->open ? fp_session_n_events(p->open) : 0;
    pc->stats.writes++;
    pc->stats.last_bytes = bytes;
    pc->stats.total_bytes += bytes;
    int64_t doc_bytes = p->doc ? (int64_t)strlen(p->doc) : 0;
    if (p->snapshot || !p->open) {
        pc->open_seq = 0;
        pc->stats.snapshots += p->snapshot;
        pc->stats.snapshot_bytes = doc_bytes;
        pc->stats.log_bytes = 0;
    } else {
        pc->open_seq++;
        pc->stats.log_bytes += doc_bytes;
    }
    if (!p->open) { fp_save_mark_free(pc->mark); pc->mark = NULL; return; }
    if (p->snapshot || !pc->mark) { fp_save_mark_free(pc->mark); pc->mark = fp_save_mark_new(p->open); }
    else if (fp_save_mark_update(pc->mark, p->open) != FP_OK) { fp_save_mark_free(pc->mark); pc->mark = NULL; }
    /* no mark (out of memory): the next write is a snapshot */
}

/* The dialogue's header: fp_dialogue_save's document without its messages
 * and open turn (template and settings). */
static char *header_json(const fp_dialogue *d) {
    char *all = fp_dialogue_save(d);
    cJSON *o = all ? cJSON_Parse(all) : NULL;
    free(all);
    if (!o) return NULL;
    cJSON_DeleteItemFromObjectCaseSensitive(o, "messages");
    cJSON_DeleteItemFromObjectCaseSensitive(o, "open");
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* The end of a chat's write transaction, begun and its sessions row written
 * (rc says whether that went well): the plan's rows, then commit (or roll
 * back), then the handle notes what it wrote (bytes so far: the header's). */
static fp_status finish_write(fp_store *st, fp_store_chat *pc, fp_dialogue *d, const plan *p, uint64_t version,
                              const fp_decision_meta *meta, const fp_prefs *prefs, int64_t bytes, fp_status rc,
                              fp_error *err) {
    if (rc == FP_OK) rc = run_plan(st, pc, d, p, version, meta, prefs, &bytes, err);
    if (rc == FP_OK) rc = fpi_store_commit(st, err);
    else fpi_store_rollback(st);
    if (rc == FP_OK) written(pc, d, p, bytes);
    return rc;
}

fp_store_chat *fp_store_chat_create(fp_store *st, const char *title, int64_t created, uint64_t version, fp_dialogue *d,
                                    const fp_decision_meta *meta, const fp_prefs *prefs, fp_error *err) {
    if (!st || !d || !meta || !meta->session_id || !*meta->session_id || strlen(meta->session_id) >= 65) {
        fp_error_set(err, FP_ERR_ARG, "a chat needs a store, a dialogue and an id of 1..64 bytes");
        return NULL;
    }
    fp_store_chat *pc = calloc(1, sizeof *pc);
    char *header = header_json(d);
    if (!pc || !header) {
        free(pc); free(header);
        fp_error_set(err, FP_ERR_NOMEM, "out of memory");
        return NULL;
    }
    snprintf(pc->id, sizeof pc->id, "%s", meta->session_id);
    pc->open_turn = -1;
    pc->seq = -1;   /* written() makes it 0 */
    plan p;
    fp_status rc = make_plan(pc, d, &p, err);
    int64_t bytes = (int64_t)strlen(header);
    if (rc == FP_OK) rc = fpi_store_begin(st, err);
    if (rc == FP_OK) {
        double now = fpi_store_now();
        if (fpi_exec(st, "INSERT INTO sessions(id, title, created, updated, version, seq, model_sha256, model_path, kind)"
                         " VALUES(?,?,?,?,?,0,?,?,'chat')", "ttiiitt", pc->id, title ? title : "", created, (int64_t)now,
                     (int64_t)version, meta->model_sha256 ? meta->model_sha256 : "", meta->model_path ? meta->model_path : "") < 0 ||
            fpi_exec(st, "INSERT INTO chats(id, header, n_messages) VALUES(?,?,0)", "tt", pc->id, header) < 0)
            rc = fp_error_set(err, FP_ERR_IO, "cannot store the chat: %s", st->msg);
        rc = finish_write(st, pc, d, &p, version, meta, prefs, bytes, rc, err);
    }
    plan_free(&p);
    free(header);
    if (rc != FP_OK) { fp_store_chat_free(pc); return NULL; }
    return pc;
}

fp_status fp_store_chat_write(fp_store *st, fp_store_chat *pc, fp_dialogue *d, uint64_t version,
                              const fp_decision_meta *meta, const fp_prefs *prefs, fp_error *err) {
    if (!st || !pc || !d || !meta) return fp_error_set(err, FP_ERR_ARG, "no store, chat or dialogue");
    plan p;
    fp_status rc = make_plan(pc, d, &p, err);
    if (rc != FP_OK) { plan_free(&p); return rc; }
    rc = fpi_store_begin(st, err);
    if (rc != FP_OK) { plan_free(&p); return rc; }
    int64_t bytes = 0, now = (int64_t)fpi_store_now();
    /* as a story's write: only from the change this handle wrote last, only forward in versions */
    int64_t n = fpi_exec(st, "UPDATE sessions SET version = ?, updated = ?, seq = ? WHERE id = ? AND seq = ? AND version <= ?",
                         "iiitii", (int64_t)version, now, pc->seq + 1, pc->id, pc->seq, (int64_t)version);
    if (n == 0)
        rc = fp_error_set(err, FP_ERR_STATE, "chat %s was changed or deleted by someone else (another server?); reload and retry", pc->id);
    else if (n < 0)
        rc = fp_error_set(err, FP_ERR_IO, "cannot store the chat: %s", st->msg);
    rc = finish_write(st, pc, d, &p, version, meta, prefs, bytes, rc, err);
    plan_free(&p);
    return rc;
}

fp_status fp_store_chat_current(fp_store *st, const fp_store_chat *pc, bool *current, fp_error *err) {
    *current = false;
    fpi_q q;
    if (!fpi_q_run(st, &q, "SELECT seq FROM sessions WHERE id = ?", "t", pc->id))
        return fp_error_set(err, FP_ERR_IO, "cannot read sessions: %s", st->msg);
    if (fpi_q_step(&q)) *current = fpi_q_int(&q, 0) == pc->seq;
    bool ok = q.ok;
    fpi_q_end(&q);
    return ok ? FP_OK : fp_error_set(err, FP_ERR_IO, "cannot read sessions: %s", st->msg);
}

/* What a load reads, in one consistent view. */
typedef struct chat_rows {
    fp_story_info row;
    int64_t seq, open_seq;
    char *header, *open_role, *open_snapshot;
    int32_t n_msgs;
    char **msgs, **changes;
    int32_t n_changes;
} chat_rows;

static void rows_free(chat_rows *r) {
    free(r->header); free(r->open_role); free(r->open_snapshot);
    for (int32_t i = 0; r->msgs && i < r->n_msgs; i++) free(r->msgs[i]);
    for (int32_t i = 0; r->changes && i < r->n_changes; i++) free(r->changes[i]);
    free(r->msgs); free(r->changes);
}

/* Reads rows of (sql, id) into v[0..want): column 0 must count 0.. (start), column 1 the text. */
static fp_status read_list(fp_store *st, const char *sql, const char *id, int64_t start, int32_t want, char **v,
                           int32_t *got, fp_error *err) {
    fpi_q q;
    *got = 0;
    if (!fpi_q_run(st, &q, sql, "t", id)) return fp_error_set(err, FP_ERR_IO, "cannot read the chat: %s", st->msg);
    fp_status rc = FP_OK;
    while (rc == FP_OK && fpi_q_step(&q)) {
        if (*got >= want || fpi_q_int(&q, 0) != start + *got) rc = fp_error_set(err, FP_ERR_ARG, "chat %s is damaged (its rows do not follow on)", id);
        else if (!(v[*got] = fpi_store_dup_col(&q, 1))) rc = fp_error_set(err, FP_ERR_NOMEM, "out of memory");
        else (*got)++;
    }
    if (rc == FP_OK && !q.ok) rc = fp_error_set(err, FP_ERR_IO, "cannot read the chat: %s", st->msg);
    if (rc == FP_OK && *got != want) rc = fp_error_set(err, FP_ERR_ARG, "chat %s has %d of its %d rows", id, *got, want);
    fpi_q_end(&q);
    return rc;
}

static fp_status read_rows(fp_store *st, const char *id, chat_rows *r, fp_error *err) {
    fpi_q q;
    if (!fpi_q_run(st, &q, "SELECT " FPI_ROW_COLS ", s.seq, c.header, c.n_messages, c.open_role, c.open_seq, c.open_snapshot"
                           " FROM sessions s JOIN chats c ON c.id = s.id WHERE s.id = ? AND s.kind = 'chat'", "t", id))
        return fp_error_set(err, FP_ERR_IO, "cannot read sessions: %s", st->msg);
    fp_status rc = FP_OK;
    if (fpi_q_step(&q)) {
        fpi_store_read_row(&q, &r->row);
        r->seq = fpi_q_int(&q, 8);
        r->header = fpi_store_dup_col(&q, 9);
        int64_t nm = fpi_q_int(&q, 10);
        r->open_role = fpi_q_text(&q, 11) ? fpi_store_dup_col(&q, 11) : NULL;
        r->open_seq = fpi_q_int(&q, 12);
        r->open_snapshot = fpi_q_text(&q, 13) ? fpi_store_dup_col(&q, 13) : NULL;
        if (nm < 0 || nm > (1 << 20) || r->open_seq < 0 || r->open_seq > (1 << 24) || !r->open_role != !r->open_snapshot)
            rc = fp_error_set(err, FP_ERR_ARG, "chat %s has a damaged row", id);
        else if (!r->header) rc = fp_error_set(err, FP_ERR_NOMEM, "out of memory");
        r->n_msgs = (int32_t)nm;
    } else {
        rc = q.ok ? fp_error_set(err, FP_ERR_EMPTY, "unknown chat") : fp_error_set(err, FP_ERR_IO, "cannot read sessions: %s", st->msg);
    }
    fpi_q_end(&q);
    if (rc != FP_OK) return rc;
    int32_t nm = r->n_msgs, nc = (int32_t)r->open_seq;
    r->msgs = calloc((size_t)nm + 1, sizeof *r->msgs);
    r->changes = calloc((size_t)nc + 1, sizeof *r->changes);
    if (!r->msgs || !r->changes) return fp_error_set(err, FP_ERR_NOMEM, "out of memory");
    r->n_msgs = 0;
    rc = read_list(st, "SELECT turn, message FROM chat_messages WHERE chat = ? ORDER BY turn", id, 0, nm, r->msgs, &r->n_msgs, err);
    if (rc == FP_OK)
        rc = read_list(st, "SELECT seq, change FROM chat_changes WHERE chat = ? ORDER BY seq", id, 1, nc, r->changes, &r->n_changes, err);
    return rc;
}

/* The dialogue of the rows: header and messages as one document, then the open turn attached. */
static fp_dialogue *rebuild(fp_engine *e, const chat_rows *r, const char *id, fp_error *err) {
    cJSON *o = cJSON_Parse(r->header), *ms = cJSON_CreateArray();
    bool ok = o && ms && cJSON_AddItemToObject(o, "messages", ms);
    if (!ok) cJSON_Delete(ms);
    for (int32_t i = 0; ok && i < r->n_msgs; i++) {
        cJSON *m = cJSON_Parse(r->msgs[i]);
        ok = m && cJSON_AddItemToArray(ms, m);
        if (!ok) cJSON_Delete(m);
    }
    char *doc = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!doc) { fp_error_set(err, FP_ERR_ARG, "chat %s has a damaged message", id); return NULL; }
    fp_dialogue *d = fp_dialogue_restore(e, doc, err);
    free(doc);
    if (!d || !r->open_snapshot) return d;
    fp_session *s = fp_session_restore_log(e, r->open_snapshot, (const char *const *)r->changes, r->n_changes, err);
    if (!s || fp_dialogue_attach_turn(d, r->open_role, s, err) != FP_OK) {
        fp_session_free(s);
        fp_dialogue_free(d);
        return NULL;
    }
    return d;
}

fp_dialogue *fp_store_chat_load(fp_store *st, fp_engine *e, const char *id, fp_store_chat **out, fp_story_info *info,
                                fp_error *err) {
    *out = NULL;
    if (!st || !e || !id || strlen(id) >= 65) { fp_error_set(err, FP_ERR_ARG, "no store, engine or id"); return NULL; }
    if (fpi_store_begin_read(st, err) != FP_OK) return NULL;
    chat_rows r = { 0 };
    fp_status rc = read_rows(st, id, &r, err);
    fpi_store_rollback(st);   /* a read: nothing to commit */
    fp_dialogue *d = rc == FP_OK ? rebuild(e, &r, id, err) : NULL;
    fp_store_chat *pc = d ? calloc(1, sizeof *pc) : NULL;
    if (d && pc) {
        snprintf(pc->id, sizeof pc->id, "%s", id);
        pc->seq = r.seq;
        pc->open_seq = r.open_seq;
        pc->stats.snapshot_bytes = r.open_snapshot ? (int64_t)strlen(r.open_snapshot) : 0;
        for (int32_t i = 0; i < r.n_changes; i++) pc->stats.log_bytes += (int64_t)strlen(r.changes[i]);
        fp_session *s = fp_dialogue_session(d);
        pc->open_turn = s ? fp_dialogue_n_messages(d) : -1;
        pc->logged = s ? fp_session_n_events(s) : 0;
        if (s && !(pc->mark = fp_save_mark_new(s))) { fp_store_chat_free(pc); pc = NULL; }
        /* the messages as saved */
        int32_t n = fp_dialogue_n_messages(d);
        char **docs = pc ? calloc((size_t)n + 1, sizeof *docs) : NULL;
        bool ok = docs != NULL;
        for (int32_t i = 0; ok && i < n; i++) ok = (docs[i] = fp_dialogue_message_save(d, i)) != NULL;
        ok = ok && remember(pc, d, 0, n, docs);
        for (int32_t i = 0; docs && i < n; i++) free(docs[i]);
        free(docs);
        if (!ok && pc) { fp_store_chat_free(pc); pc = NULL; }
    }
    if (d && !pc) {
        fp_dialogue_free(d);
        d = NULL;
        fp_error_set(err, FP_ERR_NOMEM, "out of memory");
    }
    if (d) { *out = pc; if (info) *info = r.row; }
    rows_free(&r);
    return d;
}
