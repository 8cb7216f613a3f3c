/* status.c: names for the IW_E* codes. */
#include "status.h"

const char *iw_status_str(int status)
{
    switch (status) {
    case IW_OK: return "ok";
    case IW_EINVAL: return "invalid input";
    case IW_ERANGE: return "out of range";
    case IW_ENOMEM: return "out of memory";
    case IW_EIO: return "i/o error";
    case IW_ENOTFOUND: return "not found";
    default: return "unknown error";
    }
}
