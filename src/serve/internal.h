/* Shared between the HTTP plumbing (server.c) and the prediction endpoint (predict.c). */
#ifndef PNEUMO_SERVE_INTERNAL_H
#define PNEUMO_SERVE_INTERNAL_H

#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>

#include "pneumo/audit.h"
#include "pneumo/os.h"
#include "pneumo/serve.h"
#include "serve/access.h"
#include "serve/prometheus.h"
#include "serve/workers.h"

/* One open connection, registered from accept to close so the deadline
 * reaper can find connections that are too slow to send their request. */
typedef struct conn_watch {
    MHD_socket fd;
    double deadline;       /* monotonic seconds; 0 = not receiving a request */
    struct conn_watch *prev, *next;
} conn_watch;

struct pn_server {
    pn_serve_options opt;
    const pn_predictor *predictor;
    struct MHD_Daemon *daemon;
    pn_audit *audit;
    access_rules access;
    int tls;               /* HTTPS */
    char *tls_cert_pem, *tls_key_pem; /* read from the option files */
    int loopback;          /* listening on a loopback address */
    workers workers;
    int workers_started;
    metrics metrics;
    pthread_mutex_t lock;
    pthread_cond_t idle;   /* signalled when in_flight drops to 0 */
    int in_flight;         /* requests between headers and completion */
    int stopping;
    int port;
    conn_watch *watches;   /* under lock */
    pthread_t reaper;
    pthread_cond_t reaper_wake;
    int reaper_started, reaper_stop;
};

typedef struct predict_state predict_state;

/* Per-request state, from the first access-handler call to completion. */
typedef struct request {
    route route;
    double start;          /* monotonic seconds */
    unsigned status;       /* of the queued response; 0 = none yet */
    int admitted;          /* arrived before shutdown began */
    int too_large;         /* body passed max_body while streaming */
    const char *cors_origin; /* an --allow-origin the request came from, echoed in CORS headers */
    int preflight;           /* answering a CORS preflight (OPTIONS) */
    int close;               /* answer with Connection: close (the rest of the request is not read) */
    unsigned char *body;
    size_t len, cap;
    predict_state *predict; /* a prediction submitted to the slots; NULL before */
} request;

/* The headers every pneumo response carries (security, caching, CORS,
 * Connection: close when the connection ends), given to add one by one. */
typedef void (*serve_header_sink)(void *ctx, const char *name, const char *value);
void serve_standard_headers(pn_server *s, const request *r, unsigned status, serve_header_sink add, void *ctx);
/* {"error":{"code":status,"message":message}} as malloc'ed text, NULL when out of memory. */
char *serve_error_json(unsigned status, const char *message);

/* Queues a response with the standard headers and records its status.
 * mode as in MHD_create_response_from_buffer. */
enum MHD_Result serve_send_body(pn_server *s, struct MHD_Connection *c, request *r, unsigned status, const char *type,
                          void *body, size_t len, enum MHD_ResponseMemoryMode mode);
/* {"error": {"code": status, "message": message}} */
enum MHD_Result serve_send_error(pn_server *s, struct MHD_Connection *c, request *r, unsigned status,
                           const char *message);
/* Takes ownership of text (a json_dumps result). */
enum MHD_Result serve_send_json_text(pn_server *s, struct MHD_Connection *c, request *r, unsigned status, char *text);

/* raw_reply.c: an error answered in the middle of a request body, where
 * libmicrohttpd cannot queue a response: written on the connection itself
 * (plain or TLS) with the standard headers and Connection: close. Returns
 * MHD_NO, so libmicrohttpd closes the connection without reading the rest. */
enum MHD_Result serve_send_error_raw(pn_server *s, struct MHD_Connection *c, request *r, unsigned status,
                                     const char *message);

/* Content-Type accepted by POST /api/v1/predict (NULL = absent, accepted). */
int serve_predict_content_type_ok(const char *content_type);
/* Handles a complete POST /api/v1/predict whose body is in r: the first
 * call suspends the connection while a slot predicts, the call after the
 * resume answers. */
enum MHD_Result serve_handle_predict(pn_server *s, struct MHD_Connection *c, request *r);
/* Releases what serve_handle_predict kept in request.predict; NULL is ignored. */
void serve_predict_state_free(predict_state *ps);

/* A numeric IPv4 or IPv6 listening address. */
typedef union listen_addr {
    struct sockaddr sa;
    struct sockaddr_in v4;
    struct sockaddr_in6 v6;
} listen_addr;


/* server_setup.c */
pn_status serve_parse_listen_addr(const char *host, int port, listen_addr *a, int *is_v6, pn_error *err);
int serve_is_loopback(const listen_addr *a, int is_v6);
/* Options and predictor usable, TLS files paired, no unauthenticated non-loopback listener. */
pn_status serve_check_options(const pn_serve_options *o, const pn_predictor *p, pn_error *err);
/* The TLS certificate and key as NUL-terminated PEM text in s (the key wiped on free). */
pn_status serve_read_pem_pair(pn_server *s, pn_error *err);
void serve_free_pem_pair(pn_server *s);

/* deadline.c: the total request deadline (REAPER_PERIOD_MS granularity). */
void serve_deadline_arm(pn_server *s, struct MHD_Connection *c, int armed);
void serve_deadline_on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                                  enum MHD_ConnectionNotificationCode code);
void *serve_deadline_reaper_main(void *arg);
void serve_deadline_reaper_stop(pn_server *s);

#endif
