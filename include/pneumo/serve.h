/* HTTP prediction server (libmicrohttpd): REST API, embedded web page,
 * Prometheus metrics and a SQLite audit log. See docs/api.md.
 *
 * The server does not load models itself: it calls a pn_predictor, so the
 * HTTP layer is tested with a fake one and `pneumo serve` plugs in pn_model. */
#ifndef PNEUMO_SERVE_H
#define PNEUMO_SERVE_H

#include <stddef.h>
#include <stdint.h>

#include "pneumo/error.h"
#include "pneumo/infer.h"

/* One prediction as the server needs it. */
typedef struct pn_predict_result {
    /* probability, width, height, is_color, warnings. The server never reads
     * or frees pred.cam: the predictor releases it before returning. */
    pn_prediction pred;
    /* Grad-CAM overlay PNG (malloc'ed, freed by the server), when asked for
     * and available; NULL otherwise. */
    unsigned char *overlay_png;
    size_t overlay_png_size;
    /* The heatmap alone (RGBA, same size as the overlay), for client-side
     * blending; NULL when the overlay is. Freed by the server. */
    unsigned char *heatmap_png;
    size_t heatmap_png_size;
} pn_predict_result;

typedef struct pn_predictor {
    void *user;
    /* Number of prediction slots (worker threads). Slot s is always called
     * from the same dedicated thread, one call at a time, so a predictor may
     * keep one unsynchronised model instance (and thread-local state such as
     * OpenMP settings) per slot. */
    int n_slots;
    /* bytes is an image that sniffed as JPEG, PNG or DICOM. Errors: PN_EFORMAT /
     * PN_EUNSUPPORTED / PN_ELIMIT / PN_EINVAL become HTTP 400, others 500. */
    pn_status (*predict)(void *user, int slot, const void *bytes, size_t size, int want_cam,
                         pn_predict_result *out, pn_error *err);
    const char *model_json;    /* body of GET /api/v1/model (a JSON object) */
    const char *model_id, *model_version;
    float default_threshold;
} pn_predictor;

/* 25 million pixels (5000 x 5000): the largest digital chest radiographs,
 * from 43 x 43 cm detectors at about 100 um, are about 4300 x 4300 = 18.5
 * million pixels; this leaves a third more for larger formats and finer
 * pitch, and keeps a decode (streamed, see pn_image_decode_memory) under a
 * second or two on one core. */
#define PN_SERVE_MAX_PIXELS 25000000u

typedef struct pn_serve_options {
    const char *host;          /* numeric IPv4 or IPv6 address to listen on */
    int port;                  /* 0 = any free port (see pn_server_port) */
    const char *audit_db;      /* SQLite file, created if missing */
    int audit_client_info;     /* also record the client's file name and address (identifying) */
    size_t max_body;           /* bytes; larger uploads get 413 */
    /* Decode budget: an image whose header announces more pixels gets 413
     * before any pixel is decoded. Default PN_SERVE_MAX_PIXELS. */
    uint64_t max_pixels;
    int max_connections;       /* concurrent connections, all clients together */
    int max_per_client;        /* concurrent connections from one client address */
    int connection_timeout_s;  /* idle connections are closed after this */
    int request_deadline_s;    /* a request's headers and body must all arrive within this,
                                  counted from when the server starts waiting for it */
    int io_threads;            /* HTTP polling threads (epoll); connections cost no thread */
    int max_queue;             /* predictions waiting for a slot; beyond: 503 */
    int shutdown_grace_s;      /* pn_server_stop waits this long for in-flight requests */
    /* Access control. With tokens, the API and metrics need
     * `Authorization: Bearer <token>` (401 otherwise); the page and /healthz
     * stay open. Without tokens, a non-loopback host is refused unless
     * insecure_no_auth is set. */
    const char *const *tokens;
    int n_tokens;
    int insecure_no_auth;
    /* Origins (scheme://host[:port]) whose pages may POST here; other
     * cross-origin browser requests get 403. */
    const char *const *allow_origins;
    int n_allow_origins;
    /* HTTPS through libmicrohttpd's GnuTLS: PEM files of the certificate
     * chain and the private key, both or neither. */
    const char *tls_cert_file, *tls_key_file;
} pn_serve_options;

/* 127.0.0.1:8080, pneumo-audit.db, 20 MB, 1024 connections (32 per client),
 * 30 s idle, 30 s request deadline, 2 I/O threads, queue 32, 30 s grace. */
void pn_serve_options_default(pn_serve_options *o);

typedef struct pn_server pn_server;

/* Reads API tokens, one a line (blank lines and lines starting with '#'
 * skipped; surrounding spaces trimmed). Each must be at least
 * PN_SERVE_MIN_TOKEN_LEN characters; an empty file is an error. Free with
 * pn_serve_free_tokens. */
#define PN_SERVE_MIN_TOKEN_LEN 16
pn_status pn_serve_read_tokens(const char *path, char ***tokens, int *n_tokens, pn_error *err);
void pn_serve_free_tokens(char **tokens, int n_tokens);

/* Opens the audit log, starts the prediction workers and listens. The
 * predictor (and the strings it points to) must outlive the server. */
pn_status pn_server_start(const pn_serve_options *o, const pn_predictor *p, pn_server **out, pn_error *err);
/* The port actually bound (useful with port 0). */
int pn_server_port(const pn_server *s);
/* What opening the audit log migrated (see pn_audit_migration), or NULL. */
const char *pn_server_audit_migration(const pn_server *s);
/* Graceful stop: closes the listening socket, lets requests already received
 * finish (up to shutdown_grace_s), then stops the threads and closes the
 * audit log. NULL is ignored. */
void pn_server_stop(pn_server *s);

#endif
