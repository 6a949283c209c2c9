/*
 * fuzz_common.c — helpers of the libFuzzer harnesses (see fuzz_common.h).
 */
#include "fuzz_common.h"

#include <limits.h>
#include <string.h>
#include <unistd.h>

FILE *fz_report;

/* Runs before libFuzzer's main, so fd 2 is still the real stderr. */
__attribute__((constructor)) static void fz_keep_stderr(void)
{
    int fd = dup(2);
    if (fd >= 0) fz_report = fdopen(fd, "w");
}

char *fz_strndup(const uint8_t *data, size_t n)
{
    char *s = malloc(n + 1);
    if (!s) abort();
    if (n) memcpy(s, data, n);
    s[n] = 0;
    return s;
}

const char *fz_models_dir(void)
{
    const char *d = getenv("FP_TEST_MODELS");
    return d && *d ? d : "../shared/models";
}

void fz_model_engine(fp_model **model, fp_engine **engine)
{
    static fp_model *m;
    static fp_engine *e;
    if (!m) {
        char path[PATH_MAX];
        fp_error err = {0};
        snprintf(path, sizeof path, "%s/stories260K.gguf", fz_models_dir());
        m = fp_model_load(path, NULL, &err);
        if (!m) { fprintf(stderr, "fuzz: cannot load %s: %s (set FP_TEST_MODELS)\n", path, err.message); abort(); }
        fp_engine_params ep = fp_engine_default_params();
        ep.n_threads = 1;
        e = fp_engine_new(m, &ep, &err);
        if (!e) { fprintf(stderr, "fuzz: no engine: %s\n", err.message); abort(); }
    }
    if (model) *model = m;
    if (engine) *engine = e;
}

int fz_split(const uint8_t *data, size_t n, char sep, char **fields, int max, char **buf)
{
    char *s = fz_strndup(data, n);
    int k = 0;
    *buf = s;
    if (max <= 0) return 0;
    fields[k++] = s;
    for (size_t i = 0; i < n && k < max; i++)
        if (s[i] == sep) { s[i] = 0; fields[k++] = s + i + 1; }
    return k;
}
