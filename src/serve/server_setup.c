/* What pn_server_start checks and reads before it listens: the listening
 * address, the refusal to expose a server without a token, the limits, and
 * the TLS certificate and key. */
#define _GNU_SOURCE /* memmem, explicit_bzero */
#include "serve/internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

pn_status serve_parse_listen_addr(const char *host, int port, listen_addr *a, int *is_v6, pn_error *err)
{
    memset(a, 0, sizeof *a);
    if (port < 0 || port > 65535)
        return pn_fail(err, PN_EINVAL, "port %d outside 0..65535", port);
    if (inet_pton(AF_INET, host, &a->v4.sin_addr) == 1) {
        a->v4.sin_family = AF_INET;
        a->v4.sin_port = htons((uint16_t)port);
        *is_v6 = 0;
        return PN_OK;
    }
    if (inet_pton(AF_INET6, host, &a->v6.sin6_addr) == 1) {
        a->v6.sin6_family = AF_INET6;
        a->v6.sin6_port = htons((uint16_t)port);
        *is_v6 = 1;
        return PN_OK;
    }
    return pn_fail(err, PN_EINVAL, "--host '%s': expected a numeric IPv4 or IPv6 address", host);
}

int serve_is_loopback(const listen_addr *a, int is_v6)
{
    return is_v6 ? IN6_IS_ADDR_LOOPBACK(&a->v6.sin6_addr) : (ntohl(a->v4.sin_addr.s_addr) >> 24) == 127;
}

/* A server others can reach needs a token, unless the operator says otherwise. */
static pn_status check_exposure(const pn_serve_options *o, pn_error *err)
{
    listen_addr addr;
    int is_v6 = 0;
    pn_status st = serve_parse_listen_addr(o->host, o->port, &addr, &is_v6, err);
    if (st || serve_is_loopback(&addr, is_v6) || o->n_tokens > 0 || o->insecure_no_auth)
        return st;
    return pn_fail(err, PN_EINVAL,
                   "refusing to listen on %s without an API token: anyone who can reach it could run "
                   "predictions and read the model and metrics. Give --token-file FILE (and --tls-cert/--tls-key "
                   "for HTTPS), or --insecure-no-auth if access is controlled elsewhere (e.g. an authenticating "
                   "reverse proxy)", o->host);
}

pn_status serve_check_options(const pn_serve_options *o, const pn_predictor *p, pn_error *err)
{
    if (!o->tls_cert_file != !o->tls_key_file)
        return pn_fail(err, PN_EINVAL, "HTTPS needs both a certificate (--tls-cert) and a key (--tls-key)");
    if (o->tls_cert_file && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
        return pn_fail(err, PN_EUNSUPPORTED, "this libmicrohttpd was built without TLS support");
    pn_status st = check_exposure(o, err);
    if (st)
        return st;
    if (o->max_body < 1 || o->max_pixels < 1 || o->max_connections < 1 || o->max_per_client < 1 ||
        o->connection_timeout_s < 1 || o->request_deadline_s < 1 || o->io_threads < 1 || o->max_queue < 1 ||
        o->shutdown_grace_s < 0)
        return pn_fail(err, PN_EINVAL, "server limits must be positive");
    if (!p->predict || !p->model_json || !p->model_id || !p->model_version)
        return pn_fail(err, PN_EINVAL, "incomplete predictor");
    if (!(p->default_threshold >= 0.f && p->default_threshold <= 1.f))
        return pn_fail(err, PN_EINVAL, "default threshold %g outside 0..1", (double)p->default_threshold);
    if (!o->audit_db || !*o->audit_db)
        return pn_fail(err, PN_EINVAL, "an audit database path is required");
    return PN_OK;
}

/* A PEM file as a NUL-terminated string (libmicrohttpd's in-memory form). */
static pn_status read_pem(const char *path, const char *what, char **out, pn_error *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return pn_fail(err, PN_EIO, "cannot read TLS %s %s: %s", what, path, strerror(errno));
    enum { PEM_MAX = 1 << 20 }; /* far above any certificate chain */
    char *text = malloc(PEM_MAX + 1);
    size_t n = text ? fread(text, 1, PEM_MAX + 1, f) : 0;
    fclose(f);
    if (!text)
        return pn_fail(err, PN_ENOMEM, "out of memory reading %s", path);
    if (n == 0 || n > PEM_MAX || !memmem(text, n, "-----BEGIN ", 11)) {
        free(text);
        return pn_fail(err, PN_EFORMAT, "TLS %s %s is not a PEM file", what, path);
    }
    text[n] = '\0';
    *out = text;
    return PN_OK;
}

void serve_free_pem_pair(pn_server *s)
{
    if (s->tls_key_pem)
        explicit_bzero(s->tls_key_pem, strlen(s->tls_key_pem));
    free(s->tls_key_pem);
    free(s->tls_cert_pem);
    s->tls_key_pem = s->tls_cert_pem = NULL;
}

pn_status serve_read_pem_pair(pn_server *s, pn_error *err)
{
    pn_status st = read_pem(s->opt.tls_cert_file, "certificate", &s->tls_cert_pem, err);
    if (!st)
        st = read_pem(s->opt.tls_key_file, "key", &s->tls_key_pem, err);
    if (st)
        serve_free_pem_pair(s);
    return st;
}

