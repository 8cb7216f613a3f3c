/* lagprobe.h: where input partitions start and end, asked of the brokers off the loop.
 *
 * The loop knows a partition's backlog from the messages it took (the offset it stored, the
 * oldest in its window) and the high watermark librdkafka keeps from its fetches. A partition
 * it took nothing from yet (consumption paused since the assignment, while Redis is down or the
 * pipeline full) has neither: its backlog starts at the group's committed offset and ends at the
 * high watermark, which only the brokers know. Asking them blocks (rd_kafka_committed,
 * rd_kafka_query_watermark_offsets), so a thread of its own asks, on a Kafka client of its own
 * (never joining the group), and the loop takes the last answer when it updates its gauges.
 *
 * librdkafka 2.0 (Debian bookworm) does not bound rd_kafka_query_watermark_offsets by its
 * timeout (librdkafka #2588, fixed in 2.3): with the brokers gone it waits until they are back.
 * So the thread is never waited for without bound: on free it gets PROBE_JOIN_MS to end, and
 * if it is still inside librdkafka it is left behind, with its client, for the process exit. */
#ifndef IW_LAGPROBE_H
#define IW_LAGPROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

typedef struct iw_lagprobe iw_lagprobe;

/* What the brokers said of one partition. */
typedef struct iw_lagprobe_answer {
    int32_t partition;
    int64_t from; /* the group's committed offset, or the low watermark when the group has none
                   * (the worker reads from the earliest); -1 when the brokers did not say */
    int64_t end;  /* the high watermark, -1 when the brokers did not say */
} iw_lagprobe_answer;

/* Starts the thread and its client, made from conf (taken, also on failure: the worker's
 * consumer settings, group.id included) for the input topic. NULL with a reason in errbuf. */
iw_lagprobe *iw_lagprobe_new(rd_kafka_conf_t *conf, const char *topic, char *errbuf, size_t errlen);

/* Asks about these partitions, tagged (the caller's assignment generation, say). A question
 * asked before the thread took up the last one replaces it. */
void iw_lagprobe_ask(iw_lagprobe *lp, const int32_t *partitions, size_t n, uint64_t tag);

/* Takes the answer when one is ready (malloc'd, *n entries, the question's *tag; the caller
 * frees it); NULL when there is none. */
iw_lagprobe_answer *iw_lagprobe_take(iw_lagprobe *lp, size_t *n, uint64_t *tag);

/* Stops the thread and frees, or, when the thread is still waiting on the brokers after
 * PROBE_JOIN_MS, leaves it behind (it then touches nothing of the caller's). False then. */
bool iw_lagprobe_free(iw_lagprobe *lp);

#endif
