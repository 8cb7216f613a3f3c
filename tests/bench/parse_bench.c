/* parse_bench.c: parses and frees event files in a loop, for instruction counts per parse.
 *
 *   valgrind --tool=callgrind --toggle-collect=bench_one build/parse_bench -n 1000 \
 *       tests/fixtures/events/complete.json
 *
 * counts only parse + free; divide the total by the number of parses printed at the end. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docpaths.h" /* iw_read_file */
#include "invoice.h"

/* One parse and free; the function callgrind collects (noinline so it stays a symbol). */
__attribute__((noinline)) int bench_one(const char *json, size_t len)
{
    iw_event *ev = NULL;
    char err[256];
    int rc = iw_event_parse(json, len, &ev, err, sizeof err);
    iw_event_free(ev);
    return rc;
}

int main(int argc, char **argv)
{
    long iterations = 1000;
    int first = 1;
    if (argc > 2 && strcmp(argv[1], "-n") == 0) {
        iterations = strtol(argv[2], NULL, 10);
        first = 3;
    }
    if (first >= argc || iterations < 1) {
        fprintf(stderr, "usage: parse_bench [-n ITERATIONS] EVENT.json...\n");
        return 2;
    }
    long parses = 0;
    for (int a = first; a < argc; a++) {
        size_t len = 0;
        char *json = iw_read_file(argv[a], &len);
        if (!json) {
            fprintf(stderr, "parse_bench: cannot read %s\n", argv[a]);
            return 1;
        }
        char err[256] = "";
        iw_event *ev = NULL;
        if (iw_event_parse(json, len, &ev, err, sizeof err) != 0)
            fprintf(stderr, "parse_bench: %s is refused (%s); timing the refusal\n", argv[a], err);
        iw_event_free(ev);
        for (long i = 0; i < iterations; i++)
            bench_one(json, len);
        parses += iterations;
        free(json);
    }
    printf("%ld parses\n", parses);
    return 0;
}
