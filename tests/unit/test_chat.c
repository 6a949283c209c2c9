/*
 * test_chat.c — chat templates (fp_chat_render) and plain completion with
 * log-probabilities (fp_gen), the core functions behind the OpenAI- and
 * llama.cpp-compatible server API.
 *
 *   - rendering is byte-identical to llama_chat_apply_template for several
 *     built-in templates, and for the Phi-3 model's own template
 *     (vocab-only/ggml-vocab-phi-3.gguf carries tokenizer.chat_template);
 *   - a model without a template (stories260K) is FP_ERR_MODEL, an unknown
 *     template FP_ERR_ARG, bad messages FP_ERR_ARG / FP_ERR_UTF8;
 *   - fp_tokenize_special turns the rendered control texts into tokens;
 *   - fp_gen: greedy takes the top token; the model distribution is the
 *     softmax of the logits (sums to ~1 over the vocabulary); post-sampling
 *     with top_k 1 leaves one token at log-probability 0; the same seed
 *     gives the same tokens; the prompt's scores are the next-token ones.
 */
#include "forkpoint.h"
#include "harness.h"
#include <llama.h>
#include <math.h>

static const fp_chat_message MSGS[] = {
    {"system", "You are terse."}, {"user", "Hello, who are you?"}, {"assistant", "A model."}, {"user", "Tell me a story: café ☕"},
};

/* llama.cpp's own rendering, for comparison. */
static char *reference(const char *tmpl, const fp_chat_message *m, int n, bool add) {
    struct llama_chat_message lm[8];
    for (int i = 0; i < n; i++) { lm[i].role = m[i].role; lm[i].content = m[i].content; }
    static char buf[8192];
    int32_t len = llama_chat_apply_template(tmpl, lm, (size_t)n, add, buf, sizeof buf - 1);
    if (len < 0 || len >= (int32_t)sizeof buf) return NULL;
    buf[len] = '\0';
    return buf;
}

int main(void) {
    fp_error err = {0};
    fp_model_params vp = fp_model_default_params();
    vp.vocab_only = true;
    fp_model *phi = fp_model_load(h_model_path("vocab-only/ggml-vocab-phi-3.gguf"), &vp, &err);
    CHECKF(phi != NULL, "%s", err.message);

    TEST("built-in templates render as llama.cpp does");
    const char *names[64];
    int32_t nb = fp_chat_builtin_templates(names, 64);
    CHECKF(nb >= 10, "%d built-in templates", nb);
    static const char *const want[] = {"chatml", "llama2", "llama3", "phi3", "zephyr", "gemma", "mistral-v7", "deepseek3", NULL};
    int tried = 0;
    for (int w = 0; want[w]; w++) {
        bool listed = false;
        for (int32_t i = 0; i < nb && i < 64; i++) listed = listed || strcmp(names[i], want[w]) == 0;
        CHECKF(listed, "%s is not a built-in template", want[w]);
        if (!listed) continue;
        for (int add = 0; add < 2; add++) {
            char *out = NULL;
            fp_status st = fp_chat_render(phi, want[w], MSGS, 4, add, &out, &err);
            const char *ref = reference(want[w], MSGS, 4, add);
            CHECKF(st == FP_OK && ref && strcmp(out, ref) == 0, "%s add=%d: %s", want[w], add, st ? err.message : out);
            free(out);
            tried++;
        }
    }
    CHECK(tried == 16);

    TEST("the model's own template (Phi-3)");
    const char *own = fp_model_chat_template(phi);
    CHECK(own != NULL && strstr(own, "<|user|>") != NULL);
    char *out = NULL;
    CHECK(fp_chat_render(phi, NULL, MSGS + 1, 1, true, &out, &err) == FP_OK);
    CHECKF(out && strcmp(out, "<|user|>\nHello, who are you?<|end|>\n<|assistant|>\n") == 0, "%s", out ? out : err.message);
    const char *ref = own ? reference(own, MSGS, 4, true) : NULL;
    free(out);
    out = NULL;
    CHECK(fp_chat_render(phi, NULL, MSGS, 4, true, &out, &err) == FP_OK && ref && strcmp(out, ref) == 0);
    int32_t toks[256];
    int32_t n = out ? fp_tokenize_special(phi, out, strlen(out), toks, 256, true) : 0;
    bool has_user = false, has_end = false;
    for (int32_t i = 0; i < n; i++) { has_user |= toks[i] == 32010; has_end |= toks[i] == 32007; }
    CHECKF(n > 0 && has_user && has_end, "control texts become tokens (%d tokens)", n);
    /* back to text with the control tokens spelled (Phi-3's tokenizer drops
     * the newline after a control token, so the text is not the same) */
    char back[1024];
    int32_t bl = fp_detokenize_special(phi, toks, n, back, sizeof back - 1);
    if (bl >= 0) back[bl] = '\0';
    CHECKF(bl > 0 && strncmp(back, "<s><|system|>", 13) == 0 && strstr(back, "<|assistant|> A model.<|end|>") != NULL &&
           strstr(back, "café ☕<|end|><|assistant|>") != NULL, "detokenized: %s", back);
    CHECK(fp_detokenize_special(phi, toks, n, back, 4) < -4);   /* too small: minus the size needed */
    int32_t plain = out ? fp_tokenize(phi, out, strlen(out), toks, 256, true) : 0;
    CHECK(plain > n);   /* without parsing, "<|user|>" is spelled in pieces */
    free(out);
    /* a very long conversation: the buffer is grown, not cut */
    static char big[20000];
    memset(big, 'x', sizeof big - 1);
    fp_chat_message bm[2] = {{"user", big}, {"assistant", big}};
    out = NULL;
    CHECK(fp_chat_render(phi, "chatml", bm, 2, true, &out, &err) == FP_OK && out && strlen(out) > 2 * (sizeof big - 1));
    free(out);

    TEST("errors");
    fp_model *st = fp_model_load(h_model_path("stories260K.gguf"), NULL, &err);
    CHECK(st != NULL);
    out = NULL;
    CHECK(fp_chat_render(st, NULL, MSGS, 2, true, &out, &err) == FP_ERR_MODEL && out == NULL && strstr(err.message, "chat template"));
    CHECK(fp_chat_render(st, "chatml", MSGS, 2, true, &out, &err) == FP_OK);
    free(out);
    CHECK(fp_chat_render(phi, "no-such-template {{ nothing }}", MSGS, 2, true, &out, &err) == FP_ERR_ARG);
    fp_chat_message bad[1] = {{"user", NULL}};
    CHECK(fp_chat_render(phi, "chatml", bad, 1, true, &out, &err) == FP_ERR_ARG);
    fp_chat_message inval[1] = {{"user", "\xff\xfe"}};
    CHECK(fp_chat_render(phi, "chatml", inval, 1, true, &out, &err) == FP_ERR_UTF8);
    CHECK(fp_chat_render(phi, "chatml", NULL, 1, true, &out, &err) == FP_ERR_ARG);

    TEST("fp_gen: greedy, distributions, seeds, prompt scores");
    fp_engine_params ep = fp_engine_default_params();
    ep.n_threads = 1;
    ep.n_seq_max = 4;
    fp_engine *e = st ? fp_engine_new(st, &ep, &err) : NULL;
    CHECK(e != NULL);
    int32_t pt[64];
    int32_t np = st ? fp_tokenize(st, "Once upon a time", 16, pt, 64, true) : 0;
    fp_gen_params gp = fp_gen_default_params();
    gp.temperature = 0;
    gp.n_top = 5;
    gp.prompt_logprobs = true;
    fp_gen *g = e ? fp_gen_new(e, pt, np, &gp, &err) : NULL;
    CHECKF(g != NULL, "%s", err.message);
    int32_t greedy[6] = {0};
    for (int i = 0; g && i < 6; i++) {
        fp_gen_token t;
        CHECK(fp_gen_next(g, &t, &err) == FP_OK);
        CHECK(t.n_top == 5 && t.token == t.top[0].token && t.logprob == t.top[0].logprob);
        for (int k = 1; k < t.n_top; k++) CHECK(t.top[k].logprob <= t.top[k - 1].logprob);
        greedy[i] = t.token;
    }
    /* the prompt's scores: token i+1 under the distribution after i */
    fp_gen_token pt1;
    CHECK(g && fp_gen_prompt_token(g, 1, &pt1, &err) == FP_OK && pt1.token == pt[1] && pt1.logprob <= 0 && pt1.n_top == 5);
    CHECK(g && fp_gen_prompt_token(g, 0, &pt1, &err) == FP_ERR_ARG);
    CHECK(g && fp_gen_prompt_token(g, np, &pt1, &err) == FP_ERR_ARG);
    CHECK(fp_gen_n_tokens(g) == np + 6);
    fp_gen_free(g);
    /* the full model distribution sums to 1 */
    gp = fp_gen_default_params();
    gp.n_top = FP_GEN_MAX_TOP;
    g = e ? fp_gen_new(e, pt, np, &gp, &err) : NULL;
    fp_gen_token t;
    double sum = 0;
    if (g && fp_gen_next(g, &t, &err) == FP_OK) for (int k = 0; k < t.n_top; k++) sum += exp(t.top[k].logprob);
    CHECKF(sum > 0.9 && sum <= 1.0001, "top 256 of 512 sum to %f", sum);
    fp_gen_free(g);
    /* post-sampling with top_k 1: one token, probability 1, the greedy one */
    gp = fp_gen_default_params();
    gp.top_k = 1;
    gp.n_top = 5;
    gp.post_sampling = true;
    gp.seed = 3;
    g = e ? fp_gen_new(e, pt, np, &gp, &err) : NULL;
    CHECK(g && fp_gen_next(g, &t, &err) == FP_OK && t.n_top == 1 && t.top[0].logprob == 0.0f && t.token == greedy[0]);
    fp_gen_free(g);
    /* seeds: the same seed, the same tokens */
    int32_t a[8], b[8];
    for (int run = 0; run < 2; run++) {
        gp = fp_gen_default_params();
        gp.seed = 11;
        g = e ? fp_gen_new(e, pt, np, &gp, &err) : NULL;
        for (int i = 0; g && i < 8; i++) { CHECK(fp_gen_next(g, &t, &err) == FP_OK); (run ? b : a)[i] = t.token; if (t.is_eog) break; }
        fp_gen_free(g);
    }
    CHECK(memcmp(a, b, sizeof a) == 0);
    /* bad arguments */
    gp = fp_gen_default_params();
    gp.n_top = FP_GEN_MAX_TOP + 1;
    CHECK(e && fp_gen_new(e, pt, np, &gp, &err) == NULL && err.code == FP_ERR_ARG);
    gp = fp_gen_default_params();
    int32_t oov[1] = {1 << 20};
    CHECK(e && fp_gen_new(e, oov, 1, &gp, &err) == NULL && err.code == FP_ERR_ARG);
    CHECK(e && fp_gen_new(e, pt, 0, &gp, &err) == NULL);
    /* a logit bias of -inf on the greedy token: another one is taken */
    float *bias = calloc((size_t)fp_model_n_vocab(st), sizeof *bias);
    bias[greedy[0]] = -INFINITY;
    gp.temperature = 0;
    gp.logit_bias = bias;
    g = e ? fp_gen_new(e, pt, np, &gp, &err) : NULL;
    CHECK(g && fp_gen_next(g, &t, &err) == FP_OK && t.token != greedy[0]);
    fp_gen_free(g);
    free(bias);

    fp_engine_free(e);
    fp_model_free(st);
    fp_model_free(phi);
    return h_finish();
}
