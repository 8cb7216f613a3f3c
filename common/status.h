/* status.h: the error codes every fallible function returns (0 or a negative IW_E*). */
#ifndef IW_STATUS_H
#define IW_STATUS_H

enum iw_status {
    IW_OK = 0,
    IW_EINVAL = -1,   /* input is malformed or breaks a rule */
    IW_ERANGE = -2,   /* a number does not fit its field */
    IW_ENOMEM = -3,   /* allocation failed */
    IW_EIO = -4,      /* a file, socket or server failed */
    IW_ENOTFOUND = -5 /* a named thing (target, key, file) does not exist */
};

/* Returns a short constant name for a status ("invalid input", ...). */
const char *iw_status_str(int status);

#endif
