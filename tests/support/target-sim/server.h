/* server.h: the HTTP side: libmicrohttpd with a thread per connection (a delayed or hung
 * request blocks only its own connection), routing to the contracts and the control API. */
#ifndef IW_SIM_SERVER_H
#define IW_SIM_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "sim.h"

/* What the server and the control endpoint share at run time. */
typedef struct iw_sim_runtime {
    const iw_sim_conf *conf; /* settings; borrowed */
    atomic_bool validate;    /* contract checks on; the control endpoint can flip it */
} iw_sim_runtime;

typedef struct iw_sim_server iw_sim_server;

/* Starts listening on conf->listen_host:listen_port. NULL with a reason in errbuf. The
 * runtime must outlive the server. */
iw_sim_server *iw_sim_server_start(iw_sim_runtime *rt, char *errbuf, size_t errlen);

/* The port actually bound (useful with port 0). */
int iw_sim_server_port(const iw_sim_server *s);

/* Stops accepting, wakes sleeping requests, waits for connection threads, frees. NULL ok. */
void iw_sim_server_stop(iw_sim_server *s);

/* A control call (/_sim/...): method, path after "/_sim", query values, body. */
typedef struct iw_sim_control_req {
    const char *method;
    const char *path;   /* "/state", "/faults", ... */
    const char *target; /* ?target= */
    const char *id;     /* ?id= */
    const char *key;    /* ?key= (an event part "<event_id>:<target>") */
    const char *prefix; /* ?prefix= (event parts starting with it) */
    const char *body;
    size_t body_len;
} iw_sim_control_req;

/* Answers a control call with JSON. */
void iw_sim_control_handle(iw_sim_runtime *rt, const iw_sim_control_req *cr, iw_sim_reply *rp);

#endif
