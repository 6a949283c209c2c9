/*
 * stack.c — a floor under thread stack sizes.
 *
 * Why: Debian's libcivetweb (1.15) is built with USE_STACK_SIZE=102400, so
 * every HTTP and WebSocket handler runs on a 100 KiB stack, set through
 * pthread_attr_setstacksize with no run-time option to change it. That is
 * too little for our handlers under AddressSanitizer (a plain GET
 * /api/health overflowed it) and leaves no margin for cJSON, which
 * recurses once per nesting level of a request (requests are limited to
 * SRV_MAX_DEPTH levels by reqparse.c, but the parse, the duplicate of
 * "req" and the printing of a reply each recurse that deep).
 *
 * How: this executable defines pthread_attr_setstacksize; the dynamic
 * linker binds civetweb's call to it (a symbol defined in the executable
 * comes first), and it forwards to the C library's function with at least
 * SRV_MIN_STACK bytes. Costs: address space only (pages are touched as
 * used): 1 MiB per civetweb thread.
 */
#include "server/serve.h"

#include <dlfcn.h>
#include <errno.h>

#define SRV_MIN_STACK (1024 * 1024)

int pthread_attr_setstacksize(pthread_attr_t *attr, size_t size)
{
    static int (*real)(pthread_attr_t *, size_t);
    if (!real) real = (int (*)(pthread_attr_t *, size_t))dlsym(RTLD_NEXT, "pthread_attr_setstacksize");
    if (!real) return EINVAL;
    return real(attr, size < SRV_MIN_STACK ? SRV_MIN_STACK : size);
}
