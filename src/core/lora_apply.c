/*
 * lora_apply.c — puts a LoRA adapter on an engine at a scale, or takes it off.
 *
 * Why a file of its own: applying is what a running server does (and
 * changes at run time); training (lora.c) is an offline job. After the
 * change every session's KV is stale: the engine decodes them again.
 */
#include "core/internal.h"

#include <math.h>
#include <unistd.h>

fp_status fp_engine_set_lora(fp_engine *e, const char *path, float scale, fp_error *err) {
    if (!e) return fpi_fail(err, FP_ERR_ARG, "no engine");
    if (e->remote)
        return fpi_fail(err, FP_ERR_ARG, "a LoRA adapter needs the model's weights, which the remote engine (%s) keeps: not available with --backend", fp_engine_backend(e));
    if (!isfinite(scale) || scale < -16.0f || scale > 16.0f) return fpi_fail(err, FP_ERR_ARG, "LoRA scale must be in [-16, 16]");
    struct llama_adapter_lora *ad = NULL;
    if (path && scale != 0.0f) {
        if (access(path, R_OK) != 0) return fpi_fail(err, FP_ERR_IO, "no adapter at %s", path);
        ad = llama_adapter_lora_init(e->model->lm, path);
        if (!ad) return fpi_fail(err, FP_ERR_MODEL, "%s is not a LoRA adapter for this model", path);
    }
    int32_t rc = ad ? llama_set_adapters_lora(e->ctx, &ad, 1, &scale) : llama_set_adapters_lora(e->ctx, NULL, 0, NULL);
    if (rc != 0) {
        if (ad) llama_adapter_lora_free(ad);
        return fpi_fail(err, FP_ERR_MODEL, "llama.cpp refused the adapter %s", path);
    }
    if (e->lora) llama_adapter_lora_free(e->lora);
    e->lora = ad;
    return fpi_engine_redecode_all(e, err);
}

