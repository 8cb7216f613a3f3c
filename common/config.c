/* config.c: loading and checking the worker's JSON config; every problem is named by its JSON path.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "invoice.h"
#include "status.h"
#include "text.h"

#define CONFIG_MAX_BYTES (16u * 1024u * 1024u) /* largest config text accepted */
#define CONFIG_MAX_DEPTH 16                    /* deepest nesting a config needs is 4 */
#define CONFIG_MAX_KEYS 4096                   /* members of one object, at most */

/* Whether name is a shell variable's name: [A-Za-z_][A-Za-z0-9_]*. */
static bool env_name(const char *name)
{
    if (isdigit((unsigned char)name[0]))
        return false;
    for (; *name; name++)
        if (!isalnum((unsigned char)*name) && *name != '_')
            return false;
    return true;
}

/* Loader state: where we are, which adapter types exist and what went wrong. */
struct iw_conf_reader {
    iw_config_errors *errs;
    const char *base_dir;      /* for relative *_file paths; NULL = cwd */
    iw_conf_adapters adapters; /* the adapter types, from the caller */
};
typedef struct iw_conf_reader loader;

static void add_errorv(loader *ld, const char *path, const char *fmt, va_list ap)
{
    iw_config_errors *e = ld->errs;
    if (e->count < sizeof(e->items) / sizeof(e->items[0])) {
        iw_config_error *it = &e->items[e->count];
        snprintf(it->path, sizeof(it->path), "%s", path);
        vsnprintf(it->message, sizeof(it->message), fmt, ap);
        /* names from the file (a key written "a\nfake: ok\u001b[31m") are printed on a
         * terminal: control and bidirectional characters become spaces, and a character cut
         * by the snprintf is dropped */
        iw_text_clean_copy(it->path, sizeof(it->path), it->path, strlen(it->path));
        iw_text_clean_copy(it->message, sizeof(it->message), it->message, strlen(it->message));
    }
    e->count++;
}

static void add_error(loader *ld, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void add_error(loader *ld, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    add_errorv(ld, path, fmt, ap);
    va_end(ap);
}

void iw_conf_error(iw_conf_reader *rd, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    add_errorv(rd, path, fmt, ap);
    va_end(ap);
}

static char *xstrdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void join_path(char *out, size_t len, const char *base, const char *key)
{
    snprintf(out, len, "%s%s%s", base, *base ? "." : "", key);
}

char *iw_config_expand_env(const char *s, char *errbuf, size_t errlen)
{
    if (errlen)
        errbuf[0] = '\0';
    size_t cap = strlen(s) + 64, n = 0;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    for (const char *p = s; *p;) {
        const char *val = NULL;
        size_t vlen = 0, adv = 1;
        char name[128];
        if (p[0] == '$' && p[1] == '{') {
            const char *end = strchr(p + 2, '}');
            if (!end) {
                snprintf(errbuf, errlen, "unterminated ${ in value");
                free(out);
                return NULL;
            }
            const char *def = strstr(p + 2, ":-");
            size_t nlen = (size_t)((def && def < end ? def : end) - (p + 2));
            if (nlen == 0 || nlen >= sizeof(name)) {
                snprintf(errbuf, errlen, "bad environment reference");
                free(out);
                return NULL;
            }
            memcpy(name, p + 2, nlen);
            name[nlen] = '\0';
            if (!env_name(name)) { /* never echoed: ${NAME-default} would print its default */
                snprintf(errbuf, errlen,
                         "bad environment reference: a name is letters, digits and _, not "
                         "starting with a digit (a default is written ${NAME:-default})");
                free(out);
                return NULL;
            }
            val = getenv(name);
            if (!val && def && def < end) {
                val = def + 2;
                vlen = (size_t)(end - val);
            } else if (!val) {
                snprintf(errbuf, errlen, "environment variable %s is not set", name);
                free(out);
                return NULL;
            } else {
                vlen = strlen(val);
            }
            adv = (size_t)(end - p) + 1;
        } else {
            val = p;
            vlen = 1;
        }
        if (n + vlen + 1 > cap) {
            cap = (n + vlen + 1) * 2;
            char *o = realloc(out, cap);
            if (!o) {
                free(out);
                return NULL;
            }
            out = o;
        }
        memcpy(out + n, val, vlen);
        n += vlen;
        p += adv;
    }
    out[n] = '\0';
    return out;
}

/* Expands ${VAR} and ${VAR:-default} in s. Returns a malloc'd string or NULL with an error. */
static char *expand_env(loader *ld, const char *path, const char *s)
{
    char why[192];
    char *out = iw_config_expand_env(s, why, sizeof(why));
    if (!out && *why)
        add_error(ld, path, "%s", why);
    return out;
}

/* Makes a relative file path relative to the config file's folder, like *_file secrets. */
static void relative_to_config(const loader *ld, char **file)
{
    if (!*file || (*file)[0] == '/' || !ld->base_dir)
        return;
    size_t n = strlen(ld->base_dir) + strlen(*file) + 2;
    char *full = malloc(n);
    if (full) {
        snprintf(full, n, "%s/%s", ld->base_dir, *file);
        free(*file);
        *file = full;
    }
}

char *iw_conf_text(iw_conf_reader *rd, const cJSON *value, const char *path)
{
    if (!cJSON_IsString(value)) {
        add_error(rd, path, "expected a string");
        return NULL;
    }
    return expand_env(rd, path, value->valuestring);
}

char *iw_conf_file(const iw_conf_reader *rd, const char *file)
{
    char *out = file ? strdup(file) : NULL;
    relative_to_config(rd, &out);
    return out;
}

/* What makes a secret's text one no server would take, or NULL: left by an editor or a shell,
 * it would otherwise show only as an authentication failure on every call. */
static const char *secret_flaw(const char *v)
{
    if (!v[0])
        return NULL; /* said by the callers: "is empty" */
    if ((unsigned char)v[0] == 0xEF && (unsigned char)v[1] == 0xBB && (unsigned char)v[2] == 0xBF)
        return "starts with a byte order mark (U+FEFF)";
    if (!v[strspn(v, " \t\r\n\v\f")])
        return "holds only white space";
    return NULL;
}

/* Reads a secret file (file: the value as expanded; written: as the config writes it),
 * dropping its trailing newlines (LF or CRLF). The message names the file, never the content;
 * a name that came from ${ENV} is shown as written, since the variable may hold the secret
 * itself rather than its path (review 103). */
static char *read_secret_file(loader *ld, const char *path, const char *file, const char *written)
{
    if (!*file) {
        add_error(ld, path, "is empty: the path of a file holding the secret");
        return NULL;
    }
    char real[PATH_MAX], shown[PATH_MAX];
    if (file[0] != '/' && ld->base_dir)
        snprintf(real, sizeof(real), "%s/%s", ld->base_dir, file);
    else
        snprintf(real, sizeof(real), "%s", file);
    if (strstr(written, "${"))
        snprintf(shown, sizeof(shown), "%s (its value not shown)", written);
    else
        snprintf(shown, sizeof(shown), "%s", real);
    const char *full = shown;
    /* opened without blocking, then kept only when a regular file (a Kubernetes Secret's file
     * is a symlink to one): a FIFO with a writer that never writes would hang the start */
    int fd = open(real, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        add_error(ld, path, "cannot read secret file %s: %s", full, strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        add_error(ld, path, "secret file %s is not a regular file", full);
        close(fd);
        return NULL;
    }
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        add_error(ld, path, "cannot read secret file %s: %s", full, strerror(errno));
        close(fd);
        return NULL;
    }
    char buf[8192];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    int err = ferror(f);
    int more = !feof(f);
    fclose(f);
    if (err) {
        add_error(ld, path, "cannot read secret file %s", full);
        return NULL;
    }
    if (more) {
        add_error(ld, path, "secret file %s is larger than %zu bytes", full, sizeof(buf) - 1);
        return NULL;
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    buf[n] = '\0';
    if (n == 0) {
        add_error(ld, path, "secret file %s is empty", full);
        return NULL;
    }
    if (memchr(buf, '\0', n)) { /* the secret would end at it, silently */
        add_error(ld, path, "secret file %s holds a NUL byte", full);
        return NULL;
    }
    const char *flaw = secret_flaw(buf);
    if (flaw) {
        add_error(ld, path, "secret file %s %s", full, flaw);
        return NULL;
    }
    return strdup(buf);
}

/* A string value at obj.key: expands ${ENV}; *dst keeps the default when the key is absent. */
static void get_string(loader *ld, const cJSON *obj, const char *base, const char *key, char **dst)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!j || cJSON_IsNull(j))
        return;
    char path[160];
    join_path(path, sizeof(path), base, key);
    if (!cJSON_IsString(j)) {
        add_error(ld, path, "expected a string");
        return;
    }
    char *v = expand_env(ld, path, j->valuestring);
    if (v) {
        free(*dst);
        *dst = v;
    }
}

/* A secret given in the config (or its ${ENV}): refused empty, and with a flaw as a file is. */
static void check_inline_secret(loader *ld, const char *path, const char *v)
{
    const char *flaw = secret_flaw(v);
    if (!v[0])
        add_error(ld, path,
                  "is empty (an empty ${ENV} counts as given): set the secret, or leave the key "
                  "out if none is needed");
    else if (flaw)
        add_error(ld, path, "%s", flaw);
}

/* A secret at obj.key, or read from the file named by obj.key_file; never both. */
static void get_secret(loader *ld, const cJSON *obj, const char *base, const char *key, char **dst)
{
    char fkey[64], path[160];
    snprintf(fkey, sizeof(fkey), "%s_file", key);
    const cJSON *inl = cJSON_GetObjectItemCaseSensitive(obj, key);
    const cJSON *fil = cJSON_GetObjectItemCaseSensitive(obj, fkey);
    if (inl && fil && !cJSON_IsNull(inl) && !cJSON_IsNull(fil)) {
        join_path(path, sizeof(path), base, key);
        add_error(ld, path, "set either %s or %s, not both", key, fkey);
        return;
    }
    if (fil && !cJSON_IsNull(fil)) {
        char *file = NULL;
        get_string(ld, obj, base, fkey, &file);
        if (file) {
            join_path(path, sizeof(path), base, fkey);
            char *v = read_secret_file(ld, path, file, fil->valuestring);
            if (v) {
                free(*dst);
                *dst = v;
            }
            free(file);
        }
        return;
    }
    get_string(ld, obj, base, key, dst);
    /* given, but empty ("", or a ${ENV} set to nothing): a credential the operator meant to
     * give and did not, which every call (every Redis connect) would carry or be refused for */
    if (inl && !cJSON_IsNull(inl) && *dst) {
        join_path(path, sizeof(path), base, key);
        check_inline_secret(ld, path, *dst);
    }
}

/* An integer at obj.key within [min, max]; *dst keeps the default when absent. */
static void get_int64(loader *ld, const cJSON *obj, const char *base, const char *key, int64_t min,
                      int64_t max, int64_t *dst)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!j || cJSON_IsNull(j))
        return;
    char path[160];
    join_path(path, sizeof(path), base, key);
    double d;
    if (cJSON_IsNumber(j)) {
        d = j->valuedouble;
    } else if (cJSON_IsString(j)) { /* "${IW_PORT}" style values */
        char *v = expand_env(ld, path, j->valuestring);
        if (!v)
            return;
        char *end;
        errno = 0;
        long long ll = strtoll(v, &end, 10);
        int bad = *v == '\0' || *end != '\0' || errno;
        free(v);
        if (bad) {
            add_error(ld, path, "expected an integer");
            return;
        }
        d = (double)ll;
    } else {
        add_error(ld, path, "expected an integer");
        return;
    }
    /* converting a double outside int64_t (1e300, inf) to an integer is undefined: refuse first */
    if (!(d > -9.2e18 && d < 9.2e18) || d != (double)(int64_t)d) {
        add_error(ld, path, "expected an integer");
        return;
    }
    if (d < (double)min || d > (double)max) {
        add_error(ld, path, "must be between %lld and %lld", (long long)min, (long long)max);
        return;
    }
    *dst = (int64_t)d;
}

static void get_int(loader *ld, const cJSON *obj, const char *base, const char *key, int min,
                    int max, int *dst)
{
    int64_t v = *dst;
    get_int64(ld, obj, base, key, min, max, &v);
    *dst = (int)v;
}

/* Seconds given as an integer, stored as milliseconds. */
static void get_seconds_ms(loader *ld, const cJSON *obj, const char *base, const char *key,
                           int64_t min_s, int64_t max_s, int64_t *dst_ms)
{
    int64_t s = *dst_ms / 1000;
    get_int64(ld, obj, base, key, min_s, max_s, &s);
    *dst_ms = s * 1000;
}

static void get_bool(loader *ld, const cJSON *obj, const char *base, const char *key, bool *dst)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!j || cJSON_IsNull(j))
        return;
    char path[160];
    join_path(path, sizeof(path), base, key);
    if (!cJSON_IsBool(j)) {
        add_error(ld, path, "expected true or false");
        return;
    }
    *dst = cJSON_IsTrue(j);
}

/* Reports keys of obj that are not in the NULL-terminated list (catches typos). */
static void check_keys(loader *ld, const cJSON *obj, const char *base, const char *const *known)
{
    for (const cJSON *c = obj ? obj->child : NULL; c; c = c->next) {
        bool ok = false;
        for (size_t i = 0; known[i] && !ok; i++)
            ok = strcmp(c->string, known[i]) == 0;
        if (!ok) {
            char path[160];
            join_path(path, sizeof(path), base, c->string);
            add_error(ld, path, "unknown key");
        }
    }
}

/* The object at obj.key, NULL when absent; an error when it is not an object. */
static const cJSON *get_object(loader *ld, const cJSON *obj, const char *base, const char *key)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!j || cJSON_IsNull(j))
        return NULL;
    if (!cJSON_IsObject(j)) {
        char path[160];
        join_path(path, sizeof(path), base, key);
        add_error(ld, path, "expected an object");
        return NULL;
    }
    return j;
}

/* An array of non-empty strings at obj.key. */
static void get_string_list(loader *ld, const cJSON *obj, const char *base, const char *key,
                            char ***dst, size_t *n)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!j || cJSON_IsNull(j))
        return;
    char path[160];
    join_path(path, sizeof(path), base, key);
    if (!cJSON_IsArray(j)) {
        add_error(ld, path, "expected an array of strings");
        return;
    }
    int count = cJSON_GetArraySize(j);
    char **list = calloc((size_t)count + 1, sizeof(*list));
    if (!list)
        return;
    size_t k = 0;
    for (const cJSON *c = j->child; c; c = c->next) {
        char ipath[224];
        snprintf(ipath, sizeof(ipath), "%s[%zu]", path, k);
        if (!cJSON_IsString(c) || !*c->valuestring) {
            add_error(ld, ipath, "expected a non-empty string");
            continue;
        }
        char *v = expand_env(ld, ipath, c->valuestring);
        if (v)
            list[k++] = v;
    }
    *dst = list;
    *n = k;
}

/* Whether u is an http:// or https:// URL that libcurl can send to, as libcurl itself reads
 * it: a host (not "http:///p", which it would take as host "p"), a port from 1 to 65535, a
 * well-formed IPv6 address. Otherwise why not goes in why (the URL itself is not repeated: it
 * may hold a password). */
static bool valid_url(const char *u, char *why, size_t len)
{
    snprintf(why, len, "expected an http:// or https:// URL");
    if (!u || !(strncmp(u, "http://", 7) == 0 || strncmp(u, "https://", 8) == 0) ||
        strlen(u) <= 8 || strpbrk(u, " \t\r\n"))
        return false;
    if (strstr(u, "//")[2] == '/') {
        snprintf(why, len, "expected an http:// or https:// URL with a host after the //");
        return false;
    }
    if (strchr(u, '#')) { /* never sent: what an adapter appends would land in it */
        snprintf(why, len, "expected a URL without a #fragment (it never reaches the server)");
        return false;
    }
    CURLU *h = curl_url();
    if (!h)
        return true; /* out of memory: the first call says so */
    char *port = NULL;
    CURLUcode rc = curl_url_set(h, CURLUPART_URL, u, 0);
    if (rc)
        snprintf(why, len, "expected an http:// or https:// URL: %s", curl_url_strerror(rc));
    else if (curl_url_get(h, CURLUPART_PORT, &port, 0) == CURLUE_OK && strcmp(port, "0") == 0)
        snprintf(why, len, "expected an http:// or https:// URL: port 0 cannot be connected to");
    bool ok = !rc && !(port && strcmp(port, "0") == 0);
    curl_free(port);
    curl_url_cleanup(h);
    return ok;
}

/* A value that becomes an HTTP header, a URL part or a SOAP element: no CR, LF or other
 * control character (they would split a header or smuggle a new one). */
static void check_wire(loader *ld, const char *base, const char *key, const char *value)
{
    const char *why = value ? iw_text_header_problem(value) : NULL;
    if (why) {
        char path[224];
        join_path(path, sizeof(path), base, key);
        add_error(ld, path, "%s; it would be sent in a header, a URL or a request body", why);
    }
}

static void *field_slot(const iw_conf_field *f, void *conf)
{
    return (char *)conf + f->off;
}

/* True when obj gives f a value (not null): its key or, for a secret, <key>_file. */
static bool field_given(const cJSON *obj, const iw_conf_field *f)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, f->key);
    if (j && !cJSON_IsNull(j))
        return true;
    if (f->kind != IW_CONF_SECRET)
        return false;
    char fkey[80];
    snprintf(fkey, sizeof(fkey), "%s_file", f->key);
    j = cJSON_GetObjectItemCaseSensitive(obj, fkey);
    return j && !cJSON_IsNull(j);
}

/* Reads field f of the target object obj (at path base) into the adapter settings conf. */
static void read_field(loader *ld, const cJSON *obj, const char *base, const iw_conf_field *f,
                       void *conf)
{
    char **str = field_slot(f, conf);
    char path[200];
    join_path(path, sizeof(path), base, f->key);
    if (f->required && !field_given(obj, f))
        add_error(ld, path, "required: %s", f->required);
    if (f->kind == IW_CONF_CUSTOM) {
        const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, f->key);
        if (j && !cJSON_IsNull(j))
            f->parse(ld, j, path, conf);
        return;
    }
    if (f->kind == IW_CONF_LIST) {
        get_string_list(ld, obj, base, f->key, field_slot(f, conf),
                        (size_t *)((char *)conf + f->count_off));
        return;
    }
    if (f->kind == IW_CONF_SECRET)
        get_secret(ld, obj, base, f->key, str);
    else
        get_string(ld, obj, base, f->key, str);
    if (f->kind == IW_CONF_CHOICE && *str && strcmp(*str, f->choices[0]) != 0 &&
        strcmp(*str, f->choices[1]) != 0)
        add_error(ld, path, "expected \"%s\" or \"%s\"", f->choices[0], f->choices[1]);
    char bad_url[160];
    if (f->kind == IW_CONF_URL && *str && !valid_url(*str, bad_url, sizeof(bad_url)))
        add_error(ld, path, "%s", bad_url);
    const char *why = f->check && *str ? f->check(*str) : NULL;
    if (why)
        add_error(ld, path, "%s", why);
    if (f->wire)
        check_wire(ld, base, f->key, *str);
}

/* Frees an adapter's settings struct and what its fields own. */
static void free_settings(const iw_conf_adapter *ad, void *conf)
{
    for (const iw_conf_field *f = ad->fields; conf && f->key; f++) {
        if (f->kind == IW_CONF_CUSTOM) {
            f->free(conf);
        } else if (f->kind == IW_CONF_LIST) {
            char **list = *(char ***)field_slot(f, conf);
            size_t n = *(size_t *)((char *)conf + f->count_off);
            for (size_t i = 0; list && i < n; i++)
                free(list[i]);
            free(list);
        } else {
            free(*(char **)field_slot(f, conf));
        }
    }
    free(conf);
}

/* A new settings struct for ad holding its seed values; NULL when out of memory. */
static void *new_settings(const iw_conf_adapter *ad)
{
    void *conf = calloc(1, ad->size ? ad->size : 1);
    for (const iw_conf_field *f = ad->fields; conf && f->key; f++) {
        if (!f->seed)
            continue;
        char **str = field_slot(f, conf);
        if (!(*str = strdup(f->seed))) {
            free_settings(ad, conf);
            return NULL;
        }
    }
    return conf;
}

/* True when key names f: its own key, or <key>_file for a secret. */
static bool key_names(const iw_conf_field *f, const char *key)
{
    size_t n = strlen(f->key);
    return strcmp(key, f->key) == 0 || (f->kind == IW_CONF_SECRET && strncmp(key, f->key, n) == 0 &&
                                        strcmp(key + n, "_file") == 0);
}

static const iw_conf_adapter *adapter_at(const loader *ld, size_t i)
{
    return ld->adapters ? ld->adapters(i) : NULL;
}

static const iw_conf_adapter *find_adapter(const loader *ld, const char *type)
{
    const iw_conf_adapter *ad;
    for (size_t i = 0; type && (ad = adapter_at(ld, i)); i++)
        if (strcmp(ad->type, type) == 0)
            return ad;
    return NULL;
}

int iw_target_conf_seed(iw_target_conf *t, const iw_conf_adapter *ad)
{
    if (t->adapter_conf && t->adapter != ad) {
        free_settings(t->adapter, t->adapter_conf);
        t->adapter_conf = NULL;
    }
    t->adapter = ad;
    if (!t->adapter_conf && !(t->adapter_conf = new_settings(ad)))
        return IW_ENOMEM;
    free(t->type);
    t->type = strdup(ad->type);
    if (!t->url)
        t->url = xstrdup(ad->url);
    t->retry.max_attempts = 8;
    t->retry.max_elapsed_ms = 10 * 60 * 1000;
    t->retry.base_ms = 250;
    t->retry.max_delay_ms = 60 * 1000;
    t->retry.max_retry_after_ms = 5 * 60 * 1000;
    t->connect_timeout_ms = 5000;
    t->request_timeout_ms = 30000;
    t->settle_ms = -1; /* request_ms unless set */
    t->max_concurrency = 32;
    t->rate_per_s = 0;
    t->rate_burst = 0;
    t->breaker_failures = 20;
    t->breaker_open_ms = 30000;
    t->breaker_shed = true;
    t->breaker_shed_after_ms = 30000;
    t->max_response_bytes = 4 * 1024 * 1024;
    t->tls_verify = true;
    t->follow_redirects = false;
    return t->type ? 0 : IW_ENOMEM;
}

size_t iw_target_conf_secrets(const iw_target_conf *t, const char **out, size_t max)
{
    size_t n = 0;
    const iw_conf_field *f = t->adapter && t->adapter_conf ? t->adapter->fields : NULL;
    for (; f && f->key; f++) {
        const char *v = f->kind == IW_CONF_SECRET ? *(char **)field_slot(f, t->adapter_conf) : NULL;
        if (v && *v && n < max)
            out[n++] = v;
    }
    return n;
}

void iw_target_conf_clear(iw_target_conf *t)
{
    free(t->name);
    free(t->type);
    free(t->url);
    free(t->tls_ca_file);
    if (t->adapter)
        free_settings(t->adapter, t->adapter_conf);
    memset(t, 0, sizeof(*t));
}

/* The keys every target has; the rest belong to its adapter (iw_conf_adapter). */
static const char *const TARGET_KEYS[] = {
    "type", "url",     "retry", "timeouts",         "max_concurrency",
    "rate", "breaker", "tls",   "follow_redirects", "max_response_bytes",
    NULL};

/* The first adapter type with a field named key, NULL when none has one. */
static const iw_conf_adapter *adapter_with_key(const loader *ld, const char *key)
{
    const iw_conf_adapter *ad;
    for (size_t i = 0; (ad = adapter_at(ld, i)); i++)
        for (const iw_conf_field *f = ad->fields; f->key; f++)
            if (key_names(f, key))
                return ad;
    return NULL;
}

/* Reports keys of a target object that are neither a key every target has nor one of its own
 * adapter's (own: NULL when the type is missing or unknown, reported already: then only keys
 * no adapter has are reported). A key of another adapter type is refused too: it would be
 * ignored, and a config that sets one adapter's key on another's target is wrong about something. */
static void check_target_keys(loader *ld, const cJSON *obj, const char *base,
                              const iw_conf_adapter *own)
{
    for (const cJSON *c = obj->child; c; c = c->next) {
        bool ok = false;
        for (size_t i = 0; TARGET_KEYS[i] && !ok; i++)
            ok = strcmp(c->string, TARGET_KEYS[i]) == 0;
        for (const iw_conf_field *f = own ? own->fields : NULL; f && f->key && !ok; f++)
            ok = key_names(f, c->string);
        if (ok)
            continue;
        const iw_conf_adapter *other = adapter_with_key(ld, c->string);
        if (other && !own)
            continue;
        char path[160];
        join_path(path, sizeof(path), base, c->string);
        if (other)
            add_error(ld, path, "unknown key for a %s target (it is a key of %s)", own->type,
                      other->type);
        else
            add_error(ld, path, "unknown key");
    }
}

/* Writes "a, b, c" of every adapter type into buf (for messages). */
static void type_names(const loader *ld, char *buf, size_t len)
{
    const iw_conf_adapter *ad;
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; (ad = adapter_at(ld, i)) && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%s%s", i ? ", " : "", ad->type);
}

/* Instance names go into headers (Idempotency-Key), result ids, logs and metric labels. */
static bool valid_instance_name(const char *s)
{
    if (!s || !*s || strlen(s) > 64)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-' || *s == '.'))
            return false;
    return true;
}

static void load_target(loader *ld, const cJSON *obj, const char *name, iw_target_conf *t)
{
    char base[160];
    join_path(base, sizeof(base), "targets", name);
    t->name = strdup(name);
    if (!valid_instance_name(name))
        add_error(ld, base,
                  "an instance name is 1 to 64 letters, digits, '_', '-' or '.' (it is sent in "
                  "headers and printed in results, logs and metric labels)");
    if (!cJSON_IsObject(obj)) {
        add_error(ld, base, "expected an object");
        return;
    }
    char *type = NULL;
    get_string(ld, obj, base, "type", &type);
    char path[200], types[200];
    join_path(path, sizeof(path), base, "type");
    type_names(ld, types, sizeof(types));
    const iw_conf_adapter *ad = find_adapter(ld, type);
    if (!type) {
        add_error(ld, path, "required: one of %s", types);
    } else if (!ad) {
        add_error(ld, path, "unknown adapter type \"%.*s\"; use one of %s",
                  iw_text_utf8_prec(type, 40), type, types);
    } else if (iw_target_conf_seed(t, ad) != 0) {
        add_error(ld, path, "out of memory");
    } else if (ad->check_name && valid_instance_name(name)) {
        const char *problem = ad->check_name(name);
        if (problem)
            add_error(ld, base, "%s", problem);
    }
    free(type);
    char *url = NULL;
    get_string(ld, obj, base, "url", &url);
    if (url) {
        free(t->url);
        t->url = url;
    }
    join_path(path, sizeof(path), base, "url");
    char why[160];
    const char *url_problem = NULL;
    if (t->type && !valid_url(t->url, why, sizeof(why))) {
        add_error(ld, path, "%s", why);
        url_problem = why; /* said once (review 98) */
    } else if (t->type && ad && ad->check_url && (url_problem = ad->check_url(t->url)))
        add_error(ld, path, "%s", url_problem);
    check_wire(ld, base, "url", t->url);
    check_target_keys(ld, obj, base, t->adapter_conf ? ad : NULL);
    for (const iw_conf_field *f = t->adapter_conf ? ad->fields : NULL; f && f->key; f++)
        read_field(ld, obj, base, f, t->adapter_conf);
    if (!url_problem && t->url && t->adapter_conf && ad->check_url_with &&
        (url_problem = ad->check_url_with(t->url, t->adapter_conf)))
        add_error(ld, path, "%s", url_problem);

    char sub[200];
    const cJSON *r = get_object(ld, obj, base, "retry");
    join_path(sub, sizeof(sub), base, "retry");
    if (r) {
        static const char *const k[] = {"max_attempts", "max_elapsed_s",     "base_ms",
                                        "max_delay_ms", "max_retry_after_s", NULL};
        check_keys(ld, r, sub, k);
        get_int(ld, r, sub, "max_attempts", 1, 1000, &t->retry.max_attempts);
        get_seconds_ms(ld, r, sub, "max_elapsed_s", 1, 7 * 86400, &t->retry.max_elapsed_ms);
        get_int64(ld, r, sub, "base_ms", 1, 3600000, &t->retry.base_ms);
        get_int64(ld, r, sub, "max_delay_ms", 1, 86400000, &t->retry.max_delay_ms);
        get_seconds_ms(ld, r, sub, "max_retry_after_s", 0, 86400, &t->retry.max_retry_after_ms);
        /* review 92: a first delay the cap cuts down says a back-off that never happens */
        if (cJSON_GetObjectItemCaseSensitive(r, "base_ms") &&
            t->retry.base_ms > t->retry.max_delay_ms) {
            char p2[220];
            join_path(p2, sizeof(p2), sub, "base_ms");
            add_error(ld, p2,
                      "%lld ms exceeds max_delay_ms (%lld ms), the longest wait between attempts",
                      (long long)t->retry.base_ms, (long long)t->retry.max_delay_ms);
        }
    }
    const cJSON *to = get_object(ld, obj, base, "timeouts");
    join_path(sub, sizeof(sub), base, "timeouts");
    if (to) {
        static const char *const k[] = {"connect_ms", "request_ms", "settle_ms", NULL};
        check_keys(ld, to, sub, k);
        get_int64(ld, to, sub, "connect_ms", 1, 600000, &t->connect_timeout_ms);
        get_int64(ld, to, sub, "request_ms", 1, 3600000, &t->request_timeout_ms);
        get_int64(ld, to, sub, "settle_ms", 0, 3600000, &t->settle_ms);
        /* review 92: request_ms bounds the whole call, the connect included */
        if (cJSON_GetObjectItemCaseSensitive(to, "connect_ms") &&
            t->connect_timeout_ms > t->request_timeout_ms) {
            char p2[220];
            join_path(p2, sizeof(p2), sub, "connect_ms");
            add_error(ld, p2,
                      "%lld ms exceeds request_ms (%lld ms), which bounds the whole call, the "
                      "connect included",
                      (long long)t->connect_timeout_ms, (long long)t->request_timeout_ms);
        }
    }
    t->settle_ms = iw_target_settle_ms(t);
    get_int(ld, obj, base, "max_concurrency", 1, 10000, &t->max_concurrency);
    const cJSON *rate = get_object(ld, obj, base, "rate");
    join_path(sub, sizeof(sub), base, "rate");
    if (rate) {
        static const char *const k[] = {"per_s", "burst", NULL};
        check_keys(ld, rate, sub, k);
        const cJSON *ps = cJSON_GetObjectItemCaseSensitive(rate, "per_s");
        if (ps && !cJSON_IsNull(ps)) {
            char p2[220];
            join_path(p2, sizeof(p2), sub, "per_s");
            if (!cJSON_IsNumber(ps) || ps->valuedouble < 0 || ps->valuedouble > 1e6)
                add_error(ld, p2, "expected a number of requests per second, 0 to 1000000");
            else
                t->rate_per_s = ps->valuedouble;
        }
        get_int(ld, rate, sub, "burst", 0, 1000000, &t->rate_burst);
        if (t->rate_burst > 0 && !(t->rate_per_s > 0)) { /* review 92: silently no limit */
            char p2[220];
            join_path(p2, sizeof(p2), sub, "burst");
            add_error(ld, p2, "limits nothing without per_s (the rate its tokens come back at)");
        }
    }
    if (t->rate_per_s > 0 && t->rate_burst == 0)
        t->rate_burst = t->rate_per_s < 1 ? 1 : (int)t->rate_per_s;
    const cJSON *br = get_object(ld, obj, base, "breaker");
    join_path(sub, sizeof(sub), base, "breaker");
    if (br) {
        static const char *const k[] = {"failures", "open_s", "shed", "shed_after_s", NULL};
        check_keys(ld, br, sub, k);
        get_int(ld, br, sub, "failures", 1, 1000000, &t->breaker_failures);
        get_seconds_ms(ld, br, sub, "open_s", 1, 86400, &t->breaker_open_ms);
        get_bool(ld, br, sub, "shed", &t->breaker_shed);
        get_seconds_ms(ld, br, sub, "shed_after_s", 0, 86400, &t->breaker_shed_after_ms);
    }
    const cJSON *tls = get_object(ld, obj, base, "tls");
    join_path(sub, sizeof(sub), base, "tls");
    if (tls) {
        static const char *const k[] = {"verify", "ca_file", NULL};
        check_keys(ld, tls, sub, k);
        get_bool(ld, tls, sub, "verify", &t->tls_verify);
        get_string(ld, tls, sub, "ca_file", &t->tls_ca_file);
        relative_to_config(ld, &t->tls_ca_file);
        if (t->tls_ca_file && access(t->tls_ca_file, R_OK) != 0) {
            char p2[220];
            join_path(p2, sizeof(p2), sub, "ca_file");
            add_error(ld, p2, "cannot read %s: %s", t->tls_ca_file, strerror(errno));
        }
    }
    get_bool(ld, obj, base, "follow_redirects", &t->follow_redirects);
    get_int64(ld, obj, base, "max_response_bytes", 1024, 1LL << 32, &t->max_response_bytes);
}

static void load_routes(loader *ld, const cJSON *routes, iw_config *cfg)
{
    int count = cJSON_GetArraySize(routes);
    cfg->routes = calloc((size_t)count + 1, sizeof(*cfg->routes));
    if (!cfg->routes)
        return;
    for (const cJSON *c = routes->child; c; c = c->next) {
        iw_route *r = &cfg->routes[cfg->n_routes++];
        r->tenant = strdup(c->string);
        get_string_list(ld, routes, "routes", c->string, &r->targets, &r->n_targets);
        char path[160];
        join_path(path, sizeof(path), "routes", c->string);
        if (!cJSON_IsArray(c))
            continue;
        if (r->n_targets == 0)
            add_error(ld, path, "a route needs at least one target");
        for (size_t i = 0; i < r->n_targets; i++) {
            if (!iw_config_target(cfg, r->targets[i])) {
                char ipath[224];
                snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i);
                add_error(ld, ipath, "no target instance named \"%.*s\" under targets",
                          iw_text_utf8_prec(r->targets[i], 60), r->targets[i]);
            }
        }
    }
}

static void set_defaults(iw_config *cfg)
{
    cfg->log_level = strdup("info");
    cfg->max_in_flight = 512;
    cfg->max_pending_per_partition = 2000;
    cfg->max_pending_bytes = IW_DEFAULT_MAX_PENDING_BYTES;
    cfg->shutdown_grace_ms = 25000;
    cfg->kafka_group_id = strdup("invoice-worker");
    cfg->input_topic = strdup("invoice-events");
    cfg->result_topic = strdup("invoice-results");
    cfg->dlq_topic = strdup("invoice-events-dlq");
    cfg->redis_host = strdup("127.0.0.1");
    cfg->redis_port = 6379;
    cfg->ledger_ttl_s = 7 * 86400;
    cfg->lease_ms = 60000;
    cfg->http_listen = strdup("0.0.0.0:8080");
}

int iw_listen_parse(const char *listen, struct sockaddr_storage *ss, socklen_t *sl)
{
    char host[128] = "0.0.0.0";
    const char *colon = strrchr(listen, ':');
    if (!colon)
        return -1;
    bool v6 = listen[0] == '[';
    if (v6) {
        const char *close = strchr(listen, ']');
        if (!close || close + 1 != colon)
            return -1;
        snprintf(host, sizeof(host), "%.*s", (int)(close - listen - 1), listen + 1);
    } else if (colon > listen) {
        snprintf(host, sizeof(host), "%.*s", (int)(colon - listen), listen);
    }
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || colon[1] == '\0' || port < 0 || port > 65535)
        return -1;
    memset(ss, 0, sizeof(*ss));
    if (v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        *sl = sizeof(*a);
        return inet_pton(AF_INET6, host, &a->sin6_addr) == 1 ? 0 : -1;
    }
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    *sl = sizeof(*a);
    return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : -1;
}

/* Where a common key's value came from, for its error: the IW_* variable overriding it, when
 * set, else the key in the file. */
static const char *source_of(const char *key, const char *env)
{
    return getenv(env) ? env : key;
}

/* IW_* environment variables override the common keys. */
static void apply_env(loader *ld, iw_config *cfg)
{
    static const struct {
        const char *env;
        size_t off;
    } strs[] = {
        {"IW_KAFKA_BROKERS", offsetof(iw_config, kafka_brokers)},
        {"IW_KAFKA_GROUP_ID", offsetof(iw_config, kafka_group_id)},
        {"IW_REDIS_HOST", offsetof(iw_config, redis_host)},
        {"IW_HTTP_LISTEN", offsetof(iw_config, http_listen)},
        {"IW_LOG_LEVEL", offsetof(iw_config, log_level)},
        {"IW_WORKER_ID", offsetof(iw_config, worker_id)},
    };
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
        const char *v = getenv(strs[i].env);
        if (!v)
            continue;
        char **dst = (char **)((char *)cfg + strs[i].off);
        free(*dst);
        *dst = strdup(v);
    }
    const char *v;
    if ((v = getenv("IW_REDIS_PORT"))) {
        char *end;
        long p = strtol(v, &end, 10);
        if (*v && !*end && p > 0 && p < 65536)
            cfg->redis_port = (int)p;
        else
            add_error(ld, "IW_REDIS_PORT", "expected a port number");
    }
    if ((v = getenv("IW_MAX_IN_FLIGHT"))) {
        char *end;
        long p = strtol(v, &end, 10);
        if (*v && !*end && p > 0 && p <= 100000)
            cfg->max_in_flight = (int)p;
        else
            add_error(ld, "IW_MAX_IN_FLIGHT", "expected an integer from 1 to 100000");
    }
}

/* Kafka's own rule for a topic name: 1 to 249 of [A-Za-z0-9._-], and not "." or "..". */
static bool kafka_topic_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 249 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
            return false;
    return true;
}

/* True when Kafka takes a and b as one topic: '.' and '_' collide in its metric names, so it
 * refuses to create one beside the other. */
static bool same_topic(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (*a != *b && !((*a == '.' || *a == '_') && (*b == '.' || *b == '_')))
            return false;
    return *a == *b;
}

/* Each topic a valid name, and the three different: a worker reading its own results or dead
 * letters would take each as a poison event and write it back, without end (and replay would
 * re-send results as events). */
static void check_topics(loader *ld, const iw_config *cfg)
{
    const char *const names[3] = {cfg->input_topic, cfg->result_topic, cfg->dlq_topic};
    static const char *const paths[3] = {"kafka.topics.input", "kafka.topics.results",
                                         "kafka.topics.dead_letter"};
    for (int i = 0; i < 3; i++) {
        if (!names[i])
            continue;
        if (!kafka_topic_name(names[i])) {
            add_error(ld, paths[i], "not a Kafka topic name (1 to 249 of A-Z a-z 0-9 . _ -)");
            continue;
        }
        for (int k = 0; k < i; k++)
            if (names[k] && same_topic(names[k], names[i]))
                add_error(ld, paths[i], "must differ from %s (\"%s\"%s)", paths[k], names[k],
                          strcmp(names[k], names[i]) ? ": Kafka takes '.' and '_' as one" : "");
    }
}

static void load_kafka(loader *ld, const cJSON *k, iw_config *cfg)
{
    static const char *const keys[] = {"brokers", "group_id", "topics", "properties", NULL};
    check_keys(ld, k, "kafka", keys);
    get_string(ld, k, "kafka", "brokers", &cfg->kafka_brokers);
    if (cfg->kafka_brokers && !*cfg->kafka_brokers)
        add_error(ld, "kafka.brokers", "must not be empty (host:port[,host:port...])");
    get_string(ld, k, "kafka", "group_id", &cfg->kafka_group_id);
    const cJSON *t = get_object(ld, k, "kafka", "topics");
    if (t) {
        static const char *const tk[] = {"input", "results", "dead_letter", NULL};
        check_keys(ld, t, "kafka.topics", tk);
        get_string(ld, t, "kafka.topics", "input", &cfg->input_topic);
        get_string(ld, t, "kafka.topics", "results", &cfg->result_topic);
        get_string(ld, t, "kafka.topics", "dead_letter", &cfg->dlq_topic);
    }
    check_topics(ld, cfg);
    const cJSON *p = get_object(ld, k, "kafka", "properties");
    if (!p)
        return;
    int count = cJSON_GetArraySize(p);
    cfg->kafka_props = calloc((size_t)count * 2 + 1, sizeof(char *));
    if (!cfg->kafka_props)
        return;
    for (const cJSON *c = p->child; c; c = c->next) {
        char path[160];
        join_path(path, sizeof(path), "kafka.properties", c->string);
        char *val = NULL;
        if (cJSON_IsString(c)) {
            /* sasl.password and ssl.key.password may come from files: "<key>_file" */
            size_t kl = strlen(c->string);
            if (kl > 5 && strcmp(c->string + kl - 5, "_file") == 0 &&
                strstr(c->string, "password")) {
                char plain[160];
                snprintf(plain, sizeof(plain), "%.*s", (int)(kl - 5), c->string);
                if (cJSON_GetObjectItemCaseSensitive(p, plain)) { /* review 100: which won? */
                    add_error(ld, path, "set either %s or %s, not both", plain, c->string);
                    continue;
                }
                char *file = expand_env(ld, path, c->valuestring);
                if (file) {
                    val = read_secret_file(ld, path, file, c->valuestring);
                    free(file);
                }
                if (val) {
                    cfg->kafka_props[cfg->n_kafka_props * 2] = strndup(c->string, kl - 5);
                    cfg->kafka_props[cfg->n_kafka_props * 2 + 1] = val;
                    cfg->n_kafka_props++;
                }
                continue;
            }
            val = expand_env(ld, path, c->valuestring);
            if (val && strstr(c->string, "password")) /* sasl.password, ssl.key.password */
                check_inline_secret(ld, path, val);
        } else if (cJSON_IsNumber(c) || cJSON_IsBool(c)) {
            val = cJSON_PrintUnformatted(c);
        } else {
            add_error(ld, path, "expected a string, number or boolean");
        }
        if (val) {
            cfg->kafka_props[cfg->n_kafka_props * 2] = strdup(c->string);
            cfg->kafka_props[cfg->n_kafka_props * 2 + 1] = val;
            cfg->n_kafka_props++;
        }
    }
}

static void load_root(loader *ld, const cJSON *root, iw_config *cfg)
{
    static const char *const keys[] = {"worker",  "kafka",  "redis", "http",
                                       "targets", "routes", NULL};
    check_keys(ld, root, "", keys);
    const cJSON *w = get_object(ld, root, "", "worker");
    if (w) {
        static const char *const k[] = {"id",
                                        "log_level",
                                        "max_in_flight",
                                        "max_pending_per_partition",
                                        "max_pending_bytes",
                                        "shutdown_grace_s",
                                        NULL};
        check_keys(ld, w, "worker", k);
        get_string(ld, w, "worker", "id", &cfg->worker_id);
        get_string(ld, w, "worker", "log_level", &cfg->log_level);
        get_int(ld, w, "worker", "max_in_flight", 1, 100000, &cfg->max_in_flight);
        get_int(ld, w, "worker", "max_pending_per_partition", 1, 10000000,
                &cfg->max_pending_per_partition);
        get_int64(ld, w, "worker", "max_pending_bytes", 1024 * 1024, 64LL * 1024 * 1024 * 1024,
                  &cfg->max_pending_bytes);
        get_seconds_ms(ld, w, "worker", "shutdown_grace_s", 1, 3600, &cfg->shutdown_grace_ms);
    }
    const cJSON *k = get_object(ld, root, "", "kafka");
    if (k)
        load_kafka(ld, k, cfg);
    const cJSON *r = get_object(ld, root, "", "redis");
    if (r) {
        static const char *const rk[] = {"host",         "port",    "password", "password_file",
                                         "ledger_ttl_s", "lease_s", NULL};
        check_keys(ld, r, "redis", rk);
        get_string(ld, r, "redis", "host", &cfg->redis_host);
        get_int(ld, r, "redis", "port", 1, 65535, &cfg->redis_port);
        get_secret(ld, r, "redis", "password", &cfg->redis_password);
        get_int64(ld, r, "redis", "ledger_ttl_s", 60, 366LL * 86400, &cfg->ledger_ttl_s);
        get_seconds_ms(ld, r, "redis", "lease_s", 1, 86400, &cfg->lease_ms);
    }
    const cJSON *h = get_object(ld, root, "", "http");
    if (h) {
        static const char *const hk[] = {"listen", NULL};
        check_keys(ld, h, "http", hk);
        get_string(ld, h, "http", "listen", &cfg->http_listen);
    }
    const cJSON *t = get_object(ld, root, "", "targets");
    if (t) {
        int count = cJSON_GetArraySize(t);
        cfg->targets = calloc((size_t)count + 1, sizeof(*cfg->targets));
        for (const cJSON *c = t->child; c && cfg->targets; c = c->next)
            load_target(ld, c, c->string, &cfg->targets[cfg->n_targets++]);
    }
    if (!cfg->n_targets)
        add_error(ld, "targets", "at least one target instance is required");
    const cJSON *routes = get_object(ld, root, "", "routes");
    if (routes)
        load_routes(ld, routes, cfg);
}

static void finish(loader *ld, iw_config *cfg)
{
    apply_env(ld, cfg);
    /* what run needs of these, checked here so that check-config says it (after IW_*) */
    if (!cfg->kafka_group_id || !*cfg->kafka_group_id)
        add_error(ld, source_of("kafka.group_id", "IW_KAFKA_GROUP_ID"),
                  "must not be empty (the consumer group's name)");
    if (!cfg->redis_host || !*cfg->redis_host)
        add_error(ld, source_of("redis.host", "IW_REDIS_HOST"), "must not be empty");
    /* a REDIS_URL put here would print its password in check-config's line and in every
     * connect error (review 103); neither is quoted */
    else if (cfg->redis_host[strspn(cfg->redis_host,
                                    "abcdefghijklmnopqrstuvwxyz"
                                    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:[]%")])
        add_error(ld, source_of("redis.host", "IW_REDIS_HOST"),
                  "a host name or an address, not a URL (its password goes in redis.password "
                  "or redis.password_file)");
    if (cfg->kafka_brokers && strchr(cfg->kafka_brokers, '@'))
        add_error(ld, source_of("kafka.brokers", "IW_KAFKA_BROKERS"),
                  "holds '@': brokers are [protocol://]host:port, and a SASL password goes in "
                  "kafka.properties sasl.password or sasl.password_file");
    struct sockaddr_storage ss;
    socklen_t sl;
    if (cfg->http_listen && *cfg->http_listen && iw_listen_parse(cfg->http_listen, &ss, &sl) != 0)
        add_error(ld, source_of("http.listen", "IW_HTTP_LISTEN"),
                  "expected IPv4-address:port, :port or [IPv6-address]:port (\"\" for none)");
    /* A call on the wire when its partition moves (or its fence cannot be renewed) must end
     * before its fence lease does, or another worker could send a newer version first. */
    for (size_t i = 0; i < cfg->n_targets; i++) {
        const iw_target_conf *t = &cfg->targets[i];
        if (t->request_timeout_ms + IW_LEASE_MARGIN_MS >= cfg->lease_ms)
            add_error(ld, "redis.lease_s",
                      "must exceed targets.%s.timeouts.request_ms (%lld ms) by more than %d ms",
                      t->name ? t->name : "?", (long long)t->request_timeout_ms,
                      IW_LEASE_MARGIN_MS);
    }
    /* where the worker id came from, for its error: the file, IW_WORKER_ID, or (neither set)
     * HOSTNAME, else the kernel's host name */
    const char *id_from = source_of("worker.id", "IW_WORKER_ID"), *id_note = "";
    if (!cfg->worker_id) {
        const char *h = getenv("HOSTNAME");
        char buf[256] = "";
        id_from = "HOSTNAME";
        if (!h || !*h) {
            if (gethostname(buf, sizeof(buf) - 1) != 0)
                snprintf(buf, sizeof(buf), "worker");
            h = buf;
            id_from = "worker.id";
            id_note = "not set, and the host name, its default, ";
        }
        cfg->worker_id = strdup(h);
        if (!id_note[0])
            id_note = "the worker id when worker.id and IW_WORKER_ID are not set, ";
    }
    char longer[48];
    snprintf(longer, sizeof(longer), "is longer than %d bytes", IW_WORKER_ID_MAX);
    const char *why = !*cfg->worker_id ? "must not be empty"
                      : strlen(cfg->worker_id) > IW_WORKER_ID_MAX
                          ? longer
                          : iw_text_name_problem(cfg->worker_id);
    if (why)
        add_error(ld, id_from, "%s (%sprinted in results and logs%s)", why,
                  id_note[0] ? id_note : "it is ",
                  id_note[0] ? ": set worker.id or IW_WORKER_ID" : "");
    static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
    bool ok = false;
    for (size_t i = 0; levels[i] && !ok; i++)
        ok = strcmp(cfg->log_level, levels[i]) == 0;
    if (!ok)
        add_error(ld, source_of("worker.log_level", "IW_LOG_LEVEL"),
                  "expected debug, info, warn or error");
}

static void duplicate_found(void *arg, const char *path, const char *why)
{
    add_error(arg, path, "%s", why);
}

/* Parses len bytes of config text as strictly as an event: see iw_json_prescan, then no text
 * after the object and no duplicate key. */
/* "line L, column C (byte N)" of byte offset at in json (columns count bytes, from 1). */
static void place_of(const char *json, size_t at, char *out, size_t len)
{
    size_t line = 1, col = 1;
    for (size_t i = 0; i < at; i++) {
        col = json[i] == '\n' ? 1 : col + 1;
        line += json[i] == '\n';
    }
    snprintf(out, len, "line %zu, column %zu (byte %zu)", line, col, at);
}

static cJSON *parse_strict(loader *ld, const char *json, size_t len)
{
    char err[256], where[96];
    const char *nul = memchr(json, '\0', len);
    if (nul) {
        place_of(json, (size_t)(nul - json), where, sizeof(where));
        add_error(ld, "", "a NUL byte at %s: a config file is JSON text", where);
        return NULL;
    }
    if (iw_json_prescan(json, len, CONFIG_MAX_BYTES, CONFIG_MAX_DEPTH, "config", err,
                        sizeof(err))) {
        add_error(ld, "", "%s", err);
        return NULL;
    }
    size_t tail = 0;
    cJSON *root = iw_json_parse_one(json, len, &tail);
    if (!root && !tail) {
        const char *at = cJSON_GetErrorPtr();
        if (at && at >= json && at <= json + len) {
            place_of(json, (size_t)(at - json), where, sizeof(where));
            add_error(ld, "", "invalid JSON near %s", where);
        } else {
            add_error(ld, "", "invalid JSON");
        }
        return NULL;
    }
    if (!root) {
        place_of(json, tail, where, sizeof(where));
        add_error(ld, "", "invalid JSON at %s: text after the top-level object", where);
    } else if (!cJSON_IsObject(root)) {
        add_error(ld, "", "expected a JSON object at the top level");
    } else {
        iw_json_duplicate_keys(root, "", CONFIG_MAX_KEYS, 100000, duplicate_found, ld);
    }
    if (ld->errs->count) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

iw_config *iw_config_parse_with(const char *json, size_t len, const char *base_dir,
                                iw_conf_adapters adapters, iw_config_errors *errs)
{
    memset(errs, 0, sizeof(*errs));
    loader ld = {errs, base_dir, adapters};
    cJSON *root = parse_strict(&ld, json, len);
    if (!root)
        return NULL;
    iw_config *cfg = calloc(1, sizeof(*cfg));
    if (!cfg) {
        cJSON_Delete(root);
        return NULL;
    }
    set_defaults(cfg);
    load_root(&ld, root, cfg);
    cJSON_Delete(root);
    finish(&ld, cfg);
    if (errs->count) {
        iw_config_free(cfg);
        return NULL;
    }
    return cfg;
}

iw_config *iw_config_load_with(const char *path, iw_conf_adapters adapters, iw_config_errors *errs)
{
    memset(errs, 0, sizeof(*errs));
    loader ld = {errs, NULL, adapters};
    FILE *f = fopen(path, "rb");
    if (!f) {
        add_error(&ld, "", "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        add_error(&ld, "", "%s is a directory, not a config file", path);
        fclose(f);
        return NULL;
    }
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 4096 > cap) {
            char *b = cap > 16 * 1024 * 1024 ? NULL : realloc(buf, cap * 2);
            if (!b) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = b;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    int read_err = ferror(f) ? errno : 0;
    fclose(f);
    if (buf && read_err) {
        free(buf);
        add_error(&ld, "", "cannot read %s: %s", path, strerror(read_err));
        return NULL;
    }
    if (!buf) {
        add_error(&ld, "", "%s is too large for a config file", path);
        return NULL;
    }
    buf[n] = '\0';
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    iw_config *cfg =
        iw_config_parse_with(buf, n, slash ? dir : ".", adapters, errs); /* NUL bytes refused */
    free(buf);
    return cfg;
}

/* Reads ad's placeholder credentials into t (they are the adapter's own example, checked by
 * its tests: a problem with them would be a bug, not a config error). */
static void apply_placeholders(const iw_conf_adapter *ad, iw_target_conf *t)
{
    cJSON *obj = ad->placeholders ? cJSON_Parse(ad->placeholders) : NULL;
    iw_config_errors errs = {0};
    loader ld = {&errs, NULL, NULL};
    for (const iw_conf_field *f = ad->fields; obj && f->key; f++)
        read_field(&ld, obj, t->name, f, t->adapter_conf);
    cJSON_Delete(obj);
}

iw_config *iw_config_defaults_with(iw_conf_adapters adapters)
{
    iw_config *cfg = calloc(1, sizeof(*cfg));
    if (!cfg)
        return NULL;
    set_defaults(cfg);
    size_t n = 0;
    while (adapters(n))
        n++;
    cfg->targets = calloc(n ? n : 1, sizeof(*cfg->targets));
    if (!cfg->targets) {
        iw_config_free(cfg);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        const iw_conf_adapter *ad = adapters(i);
        iw_target_conf *t = &cfg->targets[cfg->n_targets++];
        t->name = strdup(ad->type);
        if (iw_target_conf_seed(t, ad) == 0)
            apply_placeholders(ad, t);
    }
    cfg->worker_id = strdup("render");
    return cfg;
}

void iw_config_free(iw_config *cfg)
{
    if (!cfg)
        return;
    char **strs[] = {&cfg->worker_id,      &cfg->log_level,   &cfg->kafka_brokers,
                     &cfg->kafka_group_id, &cfg->input_topic, &cfg->result_topic,
                     &cfg->dlq_topic,      &cfg->redis_host,  &cfg->redis_password,
                     &cfg->http_listen};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        free(*strs[i]);
    for (size_t i = 0; i < cfg->n_kafka_props * 2; i++)
        free(cfg->kafka_props[i]);
    free(cfg->kafka_props);
    for (size_t i = 0; i < cfg->n_targets; i++)
        iw_target_conf_clear(&cfg->targets[i]);
    free(cfg->targets);
    for (size_t i = 0; i < cfg->n_routes; i++) {
        free(cfg->routes[i].tenant);
        for (size_t k = 0; k < cfg->routes[i].n_targets; k++)
            free(cfg->routes[i].targets[k]);
        free(cfg->routes[i].targets);
    }
    free(cfg->routes);
    free(cfg);
}

const iw_target_conf *iw_config_target(const iw_config *cfg, const char *name)
{
    for (size_t i = 0; cfg && name && i < cfg->n_targets; i++)
        if (cfg->targets[i].name && strcmp(cfg->targets[i].name, name) == 0)
            return &cfg->targets[i];
    return NULL;
}

const iw_route *iw_config_route(const iw_config *cfg, const char *tenant)
{
    const iw_route *star = NULL;
    for (size_t i = 0; cfg && i < cfg->n_routes; i++) {
        if (tenant && strcmp(cfg->routes[i].tenant, tenant) == 0)
            return &cfg->routes[i];
        if (strcmp(cfg->routes[i].tenant, "*") == 0)
            star = &cfg->routes[i];
    }
    return star;
}

bool iw_env_has_no_proxy_vars(void)
{
    static const char suffix[] = "_proxy";
    const size_t ls = sizeof(suffix) - 1;
    for (char **e = environ; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        size_t n = eq ? (size_t)(eq - *e) : strlen(*e);
        if (n >= ls && strncasecmp(*e + n - ls, suffix, ls) == 0)
            return false;
    }
    return true;
}
