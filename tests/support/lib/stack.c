/* stack.c: the local stack (redis, kafka-local, target-sim, workers), its one worker config, and
 * clients for tests. */
#include "stack.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <librdkafka/rdkafka.h>

#include "docpaths.h"

#ifndef IW_FIXTURES_DIR
#define IW_FIXTURES_DIR "tests/fixtures"
#endif

#define STACK_TEMPLATE IW_FIXTURES_DIR "/config/local-stack.json"
#define STACK_ENV IW_FIXTURES_DIR "/config/local-stack.env"

const iw_stack_overlay iw_stack_test_profile = {
    .root = "{\"worker\": {\"id\": \"test-worker\", \"max_in_flight\": 256},"
            " \"kafka\": {\"properties\": {\"consumer.heartbeat.interval.ms\": 500,"
            "  \"topic.metadata.refresh.interval.ms\": 2000}},"
            " \"redis\": {\"lease_s\": 15}}",
    .targets = "{\"retry\": {\"max_attempts\": 6, \"base_ms\": 50, \"max_delay_ms\": 1000,"
               " \"max_elapsed_s\": 120},"
               " \"timeouts\": {\"connect_ms\": 2000, \"request_ms\": 5000}}",
};

const char *iw_stack_env_file(void)
{
    return STACK_ENV;
}

int iw_stack_load_env(void)
{
    FILE *f = fopen(STACK_ENV, "r");
    if (!f) {
        fprintf(stderr, "stack: %s: %s\n", STACK_ENV, strerror(errno));
        return -1;
    }
    char line[512];
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\r\n")] = '\0';
        char *eq = strchr(line, '=');
        if (line[0] == '#' || !eq)
            continue;
        *eq = '\0';
        setenv(line, eq + 1, 0);
    }
    fclose(f);
    return 0;
}

/* Starts target-sim on a free port and installs the start faults. 0 or -1. */
static int sim_start(iw_stack *s, const iw_stack_opts *o)
{
    s->sim_port = iw_free_port();
    char listen[64], spath[512], validate[8];
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", s->sim_port);
    snprintf(spath, sizeof(spath), "%s", iw_build_path("target-sim"));
    snprintf(validate, sizeof(validate), "%s", o->validate ? o->validate : "on");
    char *sargv[] = {spath, "--listen", listen, "--validate", validate, NULL};
    if (iw_proc_start(&s->sim, sargv, true) != 0 || iw_wait_port(s->sim_port, 10000) != 0) {
        fprintf(stderr, "stack: target-sim did not start\n");
        return -1;
    }
    snprintf(s->sim_base, sizeof(s->sim_base), "http://127.0.0.1:%d", s->sim_port);
    if (o->latency_ms > 0) {
        char json[96];
        snprintf(json, sizeof(json), "{\"target\": \"*\", \"kind\": \"latency\", \"ms\": %d}",
                 o->latency_ms);
        if (iw_sim_control(s, "/_sim/faults", json) != 200) {
            fprintf(stderr, "stack: the simulator refused latency %d ms\n", o->latency_ms);
            return -1;
        }
    }
    if (o->faults && iw_sim_control(s, "/_sim/faults", o->faults) != 200) {
        fprintf(stderr, "stack: the simulator refused faults %s\n", o->faults);
        return -1;
    }
    return 0;
}

int iw_stack_launch(iw_stack *s, const iw_stack_opts *o)
{
    static const iw_stack_opts none;
    if (!o)
        o = &none;
    memset(s, 0, sizeof(*s));
    s->partitions = o->partitions > 0 ? o->partitions : 8;
    if (o->dir) {
        snprintf(s->dir, sizeof(s->dir), "%s", o->dir);
        if (mkdir(s->dir, 0700) != 0 && errno != EEXIST) {
            fprintf(stderr, "stack: %s: %s\n", s->dir, strerror(errno));
            return -1;
        }
    } else {
        snprintf(s->dir, sizeof(s->dir), "/tmp/iw-stack-XXXXXX");
        if (!mkdtemp(s->dir)) {
            perror("stack: mkdtemp");
            s->dir[0] = '\0';
            return -1;
        }
        s->own_dir = true;
    }
    if (iw_stack_load_env() != 0)
        return -1;
    if (iw_redis_start(&s->redis, o->aof) != 0) {
        fprintf(stderr, "stack: redis-server did not start\n");
        return -1;
    }
    if (!o->no_kafka) {
        char parts[16], brokers[16], kpath[512];
        snprintf(parts, sizeof(parts), "%d", s->partitions);
        snprintf(brokers, sizeof(brokers), "%d", o->brokers > 0 ? o->brokers : 3);
        snprintf(kpath, sizeof(kpath), "%s", iw_build_path("kafka-local"));
        snprintf(s->kafka_ctl, sizeof(s->kafka_ctl), "%s/kafka.ctl", s->dir);
        char *kargv[] = {kpath, "--brokers",      brokers,      "--partitions",
                         parts, "--control-fifo", s->kafka_ctl, NULL};
        if (iw_proc_start(&s->kafka, kargv, true) != 0 ||
            iw_proc_read_line(&s->kafka, s->brokers, sizeof(s->brokers), 20000) <= 0) {
            fprintf(stderr, "stack: kafka-local did not start\n");
            return -1;
        }
    }
    return sim_start(s, o);
}

int iw_stack_kafka_cmd(iw_stack *s, const char *cmd, char *reply, size_t len)
{
    char line[256];
    int n = snprintf(line, sizeof(line), "%s\n", cmd);
    if (reply && len)
        reply[0] = '\0';
    if (!s->kafka.pid || n <= 0 || (size_t)n >= sizeof(line) || s->kafka.out_fd < 0)
        return -1;
    /* replies nobody read (SIGUSR1/SIGUSR2 commands) must not pass for this one's */
    char junk[256];
    for (struct pollfd pfd = {.fd = s->kafka.out_fd, .events = POLLIN};
         poll(&pfd, 1, 0) > 0 && (pfd.revents & POLLIN);)
        if (read(s->kafka.out_fd, junk, sizeof(junk)) <= 0)
            break;
    /* non-blocking: with no reader (kafka-local gone) open fails instead of waiting */
    int fd = open(s->kafka_ctl, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t w = write(fd, line, (size_t)n);
    close(fd);
    if (w != n || iw_proc_read_line(&s->kafka, reply, len, 10000) <= 0)
        return -1;
    /* kafka-local's "ok" replies repeat the command's first word */
    const char *sp = strchr(cmd, ' ');
    size_t word = sp ? (size_t)(sp - cmd) : strlen(cmd);
    return strncmp(reply, "ok ", 3) == 0 && strncmp(reply + 3, cmd, word) == 0 ? 0 : -1;
}

int iw_stack_start(iw_stack *s, int partitions, bool aof)
{
    iw_stack_opts o = {.partitions = partitions, .aof = aof};
    return iw_stack_launch(s, &o);
}

void iw_stack_stop(iw_stack *s)
{
    iw_proc_stop(&s->sim, 5000);
    iw_proc_stop(&s->kafka, 10000);
    iw_redis_stop(&s->redis);
    if (s->own_dir && !getenv("IW_KEEP_STACK")) {
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "stack: could not remove %s\n", s->dir);
    } else if (s->own_dir) {
        fprintf(stderr, "stack: kept %s\n", s->dir);
    }
    s->dir[0] = '\0';
}

/* Merges every member of src into dst (replacing; objects merged recursively). */
static void merge(cJSON *dst, const cJSON *src)
{
    for (const cJSON *c = src ? src->child : NULL; c; c = c->next) {
        cJSON *have = cJSON_GetObjectItemCaseSensitive(dst, c->string);
        if (have && cJSON_IsObject(have) && cJSON_IsObject(c)) {
            merge(have, c);
        } else {
            cJSON_DeleteItemFromObjectCaseSensitive(dst, c->string);
            cJSON_AddItemToObject(dst, c->string, cJSON_Duplicate(c, 1));
        }
    }
}

/* A placeholder of the template and what it becomes. */
typedef struct fill {
    const char *name; /* "@SIM@" */
    const char *text;
    bool number; /* a string that is only this placeholder becomes a JSON number */
} fill;

/* Replaces the placeholders in every string under j. 0 or -1 (no memory). */
static int fill_in(cJSON *j, const fill *f, size_t n)
{
    for (cJSON *c = j->child; c; c = c->next) {
        if (c->child && fill_in(c, f, n) != 0)
            return -1;
        if (!cJSON_IsString(c))
            continue;
        for (size_t i = 0; i < n; i++) {
            if (f[i].number && strcmp(c->valuestring, f[i].name) == 0) {
                c->type = cJSON_Number;
                cJSON_SetNumberValue(c, strtod(f[i].text, NULL));
                free(c->valuestring);
                c->valuestring = NULL;
                break;
            }
            const char *at = strstr(c->valuestring, f[i].name);
            if (!at)
                continue;
            size_t nl = strlen(f[i].name), tl = strlen(f[i].text);
            size_t len = strlen(c->valuestring) - nl + tl;
            char *v = malloc(len + 1);
            if (!v)
                return -1;
            snprintf(v, len + 1, "%.*s%s%s", (int)(at - c->valuestring), c->valuestring, f[i].text,
                     at + nl);
            if (!cJSON_SetValuestring(c, v)) {
                free(v);
                return -1;
            }
            free(v);
            i--; /* the same placeholder may come again */
        }
    }
    return 0;
}

/* Parses an overlay member; *bad when it is not a JSON object. */
static cJSON *overlay_part(const char *json, bool *bad)
{
    if (!json)
        return NULL;
    cJSON *j = cJSON_Parse(json);
    if (!cJSON_IsObject(j)) {
        fprintf(stderr, "stack: overlay is not a JSON object: %s\n", json);
        *bad = true;
    }
    return j;
}

int iw_stack_config_write(const char *path, const iw_stack_addrs *a, const iw_stack_overlay *ov,
                          size_t n)
{
    char *tmpl = iw_read_file(STACK_TEMPLATE, NULL);
    cJSON *root = tmpl ? cJSON_Parse(tmpl) : NULL;
    free(tmpl);
    if (!root) {
        fprintf(stderr, "stack: cannot read %s\n", STACK_TEMPLATE);
        return -1;
    }
    char port[16], listen[64] = "";
    snprintf(port, sizeof(port), "%d", a->redis_port);
    if (a->http_port > 0)
        snprintf(listen, sizeof(listen), "127.0.0.1:%d", a->http_port);
    const fill f[] = {{"@BROKERS@", a->brokers ? a->brokers : "", false},
                      {"@REDIS_PORT@", port, true},
                      {"@SIM@", a->sim_base ? a->sim_base : "", false},
                      {"@HTTP_LISTEN@", listen, false}};
    bool bad = fill_in(root, f, sizeof(f) / sizeof(*f)) != 0;
    cJSON *targets = cJSON_GetObjectItemCaseSensitive(root, "targets");
    for (size_t i = 0; i < n && !bad; i++) {
        cJSON *r = overlay_part(ov[i].root, &bad), *w = overlay_part(ov[i].worker, &bad),
              *t = overlay_part(ov[i].targets, &bad);
        if (!bad) {
            merge(root, r);
            merge(cJSON_GetObjectItemCaseSensitive(root, "worker"), w);
            for (cJSON *c = targets ? targets->child : NULL; c && t; c = c->next)
                merge(c, t);
        }
        cJSON_Delete(r);
        cJSON_Delete(w);
        cJSON_Delete(t);
    }
    char *text = bad ? NULL : cJSON_Print(root);
    cJSON_Delete(root);
    bool to_stdout = strcmp(path, "-") == 0;
    FILE *out = !text ? NULL : to_stdout ? stdout : fopen(path, "w");
    int rc = out && fputs(text, out) >= 0 && fputc('\n', out) != EOF ? 0 : -1;
    if (out && (to_stdout ? fflush(out) : fclose(out)) != 0)
        rc = -1;
    if (rc != 0 && !bad)
        fprintf(stderr, "stack: cannot write %s\n", path);
    free(text);
    return rc;
}

const char *iw_stack_config_with(iw_stack *s, const char *name, const iw_stack_overlay *extra)
{
    static char path[512];
    snprintf(path, sizeof(path), "%s/%s", s->dir, name);
    const iw_stack_addrs a = {s->brokers, s->redis.port, s->sim_base, s->http_port};
    const iw_stack_overlay ov[] = {iw_stack_test_profile, extra ? *extra : (iw_stack_overlay){0}};
    return iw_stack_config_write(path, &a, ov, 2) == 0 ? path : NULL;
}

const char *iw_stack_config(iw_stack *s, const char *name, const char *extra_targets_json,
                            const char *extra_worker_json)
{
    const iw_stack_overlay extra = {.worker = extra_worker_json, .targets = extra_targets_json};
    return iw_stack_config_with(s, name, &extra);
}

int iw_stack_worker_start(iw_stack *s, iw_proc *w, const char *config, const char *log_name)
{
    char log[512], bin[512], cfg[512];
    snprintf(log, sizeof(log), "%s/%s", s->dir, log_name);
    snprintf(bin, sizeof(bin), "%s", iw_build_path("invoice-worker"));
    snprintf(cfg, sizeof(cfg), "%s", config);
    /* stderr to the log file through a shell-free redirect: exec via sh is simplest */
    char cmd[1600];
    snprintf(cmd, sizeof(cmd), "exec '%s' run -c '%s' 2>>'%s'", bin, cfg, log);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    return iw_proc_start(w, argv, false);
}

/* ---- Kafka clients ---- */

static void dr_count(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    long *failed = opaque;
    if (m->err)
        (*failed)++;
}

/* One header to add to every message produced: name, and a value of vlen bytes (-1: a C
 * string; NULL: no value). */
typedef struct produce_header {
    const char *name;
    ssize_t name_len;
    const void *value;
    ssize_t value_len;
} produce_header;

static int produce_all(const char *brokers, const char *topic, const char *const *keys,
                       const char *const *values, size_t n, const produce_header *ph, size_t n_ph);

int iw_kafka_produce(const char *brokers, const char *topic, const char *const *keys,
                     const char *const *values, size_t n, const char *header)
{
    produce_header ph[8];
    size_t n_ph = 0;
    for (const char *line = header; line && *line && n_ph < 8;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        const char *eq = memchr(line, '=', len);
        ph[n_ph++] = (produce_header){line, eq ? eq - line : (ssize_t)len, eq ? eq + 1 : "",
                                      eq ? (ssize_t)(line + len - eq - 1) : 0};
        line = end ? end + 1 : NULL;
    }
    return produce_all(brokers, topic, keys, values, n, ph, n_ph);
}

int iw_kafka_produce_header(const char *brokers, const char *topic, const char *key,
                            const char *value, const char *hname, const void *hval, size_t hlen)
{
    produce_header ph = {hname, -1, hval, (ssize_t)hlen};
    return produce_all(brokers, topic, &key, &value, 1, &ph, 1);
}

static int produce_all(const char *brokers, const char *topic, const char *const *keys,
                       const char *const *values, size_t n, const produce_header *ph, size_t n_ph)
{
    char err[512];
    long failed = 0;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err, sizeof(err));
    rd_kafka_conf_set(conf, "enable.idempotence", "true", err, sizeof(err));
    rd_kafka_conf_set(conf, "linger.ms", "5", err, sizeof(err));
    rd_kafka_conf_set_opaque(conf, &failed);
    rd_kafka_conf_set_dr_msg_cb(conf, dr_count);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        fprintf(stderr, "produce: %s\n", err);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        rd_kafka_headers_t *h = NULL;
        if (n_ph) {
            h = rd_kafka_headers_new(n_ph);
            for (size_t k = 0; k < n_ph; k++)
                rd_kafka_header_add(h, ph[k].name, ph[k].name_len, ph[k].value, ph[k].value_len);
        }
        for (;;) {
            rd_kafka_resp_err_t e = rd_kafka_producev(
                rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(keys[i], keys[i] ? strlen(keys[i]) : 0),
                RD_KAFKA_V_VALUE((void *)values[i], values[i] ? strlen(values[i]) : 0),
                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
            if (!e)
                break;
            if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                fprintf(stderr, "produce: %s\n", rd_kafka_err2str(e));
                if (h)
                    rd_kafka_headers_destroy(h);
                rd_kafka_destroy(rk);
                return -1;
            }
            rd_kafka_poll(rk, 50);
        }
        rd_kafka_poll(rk, 0);
    }
    int rc = rd_kafka_flush(rk, 60000) == RD_KAFKA_RESP_ERR_NO_ERROR && failed == 0 ? 0 : -1;
    rd_kafka_destroy(rk);
    return rc;
}

static char *dup_n(const void *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s) {
        if (n)
            memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

size_t iw_kafka_read_all(const char *brokers, const char *topic, size_t want, int timeout_ms,
                         int idle_ms, iw_kmsg **out)
{
    *out = NULL;
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err, sizeof(err));
    rd_kafka_conf_set(conf, "group.id", "iw-test-reader", err, sizeof(err));
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof(err));
    rd_kafka_conf_set(conf, "enable.partition.eof", "false", err, sizeof(err));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        return 0;
    }
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    int parts = 0;
    if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        md->topic_cnt == 1)
        parts = md->topics[0].partition_cnt;
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(parts);
    for (int i = 0; i < parts; i++)
        rd_kafka_topic_partition_list_add(l, topic, i)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    size_t n = 0, cap = 1024;
    iw_kmsg *v = calloc(cap, sizeof(*v));
    long long start = iw_now_ms(), last = start;
    while (v && (want == 0 || n < want)) {
        long long now = iw_now_ms();
        if (now - start > timeout_ms || (idle_ms > 0 && now - last > idle_ms))
            break;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m)
            continue;
        if (!m->err) {
            if (n == cap) {
                iw_kmsg *nv = realloc(v, cap * 2 * sizeof(*v));
                if (!nv) {
                    rd_kafka_message_destroy(m);
                    break;
                }
                v = nv;
                cap *= 2;
            }
            iw_kmsg *k = &v[n++];
            memset(k, 0, sizeof(*k));
            k->key = dup_n(m->key, m->key_len);
            k->value = dup_n(m->payload, m->len);
            k->key_null = !m->key;
            k->value_null = !m->payload;
            k->len = m->len;
            k->partition = m->partition;
            k->offset = m->offset;
            rd_kafka_headers_t *h = NULL;
            size_t hl = 0;
            char *hs = calloc(1, 1);
            if (!rd_kafka_message_headers(m, &h) && h) {
                const char *name;
                const void *val;
                size_t sz;
                for (size_t i = 0; !rd_kafka_header_get_all(h, i, &name, &val, &sz); i++) {
                    size_t add = strlen(name) + sz + 3;
                    char *ns = realloc(hs, hl + add);
                    if (!ns)
                        break;
                    hs = ns;
                    hl += (size_t)snprintf(hs + hl, add, "%s=%.*s\n", name, (int)sz,
                                           (const char *)val);
                }
            }
            k->headers = hs;
            last = iw_now_ms();
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    *out = v;
    return n;
}

void iw_kmsgs_free(iw_kmsg *m, size_t n)
{
    for (size_t i = 0; m && i < n; i++) {
        free(m[i].key);
        free(m[i].value);
        free(m[i].headers);
    }
    free(m);
}

char *iw_kmsg_header(const iw_kmsg *m, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = m->headers; p && *p;) {
        const char *nlp = strchr(p, '\n');
        size_t ll = nlp ? (size_t)(nlp - p) : strlen(p);
        if (ll > nl && strncmp(p, name, nl) == 0 && p[nl] == '=')
            return dup_n(p + nl + 1, ll - nl - 1);
        p += ll + (nlp ? 1 : 0);
    }
    return NULL;
}

int64_t iw_kafka_group_lag(const char *brokers, const char *group, const char *topic)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err, sizeof(err));
    rd_kafka_conf_set(conf, "group.id", group, err, sizeof(err));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    int parts = 0;
    if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        md->topic_cnt == 1)
        parts = md->topics[0].partition_cnt;
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(parts);
    for (int i = 0; i < parts; i++)
        rd_kafka_topic_partition_list_add(l, topic, i);
    int64_t lag = -1;
    if (parts && rd_kafka_committed(rk, l, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        lag = 0;
        for (int i = 0; i < parts; i++) {
            int64_t lo = 0, hi = 0;
            if (rd_kafka_query_watermark_offsets(rk, topic, i, &lo, &hi, 10000)) {
                lag = -1;
                break;
            }
            int64_t c = l->elems[i].offset;
            lag += hi - (c < 0 ? lo : c);
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
    return lag;
}

/* ---- HTTP ---- */

typedef struct buf {
    char *p;
    size_t n;
} buf;

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    buf *b = ud;
    size_t add = size * nmemb;
    char *np = realloc(b->p, b->n + add + 1);
    if (!np)
        return 0;
    memcpy(np + b->n, ptr, add);
    b->p = np;
    b->n += add;
    b->p[b->n] = '\0';
    return add;
}

char *iw_http(const char *method, const char *url, const char *body, long *status)
{
    return iw_http_timed(method, url, body, 30000, status);
}

char *iw_http_timed(const char *method, const char *url, const char *body, long timeout_ms,
                    long *status)
{
    *status = 0;
    CURL *c = curl_easy_init();
    if (!c)
        return NULL;
    buf b = {calloc(1, 1), 0};
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

long iw_sim_control(const iw_stack *s, const char *path, const char *json)
{
    char url[256];
    snprintf(url, sizeof(url), "%s%s", s->sim_base, path);
    long st = -1;
    char *r = iw_http("POST", url, json ? json : "{}", &st);
    if (!r)
        return -1;
    free(r);
    return st;
}

struct cJSON *iw_sim_get(const iw_stack *s, const char *path)
{
    char url[256];
    snprintf(url, sizeof(url), "%s%s", s->sim_base, path);
    long st = 0;
    char *r = iw_http("GET", url, NULL, &st);
    if (!r)
        return NULL;
    cJSON *j = st == 200 ? cJSON_Parse(r) : NULL;
    free(r);
    return j;
}

/* ---- events ---- */

static uint64_t fnv(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

char *iw_make_event(const char *event_id, const char *tenant, const char *invoice_id,
                    long long version, const char *targets_csv)
{
    static char *tmpl;
    if (!tmpl && !(tmpl = iw_read_file(IW_FIXTURES_DIR "/events/complete.json", NULL)))
        return NULL;
    cJSON *e = cJSON_Parse(tmpl);
    if (!e)
        return NULL;
    cJSON_ReplaceItemInObject(e, "event_id", cJSON_CreateString(event_id));
    cJSON_ReplaceItemInObject(e, "tenant", cJSON_CreateString(tenant));
    cJSON_ReplaceItemInObject(e, "version", cJSON_CreateNumber((double)version));
    if (targets_csv) {
        cJSON *arr = cJSON_CreateArray();
        char *tmp = strdup(targets_csv); /* any length: 64 names do not fit a small buffer */
        if (!tmp) {
            cJSON_Delete(arr);
            cJSON_Delete(e);
            return NULL;
        }
        char *save = NULL;
        for (char *t = strtok_r(tmp, ",", &save); t; t = strtok_r(NULL, ",", &save))
            cJSON_AddItemToArray(arr, cJSON_CreateString(t));
        free(tmp);
        cJSON_ReplaceItemInObject(e, "targets", arr);
    } else {
        cJSON_DeleteItemFromObject(e, "targets");
    }
    cJSON *inv = cJSON_GetObjectItem(e, "invoice");
    cJSON_ReplaceItemInObject(inv, "id", cJSON_CreateString(invoice_id));
    uint64_t h = fnv(invoice_id);
    char num[64];
    snprintf(num, sizeof(num), "N%llu", (unsigned long long)(h % 1000000000ULL));
    cJSON_ReplaceItemInObject(inv, "number", cJSON_CreateString(num));
    cJSON *refs = cJSON_GetObjectItem(inv, "target_refs");
    char ref[64];
    snprintf(ref, sizeof(ref), "%llu", (unsigned long long)(h % 100000000ULL) + 1);
    cJSON_ReplaceItemInObject(refs, "invoicexpress_id", cJSON_CreateString(ref));
    snprintf(ref, sizeof(ref), "%08x-%04x-4%03x-8%03x-%012llx", (unsigned)(h >> 32),
             (unsigned)(h >> 16) & 0xffff, (unsigned)(h >> 4) & 0xfff, (unsigned)h & 0xfff,
             (unsigned long long)(h * 2654435761ULL) & 0xffffffffffffULL);
    cJSON_ReplaceItemInObject(refs, "midnight_guid", cJSON_CreateString(ref));
    snprintf(ref, sizeof(ref), "ebiz-%016llx", (unsigned long long)h);
    cJSON_ReplaceItemInObject(refs, "ebiz_internal_id", cJSON_CreateString(ref));
    snprintf(ref, sizeof(ref), "C-%s", invoice_id);
    cJSON_ReplaceItemInObject(refs, "centra_id", cJSON_CreateString(ref));
    char *out = cJSON_PrintUnformatted(e);
    cJSON_Delete(e);
    return out;
}

/* ---- results and simulator state ---- */

iw_results iw_results_read(const iw_stack *s, const char *topic, size_t want, int timeout_ms)
{
    iw_results r = {0};
    r.n = iw_kafka_read_all(s->brokers, topic, want, timeout_ms, 0, &r.msgs);
    r.json = calloc(r.n + 1, sizeof(cJSON *));
    for (size_t i = 0; r.json && i < r.n; i++)
        r.json[i] = cJSON_Parse(r.msgs[i].value);
    return r;
}

void iw_results_free(iw_results *r)
{
    for (size_t i = 0; r->json && i < r->n; i++)
        cJSON_Delete(r->json[i]);
    free(r->json);
    iw_kmsgs_free(r->msgs, r->n);
    memset(r, 0, sizeof(*r));
}

const char *iw_json_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

size_t iw_results_count(const iw_results *r, const char *target, const char *status)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n; i++) {
        const char *t = iw_json_str(r->json[i], "target"), *st = iw_json_str(r->json[i], "status");
        if (st && strcmp(st, status) == 0 && (!target || (t && strcmp(t, target) == 0)))
            n++;
    }
    return n;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

size_t iw_results_distinct(const iw_results *r)
{
    const char **ids = calloc(r->n + 1, sizeof(char *));
    size_t k = 0, n = 0;
    for (size_t i = 0; ids && i < r->n; i++)
        if ((ids[k] = iw_json_str(r->json[i], "result_id")))
            k++;
    qsort(ids, k, sizeof(char *), cmp_str);
    for (size_t i = 0; i < k; i++)
        if (i == 0 || strcmp(ids[i], ids[i - 1]) != 0)
            n++;
    free(ids);
    return n;
}

int iw_sim_calls(const iw_stack *s, const char *event_id, const char *target)
{
    char path[256], key[200];
    snprintf(key, sizeof(key), "%s:%s", event_id, target);
    snprintf(path, sizeof(path), "/_sim/calls?key=%s", key);
    cJSON *j = iw_sim_get(s, path);
    if (!j)
        return -1;
    const cJSON *e =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "calls"), key);
    const cJSON *cnt = cJSON_GetObjectItemCaseSensitive(e, "count");
    int n = cJSON_IsNumber(cnt) ? (int)cnt->valuedouble : 0;
    cJSON_Delete(j);
    return n;
}

int iw_sim_final_versions(const iw_stack *s, const char *target, long long version, int *regressed)
{
    char path[128];
    snprintf(path, sizeof(path), "/_sim/state?target=%s", target);
    cJSON *j = iw_sim_get(s, path);
    if (!j)
        return -1;
    const cJSON *t =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "targets"), target);
    const cJSON *invs = cJSON_GetObjectItemCaseSensitive(t, "invoices");
    int ok = 0;
    *regressed = 0;
    for (const cJSON *inv = invs ? invs->child : NULL; inv; inv = inv->next) {
        const char *v = iw_json_str(inv, "version"), *mx = iw_json_str(inv, "max_version");
        if (!v || !mx || atoll(v) < atoll(mx))
            (*regressed)++;
        else if (atoll(v) == version)
            ok++;
    }
    cJSON_Delete(j);
    return ok;
}
