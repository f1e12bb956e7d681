/* The attacks a security reviewer runs against `pneumo serve`, each against a
 * live server on loopback (fake predictor) with its outcome asserted, so a
 * regression fails `make test`. Every loop is bounded in count and time. */
#define _GNU_SOURCE /* asprintf */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

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
    pn_server_stop(fx.server);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slow_clients_cannot_starve),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
