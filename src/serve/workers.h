/* Prediction slots: one thread per slot, fed from a bounded FIFO queue.
 * Connection threads submit a job and sleep until a slot has run it. */
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
    int done;
    struct job *next;
} job;

typedef struct workers {
    const pn_predictor *predictor;
    pthread_mutex_t lock;
    pthread_cond_t work_ready, job_done;
    job *head, *tail;
    int queued, max_queue;
    int stopping;
    int n_threads;
    pthread_t *threads;
} workers;

pn_status workers_start(workers *w, const pn_predictor *p, int max_queue, pn_error *err);
/* Runs j on a slot and waits for it. PN_ELIMIT (nothing run) when the queue
 * is full; otherwise j->status / j->err / j->result hold the outcome. */
pn_status workers_run(workers *w, job *j, pn_error *err);
int workers_queued(workers *w);
/* Finishes queued jobs, then joins the threads. */
void workers_stop(workers *w);

#endif
