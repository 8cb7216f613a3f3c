/* judge.c: the rule that judges one (invoice, target) history, update by update, in the order the
 * target accepted them: newer, a repeat of the newest, or a regression; and the rules on a
 * group of versions sharing one event_id at a target. */
#include "chaos.h"

#include <string.h>

void ch_judge_init(ch_judge *j)
{
    j->max_version = -1;
    j->max_body = -1;
}

ch_update_kind ch_judge_update(ch_judge *j, long long version, long long body)
{
    ch_update_kind k;
    if ((version >= 0 && version < j->max_version) || (body >= 0 && body < j->max_body))
        k = CH_UPDATE_REGRESSION;
    else if (version == j->max_version)
        k = CH_UPDATE_REPEAT;
    else
        k = CH_UPDATE_NEWER;
    if (version > j->max_version)
        j->max_version = version;
    if (body > j->max_body)
        j->max_body = body;
    return k;
}

bool ch_judge_overlap(double prev_arrival, double prev_applied, double arrival, long long window)
{
    return arrival < prev_applied && arrival < prev_arrival + (double)window;
}

void ch_reuse_group_init(ch_reuse_group *g)
{
    memset(g, 0, sizeof(*g));
    g->last_accepted = g->unnamed = -1;
}

void ch_reuse_group_add(ch_reuse_group *g, long k, bool accepted, uint32_t results,
                        uint16_t statuses)
{
    const uint16_t not_sent = CH_ST_REJECTED | CH_ST_STALE | CH_ST_SUPERSEDED | CH_ST_FAILED;
    g->members++;
    g->rejected += (statuses & CH_ST_REJECTED) != 0;
    if (accepted) {
        g->accepted++;
        g->last_accepted = k;
    } else if (results && !(statuses & not_sent) && g->unnamed < 0) {
        g->unnamed = k;
        g->unnamed_statuses = statuses;
    }
}

int ch_reuse_group_faults(const ch_reuse_group *g)
{
    return (g->accepted > 1 ? CH_REUSE_TWICE : 0) |
           (!g->accepted && g->rejected == g->members ? CH_REUSE_NONE : 0) |
           (g->unnamed >= 0 ? CH_REUSE_UNNAMED : 0);
}
