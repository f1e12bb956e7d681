/* Access rules of the server: tokens, allowed origins, loopback Host names. */
#ifndef PNEUMO_SERVE_ACCESS_H
#define PNEUMO_SERVE_ACCESS_H

#include <stdint.h>

#include "pneumo/serve.h"
#include "pneumo/sha256.h"

typedef struct access_rules {
    uint8_t (*digests)[PN_SHA256_DIGEST_SIZE]; /* [n_tokens] SHA-256 of each token */
    int n_tokens;                              /* 0 = no token needed */
    const char *const *origins;                /* borrowed from the options */
    int n_origins;
} access_rules;

typedef enum access_verdict { ACCESS_OK, ACCESS_FORBIDDEN } access_verdict;

pn_status serve_access_init(access_rules *a, const pn_serve_options *o, pn_error *err);
void serve_access_destroy(access_rules *a);
/* 1 when no token is configured or the Authorization header carries one of
 * them as `Bearer <token>`; constant time in the token's content. */
int serve_access_token_ok(const access_rules *a, const char *authorization);
/* The configured spelling of origin when it is allowed by --allow-origin. */
const char *serve_access_allowed_origin(const access_rules *a, const char *origin);
/* Browser requests from another origin are forbidden unless allowed:
 * decided from Origin, else Sec-Fetch-Site (requests with neither are not
 * from a browser page and pass). host is the Host header; tls the scheme. */
access_verdict serve_access_check_origin(const access_rules *a, const char *origin, const char *fetch_site,
                                   const char *host, int tls);
/* 1 when a Host header value (host[:port]) names the loopback interface. */
int serve_access_loopback_host(const char *host);

#endif
