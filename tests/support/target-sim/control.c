/* control.c: the /_sim/ API that tests and scripts use to inspect state and inject faults. */
#include <stdio.h>
#include <string.h>

#include "contract.h"
#include "faults.h"
#include "server.h"
#include "state.h"

static void reply_error(iw_sim_reply *rp, int status, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", msg);
    iw_sim_reply_json(rp, status, o);
    cJSON_Delete(o);
}

static void reply_ok(iw_sim_reply *rp)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "ok", 1);
    iw_sim_reply_json(rp, 200, o);
    cJSON_Delete(o);
}

static void reply_doc(iw_sim_reply *rp, cJSON *doc)
{
    iw_sim_reply_json(rp, 200, doc);
    cJSON_Delete(doc);
}

/* Parses the body as JSON; NULL (rp set to 400) when it is not. An empty body is {}. */
static cJSON *body_json(const iw_sim_control_req *cr, iw_sim_reply *rp)
{
    cJSON *j = cr->body_len ? cJSON_ParseWithLength(cr->body, cr->body_len) : cJSON_CreateObject();
    if (!j)
        reply_error(rp, 400, "the body is not JSON");
    return j;
}

/* Restores the start state: no invoices, calls or counts; the config's faults only. */
static void reset(const iw_sim_runtime *rt)
{
    char err[256];
    iw_sim_state_reset();
    iw_sim_midnight_reset();
    iw_sim_faults_clear(-1);
    if (rt->conf->faults)
        iw_sim_faults_add(rt->conf->faults, err, sizeof(err));
}

static void post_faults(const iw_sim_control_req *cr, iw_sim_reply *rp)
{
    cJSON *j = body_json(cr, rp);
    if (!j)
        return;
    char err[256];
    if (iw_sim_faults_add(j, err, sizeof(err)) != 0)
        reply_error(rp, 400, err);
    else
        reply_doc(rp, iw_sim_faults_json());
    cJSON_Delete(j);
}

static void post_settle(const iw_sim_control_req *cr, iw_sim_reply *rp)
{
    cJSON *j = body_json(cr, rp);
    if (!j)
        return;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
    const cJSON *tj = cJSON_GetObjectItemCaseSensitive(j, "target");
    int t = cJSON_IsString(tj) ? iw_sim_target_find(tj->valuestring) : IW_SIM_ID(invoicexpress);
    if (!cJSON_IsString(id) || !*id->valuestring || t < 0) {
        reply_error(rp, 400, "settle: {\"id\": \"...\"} (and an optional known \"target\")");
    } else {
        iw_sim_state_settle(t, id->valuestring);
        reply_ok(rp);
    }
    cJSON_Delete(j);
}

static void post_validate(iw_sim_runtime *rt, const iw_sim_control_req *cr, iw_sim_reply *rp)
{
    cJSON *j = body_json(cr, rp);
    if (!j)
        return;
    const cJSON *on = cJSON_GetObjectItemCaseSensitive(j, "on");
    if (!cJSON_IsBool(on)) {
        reply_error(rp, 400, "validate: {\"on\": true|false}");
    } else {
        atomic_store(&rt->validate, cJSON_IsTrue(on));
        reply_ok(rp);
    }
    cJSON_Delete(j);
}

void iw_sim_control_handle(iw_sim_runtime *rt, const iw_sim_control_req *cr, iw_sim_reply *rp)
{
    bool get = strcmp(cr->method, "GET") == 0, post = strcmp(cr->method, "POST") == 0;
    const char *p = cr->path;
    int t = -1;
    if (cr->target && (t = iw_sim_target_find(cr->target)) < 0) {
        reply_error(rp, 400, "unknown target");
        return;
    }
    if (get && strcmp(p, "/state") == 0) {
        cJSON *doc = iw_sim_state_json(t, cr->id);
        cJSON_AddBoolToObject(doc, "validate", atomic_load(&rt->validate));
        reply_doc(rp, doc);
    } else if (get && strcmp(p, "/calls") == 0) {
        reply_doc(rp, iw_sim_calls_json(cr->key, cr->prefix));
    } else if (get && strcmp(p, "/stats") == 0) {
        reply_doc(rp, iw_sim_stats_json());
    } else if (get && strcmp(p, "/faults") == 0) {
        reply_doc(rp, iw_sim_faults_json());
    } else if (get && strcmp(p, "/health") == 0) {
        reply_ok(rp);
    } else if (post && strcmp(p, "/faults") == 0) {
        post_faults(cr, rp);
    } else if (post && strcmp(p, "/reset") == 0) {
        reset(rt);
        reply_ok(rp);
    } else if (post && strcmp(p, "/settle") == 0) {
        post_settle(cr, rp);
    } else if (post && strcmp(p, "/expire-token") == 0) {
        iw_sim_token_expire();
        reply_ok(rp);
    } else if (post && strcmp(p, "/validate") == 0) {
        post_validate(rt, cr, rp);
    } else {
        reply_error(rp, 404,
                    "unknown control call; see GET /_sim/state, /calls, /stats, "
                    "/faults; POST /_sim/faults, /reset, /settle, /expire-token, "
                    "/validate");
    }
}
