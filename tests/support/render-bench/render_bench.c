/* render-bench: renders one event for one target instance N times, for instruction counts:
 *   valgrind --tool=callgrind --toggle-collect=render_loop \
 *       build/render-bench CONFIG TARGET EVENT [N]
 * and divide the Ir callgrind reports by N. Without valgrind it prints the wall time per
 * render. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "config.h"
#include "invoice.h"
#include "target.h"

/* Renders ev n times; returns the body bytes of the last render (0 when one failed). Kept out
 * of line so callgrind can collect exactly this function. */
__attribute__((noinline)) size_t render_loop(const iw_target_ops *ops, const iw_event *ev,
                                             const iw_target_conf *tc, long n)
{
    size_t bytes = 0;
    for (long i = 0; i < n; i++) {
        iw_request req;
        char err[256];
        memset(&req, 0, sizeof(req));
        iw_render_ctx ctx = {.state = NULL};
        if (iw_target_render(ops, ev, tc, &ctx, &req, err, sizeof(err)) != 0) {
            fprintf(stderr, "render-bench: %s\n", err);
            return 0;
        }
        bytes = req.body_len;
        iw_request_clear(&req);
    }
    return bytes;
}

int main(int argc, char **argv)
{
    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: render-bench CONFIG TARGET EVENT [N]\n");
        return 2;
    }
    long n = argc == 5 ? strtol(argv[4], NULL, 10) : 1000;
    iw_config *cfg = iw_cli_load_config(argv[1]);
    if (!cfg)
        return 1;
    const iw_target_conf *tc = iw_config_target(cfg, argv[2]);
    const iw_target_ops *ops = tc ? iw_target_find(tc->type) : NULL;
    size_t len;
    char *json = iw_cli_read_file(argv[3], IW_EVENT_MAX_BYTES, &len);
    iw_event *ev = NULL;
    char err[256];
    if (!ops || !json || iw_event_parse(json, len, &ev, err, sizeof(err)) != 0) {
        fprintf(stderr, "render-bench: no target %s, or %s does not parse\n", argv[2], argv[3]);
        return 1;
    }
    /* One render outside render_loop: what an adapter reads once per process (a built-in
     * mapping) is not a per-event cost. */
    {
        iw_request req;
        char warm_err[256];
        memset(&req, 0, sizeof(req));
        iw_render_ctx ctx = {.state = NULL};
        (void)iw_target_render(ops, ev, tc, &ctx, &req, warm_err, sizeof(warm_err));
        iw_request_clear(&req);
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    size_t bytes = render_loop(ops, ev, tc, n);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ns = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / n;
    printf("%s: %ld renders, %zu body bytes, %.0f ns per render\n", argv[2], n, bytes, ns);
    iw_event_free(ev);
    free(json);
    iw_config_free(cfg);
    return bytes ? 0 : 1;
}
