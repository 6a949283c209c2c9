/*
 * gen_model.c — writes the synthetic benchmark model.
 *
 * Why: the fork benchmark has to be run on a model whose cost per token is
 * that of a real small LLM (stories260K is so small that every llama_decode
 * call is dominated by fixed overhead, which hides what batching buys). No
 * such model can be shipped or downloaded here, so this program builds one:
 * a llama-architecture GGUF with the body dimensions of Qwen2.5-0.5B
 * (n_embd 896, 24 layers, 14 heads, 2 KV heads, FFN 4864, context 2048) and
 * random weights, quantized to Q8_0 by llama.cpp's own quantizer. Timing does
 * not depend on the weight values, only on the shapes and the tensor type.
 * The tokenizer is copied from stories260K (vocab 512), so the text it
 * produces is gibberish, but prompts tokenize exactly as they do there.
 *
 * Steps: copy tokenizer.* keys -> write an F16 GGUF tensor by tensor (never
 * the whole model in memory) -> llama_model_quantize to Q8_0 -> load the
 * result with llama_model_load_from_file and decode a few tokens -> rename
 * into place. The output lives in the cache, never inside the repository;
 * an existing output is left alone.
 *
 * --n-vocab N pads the copied vocabulary with N - n filler tokens (a
 * vocabulary of a real model's size, e.g. Qwen2.5's 151,936, built on one
 * that is here: the cost that grows with the vocabulary is in the two
 * vocabulary matrices and in every per-token pass over the logits, not in
 * which texts the tokens have). The fillers are normal tokens with unique
 * texts ("\u0120fpad123" in a byte-level BPE vocabulary, "\u2581fpad123"
 * otherwise) and no merges, so prompts tokenize as with the source; the
 * model can still choose them.
 *
 * Usage: gen_model [--out PATH] [--vocab GGUF] [--n-vocab N] [--tiny] [--no-marks] [--seed N]
 *                  [--threads N] [--force] [--verbose]
 * Prints the path of the model on stdout (progress goes to stderr).
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ggml.h"
#include "gguf.h"
#include "llama.h"

/* The body shapes. The reference: the transformer body of Qwen2.5-0.5B,
 * quantized to Q8_0 (benchmarks). --tiny: a body of a few hundred thousand
 * weights, left in F16, for tests that need a model on another vocabulary
 * (tests/unit/test_vocab.c): its cost is in the vocabulary's two matrices.
 * Its weights are wider (std 0.3), so its next-token distributions are
 * peaked like a trained model's rather than uniform over the vocabulary. */
typedef struct shape {
    const char *name;
    int embd, layers, heads, heads_kv, ffn, ctx;
    double weight_std;
    bool quantize;
} shape;
static const shape SHAPE_05B  = { "forkpoint-synthetic-0.5b", 896, 24, 14, 2, 4864, 2048, 0.02, true };
static const shape SHAPE_TINY = { "forkpoint-synthetic-tiny", 64, 2, 4, 2, 128, 2048, 0.3, false };
static shape g_shape;
#define SYN_EMBD g_shape.embd
#define SYN_LAYERS g_shape.layers
#define SYN_HEADS g_shape.heads
#define SYN_HEADS_KV g_shape.heads_kv
#define SYN_FFN g_shape.ffn
#define SYN_CTX g_shape.ctx
#define SYN_HEAD_DIM (SYN_EMBD / SYN_HEADS)
#define SYN_WEIGHT_STD g_shape.weight_std
#define SYN_RMS_EPS 1e-6f
#define SYN_ROPE_BASE 1000000.0f

static bool g_verbose = false;
/* Temporary files to remove if we die half-way (never leave junk in the cache). */
static char g_tmp[2][4200];

/* Why: llama.cpp logs every tensor while quantizing; keep stderr readable
 * unless --verbose, but always show warnings and errors. */
static void log_filter(enum ggml_log_level level, const char *text, void *user) {
    static enum ggml_log_level last = GGML_LOG_LEVEL_INFO;
    (void)user;
    if (level != GGML_LOG_LEVEL_CONT) last = level;
    if (g_verbose || last >= GGML_LOG_LEVEL_WARN) fputs(text, stderr);
}

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("gen_model: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    for (int i = 0; i < 2; i++)
        if (g_tmp[i][0]) unlink(g_tmp[i]);
    exit(1);
}

static bool file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Creates every missing directory on the way to (and including) dir. */
static void mkdir_p(const char *dir) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf) die("path too long: %s", dir);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) die("mkdir %s: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) die("mkdir %s: %s", buf, strerror(errno));
}

/* The Forkpoint cache directory, resolved like the library resolves it:
 * ${FORKPOINT_CACHE:-${XDG_CACHE_HOME:-~/.cache}/forkpoint}. */
static void cache_dir(char *out, size_t cap) {
    const char *fc = getenv("FORKPOINT_CACHE");
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    if (fc && *fc) snprintf(out, cap, "%s", fc);
    else if (xdg && *xdg) snprintf(out, cap, "%s/forkpoint", xdg);
    else if (home && *home) snprintf(out, cap, "%s/.cache/forkpoint", home);
    else die("neither FORKPOINT_CACHE, XDG_CACHE_HOME nor HOME is set; pass --out");
}

/* Where the tokenizer comes from when --vocab is not given: stories260K in
 * the cache, else beside the project root (../shared/models, relative to the
 * directory make runs in). Any GGUF with a llama tokenizer would do. */
static bool default_vocab(char *out, size_t cap) {
    char dir[4096];
    cache_dir(dir, sizeof dir);
    if (snprintf(out, cap, "%s/models/stories260K.gguf", dir) < (int)cap && file_exists(out)) return true;
    snprintf(out, cap, "../shared/models/stories260K.gguf");
    return file_exists(out);
}

/* ---- deterministic Gaussian noise (splitmix64 + Box-Muller) ---------------
 * Why our own generator: the model must be byte-identical for a given seed on
 * every machine, which rand() does not promise. */
typedef struct rng { uint64_t s; bool has_spare; double spare; } rng;

static uint64_t rng_next(rng *r) {
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in (0, 1], never 0 so that log() is finite. */
static double rng_unit(rng *r) {
    return ((double)(rng_next(r) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
}

static double rng_normal(rng *r) {
    if (r->has_spare) { r->has_spare = false; return r->spare; }
    double u = rng_unit(r), v = rng_unit(r);
    double m = sqrt(-2.0 * log(u));
    r->spare = m * sin(2.0 * M_PI * v);
    r->has_spare = true;
    return m * cos(2.0 * M_PI * v);
}

/* ---- the GGUF header ------------------------------------------------------ */

/* --no-marks: a token's text with its word marks ("\u2581" of
 * SentencePiece, "\u0120" of byte-level BPE) replaced by a middle dot, so
 * that no piece carries white space: a vocabulary Forkpoint must refuse
 * (tests/unit/test_vocab.c). The dot keeps the texts distinct. */
static bool g_no_marks = false;
/* --n-vocab: the vocabulary size to pad to (0: the source's own). */
static int32_t g_n_vocab = 0;
static char *strip_marks(const char *t) {
    size_t n = strlen(t);
    char *o = malloc(n + 1);
    if (!o) die("out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)t[i] == 0xE2 && i + 2 < n && (unsigned char)t[i + 1] == 0x96 && (unsigned char)t[i + 2] == 0x81) {
            o[k++] = (char)0xC2; o[k++] = (char)0xB7; i += 2;        /* U+2581 -> U+00B7 */
        } else if ((unsigned char)t[i] == 0xC4 && i + 1 < n && (unsigned char)t[i + 1] == 0xA0) {
            o[k++] = (char)0xC2; o[k++] = (char)0xB7; i += 1;        /* U+0120 -> U+00B7 */
        } else o[k++] = t[i];
    }
    o[k] = 0;
    return o;
}

/* Filler token j's text (--n-vocab): a word-start mark, then "fpad" and j. */
static char *filler_text(bool bpe, size_t j) {
    char *o = malloc(32);
    if (!o) die("out of memory");
    snprintf(o, 32, "%sfpad%zu", bpe ? "\xC4\xA0" : "\xE2\x96\x81", j);
    return o;
}

/* Copies every tokenizer.* key of src into dst, whatever its type, so that
 * the synthetic model tokenizes exactly like the source model; with
 * --n-vocab the per-token arrays (texts, types, scores) are padded with
 * filler tokens. Returns the vocabulary size (length of tokenizer.ggml.tokens
 * in dst). */
static int32_t copy_tokenizer(struct gguf_context *dst, const struct gguf_context *src) {
    const int64_t n_kv = gguf_get_n_kv(src);
    const int64_t tok = gguf_find_key(src, "tokenizer.ggml.tokens");
    if (tok < 0) die("the vocabulary source has no tokenizer.ggml.tokens");
    const size_t n_src = gguf_get_arr_n(src, tok);
    if (g_n_vocab > 0 && (size_t)g_n_vocab < n_src)
        die("--n-vocab %d is below the source's %zu tokens", g_n_vocab, n_src);
    const size_t n_out = g_n_vocab > 0 ? (size_t)g_n_vocab : n_src;
    const int64_t tm = gguf_find_key(src, "tokenizer.ggml.model");
    const bool bpe = tm >= 0 && gguf_get_kv_type(src, tm) == GGUF_TYPE_STRING && !strcmp(gguf_get_val_str(src, tm), "gpt2");
    int64_t copied = 0;
    for (int64_t i = 0; i < n_kv; i++) {
        const char *key = gguf_get_key(src, i);
        if (strncmp(key, "tokenizer.", 10) != 0) continue;
        copied++;
        switch (gguf_get_kv_type(src, i)) {
        case GGUF_TYPE_UINT8:   gguf_set_val_u8(dst, key, gguf_get_val_u8(src, i)); break;
        case GGUF_TYPE_INT8:    gguf_set_val_i8(dst, key, gguf_get_val_i8(src, i)); break;
        case GGUF_TYPE_UINT16:  gguf_set_val_u16(dst, key, gguf_get_val_u16(src, i)); break;
        case GGUF_TYPE_INT16:   gguf_set_val_i16(dst, key, gguf_get_val_i16(src, i)); break;
        case GGUF_TYPE_UINT32:  gguf_set_val_u32(dst, key, gguf_get_val_u32(src, i)); break;
        case GGUF_TYPE_INT32:   gguf_set_val_i32(dst, key, gguf_get_val_i32(src, i)); break;
        case GGUF_TYPE_FLOAT32: gguf_set_val_f32(dst, key, gguf_get_val_f32(src, i)); break;
        case GGUF_TYPE_UINT64:  gguf_set_val_u64(dst, key, gguf_get_val_u64(src, i)); break;
        case GGUF_TYPE_INT64:   gguf_set_val_i64(dst, key, gguf_get_val_i64(src, i)); break;
        case GGUF_TYPE_FLOAT64: gguf_set_val_f64(dst, key, gguf_get_val_f64(src, i)); break;
        case GGUF_TYPE_BOOL:    gguf_set_val_bool(dst, key, gguf_get_val_bool(src, i)); break;
        case GGUF_TYPE_STRING:  gguf_set_val_str(dst, key, gguf_get_val_str(src, i)); break;
        case GGUF_TYPE_ARRAY: {
            const size_t n = gguf_get_arr_n(src, i);
            const enum gguf_type at = gguf_get_arr_type(src, i);
            /* one entry per token: padded to n_out (texts, types, scores) */
            const bool per_token = n == n_src && (!strcmp(key, "tokenizer.ggml.tokens") ||
                !strcmp(key, "tokenizer.ggml.token_type") || !strcmp(key, "tokenizer.ggml.scores"));
            const size_t nn = per_token ? n_out : n;
            if (at == GGUF_TYPE_STRING) {
                const char **strs = malloc((nn ? nn : 1) * sizeof *strs);
                if (!strs) die("out of memory");
                const bool texts = !strcmp(key, "tokenizer.ggml.tokens");
                const bool mine = (g_no_marks && texts) || nn > n; /* texts made here, freed below */
                char **own = mine ? calloc(nn ? nn : 1, sizeof *own) : NULL;
                if (mine && !own) die("out of memory");
                for (size_t j = 0; j < nn; j++) {
                    if (j >= n) { strs[j] = own[j] = filler_text(bpe, j); continue; }
                    strs[j] = gguf_get_arr_str(src, i, j);
                    if (g_no_marks && texts) strs[j] = own[j] = strip_marks(strs[j]);
                }
                gguf_set_arr_str(dst, key, strs, nn);
                if (own) for (size_t j = 0; j < nn; j++) free(own[j]);
                free(own);
                free(strs);
            } else if (at == GGUF_TYPE_ARRAY) {
                die("nested array in %s is not supported", key);
            } else if (nn > n) {
                /* types: 1 (normal); scores: far below every real token's */
                if (at != GGUF_TYPE_INT32 && at != GGUF_TYPE_FLOAT32) die("%s: cannot pad this type", key);
                void *buf = malloc(nn * 4);
                if (!buf) die("out of memory");
                memcpy(buf, gguf_get_arr_data(src, i), n * 4);
                for (size_t j = n; j < nn; j++) {
                    if (at == GGUF_TYPE_INT32) ((int32_t *)buf)[j] = 1;
                    else ((float *)buf)[j] = -1e6f;
                }
                gguf_set_arr_data(dst, key, at, buf, nn);
                free(buf);
            } else {
                gguf_set_arr_data(dst, key, at, gguf_get_arr_data(src, i), n);
            }
            break;
        }
        default: die("key %s has an unknown type", key);
        }
    }
    if (copied == 0) die("the vocabulary source has no tokenizer.* keys");
    return (int32_t)n_out;
}

static void set_hparams(struct gguf_context *g) {
    gguf_set_val_str(g, "general.architecture", "llama");
    gguf_set_val_str(g, "general.name", g_shape.name);
    gguf_set_val_u32(g, "general.file_type", LLAMA_FTYPE_MOSTLY_F16);
    gguf_set_val_u32(g, "llama.context_length", SYN_CTX);
    gguf_set_val_u32(g, "llama.embedding_length", SYN_EMBD);
    gguf_set_val_u32(g, "llama.block_count", SYN_LAYERS);
    gguf_set_val_u32(g, "llama.feed_forward_length", SYN_FFN);
    gguf_set_val_u32(g, "llama.attention.head_count", SYN_HEADS);
    gguf_set_val_u32(g, "llama.attention.head_count_kv", SYN_HEADS_KV);
    gguf_set_val_f32(g, "llama.attention.layer_norm_rms_epsilon", SYN_RMS_EPS);
    gguf_set_val_u32(g, "llama.rope.dimension_count", SYN_HEAD_DIM);
    gguf_set_val_f32(g, "llama.rope.freq_base", SYN_ROPE_BASE);
}

/* Declares one tensor (metadata only). Shapes follow llama.cpp's loader for
 * the llama architecture (src/models/llama.cpp): ne[0] is the input dim.
 * 1-D norm weights stay F32 (as in every converted model); matrices are F16. */
static void add_tensor(struct gguf_context *g, struct ggml_context *meta,
                       const char *name, int64_t ne0, int64_t ne1) {
    struct ggml_tensor *t = ne1 > 0 ? ggml_new_tensor_2d(meta, GGML_TYPE_F16, ne0, ne1)
                                    : ggml_new_tensor_1d(meta, GGML_TYPE_F32, ne0);
    ggml_set_name(t, name);
    gguf_add_tensor(g, t);
}

static void declare_tensors(struct gguf_context *g, struct ggml_context *meta, int32_t n_vocab) {
    const int64_t q_dim = (int64_t)SYN_HEAD_DIM * SYN_HEADS;
    const int64_t kv_dim = (int64_t)SYN_HEAD_DIM * SYN_HEADS_KV;
    char name[64];
    add_tensor(g, meta, "token_embd.weight", SYN_EMBD, n_vocab);
    add_tensor(g, meta, "output_norm.weight", SYN_EMBD, 0);
    add_tensor(g, meta, "output.weight", SYN_EMBD, n_vocab);
    for (int i = 0; i < SYN_LAYERS; i++) {
#define LAYER(suffix, ne0, ne1) \
        (snprintf(name, sizeof name, "blk.%d." suffix, i), add_tensor(g, meta, name, ne0, ne1))
        LAYER("attn_norm.weight", SYN_EMBD, 0);
        LAYER("attn_q.weight", SYN_EMBD, q_dim);
        LAYER("attn_k.weight", SYN_EMBD, kv_dim);
        LAYER("attn_v.weight", SYN_EMBD, kv_dim);
        LAYER("attn_output.weight", q_dim, SYN_EMBD);
        LAYER("ffn_norm.weight", SYN_EMBD, 0);
        LAYER("ffn_gate.weight", SYN_EMBD, SYN_FFN);
        LAYER("ffn_up.weight", SYN_EMBD, SYN_FFN);
        LAYER("ffn_down.weight", SYN_FFN, SYN_EMBD);
#undef LAYER
    }
}

/* ---- the F16 file ---------------------------------------------------------- */

static void write_zeros(FILE *f, size_t n, const char *path) {
    static const char zeros[64];
    while (n > 0) {
        size_t c = n < sizeof zeros ? n : sizeof zeros;
        if (fwrite(zeros, 1, c, f) != c) die("write %s: %s", path, strerror(errno));
        n -= c;
    }
}

/* Appends the tensor data after the metadata, one row at a time, at the
 * offsets gguf assigned (padding between tensors with zeros). Norm weights
 * are 1.0; everything else is N(0, SYN_WEIGHT_STD^2). */
static void write_f16_model(struct gguf_context *g, const char *path, uint64_t seed) {
    if (!gguf_write_to_file(g, path, /*only_meta=*/true)) die("cannot write %s", path);
    FILE *f = fopen(path, "ab");
    if (!f) die("open %s: %s", path, strerror(errno));
    const size_t data_start = gguf_get_meta_size(g);
    size_t pos = data_start;
    rng r = { seed, false, 0.0 };
    float *row = malloc(sizeof(float) * SYN_FFN * 2);
    ggml_fp16_t *row16 = malloc(sizeof(ggml_fp16_t) * SYN_FFN * 2);
    if (!row || !row16) die("out of memory");

    const int64_t n_tensors = gguf_get_n_tensors(g);
    for (int64_t ti = 0; ti < n_tensors; ti++) {
        const size_t off = data_start + gguf_get_tensor_offset(g, ti);
        if (off < pos) die("tensor offsets out of order");
        write_zeros(f, off - pos, path);
        pos = off;
        const int64_t *ne = gguf_get_tensor_ne(g, ti);
        const enum ggml_type type = gguf_get_tensor_type(g, ti);
        const int64_t ne0 = ne[0], nrows = ne[1];
        for (int64_t rix = 0; rix < nrows; rix++) {
            if (type == GGML_TYPE_F32) {
                for (int64_t j = 0; j < ne0; j++) row[j] = 1.0f;   /* an RMS-norm gain */
                if (fwrite(row, sizeof(float), (size_t)ne0, f) != (size_t)ne0) die("write %s", path);
                pos += sizeof(float) * (size_t)ne0;
            } else {
                for (int64_t j = 0; j < ne0; j++) row[j] = (float)(SYN_WEIGHT_STD * rng_normal(&r));
                ggml_fp32_to_fp16_row(row, row16, ne0);
                if (fwrite(row16, sizeof(ggml_fp16_t), (size_t)ne0, f) != (size_t)ne0) die("write %s", path);
                pos += sizeof(ggml_fp16_t) * (size_t)ne0;
            }
        }
        if ((ti + 1) % 20 == 0 || ti + 1 == n_tensors)
            fprintf(stderr, "gen_model: wrote %lld/%lld tensors\n", (long long)(ti + 1), (long long)n_tensors);
    }
    /* gguf's own writer pads the last tensor too; do the same. */
    const size_t align = gguf_get_alignment(g);
    write_zeros(f, (align - (pos - data_start) % align) % align, path);
    free(row);
    free(row16);
    if (fclose(f) != 0) die("close %s: %s", path, strerror(errno));
}

/* ---- the check ------------------------------------------------------------- */

/* Loads the quantized file the way every front end does and decodes a short
 * prompt plus a few greedy tokens, so a broken file is never put in place. */
static void check_model(const char *path, int n_threads) {
    struct llama_model_params mp = llama_model_default_params();
    struct llama_model *model = llama_model_load_from_file(path, mp);
    if (!model) die("llama_model_load_from_file failed on %s", path);
    const struct llama_vocab *vocab = llama_model_get_vocab(model);
    const int32_t n_vocab = llama_vocab_n_tokens(vocab);

    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 256;
    cp.n_batch = 256;
    cp.n_threads = cp.n_threads_batch = n_threads;
    struct llama_context *ctx = llama_init_from_model(model, cp);
    if (!ctx) die("llama_init_from_model failed on %s", path);

    const char *text = "Once upon a time, there was a little girl";
    llama_token toks[64];
    int32_t n = llama_tokenize(vocab, text, (int32_t)strlen(text), toks, 64, true, false);
    if (n <= 0) die("tokenizing the check prompt failed");
    if (llama_decode(ctx, llama_batch_get_one(toks, n)) != 0) die("llama_decode failed on the check prompt");
    fprintf(stderr, "gen_model: check: %d prompt tokens decoded, greedy continuation:", n);
    for (int step = 0; step < 4; step++) {
        const float *logits = llama_get_logits_ith(ctx, -1);
        llama_token best = 0;
        for (int32_t t = 0; t < n_vocab; t++) {
            if (!isfinite(logits[t])) die("non-finite logit for token %d", t);
            if (logits[t] > logits[best]) best = t;
        }
        fprintf(stderr, " %d", best);
        if (llama_decode(ctx, llama_batch_get_one(&best, 1)) != 0) die("llama_decode failed on step %d", step);
    }
    fputc('\n', stderr);
    llama_free(ctx);
    llama_model_free(model);
}

static void usage(void) {
    fprintf(stderr,
        "usage: gen_model [--out PATH] [--vocab GGUF] [--n-vocab N] [--tiny] [--no-marks] [--seed N] [--threads N] [--force] [--verbose]\n"
        "  --out      default ${FORKPOINT_CACHE:-${XDG_CACHE_HOME:-~/.cache}/forkpoint}/models/synthetic-0.5b-q8_0.gguf\n"
        "  --vocab    GGUF to copy the tokenizer from (default: stories260K)\n"
        "  --n-vocab  pad the vocabulary with filler tokens to N (e.g. 151936, Qwen2.5's)\n"
        "  --tiny     a 2-layer, 64-wide F16 body (tests) instead of the 0.5B Q8_0 one\n"
        "  --no-marks drop the word marks from the token texts (a vocabulary to refuse; tests)\n"
        "  --seed     weight seed (default 1234)\n"
        "  --threads  quantizer threads (default 2)\n"
        "  --force    rebuild even if the output exists\n");
}

int main(int argc, char **argv) {
    char out[4096] = "", vocab_path[4096] = "";
    uint64_t seed = 1234;
    int n_threads = 2;
    bool force = false, tiny = false;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const bool has_val = i + 1 < argc;
        if (!strcmp(a, "--out") && has_val) snprintf(out, sizeof out, "%s", argv[++i]);
        else if (!strcmp(a, "--vocab") && has_val) snprintf(vocab_path, sizeof vocab_path, "%s", argv[++i]);
        else if (!strcmp(a, "--n-vocab") && has_val) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 1 || v > 1000000) { fprintf(stderr, "gen_model: --n-vocab must be 1..1000000\n"); return 2; }
            g_n_vocab = (int32_t)v;
        }
        else if (!strcmp(a, "--seed") && has_val) seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(a, "--threads") && has_val) n_threads = atoi(argv[++i]);
        else if (!strcmp(a, "--force")) force = true;
        else if (!strcmp(a, "--tiny")) tiny = true;
        else if (!strcmp(a, "--no-marks")) g_no_marks = true;
        else if (!strcmp(a, "--verbose")) g_verbose = true;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(); return 0; }
        else { usage(); return 2; }
    }
    if (n_threads < 1) n_threads = 1;
    g_shape = tiny ? SHAPE_TINY : SHAPE_05B;

    if (!out[0]) {
        char dir[4096];
        cache_dir(dir, sizeof dir);
        if (snprintf(out, sizeof out, "%s/models/%s", dir, tiny ? "synthetic-tiny-f16.gguf" : "synthetic-0.5b-q8_0.gguf") >= (int)sizeof out)
            die("path too long");
    }
    if (file_exists(out) && !force) {
        fprintf(stderr, "gen_model: %s exists, keeping it\n", out);
        printf("%s\n", out);
        return 0;
    }
    if (!vocab_path[0] && !default_vocab(vocab_path, sizeof vocab_path))
        die("stories260K.gguf not found in the cache or ../shared/models; pass --vocab PATH");

    /* the output directory */
    {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", out);
        char *slash = strrchr(dir, '/');
        if (slash && slash != dir) { *slash = '\0'; mkdir_p(dir); }
    }

    llama_log_set(log_filter, NULL);
    llama_backend_init();

    struct gguf_init_params ip = { .no_alloc = true, .ctx = NULL };
    struct gguf_context *src = gguf_init_from_file(vocab_path, ip);
    if (!src) die("cannot read %s as GGUF", vocab_path);

    struct gguf_context *g = gguf_init_empty();
    set_hparams(g);
    const int32_t n_vocab = copy_tokenizer(g, src);
    gguf_free(src);

    struct ggml_init_params mp = {
        .mem_size = ggml_tensor_overhead() * (3 + 9 * SYN_LAYERS + 8),
        .mem_buffer = NULL,
        .no_alloc = true,
    };
    struct ggml_context *meta = ggml_init(mp);
    if (!meta) die("ggml_init failed");
    declare_tensors(g, meta, n_vocab);
    fprintf(stderr, "gen_model: vocab %d from %s; n_embd %d, %d layers, %d/%d heads, ffn %d, ctx %d\n",
            n_vocab, vocab_path, SYN_EMBD, SYN_LAYERS, SYN_HEADS, SYN_HEADS_KV, SYN_FFN, SYN_CTX);

    /* Temporary files sit beside the output (same file system, so the final
     * rename is atomic) and carry the pid so two runs cannot collide. */
    char *f16_path = g_tmp[0], *q8_path = g_tmp[1];
    snprintf(f16_path, sizeof g_tmp[0], "%s.f16.%d.tmp", out, (int)getpid());
    snprintf(q8_path, sizeof g_tmp[1], "%s.%d.tmp", out, (int)getpid());

    write_f16_model(g, f16_path, seed);
    gguf_free(g);
    ggml_free(meta);

    if (g_shape.quantize) {
        fprintf(stderr, "gen_model: quantizing to Q8_0 with %d threads\n", n_threads);
        llama_model_quantize_params qp = llama_model_quantize_default_params();
        qp.ftype = LLAMA_FTYPE_MOSTLY_Q8_0;
        qp.nthread = n_threads;
        const uint32_t qrc = llama_model_quantize(f16_path, q8_path, &qp);
        unlink(f16_path);
        f16_path[0] = '\0';
        if (qrc != 0) die("llama_model_quantize failed (%u)", qrc);
    } else {
        if (rename(f16_path, q8_path) != 0) die("rename to %s: %s", q8_path, strerror(errno));
        f16_path[0] = '\0';
    }

    check_model(q8_path, n_threads);
    if (rename(q8_path, out) != 0) die("rename to %s: %s", out, strerror(errno));
    q8_path[0] = '\0';
    llama_backend_free();
    fprintf(stderr, "gen_model: wrote %s\n", out);
    printf("%s\n", out);
    return 0;
}
