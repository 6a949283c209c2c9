/*
 * serve.h — internal interfaces of `forkpoint-serve`, the web front end.
 *
 * Why one header: the server is a handful of small modules (options, the
 * engine worker, the session registry, SQLite storage, JSON rendering, HTTP
 * routes, WebSocket fan-out) that share two structures, the configuration and
 * the application context. Keeping their contracts together makes the
 * threading rules visible in one place:
 *
 *   - civetweb handler threads parse requests and never touch fp_* objects;
 *     they fill an srv_job and wait for it (srv_worker_submit).
 *   - executor threads (worker.c) own the fp_model, the fp_engine, every
 *     fp_session and the store (the one SQLite connection, src/store): each
 *     runs one job at a time, only while it holds the engine's lock
 *     (fp_engine_lock), so the "worker-owned" state below is used by one
 *     thread at a time. They take jobs in round-robin order over sessions
 *     (one busy session cannot starve the others), one job per session at
 *     a time. With batching (the default) an executor waiting in a decode
 *     lets the next one run, and their decodes share one llama_decode.
 *   - WebSocket clients live in a fixed table guarded by ws_mu; executors
 *     broadcast state to them after every committed change.
 */
#ifndef FORKPOINT_SERVE_H
#define FORKPOINT_SERVE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "forkpoint.h"
#include "forkpoint_fetch.h"
#include "forkpoint_learn.h"
#include "forkpoint_store.h"

struct mg_connection;
struct mg_context;

#define SRV_ID_LEN 16             /* hex characters in a session id */
#define SRV_MAX_BODY (64 * 1024)  /* request bodies above this get 413 */
/* ...except on the OpenAI and llama.cpp-server routes (oai.c): tools such as
 * mikupad send the whole document as the prompt each time, so the limit
 * follows what a context can hold (a 32K-token window is ~130 KB of text,
 * up to 6 bytes per byte of it as JSON escapes), not the page's actions */
#define SRV_MAX_API_BODY (1024 * 1024)
#define SRV_MAX_LANES 64          /* sessions with queued work at once */
#define SRV_MAX_WS 512            /* WebSocket clients at once (each: one civetweb thread + a writer) */
#define SRV_MAX_EXEC 64           /* --batch-sessions: executor threads at most */
#define SRV_TITLE_MAX 64          /* bytes of a session title, incl. NUL */
#define SRV_VSTASH 64             /* versions remembered for evicted sessions */
#define SRV_MAX_DEPTH 64          /* JSON nesting levels in a request (reqparse.c) */
#define SRV_WS_QUEUE_BYTES (4 * 1024 * 1024) /* unsent bytes per WebSocket client before it is dropped */
#define SRV_WS_QUEUE_MSGS 256     /* unsent messages per WebSocket client before it is dropped */
#define SRV_THREAD_STACK (8u << 20) /* stack of every civetweb thread (thread_stack.c) */

/* ------------------------------------------------------------ options */

typedef struct srv_config {
    const char *model;        /* --model, or NULL for fp_resolve_default_model */
    const char *hf;           /* --hf OWNER/REPO[:QUANT]: downloaded into models_dir at start */
    const char *models_dir;   /* --models-dir: the picker's folder and --hf's target, NULL = the cache */
    const char *host;         /* --host, default 127.0.0.1 */
    int         port;         /* --port, default 8080; 0 = any free port */
    const char *token;        /* --token, required off loopback */
    const char *db_path;      /* --db, or NULL for the XDG default */
    const char *public_host;  /* --public-host H:P: the Host clients send through a proxy (nginx) */
    uint32_t    n_seq_max;    /* --seq-max, engine sequences (1..256), default 256 */
    uint32_t    n_ctx;        /* --ctx, KV cells; 0 = engine default */
    int32_t     n_threads;    /* --threads, 0 = all CPUs */
    int         max_live;     /* --max-live, sessions resident in the engine */
    int         http_threads; /* --http-threads, civetweb workers */
    int         max_ws_per_addr; /* --max-ws-per-addr, 0 = no limit (loopback never limited) */
    bool        quiet;        /* --quiet: nothing on stderr but errors */
    bool        log_requests; /* --log-requests: one stderr line per request */
    const char *tls_cert;     /* --tls-cert PEM chain; with tls_key: HTTPS and WSS */
    const char *tls_key;      /* --tls-key PEM private key */
    bool        no_evict;     /* --no-evict: answer 503 instead of evicting idle sessions */
    bool        no_prefetch;  /* --no-prefetch: no speculation while people decide */
    int         batch_sessions; /* --batch-sessions N: sessions whose work shares one decode (1 = --no-batching) */
    const char *profile;      /* --profile NAME: learn this person's preferences */
    bool        auto_resolve; /* --auto-resolve: confident preferences decide forks */
    const char *lora;      /* LoRA adapter applied to the engine, NULL = none */
    float lora_scale;
    const char *steer;     /* steering vector applied to the engine, NULL = none */
    float steer_strength;
    const char *chat_template; /* --chat-template: a built-in name or template text, NULL = the model's */
    int         max_logprobs;  /* --max-logprobs: alternatives per token in the compatible APIs (default 20) */
    const char *cors_origin;   /* --cors-origin: one foreign Origin allowed on the compatible APIs, NULL = none */
    bool        lenient_fields; /* --lenient-fields: the compatible APIs ignore unknown fields */
    const char *rpc;           /* --rpc HOST:PORT,...: the model's layers on RPC workers, NULL = here */
    const char *backend;       /* --backend llama-server:URL | openai:URL: a remote engine, NULL = here */
    const char *api_key;       /* --api-key (else $FORKPOINT_API_KEY, $OPENAI_API_KEY) */
    const char *remote_model;  /* --remote-model: openai's "model" field */
    int         remote_top;    /* --remote-top: log-probabilities asked per position (0 = 20) */
    int         remote_timeout_ms; /* --remote-timeout: one request (0 = 30000) */
} srv_config;

/* ---- --rpc: a supervisor keeps the server up when a worker dies (supervise.c) */
#define SRV_EXIT_RPC 75   /* the child's exit: an RPC worker was lost or is not back yet (EX_TEMPFAIL) */
/* Forks: returns -1 in the child, which serves; in the parent, restarts the
 * child each time it exits SRV_EXIT_RPC and returns the exit code when it
 * exits otherwise or on SIGINT/SIGTERM. Call before any thread starts. */
int  srv_supervise(const srv_config *cfg);
/* In the child: tells the parent why a worker was lost (the reason the
 * next children's /api/health gives) before it exits SRV_EXIT_RPC. */
void srv_supervise_tell(const char *why);

/* Parses argv into cfg. Returns 0 to run, 1 when --help/--version printed
 * and the program should exit 0, -1 on a bad flag (message on stderr). */
int srv_parse_args(int argc, char **argv, srv_config *cfg);
const char *srv_modality(const void *cjson_obj, const char *dflt, char out[17]);
/* True when host names the loopback interface (127.x, ::1, localhost). */
bool srv_host_is_loopback(const char *host);

/* ---------------------------------------------------------------- jobs */

typedef enum srv_job_kind {
    JOB_LIST = 0, JOB_CREATE, JOB_GET, JOB_DELETE,
    JOB_CHOOSE, JOB_TYPE, JOB_PREFIX, JOB_UNDO, JOB_CONTINUE,
    JOB_GOTO_FORK, JOB_GOTO_OFFSET, JOB_SETTINGS, JOB_SHOWN,
    JOB_TREE, JOB_EVENTS, JOB_ADAPTERS,
    JOB_PROFILE, JOB_PROFILE_RESET,   /* profile.c */
    JOB_OAI,         /* the OpenAI / llama.cpp compatible API (oai.c); ext is its run */
    JOB_MODEL,       /* switch models (models.c); text is the path */
    JOB_SAY, JOB_REPLY, JOB_END   /* chats (chat.c): text = a message written outright, NULL = co-written */
} srv_job_kind;

/* One unit of engine work. Lives on the submitting thread's stack; inputs
 * point into data that thread keeps alive until the job is done. */
typedef struct srv_job {
    srv_job_kind kind;
    char         sid[SRV_ID_LEN + 1];  /* session, "" for global jobs */
    /* inputs */
    int32_t      index;        /* candidate index / fork id */
    int64_t      offset;       /* byte offset (goto) */
    bool         flag;         /* accept_preview */
    bool         has_upto;     /* preview_upto given: point into the preview */
    int32_t      upto;         /* bytes of the preview taken before the pointed word */
    const char  *text;         /* prompt, typed text or prefix (NUL-terminated) */
    const char  *settings;     /* settings JSON object text, or NULL */
    char         modality[17]; /* how the person chose: mouse, touch, keyboard, dwell, switch, ws, api */
    float        lora_scale;   /* JOB_ADAPTERS: new strengths, NAN = unchanged */
    float        steer_strength;
    bool         has_version;  /* the client named the state version it saw */
    uint64_t     want_version;
    bool         has_fork;     /* the client named the fork its action answers */
    int32_t      want_fork;
    void        *ext;          /* JOB_OAI: the request and its stream (oai.c); JOB_CREATE: a chat's request (chat.c) */
    bool         requeue;      /* set by a job that has more to do: back to its lane's tail */
    /* outputs */
    int          status;       /* HTTP status */
    char        *body;         /* malloc'd response body (JSON unless ctype says) */
    const char  *ctype;        /* NULL = application/json */
    uint64_t     out_version;  /* the session's version after the job (0 = none) */
    /* queue bookkeeping */
    bool             done;
    struct srv_job  *next;
} srv_job;

/* ----------------------------------------------------------- sessions */

/* A session resident in the engine. Owned by the worker thread. */
typedef struct srv_live {
    bool        used;
    char        id[SRV_ID_LEN + 1];
    char        title[SRV_TITLE_MAX];
    int64_t     created;       /* unix seconds */
    uint64_t    last_used;     /* LRU tick */
    uint64_t    version;       /* bumps on every change, sent to clients; from the
                                  store's counter, so it grows across restarts */
    double      last_ms;       /* engine time of the last decision */
    bool        last_hit;      /* the last choice used a prefetched outcome */
    fp_session *s;             /* a chat's: its open turn, NULL when none (kept so by chat.c) */
    fp_store_session *ps;      /* what of it is in the store */
    fp_dialogue *d;            /* a chat (chat.c), NULL for a story */
    fp_store_chat *pc;         /* what of the chat is in the store */
    bool        busy;          /* a job runs on it (or is making it): never evicted then */
} srv_live;

/* One outgoing WebSocket message, shared by every client it is queued for
 * (refs counts the queues holding it; guarded by app->ws_mu). */
typedef struct srv_wsmsg {
    int     refs;
    int     opcode;
    size_t  len;
    char    data[];
} srv_wsmsg;

/* A connected WebSocket client. Guarded by app->ws_mu, except what the
 * connection's own civetweb thread alone touches (the reassembly buffer).
 * Why a queue and a writer thread per client: a broadcast must never wait
 * for a slow reader; a client whose queue overflows is dropped instead. */
typedef struct srv_ws {
    struct mg_connection *conn;
    char     sid[SRV_ID_LEN + 1];
    char     addr[48];         /* the peer's address, for --max-ws-per-addr */
    int      client_no;        /* shown to other clients in highlight events */
    int      n_candidates;     /* of the last state sent (validates highlight) */
    bool     ready;            /* handshake done, writer running */
    /* outgoing queue (ring) and its writer */
    srv_wsmsg *q[SRV_WS_QUEUE_MSGS];
    int      q_head, q_n;
    size_t   q_bytes;
    bool     dead;             /* overflowed or a write failed: send nothing more */
    bool     stop;             /* closing: the writer drains and exits */
    pthread_cond_t cv;         /* work for the writer */
    pthread_t writer;
    double   last_pong_ms;     /* keep-alive: when the peer last answered */
    /* incoming fragmented message (connection thread only) */
    char    *frag;
    size_t   frag_len;
    int      frag_op;          /* 0 = none in progress */
} srv_ws;

/* ------------------------------------------------------------ the app */

typedef struct srv_app {
    srv_config          cfg;
    char                model_path[1024];
    char                db_path[1024];
    /* worker-owned */
    fp_model           *model;
    fp_engine          *engine;
    fp_store           *store;         /* the database: stories, decision log, profiles */
    fp_prefs           *prefs;         /* --profile's preferences, shared by all sessions */
    bool                prefs_stale;   /* a failed save left them ahead of the database: reload when alone */
    char                model_sha[65];
    char                start_path[1024];  /* the model the server started with (always offered) */
    /* the running model's facts for handler threads (models.c), under model_mu */
    pthread_mutex_t     model_mu;
    fp_model_entry      current;
    char                current_sha[65];
    srv_live           *live;          /* cfg.max_live entries */
    uint64_t            tick;
    uint64_t            version;       /* the last version handed out */
    struct { char id[SRV_ID_LEN + 1]; uint64_t version; } vstash[SRV_VSTASH]; /* sessions.c */
    int                 vstash_next;
    /* the queue */
    pthread_mutex_t     q_mu;
    pthread_cond_t      q_cv;          /* work arrived / lane freed */
    pthread_cond_t      done_cv;       /* some job finished */
    struct {
        char     sid[SRV_ID_LEN + 1];
        srv_job *head, *tail;
        bool     used;
    }                   lanes[SRV_MAX_LANES];
    int                 rr;            /* next lane to look at */
    uint64_t            n_cancels;     /* speculation cancelled or given up for a queued job (q_mu) */
    /* speculation: sessions whose open fork may still be prefetched, most
     * recent first (worker-owned) */
    char                pf_sids[8][SRV_ID_LEN + 1];
    int                 n_pf;          /* (q_mu) */
    bool                stopping;
    /* executors (worker.c): each runs one job at a time, all of them under
     * the engine's lock; with batching their decodes share rounds */
    pthread_t           exec[SRV_MAX_EXEC];
    char                exec_sid[SRV_MAX_EXEC][SRV_ID_LEN + 1]; /* the session each works on ("" = none) (q_mu) */
    int                 n_exec;        /* started */
    int                 n_in_core;     /* executors between fp_engine_lock and unlock (q_mu) */
    int                 excl_waiting;  /* exclusive jobs waiting for the others to finish (q_mu) */
    int                 excl_running;  /* an exclusive job runs: no other starts (q_mu) */
    /* speculation (q_mu): which executors speculate (on exec_sid), their
     * session once found (to cancel it), and whether a request for it came
     * before that; with batching up to max_spec at once, beside the jobs */
    bool                spec[SRV_MAX_EXEC];
    fp_session         *spec_s[SRV_MAX_EXEC];
    bool                spec_stop[SRV_MAX_EXEC];
    int                 n_spec, max_spec;
    int                 excl_queued;   /* exclusive jobs in the queue (q_mu) */
    /* WebSocket clients */
    pthread_mutex_t     ws_mu;
    fp_steer           *steer;         /* --steer's vector, kept to change its strength */
    pthread_mutex_t     adapters_mu;   /* guards cfg.lora_scale and cfg.steer_strength */
    srv_ws              ws[SRV_MAX_WS];
    int                 ws_next_no;
    uint64_t            ws_dropped;    /* clients closed for falling behind (ws_mu) */
    /* HTTP */
    struct mg_context  *ctx;
    int                 port;          /* actual port */
    char                tls_error[320]; /* why srv_tls_init refused (tls.c) */
} srv_app;

/* worker.c: starts the executors (which own the engine from then on). */
/* A choose request ("index", "accept_preview" or "preview_upto") into job;
 * NULL, or what is wrong with it. */
const char *srv_parse_choice(const void *cjson_obj, srv_job *job);
int  srv_worker_start(srv_app *app);
/* Queues job and blocks until the worker has run it. Returns 0, or -1 when
 * the server is stopping (job->status is then 503). */
int  srv_worker_submit(srv_app *app, srv_job *job);
/* The same in two halves: queue (0, or -1 when stopping) and wait for it. */
int  srv_worker_enqueue(srv_app *app, srv_job *job);
void srv_worker_wait(srv_app *app, srv_job *job);
/* Asks the worker to finish queued jobs and exit; joins it. */
void srv_worker_stop(srv_app *app);
/* True when the calling executor is the only one at work in the engine. */
bool srv_worker_alone(srv_app *app);
/* Whether the other executors in the engine only speculate. */
bool srv_worker_only_speculation(srv_app *app);
/* Called by an executor in a job: waits until it is the only one at work
 * in the engine (the engine lock given up meanwhile), and holds the others
 * off until its job ends. For what changes every session: a model switch. */
void srv_worker_exclusive(srv_app *app);

/* sessions.c: runs one job on the worker thread. */
void srv_exec(srv_app *app, srv_job *job);
/* GET / DELETE /api/profile on the worker (profile.c). */
void srv_job_profile(srv_app *app, srv_job *job);
/* Speculation (sessions.c). The list of sessions whose open fork may still
 * be prefetched is the worker's (q_mu held): note one that changed, drop one
 * with nothing left. The two steps below run holding the engine lock: the
 * session to speculate on (NULL: drop it from the list; it is then marked
 * busy, so it is not evicted), and one fp_session_prefetch for it (false:
 * nothing left to do, drop it). */
void srv_prefetch_note(srv_app *app, const char *sid);
void srv_prefetch_drop(srv_app *app, const char *sid);
fp_session *srv_prefetch_target(srv_app *app, const char *sid);
bool srv_prefetch_run(srv_app *app, const char *sid, fp_session *s);
/* Loads the engine-side objects; called once on the worker before serving. */
int  srv_sessions_open(srv_app *app, fp_error *err);
/* Saves nothing (all is saved already) and frees every live session. */
void srv_sessions_close(srv_app *app);

/* store.c: opens app->store at --db or the XDG default (worker only
 * afterwards) and takes its version counter. */
int   srv_store_open(srv_app *app, char *err, size_t cap);
void  srv_store_close(srv_app *app);
/* With a database other servers share (PostgreSQL): versions catch up with
 * the store, the profile is reloaded when another server changed it, and a
 * resident story is checked against its row. No-ops for SQLite. */
bool  srv_db_is_url(const char *path);
void  srv_db_display(const srv_app *app, char *out, size_t cap);
void  srv_store_sync_version(srv_app *app);
void  srv_store_refresh_prefs(srv_app *app, bool force);
/* fp_session_set_prefs, saying whether it reordered the open cloud (then
 * the indices clients hold name other words: the state needs a new version). */
bool  srv_store_attach_prefs(fp_session *s, fp_prefs *p);
bool  srv_store_current(srv_app *app, const srv_live *l);

/* state.c: JSON views of a session (worker thread). A chat's is
 * srv_chat_state_json's; srv_session_state_json is a session's alone. */
char *srv_state_json(srv_app *app, const srv_live *l);
char *srv_session_state_json(srv_app *app, const srv_live *l);

/* chat.c: chat sessions (a dialogue: fp_dialogue_*) in the API. */
/* Handler thread: checks a create request with "mode":"chat" (j, a cJSON
 * object): NULL or the 400 message. */
const char *srv_chat_check_create(const void *j);
/* Worker: the dialogue a checked request asks for (its messages added);
 * NULL with err. *title gets its title. */
fp_dialogue *srv_chat_new(srv_app *app, const void *j, const fp_settings *set, char *title, size_t cap, fp_error *err);
/* Worker: a chat's own actions (say, reply, end, undo) and the refusals of
 * story actions that have no open turn to act on. Returns true when it
 * handled the job: *st its status, or *replied when job holds the answer. */
bool  srv_chat_apply(srv_app *app, srv_job *job, srv_live *l, fp_status *st, fp_error *err, bool *replied);
/* After a change: l->s follows the dialogue; true when the open turn has
 * ended (end-of-turn, or its token limit) and is to be committed once its
 * decisions are saved (srv_chat_commit). */
bool  srv_chat_settle(srv_live *l);
fp_status srv_chat_commit(srv_live *l, fp_error *err);
char *srv_chat_state_json(srv_app *app, const srv_live *l);
char *srv_chat_events_jsonl(const srv_live *l);
char *srv_events_jsonl(const fp_session *s);
char *srv_jsonl(int32_t n, char *(*line)(const void *ctx, int32_t i), const void *ctx);

/* models.c: the running model, the models folder, switching. */
/* Loads path's model and an engine for it as the server's flags say, and
 * its sha256 (worker, or before it starts). 0, or -1 with err. */
int  srv_model_open(srv_app *app, const char *path, fp_model **model, fp_engine **engine, char sha[65], fp_error *err);
/* Records app->model_path's facts for handler threads (after a load). */
void srv_model_note(srv_app *app);
/* The running model's path, for handler threads. */
void srv_model_path(srv_app *app, char *out, size_t cap);
/* Adds "model_info" (the running model's facts) to a cJSON object. */
void srv_model_current_json(srv_app *app, void *cjson_obj);
/* Worker: makes path's model (want_sha: its sha256 must be this, NULL =
 * any) the running one; the resident sessions are dropped (all saved).
 * FP_ERR_STATE when the server cannot switch now or at all, FP_ERR_IO when
 * the file is missing, FP_ERR_CHECKSUM when it is another file now. */
fp_status srv_model_switch(srv_app *app, const char *path, const char *want_sha, fp_error *err);
/* GET / POST /api/models (handler thread). Returns the HTTP status sent. */
int  srv_models_route(srv_app *app, struct mg_connection *c, const char *method);
void srv_job_model(srv_app *app, srv_job *job);   /* JOB_MODEL on the worker */

/* http.c: civetweb set-up and routes. */
int  srv_http_start(srv_app *app, char *err, size_t cap);
/* Host/token checks shared by HTTP and WebSocket: 0, or the status to send
 * (401/403) with *why set; *set_cookie when the token came in the query. */
int  srv_access_check(srv_app *app, const struct mg_connection *c, bool *set_cookie,
                      const char **why);
/* True when the request has no Origin header or names this server. */
bool srv_origin_ok(const struct mg_connection *c);
void srv_http_stop(srv_app *app);
/* http.c's own sending and body reading, for the routes of oai.c. */
void srv_send_json(struct mg_connection *c, int status, const char *json);
int  srv_read_json(struct mg_connection *c, void **cjson_out, char *err, size_t cap);

/* tls.c: civetweb's init_ssl callback: loads --tls-cert and --tls-key into
 * the SSL_CTX. 1 = done, -1 = refused with app->tls_error set. */
int  srv_tls_init(void *ssl_ctx, void *user_data);

/* wsmask.c: the mask bit of a WebSocket client's frames, read on the
 * connection's own civetweb thread (arm when ready, disarm at close). */
void srv_wsmask_arm(bool tls);
void srv_wsmask_disarm(void);
bool srv_wsmask_unmasked(void);                 /* an unmasked frame came in */
void srv_wsmask_tls_read(const void *ssl, const void *buf, int n); /* tls.c's SSL_read */

/* ws.c: WebSocket handlers and fan-out. */
void srv_ws_register(srv_app *app);
/* Sends a state document to every client of the session (any thread). */
void srv_ws_broadcast_state(srv_app *app, const char *sid, const char *state_json,
                            int n_candidates);
/* Closes every client of a deleted session. */
void srv_ws_drop_session(srv_app *app, const char *sid);

/* reqparse.c: strict request bodies, pure functions (no connection), so
 * they can be unit-tested and fuzzed. Each returns 0 or an HTTP status with
 * a one-line message in err. */
int  srv_json_prescan(const char *buf, size_t n, int max_depth, char *err, size_t cap);
int  srv_check_fields(const void *cjson_obj, const char *const *allowed, char *err, size_t cap);
int  srv_parse_body(const char *buf, size_t n, const char *const *allowed, bool empty_ok,
                    void **out_cjson, char *err, size_t cap);
/* The same with another size limit (SRV_MAX_API_BODY for oai.c). */
int  srv_parse_body_max(const char *buf, size_t n, size_t max, const char *const *allowed, bool empty_ok,
                        void **out_cjson, char *err, size_t cap);
const char *const *srv_action_fields(const char *action);
/* Integer fields: 1 found, 0 absent, -1 present but not an integer in range. */
int  srv_json_int_range(const void *cjson_obj, const char *name, double lo, double hi, int64_t *out);
int  srv_json_int(const void *cjson_obj, const char *name, int64_t *out);  /* int32 */
const char *srv_parse_expect(const void *cjson_obj, bool fork_id_too, srv_job *job);
size_t srv_utf8_scrub(char *s, size_t n);
/* An action (HTTP path word or WebSocket op) and its body into job; NULL or
 * the 400 message (which may point into err). */
const char *srv_parse_action(const char *action, const void *cjson_obj, const char *dflt_modality,
                             srv_job *job, char **settings_out, char *err, size_t cap);

/* util.c */
char *srv_json_error(const char *msg);               /* {"error":msg}, malloc'd */
/* Adds "lora", "lora_scale", "steer", "steer_strength" (those in use) to a cJSON object. */
void  srv_adapters_json(srv_app *app, void *cjson_obj);
int   srv_status_http(fp_status st);                 /* fp_status -> HTTP code */
bool  srv_id_valid(const char *s, size_t len);       /* 16 lowercase hex */
int   srv_random_id(char out[SRV_ID_LEN + 1]);
bool  srv_token_equal(const char *a, const char *b); /* constant time */
double srv_now_ms(void);

/* web assets compiled in by the generator (build/gen/web_assets.c). */
typedef struct srv_asset {
    const char          *path;   /* "/index.html" */
    const char          *ctype;
    const unsigned char *data;
    size_t               len;
} srv_asset;
extern const srv_asset srv_assets[];
extern const size_t    srv_n_assets;

#endif /* FORKPOINT_SERVE_H */
