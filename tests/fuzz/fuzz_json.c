/*
 * fuzz_json.c — libFuzzer target for src/io/json.c.
 *
 * The input bytes go through gptq_json_parse directly (an exactly sized
 * buffer without a terminating NUL, so an over-read shows under ASan) and
 * through gptq_json_read_file (via a memfd). Both must agree. On an object
 * every getter is called on every key, required and optional; each call
 * must return OK, GPTQ_JSON_ABSENT or GPTQ_ERR_FORMAT with a message, and
 * OK only for the matching JSON type.
 */
#define FUZZ_NAME "fuzz_json"
#include "fuzz_util.h"

#include "io/io.h"

/* A getter's status is one of the three allowed, with a message on error. */
static void check_status(int rc, int required, int type_ok)
{
    CHECK(rc == GPTQ_OK || rc == GPTQ_JSON_ABSENT || rc == GPTQ_ERR_FORMAT);
    if (rc == GPTQ_JSON_ABSENT) CHECK(!required);
    if (rc == GPTQ_ERR_FORMAT) CHECK(gptq_last_error()[0] != '\0');
    if (rc == GPTQ_OK) CHECK(type_ok);
}

static void poke(const cJSON *obj, const char *key, const cJSON *v)
{
    for (int req = 0; req < 2; req++) {
        int64_t i;
        double d;
        const char *s;
        int b;
        const cJSON *o;
        check_status(gptq_json_get_int(obj, key, &i, req, "fuzz.json"), req, cJSON_IsNumber(v));
        check_status(gptq_json_get_num(obj, key, &d, req, "fuzz.json"), req, cJSON_IsNumber(v));
        int rc = gptq_json_get_str(obj, key, &s, req, "fuzz.json");
        check_status(rc, req, cJSON_IsString(v));
        if (rc == GPTQ_OK) CHECK(strlen(s) < (size_t)1 << 30);
        check_status(gptq_json_get_bool(obj, key, &b, req, "fuzz.json"), req, cJSON_IsBool(v));
        check_status(gptq_json_get_object(obj, key, &o, req, "fuzz.json"), req,
                     cJSON_IsObject(v));
        check_status(gptq_json_get_array(obj, key, &o, req, "fuzz.json"), req, cJSON_IsArray(v));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_memfd(data, size);
    char *exact = fuzz_copy(data, size);
    cJSON *a = NULL;
    int rc_a = gptq_json_parse(exact, size, "fuzz.json", &a);
    free(exact);
    CHECK((rc_a == GPTQ_OK) == (a != NULL));
    if (rc_a != GPTQ_OK) CHECK(rc_a == GPTQ_ERR_FORMAT && strstr(gptq_last_error(), "fuzz.json"));

    cJSON *b = NULL;
    int rc_b = gptq_json_read_file(path, &b);
    CHECK(rc_a == rc_b);
    if (rc_b != GPTQ_OK) CHECK(strstr(gptq_last_error(), path) != NULL);

    if (a && b) { /* same tree: compare the printed forms (cJSON_Compare
                     * trips over duplicate keys) */
        char *pa = cJSON_PrintUnformatted(a), *pb = cJSON_PrintUnformatted(b);
        CHECK(pa && pb && strcmp(pa, pb) == 0);
        free(pa);
        free(pb);
    }
    if (a && cJSON_IsObject(a)) {
        const cJSON *v;
        int k = 0;
        cJSON_ArrayForEach(v, a)
        {
            if (++k > 64) break;
            if (v->string) poke(a, v->string, cJSON_GetObjectItemCaseSensitive(a, v->string));
        }
        poke(a, "surely-not-a-key", cJSON_GetObjectItemCaseSensitive(a, "surely-not-a-key"));
    } else if (a) {
        int64_t i;
        CHECK(gptq_json_get_int(a, "x", &i, 0, "fuzz.json") == GPTQ_ERR_FORMAT);
    }
    cJSON_Delete(a);
    cJSON_Delete(b);
    return 0;
}
