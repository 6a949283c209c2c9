/*
 * chat.c — a conversation rendered as the prompt text a chat model expects.
 *
 * Why in the core: every front end that talks to a chat model (the
 * OpenAI-compatible server today, dialogue sessions later) must turn
 * role/content messages into exactly the text the model was trained on,
 * and that must be written once. The rendering itself is llama.cpp's
 * (llama_chat_apply_template): it knows a fixed list of templates by name
 * and recognises a model's Jinja template (GGUF tokenizer.chat_template) by
 * its markers; no Jinja interpreter runs, so a template it does not know is
 * refused with a clear error rather than rendered wrongly.
 *
 * Cost: one pass over the messages to size the buffer, one render (two when
 * the first guess at the size was short); one allocation for the result.
 */
#include "core/internal.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

const char *fp_model_chat_template(const fp_model *m) {
    if (!m || !m->lm) return NULL;
    return llama_model_chat_template(m->lm, NULL);
}

int32_t fp_chat_builtin_templates(const char **out, int32_t cap) {
    int32_t n = llama_chat_builtin_templates(NULL, 0);
    if (out && cap > 0) llama_chat_builtin_templates(out, (size_t)(cap < n ? cap : n));
    return n;
}

fp_status fp_chat_render(const fp_model *m, const char *tmpl, const fp_chat_message *msgs, int32_t n,
                         bool add_assistant, char **out, fp_error *err) {
    if (!out) return fpi_fail(err, FP_ERR_ARG, "no output");
    *out = NULL;
    if (!m) return fpi_fail(err, FP_ERR_ARG, "no model");
    if (n < 0 || (n > 0 && !msgs)) return fpi_fail(err, FP_ERR_ARG, "no messages");
    const char *t = tmpl ? tmpl : fp_model_chat_template(m);
    if (!t)
        return fpi_fail(err, FP_ERR_MODEL,
                        "the model has no chat template (tokenizer.chat_template); name a built-in one (chatml, llama2, phi3, ...)");
    size_t total = strlen(t) + 64;
    struct llama_chat_message *lm = malloc(sizeof *lm * (size_t)(n > 0 ? n : 1));
    if (!lm) return fpi_fail(err, FP_ERR_NOMEM, "out of memory");
    for (int32_t i = 0; i < n; i++) {
        if (!msgs[i].role || !msgs[i].content) {
            free(lm);
            return fpi_fail(err, FP_ERR_ARG, "message %d has no role or content", i);
        }
        size_t rl = strlen(msgs[i].role), cl = strlen(msgs[i].content);
        if (!fp_utf8_valid(msgs[i].role, rl) || !fp_utf8_valid(msgs[i].content, cl)) {
            free(lm);
            return fpi_fail(err, FP_ERR_UTF8, "message %d is not valid UTF-8", i);
        }
        total += rl + cl + 64;   /* a template's markup per message is far below 64 bytes */
        lm[i].role = msgs[i].role;
        lm[i].content = msgs[i].content;
    }
    if (total > INT32_MAX / 2) { free(lm); return fpi_fail(err, FP_ERR_ARG, "the conversation is too long"); }
    int32_t cap = (int32_t)total;
    char *buf = malloc((size_t)cap + 1);
    int32_t len = buf ? llama_chat_apply_template(t, lm, (size_t)n, add_assistant, buf, cap) : 0;
    if (buf && len > cap) {   /* longer than guessed: render again at the size it said */
        char *nb = realloc(buf, (size_t)len + 1);
        if (!nb) { free(buf); buf = NULL; }
        else {
            buf = nb;
            cap = len;
            len = llama_chat_apply_template(t, lm, (size_t)n, add_assistant, buf, cap);
        }
    }
    free(lm);
    if (!buf) return fpi_fail(err, FP_ERR_NOMEM, "out of memory");
    if (len < 0) {
        free(buf);
        return fpi_fail(err, FP_ERR_ARG, "%s is not a chat template llama.cpp can render",
                        tmpl ? "the named template" : "the model's template");
    }
    assert(len <= cap);
    buf[len] = '\0';
    *out = buf;
    return FP_OK;
}
