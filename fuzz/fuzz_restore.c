/*
 * fuzz_restore.c — fp_session_restore (src/core/json.c) on any document,
 * over stories260K.
 *
 * Why: saved sessions are read back from SQLite at server start and from
 * files; a damaged or hand-edited one must be refused (FP_ERR_ARG or
 * FP_ERR_MODEL with a message), never crash, leak or build a session the
 * rest of the library then trips over. So an accepted document is used:
 * saved again (and that save must restore), shown as a tree, and, at an open
 * fork, decided (the first candidate), which decodes on the restored state.
 */
#include "fuzz_common.h"

#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fz_model_engine(NULL, NULL);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fp_engine *e;
    fz_model_engine(NULL, &e);
    char *json = fz_strndup(data, size);
    fp_error err = {0};
    fp_session *s = fp_session_restore(e, json, &err);
    free(json);
    if (!s) {
        FZ_CHECK(err.code == FP_ERR_ARG || err.code == FP_ERR_MODEL || err.code == FP_ERR_CONTEXT
                 || err.code == FP_ERR_UTF8 || err.code == FP_ERR_EMPTY,
                 "refused with %s: %s", fp_status_name(err.code), err.message);
        FZ_CHECK(err.message[0] != 0, "refused without a message");
        return 0;
    }
    char *again = fp_session_save(s);
    FZ_CHECK(again != NULL, "an accepted session cannot be saved");
    fp_session *s2 = fp_session_restore(e, again, &err);
    FZ_CHECK(s2 != NULL, "a restored session's own save is refused: %s", err.message);
    FZ_CHECK(fp_session_text_len(s2) == fp_session_text_len(s) &&
             memcmp(fp_session_text(s2), fp_session_text(s), fp_session_text_len(s)) == 0,
             "the text changed across save and restore");
    fp_session_free(s2);
    free(again);
    free(fp_session_tree_json(s));
    if (fp_session_state(s) == FP_STATE_AT_FORK) {
        const fp_fork *f = fp_session_fork(s);
        FZ_CHECK(f && f->n_candidates >= 0, "at a fork without a fork");
        if (f->n_candidates > 0) {
            fp_status rc = fp_session_choose(s, 0, false, FP_BY_SCRIPT, &err);
            (void)rc; /* a refusal is fine (e.g. the context is full); a crash is not */
        }
    }
    fp_session_free(s);
    return 0;
}
