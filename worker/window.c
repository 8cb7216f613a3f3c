/* window.c: one partition's window of unfinished messages: the offset to store never passes an
 * unfinished, dropped or untracked message. */
#include "window.h"

void iw_window_init(iw_window *w)
{
    w->head = w->tail = NULL;
    w->count = 0;
    w->done_upto = -1;
    w->blocked_at = -1;
}

void iw_window_push(iw_window *w, iw_window_entry *e)
{
    e->next = NULL;
    if (w->tail)
        w->tail->next = e;
    else
        w->head = e;
    w->tail = e;
    w->count++;
}

void iw_window_block(iw_window *w, int64_t offset)
{
    if (w->blocked_at < 0 || offset < w->blocked_at)
        w->blocked_at = offset;
}

iw_window_entry *iw_window_pop_finished(iw_window *w)
{
    iw_window_entry *e = w->head;
    if (!e || e->open > 0 || e->dropped)
        return NULL;
    w->head = e->next;
    if (!w->head)
        w->tail = NULL;
    w->count--;
    w->done_upto = e->offset + 1;
    e->next = NULL;
    return e;
}

int64_t iw_window_commit_offset(const iw_window *w)
{
    int64_t off = w->head ? w->head->offset : w->done_upto;
    if (off >= 0 && w->blocked_at >= 0 && off > w->blocked_at)
        off = w->blocked_at;
    return off;
}

iw_window_entry *iw_window_take_all(iw_window *w)
{
    iw_window_entry *all = w->head;
    w->head = w->tail = NULL;
    w->count = 0;
    return all;
}
