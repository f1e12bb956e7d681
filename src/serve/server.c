/* libmicrohttpd plumbing: listening, routing, limits, static files, metrics
 * and graceful shutdown. A few epoll threads serve every connection, so an
 * idle or slow connection costs a file descriptor, not a thread; a
 * prediction suspends its connection while a worker slot (workers.c) runs it.
 * A reaper thread closes connections whose request has not fully arrived
 * within the request deadline, however slowly it trickles in. */
#define _GNU_SOURCE /* memmem */
#include "serve/internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "serve/web_assets.h"

/* blob: lets the page preview the chosen file locally before upload. */
#define CSP "default-src 'self'; img-src 'self' data: blob:; script-src 'self'; style-src 'self'; object-src 'none'; " \
            "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"

void pn_serve_options_default(pn_serve_options *o)
{
    *o = (pn_serve_options){.host = "127.0.0.1",
                            .port = 8080,
                            .audit_db = "pneumo-audit.db",
                            .max_body = 20u * 1000u * 1000u,
                            .max_pixels = PN_SERVE_MAX_PIXELS,
                            .max_connections = 1024,
                            .max_per_client = 32,
                            .connection_timeout_s = 30,
                            .request_deadline_s = 30,
                            .io_threads = 2,
                            .max_queue = 32,
                            .shutdown_grace_s = 30};
}

/* ----------------------------------------------------------------- replies */

static int is_stopping(pn_server *s)
{
    pthread_mutex_lock(&s->lock);
    int stopping = s->stopping;
    pthread_mutex_unlock(&s->lock);
    return stopping;
}

void serve_standard_headers(pn_server *s, const request *r, unsigned status, serve_header_sink add, void *ctx)
{
    add(ctx, MHD_HTTP_HEADER_CACHE_CONTROL, r->route == ROUTE_STATIC ? "no-cache" : "no-store");
    add(ctx, "X-Content-Type-Options", "nosniff");
    add(ctx, "Referrer-Policy", "no-referrer");
    add(ctx, "Content-Security-Policy", CSP);
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        add(ctx, MHD_HTTP_HEADER_ALLOW, r->route == ROUTE_PREDICT ? "POST" : "GET, HEAD");
    if (status == MHD_HTTP_SERVICE_UNAVAILABLE)
        add(ctx, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (status == MHD_HTTP_UNAUTHORIZED)
        add(ctx, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"pneumo\"");
    if (s->tls)
        add(ctx, MHD_HTTP_HEADER_STRICT_TRANSPORT_SECURITY, "max-age=31536000");
    if (r->cors_origin) {
        add(ctx, MHD_HTTP_HEADER_ACCESS_CONTROL_ALLOW_ORIGIN, r->cors_origin);
        add(ctx, MHD_HTTP_HEADER_VARY, "Origin");
    }
    if (r->cors_origin && r->preflight) {
        add(ctx, "Access-Control-Allow-Methods", "GET, POST");
        add(ctx, "Access-Control-Allow-Headers", "Authorization, Content-Type");
        add(ctx, "Access-Control-Max-Age", "600");
    }
    /* Keep-alive clients must let go during shutdown, or it waits for them;
     * a request whose rest is not read cannot be followed by another. */
    if (r->close || is_stopping(s))
        add(ctx, MHD_HTTP_HEADER_CONNECTION, "close");
}

static void add_to_response(void *resp, const char *name, const char *value)
{
    MHD_add_response_header(resp, name, value);
}

enum MHD_Result serve_send_body(pn_server *s, struct MHD_Connection *c, request *r, unsigned status, const char *type,
                          void *body, size_t len, enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, mode);
    if (!resp) {
        if (mode == MHD_RESPMEM_MUST_FREE)
            free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    serve_standard_headers(s, r, status, add_to_response, resp);
    serve_deadline_arm(s, c, 0); /* the request is in: sending is bounded by the idle timeout */
    enum MHD_Result ok = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    if (ok == MHD_YES)
        r->status = status;
    return ok;
}

enum MHD_Result serve_send_json_text(pn_server *s, struct MHD_Connection *c, request *r, unsigned status, char *text)
{
    if (!text)
        return MHD_NO;
    return serve_send_body(s, c, r, status, "application/json", text, strlen(text), MHD_RESPMEM_MUST_FREE);
}

char *serve_error_json(unsigned status, const char *message)
{
    json_t *root = json_pack("{s:{s:i,s:s}}", "error", "code", (int)status, "message", message);
    char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    return text;
}

enum MHD_Result serve_send_error(pn_server *s, struct MHD_Connection *c, request *r, unsigned status,
                                 const char *message)
{
    return serve_send_json_text(s, c, r, status, serve_error_json(status, message));
}

/* ------------------------------------------------------------------ routes */

static const pn_web_asset *find_asset(const char *url)
{
    if (!strcmp(url, "/"))
        url = "/index.html";
    for (const pn_web_asset *a = pn_web_assets; a->path; a++)
        if (!strcmp(a->path, url))
            return a;
    return NULL;
}

static route classify(const char *url)
{
    if (!strcmp(url, "/api/v1/predict"))
        return ROUTE_PREDICT;
    if (!strcmp(url, "/api/v1/model"))
        return ROUTE_MODEL;
    if (!strcmp(url, "/healthz"))
        return ROUTE_HEALTH;
    if (!strcmp(url, "/metrics"))
        return ROUTE_METRICS;
    return find_asset(url) ? ROUTE_STATIC : ROUTE_OTHER;
}

static enum MHD_Result handle_get(pn_server *s, struct MHD_Connection *c, request *r, const char *url)
{
    switch (r->route) {
    case ROUTE_MODEL: {
        const char *json = s->predictor->model_json;
        return serve_send_body(s, c, r, MHD_HTTP_OK, "application/json", (void *)json, strlen(json),
                         MHD_RESPMEM_PERSISTENT);
    }
    case ROUTE_HEALTH: {
        static const char ok[] = "{\"status\":\"ok\"}";
        return serve_send_body(s, c, r, MHD_HTTP_OK, "application/json", (void *)ok, sizeof ok - 1,
                         MHD_RESPMEM_PERSISTENT);
    }
    case ROUTE_METRICS: {
        pthread_mutex_lock(&s->lock);
        int in_flight = s->in_flight;
        pthread_mutex_unlock(&s->lock);
        char *text = serve_metrics_render(&s->metrics, in_flight, serve_workers_queued(&s->workers));
        if (!text)
            return serve_send_error(s, c, r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory rendering metrics");
        return serve_send_body(s, c, r, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text, strlen(text),
                         MHD_RESPMEM_MUST_FREE);
    }
    default: {
        const pn_web_asset *a = find_asset(url);
        return serve_send_body(s, c, r, MHD_HTTP_OK, a->mime, (void *)a->data, a->size, MHD_RESPMEM_PERSISTENT);
    }
    }
}

static size_t content_length(struct MHD_Connection *c, int *known)
{
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    *known = v != NULL;
    return v ? (size_t)strtoull(v, NULL, 10) : 0;
}

/* Raw URIs with an encoded NUL are marked before libmicrohttpd decodes
 * (and so truncates) them: the mark is the first *con_cls of the request. */
static char nul_in_uri_mark;

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
    for (const char *p = uri; (p = strchr(p, '%')); p++)
        if (p[1] == '0' && p[2] == '0')
            return &nul_in_uri_mark;
    return NULL;
}

static enum MHD_Result value_has_no_nul(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
                                        const char *value, size_t value_size)
{
    if (strlen(key) != key_size || (value && strlen(value) != value_size)) {
        *(int *)cls = 1;
        return MHD_NO;
    }
    return MHD_YES;
}

/* Framing and encoding the server refuses outright, answered with 400 and
 * Connection: close. Returns the reason, or NULL when the request is clean. */
static const char *malformed(struct MHD_Connection *c, int nul_in_uri)
{
    int nul = nul_in_uri;
    MHD_get_connection_values_n(c, MHD_HEADER_KIND | MHD_GET_ARGUMENT_KIND, value_has_no_nul, &nul);
    if (nul)
        return "NUL byte in the path, query or a header";
    /* Both framings at once is how requests are smuggled past a proxy that
     * reads the other one (RFC 9112 section 6.3). */
    const char *te = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    if (te && MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH))
        return "both Content-Length and Transfer-Encoding: send exactly one";
    if (te && strcasecmp(te, "chunked"))
        return "Transfer-Encoding other than chunked";
    return NULL;
}

static const char *header_value(struct MHD_Connection *c, const char *name)
{
    return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

/* Who is asking: Host (loopback servers), Origin, the token. Returns MHD_YES
 * with r->status still 0 when the request may go on. */
static enum MHD_Result check_access(pn_server *s, struct MHD_Connection *c, request *r, int is_get)
{
    const char *host = header_value(c, MHD_HTTP_HEADER_HOST);
    /* A page on another site whose name resolves to 127.0.0.1 (DNS
     * rebinding) reaches a loopback server with its own name as Host. */
    if (s->loopback && !s->access.n_tokens && host && !serve_access_loopback_host(host))
        return serve_send_error(s, c, r, MHD_HTTP_FORBIDDEN,
                          "this server only answers to localhost, 127.0.0.1 or [::1] as Host");
    const char *origin = header_value(c, MHD_HTTP_HEADER_ORIGIN);
    r->cors_origin = serve_access_allowed_origin(&s->access, origin);
    if (!is_get && serve_access_check_origin(&s->access, origin, header_value(c, "Sec-Fetch-Site"), host, s->tls))
        return serve_send_error(s, c, r, MHD_HTTP_FORBIDDEN,
                          "cross-origin request refused: the server's own page, or an origin allowed with "
                          "--allow-origin, may post here");
    int needs_token = r->route == ROUTE_PREDICT || r->route == ROUTE_MODEL || r->route == ROUTE_METRICS;
    if (needs_token && !serve_access_token_ok(&s->access, header_value(c, MHD_HTTP_HEADER_AUTHORIZATION)))
        return serve_send_error(s, c, r, MHD_HTTP_UNAUTHORIZED,
                          "missing or wrong API token: send Authorization: Bearer <token>");
    return MHD_YES;
}

/* Everything that can be decided from the request line and headers alone.
 * Returns MHD_YES with r->status still 0 when the body should be read. */
static enum MHD_Result on_headers(pn_server *s, struct MHD_Connection *c, request *r, const char *url,
                                  const char *method, int nul_in_uri)
{
    int is_get = !strcmp(method, MHD_HTTP_METHOD_GET) || !strcmp(method, MHD_HTTP_METHOD_HEAD);
    const char *bad = malformed(c, nul_in_uri);
    if (bad) {
        r->close = 1;
        return serve_send_error(s, c, r, MHD_HTTP_BAD_REQUEST, bad);
    }
    if (r->route == ROUTE_OTHER)
        return serve_send_error(s, c, r, MHD_HTTP_NOT_FOUND, "no such resource");
    /* A CORS preflight from an allowed origin (it carries no token). */
    if (!strcmp(method, MHD_HTTP_METHOD_OPTIONS) && (r->route == ROUTE_PREDICT || r->route == ROUTE_MODEL) &&
        (r->cors_origin = serve_access_allowed_origin(&s->access, header_value(c, MHD_HTTP_HEADER_ORIGIN)))) {
        r->preflight = 1;
        return serve_send_body(s, c, r, MHD_HTTP_NO_CONTENT, "text/plain", (void *)"", 0, MHD_RESPMEM_PERSISTENT);
    }
    enum MHD_Result ok = check_access(s, c, r, is_get);
    if (ok != MHD_YES || r->status)
        return ok;
    if (r->route != ROUTE_PREDICT)
        return is_get ? handle_get(s, c, r, url)
                      : serve_send_error(s, c, r, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed: use GET");
    if (strcmp(method, MHD_HTTP_METHOD_POST))
        return serve_send_error(s, c, r, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed: use POST");
    int known;
    size_t announced = content_length(c, &known);
    if (known && announced > s->opt.max_body) {
        r->close = 1; /* the body is never read */
        char msg[128];
        snprintf(msg, sizeof msg, "request body of %zu bytes exceeds the limit of %zu", announced, s->opt.max_body);
        return serve_send_error(s, c, r, MHD_HTTP_CONTENT_TOO_LARGE, msg);
    }
    const char *type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (!serve_predict_content_type_ok(type))
        return serve_send_error(s, c, r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                                "unsupported Content-Type: send image/jpeg, image/png, application/dicom, "
                                "application/octet-stream or multipart/form-data");
    if (known && announced > 0) {
        r->body = malloc(announced);
        if (!r->body)
            return serve_send_error(s, c, r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
        r->cap = announced;
    }
    return MHD_YES;
}

/* Appends upload data; past max_body, drops it and sets too_large. */
static void on_upload(pn_server *s, request *r, const char *data, size_t size)
{
    if (r->too_large || r->status)
        return;
    if (size > s->opt.max_body - r->len) {
        r->too_large = 1;
        free(r->body);
        r->body = NULL;
        r->len = r->cap = 0;
        return;
    }
    if (r->len + size > r->cap) {
        size_t cap = r->cap ? r->cap : 64 * 1024;
        while (cap < r->len + size)
            cap *= 2;
        if (cap > s->opt.max_body)
            cap = s->opt.max_body;
        unsigned char *body = realloc(r->body, cap);
        if (!body) {
            r->too_large = 1; /* answered as 413: we cannot hold it */
            return;
        }
        r->body = body;
        r->cap = cap;
    }
    memcpy(r->body + r->len, data, size);
    r->len += size;
}

/* A body (chunked, so of unannounced size) that outgrew max_body: answered
 * at once and the connection closed, the rest never read. libmicrohttpd
 * 0.9.75 queues no response mid-body, so the answer is written on the
 * connection itself (raw_reply.c) and MHD_NO has it close the connection. */
static enum MHD_Result refuse_too_large(pn_server *s, struct MHD_Connection *c, request *r)
{
    char msg[96];
    snprintf(msg, sizeof msg, "request body exceeds the limit of %zu bytes", s->opt.max_body);
    r->close = 1;
    return serve_send_error_raw(s, c, r, MHD_HTTP_CONTENT_TOO_LARGE, msg);
}

static request *begin_request(pn_server *s, const char *url)
{
    request *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->start = pn_clock_s();
    r->route = classify(url);
    pthread_mutex_lock(&s->lock);
    s->in_flight++;
    r->admitted = !s->stopping;
    pthread_mutex_unlock(&s->lock);
    return r;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    pn_server *s = cls;
    request *r = *con_cls;
    if (!r || r == (void *)&nul_in_uri_mark) {
        int nul_in_uri = r != NULL;
        if (!(r = begin_request(s, url)))
            return MHD_NO;
        *con_cls = r;
        return on_headers(s, c, r, url, method, nul_in_uri);
    }
    if (*upload_data_size) {
        on_upload(s, r, upload_data, *upload_data_size);
        *upload_data_size = 0;
        if (r->too_large && !r->status)
            return refuse_too_large(s, c, r);
        return MHD_YES;
    }
    serve_deadline_arm(s, c, 0); /* the whole request has arrived */
    if (r->status)
        return MHD_YES;
    return serve_handle_predict(s, c, r);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    pn_server *s = cls;
    request *r = *con_cls;
    if (!r)
        return;
    *con_cls = NULL;
    /* Requests dropped before a response (client gone, timeout) are not counted. */
    if (r->status)
        serve_metrics_request(&s->metrics, r->route, r->status, pn_clock_s() - r->start);
    serve_predict_state_free(r->predict);
    free(r->body);
    free(r);
    serve_deadline_arm(s, c, 1); /* a kept-alive connection waits for its next request */
    pthread_mutex_lock(&s->lock);
    if (--s->in_flight == 0)
        pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->lock);
}

/* --------------------------------------------------------------- lifecycle */

static pn_status start_daemon(pn_server *s, pn_error *err)
{
    listen_addr addr;
    int is_v6 = 0;
    pn_status st = serve_parse_listen_addr(s->opt.host, s->opt.port, &addr, &is_v6, err);
    if (st)
        return st;
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ITC | (is_v6 ? MHD_USE_IPv6 : 0);
    /* TLS 1.2 and 1.3 only, GnuTLS's default cipher choice otherwise. */
    struct MHD_OptionItem tls[] = {
        {MHD_OPTION_HTTPS_MEM_CERT, 0, s->tls_cert_pem},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, s->tls_key_pem},
        {MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"},
        {MHD_OPTION_END, 0, NULL}};
    s->tls = s->tls_cert_pem != NULL;
    s->loopback = serve_is_loopback(&addr, is_v6);
    if (s->tls)
        flags |= MHD_USE_TLS;
    s->daemon = MHD_start_daemon(flags, (uint16_t)s->opt.port, NULL, NULL, on_request, s,
                                 MHD_OPTION_ARRAY, s->tls ? tls : tls + 3,
                                 MHD_OPTION_SOCK_ADDR, &addr.sa,
                                 MHD_OPTION_THREAD_POOL_SIZE, (unsigned)s->opt.io_threads,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->opt.max_connections,
                                 MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)s->opt.max_per_client,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->opt.connection_timeout_s,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                                 MHD_OPTION_NOTIFY_CONNECTION, serve_deadline_on_connection, s,
                                 MHD_OPTION_URI_LOG_CALLBACK, on_uri, s,
                                 MHD_OPTION_STRICT_FOR_CLIENT, 1,
                                 MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u,
                                 MHD_OPTION_END);
    if (!s->daemon)
        return pn_fail(err, PN_EIO, "cannot listen on %s port %d: %s", s->opt.host, s->opt.port,
                       s->tls ? "libmicrohttpd refused the options or the TLS certificate/key"
                       : errno ? strerror(errno) : "libmicrohttpd refused the options");
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : s->opt.port;
    return PN_OK;
}

/* Undoes pn_server_start, whatever part of it ran. The workers stop first:
 * that resumes every suspended connection, which libmicrohttpd requires
 * before it stops. */
static void release(pn_server *s)
{
    if (s->workers_started)
        serve_workers_stop(&s->workers);
    if (s->daemon)
        MHD_stop_daemon(s->daemon);
    serve_deadline_reaper_stop(s);
    pn_audit_close(s->audit);
    serve_access_destroy(&s->access);
    serve_free_pem_pair(s);
    serve_metrics_destroy(&s->metrics);
    pthread_cond_destroy(&s->reaper_wake);
    pthread_cond_destroy(&s->idle);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

pn_status pn_server_start(const pn_serve_options *o, const pn_predictor *p, pn_server **out, pn_error *err)
{
    *out = NULL;
    pn_status st = serve_check_options(o, p, err);
    if (st)
        return st;
    pn_server *s = calloc(1, sizeof *s);
    if (!s)
        return pn_fail(err, PN_ENOMEM, "out of memory starting the server");
    s->opt = *o;
    s->predictor = p;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->idle, NULL);
    pthread_cond_init(&s->reaper_wake, NULL);
    serve_metrics_init(&s->metrics);
    st = serve_access_init(&s->access, o, err);
    if (!st && o->tls_cert_file)
        st = serve_read_pem_pair(s, err);
    if (!st)
        st = pn_audit_open(o->audit_db, &s->audit, err);
    if (!st && !(st = serve_workers_start(&s->workers, p, o->max_queue, err)))
        s->workers_started = 1;
    if (!st)
        st = start_daemon(s, err);
    if (!st && !(s->reaper_started = !pthread_create(&s->reaper, NULL, serve_deadline_reaper_main, s)))
        st = pn_fail(err, PN_EIO, "cannot start the request deadline thread");
    if (st) {
        release(s);
        return st;
    }
    *out = s;
    return PN_OK;
}

int pn_server_port(const pn_server *s)
{
    return s->port;
}

const char *pn_server_audit_migration(const pn_server *s)
{
    return pn_audit_migration(s->audit);
}

static void wait_idle(pn_server *s)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += s->opt.shutdown_grace_s;
    pthread_mutex_lock(&s->lock);
    while (s->in_flight > 0 && pthread_cond_timedwait(&s->idle, &s->lock, &deadline) != ETIMEDOUT)
        ;
    pthread_mutex_unlock(&s->lock);
}

void pn_server_stop(pn_server *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    s->stopping = 1;
    pthread_mutex_unlock(&s->lock);
    /* No new connections from here on; requests already received finish. */
    MHD_socket listen_fd = MHD_quiesce_daemon(s->daemon);
    wait_idle(s);
    release(s);
    if (listen_fd != MHD_INVALID_SOCKET)
        close(listen_fd);
}
