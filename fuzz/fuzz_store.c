/*
 * fuzz_store.c — the decision-log readers behind `forkpoint export` and
 * `forkpoint learn` (fp_store_export, fp_store_choices in src/store/store.c)
 * on fuzzed rows of a real SQLite database.
 *
 * Input: rows separated by 0x1E, each row's columns separated by 0x1F in
 * the order of COLS below; a column's first byte gives its SQLite type
 * (t text, i integer, r real, b blob, n NULL) and the rest its value; a
 * missing column is NULL. The table is created without types or NOT NULL
 * constraints before fp_store_open sees the file: fp_store_open accepts any
 * table with the right column names, so a database written by another tool
 * (or damaged) can hold exactly these rows, and `forkpoint export --db` and
 * `forkpoint learn --db` must cope: rows out, or a clear error, no crash.
 *
 * Cost: one small write transaction and two reads per input (the export
 * format, the profile and the model filter follow from the input's size, so
 * each is reached), on a file in /dev/shm (tmpfs) when there is one.
 */
#include "fuzz_common.h"
#include "forkpoint_store.h"
#include "forkpoint_fetch.h"

#include <sqlite3.h>
#include <string.h>
#include <unistd.h>

static const char *COLS[] = { "at", "session", "profile", "model_sha256", "settings", "context", "context_tokens",
                              "fork", "choice_kind", "choice_index", "accept_preview", "typed", "chooser",
                              "modality", "ms" };
#define NCOLS ((int)(sizeof COLS / sizeof COLS[0]))
#define MAX_ROWS 8

static sqlite3 *g_db;     /* the harness's own connection, for writing rows */
static fp_store *g_st;    /* the store's, for reading them */
static sqlite3_stmt *g_ins;
static FILE *g_null;
static char g_path[64];

static void cleanup(void)
{
    fp_store_close(g_st);
    sqlite3_finalize(g_ins);
    sqlite3_close(g_db);
    if (g_null) fclose(g_null);
    char p[80];
    unlink(g_path);
    snprintf(p, sizeof p, "%s-wal", g_path); unlink(p);
    snprintf(p, sizeof p, "%s-shm", g_path); unlink(p);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(g_path, sizeof g_path, "%s/fp-fuzz-store-%d.db", dir, (int)getpid());
    unlink(g_path);
    if (sqlite3_open(g_path, &g_db) != SQLITE_OK) abort();
    char sql[1024] = "CREATE TABLE decisions(id INTEGER PRIMARY KEY";
    for (int i = 0; i < NCOLS; i++) { strcat(sql, ", "); strcat(sql, COLS[i]); }
    strcat(sql, ")");
    if (sqlite3_exec(g_db, sql, NULL, NULL, NULL) != SQLITE_OK) abort();
    sqlite3_exec(g_db, "PRAGMA synchronous=OFF;", NULL, NULL, NULL); /* a scratch file: no fsync */
    fp_error err = {0};
    g_st = fp_store_open(g_path, false, &err);
    if (!g_st) { fprintf(stderr, "fuzz: %s\n", err.message); abort(); }
    char ins[1024] = "INSERT INTO decisions(";
    for (int i = 0; i < NCOLS; i++) { strcat(ins, i ? ", " : ""); strcat(ins, COLS[i]); }
    strcat(ins, ") VALUES(");
    for (int i = 0; i < NCOLS; i++) strcat(ins, i ? ", ?" : "?");
    strcat(ins, ")");
    if (sqlite3_prepare_v2(g_db, ins, -1, &g_ins, NULL) != SQLITE_OK) abort();
    g_null = fopen("/dev/null", "w");
    if (!g_null) abort();
    atexit(cleanup);
    return 0;
}

static void bind(int col, char *v, size_t n)
{
    if (n == 0 || v[0] == 'n') { sqlite3_bind_null(g_ins, col); return; }
    char *rest = v + 1;
    switch (v[0]) {
    case 'i': sqlite3_bind_int64(g_ins, col, strtoll(rest, NULL, 10)); break;
    case 'r': sqlite3_bind_double(g_ins, col, strtod(rest, NULL)); break;
    case 'b': sqlite3_bind_blob(g_ins, col, rest, (int)(n - 1), SQLITE_TRANSIENT); break;
    default:  sqlite3_bind_text(g_ins, col, rest, (int)(n - 1), SQLITE_TRANSIENT); break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16) return 0;
    if (sqlite3_exec(g_db, "BEGIN; DELETE FROM decisions;", NULL, NULL, NULL) != SQLITE_OK) abort();
    char *rows_buf;
    char *rows[MAX_ROWS];
    int nrows = fz_split(data, size, 0x1e, rows, MAX_ROWS, &rows_buf);
    for (int r = 0; r < nrows; r++) {
        /* columns of this row; fz_split copies, so lengths are measured on the copy
         * (a NUL inside a column ends it, as it would for a C string) */
        size_t rl = strlen(rows[r]);
        char *cols_buf;
        char *cols[NCOLS];
        int ncols = fz_split((const uint8_t *)rows[r], rl, 0x1f, cols, NCOLS, &cols_buf);
        sqlite3_reset(g_ins);
        sqlite3_clear_bindings(g_ins);
        for (int c = 0; c < ncols; c++) bind(c + 1, cols[c], strlen(cols[c]));
        sqlite3_step(g_ins);
        free(cols_buf);
    }
    free(rows_buf);
    if (sqlite3_exec(g_db, "COMMIT;", NULL, NULL, NULL) != SQLITE_OK) abort();

    /* one export and one training-data read per input (each pass parses every
     * row's JSON): which format and whether by profile follow from the size */
    fp_error err = {0};
    fp_export_format fmt = (fp_export_format)(size % 4);
    const char *profile = (size / 4) % 2 ? "default" : NULL;
    int64_t n = -1;
    fp_status rc = fp_store_export(g_st, fmt, profile, g_null, &n, &err);
    FZ_CHECK(rc == FP_OK || rc == FP_ERR_EMPTY || rc == FP_ERR_IO || (profile && rc == FP_ERR_ARG),
             "export: %s", fp_status_name(rc));
    FZ_CHECK(rc != FP_OK || n > 0, "export OK with %lld rows", (long long)n);
    fp_logged_choice *c = NULL;
    int32_t nc = -1, other = -1;
    rc = fp_store_choices(g_st, profile, (size / 8) % 2 ? FP_DEFAULT_MODEL_SHA256 : NULL, &c, &nc, &other, &err);
    FZ_CHECK(rc == FP_OK || rc == FP_ERR_EMPTY || rc == FP_ERR_ARG || rc == FP_ERR_MODEL || rc == FP_ERR_IO,
             "choices: %s", fp_status_name(rc));
    if (rc == FP_OK) {
        FZ_CHECK(nc > 0 && c, "choices OK with %d", nc);
        for (int32_t k = 0; k < nc; k++) {
            FZ_CHECK(c[k].n_chosen > 0 || c[k].typed, "a choice with neither tokens nor text");
            FZ_CHECK(c[k].n_context >= 0 && c[k].n_rejected >= 0 && c[k].n_accepted >= 0, "negative count");
        }
    }
    fp_store_choices_free(c, nc > 0 ? nc : 0);
    return 0;
}
