/* fuzz_classify.c: every adapter's classify (and Midnight's token-refresh reader) on an
 * arbitrary reply. Byte 0 picks the HTTP status, byte 1 a Retry-After and Content-Type, the
 * rest is the body. Checks: the outcome is consistent and every text it keeps (code, message,
 * target_ref) is NUL-terminated UTF-8. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "target.h"
#include "fuzz_utf8.h"

static const long statuses[] = {200, 201, 202, 204, 206, 100, 301, 302, 304, 400, 401,
                                403, 404, 405, 406, 408, 409, 410, 413, 415, 422, 429,
                                500, 501, 502, 503, 504, 599, 0,   99,  999, 299};
static const char *const retry_afters[] = {
    NULL, "1", "0", "86400", "-1", "abc", "Wed, 21 Oct 2015 07:28:00 GMT", "99999999999999999999"};
static const char *const content_types[] = {"text/xml; charset=utf-8", "application/json",
                                            "text/html", "application/soap+xml"};

static iw_config *defaults;

/* The adapter being checked, named in a finding's report. */
static const char *current_type = "";

static void fail(const char *what, const char *text, size_t cap)
{
    fprintf(stderr, "adapter %s\n", current_type);
    iw_fuzz_fail(what, text, cap);
}

#define TEXT(o, f) (o)->f, sizeof((o)->f)

static void check(const iw_outcome *o)
{
    if (!iw_fuzz_utf8_ok(TEXT(o, code)))
        fail("outcome.code is not NUL-terminated UTF-8", TEXT(o, code));
    if (!iw_fuzz_utf8_ok(TEXT(o, message)))
        fail("outcome.message is not NUL-terminated UTF-8", TEXT(o, message));
    if (!iw_fuzz_utf8_ok(TEXT(o, target_ref)))
        fail("outcome.target_ref is not NUL-terminated UTF-8", TEXT(o, target_ref));
    if (o->kind < IW_OUTCOME_OK || o->kind > IW_OUTCOME_AUTH)
        fail("outcome.kind out of range", NULL, 0);
    if ((o->kind == IW_OUTCOME_OK) != (o->error_kind == IW_ERR_NONE))
        fail("success and only success has no error kind", TEXT(o, message));
    if (o->kind != IW_OUTCOME_OK && o->target_ref[0])
        fail("target_ref set on a failure", TEXT(o, message));
    if (o->kind != IW_OUTCOME_RETRY && o->retry_after_ms != -1)
        fail("retry_after_ms set on an outcome that is not RETRY", TEXT(o, message));
    if (o->refresh_token && o->kind != IW_OUTCOME_AUTH)
        fail("refresh_token set on an outcome that is not AUTH", TEXT(o, message));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!defaults && !(defaults = iw_config_defaults()))
        abort();
    uint8_t b0 = size > 0 ? data[0] : 0, b1 = size > 1 ? data[1] : 0;
    const uint8_t *body = size > 2 ? data + 2 : NULL;
    size_t body_len = size > 2 ? size - 2 : 0;
    /* a private copy, so reading past body_len is caught by ASan */
    char *copy = body_len ? malloc(body_len) : NULL;
    if (body_len && !copy)
        return 0;
    if (body_len)
        memcpy(copy, body, body_len);

    iw_header hdrs[2];
    size_t n_hdrs = 0;
    const char *ra = retry_afters[b1 % (sizeof(retry_afters) / sizeof(retry_afters[0]))];
    hdrs[n_hdrs].name = (char *)"Content-Type";
    hdrs[n_hdrs++].value = (char *)content_types[(b1 >> 4) % 4];
    if (ra) {
        hdrs[n_hdrs].name = (char *)"Retry-After";
        hdrs[n_hdrs++].value = (char *)ra;
    }
    iw_response resp = {
        .status = statuses[b0 % (sizeof(statuses) / sizeof(statuses[0]))],
        .headers = hdrs,
        .n_headers = n_hdrs,
        .body = copy,
        .body_len = body_len,
        .now_ms = 1700000000000LL,
    };
    for (size_t i = 0; i < defaults->n_targets; i++) {
        const iw_target_conf *tc = &defaults->targets[i];
        const iw_target_ops *ops = iw_target_find(tc->type);
        if (!ops)
            abort();
        iw_outcome out;
        memset(&out, 0xA5, sizeof(out)); /* classify must set every field it leaves meaningful */
        iw_target_classify(ops, tc, &resp, &out);
        current_type = tc->type;
        check(&out);
        if (ops->parse_refresh) {
            char tok[512];
            if (ops->parse_refresh(&resp, tok, sizeof(tok)) == 0 &&
                strnlen(tok, sizeof(tok)) == sizeof(tok))
                abort(); /* a token read is NUL-terminated */
        }
    }
    free(copy);
    return 0;
}
