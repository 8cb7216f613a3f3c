/* docpaths.c: element/key path lists for comparing a rendered document with a reference. */
#include "docpaths.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

static int add_unique(iw_paths *p, const char *s)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->items[i], s) == 0)
            return 0;
    char **it = realloc(p->items, (p->n + 1) * sizeof(*it));
    if (!it)
        return -1;
    p->items = it;
    if (!(it[p->n] = strdup(s)))
        return -1;
    p->n++;
    return 0;
}

static void walk_xml(xmlNodePtr n, const char *prefix, iw_paths *out)
{
    for (; n; n = n->next) {
        if (n->type != XML_ELEMENT_NODE)
            continue;
        size_t len = strlen(prefix) + strlen((const char *)n->name) + 512;
        char *path = malloc(len);
        if (!path)
            return;
        snprintf(path, len, "%s%s{%s}%s", prefix, *prefix ? "/" : "",
                 n->ns && n->ns->href ? (const char *)n->ns->href : "", (const char *)n->name);
        add_unique(out, path);
        walk_xml(n->children, path, out);
        free(path);
    }
}

int iw_paths_xml(const char *xml, size_t len, iw_paths *out)
{
    memset(out, 0, sizeof(*out));
    xmlDocPtr doc = xmlReadMemory(xml, (int)len, "doc.xml", NULL,
                                  XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (!doc)
        return -1;
    walk_xml(xmlDocGetRootElement(doc), "", out);
    xmlFreeDoc(doc);
    return 0;
}

static void walk_json(const cJSON *j, const char *prefix, iw_paths *out)
{
    if (cJSON_IsArray(j)) {
        size_t len = strlen(prefix) + 3;
        char *path = malloc(len);
        if (!path)
            return;
        snprintf(path, len, "%s[]", prefix);
        for (const cJSON *c = j->child; c; c = c->next)
            walk_json(c, path, out);
        free(path);
        return;
    }
    if (!cJSON_IsObject(j))
        return;
    for (const cJSON *c = j->child; c; c = c->next) {
        size_t len = strlen(prefix) + strlen(c->string) + 2;
        char *path = malloc(len);
        if (!path)
            return;
        snprintf(path, len, "%s%s%s", prefix, *prefix ? "." : "", c->string);
        add_unique(out, path);
        walk_json(c, path, out);
        free(path);
    }
}

int iw_paths_json(const char *json, size_t len, iw_paths *out)
{
    memset(out, 0, sizeof(*out));
    cJSON *j = cJSON_ParseWithLength(json, len);
    if (!j)
        return -1;
    walk_json(j, "", out);
    cJSON_Delete(j);
    return 0;
}

int iw_paths_compare(const iw_paths *expected, const iw_paths *got, char *msg, size_t msglen)
{
    size_t n = expected->n < got->n ? expected->n : got->n;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(expected->items[i], got->items[i]) != 0) {
            snprintf(msg, msglen, "path %zu: expected %s, got %s", i, expected->items[i],
                     got->items[i]);
            return -1;
        }
    }
    if (expected->n != got->n) {
        snprintf(msg, msglen, "expected %zu paths, got %zu; first extra: %s", expected->n, got->n,
                 expected->n > got->n ? expected->items[n] : got->items[n]);
        return -1;
    }
    msg[0] = '\0';
    return 0;
}

void iw_paths_free(iw_paths *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->items[i]);
    free(p->items);
    memset(p, 0, sizeof(*p));
}

char *iw_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n + 65536 + 1 > cap) {
            cap = (n + 65536 + 1) * 2;
            char *b = realloc(buf, cap);
            if (!b) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = b;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}
