/*
 * test_store.c — persistence on the real model (stories260K): snapshots
 * without logits, changes since a mark, stories in the store written
 * append-only with their decisions in one transaction, snapshots now and
 * then, versions that only grow, and databases made by the previous
 * Forkpoint (tests/fixtures/main-v0.db, written by main at 0cf1778) opening,
 * upgrading and restoring.
 */
#include "forkpoint.h"
#include "forkpoint_store.h"
#include "harness.h"

#include <math.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <unistd.h>

static fp_model *g_model;
static fp_engine *g_engine;
static char g_dir[256];

static const char *PROMPT = "Once upon a time, there was a little";

static fp_settings eager(void) {
    fp_settings st = fp_default_settings();
    st.fork_entropy_bits = 1.5f;
    st.fork_top1_below = 0.6f;
    st.min_gap_tokens = 2;
    st.max_forks_per_sentence = 0;
    st.max_tokens = 120;
    return st;
}

static bool same_cands(const fp_fork *a, const fp_fork *b) {
    if (!a || !b || a->n_candidates != b->n_candidates) return false;
    for (int32_t i = 0; i < a->n_candidates; i++) {
        const fp_candidate *x = &a->candidates[i], *y = &b->candidates[i];
        if (strcmp(x->text, y->text) || x->prob != y->prob || strcmp(x->preview, y->preview) || x->n_tokens != y->n_tokens ||
            x->n_preview != y->n_preview || memcmp(x->tokens, y->tokens, sizeof(int32_t) * (size_t)x->n_tokens) ||
            memcmp(x->preview_tokens, y->preview_tokens, sizeof(int32_t) * (size_t)x->n_preview) || x->pref != y->pref)
            return false;
    }
    return a->other == b->other;
}

static uint32_t rnd(uint32_t *r) { *r = *r * 1664525u + 1013904223u; return *r >> 8; }

/* One step of a person's session: choices (alone or with the phrase),
 * undo, going back to a fork, narrowing, typing, forking inside the text.
 * *max_fork tracks the highest fork id seen. */
static void random_step(fp_session *s, uint32_t *r, int32_t *max_fork) {
    fp_error err = {0};
    const fp_fork *f = fp_session_fork(s);
    if (f && f->id > *max_fork) *max_fork = f->id;
    if (!f) { fp_session_goto_fork(s, (int32_t)(rnd(r) % (uint32_t)(*max_fork + 1)), &err); return; }
    uint32_t k = rnd(r) % 12;
    int32_t n = f->n_candidates;
    if (k < 6 && n > 0) fp_session_choose(s, (int32_t)(rnd(r) % (uint32_t)n), k == 5, FP_BY_HUMAN, &err);
    else if (k == 6) fp_session_undo(s, &err);
    else if (k == 7) fp_session_goto_fork(s, (int32_t)(rnd(r) % (uint32_t)(*max_fork + 1)), &err);
    else if (k == 8) {
        fp_session_type_prefix(s, "s", &err);
        f = fp_session_fork(s);
        if (f && f->n_candidates > 0 && (rnd(r) & 1)) fp_session_choose(s, 0, false, FP_BY_HUMAN, &err);
    } else if (k == 9) fp_session_type_commit(s, "dragon", FP_BY_HUMAN, &err);
    else if (k == 10 && fp_session_text_len(s) > fp_session_prompt_len(s) + 8)
        fp_session_fork_at(s, fp_session_text_len(s) - 5, &err);
    else if (n > 0) fp_session_continue(s, FP_BY_HUMAN, &err);
    f = fp_session_fork(s);
    if (f && f->id > *max_fork) *max_fork = f->id;
}

/* A session grown by `steps` random steps. */
static fp_session *grown(uint32_t seed, int steps, int32_t *max_fork) {
    fp_error err = {0};
    fp_settings st = eager();
    fp_session *s = fp_session_new(g_engine, PROMPT, &st, &err);
    if (!s) { fprintf(stderr, "session: %s\n", err.message); return NULL; }
    uint32_t r = seed;
    *max_fork = 0;
    for (int i = 0; i < steps; i++) random_step(s, &r, max_fork);
    return s;
}

static void test_no_logits(void) {
    TEST("snapshots hold no logits, and a restored fork shows exactly what it showed");
    int32_t mf = 0;
    fp_session *s = grown(7, 25, &mf);
    CHECK(s != NULL);
    if (!s) return;
    char *doc = fp_session_save(s);
    CHECK(doc && strstr(doc, "\"logits\"") == NULL);
    CHECK(doc && strncmp(doc, "{\"format\":2", 11) == 0);
    fp_error err = {0};
    fp_session *r = doc ? fp_session_restore(g_engine, doc, &err) : NULL;
    CHECKF(r != NULL, "%s", err.message);
    if (r) {
        char *again = fp_session_save(r);
        CHECK(again && strcmp(doc, again) == 0);
        free(again);
        /* every fork reopened after the restore: identical candidates,
         * probabilities and previews (candidates are stored; the logits come
         * back by decoding the fork's last token) */
        int same = 0, narrowed_same = 0, tried = 0, previews = 0, previews_same = 0;
        for (int32_t id = 0; id <= mf; id++) {
            fp_error e1 = {0}, e2 = {0};
            fp_status a = fp_session_goto_fork(s, id, &e1), b = fp_session_goto_fork(r, id, &e2);
            CHECK(a == b);
            if (a != FP_OK || b != FP_OK) continue;
            tried++;
            if (same_cands(fp_session_fork(s), fp_session_fork(r))) same++;
            else fprintf(stderr, "fork %d differs after restore\n", id);
            /* the decoded-again logits narrow the cloud as the stored ones did */
            if (fp_session_type_prefix(s, "b", &e1) == FP_OK && fp_session_type_prefix(r, "b", &e2) == FP_OK) {
                const fp_fork *x = fp_session_fork(s), *y = fp_session_fork(r);
                /* narrowing ranks the whole vocabulary, so words whose
                 * probabilities tie within float noise may swap places or
                 * trade the last slot: each word of one cloud must be in the
                 * other with its probability, or tie with the other's last */
                bool ok = x->n_candidates == y->n_candidates;
                float y_last = ok && y->n_candidates ? y->candidates[y->n_candidates - 1].prob : 0.0f;
                for (int32_t i = 0; ok && i < x->n_candidates; i++) {
                    int32_t j = 0;
                    while (j < y->n_candidates && strcmp(x->candidates[i].text, y->candidates[j].text) != 0) j++;
                    if (j < y->n_candidates) {
                        ok = fabsf(x->candidates[i].prob - y->candidates[j].prob) < 2e-3f;
                        previews_same += strcmp(x->candidates[i].preview, y->candidates[j].preview) == 0, previews++;
                    } else
                        ok = fabsf(x->candidates[i].prob - y_last) < 0.01f * fmaxf(x->candidates[i].prob, y_last) + 1e-7f;
                }
                narrowed_same += ok;
                if (!ok) {
                    fprintf(stderr, "fork %d narrowed: %d vs %d candidates\n", id, x->n_candidates, y->n_candidates);
                    for (int32_t i = 0; i < x->n_candidates || i < y->n_candidates; i++)
                        fprintf(stderr, "   [%s|%g|%s] [%s|%g|%s]\n", i < x->n_candidates ? x->candidates[i].text : "",
                                i < x->n_candidates ? x->candidates[i].prob : 0, i < x->n_candidates ? x->candidates[i].preview : "",
                                i < y->n_candidates ? y->candidates[i].text : "", i < y->n_candidates ? y->candidates[i].prob : 0,
                                i < y->n_candidates ? y->candidates[i].preview : "");
                }
            }
        }
        CHECKF(tried > 5 && same == tried, "%d of %d forks identical", same, tried);
        /* narrowing computes new branches: the same words and probabilities
         * up to float noise (two sessions' KV cells sit at different places
         * of the cache), and a preview may take the other side of a near tie */
        CHECKF(narrowed_same == tried, "%d of %d narrowed clouds the same", narrowed_same, tried);
        CHECKF(previews_same * 10 >= previews * 9, "%d of %d narrowed previews the same", previews_same, previews);
    }
    fp_session_free(r);
    free(doc);
    fp_session_free(s);
}

static void test_changes(void) {
    TEST("changes since a mark rebuild the same session, and do not grow with the story");
    fp_error err = {0};
    fp_settings st = eager();
    fp_session *s = fp_session_new(g_engine, PROMPT, &st, &err);
    CHECK(s != NULL);
    if (!s) return;
    char *snap0 = fp_session_save(s);
    fp_save_mark *m = fp_save_mark_new(s);
    CHECK(snap0 && m);
    enum { STEPS = 90 };
    char *ch[STEPS];
    size_t first = 0, last = 0, snap_first = 0;
    uint32_t r = 11;
    int32_t mf = 0;
    int rebuilt = 0;
    for (int i = 0; i < STEPS; i++) {
        random_step(s, &r, &mf);
        ch[i] = fp_session_save_changes(s, m);
        CHECK(ch[i] != NULL && fp_save_mark_update(m, s) == FP_OK);
        if (!ch[i]) return;
        if (i < 15) first += strlen(ch[i]);
        if (i >= STEPS - 15) last += strlen(ch[i]);
        if (i == 14) { char *d = fp_session_save(s); snap_first = d ? strlen(d) : 0; free(d); }
        if (i == 10 || i == 45 || i == STEPS - 1) {
            fp_session *x = fp_session_restore_log(g_engine, snap0, (const char *const *)ch, i + 1, &err);
            CHECKF(x != NULL, "after %d changes: %s", i + 1, err.message);
            char *a = fp_session_save(s), *b = x ? fp_session_save(x) : NULL;
            CHECKF(a && b && strcmp(a, b) == 0, "after %d changes the rebuilt session differs", i + 1);
            rebuilt += a && b && strcmp(a, b) == 0;
            /* and it goes on working */
            if (x && fp_session_fork(x)) CHECK(fp_session_choose(x, 0, false, FP_BY_HUMAN, &err) == FP_OK);
            free(a); free(b);
            fp_session_free(x);
        }
    }
    char *full = fp_session_save(s);
    size_t snap_last = full ? strlen(full) : 0;
    /* the story grew several times over; a change stayed about the same size */
    CHECKF(snap_last > 2 * snap_first, "snapshot %zu -> %zu bytes", snap_first, snap_last);
    CHECKF(last < 2 * first, "15 changes: %zu bytes early, %zu late (snapshot %zu -> %zu)", first, last, snap_first, snap_last);
    fprintf(stderr, "  15 changes: %zu bytes early, %zu late; snapshot %zu -> %zu bytes\n", first, last, snap_first, snap_last);
    /* out of order or damaged changes are refused */
    int gap = 1; /* a change that added a decision, left out */
    while (gap < STEPS - 1 && strstr(ch[gap], "\"events\":[]")) gap++;
    const char *skip[STEPS];
    for (int i = 0; i < gap; i++) skip[i] = ch[i];
    skip[gap] = ch[gap + 1];
    fp_session *x = fp_session_restore_log(g_engine, snap0, skip, gap + 1, &err);
    CHECK(x == NULL && err.code == FP_ERR_ARG);
    fp_session_free(x);
    const char *junk[1] = { "{\"change\":1,\"nodes\":[{\"id\":99999}],\"forks\":[],\"events\":[],\"events_from\":0,\"n_nodes\":2,\"n_forks\":0}" };
    x = fp_session_restore_log(g_engine, snap0, junk, 1, &err);
    CHECK(x == NULL);
    fp_session_free(x);
    for (size_t cut = 1; cut < strlen(ch[3]); cut += 97) {
        char *part = strndup(ch[3], cut);
        const char *list[4] = { ch[0], ch[1], ch[2], part };
        x = fp_session_restore_log(g_engine, snap0, list, 4, &err);
        CHECK(x == NULL);
        fp_session_free(x);
        free(part);
    }
    for (int i = 0; i < STEPS; i++) free(ch[i]);
    free(full);
    free(snap0);
    fp_save_mark_free(m);
    fp_session_free(s);
}

/* ------------------------------------------------------------ the store */

static const char *db_path(const char *name) {
    static char b[4][512];
    static int k;
    char *p = b[k++ % 4];
    snprintf(p, 512, "%s/%s", g_dir, name);
    return p;
}

/* $FP_TEST_PG: a PostgreSQL database (URL) the store tests run on as well
 * (tests/deploy/run.sh starts one); NULL: SQLite only. g_pg is the one the
 * current run uses. */
static const char *g_pg;

/* A fresh, empty database for a test: a new SQLite file, or PostgreSQL's
 * public schema emptied. */
static const char *fresh_db(const char *name) {
    if (!g_pg) { const char *db = db_path(name); unlink(db); return db; }
    PGconn *c = PQconnectdb(g_pg);
    PGresult *r = PQexec(c, "SET client_min_messages = warning; DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;");
    if (PQresultStatus(r) != PGRES_COMMAND_OK) fprintf(stderr, "cannot empty %s: %s\n", name, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    return g_pg;
}

static int64_t sql_int(const char *db, const char *sql) {
    int64_t v = -1;
    if (g_pg && db == g_pg) {
        PGconn *c = PQconnectdb(db);
        PGresult *r = PQexec(c, sql);
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
            v = strcmp(PQgetvalue(r, 0, 0), "t") == 0 ? 1 : strcmp(PQgetvalue(r, 0, 0), "f") == 0 ? 0 : strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        PQclear(r);
        PQfinish(c);
        return v;
    }
    sqlite3 *h = NULL;
    if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_stmt *q = NULL;
        if (sqlite3_prepare_v2(h, sql, -1, &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW) v = sqlite3_column_int64(q, 0);
        sqlite3_finalize(q);
    }
    sqlite3_close(h);
    return v;
}

static bool sql_exec(const char *db, const char *sql) {
    if (g_pg && db == g_pg) {
        PGconn *c = PQconnectdb(db);
        PGresult *r = PQexec(c, sql);
        bool ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
        if (!ok) fprintf(stderr, "  %s: %s\n", sql, PQerrorMessage(c));
        PQclear(r);
        PQfinish(c);
        return ok;
    }
    sqlite3 *h = NULL;
    bool ok = sqlite3_open(db, &h) == SQLITE_OK && sqlite3_exec(h, sql, NULL, NULL, NULL) == SQLITE_OK;
    sqlite3_close(h);
    return ok;
}

/* Every event of the story has its decision row, by number. */
static bool every_event_logged(const char *db, const char *id, int32_t n_events) {
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(DISTINCT event) FROM decisions WHERE session = '%s' AND event >= 0 AND event < %d",
             id, n_events);
    return sql_int(db, sql) == n_events;
}

static void test_story(void) {
    TEST("store: stories are written as changes with their decisions, snapshots now and then");
    const char *db = fresh_db("story.db");
    fp_error err = {0};
    fp_store *st = fp_store_open(db, true, &err);
    CHECKF(st != NULL, "%s", err.message);
    if (!st) return;
    CHECK(fp_store_schema_version(st) == 4);
    fp_settings set = eager();
    fp_session *s = fp_session_new(g_engine, PROMPT, &set, &err);
    fp_decision_meta meta = { .session_id = "0123456789abcdef", .profile = "ann", .model_sha256 = "x", .modality = "test" };
    uint64_t v = fp_store_version(st);
    CHECK(v >= 1000); /* the counter starts at the clock (ms), where versions were before */
    fp_store_session *ps = s ? fp_store_session_create(st, "a title", 1234, ++v, s, &meta, NULL, &err) : NULL;
    CHECKF(ps != NULL, "%s", err.message);
    if (!ps) { fp_session_free(s); fp_store_close(st); return; }
    uint32_t r = 5;
    int32_t mf = 0;
    int64_t max_change = 0;
    fp_story_stats stats;
    for (int i = 0; i < 120; i++) {
        random_step(s, &r, &mf);
        CHECK(fp_store_session_write(st, ps, s, ++v, &meta, NULL, &err) == FP_OK);
        fp_store_session_stats(ps, &stats);
        if (stats.snapshots == 1 && stats.last_bytes > max_change) max_change = stats.last_bytes;
    }
    fp_store_session_stats(ps, &stats);
    CHECKF(stats.snapshots >= 2, "%lld snapshots in %lld writes", (long long)stats.snapshots, (long long)stats.writes);
    fprintf(stderr, "  %lld writes, %lld snapshots, %lld bytes (largest change with its decisions %lld)\n",
            (long long)stats.writes, (long long)stats.snapshots, (long long)stats.total_bytes, (long long)max_change);
    CHECK(every_event_logged(db, meta.session_id, fp_session_n_events(s)));
    /* the changes kept are exactly those after the snapshot */
    CHECK(sql_int(db, "SELECT count(*) FROM session_changes") == sql_int(db, "SELECT s.seq - p.seq FROM sessions s JOIN session_snapshots p ON p.session = s.id"));
    CHECK(sql_int(db, "SELECT version FROM sessions") == (int64_t)v);
    char *live = fp_session_save(s);
    fp_store_session *ps2 = NULL;
    fp_story_info info;
    fp_session *x = fp_store_session_load(st, g_engine, meta.session_id, &ps2, &info, &err);
    CHECKF(x != NULL, "%s", err.message);
    if (x) {
        char *back = fp_session_save(x);
        CHECK(live && back && strcmp(live, back) == 0);
        CHECK(strcmp(info.title, "a title") == 0 && info.created == 1234 && info.version == v);
        free(back);
        /* the loaded handle writes on where the other stopped */
        random_step(x, &r, &mf);
        CHECK(fp_store_session_write(st, ps2, x, ++v, &meta, NULL, &err) == FP_OK);
        /* the first handle is stale now: refused, not corrupting */
        CHECK(fp_store_session_write(st, ps, s, ++v, &meta, NULL, &err) == FP_ERR_STATE);
    }
    fp_session_free(x);
    fp_store_session_free(ps2);
    CHECK(fp_store_session_load(st, g_engine, "ffffffffffffffff", &ps2, NULL, &err) == NULL && err.code == FP_ERR_EMPTY);
    /* listing, deleting */
    fp_story_info rows[4];
    CHECK(fp_store_sessions(st, rows, 4, &err) == 1 && strcmp(rows[0].id, meta.session_id) == 0);
    bool existed = false;
    CHECK(fp_store_session_delete(st, meta.session_id, &existed, &err) == FP_OK && existed);
    CHECK(fp_store_session_delete(st, meta.session_id, &existed, &err) == FP_OK && !existed);
    CHECK(fp_store_sessions(st, rows, 4, &err) == 0);
    CHECK(sql_int(db, "SELECT count(*) FROM session_changes") == 0);
    free(live);
    fp_store_session_free(ps);
    fp_session_free(s);
    fp_store_close(st);
}

static void test_one_transaction(void) {
    TEST("store: a change and its decisions are written together or not at all");
    const char *db = fresh_db("tx.db");
    fp_error err = {0};
    fp_store *st = fp_store_open(db, true, &err);
    fp_settings set = eager();
    fp_session *s = fp_session_new(g_engine, PROMPT, &set, &err);
    fp_decision_meta meta = { .session_id = "00000000000000aa", .profile = "default", .model_sha256 = "x", .modality = "test" };
    fp_store_session *ps = st && s ? fp_store_session_create(st, "t", 1, 1, s, &meta, NULL, &err) : NULL;
    CHECK(ps != NULL);
    if (!ps) { fp_session_free(s); fp_store_close(st); return; }
    /* the decision log refuses rows: the change must not be stored either */
    CHECK(sql_exec(db, g_pg ? "CREATE FUNCTION no_rows() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'disk full'; END $$ LANGUAGE plpgsql;"
                              "CREATE TRIGGER no_rows BEFORE INSERT ON decisions FOR EACH ROW EXECUTE FUNCTION no_rows()"
                            : "CREATE TRIGGER no_rows BEFORE INSERT ON decisions BEGIN SELECT RAISE(ABORT, 'disk full'); END"));
    CHECK(fp_session_choose(s, 0, false, FP_BY_HUMAN, &err) == FP_OK);
    CHECK(fp_store_session_write(st, ps, s, 2, &meta, NULL, &err) == FP_ERR_IO);
    CHECK(sql_int(db, "SELECT count(*) FROM session_changes") == 0);
    CHECK(sql_int(db, "SELECT seq FROM sessions") == 0);
    CHECK(sql_int(db, "SELECT count(*) FROM decisions") == 0);
    /* once rows go in again, the next write carries both decisions */
    CHECK(sql_exec(db, g_pg ? "DROP TRIGGER no_rows ON decisions" : "DROP TRIGGER no_rows"));
    CHECK(fp_session_choose(s, 1 % fp_session_fork(s)->n_candidates, false, FP_BY_HUMAN, &err) == FP_OK);
    CHECK(fp_store_session_write(st, ps, s, 3, &meta, NULL, &err) == FP_OK);
    CHECK(sql_int(db, "SELECT count(*) FROM decisions") == fp_session_n_events(s));
    CHECK(every_event_logged(db, meta.session_id, fp_session_n_events(s)));
    fp_store_session *ps2 = NULL;
    fp_session *x = fp_store_session_load(st, g_engine, meta.session_id, &ps2, NULL, &err);
    char *a = fp_session_save(s), *b = x ? fp_session_save(x) : NULL;
    CHECK(a && b && strcmp(a, b) == 0);
    free(a); free(b);
    fp_session_free(x);
    fp_store_session_free(ps2);
    fp_store_session_free(ps);
    fp_session_free(s);
    fp_store_close(st);
}

static void test_versions(void) {
    TEST("store: versions only grow, across reopening");
    const char *db = fresh_db("ver.db");
    fp_error err = {0};
    fp_store *st = fp_store_open(db, true, &err);
    CHECK(st != NULL);
    if (!st) return;
    uint64_t v0 = fp_store_version(st);
    fp_settings set = eager();
    fp_session *s = fp_session_new(g_engine, PROMPT, &set, &err);
    fp_decision_meta meta = { .session_id = "00000000000000bb", .profile = "default", .model_sha256 = "x", .modality = "t" };
    fp_store_session *ps = s ? fp_store_session_create(st, "t", 1, v0 + 1, s, &meta, NULL, &err) : NULL;
    CHECK(ps && fp_session_choose(s, 0, false, FP_BY_HUMAN, &err) == FP_OK &&
          fp_store_session_write(st, ps, s, v0 + 2, &meta, NULL, &err) == FP_OK);
    CHECK(fp_store_note_version(st, v0 + 3, &err) == FP_OK);
    fp_store_close(st);
    st = fp_store_open(db, false, &err);
    CHECK(st && fp_store_version(st) == v0 + 3);
    CHECK(st && fp_store_note_version(st, v0, &err) == FP_OK && fp_store_version(st) == v0 + 3); /* never down */
    fp_store_close(st);
    fp_store_session_free(ps);
    fp_session_free(s);
}

static void test_old_database(void) {
    TEST("store: a database made by the previous Forkpoint opens, upgrades and restores");
    const char *src = "tests/fixtures/main-v0.db";
    const char *db = db_path("old.db");
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cp %s %s && rm -f %s-wal %s-shm", src, db, db, db);
    CHECKF(access(src, R_OK) == 0 && system(cmd) == 0, "no fixture %s", src);
    CHECK(sql_int(db, "PRAGMA user_version") == 0);
    int64_t old_rows = sql_int(db, "SELECT count(*) FROM decisions");
    fp_error err = {0};
    fp_store *st = fp_store_open(db, false, &err);
    CHECKF(st != NULL, "%s", err.message);
    if (!st) return;
    CHECK(fp_store_schema_version(st) == 4);
    CHECK(fp_store_count(st, NULL) == old_rows && old_rows > 0);
    fp_story_info rows[8];
    int32_t n = fp_store_sessions(st, rows, 8, &err);
    CHECKF(n == 2, "%d stories", n);
    /* what main showed for each (tests/fixtures/main-v0.txt: id, text) */
    FILE *fx = fopen("tests/fixtures/main-v0.txt", "r");
    CHECK(fx != NULL);
    char line[4096];
    int restored = 0;
    while (fx && fgets(line, sizeof line, fx)) {
        char *tab = strchr(line, '\t');
        if (!tab) continue;
        *tab = 0;
        char *want = tab + 1;
        want[strcspn(want, "\n")] = 0;
        fp_store_session *ps = NULL;
        fp_session *s = fp_store_session_load(st, g_engine, line, &ps, NULL, &err);
        CHECKF(s != NULL, "%s: %s", line, err.message);
        if (!s) continue;
        CHECKF(strcmp(fp_session_text(s), want) == 0, "%s: text \"%s\" != \"%s\"", line, fp_session_text(s), want);
        restored++;
        /* it goes on, and the next write replaces the old snapshot (with its logits) by a new one */
        if (fp_session_fork(s)) CHECK(fp_session_choose(s, 0, false, FP_BY_HUMAN, &err) == FP_OK);
        fp_decision_meta meta = { .session_id = line, .profile = "default", .model_sha256 = "x", .modality = "t" };
        CHECK(fp_store_session_write(st, ps, s, fp_store_version(st) + 1, &meta, NULL, &err) == FP_OK);
        char sql[200];
        snprintf(sql, sizeof sql, "SELECT substr(snapshot, 1, 11) = '{\"format\":2' FROM session_snapshots WHERE session = '%.64s'", line);
        CHECK(sql_int(db, sql) == 1);
        fp_store_session *ps2 = NULL;
        fp_session *x = fp_store_session_load(st, g_engine, line, &ps2, NULL, &err);
        char *a = fp_session_save(s), *b = x ? fp_session_save(x) : NULL;
        CHECK(a && b && strcmp(a, b) == 0);
        free(a); free(b);
        fp_session_free(x);
        fp_store_session_free(ps2);
        fp_store_session_free(ps);
        fp_session_free(s);
    }
    if (fx) fclose(fx);
    CHECK(restored == 2);
    CHECK(fp_store_version(st) > (uint64_t)1700000000000ULL); /* past what the old server handed out */
    fp_store_close(st);
    /* opening again: already current, nothing to do */
    st = fp_store_open(db, false, &err);
    CHECK(st && fp_store_schema_version(st) == 4);
    fp_store_close(st);
    /* a database from a newer Forkpoint is refused, not damaged */
    CHECK(sql_exec(db, "PRAGMA user_version = 99"));
    st = fp_store_open(db, false, &err);
    CHECK(st == NULL && strstr(err.message, "newer") != NULL);
    fp_store_close(st);
}

/* Two handles on one database stand for two servers sharing it: neither
 * overwrites what the other wrote; each notices, reloads and goes on. */
static void test_two_writers(void) {
    TEST("store: two writers of one story or profile: the second is refused, reloads, goes on");
    const char *db = fresh_db("two.db");
    fp_error err = {0};
    fp_store *a = fp_store_open(db, true, &err), *b = a ? fp_store_open(db, false, &err) : NULL;
    CHECKF(a && b, "%s", err.message);
    if (!a || !b) { fp_store_close(a); return; }
    CHECK(fp_store_is_shared(a) == (g_pg != NULL));
    fp_settings set = eager();
    fp_session *s = fp_session_new(g_engine, PROMPT, &set, &err);
    fp_decision_meta meta = { .session_id = "00000000000000cc", .profile = "ann", .model_sha256 = "x", .modality = "t" };
    uint64_t v = fp_store_version(a);
    fp_store_session *pa = s ? fp_store_session_create(a, "t", 1, ++v, s, &meta, NULL, &err) : NULL;
    CHECKF(pa != NULL, "%s", err.message);
    fp_store_session *pb = NULL;
    fp_session *x = pa ? fp_store_session_load(b, g_engine, meta.session_id, &pb, NULL, &err) : NULL;
    CHECKF(x != NULL, "%s", err.message);
    if (!x) { fp_store_session_free(pa); fp_session_free(s); fp_store_close(a); fp_store_close(b); return; }
    bool cur = false;
    CHECK(fp_store_session_current(a, pa, &cur, &err) == FP_OK && cur);
    /* b writes first: a's copy is stale, and a's write is refused */
    CHECK(fp_session_choose(x, 0, false, FP_BY_HUMAN, &err) == FP_OK);
    CHECK(fp_store_session_write(b, pb, x, ++v, &meta, NULL, &err) == FP_OK);
    CHECK(fp_store_session_current(a, pa, &cur, &err) == FP_OK && !cur);
    CHECK(fp_session_choose(s, 1 % fp_session_fork(s)->n_candidates, false, FP_BY_HUMAN, &err) == FP_OK);
    memset(&err, 0, sizeof err);
    CHECK(fp_store_session_write(a, pa, s, ++v, &meta, NULL, &err) == FP_ERR_STATE && strstr(err.message, "retry"));
    /* what b wrote is what is there, with its one decision */
    CHECK(sql_int(db, "SELECT count(*) FROM decisions") == 1);
    /* a reloads and goes on from b's state */
    fp_store_session *pa2 = NULL;
    fp_session *y = fp_store_session_load(a, g_engine, meta.session_id, &pa2, NULL, &err);
    char *want = fp_session_save(x), *got = y ? fp_session_save(y) : NULL;
    CHECK(want && got && strcmp(want, got) == 0);
    free(want); free(got);
    if (y && fp_session_fork(y)) {
        CHECK(fp_session_choose(y, 0, false, FP_BY_HUMAN, &err) == FP_OK);
        CHECK(fp_store_session_write(a, pa2, y, ++v, &meta, NULL, &err) == FP_OK);
    }
    /* versions never go backwards, whoever writes */
    CHECK(fp_store_session_write(b, pb, x, 1, &meta, NULL, &err) == FP_ERR_STATE);
    CHECK(sql_int(db, "SELECT version FROM sessions") == (int64_t)v);
    /* profiles: learned through a, seen by b; b's stale copy cannot overwrite */
    fp_prefs *p = fp_prefs_new(fp_model_n_vocab(g_model)), *pb_prefs = NULL;
    CHECK(fp_store_profile_load(a, "ann", "x", &pb_prefs, &err) == FP_OK && pb_prefs == NULL);
    CHECK(fp_store_profile_save(a, "ann", "x", p, &err) == FP_OK);
    CHECK(fp_store_profile_load(b, "ann", "x", &pb_prefs, &err) == FP_OK && pb_prefs != NULL);
    bool changed = true;
    CHECK(fp_store_profile_changed(b, "ann", &changed, &err) == FP_OK && !changed);
    const fp_fork *f = fp_session_event(y ? y : x, 0);
    if (f) fp_prefs_learn(p, "", 0, f);
    CHECK(fp_store_profile_save(a, "ann", "x", p, &err) == FP_OK);
    CHECK(fp_store_profile_changed(b, "ann", &changed, &err) == FP_OK && changed);
    memset(&err, 0, sizeof err);
    CHECK(fp_store_profile_save(b, "ann", "x", pb_prefs, &err) == FP_ERR_STATE);
    fp_prefs_free(pb_prefs);
    pb_prefs = NULL;
    CHECK(fp_store_profile_load(b, "ann", "x", &pb_prefs, &err) == FP_OK && pb_prefs &&
          fp_prefs_n_learned(pb_prefs) == fp_prefs_n_learned(p));
    CHECK(pb_prefs && fp_store_profile_save(b, "ann", "x", pb_prefs, &err) == FP_OK);
    fp_prefs_free(pb_prefs);
    fp_prefs_free(p);
    fp_session_free(y);
    fp_store_session_free(pa2);
    fp_session_free(x);
    fp_store_session_free(pb);
    fp_store_session_free(pa);
    fp_session_free(s);
    fp_store_close(a);
    fp_store_close(b);
}

/* PostgreSQL only: a connection cut by the server (as when it restarts) is
 * made again at the next write; a server that is not there is a clear
 * error, not a crash. */
static void test_lost_connection(void) {
    TEST("store (PostgreSQL): a lost connection comes back at the next write; no server is a clear error");
    const char *db = fresh_db("lost.db");
    fp_error err = {0};
    fp_store *st = fp_store_open(db, true, &err);
    CHECKF(st != NULL, "%s", err.message);
    if (!st) return;
    fp_settings set = eager();
    fp_session *s = fp_session_new(g_engine, PROMPT, &set, &err);
    fp_decision_meta meta = { .session_id = "00000000000000dd", .profile = "default", .model_sha256 = "x", .modality = "t" };
    uint64_t v = fp_store_version(st);
    fp_store_session *ps = s ? fp_store_session_create(st, "t", 1, ++v, s, &meta, NULL, &err) : NULL;
    CHECK(ps != NULL);
    /* every other connection to this database is cut */
    CHECK(sql_int(db, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                      " WHERE datname = current_database() AND pid <> pg_backend_pid()") >= 1);
    CHECK(ps && fp_session_choose(s, 0, false, FP_BY_HUMAN, &err) == FP_OK);
    CHECKF(ps && fp_store_session_write(st, ps, s, ++v, &meta, NULL, &err) == FP_OK, "%s", err.message);
    CHECK(sql_int(db, "SELECT count(*) FROM decisions") == 1);
    /* a read outside a transaction too: answered at once, on a new connection */
    CHECK(sql_int(db, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                      " WHERE datname = current_database() AND pid <> pg_backend_pid()") >= 1);
    CHECK(fp_store_version(st) == v);
    bool cur = false;
    CHECK(ps && fp_store_session_current(st, ps, &cur, &err) == FP_OK && cur);
    fp_store_session_free(ps);
    fp_session_free(s);
    fp_store_close(st);
    /* nobody listens on port 1 */
    memset(&err, 0, sizeof err);
    st = fp_store_open("postgresql://fp:secret-word@127.0.0.1:1/none", true, &err);
    CHECK(st == NULL && err.code == FP_ERR_IO && strstr(err.message, "PostgreSQL") && !strstr(err.message, "secret-word"));
    fp_store_close(st);
}

/* The tests of the store that run on either database. */
static void store_tests(void) {
    test_story();
    test_one_transaction();
    test_versions();
    test_two_writers();
    if (g_pg) test_lost_connection();
}

int main(void) {
    fp_error err = {0};
    if (!h_open_stories(&g_model, &g_engine)) return 1;
    snprintf(g_dir, sizeof g_dir, "/tmp/fp-store-test-XXXXXX");
    if (!mkdtemp(g_dir)) { printf("0 passed, 1 failed\n"); return 1; }
    (void)err;
    test_no_logits();
    test_changes();
    store_tests();
    test_old_database();
    const char *pg = getenv("FP_TEST_PG");
    if (pg && *pg) {
        fprintf(stderr, "== the store tests again, on PostgreSQL\n");
        g_pg = pg;
        store_tests();
        g_pg = NULL;
    }
    fp_engine_free(g_engine);
    fp_model_free(g_model);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", g_dir);
    return h_finish();
}
