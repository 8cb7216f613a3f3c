/* reply.c: building replies (bodies, headers, SOAP faults), clocks and interruptible sleeps. */
#include "sim.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SOAP_ENV_NS "http://schemas.xmlsoap.org/soap/envelope/"

void iw_sim_reply_take(iw_sim_reply *r, int status, const char *ctype, char *body, size_t len)
{
    free(r->body);
    r->status = status;
    snprintf(r->content_type, sizeof(r->content_type), "%s", ctype ? ctype : "");
    r->body = body;
    r->body_len = body ? len : 0;
}

void iw_sim_reply_set(iw_sim_reply *r, int status, const char *ctype, const char *body, size_t len)
{
    char *copy = malloc(len + 1);
    if (copy) {
        if (len)
            memcpy(copy, body, len);
        copy[len] = '\0';
    }
    iw_sim_reply_take(r, copy ? status : 500, ctype, copy, copy ? len : 0);
}

void iw_sim_reply_header(iw_sim_reply *r, const char *name, const char *value)
{
    if (r->n_headers >= (int)(sizeof(r->headers) / sizeof(r->headers[0])))
        return;
    iw_sim_header *h = &r->headers[r->n_headers++];
    snprintf(h->name, sizeof(h->name), "%s", name);
    snprintf(h->value, sizeof(h->value), "%s", value);
}

void iw_sim_reply_clear(iw_sim_reply *r)
{
    free(r->body);
    memset(r, 0, sizeof(*r));
}

void iw_sim_reply_xml(iw_sim_reply *r, int status, const char *ctype, iw_xmlw *x)
{
    char *out = NULL;
    size_t len = 0;
    if (iw_xmlw_close(x, &out, &len) != 0) {
        static const char msg[] = "simulator could not write its reply\n";
        iw_sim_reply_set(r, 500, "text/plain", msg, sizeof(msg) - 1);
        return;
    }
    iw_sim_reply_take(r, status, ctype, out, len);
}

void iw_sim_reply_soap_fault(iw_sim_reply *r, iw_sim_soap_style style, const char *code,
                             const char *msg)
{
    const char *p = style == IW_SIM_SOAP_WCF ? "s" : "SOAP-ENV";
    char qcode[64];
    snprintf(qcode, sizeof(qcode), "%s:%s", p, code);
    iw_xmlw x;
    iw_xmlw_open(&x, true);
    iw_xmlw_start(&x, p, "Envelope", SOAP_ENV_NS);
    iw_xmlw_start(&x, p, "Body", NULL);
    iw_xmlw_start(&x, p, "Fault", NULL);
    iw_xmlw_text(&x, NULL, "faultcode", qcode);
    iw_xmlw_start(&x, NULL, "faultstring", NULL);
    if (style == IW_SIM_SOAP_WCF)
        iw_xmlw_attr(&x, "xml:lang", "en-US");
    if (!x.err && xmlTextWriterWriteString(x.w, (const xmlChar *)msg) < 0)
        x.err = -1;
    iw_xmlw_end(&x);
    iw_xmlw_end(&x);
    iw_xmlw_end(&x);
    iw_xmlw_end(&x);
    iw_sim_reply_xml(r, 500, "text/xml; charset=utf-8", &x);
}

void iw_sim_reply_json(iw_sim_reply *r, int status, const cJSON *doc)
{
    char *s = cJSON_PrintUnformatted(doc);
    if (!s) {
        static const char msg[] = "{\"error\":\"out of memory\"}";
        iw_sim_reply_set(r, 500, "application/json", msg, sizeof(msg) - 1);
        return;
    }
    iw_sim_reply_take(r, status, "application/json; charset=utf-8", s, strlen(s));
}

/* ---- clocks and sleeps ---- */

int64_t iw_sim_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t iw_sim_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static pthread_mutex_t sleep_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sleep_cv;
static pthread_once_t sleep_once = PTHREAD_ONCE_INIT;
static bool stopping;

static void sleep_init(void)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&sleep_cv, &a);
    pthread_condattr_destroy(&a);
}

bool iw_sim_sleep_ms(int64_t ms)
{
    pthread_once(&sleep_once, sleep_init);
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += ms / 1000;
    dl.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&sleep_mu);
    int rc = 0;
    while (!stopping && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&sleep_cv, &sleep_mu, &dl);
    bool ok = !stopping;
    pthread_mutex_unlock(&sleep_mu);
    return ok;
}

void iw_sim_stop_sleepers(void)
{
    pthread_once(&sleep_once, sleep_init);
    pthread_mutex_lock(&sleep_mu);
    stopping = true;
    pthread_cond_broadcast(&sleep_cv);
    pthread_mutex_unlock(&sleep_mu);
}
