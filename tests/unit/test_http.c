/* test_http.c: the operator endpoint's listen address parsing and binding. */
#include <criterion/criterion.h>
#include <unistd.h>

#include "http.h"

Test(http, binds_ipv4_and_ipv6_and_refuses_bad_addresses)
{
    char err[256];
    iw_http *h = iw_http_start("127.0.0.1:0", NULL, err, sizeof(err));
    cr_assert_not_null(h, "%s", err);
    cr_assert_gt(iw_http_port(h), 0, "port 0 picks a free port");
    iw_http_stop(h);
    if (access("/proc/net/if_inet6", R_OK) == 0) { /* a kernel with IPv6 */
        h = iw_http_start("[::1]:0", NULL, err, sizeof(err));
        cr_assert_not_null(h, "%s", err);
        cr_assert_gt(iw_http_port(h), 0);
        iw_http_stop(h);
    }
    const char *bad[] = {"8080", "localhost:8080", "127.0.0.1:", "127.0.0.1:99999", "[::1:80",
                         "[::1]8080", "1.2.3.4:x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_null(iw_http_start(bad[i], NULL, err, sizeof(err)), "%s accepted", bad[i]);
        cr_assert(strstr(err, "http.listen") != NULL, "%s", err);
    }
    iw_http_stop(NULL);
}
