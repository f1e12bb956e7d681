/* Error reporting shared by every pneumo library function.
 *
 * Library code never prints and never exits: it returns a pn_status and, when
 * the caller passed a pn_error, fills in a human-readable message that the CLI
 * (or the HTTP server) shows as is. */
#ifndef PNEUMO_ERROR_H
#define PNEUMO_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum pn_status {
    PN_OK = 0,
    PN_EINVAL,       /* bad argument or option value */
    PN_ENOMEM,       /* allocation failed */
    PN_EIO,          /* file system or socket error */
    PN_EFORMAT,      /* malformed input file (image, model, cfg) */
    PN_EUNSUPPORTED, /* valid input this build does not handle */
    PN_ELIMIT,       /* input exceeds a safety limit (pixels, bytes) */
    PN_EDNNL,        /* oneDNN refused or failed */
    PN_EINTERNAL     /* a bug: an invariant did not hold */
} pn_status;

#define PN_ERROR_MSG_MAX 512

typedef struct pn_error {
    pn_status code;
    char msg[PN_ERROR_MSG_MAX];
} pn_error;

/* Records code and a printf-style message in err (which may be NULL) and
 * returns code, so call sites read `return pn_fail(err, PN_EINVAL, "...")`. */
pn_status pn_fail(pn_error *err, pn_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes the message already in err (which may be NULL) with more context
 * ("model.safetensors: ") and returns code, the failing status the caller got:
 * `return pn_error_prefix(err, st, "%s: ", path)` stays a failure even when the
 * caller passed no err. */
pn_status pn_error_prefix(pn_error *err, pn_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

const char *pn_status_name(pn_status code);

#ifdef __cplusplus
}
#endif
#endif
