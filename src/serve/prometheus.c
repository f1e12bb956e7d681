/* Prometheus text exposition format 0.0.4. */
#include "serve/prometheus.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Seconds: from a cached static file to a slow Grad-CAM on a busy queue. */
static const double bucket_bounds[METRICS_N_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                       0.1,   0.25,   0.5,   1.0,  2.5,   10.0};

const char *serve_route_label(route r)
{
    static const char *const labels[ROUTE_COUNT] = {"/api/v1/predict", "/api/v1/model", "/healthz",
                                                    "/metrics", "static", "other"};
    return labels[r];
}

void serve_metrics_init(metrics *m)
{
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->lock, NULL);
}

void serve_metrics_destroy(metrics *m)
{
    pthread_mutex_destroy(&m->lock);
}

void serve_metrics_request(metrics *m, route r, unsigned status, double seconds)
{
    int b = 0;
    while (b < METRICS_N_BUCKETS && seconds > bucket_bounds[b])
        b++;
    pthread_mutex_lock(&m->lock);
    if (status >= METRICS_STATUS_MIN && status < METRICS_STATUS_MIN + METRICS_STATUS_COUNT)
        m->requests[r][status - METRICS_STATUS_MIN]++;
    if (b < METRICS_N_BUCKETS)
        m->buckets[r][b]++;
    m->duration_count[r]++;
    m->duration_sum[r] += seconds;
    pthread_mutex_unlock(&m->lock);
}

void serve_metrics_prediction(metrics *m, int pneumonia)
{
    pthread_mutex_lock(&m->lock);
    if (pneumonia)
        m->predictions_pneumonia++;
    else
        m->predictions_normal++;
    pthread_mutex_unlock(&m->lock);
}

void serve_metrics_audit_failure(metrics *m)
{
    pthread_mutex_lock(&m->lock);
    m->audit_failures++;
    pthread_mutex_unlock(&m->lock);
}

void serve_metrics_deadline_closed(metrics *m)
{
    pthread_mutex_lock(&m->lock);
    m->deadline_closed++;
    pthread_mutex_unlock(&m->lock);
}

static void render_requests(FILE *f, const metrics *m)
{
    fputs("# HELP pneumo_requests_total HTTP requests by route and status code.\n"
          "# TYPE pneumo_requests_total counter\n", f);
    for (int r = 0; r < ROUTE_COUNT; r++)
        for (int s = 0; s < METRICS_STATUS_COUNT; s++)
            if (m->requests[r][s])
                fprintf(f, "pneumo_requests_total{path=\"%s\",status=\"%d\"} %llu\n", serve_route_label((route)r),
                        s + METRICS_STATUS_MIN, (unsigned long long)m->requests[r][s]);
}

static void render_durations(FILE *f, const metrics *m)
{
    fputs("# HELP pneumo_request_duration_seconds Time from request headers to response completion.\n"
          "# TYPE pneumo_request_duration_seconds histogram\n", f);
    for (int r = 0; r < ROUTE_COUNT; r++) {
        if (!m->duration_count[r])
            continue;
        const char *label = serve_route_label((route)r);
        uint64_t cumulative = 0;
        for (int b = 0; b < METRICS_N_BUCKETS; b++) {
            cumulative += m->buckets[r][b];
            fprintf(f, "pneumo_request_duration_seconds_bucket{path=\"%s\",le=\"%g\"} %llu\n", label,
                    bucket_bounds[b], (unsigned long long)cumulative);
        }
        fprintf(f, "pneumo_request_duration_seconds_bucket{path=\"%s\",le=\"+Inf\"} %llu\n", label,
                (unsigned long long)m->duration_count[r]);
        fprintf(f, "pneumo_request_duration_seconds_sum{path=\"%s\"} %.6f\n", label, m->duration_sum[r]);
        fprintf(f, "pneumo_request_duration_seconds_count{path=\"%s\"} %llu\n", label,
                (unsigned long long)m->duration_count[r]);
    }
}

char *serve_metrics_render(metrics *m, int in_flight, int queued)
{
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    if (!f)
        return NULL;
    pthread_mutex_lock(&m->lock);
    render_requests(f, m);
    render_durations(f, m);
    fprintf(f,
            "# HELP pneumo_predictions_total Successful predictions by label.\n"
            "# TYPE pneumo_predictions_total counter\n"
            "pneumo_predictions_total{label=\"NORMAL\"} %llu\n"
            "pneumo_predictions_total{label=\"PNEUMONIA\"} %llu\n"
            "# HELP pneumo_audit_failures_total Predictions whose audit row could not be written.\n"
            "# TYPE pneumo_audit_failures_total counter\n"
            "pneumo_audit_failures_total %llu\n"
            "# HELP pneumo_connections_deadline_closed_total Connections closed because their request did not "
            "arrive within the request deadline (slow or stalled clients).\n"
            "# TYPE pneumo_connections_deadline_closed_total counter\n"
            "pneumo_connections_deadline_closed_total %llu\n",
            (unsigned long long)m->predictions_normal, (unsigned long long)m->predictions_pneumonia,
            (unsigned long long)m->audit_failures, (unsigned long long)m->deadline_closed);
    pthread_mutex_unlock(&m->lock);
    fprintf(f,
            "# HELP pneumo_requests_in_flight Requests received and not yet answered.\n"
            "# TYPE pneumo_requests_in_flight gauge\n"
            "pneumo_requests_in_flight %d\n"
            "# HELP pneumo_prediction_queue_length Predictions waiting for a worker slot.\n"
            "# TYPE pneumo_prediction_queue_length gauge\n"
            "pneumo_prediction_queue_length %d\n",
            in_flight, queued);
    if (fclose(f)) {
        free(text);
        return NULL;
    }
    return text;
}
