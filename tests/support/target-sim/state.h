/* state.h: what the simulator remembers: the last accepted document and the history of accepted
 * versions per invoice, calls per (event, target), reply counts and the Midnight token. Every
 * function is thread-safe. */
#ifndef IW_SIM_STATE_H
#define IW_SIM_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "sim.h"

/* Accepted updates kept per (target, invoice) in its history; older ones are dropped and
 * counted in "history_dropped". */
#define IW_SIM_HISTORY_MAX 4096

/* The body version: a request body may carry the invoice version it was rendered from as this
 * mark followed by digits (the chaos driver writes "PO-V<version>" into invoice.po_number, which
 * every adapter sends). The history keeps it beside X-Invoice-Version, so a check of ordering
 * need not trust the sender's header alone. */
#define IW_SIM_BODY_MARK "PO-V"

/* The digits after the first IW_SIM_BODY_MARK in body into out ("" when there is none). */
void iw_sim_body_version(const char *body, char *out, size_t len);

/* Sets up empty state; the Midnight token starts as the configured one. */
void iw_sim_state_init(const iw_sim_conf *c);

/* Forgets everything (invoices, settled marks, calls, counts) and restores the token. */
void iw_sim_state_reset(void);

/* Frees everything. */
void iw_sim_state_free(void);

/* Records an accepted document for invoice `key` of target t: takes ownership of values
 * (parsed fields), keeps the request's X-Request-ID event part, X-Invoice-Version and
 * Idempotency-Key, counts one update and appends the update to the invoice's history (version,
 * body version, event part, attempt, arrival time). internal_id (may be NULL) receives the
 * invoice's stable internal id: `given` when not empty (and remembered), else one derived from key.
 */
void iw_sim_state_accept(int t, const char *key, cJSON *values, const iw_sim_request *rq,
                         const char *given, char *internal_id, size_t idlen);

/* True when invoice key of target t was marked settled. */
bool iw_sim_state_settled(int t, const char *key);

/* Marks invoice key of target t settled (creating its record when needed). */
void iw_sim_state_settle(int t, const char *key);

/* Records the arrival of a call carrying X-Request-ID request_id ("<event>:<target>:<attempt>")
 * and returns its index in that event part's list (-1 when request_id is absent); key gets
 * the event part. */
int iw_sim_calls_begin(int t, const char *request_id, int64_t wall_ms, int64_t mono_ms, char *key,
                       size_t keylen);

/* Stores the status sent for call idx of event part key. */
void iw_sim_calls_finish(const char *key, int idx, int status);

/* Counts one reply with `status` for target t (-1: a path that is no target's). */
void iw_sim_stats_count(int t, int status);

/* The Midnight token now accepted ("" when it was expired by the control endpoint). */
void iw_sim_token_current(char *buf, size_t len);

/* Issues a new Midnight token (the old one stops working) and copies it into buf. */
void iw_sim_token_rotate(char *buf, size_t len);

/* Expires the current token: calls get 401 until a refresh. */
void iw_sim_token_expire(void);

/* JSON views for the control endpoint; t < 0 / id NULL / key and prefix NULL = everything.
 * Each invoice record of the state view carries its history, oldest first:
 *   "history": [{"version": "17", "body_version": "17", "event": "<event_id>:<target>",
 *                "attempt": 1, "at_ms": <wall ms>, "mono_ms": <monotonic ms>}, ...],
 *   "history_dropped": <older entries dropped>, "body_version": "<of the last update>".
 * Caller deletes. */
cJSON *iw_sim_state_json(int t, const char *id);
cJSON *iw_sim_calls_json(const char *key, const char *prefix);
cJSON *iw_sim_stats_json(void);

#endif
