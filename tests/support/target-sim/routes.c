/* routes.c: the registry's table of routes, target names, and a check of the descriptors. */
#include <stdio.h>
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

int iw_sim_routes_check(char *errbuf, size_t errlen)
{
#define NAME(name) #name,
    static const char *const names[IW_SIM_N_TARGETS] = {IW_SIM_ROUTES(NAME)};
#undef NAME
    for (int t = 0; t < IW_SIM_N_TARGETS; t++) {
        const iw_sim_route *r = iw_sim_routes[t];
        const char *why = NULL;
        if (!r->name || strcmp(r->name, names[t]) != 0)
            why = "its name is not the one in routes.h";
        else if (!r->about || !r->content_type || !r->auth_failure || !r->server_fault ||
                 !r->refusal)
            why = "about, content_type, auth_failure, server_fault and refusal are required";
        else if (!r->paths[0].handle)
            why = "it has no path";
        for (int i = 0; !why && i < IW_SIM_MAX_PATHS && r->paths[i].handle; i++)
            if (!r->paths[i].method || (!r->paths[i].suffix && !r->paths[i].match))
                why = "each path needs a method and a suffix or a matcher";
        if (why) {
            snprintf(errbuf, errlen, "route iw_sim_route_%s: %s", names[t], why);
            return -1;
        }
    }
    return 0;
}
