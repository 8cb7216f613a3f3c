/* test_window.c: a partition's window never lets the stored offset pass an unfinished,
 * dropped or untracked message. */
#include <criterion/criterion.h>

#include "window.h"

#define N 8

static iw_window w;
static iw_window_entry e[N];

/* Pushes entries for offsets base, base+1, ... with `open` jobs each. */
static void fill(int64_t base, size_t n, size_t open)
{
    iw_window_init(&w);
    for (size_t i = 0; i < n; i++) {
        e[i] = (iw_window_entry){.offset = base + (int64_t)i, .open = open};
        iw_window_push(&w, &e[i]);
    }
}

/* Pops every finished entry from the head; returns how many. */
static size_t pop_all(void)
{
    size_t n = 0;
    while (iw_window_pop_finished(&w))
        n++;
    return n;
}

Test(window, empty_stores_nothing)
{
    iw_window_init(&w);
    cr_assert_eq(iw_window_commit_offset(&w), -1);
    cr_assert_null(iw_window_pop_finished(&w));
}

Test(window, unfinished_head_holds_the_offset)
{
    fill(100, 4, 1);
    cr_assert_eq(iw_window_commit_offset(&w), 100, "resume at the oldest unfinished");
    e[1].open = 0;
    e[2].open = 0;
    cr_assert_eq(pop_all(), 0, "finished messages behind an unfinished one stay");
    cr_assert_eq(iw_window_commit_offset(&w), 100);
    e[0].open = 0;
    cr_assert_eq(pop_all(), 3);
    cr_assert_eq(iw_window_commit_offset(&w), 103, "now the fourth is the oldest unfinished");
    cr_assert_eq(w.count, 1);
}

Test(window, all_finished_stores_past_the_last)
{
    fill(7, 3, 0);
    cr_assert_eq(pop_all(), 3);
    cr_assert_eq(iw_window_commit_offset(&w), 10);
    cr_assert_eq(w.count, 0);
}

Test(window, dropped_entry_is_never_passed)
{
    /* an abandoned job (revoke, stop, allocation failure) leaves open 0 but dropped */
    fill(50, 3, 0);
    e[1].dropped = true;
    cr_assert_eq(pop_all(), 1, "only the entry before the dropped one goes");
    cr_assert_eq(iw_window_commit_offset(&w), 51);
    cr_assert_eq(pop_all(), 0, "still stuck at the dropped one");
    cr_assert_eq(iw_window_commit_offset(&w), 51);
}

Test(window, a_message_that_could_not_be_taken_blocks_the_offset)
{
    /* offset 21 was consumed but never tracked (out of memory): 20 and 22 finish */
    iw_window_init(&w);
    e[0] = (iw_window_entry){.offset = 20};
    iw_window_push(&w, &e[0]);
    iw_window_block(&w, 21);
    e[1] = (iw_window_entry){.offset = 22};
    iw_window_push(&w, &e[1]);
    cr_assert_eq(pop_all(), 2);
    cr_assert_eq(iw_window_commit_offset(&w), 21, "the stored offset passed a lost message");
    iw_window_block(&w, 25);
    cr_assert_eq(iw_window_commit_offset(&w), 21, "a later block must not lift an earlier one");
}

Test(window, block_before_anything_finished_stores_nothing)
{
    iw_window_init(&w);
    iw_window_block(&w, 5);
    cr_assert_eq(iw_window_commit_offset(&w), -1);
}

Test(window, take_all_empties_and_keeps_order)
{
    fill(0, 5, 1);
    iw_window_entry *all = iw_window_take_all(&w);
    cr_assert_eq(w.count, 0);
    cr_assert_null(w.head);
    int64_t expect = 0;
    for (iw_window_entry *x = all; x; x = x->next)
        cr_assert_eq(x->offset, expect++);
    cr_assert_eq(expect, 5);
    cr_assert_eq(iw_window_commit_offset(&w), -1, "nothing finished: nothing to store");
}

Test(window, finishing_out_of_order_advances_only_from_the_head)
{
    fill(0, N, 1);
    /* finish in the order 7, 5, 3, 1, 0, 2, 4, 6: the offset moves only when the head does */
    static const int order[N] = {7, 5, 3, 1, 0, 2, 4, 6};
    static const int64_t after[N] = {0, 0, 0, 0, 2, 4, 6, 8};
    for (int i = 0; i < N; i++) {
        e[order[i]].open = 0;
        pop_all();
        cr_assert_eq(iw_window_commit_offset(&w), after[i], "step %d", i);
    }
}
