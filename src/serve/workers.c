/* Dedicated prediction threads. Running predictions on long-lived threads,
 * rather than on the HTTP server's polling threads, keeps each
 * model instance and its OpenMP thread team on one thread for good. */
#include "serve/workers.h"

#include <stdlib.h>
#include <string.h>

typedef struct slot_arg {
    workers *w;
    int slot;
} slot_arg;

static job *next_job(workers *w)
{
    pthread_mutex_lock(&w->lock);
    while (!w->head && !w->stopping)
        pthread_cond_wait(&w->work_ready, &w->lock);
    job *j = w->head;
    if (j) {
        w->head = j->next;
        if (!w->head)
            w->tail = NULL;
        w->queued--;
    }
    pthread_mutex_unlock(&w->lock);
    return j;
}

static void *slot_main(void *arg)
{
    slot_arg a = *(slot_arg *)arg;
    free(arg);
    job *j;
    while ((j = next_job(a.w))) {
        const pn_predictor *p = a.w->predictor;
        j->status = p->predict(p->user, a.slot, j->bytes, j->size, j->want_cam, &j->result, &j->err);
        j->on_done(j);
    }
    return NULL;
}

pn_status serve_workers_start(workers *w, const pn_predictor *p, int max_queue, pn_error *err)
{
    memset(w, 0, sizeof *w);
    if (p->n_slots < 1)
        return pn_fail(err, PN_EINVAL, "predictor has %d slots, needs at least 1", p->n_slots);
    w->predictor = p;
    w->max_queue = max_queue;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->work_ready, NULL);
    w->threads = calloc((size_t)p->n_slots, sizeof *w->threads);
    if (!w->threads)
        return pn_fail(err, PN_ENOMEM, "out of memory for %d worker threads", p->n_slots);
    for (int i = 0; i < p->n_slots; i++) {
        slot_arg *a = malloc(sizeof *a);
        if (a) {
            *a = (slot_arg){w, i};
            if (!pthread_create(&w->threads[i], NULL, slot_main, a)) {
                w->n_threads++;
                continue;
            }
        }
        free(a);
        serve_workers_stop(w);
        return pn_fail(err, PN_EIO, "cannot start prediction thread %d", i);
    }
    return PN_OK;
}

pn_status serve_workers_submit(workers *w, job *j, pn_error *err)
{
    j->next = NULL;
    pthread_mutex_lock(&w->lock);
    if (w->queued >= w->max_queue || w->stopping) {
        int queued = w->queued;
        pthread_mutex_unlock(&w->lock);
        return pn_fail(err, PN_ELIMIT, "server busy: %d predictions already queued", queued);
    }
    if (w->tail)
        w->tail->next = j;
    else
        w->head = j;
    w->tail = j;
    w->queued++;
    pthread_cond_signal(&w->work_ready);
    pthread_mutex_unlock(&w->lock);
    return PN_OK;
}

int serve_workers_queued(workers *w)
{
    pthread_mutex_lock(&w->lock);
    int n = w->queued;
    pthread_mutex_unlock(&w->lock);
    return n;
}

void serve_workers_stop(workers *w)
{
    pthread_mutex_lock(&w->lock);
    w->stopping = 1;
    pthread_cond_broadcast(&w->work_ready);
    pthread_mutex_unlock(&w->lock);
    for (int i = 0; i < w->n_threads; i++)
        pthread_join(w->threads[i], NULL);
    free(w->threads);
    w->threads = NULL;
    w->n_threads = 0;
    pthread_cond_destroy(&w->work_ready);
    pthread_mutex_destroy(&w->lock);
}
