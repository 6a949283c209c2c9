/*
 * hf.c — `--hf OWNER/REPO[:QUANT]`: a GGUF model from the Hugging Face hub,
 * picked by its quantization name as llama.cpp's -hf does, into the cache.
 *
 * Why the tree listing (GET /api/models/REPO/tree/main?recursive=true): one
 * request names every file with its size and, for LFS files (every GGUF on
 * the hub), the sha256 of its content (lfs.oid), so the pick and the check
 * need nothing else; the file itself comes from resolve/main/FILE, which
 * redirects to the hub's storage. Downloading is download.c's.
 */
#include "fetch/fetch.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_QUANT "Q4_K_M"
#define MAX_FILES 4096

typedef struct {
    char path[512];     /* in the repository */
    int64_t size;       /* -1 = unknown */
    char sha[65];       /* the LFS oid, "" = none published */
} hf_file;

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static bool ends_with_ci(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcasecmp(s + a - b, suffix) == 0;
}

/* True when name holds word (case-insensitive) with no letter, digit or
 * '_' on either side: Q4_K matches "x-Q4_K.gguf", not "x-Q4_K_M.gguf". */
static bool has_word(const char *name, const char *word) {
    size_t n = strlen(name), w = strlen(word);
    for (size_t i = 0; w && i + w <= n; i++) {
        if (strncasecmp(name + i, word, w) != 0) continue;
        bool left = i == 0 || !(isalnum((unsigned char)name[i - 1]) || name[i - 1] == '_');
        char r = name[i + w];
        bool right = !(isalnum((unsigned char)r) || r == '_');
        if (left && right) return true;
    }
    return false;
}

/* A model file: .gguf, and not a multimodal projector (llama.cpp's mmproj). */
static bool is_model(const char *path) {
    return ends_with_ci(path, ".gguf") && strcasestr(base_name(path), "mmproj") == NULL;
}

/* The part numbers of a split model's file, "NAME-00001-of-00003.gguf". */
static bool split_part(const char *path, int *part, int *of, size_t *stem) {
    const char *b = base_name(path);
    const char *m = strstr(b, "-of-");
    if (!m || m - b < 6) return false;
    char tail[16];
    if (sscanf(m - 5, "%5d-of-%5d%15s", part, of, tail) != 3 || strcasecmp(tail, ".gguf") != 0) return false;
    *stem = (size_t)(m - 6 - path) + 1;   /* path up to and with the '-' before the part number */
    return m[-6] == '-';
}

/* Picks the files for quant among files[0..n): indices into pick, their
 * count returned (0 = none). explicit: the person named the quant. */
static int pick(const hf_file *files, int n, const char *quant, bool explicit, int *out, int cap) {
    int first = -1;
    for (int i = 0; i < n && first < 0; i++) {
        if (!is_model(files[i].path)) continue;
        if (ends_with_ci(quant, ".gguf") ? strcasecmp(files[i].path, quant) == 0 || strcasecmp(base_name(files[i].path), quant) == 0
                                         : has_word(base_name(files[i].path), quant))
            first = i;
    }
    if (first < 0 && !explicit) {   /* no Q4_K_M: a repository of one model file gives that one */
        int only = -1, count = 0;
        for (int i = 0; i < n; i++) if (is_model(files[i].path)) { only = i; count++; }
        if (count == 1) first = only;
    }
    if (first < 0) return 0;
    int part, of;
    size_t stem;
    if (!split_part(files[first].path, &part, &of, &stem)) { out[0] = first; return 1; }
    /* every part of the split, in order; the first is what llama.cpp opens */
    int k = 0;
    for (int want = 1; want <= of && k < cap; want++) {
        int found = -1;
        for (int i = 0; i < n && found < 0; i++) {
            int p2, of2;
            size_t st2;
            if (split_part(files[i].path, &p2, &of2, &st2) && p2 == want && of2 == of && st2 == stem
                && strncmp(files[i].path, files[first].path, stem) == 0)
                found = i;
        }
        if (found < 0) return 0;
        out[k++] = found;
    }
    return k;
}

/* "a.gguf, b.gguf, ..." of the model files, cut to fit cap. */
static void list_models(const hf_file *files, int n, char *out, size_t cap) {
    size_t len = 0;
    out[0] = 0;
    int shown = 0;
    for (int i = 0; i < n; i++) {
        if (!is_model(files[i].path)) continue;
        const char *b = base_name(files[i].path);
        if (len + strlen(b) + 8 >= cap) { snprintf(out + len, cap - len, "%s...", shown ? ", " : ""); return; }
        len += (size_t)snprintf(out + len, cap - len, "%s%s", shown ? ", " : "", b);
        shown++;
    }
    if (!shown) snprintf(out, cap, "no .gguf file at all");
}

/* The tree listing's JSON into files; the count, or -1 when it is not one. */
static int parse_tree(const char *json, hf_file *files, int cap) {
    cJSON *a = cJSON_Parse(json);
    if (!cJSON_IsArray(a)) { cJSON_Delete(a); return -1; }
    int n = 0;
    cJSON *e;
    cJSON_ArrayForEach(e, a) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(e, "type");
        const cJSON *path = cJSON_GetObjectItemCaseSensitive(e, "path");
        if (!cJSON_IsString(type) || strcmp(type->valuestring, "file") || !cJSON_IsString(path)) continue;
        if (strlen(path->valuestring) >= sizeof files[0].path || n >= cap) continue;
        hf_file *f = &files[n++];
        snprintf(f->path, sizeof f->path, "%s", path->valuestring);
        const cJSON *size = cJSON_GetObjectItemCaseSensitive(e, "size");
        f->size = cJSON_IsNumber(size) ? (int64_t)size->valuedouble : -1;
        f->sha[0] = 0;
        const cJSON *lfs = cJSON_GetObjectItemCaseSensitive(e, "lfs");
        const cJSON *oid = lfs ? cJSON_GetObjectItemCaseSensitive(lfs, "oid") : NULL;
        if (cJSON_IsString(oid) && strlen(oid->valuestring) == 64) snprintf(f->sha, sizeof f->sha, "%s", oid->valuestring);
        const cJSON *lsize = lfs ? cJSON_GetObjectItemCaseSensitive(lfs, "size") : NULL;
        if (cJSON_IsNumber(lsize)) f->size = (int64_t)lsize->valuedouble;
    }
    cJSON_Delete(a);
    return n;
}

/* The cache files of repo (named OWNER_REPO_FILE) as a listing, for a run without network. */
static int cached_files(const char *dir, const char *prefix, hf_file *files, int cap) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    size_t pl = strlen(prefix);
    struct dirent *de;
    while ((de = readdir(d)) && n < cap) {
        if (strncmp(de->d_name, prefix, pl) != 0 || !ends_with_ci(de->d_name, ".gguf")) continue;
        if (strlen(de->d_name + pl) >= sizeof files[0].path) continue;
        snprintf(files[n].path, sizeof files[n].path, "%s", de->d_name + pl);
        files[n].size = -1;
        files[n].sha[0] = 0;
        n++;
    }
    closedir(d);
    return n;
}

/* path with every byte outside [A-Za-z0-9._~/-] %-escaped, for the URL. */
static void url_path(const char *path, char *out, size_t cap) {
    size_t k = 0;
    for (const unsigned char *p = (const unsigned char *)path; *p && k + 4 < cap; p++) {
        if (isalnum(*p) || strchr("._~/-", *p)) out[k++] = (char)*p;
        else k += (size_t)snprintf(out + k, cap - k, "%%%02X", *p);
    }
    out[k] = 0;
}

static bool repo_ok(const char *r, size_t n) {
    int slashes = 0;
    for (size_t i = 0; i < n; i++) {
        if (r[i] == '/') { if (i == 0 || i + 1 == n || r[i - 1] == '/') return false; slashes++; }
        else if (!isalnum((unsigned char)r[i]) && !strchr("._-", r[i])) return false;
    }
    return slashes == 1 && n < 200;
}

static int64_t size_of(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 ? (int64_t)st.st_size : -1;
}

fp_status fp_hf_pull(const char *spec, const char *dir, fp_fetch_progress progress, void *ud,
                     char *out, size_t cap, fp_error *err) {
    if (!spec || !out || cap == 0) return fp_error_set(err, FP_ERR_ARG, "no repository named");
    const char *colon = strchr(spec, ':');
    size_t rn = colon ? (size_t)(colon - spec) : strlen(spec);
    char repo[200], quant[256];
    if (!repo_ok(spec, rn) || (colon && (!colon[1] || strlen(colon + 1) >= sizeof quant)))
        return fp_error_set(err, FP_ERR_ARG, "--hf wants OWNER/REPO[:QUANT] (e.g. ggml-org/models:Q4_K_M), got \"%.100s\"", spec);
    memcpy(repo, spec, rn);
    repo[rn] = 0;
    bool explicit = colon != NULL;
    snprintf(quant, sizeof quant, "%s", colon ? colon + 1 : DEFAULT_QUANT);

    char mdir[PATH_MAX];
    if (dir && *dir) snprintf(mdir, sizeof mdir, "%s", dir);
    else if (fp_models_dir(mdir, sizeof mdir, err) != FP_OK) return err ? err->code : FP_ERR_ARG;
    if (fpi_mkdirs(mdir) != 0) return fp_error_set(err, FP_ERR_IO, "cannot create %s: %s", mdir, strerror(errno));
    char prefix[220];
    snprintf(prefix, sizeof prefix, "%s_", repo);
    *strchr(prefix, '/') = '_';

    const char *ep = getenv("FORKPOINT_HF_ENDPOINT");
    if (!ep || !*ep) ep = getenv("MODEL_ENDPOINT");
    if (!ep || !*ep) ep = getenv("HF_ENDPOINT");
    if (!ep || !*ep) ep = "https://huggingface.co";
    size_t el = strlen(ep);
    while (el > 0 && ep[el - 1] == '/') el--;
    const char *token = getenv("HF_TOKEN");

    hf_file *files = calloc(MAX_FILES, sizeof *files);
    if (!files) return fp_error_set(err, FP_ERR_NOMEM, "out of memory");
    char url[2048];
    snprintf(url, sizeof url, "%.*s/api/models/%s/tree/main?recursive=true", (int)el, ep, repo);
    char *body = NULL;
    long http = 0;
    fp_status st = fpi_http_get(url, token, &body, &http, err);
    int n = 0, idx[64], k = 0;
    bool offline = false;
    if (st != FP_OK) {
        /* no network: a matching file the cache already holds will do */
        n = cached_files(mdir, prefix, files, MAX_FILES);
        k = pick(files, n, quant, explicit, idx, 64);
        if (k == 0) {
            free(files);
            return st;   /* the "no network: ..." line */
        }
        offline = true;
    } else if (http == 401 || http == 403 || http == 404) {
        free(body);
        free(files);
        if (http != 404 && token && *token)
            return fp_error_set(err, FP_ERR_ARG, "%s: the hub refused access (HTTP %ld): a gated or private repository HF_TOKEN cannot read", repo, http);
        return fp_error_set(err, FP_ERR_ARG, "no such repository on the hub: %s (HTTP %ld%s)", repo, http,
                            http == 404 ? "" : "; if it is private or gated, set HF_TOKEN");
    } else if (http != 200 || (n = parse_tree(body, files, MAX_FILES)) < 0) {
        free(body);
        free(files);
        return fp_error_set(err, FP_ERR_IO, "%s: the hub's file listing failed (HTTP %ld)", repo, http);
    }
    free(body);
    if (!offline && (k = pick(files, n, quant, explicit, idx, 64)) == 0) {
        char have[180];
        list_models(files, n, have, sizeof have);
        fp_error_set(err, FP_ERR_ARG, "%s has no GGUF file for %.40s; it has: %s", repo, quant, have);
        free(files);
        return FP_ERR_ARG;
    }
    st = FP_OK;
    for (int i = 0; i < k && st == FP_OK; i++) {
        const hf_file *f = &files[idx[i]];
        char dest[PATH_MAX + 256];
        int w = snprintf(dest, sizeof dest, "%s/%s%s", mdir, prefix, offline ? f->path : base_name(f->path));
        if (w < 0 || (size_t)w >= sizeof dest) { st = fp_error_set(err, FP_ERR_ARG, "path too long"); break; }
        if (i == 0 && (size_t)snprintf(out, cap, "%s", dest) >= cap) { st = fp_error_set(err, FP_ERR_ARG, "path too long"); break; }
        if (offline) continue;
        int64_t have = size_of(dest);
        if (have >= 0 && (f->size < 0 || have == f->size)) continue;   /* downloaded and checked before */
        if (have >= 0) unlink(dest);   /* another version of the file: fetch it again */
        char up[1200];
        url_path(f->path, up, sizeof up);
        snprintf(url, sizeof url, "%.*s/%s/resolve/main/%s", (int)el, ep, repo, up);
        st = fpi_download(url, token, dest, f->sha, base_name(f->path), progress, ud, err);
    }
    free(files);
    return st;
}
