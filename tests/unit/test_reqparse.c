/*
 * test_reqparse.c — the server's request validation (src/server/reqparse.c)
 * as pure functions, without a server: nesting depth, trailing data, NUL
 * escapes, unknown and duplicate fields, integer ranges (under UBSan, a
 * double converted to an integer out of range would abort the run), the
 * action parser shared by HTTP and WebSocket, and the UTF-8 scrub of
 * emitted text.
 *
 * Why include the .c file: the unit-test rule links the library only;
 * reqparse.c needs nothing else but cJSON (and fp_utf8_valid).
 */
#include "harness.h"
#include "../../src/server/reqparse.c"

static int parse(const char *s, const char *const *allowed, char *err, void **out)
{
    return srv_parse_body(s, strlen(s), allowed, false, out, err, 160);
}

static char *nest(int n)
{
    char *b = malloc((size_t)n * 2 + 32);
    size_t k = (size_t)sprintf(b, "{\"x\":");
    for (int i = 0; i < n; i++) b[k++] = '[';
    for (int i = 0; i < n; i++) b[k++] = ']';
    b[k++] = '}';
    b[k] = '\0';
    return b;
}

int main(void)
{
    char err[160];
    void *j = NULL;
    (void)h_model_path;

    TEST("nesting depth is checked before parsing");
    char *d = nest(SRV_MAX_DEPTH - 1);
    CHECKF(parse(d, NULL, err, &j) == 0, "%s", err);
    cJSON_Delete(j);
    free(d);
    d = nest(SRV_MAX_DEPTH);
    CHECK(parse(d, NULL, err, &j) == 400 && strstr(err, "deeply"));
    free(d);
    d = nest(30000);
    CHECK(parse(d, NULL, err, &j) == 400 && strstr(err, "deeply"));
    free(d);
    /* brackets inside strings do not count, escaped quotes do not end them */
    CHECK(parse("{\"a\":\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\"[[[\"}", NULL, err, &j) == 0);
    cJSON_Delete(j);

    TEST("one object, nothing after it, no NUL");
    CHECK(parse("{\"a\":1} xyz", NULL, err, &j) == 400 && strstr(err, "after"));
    CHECK(parse("{\"a\":1}{}", NULL, err, &j) == 400);
    CHECK(parse("{\"a\":1} \r\n", NULL, err, &j) == 0);
    cJSON_Delete(j);
    CHECK(srv_parse_body("{\"a\":1}\0junk", 12, NULL, false, &j, err, sizeof err) == 400);
    CHECK(parse("[1]", NULL, err, &j) == 400);
    CHECK(parse("   ", NULL, err, &j) == 400);
    CHECK(srv_parse_body("  ", 2, NULL, true, &j, err, sizeof err) == 0 && cJSON_IsObject((cJSON *)j));
    cJSON_Delete(j);

    TEST("\\u0000 and invalid UTF-8 in strings are refused");
    CHECK(parse("{\"p\":\"Once\\u0000 upon\"}", NULL, err, &j) == 400 && strstr(err, "u0000"));
    CHECK(parse("{\"p\\u0000\":1}", NULL, err, &j) == 400);
    CHECK(parse("{\"p\":\"a\\\\u0000\"}", NULL, err, &j) == 0);   /* an escaped backslash */
    cJSON_Delete(j);
    CHECK(parse("{\"p\":\"\\ud800\"}", NULL, err, &j) == 400);
    CHECK(parse("{\"p\":\"\xc3\x28\"}", NULL, err, &j) == 400);
    CHECK(parse("{\"p\":\"\xed\xa0\x80\"}", NULL, err, &j) == 400);
    CHECK(parse("{\"p\":\"\\ud83d\\ude00 \xe5\xad\x97\"}", NULL, err, &j) == 0);
    cJSON_Delete(j);

    TEST("unknown and duplicate fields");
    static const char *const f[] = {"index", "accept_preview", NULL};
    CHECK(parse("{\"index\":1,\"acept_preview\":true}", f, err, &j) == 400 && strstr(err, "\"acept_preview\""));
    CHECK(parse("{\"index\":1,\"index\":2}", f, err, &j) == 400 && strstr(err, "twice"));
    CHECK(parse("{\"index\":1,\"accept_preview\":true}", f, err, &j) == 0);
    cJSON_Delete(j);

    TEST("integers: range and integrality before the cast");
    static const char *const nums[] = {"1e300", "-1e300", "9.3e18", "2147483648", "0.5", "1e-300", "\"1\""};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        char b[64];
        snprintf(b, sizeof b, "{\"index\":%s}", nums[i]);
        CHECK(parse(b, NULL, err, &j) == 0);
        int64_t v = 0;
        CHECKF(srv_json_int(j, "index", &v) == -1, "%s", nums[i]);
        cJSON_Delete(j);
    }
    CHECK(parse("{\"index\":-2147483648}", NULL, err, &j) == 0);
    int64_t v = 0;
    CHECK(srv_json_int(j, "index", &v) == 1 && v == INT32_MIN);
    CHECK(srv_json_int(j, "nope", &v) == 0);
    cJSON_Delete(j);

    TEST("actions: fields, fork_id and version");
    srv_job job;
    char *sj = NULL;
    memset(&job, 0, sizeof job);
    CHECK(parse("{\"index\":2,\"fork_id\":3,\"version\":12345678901}", NULL, err, &j) == 0);
    CHECK(srv_parse_action("choose", j, "api", &job, &sj, err, sizeof err) == NULL);
    CHECK(job.kind == JOB_CHOOSE && job.index == 2 && job.has_fork && job.want_fork == 3 &&
          job.has_version && job.want_version == 12345678901ull);
    cJSON_Delete(j);
    memset(&job, 0, sizeof job);
    CHECK(parse("{\"index\":2,\"acept_preview\":true}", NULL, err, &j) == 0);
    const char *bad = srv_parse_action("choose", j, "api", &job, &sj, err, sizeof err);
    CHECK(bad && strstr(bad, "acept_preview"));
    cJSON_Delete(j);
    memset(&job, 0, sizeof job);
    CHECK(parse("{\"fork_id\":4}", NULL, err, &j) == 0);   /* goto: fork_id is the target */
    CHECK(srv_parse_action("goto", j, "api", &job, &sj, err, sizeof err) == NULL);
    CHECK(job.kind == JOB_GOTO_FORK && job.index == 4 && !job.has_fork);
    cJSON_Delete(j);
    memset(&job, 0, sizeof job);
    CHECK(parse("{\"k\":4,\"version\":7}", NULL, err, &j) == 0);  /* a bare settings object */
    CHECK(srv_parse_action("settings", j, "api", &job, &sj, err, sizeof err) == NULL);
    CHECK(job.kind == JOB_SETTINGS && sj && strcmp(sj, "{\"k\":4}") == 0 && job.want_version == 7);
    free(sj);
    sj = NULL;
    cJSON_Delete(j);
    memset(&job, 0, sizeof job);
    CHECK(parse("{\"version\":-1}", NULL, err, &j) == 0);
    CHECK(srv_parse_action("undo", j, "api", &job, &sj, err, sizeof err) != NULL);
    CHECK(srv_parse_action("fly", j, "api", &job, &sj, err, sizeof err) != NULL);
    cJSON_Delete(j);

    TEST("UTF-8 scrub: one byte for one, valid text unchanged");
    char s1[] = "ok \xe5\xad\x97 \xe4 \xff\xfe end \xf0\x9f\x98";
    size_t n1 = strlen(s1);
    CHECK(srv_utf8_scrub(s1, n1) == 6);
    CHECK(strlen(s1) == n1 && fp_utf8_valid(s1, n1));
    CHECK(strcmp(s1, "ok \xe5\xad\x97 ? ?? end ???") == 0);
    char s2[] = "\xed\xa0\x80\xc0\xaf";   /* a surrogate and an overlong '/' */
    CHECK(srv_utf8_scrub(s2, 5) == 5 && strcmp(s2, "?????") == 0);
    return h_finish();
}
