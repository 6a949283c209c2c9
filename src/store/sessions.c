/*
 * sessions.c — stories: sessions kept in the store across restarts.
 *
 * Why append-only: rewriting a whole session after every decision made a
 * click cost O(story) in bytes and time (a thousand forks are megabytes).
 * Here a write is one row of `session_changes` (fp_session_save_changes:
 * the records that are new or changed), the decisions it adds to the log,
 * the session's version and the version counter, all in one transaction;
 * now and then the snapshot in `sessions` is rewritten instead and the
 * changes it covers are deleted. Rule: a write becomes a snapshot when the
 * changes since the last snapshot would exceed both the snapshot's size and
 * FP_STORE_SNAPSHOT_MIN; so each byte of change pays for at most one byte
 * of snapshot (writes cost about twice what changed, amortised) and a load
 * reads at most about twice the snapshot.
 *
 * Every write updates the story's small `sessions` row (seq, version); the
 * snapshot sits in `session_snapshots`, rewritten only when a snapshot is
 * made (an UPDATE copies the whole record: a snapshot in the same row
 * would be copied on every click).
 *
 * Invariants: sessions.seq is the last change written, session_snapshots.seq
 * the one the snapshot includes (snap_seq); session_changes holds exactly
 * the seqs snap_seq+1 .. seq of each session. A handle's seq equals its row's (a
 * write checks it, so a second writer is noticed instead of corrupting).
 * Every event of a stored story has its decision row (event = its number):
 * the rows are written in the transaction that stores the event.
 */
#include "store/store_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fp_store_session {
    char id[65];
    fp_save_mark *mark;        /* what of the session is on disk; NULL: write a snapshot next */
    int32_t logged;            /* events with their decision row */
    int64_t seq, snap_seq;
    fp_story_stats stats;
};

void fp_store_session_free(fp_store_session *ps) {
    if (!ps) return;
    fp_save_mark_free(ps->mark);
    free(ps);
}

void fp_store_session_stats(const fp_store_session *ps, fp_story_stats *out) { *out = ps->stats; }

/* The decisions of events [ps->logged, n) and the version counter: the
 * parts every write shares. */
static fp_status write_common(fp_store *st, fp_store_session *ps, const fp_session *s, uint64_t version,
                              const fp_decision_meta *meta, const fp_prefs *prefs, int64_t *bytes, fp_error *err) {
    fp_decision_meta m = *meta;
    m.session_id = ps->id;
    for (int32_t i = ps->logged; i < fp_session_n_events(s); i++)
        if (fpi_store_log_one(st, s, i, &m, bytes, err) != FP_OK) return err ? err->code : FP_ERR_IO;
    if (fpi_exec(st, "UPDATE counters SET value = ? WHERE name = 'version' AND value < ?", "ii", (int64_t)version,
                 (int64_t)version) < 0)
        return fp_error_set(err, FP_ERR_IO, "cannot store the version: %s", st->msg);
    if (prefs && meta->profile && fpi_store_profile_put(st, meta->profile, meta->model_sha256, prefs, bytes, err) != FP_OK)
        return err ? err->code : FP_ERR_IO;
    return FP_OK;
}

/* After a committed write: the handle follows the disk. */
static void written(fp_store_session *ps, const fp_session *s, int64_t bytes, bool snapshot, int64_t doc_bytes) {
    ps->seq++;
    ps->logged = fp_session_n_events(s);
    if (snapshot) {
        ps->snap_seq = ps->seq;
        ps->stats.snapshots++;
        ps->stats.snapshot_bytes = doc_bytes;
        ps->stats.log_bytes = 0;
    } else {
        ps->stats.log_bytes += doc_bytes;
    }
    ps->stats.writes++;
    ps->stats.last_bytes = bytes;
    ps->stats.total_bytes += bytes;
    if (!ps->mark) ps->mark = fp_save_mark_new(s);
    else if (fp_save_mark_update(ps->mark, s) != FP_OK) { fp_save_mark_free(ps->mark); ps->mark = NULL; }
    /* no mark (out of memory): the next write is a snapshot, which needs none */
}

fp_store_session *fp_store_session_create(fp_store *st, const char *title, int64_t created, uint64_t version,
                                          const fp_session *s, const fp_decision_meta *meta, const fp_prefs *prefs,
                                          fp_error *err) {
    if (!st || !s || !meta || !meta->session_id || !*meta->session_id || strlen(meta->session_id) >= 65) {
        fp_error_set(err, FP_ERR_ARG, "a story needs a store, a session and an id of 1..64 bytes");
        return NULL;
    }
    fp_store_session *ps = calloc(1, sizeof *ps);
    char *doc = fp_session_save(s);
    if (!ps || !doc) {
        free(ps); free(doc);
        fp_error_set(err, FP_ERR_NOMEM, "out of memory");
        return NULL;
    }
    snprintf(ps->id, sizeof ps->id, "%s", meta->session_id);
    ps->seq = -1; /* written() makes it 0: the snapshot is change 0 */
    int64_t bytes = (int64_t)strlen(doc) + (int64_t)strlen(title ? title : "");
    fp_status rc = fpi_store_begin(st, err);
    if (rc == FP_OK) {
        double now = fpi_store_now();
        if (fpi_exec(st, "INSERT INTO sessions(id, title, created, updated, version, seq, model_sha256, model_path)"
                         " VALUES(?,?,?,?,?,0,?,?)", "ttiiitt", ps->id, title ? title : "", created, (int64_t)now,
                     (int64_t)version, meta->model_sha256 ? meta->model_sha256 : "",
                     meta->model_path ? meta->model_path : "") < 0 ||
            fpi_exec(st, "INSERT INTO session_snapshots(session, seq, snapshot) VALUES(?,0,?)"
                         " ON CONFLICT(session) DO UPDATE SET seq = excluded.seq, snapshot = excluded.snapshot",
                     "tt", ps->id, doc) < 0 ||
            fpi_exec(st, "DELETE FROM session_changes WHERE session = ?", "t", ps->id) < 0)
            rc = fp_error_set(err, FP_ERR_IO, "cannot store the session: %s", st->msg);
        if (rc == FP_OK) rc = write_common(st, ps, s, version, meta, prefs, &bytes, err);
        if (rc == FP_OK) rc = fpi_store_commit(st, err);
        else fpi_store_rollback(st);
    }
    if (rc == FP_OK) written(ps, s, bytes, true, (int64_t)strlen(doc));
    free(doc);
    if (rc != FP_OK) { fp_store_session_free(ps); return NULL; }
    return ps;
}

fp_status fp_store_session_write(fp_store *st, fp_store_session *ps, const fp_session *s, uint64_t version,
                                 const fp_decision_meta *meta, const fp_prefs *prefs, fp_error *err) {
    if (!st || !ps || !s || !meta) return fp_error_set(err, FP_ERR_ARG, "no store, story or session");
    char *doc = ps->mark ? fp_session_save_changes(s, ps->mark) : NULL;
    if (ps->mark && !doc) return fp_error_set(err, FP_ERR_NOMEM, "out of memory");
    int64_t limit = ps->stats.snapshot_bytes > FP_STORE_SNAPSHOT_MIN ? ps->stats.snapshot_bytes : FP_STORE_SNAPSHOT_MIN;
    bool snapshot = !doc || ps->stats.log_bytes + (int64_t)strlen(doc) > limit;
    if (snapshot) {
        free(doc);
        if (!(doc = fp_session_save(s))) return fp_error_set(err, FP_ERR_NOMEM, "out of memory");
    }
    int64_t doc_bytes = (int64_t)strlen(doc), bytes = doc_bytes;
    int64_t now = (int64_t)fpi_store_now();
    fp_status rc = fpi_store_begin(st, err);
    if (rc != FP_OK) { free(doc); return rc; }
    /* the row moves on only from the change this handle wrote last (a second
     * writer, e.g. another server, is noticed, not overwritten) and only
     * forward in versions; under PostgreSQL's row lock the second of two
     * concurrent writers sees the first's seq and changes nothing */
    int64_t n = fpi_exec(st, "UPDATE sessions SET version = ?, updated = ?, seq = ? WHERE id = ? AND seq = ? AND version <= ?",
                         "iiitii", (int64_t)version, now, ps->seq + 1, ps->id, ps->seq, (int64_t)version);
    bool mismatch = n == 0, ioerr = n < 0;
    if (n == 1 && snapshot) {
        n = fpi_exec(st, "UPDATE session_snapshots SET seq = ?, snapshot = ? WHERE session = ?", "itt", ps->seq + 1, doc, ps->id);
        mismatch = n == 0, ioerr = n < 0;
        if (n == 1) ioerr = fpi_exec(st, "DELETE FROM session_changes WHERE session = ?", "t", ps->id) < 0;
    } else if (n == 1) {
        ioerr = fpi_exec(st, "INSERT INTO session_changes(session, seq, version, change) VALUES(?,?,?,?)", "tiit", ps->id,
                         ps->seq + 1, (int64_t)version, doc) < 0;
    }
    if (mismatch)
        rc = fp_error_set(err, FP_ERR_STATE, "session %s was changed or deleted by someone else (another server?); reload and retry",
                          ps->id);
    else if (ioerr)
        rc = fp_error_set(err, FP_ERR_IO, "cannot store the session: %s", st->msg);
    if (rc == FP_OK) rc = write_common(st, ps, s, version, meta, prefs, &bytes, err);
    if (rc == FP_OK) rc = fpi_store_commit(st, err);
    else fpi_store_rollback(st);
    if (rc == FP_OK) written(ps, s, bytes, snapshot, doc_bytes);
    free(doc);
    return rc;
}

/* Columns 0..7 of ROW_COLS into r (chats.c reads rows with it too). */
#define ROW_COLS FPI_ROW_COLS
void fpi_store_read_row(fpi_q *q, fp_story_info *r) {
    memset(r, 0, sizeof *r);
    const char *a = fpi_q_text(q, 0), *b = fpi_q_text(q, 1), *m = fpi_q_text(q, 5), *p = fpi_q_text(q, 6);
    snprintf(r->id, sizeof r->id, "%s", a ? a : "");
    snprintf(r->title, sizeof r->title, "%s", b ? b : "");
    r->created = fpi_q_int(q, 2);
    r->updated = fpi_q_int(q, 3);
    r->version = (uint64_t)fpi_q_int(q, 4);
    snprintf(r->model_sha256, sizeof r->model_sha256, "%s", m ? m : "");
    snprintf(r->model_path, sizeof r->model_path, "%s", p ? p : "");
    const char *k = fpi_q_text(q, 7);
    snprintf(r->kind, sizeof r->kind, "%s", k ? k : "story");
}

fp_status fp_store_session_info(fp_store *st, const char *id, fp_story_info *info, fp_error *err) {
    if (!st || !id || !info) return fp_error_set(err, FP_ERR_ARG, "no store, id or info");
    fpi_q q;
    if (!fpi_q_run(st, &q, "SELECT " ROW_COLS " FROM sessions s WHERE s.id = ?", "t", id))
        return fp_error_set(err, FP_ERR_IO, "cannot read sessions: %s", st->msg);
    fp_status rc = FP_OK;
    if (fpi_q_step(&q)) fpi_store_read_row(&q, info);
    else rc = q.ok ? fp_error_set(err, FP_ERR_EMPTY, "unknown session") : fp_error_set(err, FP_ERR_IO, "cannot read sessions: %s", st->msg);
    fpi_q_end(&q);
    return rc;
}

char *fpi_store_dup_col(fpi_q *q, int i) {
    const char *t = fpi_q_text(q, i);
    int n = fpi_q_bytes(q, i);
    char *d = t ? malloc((size_t)n + 1) : NULL;
    if (d) { memcpy(d, t, (size_t)n); d[n] = 0; }
    return d;
}

fp_session *fp_store_session_load(fp_store *st, fp_engine *e, const char *id, fp_store_session **out,
                                  fp_story_info *info, fp_error *err) {
    *out = NULL;
    if (!st || !e || !id || strlen(id) >= 65) { fp_error_set(err, FP_ERR_ARG, "no store, engine or id"); return NULL; }
    if (fpi_store_begin_read(st, err) != FP_OK) return NULL; /* one consistent view of the row and its changes */
    fpi_q q;
    char *snap = NULL, **ch = NULL;
    int32_t n = 0;
    int64_t seq = 0, snap_seq = 0, log_bytes = 0;
    fp_story_info row = {0};
    fp_status rc = FP_OK;
    if (!fpi_q_run(st, &q, "SELECT " ROW_COLS ", p.snapshot, p.seq, s.seq"
                           " FROM sessions s JOIN session_snapshots p ON p.session = s.id WHERE s.id = ?", "t", id)) {
        rc = fp_error_set(err, FP_ERR_IO, "cannot read sessions: %s", st->msg);
        goto out;
    }
    if (fpi_q_step(&q)) {
        fpi_store_read_row(&q, &row);
        snap = fpi_store_dup_col(&q, 8);
        snap_seq = fpi_q_int(&q, 9);
        seq = fpi_q_int(&q, 10);
        if (!snap) rc = fp_error_set(err, FP_ERR_NOMEM, "out of memory");
    } else if (q.ok) {
        rc = fp_error_set(err, FP_ERR_EMPTY, "unknown session");
    } else {
        rc = fp_error_set(err, FP_ERR_IO, "cannot read sessions: %s", st->msg);
    }
    fpi_q_end(&q);
    if (rc != FP_OK) goto out;
    if (seq < snap_seq || seq - snap_seq > (1 << 24)) { rc = fp_error_set(err, FP_ERR_ARG, "session %s has a damaged change count", id); goto out; }
    int32_t want = (int32_t)(seq - snap_seq);
    ch = calloc((size_t)(want > 0 ? want : 1), sizeof *ch);
    if (!ch) { rc = fp_error_set(err, FP_ERR_NOMEM, "out of memory"); goto out; }
    if (!fpi_q_run(st, &q, "SELECT seq, change FROM session_changes WHERE session = ? AND seq > ? ORDER BY seq", "ti", id,
                   snap_seq)) {
        rc = fp_error_set(err, FP_ERR_IO, "cannot read changes: %s", st->msg);
        goto out;
    }
    bool mismatch = false, nomem = false;
    while (fpi_q_step(&q)) {
        if (n >= want || fpi_q_int(&q, 0) != snap_seq + 1 + n) { mismatch = true; break; }
        if (!(ch[n] = fpi_store_dup_col(&q, 1))) { nomem = true; break; }
        log_bytes += fpi_q_bytes(&q, 1);
        n++;
    }
    bool ok = q.ok;
    fpi_q_end(&q);
    if (nomem) rc = fp_error_set(err, FP_ERR_NOMEM, "out of memory");
    else if (mismatch || (ok && n != want))
        rc = fp_error_set(err, FP_ERR_ARG, "session %s has %d of its %d changes", id, n, want);
    else if (!ok) rc = fp_error_set(err, FP_ERR_IO, "cannot read changes: %s", st->msg);
out:
    fpi_store_rollback(st); /* a read: nothing to commit */
    fp_session *s = NULL;
    fp_store_session *ps = NULL;
    if (rc == FP_OK) s = fp_session_restore_log(e, snap, (const char *const *)ch, n, err);
    if (s) {
        ps = calloc(1, sizeof *ps);
        /* a format 1 snapshot holds every fork's logits: replace it at the next write */
        bool old = strncmp(snap, "{\"format\":1", 11) == 0;
        if (ps && !old && !(ps->mark = fp_save_mark_new(s))) { free(ps); ps = NULL; }
        if (!ps) { fp_session_free(s); s = NULL; fp_error_set(err, FP_ERR_NOMEM, "out of memory"); }
    }
    if (ps) {
        snprintf(ps->id, sizeof ps->id, "%s", id);
        ps->logged = fp_session_n_events(s);
        ps->seq = seq;
        ps->snap_seq = snap_seq;
        ps->stats.snapshot_bytes = (int64_t)strlen(snap);
        ps->stats.log_bytes = log_bytes;
        *out = ps;
        if (info) *info = row;
    }
    for (int32_t i = 0; ch && i < n; i++) free(ch[i]);
    free(ch);
    free(snap);
    return s;
}

fp_status fp_store_session_delete(fp_store *st, const char *id, bool *existed, fp_error *err) {
    if (existed) *existed = false;
    fp_status rc = fpi_store_begin(st, err);
    if (rc != FP_OK) return rc;
    int64_t a = fpi_exec(st, "DELETE FROM sessions WHERE id = ?", "t", id);
    bool had = a > 0;
    if (a < 0 || fpi_exec(st, "DELETE FROM session_snapshots WHERE session = ?", "t", id) < 0 ||
        fpi_exec(st, "DELETE FROM session_changes WHERE session = ?", "t", id) < 0 ||
        /* a chat's parts (chats.c) */
        fpi_exec(st, "DELETE FROM chats WHERE id = ?", "t", id) < 0 ||
        fpi_exec(st, "DELETE FROM chat_messages WHERE chat = ?", "t", id) < 0 ||
        fpi_exec(st, "DELETE FROM chat_changes WHERE chat = ?", "t", id) < 0) {
        rc = fp_error_set(err, FP_ERR_IO, "cannot delete the session: %s", st->msg);
        fpi_store_rollback(st);
        return rc;
    }
    rc = fpi_store_commit(st, err);
    if (rc == FP_OK && existed) *existed = had;
    return rc;
}

int32_t fp_store_sessions(fp_store *st, fp_story_info *out, int32_t cap, fp_error *err) {
    fpi_q q;
    /* versions come from one growing counter: the newest write has the highest */
    if (!fpi_q_run(st, &q, "SELECT " ROW_COLS " FROM sessions s"
                           " ORDER BY s.version DESC, s.updated DESC LIMIT ?", "i", (int64_t)cap)) {
        fp_error_set(err, FP_ERR_IO, "cannot list sessions: %s", st->msg);
        return -1;
    }
    int32_t n = 0;
    while (n < cap && fpi_q_step(&q)) fpi_store_read_row(&q, &out[n++]);
    if (!q.ok) {
        fp_error_set(err, FP_ERR_IO, "cannot list sessions: %s", st->msg);
        n = -1;
    }
    fpi_q_end(&q);
    return n;
}

fp_status fp_store_session_current(fp_store *st, const fp_store_session *ps, bool *current, fp_error *err) {
    *current = false;
    fpi_q q;
    if (!fpi_q_run(st, &q, "SELECT seq FROM sessions WHERE id = ?", "t", ps->id))
        return fp_error_set(err, FP_ERR_IO, "cannot read sessions: %s", st->msg);
    if (fpi_q_step(&q)) *current = fpi_q_int(&q, 0) == ps->seq;
    bool ok = q.ok;
    fpi_q_end(&q);
    return ok ? FP_OK : fp_error_set(err, FP_ERR_IO, "cannot read sessions: %s", st->msg);
}

uint64_t fp_store_version(fp_store *st) {
    fpi_q q;
    uint64_t v = 0;
    /* portable: no two-argument max() in PostgreSQL, no greatest() in SQLite */
    if (fpi_q_run(st, &q, "SELECT coalesce(max(v), 0) FROM (SELECT value AS v FROM counters WHERE name = 'version'"
                          " UNION ALL SELECT max(version) FROM sessions) AS t", "") && fpi_q_step(&q))
        v = (uint64_t)fpi_q_int(&q, 0);
    fpi_q_end(&q);
    return v;
}

fp_status fp_store_note_version(fp_store *st, uint64_t version, fp_error *err) {
    if (fpi_exec(st, "UPDATE counters SET value = ? WHERE name = 'version' AND value < ?", "ii", (int64_t)version,
                 (int64_t)version) < 0)
        return fp_error_set(err, FP_ERR_IO, "cannot store the version: %s", st->msg);
    return FP_OK;
}
