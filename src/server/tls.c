/*
 * tls.c — HTTPS and WSS (--tls-cert, --tls-key) through civetweb and OpenSSL 3.
 *
 * Why this file exists: Debian's libcivetweb 1.15 is built to load OpenSSL
 * at run time: it calls dlopen("libssl.so") and dlopen("libcrypto.so") and
 * fills a table of function pointers with dlsym. One name in that table,
 * SSL_get_peer_certificate, is not a symbol of OpenSSL 3: there it is a
 * macro for SSL_get1_peer_certificate (same behaviour: the caller owns a
 * reference and frees it with X509_free, as civetweb does). civetweb takes
 * the missing pointer as NULL without complaint, the TLS handshake completes,
 * and the worker then calls the NULL pointer for every connection (found
 * with gdb: the call right after sslize() in the worker loop, table slot
 * "SSL_get_peer_certificate", value 0; `nm -D libssl.so.3` has no such name).
 *
 * The fix gives civetweb what it looks up, nothing more:
 *   - this executable defines SSL_get_peer_certificate (exported, see
 *     mk/server.mk) as the OpenSSL 3 function it stands for;
 *   - dlopen is interposed (our definition comes first in the lookup, as in
 *     thread_stack.c) and the two names civetweb asks for resolve to the
 *     program's own handle, whose lookups search the executable and the
 *     libssl.so.3/libcrypto.so.3 it is linked with. Every other dlopen is
 *     passed through unchanged. This also means the server runs where only
 *     the runtime libssl3 is installed (no libssl.so development link).
 *
 * One SSL object, two threads: ws.c writes each WebSocket client's queue
 * from a writer thread (mg_websocket_write -> SSL_write) while civetweb's
 * thread for that connection reads it (SSL_read). OpenSSL forbids
 * concurrent calls on one SSL (they share the record layer and the
 * rwstate that SSL_get_error reads). Since civetweb looks these names up in
 * the same program handle, the executable also defines SSL_read, SSL_write,
 * SSL_pending, SSL_shutdown, SSL_free and SSL_get_error: all but the last run under a
 * lock chosen by the SSL's address (a recursive mutex from a striped
 * table), and the reason of a failed read or write is taken under that
 * lock and handed to the same thread's next SSL_get_error for that call.
 * civetweb's sockets are non-blocking, so a lock is held for one record's
 * worth of work, never across a wait for the network. libcurl (forkpoint
 * fetch) goes through the same definitions; for it they are a lock nobody
 * else takes.
 *
 * The certificate and key are loaded by srv_tls_init (civetweb's init_ssl
 * callback) so that each can be a separate file and a bad one gets a clear
 * message; TLS 1.2 is the minimum.
 */
#include <assert.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>

#include "server/serve.h"

#undef SSL_get_peer_certificate  /* OpenSSL 3's macro for the name civetweb looks up */
X509 *SSL_get_peer_certificate(const SSL *s);
X509 *SSL_get_peer_certificate(const SSL *s)
{
    return SSL_get1_peer_certificate(s);
}

/* ---------------------------------------------- one caller per SSL */

#define TLS_STRIPES 256
static pthread_mutex_t stripes[TLS_STRIPES];
static pthread_once_t stripes_once = PTHREAD_ONCE_INIT;

static void stripes_init(void)
{
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    for (int i = 0; i < TLS_STRIPES; i++) pthread_mutex_init(&stripes[i], &a);
    pthread_mutexattr_destroy(&a);
}

static pthread_mutex_t *lock_of(const SSL *s)
{
    pthread_once(&stripes_once, stripes_init);
    uintptr_t h = (uintptr_t)s;
    h ^= h >> 12;
    return &stripes[(h >> 4) % TLS_STRIPES];
}

/* The real functions, found once past this executable. */
static struct {
    int (*read)(SSL *, void *, int);
    int (*write)(SSL *, const void *, int);
    int (*pending)(const SSL *);
    int (*shutdown)(SSL *);
    int (*get_error)(const SSL *, int);
    void (*free)(SSL *);
} real_ssl;
static pthread_once_t real_once = PTHREAD_ONCE_INIT;

static void real_init(void)
{
    real_ssl.read = (int (*)(SSL *, void *, int))dlsym(RTLD_NEXT, "SSL_read");
    real_ssl.write = (int (*)(SSL *, const void *, int))dlsym(RTLD_NEXT, "SSL_write");
    real_ssl.pending = (int (*)(const SSL *))dlsym(RTLD_NEXT, "SSL_pending");
    real_ssl.shutdown = (int (*)(SSL *))dlsym(RTLD_NEXT, "SSL_shutdown");
    real_ssl.get_error = (int (*)(const SSL *, int))dlsym(RTLD_NEXT, "SSL_get_error");
    real_ssl.free = (void (*)(SSL *))dlsym(RTLD_NEXT, "SSL_free");
    assert(real_ssl.read && real_ssl.write && real_ssl.pending && real_ssl.shutdown && real_ssl.get_error &&
           real_ssl.free);
}

/* The reason of this thread's last failed read, write or shutdown, taken
 * under its lock; used once by SSL_get_error, forgotten when the SSL is
 * freed (a new one may get the same address). */
static _Thread_local struct { const SSL *ssl; int ret, err; } last;

static void note_result(const SSL *s, int ret)
{
    last.ssl = ret <= 0 ? s : NULL;
    last.ret = ret;
    last.err = ret <= 0 ? real_ssl.get_error(s, ret) : SSL_ERROR_NONE;
}

enum io { IO_READ, IO_WRITE, IO_SHUTDOWN };

/* One read, write or shutdown under s's lock, its reason noted. */
static int locked_io(SSL *s, enum io op, void *buf, int num)
{
    pthread_once(&real_once, real_init);
    pthread_mutex_t *m = lock_of(s);
    pthread_mutex_lock(m);
    int r = op == IO_READ ? real_ssl.read(s, buf, num)
          : op == IO_WRITE ? real_ssl.write(s, buf, num) : real_ssl.shutdown(s);
    note_result(s, r);
    pthread_mutex_unlock(m);
    return r;
}

int SSL_read(SSL *s, void *buf, int num)
{
    int r = locked_io(s, IO_READ, buf, num);
    srv_wsmask_tls_read(s, buf, r);  /* a WebSocket's frame headers: wsmask.c */
    return r;
}
int SSL_write(SSL *s, const void *buf, int num) { return locked_io(s, IO_WRITE, (void *)buf, num); }
int SSL_shutdown(SSL *s) { return locked_io(s, IO_SHUTDOWN, NULL, 0); }

int SSL_pending(const SSL *s)
{
    pthread_once(&real_once, real_init);
    pthread_mutex_t *m = lock_of(s);
    pthread_mutex_lock(m);
    int r = real_ssl.pending(s);
    pthread_mutex_unlock(m);
    return r;
}

int SSL_get_error(const SSL *s, int ret)
{
    pthread_once(&real_once, real_init);
    if (last.ssl == s && last.ret == ret) {
        last.ssl = NULL;
        return last.err;
    }
    pthread_mutex_t *m = lock_of(s);
    pthread_mutex_lock(m);
    int e = real_ssl.get_error(s, ret);
    pthread_mutex_unlock(m);
    return e;
}

void SSL_free(SSL *s)
{
    pthread_once(&real_once, real_init);
    if (last.ssl == s) last.ssl = NULL;
    pthread_mutex_t *m = lock_of(s);
    pthread_mutex_lock(m);
    real_ssl.free(s);
    pthread_mutex_unlock(m);
}

/* ------------------------------------------------- what civetweb loads */

void *dlopen(const char *file, int flags)
{
    static void *(*real)(const char *, int);
    if (!real) real = (void *(*)(const char *, int))dlsym(RTLD_NEXT, "dlopen");
    if (!real) return NULL;
    if (file && (strcmp(file, "libssl.so") == 0 || strcmp(file, "libcrypto.so") == 0))
        return real(NULL, flags);
    return real(file, flags);
}

/* Appends OpenSSL's last error (or "unknown error") to msg. */
static void ssl_reason(char *msg, size_t cap, const char *what, const char *path)
{
    unsigned long e = ERR_peek_last_error();
    char reason[200];
    if (e) ERR_error_string_n(e, reason, sizeof reason);
    else snprintf(reason, sizeof reason, "unknown error");
    snprintf(msg, cap, "%s %s: %s", what, path, reason);
    ERR_clear_error();
}

int srv_tls_init(void *ssl_ctx, void *user_data)
{
    srv_app *app = user_data;
    SSL_CTX *ctx = ssl_ctx;
    const char *cert = app->cfg.tls_cert, *key = app->cfg.tls_key;
    FILE *f = fopen(cert, "rb");
    if (!f) {
        snprintf(app->tls_error, sizeof app->tls_error, "--tls-cert %s: cannot open it", cert);
        return -1;
    }
    fclose(f);
    if (!(f = fopen(key, "rb"))) {
        snprintf(app->tls_error, sizeof app->tls_error, "--tls-key %s: cannot open it", key);
        return -1;
    }
    fclose(f);
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        ssl_reason(app->tls_error, sizeof app->tls_error, "--tls-cert: not a PEM certificate chain:", cert);
        return -1;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
            ERR_clear_error();
            snprintf(app->tls_error, sizeof app->tls_error, "--tls-key %s is not the key of --tls-cert %s", key, cert);
            return -1;
        }
        ssl_reason(app->tls_error, sizeof app->tls_error, "--tls-key: not a PEM private key:", key);
        return -1;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ssl_reason(app->tls_error, sizeof app->tls_error, "--tls-key does not match --tls-cert:", key);
        return -1;
    }
    return 1; /* done: civetweb loads nothing itself */
}
