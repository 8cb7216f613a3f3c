/* scenario.c: the named chaos scenarios: which group, which input and which faults each runs. */
#include <string.h>

#include "chaos.h"

const char *const ch_fault_names[CH_N_FAULTS] = {"kill",     "redis", "broker", "breaker",  "http",
                                                 "brownout", "join",  "leave",  "redis-out"};

#define NAVISION (1u << 1) /* ch_target_names[1] */

/* (d) The original run: kills, a Redis restart, a broker outage, a breaker burst and steady HTTP
 * faults over all five targets. */
static const ch_scenario mixed = {
    .name = "default",
    .about = "2 workers, all five targets, 2,000 invoices: kill -9 every 5-10 s, a Redis "
             "restart, a broker outage, a breaker burst, steady HTTP faults",
    .workers = 2,
    .targets = 0,
    .invoices = 2000,
    .events_short = 20000,
    .events_long = 200000,
    .rate = 250,
    .partitions_long = 256, /* the mock keeps 5 MB per partition: room for the backlog */
    .lease_s = 6,
    .request_ms = 2000,
    .faults = CH_FAULT_KILL | CH_FAULT_REDIS | CH_FAULT_BROKER | CH_FAULT_BREAKER | CH_FAULT_HTTP,
    .kill_min_ms = 5000,
    .kill_max_ms = 10000,
};

/* (a) A target brownout while the group changes: partitions move between live workers while
 * calls are retrying. */
static const ch_scenario brownout_join = {
    .name = "brownout-join",
    .about = "3 workers, centra_navision, 60 invoices: the target answers 503 to everything for "
             "10-12 s and a 4th worker joins the group during it",
    .workers = 3,
    .targets = NAVISION,
    .invoices = 60,
    .events_short = 2400,
    .events_long = 14400,
    .rate = 80,
    .lease_s = 60,
    .request_ms = 2000,
    .grace_s = 25, /* the worker's default */
    .faults = CH_FAULT_BROWNOUT | CH_FAULT_JOIN,
    .lat_min_ms = 20,
    .lat_max_ms = 100,
    .episode_ms = 45000,
};

static const ch_scenario brownout_leave = {
    .name = "brownout-leave",
    .about = "3 workers, centra_navision, 60 invoices: the target answers 503 to everything for "
             "10-12 s and one worker leaves by SIGTERM during it",
    .workers = 3,
    .targets = NAVISION,
    .invoices = 60,
    .events_short = 2400,
    .events_long = 14400,
    .rate = 80,
    .lease_s = 60,
    .request_ms = 2000,
    .grace_s = 25, /* the worker's default: a leaving worker keeps its calls this long */
    .faults = CH_FAULT_BROWNOUT | CH_FAULT_LEAVE,
    .lat_min_ms = 20,
    .lat_max_ms = 100,
    .episode_ms = 45000,
};

/* (e) Requests the target applies after the worker gave up on them, while the group changes: a
 * worker that sent the next version as soon as it had given up, or that let its fence go at a
 * revoke or a stop, would be overtaken by the late one. */
static const ch_scenario late_leave = {
    .name = "late-leave",
    .about = "3 workers, centra_navision, 60 invoices: 10% of requests are held past the 2 s "
             "timeout and then applied; the target answers 503 to everything for 10-12 s and "
             "one worker leaves by SIGTERM during it",
    .workers = 3,
    .targets = NAVISION,
    .invoices = 60,
    .events_short = 2400,
    .events_long = 14400,
    .rate = 80,
    .lease_s = 60,
    .request_ms = 2000,
    .grace_s = 25,
    .faults = CH_FAULT_BROWNOUT | CH_FAULT_LEAVE,
    .lat_min_ms = 20,
    .lat_max_ms = 100,
    .held = 0.10,
    .episode_ms = 45000,
};

/* (b) Kills while calls are slow: leases expire under calls in flight. */
static const ch_scenario kill_slow = {
    .name = "kill-slow",
    .about = "3 workers, centra_navision, 60 hot invoices: kill -9 every 3-6 s, replies take "
             "1-3 s, 10-25% of them 503; every invoice ends with a tail",
    .workers = 3,
    .targets = NAVISION,
    .invoices = 60,
    .events_short = 1800,
    .events_long = 18000,
    .rate = 60,
    .lease_s = 10,
    .request_ms = 5000,
    .faults = CH_FAULT_KILL,
    .kill_min_ms = 3000,
    .kill_max_ms = 6000,
    .lat_min_ms = 1000,
    .lat_max_ms = 3000,
    .err_min = 0.10,
    .err_max = 0.25,
    .tails = 60, /* while a version is in flight for 1-3 s, the three after it wait */
};

/* (c) Redis out for longer than the lease, with calls in flight. */
static const ch_scenario redis_down = {
    .name = "redis-down",
    .about = "3 workers, centra_navision, 60 invoices, lease 5 s, 15% late older versions: Redis "
             "stopped (SIGSTOP) for 10 s, later killed and restarted after 10 s; replies take "
             "0.2-1.5 s, 5% 503",
    .workers = 3,
    .targets = NAVISION,
    .invoices = 60,
    .events_short = 2400,
    .events_long = 14400,
    .rate = 60,
    .lease_s = 5,
    .request_ms = 2000,
    .faults = CH_FAULT_REDIS_OUT,
    .lat_min_ms = 200,
    .lat_max_ms = 1500,
    .err_min = 0.05,
    .err_max = 0.05,
    .late = 0.15, /* more older versions arriving around the outages */
    .episode_ms = 30000,
};

const ch_scenario *const ch_scenarios[] = {
    &mixed, &brownout_join, &brownout_leave, &kill_slow, &redis_down, &late_leave, NULL};

const ch_scenario *ch_scenario_find(const char *name)
{
    for (size_t i = 0; ch_scenarios[i]; i++)
        if (strcmp(ch_scenarios[i]->name, name) == 0)
            return ch_scenarios[i];
    return NULL;
}
