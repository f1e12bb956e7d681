/* See serve_fixture.h. */
#define _GNU_SOURCE /* memmem, asprintf, strndup */
#include "serve_fixture.h"

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pneumo/overlay.h"
#include "testutil.h"
/* ------------------------------------------------------------ fake model */



double fake_probability(const unsigned char *b, size_t n)
{
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += b[i];
    return sum / (double)n / 255.0;
}

static pn_status fake_overlay(pn_predict_result *out, pn_error *err)
{
    enum { W = 40, H = 30, CAM = 7 };
    uint8_t gray[W * H];
    float cam[CAM * CAM];
    for (int i = 0; i < W * H; i++)
        gray[i] = (uint8_t)(i % 251);
    for (int i = 0; i < CAM * CAM; i++)
        cam[i] = (float)i / (CAM * CAM - 1);
    return pn_overlay_png(gray, W, H, cam, CAM, 0.5f, &out->overlay_png, &out->overlay_png_size, err);
}

static pn_status fake_predict(void *user, int slot, const void *bytes, size_t size, int want_cam,
                              pn_predict_result *out, pn_error *err)
{
    fake *f = user;
    atomic_fetch_add(&f->calls, 1);
    if (atomic_fetch_add(&f->busy[slot], 1) != 0)
        atomic_store(&f->overlap_seen, 1);
    if (!atomic_exchange(&f->thread_known[slot], 1))
        f->thread[slot] = pthread_self();
    else if (!pthread_equal(f->thread[slot], pthread_self()))
        atomic_store(&f->wrong_thread, 1);
    pn_status st = PN_OK;
    memset(out, 0, sizeof *out);
    if (size < 16) {
        st = pn_fail(err, PN_EFORMAT, "upload: truncated image (%zu bytes)", size);
    } else {
        if (memmem(bytes, size, "SLOW", 4)) {
            atomic_fetch_add(&f->started, 1);
            usleep(400 * 1000);
        }
        out->pred.probability = (float)fake_probability(bytes, size);
        out->pred.width = 224;
        out->pred.height = 200;
        if (want_cam)
            st = fake_overlay(out, err);
    }
    atomic_fetch_sub(&f->busy[slot], 1);
    return st;
}

const char fake_model_json[] = "{\"arch\":\"fake\",\"input_size\":224,\"threshold\":0.5}";

pn_predictor fake_predictor(fake *f, int slots)
{
    memset(f, 0, sizeof *f);
    return (pn_predictor){.user = f, .n_slots = slots, .predict = fake_predict, .model_json = fake_model_json,
                          .model_id = "fake0123", .model_version = "test-1", .default_threshold = 0.5f};
}

/* ------------------------------------------------------------ test server */


void fixture_start(fixture *fx, const char *db_name, int slots, size_t max_body, int max_queue)
{
    pn_serve_options_default(&fx->opt);
    fx->opt.max_body = max_body;
    fx->opt.max_queue = max_queue;
    fx->opt.connection_timeout_s = 10;
    fixture_start_with(fx, db_name, slots);
}

void fixture_start_with(fixture *fx, const char *db_name, int slots)
{
    fx->predictor = fake_predictor(&fx->fake, slots);
    snprintf(fx->db, sizeof fx->db, "%s/%s", pn_test_tmpdir(), db_name);
    unlink(fx->db);
    fx->opt.port = 0;
    fx->opt.audit_db = fx->db;
    pn_error err = {0};
    pn_status st = pn_server_start(&fx->opt, &fx->predictor, &fx->server, &err);
    if (st)
        fail_msg("server start: %s", err.msg);
    fx->port = pn_server_port(fx->server);
    assert_true(fx->port > 0);
}

/* ------------------------------------------------------------ HTTP client */


int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a)) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

void send_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n <= 0)
            return; /* the server may answer and close early (413): read what it said */
        p += n;
        len -= (size_t)n;
    }
}

void read_response(int fd, http_resp *r)
{
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    ssize_t n;
    while ((n = recv(fd, buf + len, cap - len - 1, 0)) > 0) {
        len += (size_t)n;
        if (cap - len < 4096)
            buf = realloc(buf, cap *= 2);
    }
    buf[len] = '\0';
    memset(r, 0, sizeof *r);
    r->raw = buf;
    if (sscanf(buf, "HTTP/1.%*d %d", &r->status) != 1)
        r->status = -1;
    char *sep = strstr(buf, "\r\n\r\n");
    r->body = sep ? sep + 4 : buf + len;
    r->body_len = (size_t)(buf + len - r->body);
}

/* head: request line and headers without the blank line. */
http_resp http(int port, const char *head, const void *body, size_t body_len)
{
    http_resp r = {.status = -1};
    int fd = connect_to(port);
    if (fd < 0)
        return r;
    char *msg;
    /* Host: localhost unless the caller sends its own. */
    int n = asprintf(&msg, "%s%s\r\nConnection: close\r\n\r\n", head,
                     strcasestr(head, "\r\nHost:") ? "" : "\r\nHost: localhost");
    send_all(fd, msg, (size_t)n);
    free(msg);
    if (body_len)
        send_all(fd, body, body_len);
    /* no half-close: like browsers and curl, the client waits for the answer with its side open */
    read_response(fd, &r);
    close(fd);
    return r;
}

http_resp get(int port, const char *path)
{
    char head[512];
    snprintf(head, sizeof head, "GET %s HTTP/1.1", path);
    return http(port, head, NULL, 0);
}

http_resp post(int port, const char *path, const char *type, const void *body, size_t len)
{
    char head[512];
    snprintf(head, sizeof head, "POST %s HTTP/1.1\r\nContent-Type: %s\r\nContent-Length: %zu", path, type, len);
    return http(port, head, body, len);
}

void resp_free(http_resp *r)
{
    free(r->raw);
}

/* Case-insensitive header lookup; returns a malloc'ed value or NULL. */
char *header(const http_resp *r, const char *name)
{
    size_t n = strlen(name);
    for (const char *line = strstr(r->raw, "\r\n"); line && line + 2 < r->body; line = strstr(line + 2, "\r\n")) {
        const char *h = line + 2;
        if (!strncasecmp(h, name, n) && h[n] == ':') {
            h += n + 1;
            while (*h == ' ')
                h++;
            return strndup(h, strcspn(h, "\r"));
        }
    }
    return NULL;
}

void assert_header(const http_resp *r, const char *name, const char *expected)
{
    char *v = header(r, name);
    if (!v)
        fail_msg("missing header %s in:\n%s", name, r->raw);
    assert_string_equal(v, expected);
    free(v);
}

json_t *body_json(const http_resp *r)
{
    json_error_t e;
    json_t *j = json_loadb(r->body, r->body_len, 0, &e);
    if (!j)
        fail_msg("response is not JSON (%s):\n%s", e.text, r->raw);
    return j;
}

void assert_error(http_resp r, int status)
{
    if (r.status != status)
        fail_msg("expected %d, got:\n%s", status, r.raw);
    json_t *j = body_json(&r);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "error"), "code")), status);
    assert_true(strlen(json_string_value(json_object_get(json_object_get(j, "error"), "message"))) > 0);
    json_decref(j);
    resp_free(&r);
}

/* A fake "JPEG": right magic, the rest chosen to set the fake probability. */
unsigned char *fake_jpeg_sized(size_t n, unsigned char fill, int w, int h)
{
    /* SOI, a baseline one-component SOF0 announcing w x h, SOS: all a JPEG
     * header reader needs (the scan data after it is the fill). */
    const unsigned char header[FAKE_JPEG_HEADER] = {
        0xff, 0xd8, 0xff, 0xc0, 0x00, 0x0b, 8, (unsigned char)(h >> 8), (unsigned char)h,
        (unsigned char)(w >> 8), (unsigned char)w, 1, 1, 0x11, 0,
        0xff, 0xda, 0x00, 0x08, 1, 1, 0x00, 0, 63, 0};
    unsigned char *b = malloc(n);
    memset(b, fill, n);
    memcpy(b, header, n < sizeof header ? n : sizeof header);
    return b;
}

unsigned char *fake_jpeg(size_t n, unsigned char fill)
{
    return fake_jpeg_sized(n, fill, 224, 200);
}

/* ------------------------------------------------------------- audit DB */

sqlite3_int64 db_int(const char *db, const char *sql)
{
    sqlite3 *h;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(h, 5000);
    assert_int_equal(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    sqlite3_int64 v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(h);
    return v;
}

void db_exec(const char *db, const char *sql)
{
    sqlite3 *h;
    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    sqlite3_busy_timeout(h, 5000);
    char *msg = NULL;
    if (sqlite3_exec(h, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg);
    sqlite3_close(h);
}

/* The row's column as text ("" for NULL), malloc'ed. */
char *db_text(const char *db, const char *column, json_int_t id)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT %s FROM predictions WHERE id = %lld", column, (long long)id);
    sqlite3 *h;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(h, 5000);
    assert_int_equal(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    const unsigned char *t = sqlite3_column_text(st, 0);
    char *out = strdup(t ? (const char *)t : "");
    sqlite3_finalize(st);
    sqlite3_close(h);
    return out;
}

/* Checks a 200 prediction answer; returns its audit id. */
json_int_t check_prediction(http_resp *r, double expected_p, double threshold)
{
    if (r->status != 200)
        fail_msg("prediction failed:\n%s", r->raw);
    json_t *j = body_json(r);
    double p = json_real_value(json_object_get(j, "probability"));
    assert_float_equal(p, expected_p, 1e-5);
    assert_float_equal(json_real_value(json_object_get(j, "threshold")), threshold, 1e-6);
    assert_string_equal(json_string_value(json_object_get(j, "label")), p >= threshold ? "PNEUMONIA" : "NORMAL");
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "model"), "id")), "fake0123");
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "model"), "version")), "test-1");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "image"), "width")), 224);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "image"), "height")), 200);
    assert_true(json_is_array(json_object_get(j, "warnings")));
    assert_true(json_real_value(json_object_get(j, "latency_ms")) >= 0);
    assert_non_null(strstr(json_string_value(json_object_get(j, "disclaimer")), "not a diagnostic device"));
    json_t *audit = json_object_get(j, "audit");
    if (!json_is_true(json_object_get(audit, "logged")))
        fail_msg("audit not logged:\n%s", r->raw);
    json_int_t id = json_integer_value(json_object_get(audit, "id"));
    assert_true(id > 0);
    json_decref(j);
    return id;
}
