/*
 * test_folder.c — a GGUF's facts from its header (fp_model_info_read) and
 * the models folder (fp_models_scan, fp_model_entry_json), on the real
 * models: stories260K, TinyStories-656K, a vocab-only Phi-3 tokenizer (with
 * a chat template), and files that are not models (missing, truncated, not
 * GGUF, a .part download, a later part of a split model).
 */
#include "forkpoint.h"
#include "forkpoint_fetch.h"
#include "harness.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Copies src's first n bytes (n < 0: all) to dst. */
static bool copy(const char *src, const char *dst, long n) {
    FILE *a = fopen(src, "rb"), *b = fopen(dst, "wb");
    bool ok = a && b;
    char buf[65536];
    size_t k;
    while (ok && n != 0 && (k = fread(buf, 1, n < 0 || n > (long)sizeof buf ? sizeof buf : (size_t)n, a)) > 0) {
        ok = fwrite(buf, 1, k, b) == k;
        if (n > 0) n -= (long)k;
    }
    if (a) fclose(a);
    if (b) fclose(b);
    return ok;
}

static void facts(void) {
    TEST("fp_model_info_read: the facts of real models, headers only");
    fp_model_info i;
    fp_error err = {0};
    CHECKF(fp_model_info_read(h_model_path("stories260K.gguf"), &i, &err) == FP_OK, "%s", err.message);
    CHECK(!strcmp(i.arch, "llama") && !strcmp(i.name, "llama") && !strcmp(i.quant, "F32"));
    CHECK(i.n_vocab == 512 && i.n_ctx_train == 2048 && !i.has_chat_template && i.has_weights);
    struct stat st;
    CHECK(stat(h_model_path("stories260K.gguf"), &st) == 0 && i.size_bytes == (int64_t)st.st_size);
    /* the facts agree with what loading the model says */
    fp_model *m = fp_model_load(h_model_path("stories260K.gguf"), NULL, &err);
    CHECK(m && fp_model_n_vocab(m) == i.n_vocab && fp_model_n_ctx_train(m) == i.n_ctx_train);
    fp_model_free(m);

    CHECK(fp_model_info_read(h_model_path("tinystories-656k/tinystories-656k-q8_0.gguf"), &i, &err) == FP_OK);
    CHECK(!strcmp(i.name, "TinyStories-656K") && !strcmp(i.quant, "Q8_0") && i.n_vocab == 2048 && i.n_ctx_train == 512);

    CHECK(fp_model_info_read(h_model_path("vocab-only/ggml-vocab-phi-3.gguf"), &i, &err) == FP_OK);
    CHECK(!strcmp(i.arch, "phi3") && i.has_chat_template && !i.has_weights && i.quant[0] == 0 && i.n_vocab == 32064);

    CHECK(fp_model_info_read("/nonexistent.gguf", &i, &err) == FP_ERR_IO && strstr(err.message, "not found"));
    CHECK(fp_model_info_read(h_model_path("legacy-gguf-v1/tinyllamas-stories-260k-f32.gguf"), &i, &err) == FP_ERR_MODEL);
    CHECK(fp_model_info_read(NULL, &i, &err) == FP_ERR_ARG);
}

static void folder(void) {
    TEST("fp_models_scan: GGUF files of a folder and one level down, sorted, with their facts");
    char dir[] = "/tmp/fp-folder-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char p[1200];
    snprintf(p, sizeof p, "%s/sub", dir);
    CHECK(mkdir(p, 0755) == 0);
    snprintf(p, sizeof p, "%s/b.gguf", dir);
    CHECK(copy(h_model_path("stories260K.gguf"), p, -1));
    snprintf(p, sizeof p, "%s/sub/a.GGUF", dir);
    CHECK(copy(h_model_path("tinystories-656k/tinystories-656k-q8_0.gguf"), p, -1));
    snprintf(p, sizeof p, "%s/broken.gguf", dir);
    CHECK(copy(h_model_path("stories260K.gguf"), p, 100));
    snprintf(p, sizeof p, "%s/c.gguf.part", dir);
    CHECK(copy(h_model_path("stories260K.gguf"), p, 100));
    snprintf(p, sizeof p, "%s/big-00002-of-00002.gguf", dir);
    CHECK(copy(h_model_path("stories260K.gguf"), p, 100));
    snprintf(p, sizeof p, "%s/.hidden.gguf", dir);
    CHECK(copy(h_model_path("stories260K.gguf"), p, -1));
    snprintf(p, sizeof p, "%s/notes.txt", dir);
    CHECK(copy(h_model_path("stories260K.gguf"), p, 10));

    fp_model_entry *e = NULL;
    int32_t n = 0;
    fp_error err = {0};
    CHECKF(fp_models_scan(dir, &e, &n, &err) == FP_OK, "%s", err.message);
    CHECKF(n == 3, "%d entries", n);
    if (n == 3) {
        CHECK(strstr(e[0].path, "/b.gguf") && !e[0].error[0] && e[0].info.n_vocab == 512);
        CHECK(strstr(e[1].path, "/broken.gguf") && e[1].error[0] && e[1].info.size_bytes == 100);
        CHECK(strstr(e[2].path, "/sub/a.GGUF") && !e[2].error[0] && e[2].info.n_vocab == 2048);
        char *j = fp_model_entry_json(&e[0]);
        cJSON *o = j ? cJSON_Parse(j) : NULL;
        CHECK(o && !strcmp(cJSON_GetObjectItem(o, "file")->valuestring, "b.gguf")
              && cJSON_GetObjectItem(o, "n_vocab")->valueint == 512 && cJSON_IsFalse(cJSON_GetObjectItem(o, "chat_template"))
              && cJSON_IsTrue(cJSON_GetObjectItem(o, "weights")) && !cJSON_GetObjectItem(o, "error"));
        cJSON_Delete(o);
        free(j);
        j = fp_model_entry_json(&e[1]);
        o = j ? cJSON_Parse(j) : NULL;
        CHECK(o && cJSON_IsString(cJSON_GetObjectItem(o, "error")) && !cJSON_GetObjectItem(o, "n_vocab"));
        cJSON_Delete(o);
        free(j);
    }
    free(e);
    CHECK(fp_models_scan("/nonexistent-folder", &e, &n, &err) == FP_ERR_IO && n == 0 && !e);
    char cmd[1300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

int main(void) {
    facts();
    folder();
    return h_finish();
}
