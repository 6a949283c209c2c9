/*
 * thread_stack.c — civetweb's threads get stacks that fit the work.
 *
 * Why: Debian's libcivetweb 1.15 is built with USE_STACK_SIZE=102400, so
 * every thread it starts (workers that run our handlers, the master) gets a
 * 100 KB stack. That is too small for a handler under ASan (mg_printf alone
 * keeps an 8 KB buffer, and ASan pads every frame), and it is what let a
 * JSON body nested ~800 levels deep overflow cJSON's recursion. civetweb has
 * no run-time option for it, so the server interposes the one call it makes:
 * the executable's definition comes first in the dynamic lookup, and it
 * raises any smaller request to SRV_THREAD_STACK before passing it on to the
 * C library. Only the address space is reserved; pages are touched on use.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>

#include "server/serve.h"

int pthread_attr_setstacksize(pthread_attr_t *attr, size_t size)
{
    static int (*real)(pthread_attr_t *, size_t);
    if (!real) real = (int (*)(pthread_attr_t *, size_t))dlsym(RTLD_NEXT, "pthread_attr_setstacksize");
    if (!real) return 22; /* EINVAL: cannot happen with a C library that has threads */
    if (size < SRV_THREAD_STACK) size = SRV_THREAD_STACK;
    return real(attr, size);
}
