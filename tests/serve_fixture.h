/* What the serve tests share: a fake predictor (the probability is the mean
 * byte value / 255, "SLOW" in the bytes sleeps 400 ms), a server fixture on a
 * free loopback port, a raw-socket HTTP/1.1 client and audit-database reads. */
#ifndef PNEUMO_SERVE_FIXTURE_H
#define PNEUMO_SERVE_FIXTURE_H

#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stddef.h>

#include "pneumo/serve.h"

#define FAKE_SLOTS 2

typedef struct fake {
    atomic_int busy[FAKE_SLOTS];   /* >1 would mean two calls on one slot at once */
    atomic_int overlap_seen;
    pthread_t thread[FAKE_SLOTS];  /* the thread each slot ran on first */
    atomic_int thread_known[FAKE_SLOTS];
    atomic_int wrong_thread;
    atomic_int calls;
    atomic_int started;            /* calls that reached the sleep of a SLOW image */
} fake;

typedef struct fixture {
    fake fake;
    pn_predictor predictor;
    pn_serve_options opt;
    pn_server *server;
    int port;
    char db[512];
} fixture;

typedef struct http_resp {
    int status;
    char *raw;       /* whole response, NUL-terminated */
    char *body;      /* points into raw */
    size_t body_len;
} http_resp;

extern const char fake_model_json[]; /* its GET /api/v1/model body */
double fake_probability(const unsigned char *b, size_t n);
pn_predictor fake_predictor(fake *f, int slots);
/* Starts a server on 127.0.0.1, any free port, with db_name in the test's tmp dir. */
void fixture_start(fixture *fx, const char *db_name, int slots, size_t max_body, int max_queue);
/* Starts with fx->opt as the caller filled it (port and audit_db are set here). */
void fixture_start_with(fixture *fx, const char *db_name, int slots);

int connect_to(int port);
void send_all(int fd, const void *data, size_t len);
/* Reads until the server closes the connection. */
void read_response(int fd, http_resp *r);
/* head: request line and headers without the blank line. */
http_resp http(int port, const char *head, const void *body, size_t body_len);
http_resp get(int port, const char *path);
http_resp post(int port, const char *path, const char *type, const void *body, size_t len);
void resp_free(http_resp *r);
/* Case-insensitive header lookup; returns a malloc'ed value or NULL. */
char *header(const http_resp *r, const char *name);
void assert_header(const http_resp *r, const char *name, const char *expected);
json_t *body_json(const http_resp *r);
/* A JSON error of this status; frees r. */
void assert_error(http_resp r, int status);
/* A fake "JPEG": a real 224x200 header (FAKE_JPEG_HEADER bytes, less when
 * n is smaller), the rest chosen to set the fake probability. */
#define FAKE_JPEG_HEADER 25
unsigned char *fake_jpeg(size_t n, unsigned char fill);
/* The same announcing w x h (at most 65535 each). */
unsigned char *fake_jpeg_sized(size_t n, unsigned char fill, int w, int h);

sqlite3_int64 db_int(const char *db, const char *sql);
void db_exec(const char *db, const char *sql);
/* The row's column as text ("" for NULL), malloc'ed. */
char *db_text(const char *db, const char *column, json_int_t id);
/* Checks a 200 prediction answer; returns its audit id. */
json_int_t check_prediction(http_resp *r, double expected_p, double threshold);

#endif
