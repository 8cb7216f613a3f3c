/* test_chaos.c: the quick form of the chaos run (build/chaos --quick: 6,000 events, two workers,
 * kill -9 every 5-10 s, a Redis restart, a broker outage, a breaker burst, HTTP faults) must
 * lose nothing, never let a target accept an older version after a newer one, leave every
 * invoice at its highest version (by header and by body), report `succeeded` only for what the
 * target accepted and dead-letter every poison event. The other scenarios' short forms are
 * registered in tests/CMakeLists.txt (chaos_*). */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "docpaths.h"
#include "testproc.h"

/* The figure printed after `label` on the summary line that starts with it, or -1. */
static long figure(const char *text, const char *label)
{
    const char *p = strstr(text, label);
    if (!p)
        return -1;
    p += strlen(label);
    while (*p == ' ')
        p++;
    char *end;
    long v = strtol(p, &end, 10);
    return end == p ? -1 : v;
}

Test(chaos, quick_form_keeps_the_guarantees, .timeout = 600)
{
    char log[] = "/tmp/iw-chaos-XXXXXX";
    int fd = mkstemp(log);
    cr_assert_geq(fd, 0);
    close(fd);
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "'%s' --quick > '%s' 2>&1", iw_build_path("chaos"), log);
    int st = system(cmd);
    char *out = iw_read_file(log, NULL);
    cr_assert_not_null(out, "no output from %s", cmd);
    const char *sum = strstr(out, "== chaos summary");
    fprintf(stderr, "%s\n", sum ? sum : out); /* the figures, for the ctest log */
    cr_assert_not_null(sum, "the run printed no summary (exit status %d)", st);
    cr_expect_eq(figure(sum, "\nlost"), 0, "no (event, target) pair without a result");
    cr_expect_eq(figure(sum, "\nregressions"), 0, "no older version accepted after a newer one");
    cr_expect_eq(figure(sum, "\nfinal-state mismatches"), 0,
                 "every invoice at its highest version (or, where versions share an event_id, "
                 "at one of them), by header and by body");
    cr_expect_eq(figure(sum, "\nsucceeded never received"), 0,
                 "no `succeeded` for a pair the target never accepted");
    cr_expect_geq(figure(sum, "\nrepeats"), 0, "repeats are reported");
    cr_expect_eq(figure(sum, "\npoison not dead-lettered"), 0, "every poison event dead-lettered");
    cr_expect_eq(figure(sum, "\noverlapping calls"), 0,
                 "one call per (invoice, target) in flight at a time, across the workers");
    cr_expect_eq(figure(sum, "\nevent_id applied twice"), 0,
                 "no event_id accepted at two versions by one target");
    cr_expect_eq(figure(sum, "\nreuse misjudged"), 0,
                 "of the versions sharing an event_id at a target, one sent and the others named");
    cr_expect_gt(figure(sum, "\nreused event_ids"), 0,
                 "some events reused an earlier version's event_id at a target");
    cr_expect_gt(figure(sum, "under an earlier version's event_id ("), 0,
                 "some versions reused an event_id right after another of the invoice did");
    cr_expect_gt(figure(sum, "\nfaults"), 0, "workers were killed during the run");
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "chaos exit status %d (log %s)", st, log);
    free(out);
    unlink(log);
}
