/* Who may use the server: API tokens (compared in constant time, never
 * logged), the origin of browser requests, the Host of a loopback server
 * (against DNS rebinding) and whether the listening address needs a token. */
#include "serve/access.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pneumo/sha256.h"

/* ------------------------------------------------------------- token file */

void pn_serve_free_tokens(char **tokens, int n_tokens)
{
    for (int i = 0; i < n_tokens; i++) {
        /* The secret does not outlive its use in freed heap memory. */
        explicit_bzero(tokens[i], strlen(tokens[i]));
        free(tokens[i]);
    }
    free(tokens);
}

static char *trim(char *line)
{
    while (isspace((unsigned char)*line))
        line++;
    size_t n = strlen(line);
    while (n > 0 && isspace((unsigned char)line[n - 1]))
        line[--n] = '\0';
    return line;
}

static pn_status add_token(const char *path, int line_no, const char *token, char ***tokens, int *n,
                           pn_error *err)
{
    if (strlen(token) < PN_SERVE_MIN_TOKEN_LEN)
        return pn_fail(err, PN_EINVAL, "%s line %d: token shorter than %d characters (use e.g. `openssl rand "
                       "-hex 32`)", path, line_no, PN_SERVE_MIN_TOKEN_LEN);
    for (const char *p = token; *p; p++)
        if (!isgraph((unsigned char)*p))
            return pn_fail(err, PN_EINVAL, "%s line %d: a token is printable ASCII without spaces", path,
                           line_no);
    char **grown = realloc(*tokens, (size_t)(*n + 1) * sizeof *grown);
    if (!grown)
        return pn_fail(err, PN_ENOMEM, "out of memory reading %s", path);
    *tokens = grown;
    if (!(grown[*n] = strdup(token)))
        return pn_fail(err, PN_ENOMEM, "out of memory reading %s", path);
    (*n)++;
    return PN_OK;
}

pn_status pn_serve_read_tokens(const char *path, char ***tokens, int *n_tokens, pn_error *err)
{
    *tokens = NULL;
    *n_tokens = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return pn_fail(err, PN_EIO, "cannot read token file %s", path);
    char buf[1024];
    pn_status st = PN_OK;
    for (int line_no = 1; !st && fgets(buf, sizeof buf, f); line_no++) {
        char *t = trim(buf);
        if (*t && *t != '#')
            st = add_token(path, line_no, t, tokens, n_tokens, err);
    }
    explicit_bzero(buf, sizeof buf);
    fclose(f);
    if (!st && *n_tokens == 0)
        st = pn_fail(err, PN_EINVAL, "token file %s holds no token", path);
    if (st) {
        pn_serve_free_tokens(*tokens, *n_tokens);
        *tokens = NULL;
        *n_tokens = 0;
    }
    return st;
}

/* ------------------------------------------------------------------ tokens */

pn_status serve_access_init(access_rules *a, const pn_serve_options *o, pn_error *err)
{
    memset(a, 0, sizeof *a);
    if (o->n_tokens < 0 || (o->n_tokens > 0 && !o->tokens))
        return pn_fail(err, PN_EINVAL, "token list and count disagree");
    if (o->n_tokens > 0 && !(a->digests = calloc((size_t)o->n_tokens, sizeof *a->digests)))
        return pn_fail(err, PN_ENOMEM, "out of memory for tokens");
    for (int i = 0; i < o->n_tokens; i++)
        pn_sha256(o->tokens[i], strlen(o->tokens[i]), a->digests[i]);
    a->n_tokens = o->n_tokens;
    a->origins = o->allow_origins;
    a->n_origins = o->n_allow_origins;
    return PN_OK;
}

void serve_access_destroy(access_rules *a)
{
    if (a->digests)
        explicit_bzero(a->digests, (size_t)a->n_tokens * sizeof *a->digests);
    free(a->digests);
    memset(a, 0, sizeof *a);
}

int serve_access_token_ok(const access_rules *a, const char *authorization)
{
    if (a->n_tokens == 0)
        return 1;
    if (!authorization || strncasecmp(authorization, "Bearer ", 7))
        return 0;
    const char *token = authorization + 7;
    while (*token == ' ')
        token++;
    /* Digests of equal length compared without an early exit, against every
     * token: the time taken says nothing about how much of a token matched
     * nor which one. */
    uint8_t digest[PN_SHA256_DIGEST_SIZE];
    pn_sha256(token, strlen(token), digest);
    unsigned matched = 0;
    for (int i = 0; i < a->n_tokens; i++) {
        unsigned diff = 0;
        for (int k = 0; k < PN_SHA256_DIGEST_SIZE; k++)
            diff |= (unsigned)(digest[k] ^ a->digests[i][k]);
        matched |= 1u & ((diff - 1u) >> 8); /* 1 when diff == 0, without a branch */
    }
    return (int)matched;
}

/* ----------------------------------------------------------------- origins */

const char *serve_access_allowed_origin(const access_rules *a, const char *origin)
{
    if (!origin)
        return NULL;
    for (int i = 0; i < a->n_origins; i++)
        if (!strcasecmp(a->origins[i], origin))
            return a->origins[i];
    return NULL;
}

/* Origin is scheme://host[:port]; the same origin as this server means the
 * same host[:port] as the Host header and the server's own scheme. */
static int same_origin(const char *origin, const char *host, int tls)
{
    const char *scheme = tls ? "https://" : "http://";
    size_t n = strlen(scheme);
    return host && !strncasecmp(origin, scheme, n) && !strcasecmp(origin + n, host);
}

access_verdict serve_access_check_origin(const access_rules *a, const char *origin, const char *fetch_site,
                                   const char *host, int tls)
{
    if (origin)
        return same_origin(origin, host, tls) || serve_access_allowed_origin(a, origin) ? ACCESS_OK : ACCESS_FORBIDDEN;
    /* No Origin: not a browser, or a browser that still says where it came from. */
    if (fetch_site && strcasecmp(fetch_site, "same-origin") && strcasecmp(fetch_site, "none"))
        return ACCESS_FORBIDDEN;
    return ACCESS_OK;
}

/* host[:port] (IPv6 literals in brackets) names this machine's loopback. */
int serve_access_loopback_host(const char *host)
{
    if (!host)
        return 0;
    char name[64];
    size_t n;
    if (host[0] == '[') {
        const char *end = strchr(host, ']');
        if (!end || (end[1] && end[1] != ':'))
            return 0;
        n = (size_t)(end - host - 1);
        host++;
    } else {
        n = strcspn(host, ":");
    }
    if (n == 0 || n >= sizeof name)
        return 0;
    memcpy(name, host, n);
    name[n] = '\0';
    if (!strcasecmp(name, "localhost"))
        return 1;
    struct in_addr v4;
    struct in6_addr v6;
    if (inet_pton(AF_INET, name, &v4) == 1)
        return (ntohl(v4.s_addr) >> 24) == 127;
    return inet_pton(AF_INET6, name, &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}
