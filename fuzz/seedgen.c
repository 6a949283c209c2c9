/*
 * seedgen.c — writes the seed corpora of the fuzz targets that need real
 * output of the library: saved sessions (restore), decision-log rows
 * (store), settings objects (settings) and small GGUF files (model).
 *
 * Why a program: seeds must be what Forkpoint really writes, so they are
 * made by the code that writes them, on stories260K. Run it by hand when a
 * format changes and commit the result:
 *     make build/fuzz/seedgen && build/fuzz/seedgen fuzz/corpus
 * (models from $FP_TEST_MODELS or ../shared/models). Files are overwritten.
 */
#include "forkpoint.h"
#include "forkpoint_fetch.h"
#include "forkpoint_store.h"

#include "ggml.h"
#include "gguf.h"

#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *g_out;

static void die(const char *what, const char *why) { fprintf(stderr, "seedgen: %s: %s\n", what, why); exit(1); }

static void put(const char *target, const char *name, const void *data, size_t n)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", g_out, target);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s", g_out, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0) die(path, "cannot write");
}

static void put_str(const char *target, const char *name, char *s)
{
    if (!s) die(name, "no document");
    put(target, name, s, strlen(s));
    free(s);
}

/* The sessions: at the first fork, after decisions of every kind, ended. */
static void sessions(fp_engine *e, fp_store *st)
{
    fp_error err = {0};
    fp_settings set = fp_default_settings();
    set.max_tokens = 120;
    fp_session *s = fp_session_new(e, "Once upon a time, there was a little", &set, &err);
    if (!s) die("session", err.message);
    put_str("restore", "first_fork.json", fp_session_save(s));
    put_str("settings", "session.json", fp_settings_to_json(fp_session_settings(s)));
    const char *step[] = { "choose", "preview", "until", "type", "undo", "choose" };
    char name[64];
    for (int i = 0; i < 6 && fp_session_state(s) == FP_STATE_AT_FORK; i++) {
        fp_status rc;
        if (i == 0 || i == 5) rc = fp_session_choose(s, 1, false, FP_BY_HUMAN, &err);
        else if (i == 1) rc = fp_session_choose(s, 0, true, FP_BY_HUMAN, &err);
        else if (i == 2) rc = fp_session_choose_until(s, 0, 1, FP_BY_HUMAN, &err);
        else if (i == 3) rc = fp_session_type_commit(s, " dragon", FP_BY_HUMAN, &err);
        else rc = fp_session_undo(s, &err);
        if (rc != FP_OK) die(step[i], err.message);
        snprintf(name, sizeof name, "after_%d_%s.json", i + 1, step[i]);
        put_str("restore", name, fp_session_save(s));
    }
    /* preference profiles: fresh, and trained on this session's decisions */
    fp_prefs *pr = fp_prefs_new(fp_model_n_vocab(fp_engine_model(e)));
    size_t blen = 0;
    void *blob = pr ? fp_prefs_save(pr, &blen) : NULL;
    if (!blob) die("prefs", "cannot save");
    put("prefs", "fresh.bin", blob, blen);
    free(blob);
    for (int round = 0; round < 40; round++)
        for (int32_t i = 0; i < fp_session_n_events(s); i++) {
            const fp_fork *f = fp_session_event(s, i);
            size_t off = (size_t)f->text_offset < fp_session_text_len(s) ? (size_t)f->text_offset : fp_session_text_len(s);
            (void)fp_prefs_learn(pr, fp_session_text(s), off, f);
        }
    fp_prefs_set_auto(pr, true, 0.9f);
    blob = fp_prefs_save(pr, &blen);
    if (!blob) die("prefs", "cannot save");
    put("prefs", "trained.bin", blob, blen);
    free(blob);
    fp_prefs_free(pr);
    fp_decision_meta meta = { "0123456789abcdef", "default", FP_DEFAULT_MODEL_SHA256, "keyboard" };
    if (fp_store_log_events(st, s, 0, &meta, &err) != fp_session_n_events(s)) die("log", err.message);
    while (fp_session_state(s) == FP_STATE_AT_FORK)
        if (fp_session_continue(s, FP_BY_AUTO, &err) != FP_OK) die("continue", err.message);
    put_str("restore", "ended.json", fp_session_save(s));
    fp_session_free(s);

    set = fp_default_settings();
    set.granularity = FP_GRAN_PHRASE;
    set.k = 3;
    set.sample_auto = true;
    set.seed = 7;
    put_str("settings", "phrase.json", fp_settings_to_json(&set));
    set.granularity = FP_GRAN_TOKEN;
    set.k = 64;
    set.beam_width = 64;
    set.lookahead = 0;
    put_str("settings", "token.json", fp_settings_to_json(&set));
    fp_settings d = fp_default_settings();
    put_str("settings", "default.json", fp_settings_to_json(&d));
}

/* One store seed per logged row (and one with all rows), columns in the
 * order of fuzz_store.c's COLS, each with its type letter. */
static void rows(const char *db_path)
{
    sqlite3 *db;
    sqlite3_stmt *q;
    if (sqlite3_open(db_path, &db) != SQLITE_OK) die(db_path, "cannot open");
    if (sqlite3_prepare_v2(db, "SELECT at, session, profile, model_sha256, settings, context, context_tokens, fork,"
                               " choice_kind, choice_index, accept_preview, typed, chooser, modality, ms"
                               " FROM decisions ORDER BY id", -1, &q, NULL) != SQLITE_OK)
        die("select", sqlite3_errmsg(db));
    size_t cap = 1 << 20, all_n = 0;
    char *all = malloc(cap);
    int r = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
        char *row = malloc(cap);
        size_t n = 0;
        for (int c = 0; c < 15; c++) {
            if (c) row[n++] = 0x1f;
            int t = sqlite3_column_type(q, c);
            const char *v = (const char *)sqlite3_column_text(q, c);
            size_t len = (size_t)sqlite3_column_bytes(q, c);
            row[n++] = t == SQLITE_INTEGER ? 'i' : t == SQLITE_FLOAT ? 'r' : t == SQLITE_NULL ? 'n' : 't';
            if (t != SQLITE_NULL && n + len + 2 < cap) { memcpy(row + n, v, len); n += len; }
        }
        char name[32];
        snprintf(name, sizeof name, "row_%d", ++r);
        put("store", name, row, n);
        if (all_n + n + 1 < cap && r <= 8) {
            if (all_n) all[all_n++] = 0x1e;
            memcpy(all + all_n, row, n);
            all_n += n;
        }
        free(row);
    }
    if (r == 0) die("rows", "nothing logged");
    put("store", "all_rows", all, all_n);
    free(all);
    sqlite3_finalize(q);
    sqlite3_close(db);
}

/* Small GGUF seeds from stories260K: its tokenizer alone (vocab-only, no
 * tensors) and the model cut to its first layer. Both load; mutating them is
 * cheaper than mutating the 1.2 MB original. stem names the files; variants
 * 1 writes the tokenizer only (TinyStories-656K's: no byte tokens, no "[",
 * which llama.cpp's tokenizer would abort on). */
static void models(const char *src, const char *stem, int variants)
{
    struct ggml_context *data = NULL;
    struct gguf_init_params gp = { .no_alloc = false, .ctx = &data };
    struct gguf_context *g = gguf_init_from_file(src, gp);
    if (!g) die(src, "gguf cannot read it");
    char tmp[PATH_MAX], dst[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s/model", g_out);
    mkdir(tmp, 0755);
    for (int variant = 0; variant < variants; variant++) {
        struct gguf_context *o = gguf_init_empty();
        gguf_set_kv(o, g);
        if (variant == 1) {
            gguf_set_val_u32(o, "llama.block_count", 1);
            for (int64_t i = 0; i < gguf_get_n_tensors(g); i++) {
                const char *tn = gguf_get_tensor_name(g, i);
                if (strncmp(tn, "blk.", 4) == 0 && strncmp(tn, "blk.0.", 6) != 0) continue;
                gguf_add_tensor(o, ggml_get_tensor(data, tn));
            }
        }
        snprintf(dst, sizeof dst, "%s/model/%s-%s.gguf", g_out, stem, variant ? "1layer" : "vocab");
        if (!gguf_write_to_file(o, dst, false)) die(dst, "cannot write");
        gguf_free(o);
    }
    gguf_free(g);
    ggml_free(data);
}

int main(int argc, char **argv)
{
    if (argc != 2) { fprintf(stderr, "usage: seedgen OUT_DIR (e.g. fuzz/corpus)\n"); return 2; }
    g_out = argv[1];
    const char *dir = getenv("FP_TEST_MODELS");
    if (!dir || !*dir) dir = "../shared/models";
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/stories260K.gguf", dir);
    fp_error err = {0};
    fp_model *m = fp_model_load(path, NULL, &err);
    if (!m) die(path, err.message);
    fp_engine_params ep = fp_engine_default_params();
    ep.n_threads = 1;
    fp_engine *e = fp_engine_new(m, &ep, &err);
    if (!e) die("engine", err.message);
    char db[] = "/tmp/fp-seedgen-XXXXXX";
    int fd = mkstemp(db);
    if (fd < 0) die("mkstemp", "failed");
    close(fd);
    unlink(db);
    fp_store *st = fp_store_open(db, true, &err);
    if (!st) die(db, err.message);
    sessions(e, st);
    fp_store_close(st);
    rows(db);
    unlink(db);
    fp_engine_free(e);
    fp_model_free(m);
    models(path, "stories260K", 2);
    snprintf(path, sizeof path, "%s/tinystories-656k/tinystories-656k-q8_0.gguf", dir);
    models(path, "tinystories-656k", 1);
    return 0;
}
