/*
 * internal.h — structures shared by the files of the core library.
 *
 * Nothing here is public: front ends see only include/forkpoint.h. Each core
 * file owns one concern (model.c the GGUF and tokenizer, engine.c the llama.cpp
 * context and its sequences, dist.c distributions, cloud.c candidate words and
 * previews, session.c the document tree and the generation loop, json.c the
 * serialisations); this header is where their shared state is spelled out.
 */
#ifndef FP_INTERNAL_H
#define FP_INTERNAL_H

#include "forkpoint.h"
#include <llama.h>
#include <stdatomic.h>

/* ------------------------------------------------------------- errors */

/* Fills err (if non-NULL) and returns code, so callers can `return fp_fail(...)`. */
fp_status fp_fail(fp_error *err, fp_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

double fp_now_ms(void); /* monotonic clock, milliseconds */

/* -------------------------------------------------------------- model */

/* Per-token facts the word grouping needs, computed once at load. */
enum {
    FP_TOK_WORD_START = 1 << 0, /* piece begins with whitespace or punctuation: a new word */
    FP_TOK_PUNCT_ONLY = 1 << 1, /* piece is punctuation (maybe space-led): a word by itself */
    FP_TOK_EOG        = 1 << 2, /* end of generation */
    FP_TOK_CONTROL    = 1 << 3, /* BOS, padding, other control tokens: never a candidate */
    FP_TOK_PHRASE_END = 1 << 4, /* contains , ; : or a sentence end */
    FP_TOK_SENT_END   = 1 << 5, /* contains . ! ? or a newline */
    FP_TOK_EMPTY      = 1 << 6  /* renders as no bytes */
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
    uint8_t *tok_flags;
};

static inline const char *fp_piece(const fp_model *m, int32_t t, int32_t *len) {
    *len = m->piece_off[t + 1] - m->piece_off[t];
    return m->pieces + m->piece_off[t];
}

/* ------------------------------------------------------------- engine */

struct fp_engine {
    fp_model *model;
    struct llama_context *ctx;
    struct llama_batch batch;    /* preallocated: n_batch tokens, 1 seq each */
    int32_t n_batch;
    uint32_t n_ctx;
    uint32_t n_seq_max;
    int32_t n_pos_max;           /* positions one sequence may reach */
    /* sequence pool: owner[seq] is the session using it, NULL when free */
    fp_session **seq_owner;
    /* sessions that own sequences, for reclaiming idle branches */
    fp_session **sessions;
    int32_t n_sessions, cap_sessions;
    uint64_t n_decode_calls, n_decoded_tokens;
    /* speculation: llama.cpp's abort callback fires when both are set */
    bool in_prefetch;            /* only touched by the thread that decodes */
    _Atomic int cancel;          /* set by fp_engine_cancel from any thread */
    /* test hook: sees every batch before it is decoded (NULL in normal use) */
    void (*trace)(void *ud, const struct llama_batch *batch);
    void *trace_ud;
    uint64_t use_clock;          /* increases on every session use, for LRU */
    struct llama_adapter_lora *lora;   /* applied adapter (lora.c), NULL if none */
};

/* Batch building over the engine's one preallocated batch. */
void      fp_batch_clear(fp_engine *e);
/* Returns false when the batch is full. */
bool      fp_batch_add(fp_engine *e, int32_t token, int32_t pos, int32_t seq, bool logits);
fp_status fp_engine_decode(fp_engine *e, fp_error *err);
/* Decodes tokens[0..n) into seq at positions pos0.., in as many batches as
 * needed; logits are produced for the last token only when want_last. */
fp_status fp_engine_decode_span(fp_engine *e, int32_t seq, const int32_t *tokens, int32_t n,
                                int32_t pos0, bool want_last, fp_error *err);
llama_memory_t fp_engine_mem(fp_engine *e);

/* Sequence pool. fp_seq_alloc reclaims idle branches of the least recently
 * used other session when the pool is empty; returns -1 when nothing is left. */
int32_t fp_seq_alloc(fp_engine *e, fp_session *owner);
void    fp_seq_free(fp_engine *e, int32_t seq);   /* also clears its KV cells */
void    fp_engine_register(fp_engine *e, fp_session *s);
/* GGUF output (gguf_out.c): a ggml context with room for n_tensors holding
 * data_bytes in all, and an empty gguf context; then the file written through
 * a temporary file, fsync and a rename (readers never see half a file; a
 * failure leaves the old one). */
struct gguf_context;
struct ggml_context;
fp_status fpi_gguf_new(size_t data_bytes, int32_t n_tensors, struct ggml_context **ctx, struct gguf_context **g,
                       fp_error *err);
fp_status fpi_write_gguf_atomic(const struct gguf_context *g, const char *path, fp_error *err);
/* After the adapters change: every session decodes its path again. */
fp_status fpi_engine_redecode_all(fp_engine *e, fp_error *err);
void    fp_engine_unregister(fp_engine *e, fp_session *s);

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

fp_status fp_dist_init(fp_dist *d, int32_t n_vocab);
void      fp_dist_free(fp_dist *d);
/* Runs logits through the chain; sorts only the top `sort_top` entries
 * (n is then still the full count; entries past sort_top are unordered). */
void      fp_dist_compute(fp_dist *d, const float *logits, int32_t n_vocab,
                          struct llama_sampler *chain, int32_t sort_top);
fp_uncertainty fp_dist_uncertainty(const fp_dist *d);

/* A sampler chain for the settings: a learned logit bias (if any),
 * penalties, top-k, top-p, min-p, temperature. */
struct llama_sampler *fp_chain_new(const fp_settings *st, int32_t n_vocab, const float *bias);

/* Softmax of logits/temperature into probs (n entries); returns nothing. */
void    fp_softmax(const float *logits, int32_t n, float temperature, float *probs);
int32_t fp_argmax(const float *v, int32_t n);

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
fp_status fp_cloud_compute(fp_session *s, const float *logits, const char *prefix,
                           fp_candidate *out, int32_t *n_out, float *other, fp_error *err);
/* Returns every scratch sequence of the session to the engine and marks the
 * live branches invalid. */
void fp_cloud_drop_live(fp_session *s);
/* Frees the cloud workspace (done by fp_session_free). */
void fp_cloud_free(fp_session *s);
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

struct fp_session {
    fp_engine *engine;
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
    int32_t n_past;               /* tokens of the path present in the trunk KV */
    float  *cur_logits;           /* logits after the last trunk token */

    /* scratch sequences for branches */
    int32_t *scratch; int32_t n_scratch;
    fp_live live;
    struct fp_cloud_ws *cloud;    /* work buffers of cloud.c, sized for the settings */
    fp_prefs *prefs;              /* borrowed; NULL when none is attached */
    /* speculative outcomes of the open fork (prefetch.c) */
    struct fp_prefetch { fp_session *shadow; int32_t index; bool with_preview; } prefetch[FP_MAX_PREFETCH];
    int32_t n_prefetch;
    uint64_t last_use;

    fp_state state;
    bool word_end_pending;        /* the last decision ended a word: the next auto token starts one */
    const char *end_reason;
    int32_t open_fork;            /* -1 when ended */
    uint64_t rng;
};

/* Called by the engine when it reclaims this session's scratch sequences. */
void fp_session_release_scratch(fp_session *s);

/* Session internals shared with json.c (restoring a saved session). */
fp_session *fpi_session_alloc(fp_engine *e, const fp_settings *st, fp_error *err);
int32_t     fpi_node_new(fp_session *s, fp_node_kind kind, int32_t parent, int32_t parent_fork, int32_t start_pos);
bool        fpi_node_push(fp_session *s, int32_t id, int32_t tok, const fp_position *pos);
fp_status   fpi_path_rebuild(fp_session *s, int32_t leaf);
fp_status   fpi_set_path(fp_session *s, int32_t leaf, bool want_logits, fp_error *err);
void        fpi_fork_show(fp_session *s, fp_fork_rec *f);
/* Decodes the whole path again (the adapters changed) and recomputes the open fork. */
fp_status   fpi_session_redecode(fp_session *s, fp_error *err);

fp_status   fpi_append_token(fp_session *s, int32_t tok, const fp_position *rec);
fp_status   fpi_log_decision(fp_session *s, fp_fork_rec *f, fp_choice_kind kind, int32_t index,
                             const char *text, fp_chooser by);
void        fpi_session_end(fp_session *s, const char *why);

/* prefetch.c: the speculative outcome matching a decision, or -1; adopting
 * one makes it the session's reality; clearing drops them all. */
int32_t   fpi_prefetch_find(const fp_session *s, int32_t index, bool with_preview);
fp_status fpi_prefetch_adopt(fp_session *s, int32_t which, fp_choice_kind kind, const char *text,
                             fp_chooser by, fp_error *err);
void      fpi_prefetch_clear(fp_session *s);
/* cloud.c: reorders the live branches: new slot i takes old slot perm[i]. */
void      fpi_cloud_permute(fp_session *s, const int32_t *perm, int32_t n);
/* prefs.c: the per-token bias for the sampler chain. */
const float *fpi_prefs_bias(const fp_prefs *p);
/* cloud.c: moves a shadow session's live branches to s (for the fork just adopted). */
fp_status fpi_cloud_adopt_live(fp_session *s, fp_session *shadow, int32_t fork_id, fp_error *err);

/* Appends bytes to the session text (used when rebuilding). */
fp_status fp_text_append(fp_session *s, const char *b, size_t n);

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

/* Candidate copy helpers for the event log. */
fp_candidate *fp_candidates_dup(const fp_candidate *c, int32_t n);

#endif
