/*
 * error.c — status names and the one way errors are filled in.
 *
 * The library never prints: every failure becomes an fp_status plus a
 * one-line message in the caller's fp_error, and front ends decide what to
 * show. Also holds the monotonic clock, used for choice timing.
 */
#include "core/internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

const char *fp_status_name(fp_status s) {
    switch (s) {
    case FP_OK: return "FP_OK";
    case FP_ERR_ARG: return "FP_ERR_ARG";
    case FP_ERR_IO: return "FP_ERR_IO";
    case FP_ERR_MODEL: return "FP_ERR_MODEL";
    case FP_ERR_UTF8: return "FP_ERR_UTF8";
    case FP_ERR_EMPTY: return "FP_ERR_EMPTY";
    case FP_ERR_CONTEXT: return "FP_ERR_CONTEXT";
    case FP_ERR_CAPACITY: return "FP_ERR_CAPACITY";
    case FP_ERR_DECODE: return "FP_ERR_DECODE";
    case FP_ERR_STATE: return "FP_ERR_STATE";
    case FP_ERR_NOMEM: return "FP_ERR_NOMEM";
    case FP_ERR_CHECKSUM: return "FP_ERR_CHECKSUM";
    case FP_ERR_ABORTED: return "FP_ERR_ABORTED";
    case FP_ERR_DIVERGED: return "FP_ERR_DIVERGED";
    case FP_ERR_REMOTE: return "FP_ERR_REMOTE";
    }
    return "FP_ERR_UNKNOWN";
}

fp_status fp_error_set(fp_error *err, fp_status code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return code;
}

double fpi_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}
