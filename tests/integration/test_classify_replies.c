/* test_classify_replies.c: every reply case of tests/cases (a case with <config>, <reply> and
 * <outcome>) through `invoice-worker classify`, its printed outcome checked against the case's
 * <outcome> lines, as tests/unit/test_cases.c checks the adapter's classify in process. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "adapters.h"
#include "casefile.h"
#include "docpaths.h"
#include "testproc.h"

#ifndef IW_CASES_DIR
#define IW_CASES_DIR "tests/cases"
#endif

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

/* Runs argv (no shell); returns its exit status (-1 when it did not exit) and its stdout
 * (malloc'd) in *out. */
static int run_argv(char *const argv[], char **out)
{
    iw_proc p;
    cr_assert_eq(iw_proc_start(&p, argv, true), 0, "cannot start %s", argv[0]);
    size_t cap = 1 << 14, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        ssize_t got = read(p.out_fd, buf + n, cap - n - 1);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        if ((n += (size_t)got) + 1 >= cap)
            buf = realloc(buf, cap *= 2);
    }
    buf[n] = '\0';
    int st = iw_proc_wait(&p, 30000);
    *out = buf;
    return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(fwrite(data, 1, len, f), len, "%s", path);
    cr_assert_eq(fclose(f), 0, "%s", path);
}

/* Copies a printed string member into dst; false when it is not a string. */
static bool copy_str(const cJSON *obj, const char *key, char *dst, size_t len)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsString(v))
        return false;
    snprintf(dst, len, "%s", v->valuestring);
    return true;
}

/* Reads classify's printed JSON object back into an outcome; false (and a failure in k) when a
 * member is missing or unknown. */
static bool outcome_of(case_file *k, int line, const char *text, iw_outcome *o)
{
    memset(o, 0, sizeof(*o));
    cJSON *j = cJSON_Parse(text);
    bool ok = cJSON_IsObject(j);
    const cJSON *kind = ok ? cJSON_GetObjectItemCaseSensitive(j, "outcome") : NULL;
    const cJSON *ek = ok ? cJSON_GetObjectItemCaseSensitive(j, "error_kind") : NULL;
    const cJSON *ra = ok ? cJSON_GetObjectItemCaseSensitive(j, "retry_after_ms") : NULL;
    const cJSON *rt = ok ? cJSON_GetObjectItemCaseSensitive(j, "refresh_token") : NULL;
    ok = ok && cJSON_IsString(kind) && cJSON_IsNumber(ra) && cJSON_IsBool(rt) &&
         (cJSON_IsNull(ek) || cJSON_IsString(ek)) &&
         copy_str(j, "code", o->code, sizeof(o->code)) &&
         copy_str(j, "message", o->message, sizeof(o->message)) &&
         copy_str(j, "target_ref", o->target_ref, sizeof(o->target_ref));
    if (ok) {
        o->kind = (iw_outcome_kind)-1;
        for (int i = IW_OUTCOME_OK; i <= IW_OUTCOME_AUTH; i++)
            if (strcmp(case_outcome_name((iw_outcome_kind)i), kind->valuestring) == 0)
                o->kind = (iw_outcome_kind)i;
        o->error_kind = IW_ERR_NONE;
        if (cJSON_IsString(ek)) {
            o->error_kind = (iw_error_kind)-1;
            for (int i = IW_ERR_NONE + 1; i <= IW_ERR_EXHAUSTED; i++)
                if (strcmp(iw_error_kind_str((iw_error_kind)i), ek->valuestring) == 0)
                    o->error_kind = (iw_error_kind)i;
        }
        o->retry_after_ms = (int64_t)ra->valuedouble;
        o->refresh_token = cJSON_IsTrue(rt);
        ok = (int)o->kind >= 0 && (int)o->error_kind >= 0;
    }
    if (!ok)
        case_fail(k, line, "classify printed no outcome it can be read as: %.300s", text);
    cJSON_Delete(j);
    return ok;
}

/* Reports a failure of a case, naming the file and the command it went through. */
static void report(const case_file *k, int line, const char *msg)
{
    cr_expect_fail("%s:%d: %s (invoice-worker classify)", k->file, line, msg);
}

/* Runs one parsed case through classify when it has <config>, <reply> and <outcome>; returns
 * whether it did. Its config and (inline) body are written under tmp. */
static bool classify_case(case_file *k, const char *tmp)
{
    const case_section *cs = case_find(k, "config"), *rs = case_find(k, "reply");
    const case_section *os = case_find(k, "outcome");
    if (!cs || !rs || !os || case_find(k, "config-refused"))
        return false;
    char *tname = NULL, *type = NULL;
    char *json = case_config_text(k, cs, &tname, &type);
    free(type);
    if (!json)
        return true;
    case_reply rp;
    if (case_reply_parse(k, rs, &rp) != 0) {
        free(json);
        free(tname);
        return true;
    }
    char conf_path[512], body_path[512], status[16], now[32];
    snprintf(conf_path, sizeof(conf_path), "%s/config.json", tmp);
    write_file(conf_path, json, strlen(json));
    const char *file = case_attr(rs, "file");
    if (file)
        snprintf(body_path, sizeof(body_path), "%s/%s", IW_FIXTURES_DIR, file);
    else {
        snprintf(body_path, sizeof(body_path), "%s/reply", tmp);
        write_file(body_path, rp.resp.body ? rp.resp.body : "", rp.resp.body_len);
    }
    snprintf(status, sizeof(status), "%ld", rp.resp.status);
    snprintf(now, sizeof(now), "%lld", CASE_NOW_MS);

    char *argv[16 + 2 * 16], *headers[16];
    size_t a = 0;
    argv[a++] = (char *)iw_build_path("invoice-worker");
    argv[a++] = "classify";
    argv[a++] = "-c";
    argv[a++] = conf_path;
    argv[a++] = "--target";
    argv[a++] = tname;
    argv[a++] = "--status";
    argv[a++] = status;
    argv[a++] = "--now-ms";
    argv[a++] = now;
    for (size_t i = 0; i < rp.resp.n_headers; i++) {
        size_t hl = strlen(rp.headers[i].name) + strlen(rp.headers[i].value) + 3;
        headers[i] = malloc(hl);
        snprintf(headers[i], hl, "%s: %s", rp.headers[i].name, rp.headers[i].value);
        argv[a++] = "--header";
        argv[a++] = headers[i];
    }
    argv[a++] = body_path;
    argv[a] = NULL;
    char *out = NULL;
    int rc = run_argv(argv, &out);
    iw_outcome o;
    if (rc != 0)
        case_fail(k, rs->line, "classify exited %d: %.300s", rc, out);
    else if (outcome_of(k, os->line, out, &o))
        case_check_outcome(k, os, &o);
    free(out);
    for (size_t i = 0; i < rp.resp.n_headers; i++)
        free(headers[i]);
    case_reply_clear(&rp);
    free(json);
    free(tname);
    return true;
}

struct classify_walk {
    const char *tmp;
    size_t ran;
};

static void classify_one(case_file *k, int read_rc, void *arg)
{
    struct classify_walk *w = arg;
    if (read_rc == 0 && classify_case(k, w->tmp))
        w->ran++;
}

/* Every reply case of every folder under tests/cases prints the outcome its <outcome> says. */
Test(classify_replies, every_reply_case_prints_its_outcome, .timeout = 600)
{
    char tmp[] = "/tmp/iw-classify-XXXXXX";
    cr_assert_not_null(mkdtemp(tmp));
    struct classify_walk w = {.tmp = tmp};
    size_t n_dirs;
    case_each(NULL, report, classify_one, &w, &n_dirs);
    cr_assert(n_dirs > 0, "no case folders in %s", IW_CASES_DIR);
    char conf_path[600], body_path[600];
    snprintf(conf_path, sizeof(conf_path), "%s/config.json", tmp);
    snprintf(body_path, sizeof(body_path), "%s/reply", tmp);
    unlink(conf_path);
    unlink(body_path);
    cr_expect_eq(rmdir(tmp), 0, "%s: %s", tmp, strerror(errno));
    cr_assert_gt(w.ran, 130, "only %zu reply cases", w.ran);
    cr_log_info("%zu reply cases through classify", w.ran);
}

struct text_list {
    char *all;
    size_t len, cap;
};

static void add_reply_file(case_file *k, int read_rc, void *arg)
{
    struct text_list *l = arg;
    const char *f = read_rc == 0 ? case_attr(case_find(k, "reply"), "file") : NULL;
    if (!f)
        return;
    size_t fl = strlen(f);
    while (l->len + fl + 3 >= l->cap)
        l->all = realloc(l->all, l->cap *= 2);
    l->len += (size_t)snprintf(l->all + l->len, l->cap - l->len, "\n%s\n", f);
}

/* The file= of every <reply> of the cases under tests/cases, each as "\nREL\n" (malloc'd). */
static char *reply_files(void)
{
    struct text_list l = {.all = calloc(1, 1 << 14), .cap = 1 << 14};
    case_each(NULL, NULL, add_reply_file, &l, NULL);
    return l.all;
}

/* A reply fixture without a case would be a reply nobody checked; every built-in adapter has
 * its fixtures under tests/fixtures/TYPE/. */
Test(classify_replies, every_reply_fixture_has_a_case)
{
    char *all = reply_files();
    for (size_t i = 0; i < iw_t_adapter_count(); i++) {
        const char *type = iw_t_adapter(i);
        char dir[512];
        snprintf(dir, sizeof(dir), "%s/%s", IW_FIXTURES_DIR, type);
        size_t n;
        char **names = case_list_dir(dir, "", &n);
        cr_assert_not_null(names, "%s", dir);
        for (size_t e = 0; e < n; e++) {
            /* token refresh replies are read by parse_refresh, not classify */
            if (strncmp(names[e], "response-", 9) != 0 ||
                strncmp(names[e], "response-refresh.", 17) == 0)
                continue;
            char ref[512];
            snprintf(ref, sizeof(ref), "\n%s/%s\n", type, names[e]);
            cr_expect_not_null(strstr(all, ref), "no <reply file=\"%s/%s\"> in tests/cases", type,
                               names[e]);
        }
        case_list_free(names, n);
    }
    free(all);
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
