/*
 * wsmask.c — the mask bit of client WebSocket frames, which civetweb hides.
 *
 * Why: RFC 6455 §5.1 says a server MUST close the connection when a client
 * sends a frame that is not masked (masking keeps a hostile page's bytes from
 * being read as a request by proxies on the way). Debian's civetweb 1.15
 * unmasks each frame before it calls our data handler and does not say
 * whether the frame was masked: to the handler the two look the same.
 *
 * So the server watches the bytes civetweb reads. After the handshake a
 * WebSocket connection's reads happen on one civetweb thread, for as long as
 * the connection lives (its data handler runs there too): ws.c arms this
 * watcher on that thread when the connection is ready and disarms it when it
 * closes. While armed, the thread's reads of that connection (recv() on a
 * plain socket, SSL_read() under TLS, which tls.c routes here) go through a
 * small frame-header parser: it reads each header's mask bit and payload
 * length and skips the payload without looking at it. The data handler
 * (same thread, called after civetweb has read the frame) asks
 * srv_wsmask_unmasked() and closes with 1002 if any frame was unmasked.
 *
 * Everything is thread-local: no lock, no table, and a thread that is not
 * serving a WebSocket pays one comparison per recv(). recv() is interposed
 * like pthread_attr_setstacksize in thread_stack.c: the executable's
 * definition comes first in the dynamic lookup (exported in mk/server.mk),
 * and it passes every call on to the next definition (the C library, or the
 * sanitizer's interceptor before it).
 *
 * Limits: bytes civetweb read together with the handshake request, before
 * the connection was ready, are not seen. A client may not send frames
 * before the server's handshake response (RFC 6455 §4.1), so only a client
 * already breaking the protocol can get a frame past the watcher that way.
 *
 * Cost: O(1) per recv() call plus O(header bytes) (2 to 14 per frame).
 */
#include <dlfcn.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "server/serve.h"

enum watch { W_OFF, W_PLAIN, W_TLS };

static _Thread_local struct {
    enum watch kind;
    int fd;              /* plain: the socket, learned at the first read after arming (-1 until then) */
    const void *ssl;     /* TLS: the SSL object, learned the same way */
    uint8_t hdr[14];     /* the header being read: 2 bytes, 0/2/8 of length, 0/4 of mask key */
    unsigned hlen;       /* bytes of it read so far */
    uint64_t skip;       /* payload bytes of the current frame still to pass */
    bool unmasked;       /* a frame without the mask bit was seen */
} w;

/* The header's full size once its first two bytes are known. */
static unsigned header_size(const uint8_t *h)
{
    unsigned len7 = h[1] & 0x7f;
    return 2u + (len7 == 126 ? 2u : len7 == 127 ? 8u : 0u) + ((h[1] & 0x80) ? 4u : 0u);
}

/* Runs n bytes the connection delivered through the header parser. */
static void feed(const uint8_t *p, size_t n)
{
    while (n > 0) {
        if (w.skip > 0) {   /* inside a payload: skip it whole, O(1) */
            uint64_t k = w.skip < n ? w.skip : n;
            w.skip -= k;
            p += k;
            n -= (size_t)k;
            continue;
        }
        w.hdr[w.hlen++] = *p++;
        n--;
        if (w.hlen < 2 || w.hlen < header_size(w.hdr)) continue;
        /* a whole header */
        const uint8_t *h = w.hdr;
        unsigned len7 = h[1] & 0x7f;
        uint64_t len = len7;
        if (len7 == 126) len = ((uint64_t)h[2] << 8) | h[3];
        else if (len7 == 127)
            for (int i = 0; i < 8; i++) len = (len << 8) | h[2 + i];
        if (!(h[1] & 0x80)) w.unmasked = true;
        w.skip = len;
        w.hlen = 0;
    }
}

void srv_wsmask_arm(bool tls)
{
    w.kind = tls ? W_TLS : W_PLAIN;
    w.fd = -1;
    w.ssl = NULL;
    w.hlen = 0;
    w.skip = 0;
    w.unmasked = false;
}

void srv_wsmask_disarm(void)
{
    w.kind = W_OFF;
}

bool srv_wsmask_unmasked(void)
{
    return w.kind != W_OFF && w.unmasked;
}

void srv_wsmask_tls_read(const void *ssl, const void *buf, int n)
{
    if (w.kind != W_TLS || n <= 0) return;
    if (!w.ssl) w.ssl = ssl;
    if (w.ssl == ssl) feed(buf, (size_t)n);
}

ssize_t recv(int fd, void *buf, size_t len, int flags)
{
    static ssize_t (*real)(int, void *, size_t, int);
    if (!real) real = (ssize_t (*)(int, void *, size_t, int))dlsym(RTLD_NEXT, "recv");
    if (!real) return -1;
    ssize_t r = real(fd, buf, len, flags);
    if (w.kind == W_PLAIN && r > 0 && !(flags & MSG_PEEK)) {
        if (w.fd < 0) w.fd = fd;
        if (w.fd == fd) feed(buf, (size_t)r);
    }
    return r;
}
