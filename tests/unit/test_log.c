/* Log lines: held lines wait for a flush, a warning or a full buffer, and none is lost. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
