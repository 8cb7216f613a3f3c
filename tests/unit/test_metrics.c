/* test_metrics.c: the registry's typed handles: resolved once, of the declared type only. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

static iw_metrics *declared(void)
{
    iw_metrics *m = iw_metrics_new();
    cr_assert_not_null(m);
    cr_assert_eq(iw_metrics_declare(m, "t_total", IW_COUNTER, "a counter"), 0);
    cr_assert_eq(iw_metrics_declare(m, "t_level", IW_GAUGE, "a gauge"), 0);
    cr_assert_eq(iw_metrics_declare(m, "t_seconds", IW_HISTOGRAM, "a histogram"), 0);
    return m;
}

Test(metrics, handles_of_the_declared_type_update_their_series)
{
    iw_metrics *m = declared();
    iw_counter *c = iw_metrics_counter(m, "t_total", "target=\"a\"");
    iw_gauge *g = iw_metrics_gauge(m, "t_level", "");
    iw_histogram *h = iw_metrics_histogram(m, "t_seconds", "target=\"a\"");
    cr_assert(c && g && h);
    iw_counter_add(c, 2);
    iw_counter_add(c, 3);
    iw_gauge_set(g, 7);
    iw_gauge_set(g, 4);
    iw_histogram_observe(h, 0.02);
    cr_assert_eq(iw_metrics_get(m, "t_total", "target=\"a\""), 5);
    cr_assert_eq(iw_metrics_get(m, "t_level", ""), 4);
    cr_assert_eq(iw_metrics_counter(m, "t_total", "target=\"a\""), c, "one series per label set");
    char *text = iw_metrics_render(m);
    cr_assert_not_null(text);
    cr_assert(strstr(text, "t_seconds_count{target=\"a\"} 1"), "%s", text);
    cr_assert(strstr(text, "# TYPE t_total counter"), "%s", text);
    free(text);
    iw_metrics_free(m);
}

Test(metrics, misspelt_or_mistyped_names_get_no_handle)
{
    iw_metrics *m = declared();
    cr_assert_null(iw_metrics_counter(m, "t_totl", ""), "a misspelt name must not resolve");
    cr_assert_null(iw_metrics_counter(m, "t_level", ""), "a gauge is not a counter");
    cr_assert_null(iw_metrics_gauge(m, "t_total", ""), "a counter is not a gauge");
    cr_assert_null(iw_metrics_histogram(m, "t_total", ""));
    char *text = iw_metrics_render(m);
    cr_assert_null(strstr(text, "\nt_level"), "a refused handle created a series: %s", text);
    cr_assert_null(strstr(text, "\nt_total"), "a refused handle created a series: %s", text);
    free(text);
    /* NULL handles are no-ops, so a caller that checked at start-up never crashes later */
    iw_counter_add(NULL, 1);
    iw_gauge_set(NULL, 1);
    iw_histogram_observe(NULL, 1);
    iw_metrics_free(m);
}
