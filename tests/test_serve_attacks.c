/* The attacks a security reviewer runs against `pneumo serve`, each against a
 * live server on loopback (fake predictor) with its outcome asserted, so a
 * regression fails `make test`. Every loop is bounded in count and time. */
#define _GNU_SOURCE /* asprintf */
#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pneumo/audit.h"
#include "serve_fixture.h"
#include "testutil.h"

static void sleep_ms(int ms)
{
    struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

/* A connection to 127.0.0.1:port from the loopback source address 127.0.0.<host>
 * (all of 127/8 is loopback on Linux), so one test can be many clients. */
static int connect_from(int host, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl(INADDR_LOOPBACK & 0xffffff00u) | htonl((uint32_t)host);
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&src, sizeof src) ||
        connect(fd, (struct sockaddr *)&dst, sizeof dst)) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* 1 when the server has closed (or reset) the connection; never blocks. */
static int peer_closed(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) <= 0)
        return 0;
    char buf[256];
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) || (p.revents & (POLLHUP | POLLERR));
}

/* ------------------------------------------------------------ slow clients */

enum {
    TRICKLE_HOSTS = 8,        /* source addresses 127.0.0.2 .. 127.0.0.9 */
    TRICKLE_PER_CLIENT = 32,  /* the server's per-address limit */
    TRICKLE_EXTRA = 4,        /* per address, beyond the limit: refused */
    TRICKLE_DEADLINE_S = 6,
    TRICKLE_ROUND_MS = 250,
};

typedef struct trickler {
    int fd;
    int closed;
    size_t sent;
} trickler;

/* Sends the next byte of a request whose header never ends. */
static void trickle(trickler *t)
{
    static const char start[] = "GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ";
    char c = t->sent < sizeof start - 1 ? start[t->sent] : 'a';
    if (send(t->fd, &c, 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1)
        t->sent++;
}

/* Checks every trickler; returns how many are still open. */
static int trickle_round(trickler *t, int n)
{
    int open = 0;
    for (int i = 0; i < n; i++) {
        if (!t[i].closed && peer_closed(t[i].fd))
            t[i].closed = 1;
        if (!t[i].closed) {
            trickle(&t[i]);
            open++;
        }
    }
    return open;
}

static void test_slow_clients_cannot_starve(void **state)
{
    fixture fx;
    pn_serve_options_default(&fx.opt);
    fx.opt.max_per_client = TRICKLE_PER_CLIENT;
    fx.opt.request_deadline_s = TRICKLE_DEADLINE_S;
    fx.opt.connection_timeout_s = 120; /* every byte resets it: only the deadline can end a trickler */
    fixture_start_with(&fx, "slow.db", 1);

    enum { N = TRICKLE_HOSTS * (TRICKLE_PER_CLIENT + TRICKLE_EXTRA) };
    trickler *t = calloc(N, sizeof *t);
    for (int i = 0; i < N; i++) {
        t[i].fd = connect_from(2 + i % TRICKLE_HOSTS, fx.port);
        if (t[i].fd < 0)
            fail_msg("connect %d: %s", i, strerror(errno));
    }
    int open = N;
    for (int round = 0; round < 4; round++) {
        open = trickle_round(t, N);
        sleep_ms(TRICKLE_ROUND_MS);
    }
    /* The connections beyond each address's limit were refused, the rest trickle on. */
    assert_int_equal(open, TRICKLE_HOSTS * TRICKLE_PER_CLIENT);
    assert_true(open >= 256);

    http_resp r = get(fx.port, "/healthz");
    assert_int_equal(r.status, 200);
    resp_free(&r);
    unsigned char *img = fake_jpeg(3000, 90);
    r = post(fx.port, "/api/v1/predict", "image/jpeg", img, 3000);
    check_prediction(&r, fake_probability(img, 3000), 0.5);
    resp_free(&r);
    free(img);
    /* Still trickling while those were answered. */
    assert_int_equal(trickle_round(t, N), TRICKLE_HOSTS * TRICKLE_PER_CLIENT);

    /* Each trickler is closed by the deadline though it never stops sending. */
    int max_rounds = (TRICKLE_DEADLINE_S + 30) * 1000 / TRICKLE_ROUND_MS;
    for (int round = 0; round < max_rounds && open > 0; round++) {
        sleep_ms(TRICKLE_ROUND_MS);
        open = trickle_round(t, N);
    }
    assert_int_equal(open, 0);
    for (int i = 0; i < N; i++)
        close(t[i].fd);
    free(t);

    r = get(fx.port, "/healthz");
    assert_int_equal(r.status, 200);
    resp_free(&r);
    /* Operators see it: every accepted trickler was closed by the deadline. */
    r = get(fx.port, "/metrics");
    unsigned long long closed = 0;
    const char *line = strstr(r.body, "\npneumo_connections_deadline_closed_total ");
    assert_non_null(line);
    sscanf(line, "\npneumo_connections_deadline_closed_total %llu", &closed);
    assert_true(closed >= TRICKLE_HOSTS * TRICKLE_PER_CLIENT);
    resp_free(&r);
    pn_server_stop(fx.server);
}

/* ------------------------------------------------------- access control */

#define TEST_TOKEN "test-token-0123456789abcdef"
static const char *const test_tokens[] = {"another-token-fedcba9876543210", TEST_TOKEN};

static void start_with_token(fixture *fx, const char *db)
{
    pn_serve_options_default(&fx->opt);
    fx->opt.tokens = test_tokens;
    fx->opt.n_tokens = 2;
    fixture_start_with(fx, db, 1);
}

/* POST of a fake JPEG with extra header lines (each ending in \r\n). */
static http_resp post_with(int port, const char *extra, size_t n)
{
    unsigned char *img = fake_jpeg(n, 100);
    char head[1024];
    snprintf(head, sizeof head, "POST /api/v1/predict HTTP/1.1\r\n%sContent-Type: image/jpeg\r\nContent-Length: %zu",
             extra, n);
    http_resp r = http(port, head, img, n);
    free(img);
    return r;
}

static void test_token_required(void **state)
{
    fixture fx;
    start_with_token(&fx, "token.db");
    http_resp r = get(fx.port, "/api/v1/model");
    assert_int_equal(r.status, 401);
    char *www = header(&r, "WWW-Authenticate");
    assert_non_null(www);
    assert_non_null(strstr(www, "Bearer"));
    free(www);
    assert_error(r, 401);
    assert_error(http(fx.port, "GET /api/v1/model HTTP/1.1\r\nAuthorization: Bearer " TEST_TOKEN "x", NULL, 0), 401);
    assert_error(http(fx.port, "GET /api/v1/model HTTP/1.1\r\nAuthorization: Basic " TEST_TOKEN, NULL, 0), 401);
    assert_error(http(fx.port, "GET /metrics HTTP/1.1", NULL, 0), 401);
    assert_error(post_with(fx.port, "", 500), 401);
    assert_error(post_with(fx.port, "Authorization: Bearer test-token-0123456789abcdeF\r\n", 500), 401);
    assert_int_equal(db_int(fx.db, "SELECT count(*) FROM predictions"), 0);

    r = http(fx.port, "GET /api/v1/model HTTP/1.1\r\nAuthorization: Bearer " TEST_TOKEN, NULL, 0);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    r = post_with(fx.port, "Authorization: Bearer another-token-fedcba9876543210\r\n", 500);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    /* The page and the health check stay open: the page asks for the token. */
    r = get(fx.port, "/healthz");
    assert_int_equal(r.status, 200);
    resp_free(&r);
    r = get(fx.port, "/");
    assert_int_equal(r.status, 200);
    resp_free(&r);
    assert_int_equal(db_int(fx.db, "SELECT count(*) FROM predictions"), 1);
    pn_server_stop(fx.server);
}

static void test_cross_origin_post_refused(void **state)
{
    fixture fx;
    static const char *const allowed[] = {"https://viewer.hospital.example"};
    pn_serve_options_default(&fx.opt);
    fx.opt.tokens = test_tokens;
    fx.opt.n_tokens = 2;
    fx.opt.allow_origins = allowed;
    fx.opt.n_allow_origins = 1;
    fixture_start_with(&fx, "origin.db", 1);
    const char *auth = "Authorization: Bearer " TEST_TOKEN "\r\n";
    char extra[512];
    static const char *const refused[] = {
        "Origin: http://evil.example\r\n",
        "Origin: null\r\n",
        "Origin: https://localhost\r\n",          /* another scheme is another origin */
        "Origin: http://localhost.evil.example\r\n",
        "Sec-Fetch-Site: cross-site\r\n",
        "Sec-Fetch-Site: same-site\r\n",
    };
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        snprintf(extra, sizeof extra, "%s%s", auth, refused[i]);
        assert_error(post_with(fx.port, extra, 400), 403);
    }
    assert_int_equal(db_int(fx.db, "SELECT count(*) FROM predictions"), 0);
    assert_int_equal(atomic_load(&fx.fake.calls), 0);

    /* The server's own page (same origin), a tool without Origin, and an allowed origin. */
    snprintf(extra, sizeof extra, "%sOrigin: http://localhost\r\nSec-Fetch-Site: same-origin\r\n", auth);
    http_resp r = post_with(fx.port, extra, 400);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    r = post_with(fx.port, auth, 400);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    snprintf(extra, sizeof extra, "%sOrigin: https://viewer.hospital.example\r\n", auth);
    r = post_with(fx.port, extra, 400);
    assert_int_equal(r.status, 200);
    assert_header(&r, "Access-Control-Allow-Origin", "https://viewer.hospital.example");
    resp_free(&r);
    r = http(fx.port, "OPTIONS /api/v1/predict HTTP/1.1\r\nOrigin: https://viewer.hospital.example\r\n"
             "Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: authorization", NULL, 0);
    assert_int_equal(r.status, 204);
    assert_header(&r, "Access-Control-Allow-Headers", "Authorization, Content-Type");
    resp_free(&r);
    assert_int_equal(db_int(fx.db, "SELECT count(*) FROM predictions"), 3);
    pn_server_stop(fx.server);
}

/* A page on evil.example whose name now resolves to 127.0.0.1 reaches a
 * token-less loopback server with Host: evil.example. */
static void test_dns_rebinding_refused(void **state)
{
    fixture fx;
    pn_serve_options_default(&fx.opt);
    fixture_start_with(&fx, "rebind.db", 1);
    assert_error(http(fx.port, "GET /api/v1/model HTTP/1.1\r\nHost: evil.example", NULL, 0), 403);
    assert_error(post_with(fx.port, "Host: evil.example:8080\r\n", 300), 403);
    http_resp r = http(fx.port, "GET /api/v1/model HTTP/1.1\r\nHost: 127.0.0.1:8080", NULL, 0);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    r = http(fx.port, "GET /api/v1/model HTTP/1.1\r\nHost: [::1]:8080", NULL, 0);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    assert_int_equal(db_int(fx.db, "SELECT count(*) FROM predictions"), 0);
    pn_server_stop(fx.server);
}

/* Nothing is bound: the refusal comes before listening. */
static void test_exposed_without_token_refused(void **state)
{
    fake f;
    pn_predictor p = fake_predictor(&f, 1);
    pn_serve_options o;
    pn_serve_options_default(&o);
    o.host = "0.0.0.0";
    o.port = 0;
    pn_server *s = NULL;
    pn_error err = {0};
    assert_int_equal(pn_server_start(&o, &p, &s, &err), PN_EINVAL);
    assert_null(s);
    assert_non_null(strstr(err.msg, "--token-file"));
    assert_non_null(strstr(err.msg, "--insecure-no-auth"));
    o.host = "::";
    assert_int_equal(pn_server_start(&o, &p, &s, &err), PN_EINVAL);
}

/* POST /api/v1/predict with a chunked body of size bytes (64 KB chunks);
 * extra_headers ends each of its lines with \r\n. */
static char *chunked_upload(const char *extra_headers, size_t size, size_t *len)
{
    char *req = NULL;
    FILE *f = open_memstream(&req, len);
    fprintf(f, "POST /api/v1/predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: image/jpeg\r\n%s"
               "Transfer-Encoding: chunked\r\n\r\n", extra_headers);
    static char chunk[65536];
    memset(chunk, 'b', sizeof chunk);
    for (size_t i = 0; i < size / sizeof chunk; i++) {
        fprintf(f, "%zx\r\n", sizeof chunk);
        fwrite(chunk, 1, sizeof chunk, f);
        fputs("\r\n", f);
    }
    fputs("0\r\n\r\n", f);
    fclose(f);
    return req;
}

/* ------------------------------------------------------------------- TLS */

static int run(const char *cmd)
{
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static int run_curl(const char *args, int port)
{
    char *cmd;
    assert_true(asprintf(&cmd, "curl -sS --max-time 20 %s127.0.0.1:%d/healthz 2>/dev/null >/dev/null", args,
                         port) > 0);
    int rc = run(cmd);
    free(cmd);
    return rc;
}

/* Over TLS (a GnuTLS client trusting cert_file): sends req until the server
 * stops reading, then reads what it answered until it closes. */
static http_resp tls_exchange(int port, const char *cert_file, const char *req, size_t len, size_t *sent)
{
    gnutls_certificate_credentials_t cred;
    gnutls_session_t session;
    assert_int_equal(gnutls_certificate_allocate_credentials(&cred), GNUTLS_E_SUCCESS);
    assert_true(gnutls_certificate_set_x509_trust_file(cred, cert_file, GNUTLS_X509_FMT_PEM) > 0);
    assert_int_equal(gnutls_init(&session, GNUTLS_CLIENT), GNUTLS_E_SUCCESS);
    assert_int_equal(gnutls_set_default_priority(session), GNUTLS_E_SUCCESS);
    assert_int_equal(gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE, cred), GNUTLS_E_SUCCESS);
    gnutls_session_set_verify_cert(session, "127.0.0.1", 0);
    int fd = connect_to(port);
    assert_true(fd >= 0);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    gnutls_transport_set_int(session, fd);
    int rc;
    do
        rc = gnutls_handshake(session);
    while (rc < 0 && !gnutls_error_is_fatal(rc));
    assert_int_equal(rc, GNUTLS_E_SUCCESS);
    *sent = 0;
    while (*sent < len) {
        ssize_t n = gnutls_record_send(session, req + *sent, len - *sent < 16384 ? len - *sent : 16384);
        if (n == GNUTLS_E_INTERRUPTED)
            continue;
        if (n <= 0)
            break; /* the server closed, or stopped reading for 10 s */
        *sent += (size_t)n;
    }
    size_t cap = 1 << 16, got = 0;
    char *buf = malloc(cap);
    ssize_t n;
    while ((n = gnutls_record_recv(session, buf + got, cap - got - 1)) > 0 || n == GNUTLS_E_INTERRUPTED)
        if (n > 0 && cap - (got += (size_t)n) < 4096)
            buf = realloc(buf, cap *= 2);
    buf[got] = '\0';
    gnutls_deinit(session);
    gnutls_certificate_free_credentials(cred);
    close(fd);
    http_resp r = {.status = -1, .raw = buf};
    if (sscanf(buf, "HTTP/1.%*d %d", &r.status) != 1)
        r.status = -1;
    char *sep = strstr(buf, "\r\n\r\n");
    r.body = sep ? sep + 4 : buf + got;
    r.body_len = (size_t)(buf + got - r.body);
    return r;
}

/* HTTPS through libmicrohttpd's GnuTLS with a certificate made here. */
static void test_tls(void **state)
{
    if (run("command -v openssl >/dev/null && command -v curl >/dev/null")) {
        printf("SKIP: openssl or curl is not installed\n");
        skip();
    }
    const char *dir = pn_test_tmpdir();
    char cert[512], key[512], *cmd;
    snprintf(cert, sizeof cert, "%s/tls-cert.pem", dir);
    snprintf(key, sizeof key, "%s/tls-key.pem", dir);
    assert_true(asprintf(&cmd, "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
                               "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout %s -out %s "
                               "2>/dev/null", key, cert) > 0);
    assert_int_equal(run(cmd), 0);
    free(cmd);

    fixture fx;
    pn_serve_options_default(&fx.opt);
    fx.opt.tokens = test_tokens;
    fx.opt.n_tokens = 2;
    fx.opt.tls_cert_file = cert;
    fx.opt.tls_key_file = key;
    fx.opt.max_body = 1 << 20;
    fixture_start_with(&fx, "tls.db", 1);
    char args[1200];
    snprintf(args, sizeof args, "--cacert %s https://", cert);
    assert_int_equal(run_curl(args, fx.port), 0);
    /* A client that does not trust the certificate stops; plain HTTP gets no answer, and the server goes on. */
    assert_int_not_equal(run_curl("https://", fx.port), 0);
    assert_int_not_equal(run_curl("http://", fx.port), 0);
    assert_int_equal(run_curl(args, fx.port), 0);

    /* The token still applies over HTTPS, with HSTS on every answer. */
    char out[600];
    snprintf(out, sizeof out, "%s/tls-model.txt", dir);
    assert_true(asprintf(&cmd, "curl -sS --max-time 20 --cacert %s -D %s.head -o %s -H 'Authorization: Bearer "
                               TEST_TOKEN "' https://127.0.0.1:%d/api/v1/model", cert, out, out, fx.port) > 0);
    assert_int_equal(run(cmd), 0);
    free(cmd);
    assert_true(asprintf(&cmd, "grep -qi '^Strict-Transport-Security: max-age=' %s.head && "
                               "grep -q '\"arch\":\"fake\"' %s", out, out) > 0);
    assert_int_equal(run(cmd), 0);
    free(cmd);

    /* A chunked body past --max-body: 413 in the middle of the body, over TLS too. */
    size_t total, sent;
    char *req = chunked_upload("Authorization: Bearer " TEST_TOKEN "\r\n", 16u << 20, &total);
    http_resp r = tls_exchange(fx.port, cert, req, total, &sent);
    free(req);
    assert_true(sent < total);
    assert_header(&r, "Strict-Transport-Security", "max-age=31536000");
    assert_header(&r, "Connection", "close");
    assert_error(r, 413);
    pn_server_stop(fx.server);

    /* A key that is not PEM is refused at start. */
    fx.opt.tls_key_file = out;
    pn_error err = {0};
    pn_server *s = NULL;
    assert_int_not_equal(pn_server_start(&fx.opt, &fx.predictor, &s, &err), PN_OK);
    assert_null(s);
}

/* ------------------------------------------------------------ strict HTTP */

typedef struct exchange {
    http_resp resp;
    int closed;      /* the server closed the connection (not our timeout) */
    size_t sent;     /* bytes of the request the server let us send */
} exchange;

/* Sends raw bytes (no Connection: close added) and reads until the server
 * closes or 10 s pass; every step is bounded by socket timeouts. */
static exchange raw_exchange(int port, const void *data, size_t len)
{
    exchange x = {.resp = {.status = -1}};
    int fd = connect_to(port);
    assert_true(fd >= 0);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    const char *p = data;
    while (x.sent < len) {
        ssize_t n = send(fd, p + x.sent, len - x.sent, MSG_NOSIGNAL);
        if (n <= 0)
            break;
        x.sent += (size_t)n;
    }
    size_t cap = 1 << 16, got = 0;
    char *buf = malloc(cap);
    for (;;) {
        ssize_t n = recv(fd, buf + got, cap - got - 1, 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET)) {
            x.closed = 1;
            break;
        }
        if (n < 0)
            break; /* timeout: the server kept the connection open */
        got += (size_t)n;
        if (cap - got < 4096)
            buf = realloc(buf, cap *= 2);
    }
    buf[got] = '\0';
    close(fd);
    x.resp.raw = buf;
    if (sscanf(buf, "HTTP/1.%*d %d", &x.resp.status) != 1)
        x.resp.status = -1;
    char *sep = strstr(buf, "\r\n\r\n");
    x.resp.body = sep ? sep + 4 : buf + got;
    x.resp.body_len = (size_t)(buf + got - x.resp.body);
    return x;
}

static int count_responses(const char *raw)
{
    int n = 0;
    for (const char *p = raw; (p = strstr(p, "HTTP/1.1 ")); p++)
        n++;
    return n;
}

static void test_smuggling_shapes_refused(void **state)
{
    fixture fx;
    pn_serve_options_default(&fx.opt);
    fixture_start_with(&fx, "smuggle.db", 1);
    static const char *const attacks[] = {
        /* CL.TE: a proxy reading Content-Length would forward the GET as body. */
        "POST /api/v1/predict HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        "0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "POST /api/v1/predict HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nContent-Length: 60\r\n\r\n"
        "0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "POST /api/v1/predict HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
        "0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof attacks / sizeof *attacks; i++) {
        exchange x = raw_exchange(fx.port, attacks[i], strlen(attacks[i]));
        if (x.resp.status != 400 || !x.closed || count_responses(x.resp.raw) != 1)
            fail_msg("attack %zu: expected one 400 and a closed connection, got (closed=%d):\n%s", i, x.closed,
                     x.resp.raw);
        assert_header(&x.resp, "Connection", "close");
        assert_error(x.resp, 400);
    }
    assert_int_equal(atomic_load(&fx.fake.calls), 0);
    pn_server_stop(fx.server);
}

static char *multipart_with(const char *threshold_field, size_t threshold_len, const char *file_name,
                            size_t name_len, size_t *len)
{
    char *body;
    FILE *f = open_memstream(&body, len);
    fputs("--XyZ\r\nContent-Disposition: form-data; name=\"threshold\"\r\n\r\n", f);
    fwrite(threshold_field, 1, threshold_len, f);
    fputs("\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"", f);
    fwrite(file_name, 1, name_len, f);
    fputs("\"\r\nContent-Type: image/jpeg\r\n\r\n", f);
    unsigned char *img = fake_jpeg(300, 120);
    fwrite(img, 1, 300, f);
    free(img);
    fputs("\r\n--XyZ--\r\n", f);
    fclose(f);
    return body;
}

static void test_nul_bytes_refused(void **state)
{
    fixture fx;
    pn_serve_options_default(&fx.opt);
    fixture_start_with(&fx, "nul.db", 1);
    assert_error(get(fx.port, "/healthz%00.html"), 400);
    assert_error(get(fx.port, "/%00"), 400);
    assert_error(post(fx.port, "/api/v1/predict?threshold=0.5%00junk", "image/jpeg", "\xff\xd8\xff", 3), 400);
    assert_error(post(fx.port, "/api/v1/predict?gradcam%00=1", "image/jpeg", "\xff\xd8\xff", 3), 400);
    size_t len;
    char *body = multipart_with("0.5\0junk", 8, "scan.jpeg", 9, &len);
    assert_error(post(fx.port, "/api/v1/predict", "multipart/form-data; boundary=XyZ", body, len), 400);
    free(body);
    body = multipart_with("0.5", 3, "ok.jpeg\0patient-name.jpeg", 26, &len);
    assert_error(post(fx.port, "/api/v1/predict", "multipart/form-data; boundary=XyZ", body, len), 400);
    free(body);
    assert_int_equal(atomic_load(&fx.fake.calls), 0);
    /* The same upload without the NULs is fine. */
    body = multipart_with("0.5", 3, "scan.jpeg", 9, &len);
    http_resp r = post(fx.port, "/api/v1/predict", "multipart/form-data; boundary=XyZ", body, len);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    free(body);
    pn_server_stop(fx.server);
}

static void test_threshold_plain_decimals_only(void **state)
{
    fixture fx;
    pn_serve_options_default(&fx.opt);
    fixture_start_with(&fx, "decimal.db", 1);
    static const char *const refused[] = {"0x1p-1", "0x0.8", "inf", "nan", "NaN", "1e-1", "5e-1", "-0", "+0.5",
                                          "%200.5", "0.5%20", "", ".", "1.5", "2", "0.5.1", "0,5", "1.0000001",
                                          "00000000000000000000000000000000.5"};
    unsigned char *img = fake_jpeg(200, 60);
    char path[128];
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        snprintf(path, sizeof path, "/api/v1/predict?threshold=%s", refused[i]);
        http_resp r = post(fx.port, path, "image/jpeg", img, 200);
        if (r.status != 400)
            fail_msg("threshold=%s: expected 400, got:\n%s", refused[i], r.raw);
        assert_error(r, 400);
    }
    static const char *const accepted[] = {"0.5", ".25", "1", "0", "1.", "0.000", "1.000"};
    for (size_t i = 0; i < sizeof accepted / sizeof *accepted; i++) {
        snprintf(path, sizeof path, "/api/v1/predict?threshold=%s", accepted[i]);
        http_resp r = post(fx.port, path, "image/jpeg", img, 200);
        check_prediction(&r, fake_probability(img, 200), strtod(accepted[i], NULL));
        resp_free(&r);
    }
    free(img);
    pn_server_stop(fx.server);
}

/* Over the limit: refused and closed without reading the rest, announced or streamed. */
static void test_oversize_refused_without_reading(void **state)
{
    enum { LIMIT = 1 << 20, SENT = 64 << 20 };
    fixture fx;
    pn_serve_options_default(&fx.opt);
    fx.opt.max_body = LIMIT;
    fixture_start_with(&fx, "oversize.db", 1);
    /* Announced: 413 from the headers, Connection: close, the 64 MB never read. */
    size_t head_len = 256, total = head_len + SENT;
    char *req = malloc(total);
    memset(req, 'a', total);
    int n = snprintf(req, head_len, "POST /api/v1/predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: image/jpeg\r\n"
                                    "Content-Length: %d\r\n\r\n", SENT);
    memmove(req + n, req + head_len, SENT);
    exchange x = raw_exchange(fx.port, req, (size_t)n + SENT);
    assert_true(x.closed);
    assert_true(x.sent < (size_t)n + SENT);
    assert_header(&x.resp, "Connection", "close");
    assert_error(x.resp, 413);

    free(req);
    /* Streamed in chunks past the limit: 413 mid-body, the rest never read. */
    req = chunked_upload("", SENT, &total);
    x = raw_exchange(fx.port, req, total);
    assert_true(x.closed);
    assert_true(x.sent < total);
    assert_header(&x.resp, "Connection", "close");
    assert_header(&x.resp, "X-Content-Type-Options", "nosniff");
    assert_error(x.resp, 413);
    free(req);
    assert_int_equal(atomic_load(&fx.fake.calls), 0);
    pn_server_stop(fx.server);
}

/* ---------------------------------------------------------- private audit */

/* By default the audit row holds no client file name or address. */
static void test_audit_private_by_default(void **state)
{
    fixture fx;
    pn_serve_options_default(&fx.opt);
    fixture_start_with(&fx, "private.db", 1);
    size_t len;
    char *body = multipart_with("0.5", 3, "DOE^JANE 1234567.jpeg", 21, &len);
    http_resp r = post(fx.port, "/api/v1/predict", "multipart/form-data; boundary=XyZ", body, len);
    unsigned char *img = fake_jpeg(300, 120); /* what multipart_with uploads */
    json_int_t id = check_prediction(&r, fake_probability(img, 300), 0.5);
    free(img);
    resp_free(&r);
    free(body);
    char *v = db_text(fx.db, "coalesce(file_name, 'NULL') || ',' || coalesce(client_addr, 'NULL') || ',' || "
                             "client_info || ',' || length(image_sha256) || ',' || image_bytes", id);
    assert_string_equal(v, "NULL,NULL,0,64,300");
    free(v);
    pn_server_stop(fx.server);
}

/* ----------------------------------------------------------- decode cost */

/* Decompression bombs are refused from their header: the fake predictor
 * (which never decodes) is not even called. */
static void test_decode_budget(void **state)
{
    fixture fx;
    pn_serve_options_default(&fx.opt);
    assert_int_equal(fx.opt.max_pixels, 25000000u);
    fixture_start_with(&fx, "budget.db", 1);
    static const struct {
        int w, h, status;
    } cases[] = {{5001, 5000, 413}, {65500, 65500, 413}, {25001, 1000, 413}, {5000, 5000, 200}, {4300, 4300, 200}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        unsigned char *img = fake_jpeg_sized(400, 77, cases[i].w, cases[i].h);
        http_resp r = post(fx.port, "/api/v1/predict", "image/jpeg", img, 400);
        free(img);
        if (r.status != cases[i].status)
            fail_msg("%dx%d: expected %d, got:\n%s", cases[i].w, cases[i].h, cases[i].status, r.raw);
        if (r.status == 413) {
            assert_non_null(strstr(r.body, "25000000 pixels"));
            assert_error(r, 413);
        } else {
            resp_free(&r);
        }
    }
    /* A PNG header of the 10000x10000 RGBA 16-bit bomb, nothing after it. */
    static const unsigned char png[33] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D',
                                          'R', 0, 0, 0x27, 0x10, 0, 0, 0x27, 0x10, 16, 6, 0, 0, 0, 0, 0, 0, 0};
    http_resp r = post(fx.port, "/api/v1/predict", "image/png", png, sizeof png);
    assert_non_null(strstr(r.body, "10000x10000 (16-bit, 4 channels)"));
    assert_error(r, 413);
    assert_int_equal(atomic_load(&fx.fake.calls), 2);
    assert_int_equal(db_int(fx.db, "SELECT count(*) FROM predictions"), 2);
    pn_server_stop(fx.server);
}

/* A file named like a spreadsheet formula, recorded (--audit-client-info),
 * comes out of the CSV export quoted with a leading '. */
static void test_csv_injection_through_upload(void **state)
{
    fixture fx;
    pn_serve_options_default(&fx.opt);
    fx.opt.audit_client_info = 1;
    fixture_start_with(&fx, "inject.db", 1);
    /* As a browser sends them: quotes in file names arrive as %22, no slashes. */
    static const char *const names[] = {"=HYPERLINK(%22evil.example%22;A1)", "@SUM(1+1)", "+cmd", "-2+3"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        size_t len;
        char *body = multipart_with("0.5", 3, names[i], strlen(names[i]), &len);
        http_resp r = post(fx.port, "/api/v1/predict", "multipart/form-data; boundary=XyZ", body, len);
        assert_int_equal(r.status, 200);
        resp_free(&r);
        free(body);
    }
    pn_server_stop(fx.server);
    char *csv = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&csv, &size);
    pn_error err = {0};
    assert_int_equal(pn_audit_export_csv(fx.db, NULL, f, &err), PN_OK);
    fclose(f);
    assert_non_null(strstr(csv, ",\"'=HYPERLINK(%22evil.example%22;A1)\","));
    assert_non_null(strstr(csv, ",\"'@SUM(1+1)\","));
    assert_non_null(strstr(csv, ",\"'+cmd\","));
    assert_non_null(strstr(csv, ",\"'-2+3\","));
    assert_null(strstr(csv, ",=HYPERLINK"));
    free(csv);
}

/* What the server already held, kept held: traversal, odd methods, forged routes. */
static void test_traversal_and_methods(void **state)
{
    fixture fx;
    pn_serve_options_default(&fx.opt);
    fixture_start_with(&fx, "paths.db", 1);
    static const char *const paths[] = {"/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/static/../../etc/passwd",
                                        "//etc/passwd", "/index.html/..", "/app.js%2f..%2fapi"};
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        http_resp r = get(fx.port, paths[i]);
        if (r.status != 404 && r.status != 400)
            fail_msg("%s: expected 404 or 400, got:\n%s", paths[i], r.raw);
        assert_null(strstr(r.body, "root:"));
        resp_free(&r);
    }
    static const char *const methods[] = {"TRACE", "PUT", "DELETE", "PATCH", "CONNECT"};
    char head[128];
    for (size_t i = 0; i < sizeof methods / sizeof *methods; i++) {
        snprintf(head, sizeof head, "%s /api/v1/predict HTTP/1.1", methods[i]);
        http_resp r = http(fx.port, head, NULL, 0);
        if (r.status != 405 && r.status != 400 && r.status != 403)
            fail_msg("%s: got:\n%s", methods[i], r.raw);
        resp_free(&r);
    }
    assert_int_equal(atomic_load(&fx.fake.calls), 0);
    pn_server_stop(fx.server);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slow_clients_cannot_starve),
        cmocka_unit_test(test_token_required),
        cmocka_unit_test(test_cross_origin_post_refused),
        cmocka_unit_test(test_dns_rebinding_refused),
        cmocka_unit_test(test_exposed_without_token_refused),
        cmocka_unit_test(test_tls),
        cmocka_unit_test(test_smuggling_shapes_refused),
        cmocka_unit_test(test_nul_bytes_refused),
        cmocka_unit_test(test_threshold_plain_decimals_only),
        cmocka_unit_test(test_oversize_refused_without_reading),
        cmocka_unit_test(test_audit_private_by_default),
        cmocka_unit_test(test_decode_budget),
        cmocka_unit_test(test_csv_injection_through_upload),
        cmocka_unit_test(test_traversal_and_methods),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
