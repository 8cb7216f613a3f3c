/* test_classify_replies.c: every reply fixture through `invoice-worker classify`, compared with
 * its expected outcome in tests/fixtures/replies/cases.json (one data-driven test). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cjson/cJSON.h>

#include "docpaths.h"
#include "testproc.h"

#define NOW_MS "1795255200000" /* 2026-11-21T10:00:00Z: HTTP-date Retry-Afters are 90 s later */

/* Runs cmd; returns its exit status and its stdout (malloc'd) in *out. */
static int run(const char *cmd, char **out)
{
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t cap = 1 << 14, n = 0, got;
    char *buf = malloc(cap);
    while ((got = fread(buf + n, 1, cap - n - 1, p)) > 0)
        if ((n += got) + 1 >= cap)
            buf = realloc(buf, cap *= 2);
    buf[n] = '\0';
    int st = pclose(p);
    *out = buf;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static cJSON *load_cases(void)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/replies/cases.json", IW_FIXTURES_DIR);
    char *text = iw_read_file(path, NULL);
    cr_assert_not_null(text, "%s", path);
    cJSON *cases = cJSON_Parse(text);
    free(text);
    cr_assert(cJSON_IsArray(cases), "%s is not a JSON array", path);
    return cases;
}

/* Compares one expected key with the printed object; message is a substring match. */
static void check_key(const char *label, const cJSON *want, const cJSON *got)
{
    const char *key = want->string;
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(got, key);
    cr_expect_not_null(g, "%s: no \"%s\" in the output", label, key);
    if (!g)
        return;
    if (strcmp(key, "message") == 0) {
        cr_expect(cJSON_IsString(g) && strstr(g->valuestring, want->valuestring),
                  "%s: message \"%s\" lacks \"%s\"", label, g->valuestring, want->valuestring);
        return;
    }
    char *w = cJSON_PrintUnformatted(want), *o = cJSON_PrintUnformatted(g);
    cr_expect_str_eq(o, w, "%s: %s is %s, want %s", label, key, o, w);
    free(w);
    free(o);
}

Test(classify_replies, every_case_prints_its_expected_outcome, .timeout = 600)
{
    cJSON *cases = load_cases();
    const cJSON *c;
    int n = 0;
    cJSON_ArrayForEach(c, cases)
    {
        const char *target = cJSON_GetObjectItem(c, "target")->valuestring;
        const char *reply = cJSON_GetObjectItem(c, "reply")->valuestring;
        int status = cJSON_GetObjectItem(c, "status")->valueint;
        char cmd[2048], label[256];
        int used = snprintf(cmd, sizeof(cmd), "'%s' classify --target %s --status %d --now-ms %s",
                            iw_build_path("invoice-worker"), target, status, NOW_MS);
        const cJSON *h;
        cJSON_ArrayForEach(h, cJSON_GetObjectItem(c, "headers"))
        {
            used +=
                snprintf(cmd + used, sizeof(cmd) - (size_t)used, " --header '%s'", h->valuestring);
        }
        snprintf(cmd + used, sizeof(cmd) - (size_t)used, " '%s/%s'", IW_FIXTURES_DIR, reply);
        snprintf(label, sizeof(label), "%s %s (HTTP %d)", target, reply, status);
        char *out;
        cr_assert_eq(run(cmd, &out), 0, "%s: exit status", label);
        cJSON *got = cJSON_Parse(out);
        cr_assert(cJSON_IsObject(got), "%s: not one JSON object: %s", label, out);
        const cJSON *want;
        cJSON_ArrayForEach(want, cJSON_GetObjectItem(c, "expect")) check_key(label, want, got);
        cJSON_Delete(got);
        free(out);
        n++;
    }
    cr_assert_gt(n, 90);
    cJSON_Delete(cases);
}

/* A reply fixture without a case would be a reply nobody checked. */
Test(classify_replies, every_reply_fixture_has_a_case)
{
    static const char *const targets[] = {"centra_soap", "centra_navision", "ebizcharge",
                                          "invoicexpress", "midnight",   "webhook"};
    cJSON *cases = load_cases();
    char *all = cJSON_PrintUnformatted(cases);
    for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
        char dir[512];
        snprintf(dir, sizeof(dir), "%s/%s", IW_FIXTURES_DIR, targets[i]);
        DIR *d = opendir(dir);
        cr_assert_not_null(d, "%s", dir);
        struct dirent *e;
        while ((e = readdir(d))) {
            /* token refresh replies are read by parse_refresh, not classify */
            if (strncmp(e->d_name, "response-", 9) != 0 ||
                strncmp(e->d_name, "response-refresh.", 17) == 0)
                continue;
            char ref[512];
            snprintf(ref, sizeof(ref), "\"%s/%s\"", targets[i], e->d_name);
            cr_expect_not_null(strstr(all, ref), "no case in cases.json for %s", ref);
        }
        closedir(d);
    }
    free(all);
    cJSON_Delete(cases);
}

Test(classify_replies, usage_errors_exit_2)
{
    char cmd[1024], *out;
    snprintf(cmd, sizeof(cmd), "'%s' classify --status 200 /dev/null 2>/dev/null",
             iw_build_path("invoice-worker"));
    cr_assert_eq(run(cmd, &out), 2);
    free(out);
    snprintf(cmd, sizeof(cmd),
             "'%s' classify --target midnight --header 'no colon' /dev/null 2>/dev/null",
             iw_build_path("invoice-worker"));
    cr_assert_eq(run(cmd, &out), 2);
    free(out);
    snprintf(cmd, sizeof(cmd), "'%s' classify --target nope /dev/null 2>/dev/null",
             iw_build_path("invoice-worker"));
    cr_assert_eq(run(cmd, &out), 1);
    free(out);
}

/* The reply can come from stdin, as an operator pastes it. */
Test(classify_replies, reads_stdin)
{
    char cmd[1024], *out;
    snprintf(cmd, sizeof(cmd),
             "printf '\"8da872e1-fbca-4a43-8e49-417c9bd9303a\"' | '%s' classify --target "
             "midnight -",
             iw_build_path("invoice-worker"));
    cr_assert_eq(run(cmd, &out), 0);
    cr_assert(strstr(out, "\"outcome\":\"ok\"") &&
                  strstr(out, "\"target_ref\":\"8da872e1-fbca-4a43-8e49-417c9bd9303a\""),
              "%s", out);
    free(out);
}
