/* Log lines: held lines wait for a flush, a warning or a full buffer, and none is lost. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "log.h"

static int saved_stderr = -1;
static FILE *sink;

/* stderr goes to a temporary file the test reads back. */
static void capture(void)
{
    sink = tmpfile();
    cr_assert_not_null(sink);
    fflush(stderr);
    saved_stderr = dup(STDERR_FILENO);
    cr_assert_geq(dup2(fileno(sink), STDERR_FILENO), 0);
}

static void restore(void)
{
    iw_log_hold(0);
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    fclose(sink);
}

/* Everything written so far (malloc'd). */
static char *written(void)
{
    long n = lseek(fileno(sink), 0, SEEK_END);
    char *s = calloc(1, (size_t)n + 1);
    cr_assert_eq(pread(fileno(sink), s, (size_t)n, 0), n);
    return s;
}

static size_t count(const char *s, const char *needle)
{
    size_t n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

TestSuite(log, .init = capture, .fini = restore);

Test(log, a_line_not_held_is_written_at_once)
{
    iw_log(IW_LOG_INFO, "plain", "k", "v", NULL);
    char *s = written();
    cr_assert(strstr(s, "\"msg\":\"plain\",\"k\":\"v\"}\n"), "got: %s", s);
    free(s);
}

Test(log, held_lines_wait_for_the_flush_and_keep_their_order)
{
    iw_log_hold(1);
    iw_log(IW_LOG_INFO, "one", NULL);
    iw_log(IW_LOG_INFO, "two", NULL);
    char *s = written();
    cr_assert_str_empty(s, "held lines are not written yet: %s", s);
    free(s);
    iw_log_flush();
    s = written();
    char *one = strstr(s, "\"one\""), *two = strstr(s, "\"two\"");
    cr_assert(one && two && one < two, "both, in order: %s", s);
    cr_assert_eq(count(s, "\n"), 2);
    free(s);
}

Test(log, a_warning_takes_the_held_lines_with_it)
{
    iw_log_hold(1);
    iw_log(IW_LOG_INFO, "before", NULL);
    iw_log(IW_LOG_WARN, "trouble", NULL);
    char *s = written();
    char *b = strstr(s, "\"before\""), *t = strstr(s, "\"trouble\"");
    cr_assert(b && t && b < t, "a warning is never held: %s", s);
    free(s);
}

Test(log, a_full_buffer_goes_out_in_whole_lines_and_nothing_is_lost)
{
    iw_log_hold(1);
    char field[200];
    memset(field, 'x', sizeof(field) - 1);
    field[sizeof(field) - 1] = '\0';
    for (int i = 0; i < 100; i++) {
        char n[16];
        snprintf(n, sizeof(n), "%d", i);
        iw_log(IW_LOG_INFO, "line", "n", n, "pad", field, NULL);
    }
    char *s = written();
    size_t before = count(s, "\n");
    cr_assert_gt(before, 0, "a full buffer was written before the flush");
    cr_assert_lt(before, 100, "the last lines are still held");
    cr_assert_eq(s[strlen(s) - 1], '\n', "only whole lines are written");
    free(s);
    iw_log_hold(0);
    s = written();
    cr_assert_eq(count(s, "\n"), 100);
    for (int i = 0; i < 100; i++) {
        char n[32];
        snprintf(n, sizeof(n), "\"n\":\"%d\"", i);
        cr_assert_eq(count(s, n), 1, "line %d once", i);
    }
    free(s);
}

/* True when s is valid UTF-8 (no character cut in two). */
static bool utf8_valid(const unsigned char *s)
{
    while (*s) {
        size_t n = *s < 0x80 ? 1 : (*s & 0xe0) == 0xc0 ? 2 : (*s & 0xf0) == 0xe0 ? 3 : 4;
        for (size_t i = 1; i < n; i++)
            if ((s[i] & 0xc0) != 0x80)
                return false;
        s += n;
    }
    return true;
}

/* A line longer than one write takes (values of event text, 1,024 quotes or 3-byte characters
 * each) is still one JSON object: every key is there, the long values are cut to a fair share
 * with "...", no escape or character is cut in two, and a short value is whole. */
Test(log, a_line_too_long_for_one_write_stays_one_json_object)
{
    char quotes[1025], wide[3 * 700 + 1], plain[3000];
    memset(quotes, '"', 1024);
    quotes[1024] = '\0';
    for (int i = 0; i < 700; i++)
        memcpy(wide + 3 * i, "\xe2\x82\xac", 3); /* U+20AC */
    wide[3 * 700] = '\0';
    memset(plain, 'p', sizeof(plain) - 1);
    plain[sizeof(plain) - 1] = '\0';
    iw_log(IW_LOG_WARN, "result", "invoice_id", quotes, "target", quotes, "note", wide, "plain",
           plain, "status", "failed", "error", "HTTP 500", NULL);
    char *s = written();
    size_t n = strlen(s);
    cr_assert_leq(n, 4096, "one write: %zu bytes", n);
    cr_assert_eq(count(s, "\n"), 1);
    cr_assert(utf8_valid((const unsigned char *)s), "no character cut: %s", s);
    cJSON *j = cJSON_Parse(s);
    cr_assert_not_null(j, "one JSON object: %s", s);
    static const char *const keys[] = {"ts",   "level", "msg",    "invoice_id", "target",
                                       "note", "plain", "status", "error"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        cr_assert(cJSON_IsString(cJSON_GetObjectItem(j, keys[i])), "%s is there", keys[i]);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "status")->valuestring, "failed");
    cr_assert_str_eq(cJSON_GetObjectItem(j, "error")->valuestring, "HTTP 500");
    const char *q = cJSON_GetObjectItem(j, "invoice_id")->valuestring;
    size_t ql = strlen(q);
    cr_assert(ql > 300 && strcmp(q + ql - 3, "...") == 0, "cut with ...: %zu bytes", ql);
    for (size_t i = 0; i + 3 < ql; i++)
        cr_assert_eq(q[i], '"');
    const char *p = cJSON_GetObjectItem(j, "plain")->valuestring;
    cr_assert(strlen(p) > 300 && strlen(p) < sizeof(plain) - 1, "the longest value gave way");
    cJSON_Delete(j);
    free(s);
}

/* Every byte a value may hold (1 to 255: controls, quotes, backslashes, UTF-8 and bytes that are
 * not) comes back from the line as it was, read by a JSON parser of its own; so do values that
 * are only special bytes, or have them at either end. */
Test(log, every_byte_of_a_value_comes_back_from_the_line_as_it_was)
{
    char all[256], ends[] = "\"x\\", only[] = "\n\t\x01\"\\\x1f";
    for (int i = 1; i < 256; i++)
        all[i - 1] = (char)i;
    all[255] = '\0';
    iw_log(IW_LOG_WARN, "m\"s\ng\x7f", "all", all, "ends", ends, "only", only, "empty", "", NULL);
    char *s = written();
    cr_assert_eq(count(s, "\n"), 1, "one line: %s", s);
    cJSON *j = cJSON_Parse(s);
    cr_assert_not_null(j, "one JSON object: %s", s);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "msg")->valuestring, "m\"s\ng\x7f");
    cr_assert_str_eq(cJSON_GetObjectItem(j, "all")->valuestring, all);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "ends")->valuestring, ends);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "only")->valuestring, only);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "empty")->valuestring, "");
    cr_assert(strstr(s, "\\u0001") && strstr(s, "\\u001f") && strstr(s, "\\n") &&
                  strstr(s, "\\u0009"),
              "controls escaped: %s", s);
    cJSON_Delete(j);
    free(s);
}
