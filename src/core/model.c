/*
 * model.c — loading a GGUF model and the tokenizer facts built on top of it.
 *
 * Loading checks the file's header first, so the common failures (missing
 * file, not GGUF, GGUF v1, no weights) get a precise message instead of
 * llama.cpp's generic "failed to load". llama.cpp's own log is silenced
 * unless the caller asks for it; its last error line is kept and quoted in
 * our error message so nothing useful is lost.
 *
 * At load every token's piece (its bytes) is rendered once and classified
 * (starts a word, punctuation, end of sentence, ...). The word grouping and
 * the fork budget read these flags on every step, so they must be cheap.
 */
#include "core/internal.h"

#include <errno.h>
#include <gguf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <pthread.h>

/* ---- llama.cpp logging: quiet by default, last error kept for messages */

static _Thread_local char g_last_log_error[200];
static bool g_verbose;

static void log_cb(enum ggml_log_level level, const char *text, void *ud) {
    (void)ud;
    if (g_verbose) fputs(text, stderr);
    if (level == GGML_LOG_LEVEL_ERROR) {
        snprintf(g_last_log_error, sizeof g_last_log_error, "%s", text);
        size_t n = strlen(g_last_log_error);
        while (n > 0 && (g_last_log_error[n - 1] == '\n' || g_last_log_error[n - 1] == ' '))
            g_last_log_error[--n] = 0;
    }
}

static pthread_once_t g_backend_once = PTHREAD_ONCE_INIT;
static void backend_init(void) {
    llama_log_set(log_cb, NULL);
    llama_backend_init();
}

fp_model_params fp_model_default_params(void) {
    fp_model_params p = { .vocab_only = false, .verbose = false, .rpc = NULL, .rpc_timeout_ms = 3000 };
    return p;
}

/* Reads the 8-byte GGUF header: magic and version. */
static fp_status check_header(const char *path, fp_error *err) {
    struct stat st;
    if (stat(path, &st) != 0) return fpi_fail(err, FP_ERR_IO, "cannot open model %s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return fpi_fail(err, FP_ERR_IO, "model %s is not a regular file", path);
    FILE *f = fopen(path, "rb");
    if (!f) return fpi_fail(err, FP_ERR_IO, "cannot open model %s: %s", path, strerror(errno));
    unsigned char h[8];
    size_t n = fread(h, 1, sizeof h, f);
    fclose(f);
    if (n < 8 || memcmp(h, "GGUF", 4) != 0)
        return fpi_fail(err, FP_ERR_MODEL, "%s is not a GGUF file (bad magic)", path);
    uint32_t version = (uint32_t)h[4] | (uint32_t)h[5] << 8 | (uint32_t)h[6] << 16 | (uint32_t)h[7] << 24;
    if (version < 2)
        return fpi_fail(err, FP_ERR_MODEL, "%s is GGUF version %u, which llama.cpp no longer supports (need 2 or 3); reconvert it", path, version);
    if (version > 3)
        return fpi_fail(err, FP_ERR_MODEL, "%s is GGUF version %u, newer than this llama.cpp supports", path, version);
    return FP_OK;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Why a vocabulary is refused before llama.cpp sees it, or NULL. llama.cpp
 * aborts the process (GGML_ASSERT / GGML_ABORT in llama-vocab.cpp) instead
 * of failing the load on these, found by fuzz/fuzz_model.c:
 *   - two tokens with the same text (an empty one counts as "[EMPTY_<id>]",
 *     as llama.cpp names it): the id_to_token / token_to_id size assertion;
 *   - a token typed BYTE (6) in a bert (WPM), rwkv or "none" tokenizer,
 *     which have no byte tokens: token_to_byte aborts on them.
 * O(n log n) in the vocabulary (a sort of its strings), once per load. */
static const char *vocab_problem(const struct gguf_context *g) {
    int64_t k = gguf_find_key(g, "tokenizer.ggml.tokens");
    if (k < 0 || gguf_get_kv_type(g, k) != GGUF_TYPE_ARRAY || gguf_get_arr_type(g, k) != GGUF_TYPE_STRING) return NULL;
    size_t n = gguf_get_arr_n(g, k);
    int64_t mk = gguf_find_key(g, "tokenizer.ggml.model");
    const char *model = mk >= 0 && gguf_get_kv_type(g, mk) == GGUF_TYPE_STRING ? gguf_get_val_str(g, mk) : "";
    /* the tokenizers whose token_to_piece hands a byte token to token_to_byte, which aborts for them */
    bool has_bytes = strcmp(model, "bert") && strcmp(model, "rwkv") && strcmp(model, "none") && strcmp(model, "no_vocab");
    int64_t tk = gguf_find_key(g, "tokenizer.ggml.token_type");
    if (!has_bytes && tk >= 0 && gguf_get_kv_type(g, tk) == GGUF_TYPE_ARRAY && gguf_get_arr_type(g, tk) == GGUF_TYPE_INT32) {
        const int32_t *types = gguf_get_arr_data(g, tk);
        size_t nt = gguf_get_arr_n(g, tk);
        for (size_t i = 0; i < nt && i < n; i++)
            if (types[i] == 6) return "a byte token in a tokenizer without byte tokens";
    }
    if (n < 2) return NULL;
    char **v = malloc(n * sizeof *v);
    char (*empty)[32] = calloc(n, sizeof *empty);
    const char *why = !v || !empty ? "out of memory checking its vocabulary" : NULL;
    for (size_t i = 0; !why && i < n; i++) {
        v[i] = (char *)gguf_get_arr_str(g, k, i);
        if (!v[i][0]) { snprintf(empty[i], sizeof empty[i], "[EMPTY_%zu]", i); v[i] = empty[i]; }
    }
    if (!why) qsort(v, n, sizeof *v, cmp_str);
    for (size_t i = 1; !why && i < n; i++)
        if (strcmp(v[i - 1], v[i]) == 0) why = "its vocabulary lists a token twice";
    free(v);
    free(empty);
    return why;
}

/* Returns the number of tensors, -1 when gguf cannot parse the file, -2
 * when its vocabulary would abort llama.cpp (*why says how). */
static int64_t count_tensors(const char *path, const char **why) {
    struct gguf_init_params gp = { .no_alloc = true, .ctx = NULL };
    struct gguf_context *g = gguf_init_from_file(path, gp);
    if (!g) return -1;
    *why = vocab_problem(g);
    int64_t n = *why ? -2 : gguf_get_n_tensors(g);
    gguf_free(g);
    return n;
}

static bool is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
static bool is_punct(unsigned char c) {
    return c < 0x80 && c > ' ' && !(c >= '0' && c <= '9') && !((c | 0x20) >= 'a' && (c | 0x20) <= 'z')
        && c != '\'' && c != '-' && c != '_';
}

/* Length of the CJK punctuation mark (ideographic or fullwidth: "。", "，",
 * "、", "！", "「") at u[0..n), or 0. */
static int32_t cjk_punct(const unsigned char *u, int32_t n) {
    if (n < 3) return 0;
    if (u[0] == 0xE3 && u[1] == 0x80) return 3;                                  /* U+3000..U+303F */
    if (u[0] == 0xEF && u[1] == 0xBC && (u[2] <= 0x8F || u[2] >= 0x9A)) return 3; /* U+FF00..FF0F, FF1A..FF3F */
    if (u[0] == 0xEF && u[1] == 0xBD && (u[2] >= 0x9B && u[2] <= 0xA5)) return 3; /* U+FF5B..FF65 */
    return 0;
}

static bool has_bytes(const char *p, int32_t n, const char *what) {
    size_t w = strlen(what);
    return memmem(p, (size_t)n, what, w) != NULL;
}

/* Classifies one token from its piece. */
static uint16_t classify(const struct llama_vocab *v, int32_t t, const char *p, int32_t n) {
    uint16_t f = 0;
    if (llama_vocab_is_eog(v, t)) return FP_TOK_EOG | FP_TOK_WORD_START;
    enum llama_token_attr a = llama_vocab_get_attr(v, t);
    if (a & (LLAMA_TOKEN_ATTR_CONTROL | LLAMA_TOKEN_ATTR_UNKNOWN | LLAMA_TOKEN_ATTR_UNUSED))
        return FP_TOK_CONTROL | FP_TOK_EMPTY;
    if (n == 0) return FP_TOK_EMPTY | FP_TOK_CONTROL;
    const unsigned char *u = (const unsigned char *)p;
    /* a new word: after white space, at punctuation, and at every character
     * of a script without spaces (Chinese, Japanese, Thai: characters and
     * the phrases one token spans are the units of choice there) */
    if (is_space(u[0]) || is_punct(u[0]) || fpi_nospace_start(p, (size_t)n)) f |= FP_TOK_WORD_START;
    int32_t i = 0;
    while (i < n && u[i] == ' ') i++;
    bool punct_only = i < n;
    for (int32_t j = i; j < n && punct_only; j++) {
        int32_t c = cjk_punct(u + j, n - j);
        if (c) j += c - 1;
        else if (!(is_punct(u[j]) || is_space(u[j]))) punct_only = false;
    }
    if (punct_only) f |= FP_TOK_PUNCT_ONLY;
    if (fp_utf8_valid(p, (size_t)n) && !memchr(p, 0, (size_t)n)) f |= FP_TOK_UTF8; /* a NUL is no text */
    if (is_space(u[n - 1])) f |= FP_TOK_WORD_END; /* the word mark at the end (TinyStories-656K): a word ends here */
    for (int32_t j = 0; j < n; j++) {
        if (u[j] == '.' || u[j] == '!' || u[j] == '?' || u[j] == '\n') f |= FP_TOK_SENT_END | FP_TOK_PHRASE_END;
        if (u[j] == ',' || u[j] == ';' || u[j] == ':') f |= FP_TOK_PHRASE_END;
    }
    /* the CJK sentence and phrase marks: 。！？ and ，、；： */
    if (has_bytes(p, n, "\xE3\x80\x82") || has_bytes(p, n, "\xEF\xBC\x81") || has_bytes(p, n, "\xEF\xBC\x9F"))
        f |= FP_TOK_SENT_END | FP_TOK_PHRASE_END;
    if (has_bytes(p, n, "\xEF\xBC\x8C") || has_bytes(p, n, "\xE3\x80\x81") || has_bytes(p, n, "\xEF\xBC\x9B") ||
        has_bytes(p, n, "\xEF\xBC\x9A"))
        f |= FP_TOK_PHRASE_END;
    return f;
}

/* Does the vocabulary mark where words begin or end? Forkpoint groups
 * tokens into words by the white space their pieces carry (at the start:
 * SentencePiece "_dog", byte-level BPE "Gdog"; at the end: "dog_") or by
 * characters of scripts without spaces. A vocabulary whose pieces carry
 * none of these (BERT's WordPiece: "dog", "##s") cannot generate text
 * Forkpoint can split into words, so it is refused with one line. At least
 * 1 in 100 of the ordinary pieces must carry a mark. O(n_vocab). */
static const char *vocab_convention_problem(const fp_model *m) {
    int32_t ordinary = 0, marked = 0;
    for (int32_t t = 0; t < m->n_vocab; t++) {
        if (m->tok_flags[t] & (FP_TOK_CONTROL | FP_TOK_EOG | FP_TOK_EMPTY)) continue;
        int32_t n;
        const unsigned char *u = (const unsigned char *)fpi_piece(m, t, &n);
        ordinary++;
        bool lead = n >= 2 && is_space(u[0]) && !is_space(u[1]);
        bool trail = n >= 2 && is_space(u[n - 1]) && !is_space(u[n - 2]);
        /* a whole character of a script without spaces (byte tokens prove nothing) */
        bool nospace = (m->tok_flags[t] & FP_TOK_UTF8) && fpi_nospace_start((const char *)u, (size_t)n);
        if (lead || trail || nospace) marked++;
    }
    if (ordinary > 0 && (int64_t)marked * 100 >= ordinary) return NULL;
    return "its pieces mark neither where words start nor where they end (a WordPiece/BERT-style vocabulary?)";
}

/* Renders and classifies every token once. */
static fp_status build_pieces(fp_model *m, fp_error *err) {
    int32_t nv = m->n_vocab;
    size_t cap = (size_t)nv * 8 + 64, used = 0;
    m->pieces = malloc(cap);
    m->piece_off = malloc(sizeof(int32_t) * ((size_t)nv + 1));
    m->tok_flags = malloc(sizeof *m->tok_flags * (size_t)nv);
    if (!m->pieces || !m->piece_off || !m->tok_flags) return fpi_fail(err, FP_ERR_NOMEM, "out of memory for the token table");
    char buf[256];
    for (int32_t t = 0; t < nv; t++) {
        int32_t n = llama_token_to_piece(m->vocab, t, buf, sizeof buf, 0, false);
        if (n < 0) n = 0; /* a piece longer than 256 bytes is not a word candidate */
        if (used + (size_t)n > cap) {
            cap = cap * 2 + (size_t)n;
            char *np = realloc(m->pieces, cap);
            if (!np) return fpi_fail(err, FP_ERR_NOMEM, "out of memory for the token table");
            m->pieces = np;
        }
        m->piece_off[t] = (int32_t)used;
        memcpy(m->pieces + used, buf, (size_t)n);
        used += (size_t)n;
        m->tok_flags[t] = classify(m->vocab, t, buf, n);
    }
    m->piece_off[nv] = (int32_t)used;
    return FP_OK;
}

fp_model *fp_model_load(const char *path, const fp_model_params *params, fp_error *err) {
    fp_model_params p = params ? *params : fp_model_default_params();
    if (!path || !*path) { fpi_fail(err, FP_ERR_ARG, "no model path given"); return NULL; }
    g_verbose = p.verbose;
    pthread_once(&g_backend_once, backend_init);
    if (check_header(path, err) != FP_OK) return NULL;
    const char *why = NULL;
    int64_t nt = count_tensors(path, &why);
    if (nt == -2) {
        fpi_fail(err, FP_ERR_MODEL, "%s is corrupt (%s)", path, why);
        return NULL;
    }
    if (nt < 0) {
        fpi_fail(err, FP_ERR_MODEL, "%s is truncated or corrupt (GGUF header unreadable%s%s)", path,
                g_last_log_error[0] ? ": " : "", g_last_log_error);
        return NULL;
    }
    if (nt == 0 && !p.vocab_only) {
        fpi_fail(err, FP_ERR_MODEL, "%s has no weights (a vocab-only file): it can tokenize but not generate", path);
        return NULL;
    }
    struct llama_model_params mp = llama_model_default_params();
    mp.vocab_only = p.vocab_only;
    mp.n_gpu_layers = 0;
    /* no AMX or repacked weight buffers: on this build the AMX matmul
     * crashes (SIGSEGV) on Q8_0 models with CPUs that have AMX; plain CPU
     * buffers compute the same */
    mp.use_extra_bufts = false;
    /* --rpc: every layer on the workers' devices, split by their free
     * memory (llama.cpp's default layer split); the token embeddings stay
     * here. Every token's activations then cross the network. */
    ggml_backend_dev_t rpc_devs[FP_RPC_MAX * 4 + 1];
    if (p.rpc && !p.vocab_only) {
        if (fpi_rpc_devices(p.rpc, p.rpc_timeout_ms > 0 ? p.rpc_timeout_ms : 3000, rpc_devs,
                            (int32_t)(sizeof rpc_devs / sizeof *rpc_devs), err) < 0)
            return NULL;
        mp.devices = rpc_devs;
        mp.n_gpu_layers = 999;
    }
    g_last_log_error[0] = 0;
    struct llama_model *lm = llama_model_load_from_file(path, mp);
    if (!lm) {
        fpi_fail(err, FP_ERR_MODEL, "llama.cpp cannot load %s%s%s", path,
                g_last_log_error[0] ? ": " : " (truncated or corrupt?)", g_last_log_error);
        return NULL;
    }
    fp_model *m = calloc(1, sizeof *m);
    if (!m) { llama_model_free(lm); fpi_fail(err, FP_ERR_NOMEM, "out of memory"); return NULL; }
    m->lm = lm;
    m->vocab = llama_model_get_vocab(lm);
    m->n_vocab = llama_vocab_n_tokens(m->vocab);
    m->vocab_only = p.vocab_only;
    m->path = strdup(path);
    if (!m->path || build_pieces(m, err) != FP_OK || fpi_control_texts_build(m, err) != FP_OK ||
        fpi_spell_build(m, err) != FP_OK) {
        if (!m->path) fpi_fail(err, FP_ERR_NOMEM, "out of memory");
        fp_model_free(m);
        return NULL;
    }
    const char *conv = p.vocab_only ? NULL : vocab_convention_problem(m);
    if (conv) {
        fpi_fail(err, FP_ERR_MODEL, "%s cannot be written with: %s", path, conv);
        fp_model_free(m);
        return NULL;
    }
    return m;
}

void fp_model_free(fp_model *m) {
    if (!m) return;
    if (m->lm) llama_model_free(m->lm);
    free(m->pieces);
    free(m->tokvec);
    free(m->piece_off);
    free(m->tok_flags);
    fpi_control_texts_free(m);
    fpi_spell_free(m);
    free(m->path);
    free(m);
}

int32_t fp_model_n_vocab(const fp_model *m) { return m->n_vocab; }
int32_t fp_model_n_ctx_train(const fp_model *m) { return m->vocab_only ? 0 : llama_model_n_ctx_train(m->lm); }
bool fp_model_is_vocab_only(const fp_model *m) { return m->vocab_only; }
const char *fp_model_path(const fp_model *m) { return m->path; }

int32_t fp_tokenize(const fp_model *m, const char *text, size_t len, int32_t *tokens, int32_t cap, bool add_bos) {
    if (!fp_utf8_valid(text, len) || len > INT32_MAX / 2) return -1;
    if (fpi_spell_problem(m, text, len, false, NULL) >= 0) return -1; /* llama.cpp would abort */
    int32_t n = llama_tokenize(m->vocab, text, (int32_t)len, tokens, cap, add_bos, false);
    if (n == INT32_MIN) return -1;
    return n < 0 ? -n : n;
}

int32_t fp_token_piece(const fp_model *m, int32_t t, char *out, int32_t cap) {
    if (t < 0 || t >= m->n_vocab) return 0;
    int32_t n;
    const char *p = fpi_piece(m, t, &n);
    if (n > cap) return -n;
    memcpy(out, p, (size_t)n);
    return n;
}

int32_t fp_detokenize(const fp_model *m, const int32_t *tokens, int32_t n, char *out, int32_t cap) {
    return llama_detokenize(m->vocab, tokens, n, out, cap, true, false);
}

/* Why a second tokenizer entry: API prompts (chat templates, raw prompts
 * from mikupad) spell control tokens as text, and llama.cpp's server turns
 * them into those tokens. A template that writes the BOS text itself would
 * get a second BOS from add_bos: the duplicate is dropped. */
int32_t fp_tokenize_special(const fp_model *m, const char *text, size_t len, int32_t *tokens, int32_t cap,
                            bool add_bos) {
    if (!fp_utf8_valid(text, len) || len > INT32_MAX / 2) return -1;
    if (fpi_spell_problem(m, text, len, true, NULL) >= 0) return -1; /* llama.cpp would abort */
    int32_t n = llama_tokenize(m->vocab, text, (int32_t)len, tokens, cap, add_bos, true);
    if (n == INT32_MIN) return -1;
    if (n < 0) return -n;
    llama_token bos = llama_vocab_bos(m->vocab);
    if (add_bos && n >= 2 && bos >= 0 && tokens[0] == bos && tokens[1] == bos) {
        memmove(tokens, tokens + 1, sizeof *tokens * (size_t)(n - 1));
        n--;
    }
    return n;
}

int32_t fp_token_text(const fp_model *m, int32_t t, char *out, int32_t cap) {
    if (t < 0 || t >= m->n_vocab) return 0;
    return llama_token_to_piece(m->vocab, t, out, cap, 0, true);
}

bool fp_token_is_eog(const fp_model *m, int32_t t) {
    return t >= 0 && t < m->n_vocab && (m->tok_flags[t] & FP_TOK_EOG);
}

int32_t fp_detokenize_special(const fp_model *m, const int32_t *tokens, int32_t n, char *out, int32_t cap) {
    for (int32_t i = 0; i < n; i++) if (tokens[i] < 0 || tokens[i] >= m->n_vocab) return 0;
    char dummy[1];
    return llama_detokenize(m->vocab, tokens, n, out ? out : dummy, out ? cap : 0, false, true);
}
