/*
 * simple.c — the smallest honest use of libforkpoint: load a model, start a
 * session, and at every fork take the most probable candidate, printing the
 * cloud as it goes. Built against an installed library:
 *
 *   cc simple.c $(pkg-config --cflags --libs forkpoint) -o simple
 *   ./simple path/to/model.gguf "Once upon a time"
 */
#include <forkpoint.h>

#include <stdio.h>

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s MODEL.gguf [PROMPT]\n", argv[0]); return 2; }
    const char *prompt = argc > 2 ? argv[2] : "Once upon a time, there was a little";
    fp_error err = {0};
    fp_model *model = fp_model_load(argv[1], NULL, &err);
    if (!model) { fprintf(stderr, "%s\n", err.message); return 2; }
    fp_engine *engine = fp_engine_new(model, NULL, &err);
    fp_settings st = fp_default_settings();
    st.max_tokens = 60;
    fp_session *s = engine ? fp_session_new(engine, prompt, &st, &err) : NULL;
    if (!s) { fprintf(stderr, "%s\n", err.message); fp_engine_free(engine); fp_model_free(model); return 1; }
    int forks = 0;
    while (fp_session_state(s) == FP_STATE_AT_FORK) {
        const fp_fork *f = fp_session_fork(s);
        printf("fork %d:", f->id);
        for (int32_t i = 0; i < f->n_candidates && i < 4; i++) printf("  %s (%.0f%%)", f->candidates[i].text, 100 * f->candidates[i].prob);
        printf("\n");
        forks++;
        if (fp_session_choose(s, 0, false, FP_BY_SCRIPT, &err) != FP_OK) { fprintf(stderr, "%s\n", err.message); break; }
    }
    printf("%s\n(%d forks, ended: %s)\n", fp_session_text(s), forks, fp_session_end_reason(s));
    fp_session_free(s);
    fp_engine_free(engine);
    fp_model_free(model);
    return 0;
}
