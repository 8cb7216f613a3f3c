/* unescape.h: decoding of character escapes, as a reader of a published text would do it. */
#ifndef IW_T_UNESCAPE_H
#define IW_T_UNESCAPE_H

/* text with one level of escapes decoded, as a reader of a published message would decode
 * them: JSON's \uXXXX (a surrogate pair as one character), \" \\ and \/, XML's character
 * references (&#N; &#xN;) and five entities, and %XX. Malloc'd; NULL when out of memory. */
char *iw_t_unescaped_once(const char *text);

#endif
