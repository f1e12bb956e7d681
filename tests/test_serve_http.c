/* The HTTP server end to end over real sockets, with a fake predictor (the
 * probability is the mean byte value / 255), so the plumbing is tested
 * without a trained model: every endpoint, every error status, raw and
 * multipart uploads, concurrency, the audit log, metrics and shutdown. */
#define _GNU_SOURCE /* memmem, asprintf */
#include <arpa/inet.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pneumo/overlay.h"
#include "pneumo/serve.h"
#include "pneumo/sha256.h"
#include "serve/web_assets.h"
#include "serve_fixture.h"
#include "testutil.h"

/* ---------------------------------------------------------------- tests */

static void test_health_model_and_headers(void **state)
{
    fixture *fx = *state;
    http_resp r = get(fx->port, "/healthz");
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "ok");
    json_decref(j);
    assert_header(&r, "Content-Type", "application/json");
    assert_header(&r, "X-Content-Type-Options", "nosniff");
    assert_header(&r, "Referrer-Policy", "no-referrer");
    assert_header(&r, "Cache-Control", "no-store");
    resp_free(&r);

    r = get(fx->port, "/api/v1/model");
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, strlen(fake_model_json));
    assert_memory_equal(r.body, fake_model_json, r.body_len);
    resp_free(&r);

    r = http(fx->port, "HEAD /healthz HTTP/1.1", NULL, 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 0);
    resp_free(&r);
}

static void test_static_assets(void **state)
{
    fixture *fx = *state;
    int n = 0;
    for (const pn_web_asset *a = pn_web_assets; a->path; a++, n++) {
        http_resp r = get(fx->port, a->path);
        assert_int_equal(r.status, 200);
        assert_header(&r, "Content-Type", a->mime);
        assert_header(&r, "Cache-Control", "no-cache");
        char *csp = header(&r, "Content-Security-Policy");
        assert_non_null(csp);
        assert_non_null(strstr(csp, "default-src 'self'"));
        assert_non_null(strstr(csp, "img-src 'self' data: blob:"));
        assert_null(strstr(csp, "unsafe-inline"));
        free(csp);
        assert_int_equal(r.body_len, a->size);
        assert_memory_equal(r.body, a->data, a->size);
        resp_free(&r);
    }
    http_resp r = get(fx->port, "/");
    int has_index = 0;
    for (const pn_web_asset *a = pn_web_assets; a->path; a++)
        has_index |= !strcmp(a->path, "/index.html");
    assert_int_equal(r.status, has_index ? 200 : 404);
    resp_free(&r);
    printf("served %d embedded assets\n", n);
}

static void test_not_found_and_method(void **state)
{
    fixture *fx = *state;
    assert_error(get(fx->port, "/nope"), 404);
    assert_error(get(fx->port, "/api/v1/nope"), 404);
    assert_error(get(fx->port, "/../../etc/passwd"), 404);
    http_resp r = get(fx->port, "/api/v1/predict");
    char *allow = header(&r, "Allow");
    assert_string_equal(allow, "POST");
    free(allow);
    assert_error(r, 405);
    assert_error(post(fx->port, "/healthz", "application/json", "{}", 2), 405);
    assert_error(http(fx->port, "DELETE /api/v1/model HTTP/1.1", NULL, 0), 405);
}

static void test_predict_raw(void **state)
{
    fixture *fx = *state;
    size_t n = 5000;
    unsigned char *img = fake_jpeg(n, 200);
    double p = fake_probability(img, n);
    http_resp r = post(fx->port, "/api/v1/predict", "image/jpeg", img, n);
    json_int_t id = check_prediction(&r, p, 0.5);
    resp_free(&r);

    uint8_t digest[PN_SHA256_DIGEST_SIZE];
    char hex[PN_SHA256_HEX_SIZE];
    pn_sha256(img, n, digest);
    pn_sha256_hex(digest, hex);
    char *v = db_text(fx->db, "image_sha256", id);
    assert_string_equal(v, hex);
    free(v);
    v = db_text(fx->db, "file_name", id);
    assert_string_equal(v, "");
    free(v);
    v = db_text(fx->db, "client_addr", id);
    assert_string_equal(v, "127.0.0.1");
    free(v);
    v = db_text(fx->db, "image_bytes || ',' || width || ',' || height || ',' || model_id || ',' || label", id);
    assert_string_equal(v, "5000,224,200,fake0123,PNEUMONIA");
    free(v);
    v = db_text(fx->db, "time_utc", id);
    assert_int_equal(strlen(v), 24); /* 2024-05-01T12:34:56.789Z */
    assert_int_equal(v[10], 'T');
    assert_int_equal(v[23], 'Z');
    free(v);

    /* Without Content-Type, and as octet-stream, the bytes decide. */
    r = post(fx->port, "/api/v1/predict", "application/octet-stream", img, n);
    check_prediction(&r, p, 0.5);
    resp_free(&r);
    char head[128];
    snprintf(head, sizeof head, "POST /api/v1/predict HTTP/1.1\r\nContent-Length: %zu", n);
    r = http(fx->port, head, img, n);
    check_prediction(&r, p, 0.5);
    resp_free(&r);
    free(img);
}

static void test_predict_threshold(void **state)
{
    fixture *fx = *state;
    size_t n = 1000;
    unsigned char *img = fake_jpeg(n, 100); /* p ~ 0.39 */
    double p = fake_probability(img, n);
    static const double thresholds[] = {0.0, 0.3, 0.39, 0.4, 1.0};
    for (size_t i = 0; i < sizeof thresholds / sizeof *thresholds; i++) {
        char path[64];
        snprintf(path, sizeof path, "/api/v1/predict?threshold=%g", thresholds[i]);
        http_resp r = post(fx->port, path, "image/jpeg", img, n);
        check_prediction(&r, p, thresholds[i]);
        resp_free(&r);
    }
    static const char *const bad[] = {"1.5", "-0.1", "abc", "", "0.5x", "nan"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char path[64];
        snprintf(path, sizeof path, "/api/v1/predict?threshold=%s", bad[i]);
        assert_error(post(fx->port, path, "image/jpeg", img, n), 400);
    }
    assert_error(post(fx->port, "/api/v1/predict?gradcam=maybe", "image/jpeg", img, n), 400);
    free(img);
}

static char *multipart_body(const char *boundary, const unsigned char *img, size_t n, const char *file_name,
                            const char *threshold, size_t *len)
{
    char *buf;
    size_t size;
    FILE *f = open_memstream(&buf, &size);
    fprintf(f, "preamble to ignore\r\n--%s\r\nContent-Disposition: form-data; name=\"gradcam\"\r\n\r\n1\r\n", boundary);
    if (threshold)
        fprintf(f, "--%s\r\nContent-Disposition: form-data; name=\"threshold\"\r\n\r\n%s\r\n", boundary, threshold);
    fprintf(f, "--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"%s\"\r\n"
               "Content-Type: image/jpeg\r\n\r\n", boundary, file_name);
    fwrite(img, 1, n, f);
    fprintf(f, "\r\n--%s--\r\n", boundary);
    fclose(f);
    *len = size;
    return buf;
}

static void test_predict_multipart_with_gradcam(void **state)
{
    fixture *fx = *state;
    size_t n = 3000, len;
    unsigned char *img = fake_jpeg(n, 50);
    /* The image contains CRLF and dashes: only the full delimiter may end it. */
    memcpy(img + 100, "\r\n--xyz\r\n--", 11);
    double p = fake_probability(img, n);
    const char *boundary = "----pneumoTestBoundary7d";
    char *body = multipart_body(boundary, img, n, "C:\\scans\\patient,1 %22x%22\x01.jpeg", "0.1", &len);
    char type[128];
    snprintf(type, sizeof type, "multipart/form-data; boundary=\"%s\"", boundary);
    http_resp r = post(fx->port, "/api/v1/predict", type, body, len);
    json_int_t id = check_prediction(&r, p, 0.1);
    json_t *j = body_json(&r);
    const char *b64 = json_string_value(json_object_get(j, "gradcam_png"));
    assert_non_null(b64);
    assert_memory_equal(b64, "iVBORw0KGgo", 11); /* base64 of the PNG signature */
    json_decref(j);
    resp_free(&r);
    char *name = db_text(fx->db, "file_name", id);
    assert_string_equal(name, "patient,1 %22x%22_.jpeg");
    free(name);
    free(body);

    /* No file field: 400; garbage in the file field: 415; bad form threshold: 400. */
    body = multipart_body(boundary, img, n, "a.jpeg", "2", &len);
    assert_error(post(fx->port, "/api/v1/predict", type, body, len), 400);
    free(body);
    memcpy(img, "GIF89a", 6);
    body = multipart_body(boundary, img, n, "a.gif", NULL, &len);
    assert_error(post(fx->port, "/api/v1/predict", type, body, len), 415);
    free(body);
    static const char no_file[] = "--b\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nx\r\n--b--\r\n";
    assert_error(post(fx->port, "/api/v1/predict", "multipart/form-data; boundary=b", no_file, sizeof no_file - 1), 400);
    assert_error(post(fx->port, "/api/v1/predict", "multipart/form-data", no_file, sizeof no_file - 1), 400);
    static const char unterminated[] = "--b\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n\xff\xd8\xff";
    assert_error(post(fx->port, "/api/v1/predict", "multipart/form-data; boundary=b", unterminated,
                      sizeof unterminated - 1), 400);
    free(img);
}

static void test_bad_uploads(void **state)
{
    fixture *fx = *state;
    static const char text[] = "hello, this is not an image at all";
    assert_error(post(fx->port, "/api/v1/predict", "text/plain", text, sizeof text - 1), 415);
    assert_error(post(fx->port, "/api/v1/predict", "application/json", "{}", 2), 415);
    assert_error(post(fx->port, "/api/v1/predict", "application/octet-stream", text, sizeof text - 1), 415);
    assert_error(post(fx->port, "/api/v1/predict", "image/png", text, sizeof text - 1), 415);
    assert_error(post(fx->port, "/api/v1/predict", "image/jpeg", "", 0), 400);
    /* Sniffs as JPEG but the predictor cannot decode it. */
    assert_error(post(fx->port, "/api/v1/predict", "image/jpeg", "\xff\xd8\xff\xe0truncated", 12), 400);
}

static void test_body_limit(void **state)
{
    fixture *fx = *state;
    size_t limit = fx->opt.max_body;
    /* Announced too large: refused from the headers, before any body is sent. */
    char head[256];
    snprintf(head, sizeof head, "POST /api/v1/predict HTTP/1.1\r\nContent-Type: image/jpeg\r\nContent-Length: %zu",
             limit + 1);
    assert_error(http(fx->port, head, NULL, 0), 413);
    /* Same, from a client that sends the body without waiting for an answer. */
    unsigned char *big = fake_jpeg(limit + 1, 3);
    assert_error(post(fx->port, "/api/v1/predict", "image/jpeg", big, limit + 1), 413);
    free(big);
    /* Streamed (chunked, no length) past the limit: refused too. */
    size_t chunk = 64 * 1024, n_chunks = limit / chunk + 2;
    unsigned char *img = fake_jpeg(chunk, 7);
    char *body;
    size_t len;
    FILE *f = open_memstream(&body, &len);
    for (size_t i = 0; i < n_chunks; i++) {
        fprintf(f, "%zx\r\n", chunk);
        fwrite(img, 1, chunk, f);
        fputs("\r\n", f);
    }
    fputs("0\r\n\r\n", f);
    fclose(f);
    http_resp r = http(fx->port, "POST /api/v1/predict HTTP/1.1\r\nContent-Type: image/jpeg\r\n"
                                 "Transfer-Encoding: chunked", body, len);
    /* libmicrohttpd 0.9.75 cannot answer mid-body: the connection is closed
     * there (test_serve_attacks checks the rest is never read). */
    if (r.status != -1)
        assert_error(r, 413);
    else
        resp_free(&r);
    free(body);
    /* Exactly at the limit is fine. */
    free(img);
    img = fake_jpeg(limit, 9);
    r = post(fx->port, "/api/v1/predict", "image/jpeg", img, limit);
    check_prediction(&r, fake_probability(img, limit), 0.5);
    resp_free(&r);
    free(img);
}

static void test_audit_failure_is_reported(void **state)
{
    fixture *fx = *state;
    db_exec(fx->db, "CREATE TRIGGER refuse BEFORE INSERT ON predictions BEGIN SELECT RAISE(ABORT, 'disk on fire'); END;");
    unsigned char *img = fake_jpeg(100, 1);
    http_resp r = post(fx->port, "/api/v1/predict", "image/jpeg", img, 100);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    json_t *audit = json_object_get(j, "audit");
    assert_true(json_is_false(json_object_get(audit, "logged")));
    assert_non_null(strstr(json_string_value(json_object_get(audit, "error")), "disk on fire"));
    json_decref(j);
    resp_free(&r);
    db_exec(fx->db, "DROP TRIGGER refuse;");
    r = get(fx->port, "/metrics");
    assert_non_null(strstr(r.body, "\npneumo_audit_failures_total 1\n"));
    resp_free(&r);
    r = post(fx->port, "/api/v1/predict", "image/jpeg", img, 100);
    check_prediction(&r, fake_probability(img, 100), 0.5);
    resp_free(&r);
    free(img);
}

typedef struct load_arg {
    int port, n, failures;
    json_int_t ids[64];
} load_arg;

static void *load_thread(void *p)
{
    load_arg *a = p;
    for (int i = 0; i < a->n; i++) {
        size_t n = 2000 + (size_t)i;
        unsigned char *img = fake_jpeg(n, (unsigned char)(30 + i));
        http_resp r = post(a->port, "/api/v1/predict?threshold=0.2", "image/jpeg", img, n);
        json_t *j = r.status == 200 ? json_loadb(r.body, r.body_len, 0, NULL) : NULL;
        double p = j ? json_real_value(json_object_get(j, "probability")) : -1;
        json_t *audit = json_object_get(j, "audit");
        if (!j || fabs(p - fake_probability(img, n)) > 1e-5 || !json_is_true(json_object_get(audit, "logged")))
            a->failures++;
        else
            a->ids[i] = json_integer_value(json_object_get(audit, "id"));
        json_decref(j);
        resp_free(&r);
        free(img);
    }
    return NULL;
}

static void test_concurrent_predictions(void **state)
{
    fixture *fx = *state;
    enum { THREADS = 4 };
    int per_thread = pn_test_sanitized() ? 10 : 25;
    sqlite3_int64 rows_before = db_int(fx->db, "SELECT count(*) FROM predictions");
    int calls_before = atomic_load(&fx->fake.calls);
    load_arg args[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i] = (load_arg){.port = fx->port, .n = per_thread};
        pthread_create(&t[i], NULL, load_thread, &args[i]);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(args[i].failures, 0);
    int total = THREADS * per_thread;
    assert_int_equal(atomic_load(&fx->fake.calls) - calls_before, total);
    assert_int_equal(db_int(fx->db, "SELECT count(*) FROM predictions") - rows_before, total);
    /* Every answered id is its own row. */
    for (int i = 0; i < THREADS; i++)
        for (int k = 0; k < per_thread; k++) {
            char sql[96];
            snprintf(sql, sizeof sql, "SELECT count(*) FROM predictions WHERE id = %lld AND threshold = 0.2",
                     (long long)args[i].ids[k]);
            assert_int_equal(db_int(fx->db, sql), 1);
        }
    assert_int_equal(atomic_load(&fx->fake.overlap_seen), 0);
    assert_int_equal(atomic_load(&fx->fake.wrong_thread), 0);
}

static void test_metrics(void **state)
{
    fixture *fx = *state;
    unsigned char *img = fake_jpeg(64, 255);
    http_resp r = post(fx->port, "/api/v1/predict?threshold=0.5", "image/jpeg", img, 64);
    resp_free(&r);
    free(img);
    assert_error(get(fx->port, "/missing"), 404);
    r = get(fx->port, "/metrics");
    assert_int_equal(r.status, 200);
    assert_header(&r, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    static const char *const expected[] = {
        "# TYPE pneumo_requests_total counter\n",
        "pneumo_requests_total{path=\"/api/v1/predict\",status=\"200\"} ",
        "pneumo_requests_total{path=\"other\",status=\"404\"} ",
        "# TYPE pneumo_request_duration_seconds histogram\n",
        "pneumo_request_duration_seconds_bucket{path=\"/api/v1/predict\",le=\"0.001\"} ",
        "pneumo_request_duration_seconds_bucket{path=\"/api/v1/predict\",le=\"+Inf\"} ",
        "pneumo_request_duration_seconds_sum{path=\"/api/v1/predict\"} ",
        "pneumo_predictions_total{label=\"PNEUMONIA\"} ",
        "pneumo_predictions_total{label=\"NORMAL\"} ",
        "pneumo_audit_failures_total ",
    };
    for (size_t i = 0; i < sizeof expected / sizeof *expected; i++)
        if (!strstr(r.body, expected[i]))
            fail_msg("metrics lack '%s':\n%s", expected[i], r.body);
    /* The +Inf bucket equals the count; every 200 has a row or an audit failure. */
    unsigned long long inf = 0, count = 0, ok = 0, audit_failures = 0;
    sscanf(strstr(r.body, "{path=\"/api/v1/predict\",le=\"+Inf\"} "), "{path=\"/api/v1/predict\",le=\"+Inf\"} %llu",
           &inf);
    sscanf(strstr(r.body, "_count{path=\"/api/v1/predict\"} "), "_count{path=\"/api/v1/predict\"} %llu", &count);
    sscanf(strstr(r.body, "{path=\"/api/v1/predict\",status=\"200\"} "),
           "{path=\"/api/v1/predict\",status=\"200\"} %llu", &ok);
    sscanf(strstr(r.body, "\npneumo_audit_failures_total "), "\npneumo_audit_failures_total %llu", &audit_failures);
    assert_int_equal(inf, count);
    assert_true(ok >= 1);
    assert_int_equal((sqlite3_int64)(ok - audit_failures), db_int(fx->db, "SELECT count(*) FROM predictions"));
    resp_free(&r);
}

/* ----------------------------------------- queue limit and graceful stop */

typedef struct slow_arg {
    int port;
    http_resp resp;
} slow_arg;

static unsigned char *slow_image(size_t n)
{
    unsigned char *img = fake_jpeg(n, 90);
    memcpy(img + FAKE_JPEG_HEADER + 10, "SLOW", 4);
    return img;
}

static void *slow_request(void *p)
{
    slow_arg *a = p;
    unsigned char *img = slow_image(256);
    a->resp = post(a->port, "/api/v1/predict", "image/jpeg", img, 256);
    free(img);
    return NULL;
}

static void wait_for(atomic_int *v, int at_least)
{
    for (int i = 0; i < 500 && atomic_load(v) < at_least; i++)
        usleep(10 * 1000);
    assert_true(atomic_load(v) >= at_least);
}

static void wait_until_queued(int port)
{
    for (int i = 0; i < 500; i++) {
        http_resp m = get(port, "/metrics");
        int queued = strstr(m.body, "\npneumo_prediction_queue_length 1\n") != NULL;
        resp_free(&m);
        if (queued)
            return;
        usleep(10 * 1000);
    }
    fail_msg("the second request never reached the queue");
}

static void test_queue_full_and_graceful_stop(void **state)
{
    fixture fx;
    fixture_start(&fx, "queue.db", 1, 1 << 20, 1);
    slow_arg a = {.port = fx.port}, b = {.port = fx.port}, c = {.port = fx.port};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, slow_request, &a);
    wait_for(&fx.fake.started, 1); /* a holds the only slot */
    pthread_create(&tb, NULL, slow_request, &b);
    wait_until_queued(fx.port);    /* b fills the queue of 1 */
    slow_request(&c);
    char *retry = header(&c.resp, "Retry-After");
    assert_string_equal(retry, "1");
    free(retry);
    assert_error(c.resp, 503);

    /* Stop while a and b are in flight: both still get their answer and row. */
    pn_server_stop(fx.server);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    unsigned char *img = slow_image(256);
    double p = fake_probability(img, 256);
    free(img);
    json_int_t ida = check_prediction(&a.resp, p, 0.5), idb = check_prediction(&b.resp, p, 0.5);
    resp_free(&a.resp);
    resp_free(&b.resp);
    /* Closed for good, and the WAL was folded into the database file. */
    assert_int_equal(connect_to(fx.port), -1);
    char wal[600];
    snprintf(wal, sizeof wal, "%s-wal", fx.db);
    assert_true(access(wal, F_OK) != 0);
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM predictions WHERE id IN (%lld, %lld)", (long long)ida,
             (long long)idb);
    assert_int_equal(db_int(fx.db, sql), 2);
}

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    pn_serve_options_default(&fx->opt);
    fx->opt.max_body = 2u << 20;
    fx->opt.connection_timeout_s = 10;
    /* These tests read the file name and address back: test_serve_attacks
     * checks they are not kept by default. */
    fx->opt.audit_client_info = 1;
    fixture_start_with(fx, "audit.db", FAKE_SLOTS);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    pn_server_stop(fx->server);
    free(fx);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_health_model_and_headers),
        cmocka_unit_test(test_static_assets),
        cmocka_unit_test(test_not_found_and_method),
        cmocka_unit_test(test_predict_raw),
        cmocka_unit_test(test_predict_threshold),
        cmocka_unit_test(test_predict_multipart_with_gradcam),
        cmocka_unit_test(test_bad_uploads),
        cmocka_unit_test(test_body_limit),
        cmocka_unit_test(test_audit_failure_is_reported),
        cmocka_unit_test(test_concurrent_predictions),
        cmocka_unit_test(test_metrics),
    };
    const struct CMUnitTest stop_tests[] = {
        cmocka_unit_test(test_queue_full_and_graceful_stop),
    };
    int failed = cmocka_run_group_tests_name("serve_http", tests, setup, teardown);
    return failed + cmocka_run_group_tests_name("serve_shutdown", stop_tests, NULL, NULL);
}
