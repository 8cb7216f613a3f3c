/* cli.h: the subcommands of invoice-worker and what they share. Each returns the exit status. */
#ifndef IW_CLI_H
#define IW_CLI_H

#include <stddef.h>

#include "config.h"

/* `invoice-worker run -c FILE`: the long-running worker. */
int iw_cli_run(int argc, char **argv);

/* `invoice-worker send ...`: produce events from JSON files. */
int iw_cli_send(int argc, char **argv);

/* `invoice-worker replay ...`: re-drive dead letters. */
int iw_cli_replay(int argc, char **argv);

/* Loads a config, printing every error as "FILE: path: message" on stderr; NULL on error. */
iw_config *iw_cli_load_config(const char *path);

/* Prints "invoice-worker VERSION"; returns 0. */
int iw_cli_print_version(void);

/* Reads a whole file (at most max bytes) into a malloc'd NUL-terminated buffer; NULL with
 * errno set on failure (EFBIG when larger than max). */
char *iw_cli_read_file(const char *path, size_t max, size_t *len);

struct iw_request;

/* The text `render` prints for a rendered request: the request line, the headers, a blank line
 * and the body, ending in a newline, with every wire form of the instance's secrets (and of
 * those the adapter recorded) masked through one registry. Malloc'd; NULL when out of memory. */
char *iw_cli_request_text(const iw_target_conf *tc, const struct iw_request *req);

#endif
