/*
 * forkpoint_learn.h — learning from a person's decisions: preferences that
 * order and decide forks, steering vectors, LoRA adapters, and the judging
 * that picks their strength.
 *
 * Part of libforkpoint, over the writing core (forkpoint.h): the same
 * handles, the same error rules (returned, never printed).
 */
#ifndef FORKPOINT_LEARN_H
#define FORKPOINT_LEARN_H

#include "forkpoint.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------- preferences */

/* What a person tends to choose, learned from their decisions: a softmax
 * (Bradley-Terry) model over each fork's candidates, with the model's own
 * log-probability and rank, the word itself, its neighbours, its kind and
 * its meaning (the model's output-matrix row for its first token, taken
 * from the model the first time the preferences are attached to a session:
 * before that those features are 0) as features, plus a per-token logit
 * bias. Trained online, test-then-train: after each decision, a MAP fit over
 * the last 256 decisions (about 1-5 ms). */
typedef struct fp_prefs fp_prefs;

fp_prefs *fp_prefs_new(int32_t n_vocab);
void      fp_prefs_free(fp_prefs *p);
/* P(pick) of each candidate of f given the text before the fork; writes
 * f->n_candidates values (summing to 1). */
void      fp_prefs_predict(const fp_prefs *p, const char *context, size_t context_len,
                           const fp_fork *f, float *out);
/* Learns from one decided fork. Returns the probability the model gave the
 * chosen candidate before the update, or -1 when the fork teaches nothing
 * (typed text that matches no candidate, an automatic decision). */
float     fp_prefs_learn(fp_prefs *p, const char *context, size_t context_len, const fp_fork *f);
int64_t   fp_prefs_n_learned(const fp_prefs *p);
int32_t   fp_prefs_n_vocab(const fp_prefs *p);

/* Auto-resolution: a fork whose top preference reaches the threshold is
 * decided without asking. The threshold is calibrated on the person's own
 * history (the lowest confidence at which past top picks were right at
 * least `precision` of the time) and every undone automatic decision pushes
 * it up. Returns 2 (never) until enough history exists. */
void      fp_prefs_set_auto(fp_prefs *p, bool enabled, float precision);
float     fp_prefs_auto_threshold(const fp_prefs *p);
void      fp_prefs_note_undo(fp_prefs *p);   /* an automatic decision was undone */
/* What a profile learned, to show the person (forkpoint profile show,
 * GET /api/profile). The history holds a flag byte per fork of the newest
 * FP_PREFS_HISTORY, oldest first: the person decided it (AGREED when the
 * learned top pick was theirs) or it was decided automatically (AUTO, and
 * UNDONE once the person undid it). Costs: O(FP_PREFS_HISTORY), O(words). */
#define FP_PREFS_HISTORY 1024
enum { FP_PREFS_AGREED = 1, FP_PREFS_AUTO = 2, FP_PREFS_UNDONE = 4 };
int32_t   fp_prefs_history(const fp_prefs *p, uint8_t *out, int32_t cap);
void      fp_prefs_counts(const fp_prefs *p, int64_t *n_auto, int64_t *n_undone);
/* A named weight: a word the person was seen to like (> 0) or pass over
 * (< 0), or a feature's change from where learning started. */
typedef struct fp_prefs_item { char name[32]; float weight; } fp_prefs_item;
/* The words with the largest |weight|, largest first (at most cap). */
int32_t   fp_prefs_top_words(const fp_prefs *p, fp_prefs_item *out, int32_t cap);
/* Every dense feature (the model's log-probability, rank, length, ...). */
int32_t   fp_prefs_features(const fp_prefs *p, fp_prefs_item *out, int32_t cap);
/* The history in buckets of `bucket` forks (0: about 30 buckets), oldest
 * first: per bucket, the forks the person decided, how many of those the
 * learned top pick agreed with, the automatic decisions and how many of them
 * were undone. Returns the number of buckets written. */
typedef struct fp_prefs_point { int32_t forks, decided, agreed, automatic, undone; } fp_prefs_point;
int32_t   fp_prefs_curve(const fp_prefs *p, int32_t bucket, fp_prefs_point *out, int32_t cap);
/* All of the above as one JSON object (malloc'd; NULL when out of memory):
 * {"decisions","automatic","undone","threshold" (null: off),"bucket",
 *  "curve":[{"forks","decided","agreed","automatic","undone"}],
 *  "words":[{"word","weight"}],"features":[{"name","change"}]}. */
char     *fp_prefs_to_json(const fp_prefs *p);
/* Forgets everything learned (weights, bias, history); the auto-resolution
 * setting stays. The pointer stays valid for sessions that borrow it. */
void      fp_prefs_reset(fp_prefs *p);
/* How the person enters text, as the profile has seen it: averages over
 * their recent decisions (the mean of the first 32, then an exponential
 * average over about the last 32). Counted by the session whose profile it
 * is: a decision after typed letters, or of typed text, is "typed" (the
 * word the person wanted was not among the candidates); pointing into a
 * preview (fp_session_choose_until) is "pointed"; depth is the share of the
 * preview taken with a candidate that had one (1 = the whole preview, 0 =
 * the word alone); a repair is pointing back into the text already written
 * (fp_session_fork_at before its end), counted per decision. */
typedef struct fp_prefs_habits {
    int64_t decisions;   /* the person's decisions counted */
    int64_t depth_n;     /* ... of which of a candidate that had a preview */
    float   typed, pointed, depth, repairs;
} fp_prefs_habits;
fp_prefs_habits fp_prefs_habits_get(const fp_prefs *p);
/* The settings this person's habits ask for, from base (the settings they
 * chose, or the defaults): more candidates for a person who keeps typing
 * (the word they wanted was not shown), longer previews for one who keeps
 * pointing into them or takes them whole, shorter for one who never uses
 * them, and more
 * forks (a smaller gap, no per-sentence budget, a higher top-1 threshold)
 * for one who keeps pointing back into automatic text. Before 16 decisions
 * it returns base. Costs: a fork's work grows about linearly with k and
 * with k x lookahead (the previews); the result stays within
 * fp_settings_validate's ranges. */
fp_settings fp_prefs_adapt_settings(const fp_prefs *p, const fp_settings *base);
/* Binary form for storage; malloc'd. Loading checks the format. */
void     *fp_prefs_save(const fp_prefs *p, size_t *len);
fp_prefs *fp_prefs_load(const void *data, size_t len, fp_error *err);

/* Attaches preferences to a session (NULL detaches; the session borrows p,
 * whose vocabulary must match the model's): clouds are ordered by pref, the
 * person's decisions train p, automatic continuation gets p's logit bias,
 * and auto-resolution (if enabled) decides confident forks by itself. */
fp_status fp_session_set_prefs(fp_session *s, fp_prefs *p, fp_error *err);

/* ------------------------------------------------------- steering vectors */

/* A direction per layer that points from what a person rejected toward
 * what they chose (mean hidden state after context+chosen minus after
 * context+rejected, read at each layer's output). */
typedef struct fp_steer fp_steer;
typedef struct fp_steer_pair {
    const int32_t *context;  int32_t n_context;   /* tokens before the fork (with BOS) */
    const int32_t *chosen;   int32_t n_chosen;
    const int32_t *rejected; int32_t n_rejected;
} fp_steer_pair;

fp_steer *fp_steer_compute(fp_model *model, const fp_steer_pair *pairs, int32_t n, int32_t n_threads, fp_error *err);
void      fp_steer_free(fp_steer *v);
/* Applies strength * v to every layer output of the engine's context
 * (NULL or 0 removes it). Every session's path is decoded again and its open
 * fork recomputed, so nothing stale is scored. */
fp_status fp_engine_set_steer(fp_engine *e, const fp_steer *v, float strength, fp_error *err);
/* Steering vectors as files: llama.cpp's control-vector GGUF ("direction.L"
 * per layer, as llama-cli --control-vector reads), with the strength to use
 * it at. Saving is atomic. Loading checks the layers and width against the
 * model (FP_ERR_MODEL) and gives the stored strength (1 if none). */
fp_status fp_steer_save(const fp_steer *v, const fp_model *m, const char *path, float strength, fp_error *err);
fp_steer *fp_steer_load(const fp_model *m, const char *path, float *strength, fp_error *err);
/* log p(tokens | context) under the engine's current adapters. */
fp_status fp_engine_logprob(fp_engine *e, const int32_t *context, int32_t n_context,
                            const int32_t *tokens, int32_t n, double *out, fp_error *err);

/* ---------------------------------------------------------- LoRA adapters */

/* One thing a person wrote: the tokens before a fork and what they chose
 * there (the chosen word, and its preview when they accepted that too). */
typedef struct fp_lora_example {
    const int32_t *context; int32_t n_context;   /* may start with BOS */
    const int32_t *chosen;  int32_t n_chosen;
} fp_lora_example;

typedef struct fp_lora_params {
    int32_t rank;          /* r of A (r x n_in) and B (n_out x r); default 8 */
    float   alpha;         /* the adapter's scale is alpha / rank; default 8 */
    int32_t epochs;        /* at most this many passes over the windows; default 8 */
    float   learning_rate; /* AdamW, in (0, 1e-3]; default 1e-3 */
    int32_t stride;        /* tokens between window starts; default 256 (no overlap) */
    float   validation;    /* share of windows (the newest) kept out of training to pick
                              the epoch whose weights are written; default 0.2 */
    int32_t context_tail;  /* each choice trains with its sentence: at most this many
                              tokens before and after it; default 32
                              (0 = whole texts: mostly the text between forks) */
    int32_t n_threads;
    uint32_t seed;         /* initial A and window order */
    const char *resume;    /* go on training this adapter file (NULL: a fresh one) */
} fp_lora_params;

typedef struct fp_lora_report {
    int64_t n_tokens;      /* tokens in the packed training text */
    int32_t n_windows;     /* training windows of llama_n_ctx() tokens */
    int32_t n_val_windows; /* validation windows (never trained on) */
    int32_t best_epoch;    /* the epoch whose weights were written */
    double  val_first, val_best;     /* validation loss after the first and the kept epoch */
    int32_t n_tensors;     /* adapter matrices trained */
    int32_t epochs;        /* epochs run */
    double  loss_first, loss_last;   /* mean cross-entropy of the first and last epoch */
} fp_lora_report;

fp_lora_params fp_lora_default_params(void);

/* Trains a LoRA adapter on the examples (the last block's attention output
 * and feed-forward weights and the output matrix of an F32 model) and writes
 * it to out_path as a GGUF that llama_adapter_lora_init loads. out_path is
 * replaced atomically and only on success: FP_ERR_DIVERGED (a non-finite loss
 * or weight) leaves any adapter already there untouched. rep may be NULL. */
fp_status fp_lora_train(const fp_model *model, const fp_lora_example *ex, int32_t n, const fp_lora_params *params,
                        const char *out_path, fp_lora_report *rep, fp_error *err);

/* How well the engine's current adapters fit a person's decisions: the mean
 * log p(chosen) - log p(rejected) over the pairs that have both, and the mean
 * log p per token of the person's own text (the last 16 tokens of each
 * context), which shows whether an adapter still writes fluently. */
typedef struct fp_pair_score { double margin, text_logp; int32_t n_pairs; } fp_pair_score;
fp_status fp_engine_score_pairs(fp_engine *e, const fp_steer_pair *pairs, int32_t n, fp_pair_score *out, fp_error *err);

/* The scale (0.5, 1, 2 or 4) to use the adapter at: the largest margin on the
 * pairs among the scales that keep the text's log p per token within
 * FP_LORA_FLUENCY_SLACK nats of the base model's (0.5 when none does). The
 * engine is left without adapter. at_scale (may be NULL) gets its score. */
#define FP_LORA_FLUENCY_SLACK 0.1
fp_status fp_lora_pick_scale(fp_engine *e, const char *path, const fp_steer_pair *pairs, int32_t n, float *scale,
                             fp_pair_score *at_scale, fp_error *err);

/* The same for a steering vector, among strengths 0.25, 0.5, 1, 2, 4. */
fp_status fp_steer_pick_strength(fp_engine *e, const fp_steer *v, const fp_steer_pair *pairs, int32_t n,
                                 float *strength, fp_pair_score *at, fp_error *err);

/* The scale an adapter file recommends (written by fp_lora_set_scale_hint;
 * `forkpoint learn` picks it on the training decisions), else 1. */
float     fp_lora_scale_hint(const char *path);
/* Records the recommended scale in the adapter file (rewritten atomically). */
fp_status fp_lora_set_scale_hint(const char *path, float scale, fp_error *err);

/* Applies the adapter at path to the engine at `scale` (path NULL or scale 0
 * removes it). Every session's path is decoded again and its open fork
 * recomputed, so nothing stale is scored. */
fp_status fp_engine_set_lora(fp_engine *e, const char *path, float scale, fp_error *err);

#ifdef __cplusplus
}
#endif

#endif
