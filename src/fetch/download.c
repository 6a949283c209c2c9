/*
 * download.c — the fetcher's one HTTP client (libcurl): small JSON
 * documents into memory, and model files into the cache with a .part file,
 * a resumed transfer (HTTP Range), a progress callback and a sha256 check.
 *
 * Why resume: models are hundreds of megabytes to gigabytes; a dropped
 * connection must cost the bytes still missing, not the whole file again.
 * Why errors in one line each: a person sees "no network", "interrupted,
 * run again to resume" or "bad sha256, removed", not a curl code.
 */
#include "fetch/fetch.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_DOC (64u << 20)

bool fpi_file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

int fpi_mkdirs(const char *path) {
    char tmp[PATH_MAX + 128];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -1;
            *p = '/';
        }
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -1;
    return 0;
}

/* The host part of url, for messages. */
static void url_host(const char *url, char *out, size_t cap) {
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    size_t n = strcspn(p, "/?#");
    if (n >= cap) n = cap - 1;
    memcpy(out, p, n);
    out[n] = 0;
}

/* One line for a failed transfer: "no network" when the host is out of reach. */
static fp_status transfer_error(fp_error *err, CURLcode rc, const char *url, const char *what) {
    char host[256];
    url_host(url, host, sizeof host);
    if (rc == CURLE_COULDNT_RESOLVE_HOST || rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_PROXY
        || (rc == CURLE_OPERATION_TIMEDOUT && !what))
        return fp_error_set(err, FP_ERR_IO, "no network: cannot reach %s (%s)", host, curl_easy_strerror(rc));
    return fp_error_set(err, FP_ERR_IO, "%s from %s failed: %s", what ? what : "request", host, curl_easy_strerror(rc));
}

/* Common options: redirects, time-outs, a User-Agent, the token. */
static struct curl_slist *setup(CURL *c, const char *url, const char *token) {
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 8L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 20L);
    /* a stalled transfer (under 1 KB/s for 60 s) fails and can be resumed */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "forkpoint/" FP_VERSION);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    struct curl_slist *h = NULL;
    if (token && *token) {
        char auth[512];
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        h = curl_slist_append(h, auth);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    }
    return h;
}

typedef struct { char *p; size_t n; bool too_big; } membuf;

static size_t mem_cb(void *data, size_t sz, size_t nm, void *ud) {
    membuf *b = ud;
    size_t add = sz * nm;
    if (b->n + add > MAX_DOC) { b->too_big = true; return 0; }
    char *np = realloc(b->p, b->n + add + 1);
    if (!np) return 0;
    memcpy(np + b->n, data, add);
    b->p = np;
    b->n += add;
    b->p[b->n] = 0;
    return add;
}

fp_status fpi_http_get(const char *url, const char *token, char **body, long *http, fp_error *err) {
    *body = NULL;
    *http = 0;
    CURL *c = curl_easy_init();
    if (!c) return fp_error_set(err, FP_ERR_NOMEM, "curl_easy_init failed");
    membuf b = {0};
    struct curl_slist *h = setup(c, url, token);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, mem_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, http);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    if (rc != CURLE_OK) {
        free(b.p);
        if (b.too_big) return fp_error_set(err, FP_ERR_IO, "%s: answer larger than %u MB", url, MAX_DOC >> 20);
        return transfer_error(err, rc, url, NULL);
    }
    *body = b.p ? b.p : calloc(1, 1);
    return *body ? FP_OK : fp_error_set(err, FP_ERR_NOMEM, "out of memory");
}

/* ---------------------------------------------------------------- files */

typedef struct {
    CURL *c;
    FILE *f;
    int64_t offset;      /* bytes of the .part before this transfer */
    int64_t written;     /* bytes written by this transfer */
    bool started;        /* the first body byte has been seen */
    bool restarted;      /* the server ignored the Range: the .part was emptied */
    bool write_failed;
    bool discard;        /* an error page: not part of the file */
    char etag[80];       /* x-linked-etag of the hub's answer (an LFS file's sha256) */
    const char *name;
    fp_fetch_progress progress;
    void *ud;
} xfer;

/* Remembers the hub's x-linked-etag: the sha256 of an LFS file. */
static size_t header_cb(char *line, size_t sz, size_t nm, void *ud) {
    xfer *x = ud;
    size_t n = sz * nm;
    static const char key[] = "x-linked-etag:";
    if (n > sizeof key && strncasecmp(line, key, sizeof key - 1) == 0) {
        const char *v = line + sizeof key - 1;
        size_t k = 0;
        for (; v < line + n && k + 1 < sizeof x->etag; v++)
            if ((*v >= '0' && *v <= '9') || (*v >= 'a' && *v <= 'f') || (*v >= 'A' && *v <= 'F'))
                x->etag[k++] = (char)(*v | 0x20);
        x->etag[k] = 0;
        if (k != 64) x->etag[0] = 0;   /* a git etag (sha1), not a sha256 */
    }
    return n;
}

static size_t file_cb(void *data, size_t sz, size_t nm, void *ud) {
    xfer *x = ud;
    size_t n = sz * nm;
    if (!x->started) {
        x->started = true;
        long code = 0;
        curl_easy_getinfo(x->c, CURLINFO_RESPONSE_CODE, &code);
        if (code >= 300) x->discard = true;
        else if (x->offset > 0 && code != 206) {   /* whole file again: start over */
            if (fflush(x->f) != 0 || ftruncate(fileno(x->f), 0) != 0 || fseek(x->f, 0, SEEK_SET) != 0) {
                x->write_failed = true;
                return 0;
            }
            x->offset = 0;
            x->restarted = true;
        }
    }
    if (x->discard) return n;
    if (fwrite(data, 1, n, x->f) != n) { x->write_failed = true; return 0; }
    x->written += (int64_t)n;
    return n;
}

static int xferinfo_cb(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
    xfer *x = ud;
    if (x->progress && x->started && !x->discard)
        x->progress(x->ud, x->name, x->offset + (int64_t)dlnow, dltotal > 0 ? x->offset + (int64_t)dltotal : -1);
    return 0;
}

static int64_t file_size(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 ? (int64_t)st.st_size : -1;
}

fp_status fpi_download(const char *url, const char *token, const char *dest, const char *sha256,
                       const char *name, fp_fetch_progress progress, void *ud, fp_error *err) {
    char part[PATH_MAX + 128];
    snprintf(part, sizeof part, "%s.part", dest);
    int64_t have = file_size(part);
    FILE *f = fopen(part, have > 0 ? "ab" : "wb");
    if (!f) return fp_error_set(err, FP_ERR_IO, "cannot write %s: %s", part, strerror(errno));
    if (have < 0) have = 0;
    CURL *c = curl_easy_init();
    if (!c) { fclose(f); return fp_error_set(err, FP_ERR_NOMEM, "curl_easy_init failed"); }
    xfer x = { .c = c, .f = f, .offset = have, .name = name, .progress = progress, .ud = ud };
    struct curl_slist *h = setup(c, url, token);
    char range[48];
    if (have > 0) {
        /* CURLOPT_RANGE, not RESUME_FROM: a 200 is then taken (file_cb starts over) instead of failing */
        snprintf(range, sizeof range, "%" PRId64 "-", have);
        curl_easy_setopt(c, CURLOPT_RANGE, range);
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, file_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &x);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, xferinfo_cb);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &x);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, progress ? 0L : 1L);
    CURLcode rc = curl_easy_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    bool werr = fclose(f) != 0 || x.write_failed;
    int64_t now = x.offset + x.written;
    if (progress && x.started && !x.discard) progress(ud, name, now, -2);   /* -2: the transfer ended */

    if (code == 416 && have > 0) {
        /* the .part already holds the whole file (or more): the check below decides */
    } else if (code >= 400) {
        if (now == 0) unlink(part);
        return fp_error_set(err, FP_ERR_IO, "%s: the server answered HTTP %ld", url, code);
    } else if (werr) {
        return fp_error_set(err, FP_ERR_IO, "cannot write %s: %s", part, strerror(errno ? errno : EIO));
    } else if (rc != CURLE_OK) {
        if (now == 0) { unlink(part); return transfer_error(err, rc, url, "download"); }
        char host[256];
        url_host(url, host, sizeof host);
        return fp_error_set(err, FP_ERR_IO, "download of %s interrupted after %" PRId64 " bytes (%s from %s): "
                            "run again to resume", name, now, curl_easy_strerror(rc), host);
    }
    const char *want = sha256 && *sha256 ? sha256 : x.etag;
    if (*want) {
        char hex[65];
        fp_status st = fp_sha256_file(part, hex, err);
        if (st != FP_OK) return st;
        if (strcasecmp(hex, want) != 0) {
            unlink(part);
            return fp_error_set(err, FP_ERR_CHECKSUM, "%s: sha256 %.12s... is not the published %.12s...; "
                                "the download was removed", name, hex, want);
        }
    }
    if (rename(part, dest) != 0) {
        unlink(part);
        return fp_error_set(err, FP_ERR_IO, "cannot move download to %s: %s", dest, strerror(errno));
    }
    return FP_OK;
}

/* ------------------------------------------------------------ progress */

void fp_size_text(int64_t n, char *out, size_t cap) {
    if (n < 1000000) snprintf(out, cap, "%" PRId64 " KB", (n + 999) / 1000);
    else if (n < 1000000000) snprintf(out, cap, "%.1f MB", (double)n / 1e6);
    else snprintf(out, cap, "%.2f GB", (double)n / 1e9);
}

void fp_fetch_progress_bar(void *ud, const char *name, int64_t done, int64_t total) {
    (void)ud;
    static double last;          /* redraw at most 10 times a second */
    static int64_t known_total;  /* the size the server announced: the end line needs it */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double t = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    bool ended = total == -2;
    if (total > 0) known_total = total;
    /* the end line is drawn whatever the throttle; a file that arrived whole ends on a full
     * bar, so a fast download does not stop on the last throttled "10%" */
    if (ended) total = known_total > 0 && done == known_total ? known_total : -1;
    else if (t - last < 0.1) return;
    last = t;
    char a[32], b[32];
    fp_size_text(done, a, sizeof a);
    if (total > 0) {
        int pct = (int)(done * 100 / total);
        int w = pct * 30 / 100;
        fp_size_text(total, b, sizeof b);
        fprintf(stderr, "\r\033[K%s  [%.*s%*s] %3d%%  %s / %s", name, w, "##############################",
                30 - w, "", pct, a, b);
    } else {
        fprintf(stderr, "\r\033[K%s  %s", name, a);
    }
    if (ended) { fputc('\n', stderr); known_total = 0; }
    fflush(stderr);
}
