/* Prediction slots: one thread per slot, fed from a bounded FIFO queue.
 * The HTTP threads submit a job and go on serving other connections; the
 * slot calls the job's on_done when it has run it. */
#ifndef PNEUMO_SERVE_WORKERS_H
#define PNEUMO_SERVE_WORKERS_H

#include <pthread.h>

#include "pneumo/serve.h"

typedef struct job {
    const void *bytes;
    size_t size;
    int want_cam;
    pn_predict_result result;
    pn_status status;
    pn_error err;
    /* Called on the slot's thread once the outcome is in the job. */
    void (*on_done)(struct job *j);
    void *owner;              /* for on_done */
    struct job *next;
} job;

typedef struct workers {
    const pn_predictor *predictor;
    pthread_mutex_t lock;
    pthread_cond_t work_ready;
    job *head, *tail;
    int queued, max_queue;
    int stopping;
    int n_threads;
    pthread_t *threads;
} workers;

pn_status serve_workers_start(workers *w, const pn_predictor *p, int max_queue, pn_error *err);
/* Queues j for a slot and returns at once. PN_ELIMIT (j not queued, on_done
 * never called) when the queue is full or the workers are stopping;
 * otherwise j->on_done(j) runs later with j->status / j->err / j->result set. */
pn_status serve_workers_submit(workers *w, job *j, pn_error *err);
int serve_workers_queued(workers *w);
/* Finishes queued jobs, then joins the threads. */
void serve_workers_stop(workers *w);

#endif
