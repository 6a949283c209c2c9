/*
 * fuzz_dialogue.c — fp_dialogue_restore (src/core/dialogue.c) on any
 * document, over stories260K (the documents name the chatml template).
 *
 * Why: a saved dialogue is read back from files; a damaged or hand-edited
 * one must be refused with a message, never crash or leak, and one that is
 * accepted must be usable: saved again (and that save restores to the same
 * document), rendered, its log read, and its open turn decided or ended.
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
    fp_dialogue *d = fp_dialogue_restore(e, json, &err);
    free(json);
    if (!d) {
        FZ_CHECK(err.code != FP_OK && err.message[0] != 0, "refused without a message (%s)", fp_status_name(err.code));
        FZ_CHECK(err.code != FP_ERR_NOMEM || size > 100000, "refused as out of memory: %s", err.message);
        return 0;
    }
    char *again = fp_dialogue_save(d);
    FZ_CHECK(again != NULL, "an accepted dialogue cannot be saved");
    fp_dialogue *d2 = fp_dialogue_restore(e, again, &err);
    FZ_CHECK(d2 != NULL, "a restored dialogue's own save is refused: %s", err.message);
    char *third = fp_dialogue_save(d2);
    FZ_CHECK(third && !strcmp(third, again), "save, restore, save changed the document");
    free(third);
    free(again);
    fp_dialogue_free(d2);
    free(fp_dialogue_render(d, NULL));
    for (int32_t i = 0; i < fp_dialogue_n_events(d); i++) free(fp_dialogue_event_json(d, i));
    fp_session *s = fp_dialogue_session(d);
    if (s && fp_session_state(s) == FP_STATE_AT_FORK && fp_session_fork(s)->n_candidates > 0)
        (void)fp_session_choose(s, 0, false, FP_BY_SCRIPT, &err);   /* a refusal is fine; a crash is not */
    if (fp_dialogue_session(d)) (void)fp_dialogue_end_turn(d, &err);
    (void)fp_dialogue_undo(d, &err);
    fp_dialogue_free(d);
    return 0;
}
