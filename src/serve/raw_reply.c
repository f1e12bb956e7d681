/* An error answered in the middle of a request body. libmicrohttpd 0.9.75
 * (Debian 12) accepts a response only once the headers are processed or the
 * whole body has arrived, so a chunked body that outgrows --max-body cannot be
 * answered through it: the response is formatted here with the headers every
 * pneumo response carries and written on the connection's socket (or its
 * GnuTLS session), then the access handler returns MHD_NO and libmicrohttpd
 * closes the connection without reading the rest of the body. The write is
 * bounded: a client that does not read its socket loses the answer, never a
 * server thread. */
#include "serve/internal.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define RAW_REPLY_MAX 4096      /* status line, headers and the JSON error; the standard headers are under 1 KB */
#define RAW_WRITE_WAIT_MS 200   /* longest wait for room in the socket's send buffer */

typedef struct raw_reply {
    char text[RAW_REPLY_MAX];
    size_t len;
    int overflow;
} raw_reply;

static void reply_printf(raw_reply *h, const char *fmt, ...)
{
    if (h->overflow)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(h->text + h->len, sizeof h->text - h->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof h->text - h->len)
        h->overflow = 1;
    else
        h->len += (size_t)n;
}

static void reply_add_header(void *ctx, const char *name, const char *value)
{
    reply_printf(ctx, "%s: %s\r\n", name, value);
}

/* Waits until fd can take more bytes; 0 when it can, -1 on timeout or error. */
static int wait_writable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int n;
    do
        n = poll(&p, 1, RAW_WRITE_WAIT_MS);
    while (n < 0 && errno == EINTR);
    return n == 1 && (p.revents & POLLOUT) ? 0 : -1;
}

/* One write attempt: bytes written (> 0), or one of these. */
#define WRITE_RETRY (-2)   /* interrupted: try again at once */
#define WRITE_WAIT (-3)    /* the send buffer is full: try again when there is room */
#define WRITE_FAILED (-1)

typedef struct connection_out {
    int fd;
    gnutls_session_t tls; /* NULL: plain TCP */
} connection_out;

static ssize_t write_once(const connection_out *out, const char *p, size_t n)
{
    if (out->tls) {
        /* After E_AGAIN, GnuTLS wants the same call again with the same data. */
        ssize_t k = gnutls_record_send(out->tls, p, n);
        return k == GNUTLS_E_INTERRUPTED ? WRITE_RETRY : k == GNUTLS_E_AGAIN ? WRITE_WAIT : k > 0 ? k : WRITE_FAILED;
    }
    ssize_t k = send(out->fd, p, n, MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR)
        return WRITE_RETRY;
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return WRITE_WAIT;
    return k > 0 ? k : WRITE_FAILED;
}

static int send_all(pn_server *s, struct MHD_Connection *c, const char *p, size_t n)
{
    const union MHD_ConnectionInfo *fd = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    const union MHD_ConnectionInfo *tls = s->tls ? MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION) : NULL;
    if (!fd || (s->tls && !tls))
        return -1;
    connection_out out = {.fd = fd->connect_fd, .tls = tls ? tls->tls_session : NULL};
    while (n) {
        ssize_t k = write_once(&out, p, n);
        if (k == WRITE_RETRY || (k == WRITE_WAIT && !wait_writable(out.fd)))
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

enum MHD_Result serve_send_error_raw(pn_server *s, struct MHD_Connection *c, request *r, unsigned status,
                                     const char *message)
{
    char *body = serve_error_json(status, message);
    if (!body)
        return MHD_NO;
    /* One write, so over TLS the whole answer is one record: the connection is
     * reset right after, and a record cut short would be lost. */
    raw_reply reply = {.len = 0};
    r->close = 1;
    reply_printf(&reply, "HTTP/1.1 %u %s\r\n", status, MHD_get_reason_phrase_for(status));
    reply_add_header(&reply, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    reply_printf(&reply, "%s: %zu\r\n", MHD_HTTP_HEADER_CONTENT_LENGTH, strlen(body));
    serve_standard_headers(s, r, status, reply_add_header, &reply);
    reply_printf(&reply, "\r\n%s", body);
    if (!reply.overflow && !send_all(s, c, reply.text, reply.len))
        r->status = status;
    free(body);
    return MHD_NO;
}
