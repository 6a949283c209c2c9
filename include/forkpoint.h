/*
 * forkpoint.h — the writing core of the Forkpoint library: models, the
 * engine, sessions, forks and decisions. Learning from decisions
 * (preferences, steering vectors, LoRA adapters, judging them) is in
 * forkpoint_learn.h; the decision log in forkpoint_store.h; finding the
 * default model in forkpoint_fetch.h.
 *
 * Forkpoint turns text generation into a sequence of automatic runs and
 * human-decided forks. The model continues by itself while it is confident;
 * where it is unsure (a *fork*) the library stops and offers a cloud of
 * whole-word candidates, each with a short *preview* of what it would lead to.
 * A front end (terminal, HTTP server, benchmark, script) shows the fork,
 * takes a decision and hands it back.
 *
 * Objects and ownership (all handles are opaque):
 *
 *   fp_model    a loaded GGUF model.                 fp_model_free()
 *   fp_engine   one llama.cpp context over a model;  fp_engine_free()
 *               holds many sequences (trunks and branches of every session).
 *   fp_session  one document: a tree of token spans  fp_session_free()
 *               grown from a prompt, with the forks met along the way.
 *
 * A session borrows its engine and an engine borrows its model: free them in
 * reverse order. None of them is thread-safe; a front end that serves several
 * clients must serialise all calls on one engine (the server has one worker).
 *
 * Errors: every fallible call returns an fp_status and, when given a non-NULL
 * fp_error, fills in a one-line message. The library never prints and never
 * exits. Strings returned by the library are owned by the object they came
 * from and stay valid until that object changes, unless said otherwise.
 */
#ifndef FORKPOINT_H
#define FORKPOINT_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FP_VERSION "0.1.0"

/* ------------------------------------------------------------------ errors */

typedef enum fp_status {
    FP_OK = 0,
    FP_ERR_ARG,          /* an argument is invalid (NULL, out of range, ...) */
    FP_ERR_IO,           /* a file could not be read or written */
    FP_ERR_MODEL,        /* the file is not a model llama.cpp can run */
    FP_ERR_UTF8,         /* text is not valid UTF-8 */
    FP_ERR_EMPTY,        /* an empty prompt or empty typed text */
    FP_ERR_CONTEXT,      /* the text does not fit the context window */
    FP_ERR_CAPACITY,     /* no free sequences left in the engine */
    FP_ERR_DECODE,       /* llama_decode failed */
    FP_ERR_STATE,        /* the call does not fit the session's state */
    FP_ERR_NOMEM,        /* allocation failed */
    FP_ERR_CHECKSUM,     /* a downloaded or cached file has the wrong sha256 */
    FP_ERR_ABORTED,      /* fp_engine_cancel interrupted speculative work */
    FP_ERR_DIVERGED,     /* training produced a non-finite loss or weight; nothing was written */
    FP_ERR_REMOTE        /* the remote engine (--backend) failed after its retries; nothing was decided */
} fp_status;

typedef struct fp_error {
    fp_status code;
    char message[256];
} fp_error;

/* A short constant name for a status ("FP_ERR_MODEL", ...). */
const char *fp_status_name(fp_status s);
/* Fills err (if non-NULL) with code and a printf-style message, and returns
 * code: how the core, and libraries built on it (the store, the fetcher),
 * report errors, in one place. */
fp_status fp_error_set(fp_error *err, fp_status code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ------------------------------------------------------------------ model */

typedef struct fp_model fp_model;

typedef struct fp_model_params {
    bool vocab_only;   /* load only the tokenizer (no inference possible) */
    bool verbose;      /* let llama.cpp log to stderr (quiet by default) */
    const char *rpc;   /* "HOST:PORT[,HOST:PORT...]": the model's layers go to these RPC
                        * workers (forkpoint rpc-worker; docs/deploy.md), NULL = this machine */
    int rpc_timeout_ms;/* how long each worker may take to connect and answer (default 3000) */
} fp_model_params;

fp_model_params fp_model_default_params(void);

/* Loads a GGUF file. Returns NULL and fills err when the file is missing,
 * truncated, corrupt, of an unsupported version, or (unless vocab_only was
 * asked for) has no weights. */
fp_model *fp_model_load(const char *path, const fp_model_params *params, fp_error *err);
void      fp_model_free(fp_model *model);

/* ---- one model on many machines: llama.cpp's RPC back end (src/core/rpc.c)
 * The protocol has no authentication or encryption: loopback or a private
 * network only (docs/deploy.md "RPC workers"). */
#define FP_RPC_MAX 16   /* llama.cpp's GGML_RPC_MAX_SERVERS */
typedef struct fp_rpc_endpoint { char host[256]; int port; } fp_rpc_endpoint;
/* Splits "HOST:PORT[,HOST:PORT...]" (IPv4 or a host name, port 1..65535, no
 * empty entry or duplicate, at most cap) into out[0..*n). FP_ERR_ARG with a
 * message naming the bad entry. No I/O. */
fp_status fp_rpc_parse(const char *list, fp_rpc_endpoint *out, int cap, int *n, fp_error *err);
/* Connects to a worker and exchanges the protocol's HELLO, each step within
 * timeout_ms: FP_OK, or FP_ERR_IO saying why (refused, no answer, not a
 * worker, another protocol version). Cost: one round trip. */
fp_status fp_rpc_probe(const fp_rpc_endpoint *e, int timeout_ms, fp_error *err);
/* llama.cpp b10679 aborts the process when a connected worker fails (no
 * error return exists; upstream #25938), and it writes to the worker's
 * socket without MSG_NOSIGNAL: a program using .rpc should ignore SIGPIPE. With a handler set, the abort is
 * routed to it first, on llama.cpp's RPC thread, with one line naming the
 * worker that is gone; the handler should end the process (_exit): if it
 * returns, the process aborts. */
typedef void (*fp_rpc_lost_fn)(const char *why);
void fp_rpc_set_lost_handler(fp_rpc_lost_fn fn);
/* Serves this machine's CPU and memory to RPC clients on host:port (IPv4)
 * with threads CPU threads (0 = all). Blocks while serving; returns
 * FP_ERR_ARG / FP_ERR_IO (e.g. the port is taken) when it cannot. */
fp_status fp_rpc_serve(const char *host, int port, int threads, fp_error *err);

int32_t     fp_model_n_vocab(const fp_model *model);
int32_t     fp_model_n_ctx_train(const fp_model *model);
bool        fp_model_is_vocab_only(const fp_model *model);
const char *fp_model_path(const fp_model *model);

/* What a GGUF file holds, read from its header without loading it. */
typedef struct fp_model_info {
    char    name[128];         /* general.name, else the file name without .gguf */
    char    arch[32];          /* general.architecture ("llama", "qwen2", ...) */
    char    quant[16];         /* the type most weight bytes are stored in ("Q8_0", "F32"), "" = none */
    int64_t size_bytes;        /* the file's size */
    int32_t n_ctx_train;       /* ARCH.context_length, 0 = not given */
    int32_t n_vocab;           /* entries of tokenizer.ggml.tokens */
    bool    has_chat_template; /* tokenizer.chat_template is set */
    bool    has_weights;       /* tensors are present (false: a vocab-only file) */
} fp_model_info;

/* Fills info from path's GGUF header (llama.cpp's gguf reader, no tensor
 * data). Cost: reading the metadata, a few KB to a few MB (the token list);
 * no weights are read or mapped. FP_ERR_IO for a missing file, FP_ERR_MODEL
 * for one that is not GGUF or is damaged. */
fp_status fp_model_info_read(const char *path, fp_model_info *info, fp_error *err);

/* Tokenizer access, usable on vocab-only models too.
 * fp_tokenize writes at most cap tokens and returns how many the text needs
 * (so a return > cap means "call again with a larger buffer"), or -1 on
 * invalid UTF-8 or on a character the vocabulary cannot spell (a
 * SentencePiece vocabulary without byte tokens: TinyStories-656K has no
 * "["). add_bos adds the model's BOS token when it has one. */
int32_t fp_tokenize(const fp_model *model, const char *text, size_t len,
                    int32_t *tokens, int32_t cap, bool add_bos);
/* Why fp_tokenize (special false) or fp_tokenize_special (true) refuses
 * text: FP_ERR_UTF8, or FP_ERR_ARG naming the character the vocabulary
 * cannot spell and its byte offset; FP_OK when it can be tokenized. O(len). */
fp_status fp_tokenize_check(const fp_model *model, const char *text, size_t len, bool special, fp_error *err);
/* Appends the bytes of one token to out (at most cap bytes); returns the
 * piece length, or a negative number when cap is too small. */
int32_t fp_token_piece(const fp_model *model, int32_t token, char *out, int32_t cap);
/* Detokenizes a whole sequence; returns the byte length, negative if cap is too small. */
int32_t fp_detokenize(const fp_model *model, const int32_t *tokens, int32_t n,
                      char *out, int32_t cap);

/* SHA-256 of a file as 64 lowercase hex characters plus NUL. */
fp_status fp_sha256_file(const char *path, char out_hex[65], fp_error *err);

/* ----------------------------------------------------------------- engine */

typedef struct fp_engine fp_engine;

typedef struct fp_engine_params {
    uint32_t n_ctx;         /* KV cells shared by all sequences; 0 = model's training context (max 4096) */
    uint32_t n_seq_max;     /* sequences in the context (2..256); default 64 */
    int32_t  n_threads;     /* 0 = all online CPUs (1 for models under 100M parameters) */
    /* A remote engine (src/core/remote.c, docs/API.md "Back ends"): NULL or
     * "local" runs llama.cpp here; "llama-server:URL" (POST URL/completion)
     * or "openai:URL" (POST URL/v1/completions, vLLM and the like) sends
     * every logits row to that server as a request; the model (vocab-only
     * is enough) gives the tokenizer, whose ids must be the server's. */
    const char *backend;
    const char *api_key;        /* sent as a Bearer token; NULL: $FORKPOINT_API_KEY, else $OPENAI_API_KEY */
    const char *remote_model;   /* openai: the "model" field; NULL: the file name without .gguf */
    int32_t  remote_top;        /* top log-probabilities asked per position, 1..64; 0 = 20 */
    int32_t  remote_timeout_ms; /* one request, retries apart; 0 = 30000 */
} fp_engine_params;

fp_engine_params fp_engine_default_params(void);

fp_engine *fp_engine_new(fp_model *model, const fp_engine_params *params, fp_error *err);
void       fp_engine_free(fp_engine *engine);

const fp_model *fp_engine_model(const fp_engine *engine);
/* "local", or "llama-server URL" / "openai URL": what the decision log records. */
const char     *fp_engine_backend(const fp_engine *engine);
/* A remote back end's counts (all 0 for the local one): requests sent,
 * retried (network errors, timeouts, HTTP 429 and 5xx, with backoff),
 * answered from its cache of greedy look-ahead, and replies that listed
 * fewer log-probabilities than asked. logit_bias: how the bias of a
 * session's preferences (or a request's logit_bias) travels, found at start:
 * "sent, server" (sent as logit_bias; the server's log-probabilities are
 * after it and are taken as they are), "sent, local" (sent, so the server's
 * top list and greedy look-ahead follow it, but its log-probabilities are
 * before it: the bias is added here) or "local" (the server refused
 * logit_bias: added here only, to the unbiased top list). */
typedef struct fp_remote_stats { uint64_t requests, retries, cached, short_replies; const char *logit_bias; } fp_remote_stats;
fp_remote_stats fp_engine_remote_stats(const fp_engine *engine);
uint32_t        fp_engine_n_ctx(const fp_engine *engine);

/* --------------------------------------------------------------- settings */

typedef enum fp_granularity {
    FP_GRAN_TOKEN = 0,  /* candidates are single tokens */
    FP_GRAN_WORD  = 1,  /* candidates are whole words (default) */
    FP_GRAN_PHRASE = 2  /* candidates are words whose previews run to the end of
                           the phrase; choosing one accepts the whole phrase */
} fp_granularity;

typedef struct fp_settings {
    /* sampler chain (llama.cpp samplers, in this order: penalties, top-k, top-p, min-p, temperature) */
    float    temperature;      /* > 0; default 1.0 */
    int32_t  top_k;            /* 0 = off */
    float    top_p;            /* 1.0 = off */
    float    min_p;            /* 0.0 = off */
    float    repeat_penalty;   /* 1.0 = off */
    int32_t  repeat_last_n;    /* tokens the penalty looks back over */

    /* the cloud */
    int32_t        k;             /* candidates shown at a fork (1..64), default 8 */
    fp_granularity granularity;
    int32_t        beam_width;    /* open token paths while growing words (k..64), default 16 */
    int32_t        max_word_tokens; /* longest word in tokens, default 6 */
    int32_t        lookahead;     /* preview length L in tokens (0..64), default 8 */

    /* fork detection: a position is uncertain when ANY enabled test fires */
    float    fork_entropy_bits;  /* entropy >= this;            <= 0 disables */
    float    fork_top1_below;    /* top-1 probability < this;   <= 0 disables */
    float    fork_margin_below;  /* top1 - top2 < this;         <= 0 disables */
    /* the budget: keeps the person from being asked at every token */
    int32_t  min_gap_tokens;     /* at least this many tokens between forks */
    int32_t  max_forks_per_sentence; /* 0 = unlimited */

    /* automatic continuation between forks */
    bool     sample_auto;        /* false = greedy, true = sample with seed */
    uint32_t seed;
    int32_t  max_tokens;         /* stop after this many generated tokens; 0 = until context is full */
} fp_settings;

fp_settings fp_default_settings(void);
/* Checks ranges; returns FP_ERR_ARG with a message naming the bad field. */
fp_status   fp_settings_validate(const fp_settings *s, fp_error *err);
/* KV cells a fork's branches and previews take beside the text. The text
 * sees a window of n_ctx minus this (the start of the text and its newest
 * part; the window slides as the text goes on): an engine for a window of
 * N tokens needs n_ctx = N + fp_settings_branch_cells(s). */
int32_t     fp_settings_branch_cells(const fp_settings *s);

/* -------------------------------------------------------------- the fork */

/* Why a position was or was not a fork. */
typedef enum fp_reason {
    FP_REASON_CONFIDENT = 0,   /* no uncertainty test fired */
    FP_REASON_UNCERTAIN,       /* a test fired: this position is a fork */
    FP_REASON_BUDGET_GAP,      /* uncertain, but too close to the previous fork */
    FP_REASON_BUDGET_SENTENCE, /* uncertain, but the sentence used up its forks */
    FP_REASON_MID_WORD,        /* uncertain, but inside a word (word/phrase granularity) */
    FP_REASON_FORCED,          /* the caller asked for a fork here */
    FP_REASON_TYPED,           /* the person typed text here */
    FP_REASON_IN_CHOICE        /* the rest of a chosen span: the word's later tokens or an accepted preview */
} fp_reason;
const char *fp_reason_name(fp_reason r);

typedef struct fp_uncertainty {
    float entropy_bits;   /* entropy of the next-token distribution, in bits */
    float top1;           /* probability of the most likely token */
    float margin;         /* top1 - top2 */
} fp_uncertainty;

#define FP_MAX_TEXT 256      /* bytes of a candidate's text or preview, incl. NUL */
#define FP_MAX_PATH 16       /* tokens of a candidate word */
#define FP_MAX_PREVIEW 64    /* tokens of a preview */

typedef struct fp_candidate {
    char    text[FP_MAX_TEXT];          /* the word as it would be appended (may start with a space) */
    int32_t tokens[FP_MAX_PATH];        /* the most probable token path that spells it */
    int32_t n_tokens;
    float   prob;                       /* summed over merged paths */
    char    preview[FP_MAX_TEXT];       /* what would follow the word */
    int32_t preview_tokens[FP_MAX_PREVIEW];
    int32_t n_preview;
    bool    is_eog;                     /* the end-of-generation candidate */
    float   pref;                       /* P(the person picks it), from attached preferences; else = prob */
    /* The words of the preview, the units a person points at (computed once,
     * here, for every front end). A word is white space, then non-space
     * bytes; word w begins at preview token preview_word_tok[w], which starts
     * at byte preview_word_byte[w] of preview (a word that begins inside a
     * token snaps down to it; words that snap to the same token are one).
     * Word w shows preview[byte[w] .. byte[w+1]); word 0 begins at 0. */
    int32_t n_preview_words;
    uint8_t preview_word_tok[FP_MAX_PREVIEW];
    uint8_t preview_word_byte[FP_MAX_PREVIEW];
} fp_candidate;

typedef enum fp_chooser { FP_BY_AUTO = 0, FP_BY_HUMAN, FP_BY_SCRIPT } fp_chooser;
const char *fp_chooser_name(fp_chooser c);

typedef enum fp_choice_kind {
    FP_CHOICE_NONE = 0,    /* not decided yet */
    FP_CHOICE_INDEX,       /* a candidate, alone */
    FP_CHOICE_INDEX_PREVIEW, /* a candidate with its whole preview */
    FP_CHOICE_TYPED,       /* the person's own text */
    FP_CHOICE_AUTO         /* the model continued by itself (Enter) */
} fp_choice_kind;
/* "none", "index", "index_preview", "typed", "auto" (as in fork events). */
const char *fp_choice_name(fp_choice_kind k);

/* A fork as the front end sees it. Owned by the session; valid until the
 * next call that changes the session. */
typedef struct fp_fork {
    int32_t         id;          /* unique within the session */
    int32_t         position;    /* token position where the fork stands */
    int32_t         text_offset; /* byte offset in the document text */
    fp_reason       reason;
    fp_uncertainty  unc;
    const fp_candidate *candidates;
    int32_t         n_candidates;
    float           other;       /* probability mass of words not shown */
    char            typed_prefix[FP_MAX_TEXT]; /* narrowing prefix, "" if none */
    /* the decision, once made */
    fp_choice_kind  choice;
    int32_t         choice_index;
    char            choice_text[FP_MAX_TEXT];
    fp_chooser      chooser;
    double          ms_to_choose; /* from the fork being shown to the decision */
} fp_fork;

/* --------------------------------------------------------------- session */

typedef struct fp_session fp_session;

typedef enum fp_state {
    FP_STATE_AT_FORK = 0,  /* waiting for a decision */
    FP_STATE_ENDED         /* end of text, max_tokens or a full context */
} fp_state;

/* Creates a session over an engine, decodes the prompt and runs to the first
 * fork (or the end). Rejects an empty prompt, invalid UTF-8 and a prompt that
 * does not fit the context, with distinct codes. */
fp_session *fp_session_new(fp_engine *engine, const char *prompt,
                           const fp_settings *settings, fp_error *err);
/* The same, with a GBNF grammar (llama.cpp's, start symbol "root") that the
 * generated text keeps to: every candidate, preview and automatic token is
 * one the grammar allows there, and typed text it forbids is refused
 * (FP_ERR_ARG). The prompt is not constrained and is taken whole (no token
 * healing). A grammar that does not parse gives FP_ERR_ARG. Saved sessions
 * keep it. grammar NULL = fp_session_new. */
fp_session *fp_session_new_grammar(fp_engine *engine, const char *prompt, const fp_settings *settings,
                                   const char *grammar, fp_error *err);
/* The session's grammar, or NULL. */
const char *fp_session_grammar(const fp_session *s);
void        fp_session_free(fp_session *s);

fp_state           fp_session_state(const fp_session *s);
const fp_settings *fp_session_settings(const fp_session *s);
/* Changes settings from now on; the current fork is recomputed. */
fp_status fp_session_set_settings(fp_session *s, const fp_settings *settings, fp_error *err);

/* The document so far, only complete UTF-8 sequences (an incomplete trailing
 * character is held back until its last byte arrives). */
const char *fp_session_text(const fp_session *s);
size_t      fp_session_text_len(const fp_session *s);
size_t      fp_session_prompt_len(const fp_session *s); /* bytes of text that are prompt */
int32_t     fp_session_n_tokens(const fp_session *s);   /* prompt + generated */
/* The tokens of the current path (prompt + generated); valid until the session changes. */
const int32_t *fp_session_tokens(const fp_session *s);
/* Why the session ended (only in FP_STATE_ENDED): "eog", "max_tokens", "context". */
const char *fp_session_end_reason(const fp_session *s);

/* The open fork, or NULL when the session has ended. */
const fp_fork *fp_session_fork(const fp_session *s);

/* Decisions. Each one commits tokens to the trunk and runs on to the next
 * fork. `by` says who decided (logged in the fork event). */
fp_status fp_session_choose(fp_session *s, int32_t index, bool with_preview,
                            fp_chooser by, fp_error *err);
/* Takes candidate `index` with only the first n_preview tokens of its
 * preview (0..its n_preview) and opens a fork right after them: the person
 * pointed at the first word of the preview they do not want. No automatic
 * text follows; the new fork (reason FP_REASON_FORCED) stands where that word
 * began. A front end offers it by making each word of a shown preview
 * clickable. FP_ERR_ARG for the end-of-text candidate or a count out of range. */
fp_status fp_session_choose_until(fp_session *s, int32_t index, int32_t n_preview,
                                  fp_chooser by, fp_error *err);
/* The same, counted in preview words (0..n_preview_words): the candidate
 * with its first n_words words, then a fork where word n_words begins (or,
 * for all of them, right after the preview). */
fp_status fp_session_choose_words(fp_session *s, int32_t index, int32_t n_words,
                                  fp_chooser by, fp_error *err);
/* Lets the model pick (the top candidate, as automatic continuation would). */
fp_status fp_session_continue(fp_session *s, fp_chooser by, fp_error *err);
/* Narrows the cloud to words starting with prefix (constrained expansion,
 * not a filter). "" restores the full cloud. */
fp_status fp_session_type_prefix(fp_session *s, const char *prefix, fp_error *err);
/* Commits the person's own text (a leading space is added at a word start). */
fp_status fp_session_type_commit(fp_session *s, const char *text, fp_chooser by, fp_error *err);
/* Returns to the previous decided fork and reopens it with the same
 * candidates. FP_ERR_STATE when there is nothing to undo. */
fp_status fp_session_undo(fp_session *s, fp_error *err);
/* Reopens the fork with this id (anywhere in the tree: on the current path
 * or on an explored branch). */
fp_status fp_session_goto_fork(fp_session *s, int32_t fork_id, fp_error *err);
/* Forces a fork at a text offset on the current path (byte offset into the
 * text; rounded down to a token start). Returns the fork via fp_session_fork. */
fp_status fp_session_fork_at(fp_session *s, size_t text_offset, fp_error *err);

/* ------------------------------------------------------------ prefetch */

/* Speculation while the person decides: computes what choosing candidate
 * `index` of the open fork (alone, or with its preview) would lead to — the
 * automatic text after it and the next fork with its cloud and previews —
 * so that a matching fp_session_choose shows the next fork at once, without
 * running the model. Up to FP_MAX_PREFETCH outcomes are kept (the oldest
 * goes first); any other change to the session discards them.
 * Returns FP_ERR_ABORTED, keeping nothing, when fp_engine_cancel interrupted it. */
#define FP_MAX_PREFETCH 4
fp_status fp_session_prefetch(fp_session *s, int32_t index, bool with_preview, fp_error *err);
/* True when choosing (index, with_preview) now would use a prefetched outcome. */
bool      fp_session_is_prefetched(const fp_session *s, int32_t index, bool with_preview);
/* Interrupts a running fp_session_prefetch within one decode step, and
 * refuses (FP_ERR_ABORTED) every later one until fp_engine_clear_cancel.
 * Both are safe from any thread; ordinary work is never aborted. A server
 * clears the flag when, holding its queue lock, it finds the queue empty and
 * decides to speculate: a request arriving after that still cancels. */
void      fp_engine_cancel(fp_engine *e);
void      fp_engine_clear_cancel(fp_engine *e);
/* The same for one session's speculation only (a server that speculates on
 * several sessions at once stops the one a request is about to change):
 * safe from any thread while s exists; set until fp_session_clear_cancel. */
void      fp_session_cancel_prefetch(fp_session *s);
void      fp_session_clear_cancel(fp_session *s);

/* Cross-session batching, for a server that serves many sessions at once
 * from several threads. After fp_engine_enable_batching (once, before any
 * session work), a thread may call the library on the engine's sessions
 * only between fp_engine_lock and fp_engine_unlock: the lock lets one thread
 * run at a time, as the library needs. A thread that decodes gives the lock
 * up and waits until every thread holding work waits too; then one
 * llama_decode runs all their batches together, and each goes on in turn.
 * Results are those each would get alone (up to the floating-point order of
 * a larger batch); no thread takes back the branches of a session another
 * one is waiting on. Work that changes the engine for every session
 * (adapters, steering) must run while no other thread holds work. Without
 * batching lock and unlock do nothing. */
fp_status fp_engine_enable_batching(fp_engine *e, fp_error *err);
void      fp_engine_lock(fp_engine *e);
void      fp_engine_unlock(fp_engine *e);
/* llama_decode calls the batched rounds made, and in *decodes (if not
 * NULL) the decodes they ran (0 and 0 without batching). Safe from any
 * thread. */
uint64_t  fp_engine_decode_rounds(const fp_engine *e, uint64_t *decodes);

/* Restarts the clock of the open fork: call it when the fork is actually put
 * in front of the person, so ms_to_choose measures their time, not ours. */
void fp_session_mark_shown(fp_session *s);

/* ----------------------------------------------------------- positions */

/* One record per generated position: why it was or was not a fork. */
typedef struct fp_position {
    int32_t        token;
    fp_uncertainty unc;
    fp_reason      reason;
    int32_t        fork_id;    /* -1 when the position is not a fork */
    fp_chooser     by;         /* who put this token here */
} fp_position;

/* Positions of the current path after the prompt: [0, n) */
int32_t            fp_session_n_positions(const fp_session *s);
const fp_position *fp_session_position(const fp_session *s, int32_t i);
/* Byte offset in the text where position i's token begins. */
size_t             fp_session_position_offset(const fp_session *s, int32_t i);

/* ---------------------------------------------------------- tree and log */

/* Forks in the order they were decided (the event log), including forks on
 * branches that were later undone. */
int32_t        fp_session_n_events(const fp_session *s);
const fp_fork *fp_session_event(const fp_session *s, int32_t i);

/* A fork event as one JSON line (no trailing newline). Returns a malloc'd
 * string the caller frees, or NULL on allocation failure. */
char *fp_fork_to_json(const fp_session *s, const fp_fork *f);

/* The whole document tree as JSON: nodes with their text, kind and
 * children, forks with their candidates. malloc'd; the caller frees. */
char *fp_session_tree_json(const fp_session *s);

/* ------------------------------------------------------------ persistence */

/* The whole session (prompt, settings, tree, forks with their candidates,
 * event log, current position) as one JSON document, a *snapshot*; malloc'd,
 * the caller frees. No logits are stored: its size does not grow with the
 * vocabulary (see fp_session_restore). */
char *fp_session_save(const fp_session *s);
/* Rebuilds a saved session on an engine: the same text, tree, forks and open
 * fork, with no candidate recomputed (the current path is decoded once to
 * refill the KV cache and give the open fork's logits; a fork reopened later
 * decodes its own last token again). Candidates, probabilities and previews
 * are the saved ones. Rejects malformed JSON and documents that do not fit
 * the engine's model (vocabulary size) with FP_ERR_ARG / FP_ERR_MODEL.
 * Documents written by older versions (format 1, with logits) restore too. */
fp_session *fp_session_restore(fp_engine *engine, const char *json, fp_error *err);

/* Incremental saving, so that the cost of saving after a decision does not
 * grow with the story. A mark remembers what of a session has been saved;
 * make one right after saving a snapshot or restoring. The changes since the
 * mark (new nodes, forks and events, the records that changed, the current
 * position) are one small JSON document; once it is stored, update the mark.
 * A session is rebuilt from a snapshot and its changes in order.
 * Cost: O(nodes + forks) integer comparisons; the output is proportional to
 * what changed (a decision: one node, about two forks, one event). */
typedef struct fp_save_mark fp_save_mark;
fp_save_mark *fp_save_mark_new(const fp_session *s);          /* NULL: out of memory */
void          fp_save_mark_free(fp_save_mark *m);
/* malloc'd; NULL when out of memory. Does not change the mark. */
char         *fp_session_save_changes(const fp_session *s, const fp_save_mark *m);
/* Everything in s now counts as saved. FP_ERR_NOMEM leaves the mark as it was. */
fp_status     fp_save_mark_update(fp_save_mark *m, const fp_session *s);
/* fp_session_restore of a snapshot with changes[0..n) applied in order; a
 * change that does not follow the one before is FP_ERR_ARG. */
fp_session   *fp_session_restore_log(fp_engine *engine, const char *snapshot,
                                     const char *const *changes, int32_t n_changes, fp_error *err);

/* Settings to and from JSON objects (field names as in fp_settings).
 * fp_settings_from_json starts from *out and overrides only the fields
 * present; unknown fields or wrong types give FP_ERR_ARG. */
char     *fp_settings_to_json(const fp_settings *s);
fp_status fp_settings_from_json(const char *json, fp_settings *out, fp_error *err);

/* ------------------------------------------------------------ chat */

/* Chat templates: a conversation as the prompt text a chat model was trained
 * on. Rendering is llama.cpp's own (llama_chat_apply_template, which knows a
 * fixed list of templates and recognises a model's Jinja template by its
 * markers; no Jinja interpreter runs). Used by the OpenAI-compatible
 * /v1/chat/completions and, later, dialogue sessions. */
typedef struct fp_chat_message {
    const char *role;     /* "system", "user", "assistant", ... */
    const char *content;  /* valid UTF-8 */
} fp_chat_message;

/* The model's own template (GGUF tokenizer.chat_template), or NULL when the
 * file has none. Owned by the model. */
const char *fp_model_chat_template(const fp_model *model);
/* The names of llama.cpp's built-in templates ("chatml", "llama2", "phi3",
 * ...): writes up to cap pointers (static strings) and returns how many
 * there are. */
int32_t fp_chat_builtin_templates(const char **out, int32_t cap);
/* Renders msgs[0..n) through tmpl: NULL for the model's own template, else a
 * built-in name or a template text. With add_assistant the text ends with
 * the opening of an assistant turn (what a completion continues). On
 * success *out is a malloc'd NUL-terminated string the caller frees.
 * FP_ERR_MODEL when tmpl is NULL and the model has no template;
 * FP_ERR_ARG when the template is not one llama.cpp can render, for a
 * message without role or content, or for text that is not UTF-8.
 * Cost: O(total message bytes); one allocation for the result. */
fp_status fp_chat_render(const fp_model *model, const char *tmpl, const fp_chat_message *msgs, int32_t n,
                         bool add_assistant, char **out, fp_error *err);

/* Tokenizing text that may spell control tokens ("<|user|>", "<s>"): as
 * fp_tokenize, but control-token texts become those tokens, as llama.cpp's
 * server does for prompts. A BOS the text already spells is not doubled. */
int32_t fp_tokenize_special(const fp_model *model, const char *text, size_t len,
                            int32_t *tokens, int32_t cap, bool add_bos);
/* The bytes of one token with control tokens spelled out ("<|end|>");
 * same contract as fp_token_piece. */
int32_t fp_token_text(const fp_model *model, int32_t token, char *out, int32_t cap);
/* Detokenizes with control tokens spelled out and nothing removed (the
 * inverse of fp_tokenize_special); negative: -(bytes needed). */
int32_t fp_detokenize_special(const fp_model *model, const int32_t *tokens, int32_t n, char *out, int32_t cap);
/* True for end-of-generation tokens. */
bool    fp_token_is_eog(const fp_model *model, int32_t token);

/* ------------------------------------------------------------ dialogue */

/* A conversation co-written turn by turn. The messages so far are rendered
 * through a chat template (fp_chat_render); a turn is a writing session
 * (forks, choices, undo, the tree, the decision log) whose prompt is that
 * rendering followed by the opening of the next message, byte for byte what
 * llama_chat_apply_template gives. Either side can be co-written: the
 * assistant's reply (steering the model) or the person's own message (the
 * model predicts what the person wants to say). A turn ends at the model's
 * end-of-generation (end-of-turn) token, or where the person ends it.
 *
 * Templates: the model's own (tmpl NULL) or one llama.cpp knows by name.
 * A template is taken only when rendering the conversation and appending a
 * message gives the same text as rendering the longer conversation (checked
 * on a sample conversation at the start and on every message committed);
 * one that rewrites earlier messages is refused (FP_ERR_ARG).
 * Messages are stored with surrounding white space trimmed.
 *
 * Cost: starting a turn renders the whole conversation and decodes its
 * prompt in a new session (O(conversation) tokens); the previous turn's
 * KV is given back. Finished turns are kept as snapshots, so undo can
 * reopen them.
 *
 * Endless: when the conversation is longer than the engine's window, a
 * turn's prompt is the system message and the newest messages (whole,
 * from a user message on) within half the window; every message stays in
 * the dialogue. Such a turn reopens (undo, restore) as it was opened. */
typedef struct fp_dialogue fp_dialogue;

/* system may be NULL or "" (no system message). FP_ERR_MODEL when tmpl is
 * NULL and the model has no template. */
fp_dialogue *fp_dialogue_new(fp_engine *engine, const char *tmpl, const char *system,
                             const fp_settings *settings, fp_error *err);
void         fp_dialogue_free(fp_dialogue *d);

/* Appends a message written outright (role "user" or "assistant").
 * FP_ERR_STATE while a turn is open. */
fp_status fp_dialogue_add(fp_dialogue *d, const char *role, const char *content, fp_error *err);
/* Opens the next message of role ("user" or "assistant") as a co-written
 * turn and runs to its first fork (or its end). FP_ERR_STATE while a turn is open. */
fp_status fp_dialogue_begin(fp_dialogue *d, const char *role, fp_error *err);
/* The open turn's session (decide its forks with fp_session_*), or NULL. */
fp_session *fp_dialogue_session(fp_dialogue *d);
/* The open turn's role, or NULL. */
const char *fp_dialogue_turn_role(const fp_dialogue *d);
/* The open turn's text so far (after its prompt); "" when none is open. */
const char *fp_dialogue_turn_text(const fp_dialogue *d);
/* Commits the open turn's text as a message (its session ended at the
 * end-of-turn token, or the person ends it here). FP_ERR_EMPTY when the
 * turn has no text; FP_ERR_STATE when no turn is open. */
fp_status fp_dialogue_end_turn(fp_dialogue *d, fp_error *err);
/* Undo: within the open turn as fp_session_undo; at its first decision
 * (or with no turn open), the turn is dropped and the previous message,
 * when it was co-written, is reopened at its last decision (a turn the
 * model wrote without one is removed, and no turn is open). FP_ERR_STATE
 * when there is nothing to undo (the message before was typed). */
fp_status fp_dialogue_undo(fp_dialogue *d, fp_error *err);

/* The settings every turn starts with. */
const fp_settings *fp_dialogue_settings(const fp_dialogue *d);
/* The committed messages, the system message first when there is one. */
int32_t         fp_dialogue_n_messages(const fp_dialogue *d);
fp_chat_message fp_dialogue_message(const fp_dialogue *d, int32_t i);
/* The conversation rendered through the template (with the opening of the
 * open turn when there is one); malloc'd, the caller frees. */
char *fp_dialogue_render(const fp_dialogue *d, fp_error *err);

/* The decision log of every turn, in order: each event is a fork event
 * (fp_fork_to_json) with "turn" (the message index it belongs to) and
 * "role". malloc'd; NULL out of range or out of memory. */
int32_t fp_dialogue_n_events(const fp_dialogue *d);
char   *fp_dialogue_event_json(const fp_dialogue *d, int32_t i);

/* The whole dialogue (template, messages, each co-written turn's session
 * snapshot and events, the open turn) as JSON; malloc'd. Restore checks
 * every field and that the open turn's prompt is the messages' rendering. */
char        *fp_dialogue_save(const fp_dialogue *d);
fp_dialogue *fp_dialogue_restore(fp_engine *engine, const char *json, fp_error *err);
/* Saving a dialogue in parts (a store that writes each message once): one
 * committed message as fp_dialogue_save's "messages" holds it (malloc'd,
 * NULL out of range), and the open turn given back as a session restored on its own:
 * fp_dialogue_attach_turn takes s over when its prompt is the opening of
 * a role message after the committed ones (FP_ERR_ARG otherwise; s is
 * then still the caller's). A dialogue restored from a document without
 * "open" plus the attached turn is the dialogue that was saved. */
char     *fp_dialogue_message_save(const fp_dialogue *d, int32_t i);
fp_status fp_dialogue_attach_turn(fp_dialogue *d, const char *role, fp_session *s, fp_error *err);

/* ------------------------------------------------------ plain completion */

/* Left-to-right generation with per-token log-probabilities, for the API
 * front ends that speak OpenAI's and llama.cpp's protocols. It reuses the
 * session's machinery (the sampler chain, the distribution, the pick rule)
 * in one borrowed engine sequence; there are no forks, no tree, no log.
 *
 * Two distributions exist at every position, both computed by the core:
 *   model:  softmax(logits + logit_bias) at temperature 1, nothing cut
 *           (OpenAI's logprobs, llama.cpp's default, vLLM's raw_logprobs);
 *   post:   after the sampler chain (penalties, top-k, top-p, min-p,
 *           temperature): what the token is drawn from
 *           (llama.cpp's post_sampling_probs, vLLM's processed_logprobs).
 * Tokens are drawn from `post` (or its top token when temperature is 0) by
 * the same rule sessions use: never a control token, never a token that
 * would make the text invalid UTF-8.
 * Cost per token: one decode of one token, one pass of the chain over the
 * vocabulary (two when the model distribution is reported), and a partial
 * sort of the n_top best; no allocation after fp_gen_new. */
#define FP_GEN_MAX_TOP 256

typedef struct fp_gen fp_gen;

typedef struct fp_gen_params {
    float    temperature;     /* 0 = greedy, else (0, 100] */
    int32_t  top_k;           /* 0 = off */
    float    top_p;           /* (0, 1]; 1 = off */
    float    min_p;           /* [0, 1); 0 = off */
    float    repeat_penalty;  /* 1 = off */
    int32_t  repeat_last_n;   /* 0..4096 */
    uint32_t seed;            /* the draw's seed (0 is a seed too) */
    const float *logit_bias;  /* n_vocab additive biases or NULL; copied */
    int32_t  n_top;           /* alternatives reported per position, 0..FP_GEN_MAX_TOP */
    bool     post_sampling;   /* report the post distribution, not the model's */
    bool     prompt_logprobs; /* also score every prompt token (model distribution) */
} fp_gen_params;

/* temperature 1, nothing cut, no penalty, seed 0, n_top 0. */
fp_gen_params fp_gen_default_params(void);

typedef struct fp_logprob { int32_t token; float logprob; } fp_logprob;

/* One position: the token taken there, its log-probability and the n_top
 * most probable tokens (descending; fewer when the samplers kept fewer).
 * logprob is -INFINITY for a token the samplers had removed (a prompt
 * token, under post). Pointers are valid until the next call on the gen. */
typedef struct fp_gen_token {
    int32_t token;
    bool    is_eog;
    float   logprob;
    const fp_logprob *top;
    int32_t n_top;
} fp_gen_token;

/* Decodes prompt[0..n_prompt) (n_prompt >= 1) in a sequence borrowed from
 * the engine (FP_ERR_CAPACITY when none is free, FP_ERR_CONTEXT when the
 * prompt leaves no room to generate). */
fp_gen *fp_gen_new(fp_engine *engine, const int32_t *prompt, int32_t n_prompt, const fp_gen_params *params,
                   fp_error *err);
/* The score of prompt token i (1 <= i < n_prompt; needs prompt_logprobs). */
fp_status fp_gen_prompt_token(fp_gen *g, int32_t i, fp_gen_token *out, fp_error *err);
/* Takes the next token. An end-of-generation token is reported (is_eog) and
 * ends the generation: later calls give FP_ERR_STATE. FP_ERR_CONTEXT when
 * the context is full (nothing is taken). */
fp_status fp_gen_next(fp_gen *g, fp_gen_token *out, fp_error *err);
/* Tokens in the sequence so far (prompt + taken). */
int32_t   fp_gen_n_tokens(const fp_gen *g);
void      fp_gen_free(fp_gen *g);

/* ------------------------------------------------------------ utilities */

/* Length of the longest prefix of buf that is complete, valid UTF-8. */
size_t fp_utf8_complete_prefix(const char *buf, size_t len);
/* True if buf is entirely valid UTF-8 (no overlongs, surrogates or > U+10FFFF). */
bool   fp_utf8_valid(const char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* FORKPOINT_H */
