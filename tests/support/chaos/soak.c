/* soak.c: the soak's resource samples and its verdict.
 *
 * Criterion (per worker, on the samples taken after the warm-up):
 * - memory: the mean VmRSS of the last three samples may exceed the mean of the first three by
 *   at most rss_limit (0.30 = 30%): caches, connection pools and librdkafka's buffers fill
 *   during the warm-up and then stay flat; a leak keeps climbing.
 * - descriptors: split the samples in thirds; the count "grows steadily" when the thirds' means
 *   rise one after the other and the last exceeds the first by more than FD_SLACK. Sockets come
 *   and go with connection reuse, so single samples are noise; a leak shows in every third. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chaos.h"

#define FD_SLACK 10.0 /* descriptors a pool may legitimately add late in the run */
#define MIN_SAMPLES 6 /* below this after the warm-up there is nothing to judge */

int ch_soak_sample(ch_soak *s, long long t_ms, const int pids[CH_SOAK_WORKERS])
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        long long *t = realloc(s->t_ms, cap * sizeof(*t));
        if (!t)
            return -1;
        s->t_ms = t;
        for (int w = 0; w < CH_SOAK_WORKERS; w++) {
            long *r = realloc(s->rss_kb[w], cap * sizeof(*r));
            if (!r)
                return -1;
            s->rss_kb[w] = r;
            int *f = realloc(s->fds[w], cap * sizeof(*f));
            if (!f)
                return -1;
            s->fds[w] = f;
        }
        s->cap = cap;
    }
    s->t_ms[s->n] = t_ms;
    for (int w = 0; w < CH_SOAK_WORKERS; w++) {
        s->rss_kb[w][s->n] = pids[w] > 0 ? ch_proc_rss_kb(pids[w]) : -1;
        s->fds[w][s->n] = pids[w] > 0 ? ch_proc_fds(pids[w]) : -1;
    }
    s->n++;
    return 0;
}

/* Mean of v[from, to) as doubles (longs or ints through the getter). */
static double mean_rss(const long *v, size_t from, size_t to)
{
    double sum = 0;
    for (size_t i = from; i < to; i++)
        sum += (double)v[i];
    return to > from ? sum / (double)(to - from) : 0;
}

static double mean_fds(const int *v, size_t from, size_t to)
{
    double sum = 0;
    for (size_t i = from; i < to; i++)
        sum += v[i];
    return to > from ? sum / (double)(to - from) : 0;
}

int ch_soak_verdict(const ch_soak *s, long long warmup_ms, double rss_limit)
{
    printf("\n  soak samples (every %s):\n  %8s", "10 s", "t");
    for (int w = 0; w < CH_SOAK_WORKERS; w++)
        printf("  w%d_rss_kb  w%d_fds", w + 1, w + 1);
    printf("\n");
    for (size_t i = 0; i < s->n; i++) {
        printf("  %7.0fs", (double)s->t_ms[i] / 1000.0);
        for (int w = 0; w < CH_SOAK_WORKERS; w++)
            printf("  %9ld  %6d", s->rss_kb[w][i], s->fds[w][i]);
        printf("%s\n", s->t_ms[i] < warmup_ms ? "  (warm-up)" : "");
    }
    size_t first = 0;
    while (first < s->n && s->t_ms[first] < warmup_ms)
        first++;
    size_t post = s->n - first;
    int failed = 0;
    for (int w = 0; w < CH_SOAK_WORKERS; w++) {
        const long *rss = s->rss_kb[w];
        const int *fds = s->fds[w];
        bool unreadable = false;
        for (size_t i = 0; i < s->n; i++)
            unreadable |= rss[i] < 0 || fds[i] < 0;
        if (post < MIN_SAMPLES || unreadable) {
            printf("  w%d: %s: FAIL\n", w + 1,
                   unreadable ? "a sample could not be read (the worker restarted?)"
                              : "too few samples after the warm-up to judge");
            failed++;
            continue;
        }
        double r0 = mean_rss(rss, first, first + 3), r1 = mean_rss(rss, s->n - 3, s->n);
        size_t third = post / 3;
        double f1 = mean_fds(fds, first, first + third);
        double f2 = mean_fds(fds, first + third, first + 2 * third);
        double f3 = mean_fds(fds, first + 2 * third, s->n);
        bool rss_bad = r1 > r0 * (1.0 + rss_limit);
        bool fds_bad = f1 < f2 && f2 < f3 && f3 - f1 > FD_SLACK;
        printf("  w%d: RSS start %ld kB, after warm-up %.0f kB, end %.0f kB (%+.1f%% after "
               "warm-up, limit %+.0f%%); fds start %d, end %d, thirds %.1f / %.1f / %.1f: %s\n",
               w + 1, rss[0], r0, r1, (r1 / r0 - 1.0) * 100.0, rss_limit * 100.0, fds[0],
               fds[s->n - 1], f1, f2, f3, rss_bad || fds_bad ? "FAIL" : "ok");
        failed += rss_bad || fds_bad;
    }
    return failed;
}

void ch_soak_free(ch_soak *s)
{
    free(s->t_ms);
    for (int w = 0; w < CH_SOAK_WORKERS; w++) {
        free(s->rss_kb[w]);
        free(s->fds[w]);
    }
    memset(s, 0, sizeof(*s));
}
