/* config.c: the simulator's settings: defaults and the JSON config file. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sim.h"

/* InvoiceXpress units, from seed 004 alone: its sample uses "unit" (line 33) and its errors
 * refuse "kg" and an empty unit (line 139); it lists no other unit. So by default every other
 * unit is accepted (a real account may have more), and a config that names its
 * "accepted_units" acts out a stricter account. */
static const char *const seed_refused_units[] = {"kg", ""};

/* English short names accepted as InvoiceXpress countries, as in the seed's sample
 * ("Germany", line 20) and its refusal ("Country Germani was not found", line 139): the
 * names of ISO 3166-1, kept apart from the adapter's own table. A config may replace it
 * ("countries"). */
static const char *const default_countries[] = {"Albania",
                                                "Andorra",
                                                "Angola",
                                                "Argentina",
                                                "Armenia",
                                                "Australia",
                                                "Austria",
                                                "Azerbaijan",
                                                "Bahrain",
                                                "Belarus",
                                                "Belgium",
                                                "Bosnia and Herzegovina",
                                                "Brazil",
                                                "Bulgaria",
                                                "Canada",
                                                "Cape Verde",
                                                "Chile",
                                                "China",
                                                "Colombia",
                                                "Croatia",
                                                "Cyprus",
                                                "Czech Republic",
                                                "Denmark",
                                                "East Timor",
                                                "Egypt",
                                                "Equatorial Guinea",
                                                "Estonia",
                                                "Finland",
                                                "France",
                                                "Georgia",
                                                "Germany",
                                                "Gibraltar",
                                                "Greece",
                                                "Guinea-Bissau",
                                                "Hong Kong",
                                                "Hungary",
                                                "Iceland",
                                                "India",
                                                "Indonesia",
                                                "Ireland",
                                                "Israel",
                                                "Italy",
                                                "Japan",
                                                "Kazakhstan",
                                                "Kosovo",
                                                "Kuwait",
                                                "Latvia",
                                                "Liechtenstein",
                                                "Lithuania",
                                                "Luxembourg",
                                                "Macau",
                                                "Malaysia",
                                                "Malta",
                                                "Mexico",
                                                "Moldova",
                                                "Monaco",
                                                "Montenegro",
                                                "Morocco",
                                                "Mozambique",
                                                "Netherlands",
                                                "New Zealand",
                                                "Nigeria",
                                                "North Macedonia",
                                                "Norway",
                                                "Oman",
                                                "Peru",
                                                "Philippines",
                                                "Poland",
                                                "Portugal",
                                                "Qatar",
                                                "Romania",
                                                "Russia",
                                                "San Marino",
                                                "Sao Tome and Principe",
                                                "Saudi Arabia",
                                                "Serbia",
                                                "Singapore",
                                                "Slovakia",
                                                "Slovenia",
                                                "South Africa",
                                                "South Korea",
                                                "Spain",
                                                "Sweden",
                                                "Switzerland",
                                                "Taiwan",
                                                "Thailand",
                                                "Tunisia",
                                                "Turkey",
                                                "Ukraine",
                                                "United Arab Emirates",
                                                "United Kingdom",
                                                "United States",
                                                "Uruguay",
                                                "Vatican City",
                                                "Venezuela",
                                                "Vietnam"};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static char **copy_list(const char *const *src, size_t n)
{
    char **out = calloc(n ? n : 1, sizeof(*out));
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        out[i] = strdup(src[i]);
        if (!out[i]) {
            for (size_t k = 0; k < i; k++)
                free(out[k]);
            free(out);
            return NULL;
        }
    }
    return out;
}

static void free_list(char **l, size_t n)
{
    for (size_t i = 0; l && i < n; i++)
        free(l[i]);
    free(l);
}

void iw_sim_conf_defaults(iw_sim_conf *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->listen_host, sizeof(c->listen_host), "127.0.0.1");
    c->validate = true;
    c->threads_hint = 4096;
    for (int t = 0; t < IW_SIM_N_TARGETS; t++) {
        const iw_sim_setting *decl = iw_sim_routes[t]->settings;
        for (int i = 0; i < IW_SIM_MAX_SETTINGS && decl[i].key; i++) {
            c->creds[t].key[i] = decl[i].key;
            snprintf(c->creds[t].value[i], IW_SIM_SECRET_LEN, "%s",
                     decl[i].value ? decl[i].value : "");
        }
    }
    c->countries = copy_list(default_countries, COUNT(default_countries));
    c->n_countries = c->countries ? COUNT(default_countries) : 0;
}

void iw_sim_conf_clear(iw_sim_conf *c)
{
    free_list(c->units, c->n_units);
    free_list(c->countries, c->n_countries);
    cJSON_Delete(c->faults);
    c->units = c->countries = NULL;
    c->n_units = c->n_countries = 0;
    c->faults = NULL;
}

const char *iw_sim_cred(const iw_sim_creds *k, const char *key)
{
    for (int i = 0; i < IW_SIM_MAX_SETTINGS && k->key[i]; i++)
        if (strcmp(k->key[i], key) == 0)
            return k->value[i];
    return "";
}

/* The first declaration of setting key among the routes; NULL when none declares it. */
static const iw_sim_setting *find_setting(const char *key)
{
    for (int t = 0; t < IW_SIM_N_TARGETS; t++) {
        const iw_sim_setting *decl = iw_sim_routes[t]->settings;
        for (int i = 0; i < IW_SIM_MAX_SETTINGS && decl[i].key; i++)
            if (strcmp(decl[i].key, key) == 0)
                return &decl[i];
    }
    return NULL;
}

bool iw_sim_conf_unit_ok(const iw_sim_conf *c, const char *name)
{
    if (!c->units) {
        for (size_t i = 0; i < COUNT(seed_refused_units); i++)
            if (!name || strcmp(name, seed_refused_units[i]) == 0)
                return false;
        return true;
    }
    for (size_t i = 0; name && i < c->n_units; i++)
        if (strcmp(c->units[i], name) == 0)
            return true;
    return false;
}

bool iw_sim_conf_country_ok(const iw_sim_conf *c, const char *name)
{
    for (size_t i = 0; name && i < c->n_countries; i++)
        if (strcasecmp(c->countries[i], name) == 0)
            return true;
    return false;
}

static int string_list(const cJSON *arr, char ***out, size_t *n, const char *path, char *errbuf,
                       size_t errlen)
{
    if (!cJSON_IsArray(arr)) {
        snprintf(errbuf, errlen, "%s: must be an array of strings", path);
        return -1;
    }
    size_t cnt = (size_t)cJSON_GetArraySize(arr), i = 0;
    char **l = calloc(cnt ? cnt : 1, sizeof(*l));
    if (!l)
        return -1;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        if (!cJSON_IsString(it) || !(l[i] = strdup(it->valuestring))) {
            free_list(l, i);
            snprintf(errbuf, errlen, "%s[%zu]: must be a string", path, i);
            return -1;
        }
        i++;
    }
    *out = l;
    *n = cnt;
    return 0;
}

/* Appends the faults of one target (target implied) to c->faults. */
static int add_faults(iw_sim_conf *c, const cJSON *arr, const char *target, char *errbuf,
                      size_t errlen)
{
    if (!cJSON_IsArray(arr)) {
        snprintf(errbuf, errlen, "%s.faults: must be an array", target ? target : "");
        return -1;
    }
    if (!c->faults)
        c->faults = cJSON_CreateArray();
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        cJSON *f = cJSON_Duplicate(it, 1);
        if (!cJSON_IsObject(f)) {
            cJSON_Delete(f);
            snprintf(errbuf, errlen, "faults: each fault is an object");
            return -1;
        }
        if (target && !cJSON_GetObjectItemCaseSensitive(f, "target"))
            cJSON_AddStringToObject(f, "target", target);
        cJSON_AddItemToArray(c->faults, f);
    }
    return 0;
}

static int load_target(iw_sim_conf *c, int t, const cJSON *o, char *errbuf, size_t errlen)
{
    const char *name = iw_sim_target_name(t);
    if (!cJSON_IsObject(o)) {
        snprintf(errbuf, errlen, "targets.%s: must be an object", name);
        return -1;
    }
    const cJSON *m;
    cJSON_ArrayForEach(m, o)
    {
        char path[96];
        snprintf(path, sizeof(path), "targets.%s.%s", name, m->string);
        const iw_sim_setting *decl = find_setting(m->string);
        if (decl) {
            size_t k = 0;
            while (decl->allowed && cJSON_IsString(m) && decl->allowed[k] &&
                   strcmp(decl->allowed[k], m->valuestring) != 0)
                k++;
            if (!cJSON_IsString(m) || (decl->allowed && !decl->allowed[k])) {
                if (decl->allowed)
                    snprintf(errbuf, errlen, "%s: %s", path, decl->expect);
                else
                    snprintf(errbuf, errlen, "%s: must be a string", path);
                return -1;
            }
            iw_sim_creds *own = &c->creds[t];
            for (int i = 0; i < IW_SIM_MAX_SETTINGS && own->key[i]; i++)
                if (strcmp(own->key[i], m->string) == 0)
                    snprintf(own->value[i], IW_SIM_SECRET_LEN, "%s", m->valuestring);
        } else if (strcmp(m->string, "accepted_units") == 0) {
            free_list(c->units, c->n_units);
            c->units = NULL;
            c->n_units = 0;
            if (string_list(m, &c->units, &c->n_units, path, errbuf, errlen) != 0)
                return -1;
        } else if (strcmp(m->string, "countries") == 0) {
            free_list(c->countries, c->n_countries);
            c->countries = NULL;
            c->n_countries = 0;
            if (string_list(m, &c->countries, &c->n_countries, path, errbuf, errlen) != 0)
                return -1;
        } else if (strcmp(m->string, "faults") == 0) {
            if (add_faults(c, m, name, errbuf, errlen) != 0)
                return -1;
        } else {
            snprintf(errbuf, errlen, "%s: unknown key", path);
            return -1;
        }
    }
    return 0;
}

static int load_doc(iw_sim_conf *c, const cJSON *root, char *errbuf, size_t errlen)
{
    if (!cJSON_IsObject(root)) {
        snprintf(errbuf, errlen, "the config must be a JSON object");
        return -1;
    }
    const cJSON *m;
    cJSON_ArrayForEach(m, root)
    {
        if (strcmp(m->string, "validate") == 0) {
            if (!cJSON_IsBool(m)) {
                snprintf(errbuf, errlen, "validate: must be true or false");
                return -1;
            }
            c->validate = cJSON_IsTrue(m);
        } else if (strcmp(m->string, "seed") == 0 && cJSON_IsNumber(m)) {
            c->seed = (uint64_t)m->valuedouble;
        } else if (strcmp(m->string, "faults") == 0) {
            if (add_faults(c, m, NULL, errbuf, errlen) != 0)
                return -1;
        } else if (strcmp(m->string, "targets") == 0 && cJSON_IsObject(m)) {
            const cJSON *t;
            cJSON_ArrayForEach(t, m)
            {
                int id = iw_sim_target_find(t->string);
                if (id < 0) {
                    snprintf(errbuf, errlen, "targets.%s: unknown target", t->string);
                    return -1;
                }
                if (load_target(c, id, t, errbuf, errlen) != 0)
                    return -1;
            }
        } else {
            snprintf(errbuf, errlen, "%s: unknown key", m->string);
            return -1;
        }
    }
    return 0;
}

int iw_sim_conf_load(iw_sim_conf *c, const char *path, char *errbuf, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(errbuf, errlen, "%s: cannot open", path);
        return -1;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                snprintf(errbuf, errlen, "out of memory");
                return -1;
            }
            buf = nb;
        }
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
    }
    fclose(f);
    buf[len] = '\0';
    cJSON *root = cJSON_ParseWithLength(buf, len);
    free(buf);
    if (!root) {
        snprintf(errbuf, errlen, "%s: not valid JSON", path);
        return -1;
    }
    int rc = load_doc(c, root, errbuf, errlen);
    cJSON_Delete(root);
    return rc;
}
