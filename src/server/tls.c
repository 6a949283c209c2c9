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
 * The certificate and key are loaded by srv_tls_init (civetweb's init_ssl
 * callback) so that each can be a separate file and a bad one gets a clear
 * message; TLS 1.2 is the minimum.
 */
#include <dlfcn.h>
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
