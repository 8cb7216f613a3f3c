/* cli.c: what the subcommands share: loading a config with readable errors, reading files. */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secrets.h"
#include "status.h"
#include "target.h"

int iw_cli_print_version(void)
{
    printf("invoice-worker %s\n", IW_VERSION);
    return 0;
}

char *iw_cli_read_file(const char *path, size_t max, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    int err = 0;
    while (buf) {
        if (n + 1 >= cap) {
            char *b = realloc(buf, cap * 2);
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
        if (n > max || (got == 0 && ferror(f))) { /* a directory reads as EISDIR */
            err = n > max ? EFBIG : errno ? errno : EIO;
            free(buf);
            buf = NULL;
        } else if (got == 0) {
            break;
        }
    }
    fclose(f);
    if (err)
        errno = err;
    if (buf) {
        buf[n] = '\0';
        *len = n;
    }
    return buf;
}

/* Whether an error's path names an environment variable: IW_* or HOSTNAME (the worker id's
 * default); config keys are lower case. */
static bool names_a_variable(const char *path)
{
    if (strcmp(path, "HOSTNAME") == 0)
        return true;
    if (strncmp(path, "IW_", 3) != 0)
        return false;
    for (; *path; path++)
        if (!isupper((unsigned char)*path) && !isdigit((unsigned char)*path) && *path != '_')
            return false;
    return true;
}

iw_config *iw_cli_load_config(const char *path)
{
    iw_config_errors errs;
    iw_config *cfg = iw_config_load(path, &errs);
    if (!cfg) {
        size_t shown = errs.count < 64 ? errs.count : 64;
        for (size_t i = 0; i < shown; i++) /* a variable's error is not the file's */
            fprintf(stderr, "%s: %s%s%s\n",
                    names_a_variable(errs.items[i].path) ? "environment" : path, errs.items[i].path,
                    errs.items[i].path[0] ? ": " : "", errs.items[i].message);
        if (errs.count > shown)
            fprintf(stderr, "%s: ... and %zu more\n", path, errs.count - shown);
    }
    return cfg;
}

char *iw_cli_request_text(const iw_target_conf *tc, const iw_request *req)
{
    iw_request plain = *req;
    plain.n_secrets = 0; /* the text as sent; the registry masks it */
    char *raw = iw_request_format_masked(&plain);
    iw_secrets *s = iw_secrets_for_target(tc);
    int rc = raw && s ? 0 : IW_ENOMEM;
    for (size_t i = 0; !rc && i < req->n_secrets; i++)
        rc = iw_secrets_add(s, req->secrets[i]);
    char *text = rc ? NULL : iw_secrets_mask(s, raw, strlen(raw));
    if (raw)
        memset(raw, 0, strlen(raw));
    free(raw);
    iw_secrets_free(s);
    size_t n = text ? strlen(text) : 0;
    if (text && (req->body_len == 0 || req->body[req->body_len - 1] != '\n')) {
        char *t = realloc(text, n + 2);
        if (!t) {
            free(text);
            return NULL;
        }
        t[n] = '\n';
        t[n + 1] = '\0';
        text = t;
    }
    return text;
}
