/* secrets.h: the secret registry of one target instance: every form a secret takes on the wire,
 * and the masking every printer (render, logs, results, dead letters, error messages) goes
 * through. */
#ifndef IW_SECRETS_H
#define IW_SECRETS_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "xml.h"

typedef struct iw_secrets iw_secrets;
struct iw_outcome;    /* targets/target.h */
struct iw_response;   /* targets/target.h */
struct iw_target_ops; /* targets/target.h */

/* Creates an empty registry; NULL when out of memory. */
iw_secrets *iw_secrets_new(void);

/* Creates the registry of a target instance: every secret field of its adapter
 * (iw_target_conf_secrets), the other forms the adapter says they take on the wire (a Basic
 * pair, a userinfo in another URL: iw_target_ops.secret_forms) and the password of a userinfo
 * in url. NULL when out of memory. */
iw_secrets *iw_secrets_for_target(const iw_target_conf *tc);

/* Records secret value and every form it takes on the wire: raw, XML-escaped (with and without
 * quotes escaped, named or numeric), JSON-escaped, percent-encoded with upper- or lower-case
 * hex and with '+' or %20 for a space, and base64. NULL or "" is ignored. Returns 0 or
 * IW_ENOMEM. Used for configured secrets and for every refreshed token as it arrives. */
int iw_secrets_add(iw_secrets *s, const char *value);

/* Records the HTTP Basic credential of user and password: base64 of "user:password". */
int iw_secrets_add_basic(iw_secrets *s, const char *user, const char *password);

/* Records the credentials a URL carries: the password of its userinfo
 * ("scheme://user:password@host/...") or a user name given alone (a token), as written and
 * decoded, with the Basic credential curl sends for it; and the values of query parameters
 * named as credentials (key, api_key, token, access_token, secret, sig, password, code, ...).
 * A URL without any (or NULL) adds nothing. 0 or IW_ENOMEM. */
int iw_secrets_add_url(iw_secrets *s, const char *url);

/* Number of forms recorded (for tests). */
size_t iw_secrets_count(const iw_secrets *s);

/* Returns a malloc'd copy of text (len bytes) with every recorded form replaced by ***, the
 * longest form winning where two overlap; NULL when out of memory. s may be NULL. */
char *iw_secrets_mask(const iw_secrets *s, const char *text, size_t len);

/* Masks a NUL-terminated string in place within its buffer of cap bytes (the result is cut at
 * a UTF-8 boundary when "***" makes it longer). When masking cannot be done, buf is emptied so
 * that nothing unmasked is printed. */
void iw_secrets_mask_inplace(const iw_secrets *s, char *buf, size_t cap);

/* Frees the registry and wipes the recorded forms; NULL is a no-op. */
void iw_secrets_free(iw_secrets *s);

/* iw_secrets_mask with the registry of tc (iw_secrets_for_target), made for this one call:
 * for the rare text that needs it, not for every reply. A NULL tc has no secrets (a copy).
 * NULL when out of memory. */
char *iw_secrets_mask_for_target(const iw_target_conf *tc, const char *text, size_t len);

/* Whether reply text (len bytes, as read) holds a form of a secret of tc: of the registry of the
 * classification in progress (iw_secrets_classify), else of tc's (made for this call; true when
 * that runs out of memory). For reply text a message would quote as it came, undecoded. */
bool iw_secrets_reply_holds(const iw_target_conf *tc, const char *text, size_t len);

/* Classifies resp for tc's adapter (iw_target_classify). When the outcome is not OK and the
 * reply holds a form of s's secrets, its message and code come from the reply read again with
 * every form masked (the same kind of outcome is required, else the text is withheld): an
 * adapter cuts reply text in many places (a fault's code, an element's name, the parser's own
 * message quoting the reply) and a secret cut there, with more text after it, could not be
 * recognised by masking the message. Kind, error kind, Retry-After and the rest stay those of
 * the reply as it came. Callers still mask the outcome (iw_secrets_mask_outcome). */
void iw_secrets_classify(const iw_secrets *s, const struct iw_target_ops *ops,
                         const iw_target_conf *tc, const struct iw_response *resp,
                         struct iw_outcome *out);

/* Masks every form of s's secrets in an outcome's printable fields (message, code, target_ref),
 * then makes them plain text (iw_text_clean_copy): a message may quote the event (a validation)
 * or the reply, and neither may put a secret, a control or a bidirectional formatting character
 * into results, logs, dead-letter headers or `classify`'s output. Then a field that still holds
 * 8 bytes in a row of a recorded form (a part of a secret quoted alone, a form no record has
 * once decoded: UTF-16, an escape) is withheld whole: the message keeps only its "HTTP nnn",
 * the code becomes "withheld", the target_ref empty. s may be NULL. */
void iw_secrets_mask_outcome(const iw_secrets *s, struct iw_outcome *o);

#endif
