/*
 * fuzz_model.c — fp_model_load (src/core/model.c, then llama.cpp's GGUF
 * loader) on mutated copies of small GGUF files: stories260K and the
 * vocab-only tokenizers (seeds in fuzz/corpus/model, see docs/fuzzing.md).
 *
 * Why: a model is a file a user downloads or points --model at; a truncated
 * or corrupt one must be refused with FP_ERR_MODEL / FP_ERR_IO and a message.
 * The input is written to a memfd and loaded through /proc/self/fd/N, as a
 * whole model (then, when that works, an engine and a short session run on
 * it: the weights may now be NaN) or else vocab-only (then it tokenizes).
 * llama.cpp is not instrumented (a gcc build): coverage comes from our side
 * only, its crashes and aborts still count. Its log is silenced by
 * fp_model_load (verbose = false). Inputs above MAX_SIZE are skipped.
 */
#include "fuzz_common.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAX_SIZE (3 << 20)

static int g_fd = -1;
static char g_path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    g_fd = memfd_create("fp-fuzz-model", 0);
    if (g_fd < 0) { perror("memfd_create"); abort(); }
    snprintf(g_path, sizeof g_path, "/proc/self/fd/%d", g_fd);
    return 0;
}

static void use_vocab(const fp_model *m)
{
    static const char text[] = "Once upon a time, there was a little girl. \xc3\xa9t\xc3\xa9 \xe2\x80\x94 123";
    int32_t toks[128];
    int32_t n = fp_tokenize(m, text, sizeof text - 1, toks, 128, true);
    FZ_CHECK(n >= -1, "tokenize returned %d", n);
    /* characters a vocabulary may lack ("[" in TinyStories-656K, which has
     * no byte tokens): refused with a reason, never an abort in llama.cpp */
    static const char odd[] = "a [b] {c} <|end|> \xe2\x96\x81 \xf0\x9f\x98\x80";
    for (int sp = 0; sp < 2; sp++) {
        int32_t no = sp ? fp_tokenize_special(m, odd, sizeof odd - 1, toks, 128, true)
                        : fp_tokenize(m, odd, sizeof odd - 1, toks, 128, true);
        fp_error e = {0};
        fp_status cs = fp_tokenize_check(m, odd, sizeof odd - 1, sp, &e);
        FZ_CHECK((no == -1) == (cs != FP_OK), "tokenize gave %d, the check %s", no, fp_status_name(cs));
        FZ_CHECK(cs == FP_OK || e.message[0], "refused without a message");
    }
    if (n > 128) n = 128;
    char out[1024];
    if (n > 0) (void)fp_detokenize(m, toks, n, out, sizeof out);
    int32_t nv = fp_model_n_vocab(m);
    FZ_CHECK(nv > 0, "a loaded model with %d tokens", nv);
    for (int32_t t = 0; t < nv && t < 64; t++) (void)fp_token_piece(m, t, out, sizeof out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_SIZE) return 0;
    if (ftruncate(g_fd, 0) != 0 || pwrite(g_fd, data, size, 0) != (ssize_t)size) abort();
    fp_error err = {0};
    fp_model_params mp = fp_model_default_params();
    fp_model *m = fp_model_load(g_path, &mp, &err);
    if (m) {
        use_vocab(m);
        fp_engine_params ep = fp_engine_default_params();
        ep.n_threads = 1;
        ep.n_seq_max = 4;
        ep.n_ctx = 256;
        fp_engine *e = fp_engine_new(m, &ep, &err);
        if (e) {
            fp_settings st = fp_default_settings();
            st.max_tokens = 8;
            fp_session *s = fp_session_new(e, "Once upon a time", &st, &err);
            if (s && fp_session_state(s) == FP_STATE_AT_FORK) (void)fp_session_choose(s, 0, true, FP_BY_SCRIPT, &err);
            fp_session_free(s);
            fp_engine_free(e);
        }
        fp_model_free(m);
        return 0;
    }
    FZ_CHECK(err.message[0], "refused without a message");
    FZ_CHECK(err.code == FP_ERR_MODEL || err.code == FP_ERR_IO || err.code == FP_ERR_NOMEM,
             "refused with %s: %s", fp_status_name(err.code), err.message);
    mp.vocab_only = true;
    m = fp_model_load(g_path, &mp, &err);
    if (m) {
        FZ_CHECK(fp_model_is_vocab_only(m), "vocab-only load gave a full model");
        use_vocab(m);
        fp_model_free(m);
    } else {
        FZ_CHECK(err.message[0], "refused without a message");
    }
    return 0;
}
