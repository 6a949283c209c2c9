/*
 * fuzz_settings.c — fp_settings_from_json (src/core/json.c) on any text.
 *
 * Why: settings come from HTTP bodies, WebSocket messages, saved sessions
 * and the decision log. The parser must refuse what is not a valid settings
 * object with FP_ERR_ARG and a message, and what it accepts must pass
 * fp_settings_validate and survive its own round trip (to JSON and back),
 * since that is how a saved session carries them.
 */
#include "fuzz_common.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *json = fz_strndup(data, size);
    fp_settings st = fp_default_settings();
    fp_error err = {0};
    fp_status rc = fp_settings_from_json(json, &st, &err);
    if (rc != FP_OK) {
        FZ_CHECK(rc == FP_ERR_ARG, "status %s", fp_status_name(rc));
        FZ_CHECK(err.message[0] != 0, "no message for %s", json);
        /* a refused document leaves the settings untouched */
        fp_settings d = fp_default_settings();
        char *a = fp_settings_to_json(&d), *b = fp_settings_to_json(&st);
        FZ_CHECK(a && b && strcmp(a, b) == 0, "refused settings changed the output to %s", b);
        free(a);
        free(b);
    } else {
        FZ_CHECK(fp_settings_validate(&st, &err) == FP_OK, "accepted but invalid: %s", err.message);
        char *out = fp_settings_to_json(&st);
        FZ_CHECK(out != NULL, "no JSON");
        fp_settings back = fp_default_settings();
        rc = fp_settings_from_json(out, &back, &err);
        FZ_CHECK(rc == FP_OK, "own output refused: %s (%s)", err.message, out);
        char *again = fp_settings_to_json(&back);
        FZ_CHECK(again && strcmp(out, again) == 0, "round trip changed %s into %s", out, again);
        free(again);
        free(out);
    }
    free(json);
    return 0;
}
