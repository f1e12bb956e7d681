#include "pneumo/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

pn_status pn_fail(pn_error *err, pn_status code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

pn_status pn_error_prefix(pn_error *err, pn_status code, const char *fmt, ...)
{
    if (!err)
        return code;
    char prefix[PN_ERROR_MSG_MAX], old[PN_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    /* Truncation is acceptable: the message stays NUL-terminated and readable. */
    size_t n = strlen(prefix);
    if (n >= sizeof err->msg)
        n = sizeof err->msg - 1;
    memcpy(err->msg, prefix, n);
    size_t rest = strnlen(old, sizeof old - 1);
    if (rest > sizeof err->msg - 1 - n)
        rest = sizeof err->msg - 1 - n;
    memcpy(err->msg + n, old, rest);
    err->msg[n + rest] = '\0';
    err->code = code;
    return code;
}

const char *pn_status_name(pn_status code)
{
    switch (code) {
    case PN_OK: return "ok";
    case PN_EINVAL: return "invalid argument";
    case PN_ENOMEM: return "out of memory";
    case PN_EIO: return "I/O error";
    case PN_EFORMAT: return "bad format";
    case PN_EUNSUPPORTED: return "unsupported";
    case PN_ELIMIT: return "limit exceeded";
    case PN_EDNNL: return "oneDNN error";
    case PN_EINTERNAL: return "internal error";
    }
    return "unknown error";
}
