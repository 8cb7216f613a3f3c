/* window.h: one input partition's window of unfinished messages and the offset that may be
 * stored for it. Pure bookkeeping, no Kafka: the pipeline embeds an entry in each message. */
#ifndef IW_WINDOW_H
#define IW_WINDOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One consumed message in its partition's window (embedded by the owner, who frees it). */
typedef struct iw_window_entry {
    struct iw_window_entry *next; /* next in offset order (or in a list the owner keeps) */
    int64_t offset;               /* the message's offset */
    size_t open;                  /* jobs of the message not yet terminal */
    bool dropped;                 /* it will never finish here (abandoned, or could not be
                                   * set up): the window never passes it */
} iw_window_entry;

/* The window: messages in offset order, from the oldest unfinished one. */
typedef struct iw_window {
    iw_window_entry *head, *tail;
    size_t count;       /* entries in the window */
    int64_t done_upto;  /* offset just past the last finished entry popped, -1 none */
    int64_t blocked_at; /* lowest offset that was consumed but could not be taken, -1 none */
} iw_window;

/* An empty window. */
void iw_window_init(iw_window *w);

/* Appends e (its offset above every entry's; open and dropped set by the caller). */
void iw_window_push(iw_window *w, iw_window_entry *e);

/* Records that the message at offset was consumed but could not even be tracked (out of
 * memory): no stored offset may pass it. */
void iw_window_block(iw_window *w, int64_t offset);

/* Pops the oldest entry when it is finished (open == 0, not dropped) and returns it for the
 * owner to free; NULL when the oldest entry is unfinished or the window is empty. */
iw_window_entry *iw_window_pop_finished(iw_window *w);

/* The offset the consumer may resume from: the oldest unfinished entry's, else just past the
 * last finished one, never past a blocked offset; -1 when there is nothing to store. */
int64_t iw_window_commit_offset(const iw_window *w);

/* Empties the window (revoke) and returns its entries, linked in offset order. */
iw_window_entry *iw_window_take_all(iw_window *w);

#endif
