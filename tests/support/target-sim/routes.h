/* routes.h: the registry of simulated APIs, one line each. X(NAME) names the descriptor
 * `const iw_sim_route iw_sim_route_NAME` that the API's own route file defines (sim.h);
 * NAME is the target type name used in the config, in ?target= and in fault specs. The order
 * is the listing order (GET /_sim/state, /_sim/stats, --help) and gives each target its id.
 * Adding an API to the simulator is its route file and one line here: CMake picks the file up
 * by itself. This header needs nothing else, so tests may include it for the names. */
#ifndef IW_SIM_ROUTES_H
#define IW_SIM_ROUTES_H

/* clang-format off */
#define IW_SIM_ROUTES(X)                                                                           \
    X(centra_soap)                                                                                 \
    X(centra_navision)                                                                             \
    X(midnight)                                                                                    \
    X(ebizcharge)                                                                                  \
    X(invoicexpress)                                                                               \
    X(webhook)
/* clang-format on */

#endif
