/*
 * fetch.h — what the files of libforkpoint_fetch share: the one HTTP
 * downloader (download.c) and the cache directory (resolve.c).
 *
 * Why one downloader: the default model (resolve.c) and a model from the
 * hub (hf.c) are both a file fetched into the cache with a .part file, a
 * resumed transfer, a sha256 check and the same one-line errors.
 */
#ifndef FP_FETCH_INTERNAL_H
#define FP_FETCH_INTERNAL_H

#include "forkpoint_fetch.h"

#include <stddef.h>
#include <stdint.h>

/* Creates every directory of path (like mkdir -p); 0 or -1 with errno. */
int fpi_mkdirs(const char *path);
bool fpi_file_exists(const char *path);

/* GETs url into a malloc'd NUL-terminated *body (at most 64 MB), with the
 * bearer token (NULL = none). Returns FP_OK with *http set to the final
 * status (which may be >= 400: the caller names what it means), or
 * FP_ERR_IO for a transfer that failed ("no network: ..." when the host
 * could not be reached). */
fp_status fpi_http_get(const char *url, const char *token, char **body, long *http, fp_error *err);

/* Downloads url into dest by way of dest.part: a .part left by an
 * interrupted run is resumed with an HTTP Range request (a server that
 * answers 200 instead of 206 sends it whole again). When the transfer is
 * complete the file is checked against sha256 (lower-case hex; NULL or ""
 * = the hub's x-linked-etag header if it sends one, else no check), a
 * mismatch removes it (FP_ERR_CHECKSUM), and it is renamed to dest. A
 * transfer cut short keeps the .part and says so (FP_ERR_IO). name labels
 * the progress callback. Cost: the bytes not yet in the .part, and one
 * sha256 pass over the file. */
fp_status fpi_download(const char *url, const char *token, const char *dest, const char *sha256,
                       const char *name, fp_fetch_progress progress, void *ud, fp_error *err);

#endif
