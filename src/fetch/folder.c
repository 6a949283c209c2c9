/*
 * folder.c — the models folder (--models-dir, default the cache's): which
 * GGUF models a person has, for `forkpoint model list` and the page's picker.
 *
 * Why headers only: a folder may hold many gigabytes of models; listing it
 * reads each file's metadata (fp_model_info_read), never its weights.
 */
#include "fetch/fetch.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

typedef struct { fp_model_entry *e; int32_t n, cap; } list;

/* A later part of a split model ("-00002-of-00003.gguf"): llama.cpp opens the first. */
static bool later_part(const char *name) {
    const char *m = strstr(name, "-of-");
    int part, of;
    return m && m - name >= 6 && sscanf(m - 5, "%5d-of-%5d", &part, &of) == 2 && part > 1;
}

static int add(list *l, const char *path) {
    if (strlen(path) >= sizeof l->e[0].path) return 0;   /* no room for its name: not listed */
    if (l->n == l->cap) {
        int32_t cap = l->cap ? l->cap * 2 : 16;
        fp_model_entry *ne = realloc(l->e, (size_t)cap * sizeof *ne);
        if (!ne) return -1;
        l->e = ne;
        l->cap = cap;
    }
    fp_model_entry *e = &l->e[l->n++];
    memset(e, 0, sizeof *e);
    memcpy(e->path, path, strlen(path) + 1);
    fp_error err = {0};
    if (fp_model_info_read(path, &e->info, &err) != FP_OK) memcpy(e->error, err.message, sizeof e->error);
    return 0;
}

static int walk(list *l, const char *dir, int depth) {
    DIR *d = opendir(dir);
    if (!d) return depth == 0 ? -1 : 0;
    struct dirent *de;
    int rc = 0;
    while (rc == 0 && (de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char p[PATH_MAX];
        if ((size_t)snprintf(p, sizeof p, "%s/%s", dir, de->d_name) >= sizeof p) continue;
        struct stat st;
        if (stat(p, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) { if (depth < 1) rc = walk(l, p, depth + 1); continue; }
        size_t n = strlen(de->d_name);
        if (!S_ISREG(st.st_mode) || n < 6 || strcasecmp(de->d_name + n - 5, ".gguf") != 0 || later_part(de->d_name)) continue;
        rc = add(l, p);
    }
    closedir(d);
    return rc;
}

static int by_path(const void *a, const void *b) {
    return strcmp(((const fp_model_entry *)a)->path, ((const fp_model_entry *)b)->path);
}

fp_status fp_models_scan(const char *dir, fp_model_entry **out, int32_t *n, fp_error *err) {
    *out = NULL;
    *n = 0;
    if (!dir || !*dir) return fp_error_set(err, FP_ERR_ARG, "no models folder");
    list l = {0};
    errno = 0;
    if (walk(&l, dir, 0) != 0) {
        int e = errno;
        free(l.e);
        return e == ENOMEM || e == 0 ? fp_error_set(err, FP_ERR_NOMEM, "out of memory")
                                     : fp_error_set(err, FP_ERR_IO, "cannot read the models folder %s: %s", dir, strerror(e));
    }
    if (l.n > 1) qsort(l.e, (size_t)l.n, sizeof *l.e, by_path);
    *out = l.e;
    *n = l.n;
    return FP_OK;
}

char *fp_model_entry_json(const fp_model_entry *e) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    const char *slash = strrchr(e->path, '/');
    cJSON_AddStringToObject(o, "file", slash ? slash + 1 : e->path);
    cJSON_AddStringToObject(o, "path", e->path);
    cJSON_AddNumberToObject(o, "size_bytes", (double)e->info.size_bytes);
    if (e->error[0]) {
        cJSON_AddStringToObject(o, "error", e->error);
    } else {
        cJSON_AddStringToObject(o, "name", e->info.name);
        cJSON_AddStringToObject(o, "arch", e->info.arch);
        cJSON_AddStringToObject(o, "quant", e->info.quant);
        cJSON_AddNumberToObject(o, "n_ctx_train", e->info.n_ctx_train);
        cJSON_AddNumberToObject(o, "n_vocab", e->info.n_vocab);
        cJSON_AddBoolToObject(o, "chat_template", e->info.has_chat_template);
        cJSON_AddBoolToObject(o, "weights", e->info.has_weights);
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}
