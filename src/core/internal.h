/*
 * internal.h — structures shared by the files of the core library.
 *
 * Nothing here is public: front ends see include/forkpoint.h (the writing
 * core) and include/forkpoint_learn.h (learning). Each core file owns one
 * concern; this header is where their shared state is spelled out.
 *
 *   the model and the engine (imports nothing above them)
 *     model.c      GGUF loading, the tokenizer, per-token flags
 *     spell.c      the characters an SPM vocabulary can spell
 *     engine.c     the llama.cpp context, its sequence pool, decoding
 *     dist.c       distributions, the sampler chain, the pick rule
 *     utf8.c       UTF-8 validation and the text boundary
 *     error.c      status names and error filling
 *     sha256.c     file checksums
 *   the writing core
 *     settings.c   settings, checked; enum names
 *     tree.c       the document tree, the current path, the trunk
 *     cloud.c      candidate words and previews of a fork
 *     session.c    the generation loop, the fork lifecycle, decisions
 *     navigate.c   undo, goto, forced forks
 *     prefetch.c   speculative outcomes while the person decides
 *     check.c      the invariants, run in test builds
 *     json.c       fork events, the tree, settings as JSON
 *     snapshot.c   sessions saved (snapshots, changes since a mark) and restored
 *   learning (forkpoint_learn.h)
 *     prefs.c      preferences: reranker, logit bias, auto-resolution
 *     steer.c      steering vectors: computed, applied, as files
 *     lora.c       LoRA adapters: trained, as files; lora_apply.c applies them
 *     judge.c      log-probabilities, pair scores, picking a strength
 *     gguf_out.c   writing GGUF files atomically
 */
#ifndef FP_INTERNAL_H
#define FP_INTERNAL_H

#include "forkpoint.h"
#include "forkpoint_learn.h"
#include <llama.h>
#include <stdatomic.h>

/* ------------------------------------------------------------- errors */

/* Fills err (if non-NULL) and returns code, so callers can `return fpi_fail(...)`. */
#define fpi_fail fp_error_set

double fpi_now_ms(void); /* monotonic clock, milliseconds */

/* -------------------------------------------------------------- model */

/* Per-token facts the word grouping needs, computed once at load. Both
 * tokenizer conventions are covered: the word mark at the start of a piece
 * (SentencePiece "_dog", byte-level BPE "Gdog": WORD_START) and at its end
 * (TinyStories-656K's "dog_": WORD_END). A word boundary lies between tokens
 * a and b when a is WORD_END or b is WORD_START. */
enum {
    FP_TOK_WORD_START = 1 << 0, /* piece begins with whitespace or punctuation: a new word */
    FP_TOK_PUNCT_ONLY = 1 << 1, /* piece is punctuation (maybe space-led): a word by itself */
    FP_TOK_EOG        = 1 << 2, /* end of generation */
    FP_TOK_CONTROL    = 1 << 3, /* BOS, padding, other control tokens: never a candidate */
    FP_TOK_PHRASE_END = 1 << 4, /* contains , ; : or a sentence end */
    FP_TOK_SENT_END   = 1 << 5, /* contains . ! ? or a newline */
    FP_TOK_EMPTY      = 1 << 6, /* renders as no bytes */
    FP_TOK_UTF8       = 1 << 7, /* piece is complete, valid UTF-8 by itself */
    FP_TOK_WORD_END   = 1 << 8  /* piece ends with white space: the word it ends is complete */
};

struct fp_model {
    struct llama_model *lm;
    const struct llama_vocab *vocab;
    int32_t n_vocab;
    bool vocab_only;
    char *path;
    /* pieces[piece_off[t] .. piece_off[t+1]) are the bytes of token t */
    char *pieces;
    int32_t *piece_off;
    uint16_t *tok_flags;
    /* the texts of control tokens (control.c): ctl[ctl_off[i] .. ctl_off[i+1]) */
    char *ctl;
    int32_t *ctl_off;
    int32_t n_ctl, ctl_max;
    bool ctl_first[256];        /* bytes a control text starts with */
    /* tokvec.c: a unit vector per token (n_vocab x FP_TOKVEC), built on first use */
    float *tokvec;
    bool tokvec_done;
    /* spell.c: what an SPM vocabulary can spell (spell_on: an SPM vocabulary) */
    bool spell_on;
    bool spell_byte[256];       /* bytes with a "<0xXX>" or one-byte piece */
    uint32_t *spell_cp;         /* sorted code points of one-character pieces */
    int32_t n_spell_cp;
};

/* rpc.c: parses list, probes every worker (timeout_ms each step), routes
 * ggml's RPC aborts to the lost handler, and writes the workers' devices
 * to devs (NULL-terminated, cap including the NULL). Returns their count,
 * or -1 with err. Cost: one round trip per worker, then ggml's own. */
int32_t fpi_rpc_devices(const char *list, int timeout_ms, ggml_backend_dev_t *devs, int32_t cap, fp_error *err);

/* spell.c: built at load. fpi_spell_problem: the byte offset of the first
 * character of text[0..len) that llama.cpp's tokenizer cannot write (it
 * would abort), *cp set to it, or -1 when all can be. special: control
 * texts are cut out first (fp_tokenize_special). O(len). */
fp_status fpi_spell_build(fp_model *m, fp_error *err);
void      fpi_spell_free(fp_model *m);
int64_t   fpi_spell_problem(const fp_model *m, const char *text, size_t len, bool special, uint32_t *cp);
/* Fills err with "<what> cannot be tokenized: <why>" (fp_tokenize_check's
 * reason and code, FP_ERR_ARG when it has none); returns the code. */
fp_status fpi_tokenize_fail(const fp_model *m, const char *what, const char *text, size_t len, bool special,
                            fp_error *err);

/* tokvec.c: the model's per-token meaning vectors, or NULL (none readable).
 * Built once, on the first call (not thread-safe: the engine's thread). */
#define FP_TOKVEC 16
const float *fpi_tokvec(fp_model *m);

/* control.c: control text is never shown. build/free at model load/free;
 * suffix: 0 when text[0..len) ends in ordinary text, else the length of its
 * ending that is a control text (*complete) or the start of one (>= 2 bytes). */
fp_status fpi_control_texts_build(fp_model *m, fp_error *err);
void      fpi_control_texts_free(fp_model *m);
int32_t   fpi_control_suffix(const fp_model *m, const char *text, size_t len, bool *complete);

/* UTF-8 at the text boundary (utf8.c). The core hands out valid UTF-8 only:
 * generation never appends a token that would make the text invalid, so a
 * text is always valid except perhaps for an unfinished last character,
 * which front ends never see (fp_utf8_complete_prefix holds it back). */
/* True when tail (the unfinished end of a text, 0..3 bytes) followed by
 * piece is still valid UTF-8 but for an unfinished last character, with no
 * NUL byte (U+0000 would cut every C string and many JSON readers). */
bool   fpi_utf8_continues(const char *tail, size_t tail_n, const char *piece, size_t piece_n);
/* Copies src into dst[cap], cut at a character boundary; returns the length. */
size_t fpi_utf8_copy(char *dst, size_t cap, const char *src);
/* The character at buf[0]: its length (*cp set), 0 if invalid, -1 if it
 * runs past len (unfinished). */
int      fpi_utf8_decode(const char *buf, size_t len, uint32_t *cp);
/* Lower case for Latin, Greek and Cyrillic letters (prefix narrowing). */
uint32_t fpi_cp_fold(uint32_t c);
/* A piece starting with a character of a script without spaces between
 * words (CJK, kana, Thai, ...), or with the lead bytes of one. */
bool     fpi_nospace_start(const char *piece, size_t n);

static inline const char *fpi_piece(const fp_model *m, int32_t t, int32_t *len) {
    *len = m->piece_off[t + 1] - m->piece_off[t];
    return m->pieces + m->piece_off[t];
}

/* Can token t follow a text whose unfinished end is tail[0..tail_n)?
 * O(1) for the usual case (no tail, a piece that is whole UTF-8). */
static inline bool fpi_tok_fits(const fp_model *m, int32_t t, const char *tail, int32_t tail_n) {
    if (tail_n == 0 && (m->tok_flags[t] & FP_TOK_UTF8)) return true;
    int32_t n;
    const char *p = fpi_piece(m, t, &n);
    return fpi_utf8_continues(tail, (size_t)tail_n, p, (size_t)n);
}

/* ------------------------------------------------------------- engine */

/* A user of the engine's sequences: a session. The engine sits below the
 * sessions and knows them only through this record, so model, engine and
 * distribution form a layer that imports nothing above it. */
typedef struct fpi_seq_user {
    void *ud;                       /* the session */
    const uint64_t *last_use;       /* LRU tick, for choosing whose branches to take back */
    const int32_t *n_reclaimable;   /* scratch sequences held (reclaimable at any time) */
    int32_t pinned;                 /* > 0 while a thread works for it (batch.c): never reclaimed then */
    const float *bias;              /* the logit bias its sampler chain adds (n_vocab, borrowed), or NULL:
                                       a remote engine sends it as logit_bias with the rows of its sequences */
    void (*release)(struct fpi_seq_user *u);   /* give back every scratch sequence now */
    bool (*drop_spec)(struct fpi_seq_user *u); /* discard its speculation (prefetched outcomes); true if any */
    void (*stale)(struct fpi_seq_user *u);     /* the adapters changed: the KV is stale */
    fp_status (*refresh)(struct fpi_seq_user *u, fp_error *err); /* decode again now */
} fpi_seq_user;

/* ------------------------------------------------------ engine back ends
 *
 * What the rest of the core needs from whatever computes logits: decode a
 * batch, hand out its logits rows, and keep per-sequence memory (copy a
 * prefix to another sequence, cut it, shift positions). engine.c is the
 * local back end (one llama.cpp context, the KV cache); remote.c runs the
 * same calls over an HTTP server (llama-server or OpenAI-compatible), with
 * each sequence's tokens mirrored here and every logits row one request.
 * Nothing above engine.c knows which runs; `sparse` says the rows hold
 * only the server's top log-probabilities, the rest an even share of the
 * remaining mass (cloud.c then never grows a candidate from that share). */
typedef struct fpi_backend {
    const char *name;     /* "local", "llama-server", "openai" */
    bool sparse;
    /* llama_decode's codes: 0 done, 1 no room, 2 aborted, < 0 failed
     * (-100: a remote failure, e->be_msg says what) */
    int  (*decode)(fp_engine *e, const struct llama_batch *b);
    const float *(*logits)(fp_engine *e, int32_t i);   /* row i of the last decode, NULL if none */
    bool (*seq_rm)(fp_engine *e, int32_t seq, int32_t p0, int32_t p1);
    void (*seq_cp)(fp_engine *e, int32_t src, int32_t dst, int32_t p0, int32_t p1);
    void (*seq_add)(fp_engine *e, int32_t seq, int32_t p0, int32_t p1, int32_t delta);
    int32_t (*seq_pos_min)(fp_engine *e, int32_t seq);  /* -1 when empty */
    int32_t (*seq_pos_max)(fp_engine *e, int32_t seq);
    void (*free)(fp_engine *e);
} fpi_backend;

/* Per-sequence memory through the engine's back end (llama_memory_* for
 * the local one). p1 < 0: to the end. */
bool    fpi_seq_rm(fp_engine *e, int32_t seq, int32_t p0, int32_t p1);
void    fpi_seq_cp(fp_engine *e, int32_t src, int32_t dst, int32_t p0, int32_t p1);
void    fpi_seq_add(fp_engine *e, int32_t seq, int32_t p0, int32_t p1, int32_t delta);
int32_t fpi_seq_pos_min(fp_engine *e, int32_t seq);
int32_t fpi_seq_pos_max(fp_engine *e, int32_t seq);
/* The value the sparse rows give tokens the server did not list (the row's
 * minimum when it is shared by more than its top), or -INFINITY: nothing
 * below it may seed or extend a candidate. O(n_vocab). */
float   fpi_row_floor(const fp_engine *e, const float *row);

/* remote.c: a remote back end on e (model, n_ctx, batch set), per params. */
fp_status fpi_remote_open(fp_engine *e, const fp_engine_params *p, fp_error *err);

/* remote_parse.c: the wire format (pure, fuzzed by fuzz/fuzz_remote.c). */
typedef enum fpi_remote_kind { FPI_REMOTE_LLAMA = 0, FPI_REMOTE_OPENAI } fpi_remote_kind;
#define FPI_REMOTE_MAX_TOP 64
typedef struct fpi_remote_pos {
    int32_t token;                        /* the token generated at this position */
    bool    ambiguous;                    /* its text is also another token's: what follows is not keyed by it */
    int32_t n_top;
    fp_logprob top[FPI_REMOTE_MAX_TOP];   /* descending */
} fpi_remote_pos;
/* Maps a token's text as an OpenAI-style server spells it to its id, or -1;
 * FPI_REMOTE_AMBIGUOUS or'ed in when other tokens have that text too. */
#define FPI_REMOTE_AMBIGUOUS (1 << 30)
typedef int32_t (*fpi_remote_lookup)(void *ud, const char *text);
/* The JSON body (malloc'd, NULL on no memory) asking for the distribution
 * after toks[0..n) and `ahead` greedy tokens; bias: n_vocab additive
 * biases sent as logit_bias, or NULL; ids (openai): ask for vLLM's
 * "token_id:N" spelling (return_tokens_as_token_ids). */
/* The value sent as logit_bias for a bias b: b clamped to -100..100 (the
 * OpenAI range), a ban (-inf) as -100, NaN as nothing (0). */
float     fpi_remote_bias_value(float b);
char     *fpi_remote_request(fpi_remote_kind kind, const char *model_name, const int32_t *toks, int32_t n,
                             int32_t n_top, int32_t ahead, const float *bias, int32_t n_vocab, bool ids);
/* Parses a reply into out[0..*n_out) (at most cap): FP_OK with at least one
 * position, else FP_ERR_IO and msg saying what was wrong (the server's own
 * error message when it sent one). */
fp_status fpi_remote_parse(fpi_remote_kind kind, const char *body, size_t len, int32_t n_vocab,
                           fpi_remote_lookup lookup, void *ud, fpi_remote_pos *out, int32_t cap,
                           int32_t *n_out, char *msg, size_t msg_cap);
/* A logits row for pos: its top at their log-probabilities, every other
 * token an even share of 1 - their mass (just below the last listed one). */
void      fpi_remote_row(const fpi_remote_pos *pos, int32_t n_vocab, float *row);

struct fp_engine {
    const fpi_backend *be;       /* what decodes (engine.c local, remote.c) */
    struct fpi_remote *remote;   /* the remote back end's state, NULL for local */
    char be_msg[300];            /* the last remote failure */
    char be_label[300];          /* "llama-server URL": fp_engine_backend */
    fp_model *model;
    struct llama_context *ctx;
    struct llama_batch batch;    /* preallocated: n_batch tokens, 1 seq each */
    int32_t n_batch;
    uint32_t n_ctx;
    uint32_t n_seq_max;          /* 2..256 (fp_engine_new checks) */
    int32_t n_pos_max;           /* positions one sequence may reach */
    /* sequence pool: owner[seq] is the user holding it, NULL when free */
    fpi_seq_user **seq_owner;
    /* users that own sequences, for reclaiming idle branches */
    fpi_seq_user **users;
    int32_t n_users, cap_users;
    uint64_t n_decode_calls, n_decoded_tokens;
    uint64_t n_plan_held;        /* continuation tokens taken from a preview's plan against the trunk's own pick */
    /* speculation: the session whose outcome is being computed (NULL: none;
     * only touched by the thread that decodes); it stops when cancel or that
     * session's pf_cancel is set (fpi_spec_cancelled) */
    fp_session *in_prefetch;
    _Atomic int cancel;          /* set by fp_engine_cancel from any thread */
    /* test hooks (testing.h): see every batch before it is decoded, and fail
     * the fault_at-th decode from now (0 = never) */
    void (*trace)(void *ud, const struct llama_batch *batch);
    void *trace_ud;
    int64_t fault_at;
    uint64_t use_clock;          /* increases on every session use, for LRU */
    bool can_shift;              /* the memory can move cells (llama_memory_can_shift): endless text */
    struct llama_adapter_lora *lora;   /* applied adapter (lora.c), NULL if none */
    struct fpi_batcher *bat;     /* cross-session batching (batch.c), NULL when off */
};

/* Batch building over the engine's one preallocated batch. */
void      fpi_batch_clear(fp_engine *e);
/* Returns false when the batch is full. */
bool      fpi_batch_add(fp_engine *e, int32_t token, int32_t pos, int32_t seq, bool logits);
fp_status fpi_engine_decode(fp_engine *e, fp_error *err);
/* The local back end's llama.cpp memory (tests look at it directly); NULL
 * on a remote engine, whose memory is fpi_seq_* only. */
llama_memory_t fpi_engine_mem(fp_engine *e);
/* A back end's decode code as a status and message (batch.c too). */
#define FPI_REMOTE_FAILED (-100)
fp_status fpi_decode_status(fp_engine *e, int rc, fp_error *err);
/* True when the work being decoded is speculative and was cancelled. */
bool      fpi_engine_should_abort(fp_engine *e);
/* The logits of token i of the last decoded batch (-1: the last with
 * logits), as llama_get_logits_ith; with batching on, this thread's own. */
const float *fpi_engine_logits(fp_engine *e, int32_t i);
/* batch.c: the decode of a batching engine, and what engine.c needs */
fp_status fpi_batcher_decode(fp_engine *e, fp_error *err);
bool      fpi_batcher_abortable(const fp_engine *e);
/* Wakes the threads parked in decodes (a cancelled speculative one leaves). */
void      fpi_batcher_wake(fp_engine *e);
/* Whether the speculation this thread runs was cancelled: for the whole
 * engine (fp_engine_cancel) or for its session (fp_session_cancel_prefetch). */
bool      fpi_spec_cancelled(const fp_engine *e);
void      fpi_batcher_free(fp_engine *e);
/* Gives the lock up until another thread's work ends (true: try again) or
 * until every thread waits for sequences (false: none will come). */
bool      fpi_batcher_wait_seqs(fp_engine *e, fpi_seq_user *self);
/* Decodes tokens[0..n) into seq at positions pos0.., in as many batches as
 * needed; logits are produced for the last token only when want_last. */
fp_status fpi_engine_decode_span(fp_engine *e, int32_t seq, const int32_t *tokens, int32_t n,
                                int32_t pos0, bool want_last, fp_error *err);

/* Sequence pool. fpi_seq_alloc reclaims idle branches of the least recently
 * used other user when the pool is empty; returns -1 when nothing is left. */
int32_t   fpi_seq_alloc(fp_engine *e, fpi_seq_user *owner);
void      fpi_seq_free(fp_engine *e, int32_t seq);   /* also clears its KV cells */
fp_status fpi_engine_attach(fp_engine *e, fpi_seq_user *u);   /* FP_ERR_NOMEM if it cannot track it */
void      fpi_engine_detach(fp_engine *e, fpi_seq_user *u);   /* returns every sequence it holds */
/* After the adapters change: every user is marked stale, then decoded again;
 * one that fails stays stale and is decoded before its next use. Returns
 * the first failure. */
fp_status fpi_engine_redecode_all(fp_engine *e, fp_error *err);
/* GGUF output (gguf_out.c): a ggml context with room for n_tensors holding
 * data_bytes in all, and an empty gguf context; then the file written through
 * a temporary file, fsync and a rename (readers never see half a file; a
 * failure leaves the old one). */
struct gguf_context;
struct ggml_context;
fp_status fpi_gguf_new(size_t data_bytes, int32_t n_tensors, struct ggml_context **ctx, struct gguf_context **g,
                       fp_error *err);
fp_status fpi_write_gguf_atomic(const struct gguf_context *g, const char *path, fp_error *err);

/* --------------------------------------------------------------- dist */

typedef struct fp_tokp { int32_t token; float p; } fp_tokp;

/* The next-token distribution after the sampler chain: entries sorted by
 * descending probability over the tokens the chain kept; probabilities sum to 1. */
typedef struct fp_dist {
    fp_tokp *items;
    int32_t n;
    int32_t cap;
    llama_token_data *scratch; /* n_vocab entries for llama_sampler_apply */
} fp_dist;

fp_status fpi_dist_init(fp_dist *d, int32_t n_vocab);
void      fpi_dist_free(fp_dist *d);
/* Runs logits through the chain; sorts only the top `sort_top` entries
 * (n is then still the full count; entries past sort_top are unordered). */
void      fpi_dist_compute(fp_dist *d, const float *logits, int32_t n_vocab,
                          struct llama_sampler *chain, int32_t sort_top);
fp_uncertainty fpi_dist_uncertainty(const fp_dist *d);

/* A sampler chain for the settings: a GBNF grammar (if any, first; NULL
 * when it does not parse), a learned logit bias (if any), penalties, top-k,
 * top-p, min-p, temperature. */
struct llama_sampler *fpi_chain_new(const fp_settings *st, const fp_model *m, const float *bias, const char *grammar);

/* The one rule for the token automatic continuation takes next, used by the
 * generation loop and by every preview alike (a preview is a promise):
 * the most probable token that is not a control token, or with rng a draw
 * from those tokens (one draw per call, so a copy of the state replays it).
 * With word_start (a word the person took is complete) a token that would
 * extend it is replaced by the most probable token that starts a new word
 * and does not end the text. Only tokens that keep the text valid UTF-8
 * after its unfinished end tail[0..tail_n) qualify. Returns -1 when none
 * does. O(n). */
int32_t fpi_pick_next(const fp_model *m, const fp_dist *d, bool word_start, uint64_t *rng,
                      const char *tail, int32_t tail_n);
double  fpi_rng_next(uint64_t *state); /* xorshift64*, uniform in [0, 1) */

/* fpi_pick_next(m, d', false, NULL, tail, tail_n) for d' the distribution
 * fpi_dist_compute(d', logits, n_vocab, chain, _) would give, without
 * computing it: one pass over the logits (dist.c explains when this is
 * exact). Returns FPI_PICK_UNDECIDED when only the full path can tell (a
 * near tie at the top, a grammar, a best token that may not be taken, ...).
 * Overwrites d's scratch. O(n_vocab), no exp, no sort. */
#define FPI_PICK_UNDECIDED (-2)
int32_t fpi_pick_greedy(const fp_model *m, fp_dist *d, const float *logits, int32_t n_vocab,
                        struct llama_sampler *chain, float temperature, const char *tail, int32_t tail_n);
/* The repetition penalty sampler fpi_chain_new uses: llama.cpp's arithmetic
 * (no frequency or presence term), applied over its window of the last
 * last_n (> 0) accepted tokens. NULL when out of memory. */
struct llama_sampler *fpi_penalties_new(int32_t n_vocab, int32_t last_n, float repeat);

/* Softmax of logits/temperature into probs (n entries); returns nothing. */
void    fpi_softmax(const float *logits, int32_t n, float temperature, float *probs);
int32_t fpi_argmax(const float *v, int32_t n);

/* --------------------------------------------------------------- cloud */

/* One fork as stored in the tree: everything needed to show it again
 * exactly, and to decide it later without recomputing anything. */
typedef struct fp_fork_rec {
    fp_fork pub;              /* what front ends see; pub.candidates -> shown */
    int32_t node;             /* the fork stands at the end of this node */
    float  *logits;           /* n_vocab logits at the fork position; NULL when not in
                                 memory (a restored fork): reopening decodes them again.
                                 Invariant: the open fork's are always in memory. */
    fp_candidate *base;       /* the cloud as first computed (no prefix) */
    int32_t n_base;
    float   base_other;
    fp_candidate *shown;      /* what is shown now (base, or prefix-narrowed) */
    int32_t cap;              /* room in base and shown */
    int32_t n_shown;
    float   shown_other;
    double  shown_at_ms;
} fp_fork_rec;

/* Live branches: the KV cells of the shown candidates, kept in scratch
 * sequences so that committing a candidate decodes nothing again.
 * Invariant: live.valid implies live.fork is the open fork, the trunk holds
 * exactly the tokens before the fork, and for each shown candidate i,
 * live.seq[i] holds the candidate's tokens followed by its first
 * live.n_decoded_preview[i] preview tokens at the following positions. */
typedef struct fp_live {
    bool     valid;
    int32_t  fork_id;
    int32_t *seq;                 /* [k] */
    int32_t *n_decoded_preview;   /* [k] */
    float   *word_logits;         /* [k][n_vocab]: logits after each candidate's word */
} fp_live;

/* The cloud computation: expands words, merges them, computes previews.
 * Writes up to settings.k candidates into out and the remaining mass into
 * *other. Uses the session's scratch sequences and fills s->live. */
fp_status fpi_cloud_compute(fp_session *s, const float *logits, const char *prefix,
                           fp_candidate *out, int32_t *n_out, float *other, fp_error *err);
/* Fills c's preview words from its preview tokens (cloud.c; restore uses it too). */
void fpi_preview_words(const fp_model *m, fp_candidate *c);
/* Returns every scratch sequence of the session to the engine and marks the
 * live branches invalid. */
void fpi_cloud_drop_live(fp_session *s);
/* Frees the cloud workspace (done by fp_session_free). */
void fpi_cloud_free(fp_session *s);
struct fp_cloud_ws;

/* ------------------------------------------------------------- session */

typedef enum fp_node_kind { FP_NODE_PROMPT = 0, FP_NODE_CHOICE, FP_NODE_TYPED, FP_NODE_AUTO,
                            FP_NODE_SPLIT } fp_node_kind;

/* A span of tokens in the document tree. The fork decided at the end of a
 * node creates its children; the first child is the oldest alternative. */
typedef struct fp_node {
    int32_t id;
    int32_t parent;               /* -1 for the prompt node */
    fp_node_kind kind;
    int32_t start_pos;            /* trunk position of its first token */
    int32_t *tokens;
    fp_position *pos;             /* one record per token (prompt node: unused) */
    int32_t n, cap;
    int32_t fork_id;              /* the fork at the end of this node, -1 if none */
    int32_t parent_fork;          /* the fork whose decision created it, -1 if none */
} fp_node;

/*
 * A session. Invariants (checked by fpi_session_check in test builds):
 *   - the path cache is the tree's path root..leaf: path_tok, path_node,
 *     path_off and text are what fpi_path_rebuild(leaf) would make;
 *   - the trunk KV holds exactly path_tok[0..n_past) but the window's gap
 *     (tree.c: fpi_kv_pos gives each token's position), n_past <= n_path; at
 *     the start of every decode at the fork position n_past == n_path
 *     (fpi_trunk_repair makes it so);
 *   - state AT_FORK <=> open_fork >= 0, and that fork stands at the end of
 *     the leaf: forks[open_fork].node == leaf, its position == n_path,
 *     nodes[leaf].fork_id == open_fork;
 *   - live.valid implies live.fork_id == open_fork (see fp_live);
 *   - every scratch sequence is owned by this session in the engine;
 *   - the text is valid UTF-8 but for an unfinished last character;
 *   - stale means the adapters changed since the KV was decoded: the next
 *     use decodes again (fpi_session_ready) before anything else.
 */
struct fp_session {
    fp_engine *engine;
    fpi_seq_user user;            /* how the engine sees this session */
    _Atomic int pf_cancel;        /* fp_session_cancel_prefetch, from any thread */
    fp_settings st;
    struct llama_sampler *chain;
    fp_dist dist;
    int32_t n_vocab;

    char *prompt;
    size_t prompt_len;

    /* tree */
    fp_node *nodes; int32_t n_nodes, cap_nodes;
    fp_fork_rec *forks; int32_t n_forks, cap_forks;
    fp_fork *events; int32_t n_events, cap_events;   /* deep copies (own candidates) */

    /* the current path, rebuilt from the tree when it changes */
    int32_t leaf;                 /* node at the end of the current path */
    int32_t *path_tok; int32_t n_path, cap_path;     /* prompt + generated tokens */
    int32_t *path_node;           /* node of each token */
    int32_t *path_off;            /* byte offset of each generated token's piece in text */
    char   *text; size_t text_len, text_cap, text_complete;
    char   *disp;                 /* text[0..text_complete) and a NUL: what front ends see */

    /* trunk */
    int32_t trunk_seq;
    int32_t n_past;               /* tokens of the path the trunk has taken in (path index) */
    /* the window (tree.c, endless text): the trunk holds path tokens
     * [0, n_keep) at their own positions and [n_keep + n_shift, n_past) at
     * position p - n_shift; the n_shift tokens between left the model's view
     * (the text keeps them). n_past is never inside that gap. */
    int32_t n_keep, n_shift;
    float  *cur_logits;           /* logits after the last trunk token */

    /* scratch sequences for branches */
    int32_t *scratch; int32_t n_scratch;
    fp_live live;
    struct fp_cloud_ws *cloud;    /* work buffers of cloud.c, sized for the settings */
    fp_prefs *prefs;              /* borrowed; NULL when none is attached */
    /* speculative outcomes of the open fork (prefetch.c) */
    struct fp_prefetch { fp_session *shadow; int32_t index; bool with_preview; } prefetch[FP_MAX_PREFETCH];
    int32_t n_prefetch;
    bool shadow;                  /* this session is a speculative copy (prefetch.c) */
    uint64_t last_use;

    /* token healing: the prompt's last piece, taken off the prompt's tokens
     * and spelled again by the first generated ones (heal_done bytes of it
     * so far on the current path) */
    char heal[FP_MAX_TEXT];
    int32_t heal_len, heal_done;

    /* the preview the continuation follows after a candidate taken alone */
    int32_t plan[FP_MAX_PREVIEW];
    int32_t n_plan, plan_at;

    char *grammar;                /* a GBNF grammar the generated text keeps to (the chain's first sampler), or NULL */

    fp_state state;
    bool stale;                   /* the adapters changed: decode again before use */
    bool word_end_pending;        /* the last decision ended a word: the next auto token starts one */
    const char *end_reason;
    int32_t open_fork;            /* -1 when ended */
    uint64_t rng;
};

/* Session internals shared by session.c, tree.c, navigate.c, prefetch.c,
 * check.c and snapshot.c (restoring a saved session). */
static inline int32_t fpi_n_prompt(const fp_session *s) { return s->nodes[0].n; }
static inline int32_t fpi_n_generated(const fp_session *s) { return s->n_path - fpi_n_prompt(s); }
fp_session *fpi_session_alloc(fp_engine *e, const fp_settings *st, fp_error *err);
/* Puts a GBNF grammar on a session being built (NULL: none): its chain then
 * starts with it. FP_ERR_ARG when it does not parse. */
fp_status   fpi_session_grammar(fp_session *s, const char *gbnf, fp_error *err);
/* fp_session_new from the prompt's tokens (settings already checked); heal
 * false decodes them all (dialogue.c: a chat template's prompt). */
fp_session *fpi_session_start(fp_engine *e, const char *prompt, const int32_t *toks, int32_t n, bool heal,
                              const char *grammar, const fp_settings *settings, fp_error *err);
bool        fpi_grow(void **arr, int32_t *cap, int32_t need, size_t sz);
int32_t     fpi_node_new(fp_session *s, fp_node_kind kind, int32_t parent, int32_t parent_fork, int32_t start_pos);
bool        fpi_node_push(fp_session *s, int32_t id, int32_t tok, const fp_position *pos);
void        fpi_node_drop_last(fp_session *s);
/* Splits node y at path position p (y keeps [start, p), a new node z the
 * rest with y's fork and children); returns z or -1. unsplit undoes it. */
int32_t     fpi_node_split(fp_session *s, int32_t y, int32_t p);
void        fpi_node_unsplit(fp_session *s, int32_t y, int32_t z);
fp_status   fpi_path_push(fp_session *s, int32_t tok, int32_t node);
fp_status   fpi_path_rebuild(fp_session *s, int32_t leaf);
fp_position *fpi_path_pos(fp_session *s, int32_t p);
fp_status   fpi_set_path(fp_session *s, int32_t leaf, bool want_logits, fp_error *err);
fp_status   fpi_trunk_sync(fp_session *s, const int32_t *old_tok, int32_t old_n, bool want_logits, fp_error *err);
/* Decodes the path tokens the trunk lacks (n_past..n_path). */
fp_status   fpi_trunk_repair(fp_session *s, fp_error *err);
/* The window (tree.c). fpi_window: the most tokens the trunk holds at a
 * fork (the context minus a fork's branches and previews). fpi_kv_pos: the
 * KV position of path token p. slide: the oldest tokens after the kept
 * start leave, the rest move down (only with no live branch or shadow: a
 * cell's position is shared by every sequence holding it). reset: the trunk
 * empty, laid out for the current path (decoded again before use). */
int32_t     fpi_window(const fp_session *s);
static inline int32_t fpi_kv_pos(const fp_session *s, int32_t p) { return p < s->n_keep ? p : p - s->n_shift; }
fp_status   fpi_window_slide(fp_session *s, fp_error *err);
bool        fpi_window_fits(const fp_session *s);   /* the layout suits the path and the settings */
void        fpi_trunk_reset(fp_session *s);
/* Positions kept free beyond the text (a word and its preview), and KV
 * cells a fork's branches may take on top of the trunk (session.c). */
int32_t     fpi_reserve_tokens(const fp_session *s);
int32_t     fpi_branch_cells(const fp_session *s);
void        fpi_chain_resync(fp_session *s);
fp_status   fpi_text_append(fp_session *s, const char *b, size_t n);
int32_t     fpi_text_tail(const fp_session *s);
/* Token healing (session.c). init: given the prompt node, finds whether the
 * prompt's last token was held back and sets heal (restore calls it too).
 * heal_end: the path position where healing is complete. */
void        fpi_heal_init(fp_session *s, const int32_t *all_prompt_tokens, int32_t n_all);
void        fpi_heal_setup(fp_session *s);   /* the same, tokenizing the prompt itself */
int32_t     fpi_heal_end(const fp_session *s);
/* Tokens automatic continuation may still append after a path of path_len
 * tokens before max_tokens or the context ends the text. */
int32_t     fpi_room(const fp_session *s, int32_t path_len);

/* The fork lifecycle (session.c). open computes a fork at the end of the
 * leaf in probability order; present orders and shows the open fork for
 * the person; show/show_base set what pub shows. */
fp_status   fpi_open_fork(fp_session *s, fp_reason reason, fp_uncertainty u, fp_error *err);
void        fpi_fork_present(fp_session *s);
void        fpi_fork_show(fp_session *s, fp_fork_rec *f);
void        fpi_fork_show_base(fp_fork_rec *f);
fp_status   fpi_fork_fit(fp_fork_rec *f, int32_t k, fp_error *err);
fp_status   fpi_append_token(fp_session *s, int32_t tok, const fp_position *rec);
void        fpi_session_end(fp_session *s, const char *why);
/* What a change may alter, saved before it starts (session.c). A decision
 * or a forced fork only adds: nodes, forks and events past the counts here,
 * tokens on its own new node, KV cells past n_past. So restoring is
 * truncating, plus the few scalars: the path, trunk, chain history and open
 * fork are as they were, and nothing is decoded. */
typedef struct fpi_mark {
    int32_t n_nodes, n_forks, n_events, leaf, open_fork, n_past, n_keep, n_shift;
    fp_state state;
    const char *end_reason;
    bool word_end_pending;
    uint64_t rng;
    fp_fork pub;          /* the open fork's public record */
} fpi_mark;
void fpi_mark_take(const fp_session *s, fpi_mark *mk);
void fpi_mark_restore(fp_session *s, const fpi_mark *mk);
/* Decodes again if the adapters changed (stale); every public mutator calls it first. */
fp_status   fpi_session_ready(fp_session *s, fp_error *err);

/* check.c: the invariants above, asserted; fpi_check runs them after every
 * public mutator when the library is built with FP_CHECKS (the test build). */
bool fpi_session_check(const fp_session *s, char *why, size_t cap);
#ifdef FP_CHECKS
void fpi_check_or_abort(const fp_session *s);
#define fpi_check(s) fpi_check_or_abort(s)
#else
#define fpi_check(s) ((void)0)
#endif

/* prefetch.c: the speculative outcome matching a decision, or -1; adopting
 * one makes it the session's reality (the caller records the decision);
 * clearing drops them all. */
int32_t   fpi_prefetch_find(const fp_session *s, int32_t index, bool with_preview);
fp_status fpi_prefetch_adopt(fp_session *s, int32_t which, fp_chooser by, fp_error *err);
void      fpi_prefetch_clear(fp_session *s);
/* cloud.c: reorders the live branches: new slot i takes old slot perm[i]. */
void      fpi_cloud_permute(fp_session *s, const int32_t *perm, int32_t n);
/* prefs.c: the per-token bias for the sampler chain. */
const float *fpi_prefs_bias(const fp_prefs *p);
/* prefs.c: a fork was decided automatically (counted for the person's view). */
void fpi_prefs_note_auto(fp_prefs *p);
/* prefs.c: the model's token meaning vectors (tokvec.c) for the features;
 * set when the preferences are attached to a session. */
void fpi_prefs_bind(fp_prefs *p, const float *tokvec);
/* adapt.c: the person's entry habits, counted by the session (see
 * fp_prefs_habits): a decision (typed: letters or own text; pointed: into a
 * preview; depth: share of the preview taken, < 0 when the candidate had
 * none) and a repair. prefs.c holds the tally (fpi_prefs_habits). */
void fpi_habits_decision(fp_prefs_habits *h, bool typed, bool pointed, float depth);
void fpi_habits_repair(fp_prefs_habits *h);
fp_prefs_habits *fpi_prefs_habits(fp_prefs *p);
/* cloud.c: moves a shadow session's live branches to s (for the fork just adopted). */
fp_status fpi_cloud_adopt_live(fp_session *s, fp_session *shadow, int32_t fork_id, fp_error *err);

/* json.c helpers shared with snapshot.c (saved sessions). fpi_json_exact
 * switches the calling thread between exact floats (saving) and floats
 * rounded for people (events, the tree). */
struct cJSON;
void          fpi_json_exact(bool on);
void          fpi_json_text(struct cJSON *o, const char *key, const char *t, size_t n);
struct cJSON *fpi_json_ints(const int32_t *v, int32_t n);
struct cJSON *fpi_json_candidates(const fp_candidate *c, int32_t n);
struct cJSON *fpi_json_fork(const fp_fork *f);
struct cJSON *fpi_json_settings(const fp_settings *s);
fp_status     fpi_settings_from_cjson(const struct cJSON *o, fp_settings *out, fp_error *err);

/* Candidate copy helper for the event log. */
fp_candidate *fpi_candidates_dup(const fp_candidate *c, int32_t n);

#endif
