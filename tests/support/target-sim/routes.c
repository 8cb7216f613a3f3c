/* routes.c: the registry's table of routes, and target names. */
#include <string.h>

#include "sim.h"

#define ENTRY(name) &iw_sim_route_##name,

const iw_sim_route *const iw_sim_routes[IW_SIM_N_TARGETS] = {IW_SIM_ROUTES(ENTRY)};

const char *iw_sim_target_name(int t)
{
    return t >= 0 && t < IW_SIM_N_TARGETS ? iw_sim_routes[t]->name : "unknown";
}

int iw_sim_target_find(const char *name)
{
    for (int t = 0; name && t < IW_SIM_N_TARGETS; t++)
        if (strcmp(name, iw_sim_routes[t]->name) == 0)
            return t;
    return -1;
}
