/* lagprobe.h: where input partitions start and end, asked of the brokers off the loop.
 *
 * The loop knows a partition's backlog from the messages it took (the offset it stored, the
 * oldest in its window) and the high watermark librdkafka keeps from its fetches. A partition
 * it took nothing from yet (consumption paused since the assignment, while Redis is down or the
 * pipeline full) has neither: its backlog starts at the group's committed offset and ends at the
 * high watermark, which only the brokers know. Asking them blocks (rd_kafka_committed,
 * rd_kafka_query_watermark_offsets), so one thread of its own asks, and the loop takes the
 * answer when it is there, woken through a pipe. */
#ifndef IW_LAGPROBE_H
#define IW_LAGPROBE_H

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

/* Starts the thread for consumer rk (which it never outlives: free it first) and its input
 * topic; a byte goes to wake_fd when an answer is ready. NULL when out of resources. */
iw_lagprobe *iw_lagprobe_new(rd_kafka_t *rk, const char *topic, int wake_fd);

/* Asks about these partitions, tagged (the caller's assignment generation, say). A question
 * asked before the thread took up the last one replaces it. */
void iw_lagprobe_ask(iw_lagprobe *lp, const int32_t *partitions, size_t n, uint64_t tag);

/* Takes the answer when one is ready (malloc'd, *n entries, the question's *tag; the caller
 * frees it); NULL when there is none. */
iw_lagprobe_answer *iw_lagprobe_take(iw_lagprobe *lp, size_t *n, uint64_t *tag);

/* Stops the thread (waiting at most for the broker calls on their way, each bounded) and frees. */
void iw_lagprobe_free(iw_lagprobe *lp);

#endif
