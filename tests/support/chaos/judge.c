/* judge.c: the rule that judges one (invoice, target) history, update by update, in the order the
 * target accepted them: newer, a repeat of the newest, or a regression. */
#include "chaos.h"

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
