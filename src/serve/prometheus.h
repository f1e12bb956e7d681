/* Request counters and latency histograms in Prometheus text format. */
#ifndef PNEUMO_SERVE_PROMETHEUS_H
#define PNEUMO_SERVE_PROMETHEUS_H

#include <pthread.h>
#include <stdint.h>

/* Routes are metric labels; everything unknown is "other" so that clients
 * cannot create unbounded label sets. */
typedef enum route {
    ROUTE_PREDICT,
    ROUTE_MODEL,
    ROUTE_HEALTH,
    ROUTE_METRICS,
    ROUTE_STATIC,
    ROUTE_OTHER,
    ROUTE_COUNT
} route;

#define METRICS_N_BUCKETS 12
#define METRICS_STATUS_MIN 100
#define METRICS_STATUS_COUNT 500 /* 100..599 */

typedef struct metrics {
    pthread_mutex_t lock;
    uint64_t requests[ROUTE_COUNT][METRICS_STATUS_COUNT];
    uint64_t buckets[ROUTE_COUNT][METRICS_N_BUCKETS]; /* non-cumulative */
    uint64_t duration_count[ROUTE_COUNT];
    double duration_sum[ROUTE_COUNT];
    uint64_t predictions_normal, predictions_pneumonia;
    uint64_t audit_failures;
    uint64_t deadline_closed;  /* connections closed by the request deadline */
} metrics;

const char *serve_route_label(route r);
void serve_metrics_init(metrics *m);
void serve_metrics_destroy(metrics *m);
void serve_metrics_request(metrics *m, route r, unsigned status, double seconds);
void serve_metrics_prediction(metrics *m, int pneumonia);
void serve_metrics_audit_failure(metrics *m);
void serve_metrics_deadline_closed(metrics *m);
/* Renders everything; the caller frees the string. NULL when out of memory. */
char *serve_metrics_render(metrics *m, int in_flight, int queued);

#endif
