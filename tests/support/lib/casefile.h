/* casefile.h: reading the adapter case files (tests/cases/<adapter>/NNNN-name.case; the format
 * is in tests/cases/README.md): their sections, check lines, <reply> and <config>, and the
 * <outcome> checks. tests/unit/test_cases.c runs every section in process;
 * tests/integration/test_classify_replies.c runs the reply cases through `invoice-worker
 * classify`. Failures are counted in the case and given to its report function, which names the
 * file and line. */
#ifndef IW_CASEFILE_H
#define IW_CASEFILE_H

#include <stdbool.h>
#include <stddef.h>

#include "target.h"

/* The wall clock a <reply> is classified at: 2026-11-21T10:00:00Z (HTTP-date Retry-Afters in
 * the fixtures are 90 s later). */
#define CASE_NOW_MS 1795255200000LL
#define CASE_MAX_SECTIONS 16
#define CASE_MAX_ATTRS 4

/* One section of a case file. */
typedef struct case_section {
    char name[32];
    char attr_key[CASE_MAX_ATTRS][16];
    char *attr_val[CASE_MAX_ATTRS];
    size_t n_attrs;
    char *text; /* content, without the newline before the closing tag */
    int line;   /* line of the opening tag */
} case_section;

typedef struct case_file case_file;

/* Given each failure of a case, with the line it is about (0: the file). */
typedef void case_report_fn(const case_file *k, int line, const char *msg);

/* A parsed case file and where its failures are reported. */
struct case_file {
    const char *file; /* path under tests/cases, for messages */
    case_section sec[CASE_MAX_SECTIONS];
    size_t n_sec;
    int failures;           /* failed checks so far */
    int checks;             /* checks run */
    case_report_fn *report; /* NULL: failures are only counted */
};

/* Counts a failure at line and reports "file:line: message". */
void case_fail(case_file *k, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Splits text into sections; 0, or -1 after reporting what is malformed. */
int case_parse(case_file *k, char *text);

/* Reads and parses the case file at path (k->file names it in messages); 0, or -1 after
 * reporting why it cannot be read or parsed. */
int case_read(case_file *k, const char *path);

/* Frees the sections. */
void case_free(case_file *k);

/* The section called name; NULL when the case has none. */
case_section *case_find(case_file *k, const char *name);

/* A section's attribute; NULL when it is not given (or s is NULL). */
const char *case_attr(const case_section *s, const char *key);

/* Decodes \n \r \t \\ \xHH in place. */
void case_unescape(char *s);

/* A check line of a section: the keyword and its (unescaped) argument. */
typedef struct case_check {
    char word[32];
    char *arg;   /* malloc'd */
    char *whole; /* the whole line, unescaped like arg (a <secrets> value); malloc'd */
    int line;
} case_check;

/* Splits a section into check lines (blank and # lines skipped), arguments unescaped unless
 * raw. Caller frees with case_checks_free. */
case_check *case_checks(const case_section *s, size_t *n, bool raw);
void case_checks_free(case_check *c, size_t n);

/* tests/fixtures/REL (malloc'd), or NULL. */
char *case_fixture(const char *rel, size_t *len);

/* A reply read from a <reply> section: owns its header strings and body. */
typedef struct case_reply {
    iw_response resp; /* now_ms is CASE_NOW_MS */
    iw_header headers[16];
    char *body;
} case_reply;

/* Reads "HTTP/1.1 STATUS ...", headers, a blank line and the body (or file=). 0 or -1. */
int case_reply_parse(case_file *k, const case_section *s, case_reply *rp);
void case_reply_clear(case_reply *rp);

/* "ok", "retry", "permanent", "auth". */
const char *case_outcome_name(iw_outcome_kind kind);

/* Runs the checks of an <outcome> section against o. */
void case_check_outcome(case_file *k, const case_section *s, const iw_outcome *o);

/* The config file text holding <config> as its one target (malloc'd), with that target's name
 * in *tname and its "type" in *type (malloc'd; NULL when there is none); NULL after a failure. */
char *case_config_text(case_file *k, const case_section *s, char **tname, char **type);

/* Names in dir ending in suffix (or folders when suffix is NULL), sorted; NULL when dir cannot
 * be opened. Free with case_list_free. */
char **case_list_dir(const char *dir, const char *suffix, size_t *n);
void case_list_free(char **names, size_t n);

/* Called by case_each for each case file, read (read_rc 0) or not (-1, reported through
 * k->report); k is freed after the call. */
typedef void case_each_fn(case_file *k, int read_rc, void *arg);

/* Reads every .case file of the folder `folder` under IW_CASES_DIR (every folder when NULL),
 * in name order, each named "tests/cases/FOLDER/FILE" and reporting through report, and hands
 * it to fn. Returns how many files there were; *n_folders (when not NULL) gets how many
 * folders were walked. */
size_t case_each(const char *folder, case_report_fn *report, case_each_fn *fn, void *arg,
                 size_t *n_folders);

#endif
