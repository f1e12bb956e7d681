/* The collectives' watchdog: a thread that notices a wait lasting longer
 * than the timeout and fires once for it. MPI has no timeouts on collectives
 * (a blocking MPI_Allreduce whose peer is stopped waits forever), so the
 * MPI communicator arms this around every wait and ends the job from here. */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "dist/internal.h"
#include "pneumo/os.h"

struct pn_watchdog {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    double timeout_s;
    void (*fire)(void *user, const char *what, double waited_s);
    void *user;
    const char *what; /* the armed wait, or NULL */
    double since;     /* when it was armed (pn_clock_s) */
    int stop;
};

static struct timespec deadline_after(double seconds)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    long long ns = ts.tv_nsec + (long long)(seconds * 1e9);
    ts.tv_sec += (time_t)(ns / 1000000000);
    ts.tv_nsec = (long)(ns % 1000000000);
    return ts;
}

static void *watch(void *arg)
{
    pn_watchdog *w = arg;
    /* Checks a few times per timeout, at least once a second. */
    double tick = w->timeout_s / 4 < 1 ? w->timeout_s / 4 : 1;
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        double waited = w->what ? pn_clock_s() - w->since : 0;
        if (w->what && waited >= w->timeout_s) {
            const char *what = w->what;
            w->what = NULL; /* fires once per arming */
            pthread_mutex_unlock(&w->mu);
            w->fire(w->user, what, waited);
            pthread_mutex_lock(&w->mu);
            continue;
        }
        struct timespec ts = deadline_after(tick);
        pthread_cond_timedwait(&w->cv, &w->mu, &ts);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

pn_status pn_watchdog_start(double timeout_s, void (*fire)(void *user, const char *what, double waited_s),
                            void *user, pn_watchdog **out, pn_error *err)
{
    *out = NULL;
    if (!(timeout_s > 0) || !fire)
        return pn_fail(err, PN_EINVAL, "watchdog: the timeout must be positive and fire set");
    pn_watchdog *w = calloc(1, sizeof *w);
    if (!w)
        return pn_fail(err, PN_ENOMEM, "out of memory");
    *w = (pn_watchdog){.timeout_s = timeout_s, .fire = fire, .user = user};
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&w->thread, NULL, watch, w)) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        free(w);
        return pn_fail(err, PN_EINTERNAL, "watchdog: cannot start its thread");
    }
    *out = w;
    return PN_OK;
}

void pn_watchdog_arm(pn_watchdog *w, const char *what)
{
    pthread_mutex_lock(&w->mu);
    w->what = what;
    w->since = pn_clock_s();
    pthread_mutex_unlock(&w->mu);
}

void pn_watchdog_disarm(pn_watchdog *w)
{
    pthread_mutex_lock(&w->mu);
    w->what = NULL;
    pthread_mutex_unlock(&w->mu);
}

void pn_watchdog_stop(pn_watchdog *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
}
