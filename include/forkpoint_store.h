/*
 * forkpoint_store.h — everything Forkpoint keeps, in one database: the
 * decision log, preference profiles, and stories (sessions kept across
 * restarts, as the server does). The database is a SQLite file (the
 * embedded default) or PostgreSQL, given as a postgresql:// URL (libpq), which
 * several servers can share (docs/deploy.md); the same schema and calls.
 *
 * A separate small library over the core (libforkpoint_store.a): the core
 * stays free of storage, front ends that keep history link this as well.
 * It owns the schema, its migrations (older databases are upgraded on open)
 * and the connection; layout in docs/storage.md.
 *
 * Every decision is written in a committed transaction the moment it is
 * made (WAL journal, so a killed process loses nothing that was committed);
 * a story's change and the decisions it holds go in the same transaction.
 * Profiles hold a person's learned preferences (fp_prefs), tied to the model
 * they were learned on by the model file's sha256.
 */
#ifndef FORKPOINT_STORE_H
#define FORKPOINT_STORE_H

#include "forkpoint.h"
#include "forkpoint_learn.h"
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fp_store fp_store;

/* Opens (create = true: creates if missing) a store, upgrading an older
 * schema. path is a SQLite file, or "postgresql://..." / "postgres://..."
 * (a libpq URL; the database must exist, its tables are made on first use).
 * An existing database that is not a Forkpoint store, is damaged, or was
 * made by a newer Forkpoint is refused with a clear error. One handle is
 * one connection, used by one thread (the server's worker). A PostgreSQL
 * connection that is lost gives FP_ERR_IO ("lost the connection to
 * PostgreSQL") and is re-established at the next transaction. */
fp_store *fp_store_open(const char *path, bool create, fp_error *err);
void      fp_store_close(fp_store *st);
int32_t   fp_store_schema_version(fp_store *st);   /* -1 on error */
/* True for a database other processes may write too (PostgreSQL): then
 * what a handle holds in memory (a story, a profile) may have been
 * changed by another server, and callers check (below) before using it. */
bool      fp_store_is_shared(const fp_store *st);

typedef struct fp_decision_meta {
    const char *session_id;    /* any stable id of the writing session */
    const char *profile;       /* whose decision ("default" when NULL) */
    const char *model_sha256;  /* the model file's sha256 */
    const char *model_path;    /* the model file, recorded with a new story (NULL = none) */
    const char *modality;      /* mouse, touch, keyboard, dwell, switch, script, api, ... */
    /* a chat's decision (NULL role: a story's): the turn's role, its message
     * index and {"messages": the messages before it as [{role, content}],
     * "turn_start": the bytes of the session's text before the turn} */
    const char *role;
    int32_t     turn;
    const char *chat;
} fp_decision_meta;

/* Logs the session's decisions from event `from` to the last one, in one
 * transaction; returns the number of the next event to log (`from` when
 * nothing could be written, with err set). The
 * context (text and tokens before each fork) is read from the session, so
 * call it right after the decisions, before the path changes. */
int32_t fp_store_log_events(fp_store *st, const fp_session *s, int32_t from,
                            const fp_decision_meta *meta, fp_error *err);
int64_t fp_store_count(fp_store *st, const char *profile);   /* -1 on error */

typedef enum fp_export_format {
    FP_EXPORT_SFT = 0,   /* {"prompt","completion"} per decision */
    FP_EXPORT_PAIRS,     /* {"prompt","chosen","rejected"} per rejected candidate */
    FP_EXPORT_KTO,       /* {"prompt","completion","label"} chosen true, rejected false */
    FP_EXPORT_RAW,       /* the logged records as JSON lines */
    /* chats' decisions only, in TRL's conversational form: the prompt is the
     * messages before the turn, each side one message of the turn's role
     * (its text before the fork and the continuation), with "turn", "role" */
    FP_EXPORT_CHAT_SFT,  /* {"prompt":[...],"completion":[{role, content}]} */
    FP_EXPORT_CHAT_PAIRS,/* {"prompt":[...],"chosen":[...],"rejected":[...]} */
    FP_EXPORT_CHAT_KTO   /* {"prompt":[...],"completion":[...],"label"} */
} fp_export_format;

/* Parses "sft", "pairs", "kto", "raw", "chat-sft", "chat-pairs",
 * "chat-kto"; false if unknown. */
bool      fp_export_format_parse(const char *name, fp_export_format *out);
/* Writes a dataset; profile NULL = everyone. Returns FP_ERR_ARG for an
 * unknown profile and FP_ERR_EMPTY when there is nothing to export. */
fp_status fp_store_export(fp_store *st, fp_export_format fmt, const char *profile, FILE *out,
                          int64_t *n_rows, fp_error *err);

/* A person's decision as training data: what came before the fork and what
 * they chose there. Only human decisions by index or by typing (automatic
 * ones were nobody's choice). */
typedef struct fp_logged_choice {
    int32_t *context;  int32_t n_context;   /* tokens before the fork (with BOS) */
    int32_t *chosen;   int32_t n_chosen;    /* the chosen candidate's tokens; 0 when typed */
    int32_t *accepted; int32_t n_accepted;  /* its preview, when that was accepted too */
    int32_t *rejected; int32_t n_rejected;  /* the most probable candidate not chosen; 0 if none */
    char    *typed;                         /* the typed text, or NULL */
} fp_logged_choice;

/* Reads the human decisions of a profile (NULL = everyone) logged with the
 * model whose sha256 is given, oldest first; *out is malloc'd, free it with
 * fp_store_choices_free. FP_ERR_ARG for an unknown profile, FP_ERR_MODEL when
 * every decision was logged with another model, FP_ERR_EMPTY when none is
 * usable. Decisions logged with other models are skipped (*n_other counts
 * them; may be NULL). */
fp_status fp_store_choices(fp_store *st, const char *profile, const char *model_sha256,
                           fp_logged_choice **out, int32_t *n, int32_t *n_other, fp_error *err);
void      fp_store_choices_free(fp_logged_choice *c, int32_t n);

/* Profiles. Load: *out is NULL when the profile does not exist yet;
 * FP_ERR_MODEL when it was learned on another model. */
fp_status fp_store_profile_load(fp_store *st, const char *name, const char *model_sha256,
                                fp_prefs **out, fp_error *err);
fp_status fp_store_profile_save(fp_store *st, const char *name, const char *model_sha256,
                                const fp_prefs *p, fp_error *err);
/* Whether the profile's row changed since this handle last read or wrote
 * it (another server learned). One indexed read. A write of a profile
 * that changed since (fp_store_profile_save, or a story write carrying
 * prefs) is refused with FP_ERR_STATE instead of overwriting: reload it,
 * and retry. */
fp_status fp_store_profile_changed(fp_store *st, const char *name, bool *changed, fp_error *err);
/* Forgets a profile's learned preferences (its logged decisions stay). */
fp_status fp_store_profile_reset(fp_store *st, const char *name, fp_error *err);
/* One line per profile: name, decisions learned, model. */
fp_status fp_store_profile_list(fp_store *st, FILE *out, fp_error *err);


/* ---------------------------------------------------------------- stories */

/* A story is a session kept in the store: a snapshot (fp_session_save) and
 * the changes since (fp_session_save_changes), one per write. Each write is
 * one transaction holding the change, the rows of the decisions it adds to
 * the log, the story's version and, when given, the profile's preferences:
 * a decision the restored story holds always has its row. A write makes a
 * new snapshot instead of a change when the changes since the last one add
 * up to more than the snapshot (and FP_STORE_SNAPSHOT_MIN bytes), so a write
 * costs O(what changed) amortised and a load reads at most about twice the
 * snapshot. Versions come from one counter kept in the store: they only grow,
 * across restarts too. */
#define FP_STORE_SNAPSHOT_MIN (64 * 1024)

typedef struct fp_store_session fp_store_session;  /* what of one story is on disk */

typedef struct fp_story_info {
    char     id[65];
    char     title[256];
    int64_t  created, updated;   /* unix seconds */
    uint64_t version;            /* of its last write */
    char     model_sha256[65];   /* the model it was written with, "" = not recorded (older stories) */
    char     model_path[1024];
    char     kind[8];            /* "story", or "chat" (fp_store_chat_*) */
} fp_story_info;

/* What writes cost, for benchmarks and tests. */
typedef struct fp_story_stats {
    int64_t last_bytes;          /* bytes of text and blobs bound by the last write */
    int64_t total_bytes;         /* since this handle was made */
    int64_t writes, snapshots;   /* writes, and how many of them were snapshots */
    int64_t log_bytes;           /* bytes of the changes since the snapshot */
    int64_t snapshot_bytes;      /* bytes of the snapshot */
} fp_story_stats;

/* A new story: its row and first snapshot, and the decisions the session
 * already holds, in one transaction. NULL with err on failure (nothing is
 * written). meta names the session (meta->session_id is the story's id). */
fp_store_session *fp_store_session_create(fp_store *st, const char *title, int64_t created, uint64_t version,
                                          const fp_session *s, const fp_decision_meta *meta,
                                          const fp_prefs *prefs, fp_error *err);
/* Writes what changed since the last write (see above). On failure nothing
 * is written and the handle still describes the disk: the next write
 * carries this change too. FP_ERR_STATE when the story was written by
 * someone else since this handle's last write (another server: nothing is
 * overwritten; reload and retry) or the version would go backwards. */
fp_status fp_store_session_write(fp_store *st, fp_store_session *ps, const fp_session *s, uint64_t version,
                                 const fp_decision_meta *meta, const fp_prefs *prefs, fp_error *err);
/* Restores a story on an engine (snapshot, then its changes); *ps gets its
 * handle, info (may be NULL) its row. FP_ERR_EMPTY in err when the id is
 * unknown; other codes as fp_session_restore's. */
fp_session *fp_store_session_load(fp_store *st, fp_engine *e, const char *id, fp_store_session **ps,
                                  fp_story_info *info, fp_error *err);
void      fp_store_session_free(fp_store_session *ps);
/* A story's row (title, times, version, model) without its text: one
 * indexed read, to learn which model it needs before loading it.
 * FP_ERR_EMPTY for an unknown id. */
fp_status fp_store_session_info(fp_store *st, const char *id, fp_story_info *info, fp_error *err);
/* Whether the story on disk is still the one this handle wrote or loaded
 * last (false when another server wrote it since, or deleted it). One
 * indexed read: for shared stores, before serving a story kept in memory. */
fp_status fp_store_session_current(fp_store *st, const fp_store_session *ps, bool *current, fp_error *err);
void      fp_store_session_stats(const fp_store_session *ps, fp_story_stats *out);
/* Deletes a story and its changes (its decisions stay in the log).
 * *existed (may be NULL) says whether there was one. */
fp_status fp_store_session_delete(fp_store *st, const char *id, bool *existed, fp_error *err);
/* Up to cap stories, most recently written first; returns how many, -1 on error. */
int32_t   fp_store_sessions(fp_store *st, fp_story_info *out, int32_t cap, fp_error *err);
/* The highest version the store has handed out (0 on error), and raising it
 * (a version shown to someone without a write, e.g. on a load). */
uint64_t  fp_store_version(fp_store *st);
fp_status fp_store_note_version(fp_store *st, uint64_t version, fp_error *err);

/* ------------------------------------------------------------------ chats */

/* A chat is a dialogue (fp_dialogue_*) kept in the store, listed with the
 * stories (its row has kind "chat"; fp_store_session_delete, _info, _current
 * and fp_store_sessions work on it). What a write costs: each committed
 * message is written once, when it is committed (a message an undo takes
 * back is deleted); the open turn is kept as stories are, a snapshot and
 * its changes (a decision: one small change), with a new snapshot when the
 * turn changes or the changes outgrow it. The decisions of the open turn
 * go into the log in the same transaction, with their role, turn and the
 * messages before the turn. Call a write before fp_dialogue_end_turn too:
 * the decisions of a turn are logged from its session. */
typedef struct fp_store_chat fp_store_chat;

fp_store_chat *fp_store_chat_create(fp_store *st, const char *title, int64_t created, uint64_t version,
                                    fp_dialogue *d, const fp_decision_meta *meta, const fp_prefs *prefs,
                                    fp_error *err);
fp_status      fp_store_chat_write(fp_store *st, fp_store_chat *pc, fp_dialogue *d, uint64_t version,
                                   const fp_decision_meta *meta, const fp_prefs *prefs, fp_error *err);
/* FP_ERR_EMPTY for an unknown id (or one that is a story). */
fp_dialogue   *fp_store_chat_load(fp_store *st, fp_engine *e, const char *id, fp_store_chat **pc,
                                  fp_story_info *info, fp_error *err);
void           fp_store_chat_free(fp_store_chat *pc);
void           fp_store_chat_stats(const fp_store_chat *pc, fp_story_stats *out);
/* For fp_store_session_current on a chat: its handle's view of the row. */
fp_status      fp_store_chat_current(fp_store *st, const fp_store_chat *pc, bool *current, fp_error *err);

#ifdef __cplusplus
}
#endif
#endif
