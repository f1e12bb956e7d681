/* The communicator's implementations share this. Not a public API. */
#ifndef PNEUMO_DIST_INTERNAL_H
#define PNEUMO_DIST_INTERNAL_H

#include "pneumo/dist.h"

typedef struct pn_dist_ops {
    const char *name;
    pn_status (*sum_f64)(pn_dist *d, double *v, size_t n, const char *what, pn_error *err);
    pn_status (*bcast)(pn_dist *d, void *buf, size_t bytes, const char *what, pn_error *err);
    pn_status (*barrier)(pn_dist *d, const char *what, pn_error *err);
    pn_status (*start_sum_f32)(pn_dist *d, float *v, size_t n, pn_error *err);
    pn_status (*progress)(pn_dist *d, pn_error *err);
    pn_status (*wait_all)(pn_dist *d, const char *what, pn_error *err);
    void (*abort)(pn_dist *d, int code);
    void (*close)(pn_dist *d);
} pn_dist_ops;

struct pn_dist {
    const pn_dist_ops *ops;
    int rank, size;
    double wait_s; /* blocked in collectives */
};

#ifdef PNEUMO_HAVE_MPI
/* dist_mpi.c */
pn_status pn_dist_mpi_open(const pn_dist_options *opt, pn_dist **out, pn_error *err);
#endif

/* ---- watchdog.c: ends a wait that lasts too long ---- */
typedef struct pn_watchdog pn_watchdog;
/* A thread that calls fire(user, what, waited_s) when a wait armed with
 * pn_watchdog_arm is still not disarmed timeout_s later (once per arming). */
pn_status pn_watchdog_start(double timeout_s, void (*fire)(void *user, const char *what, double waited_s),
                            void *user, pn_watchdog **out, pn_error *err);
/* A wait named `what` (a string that outlives the wait) begins / ends. */
void pn_watchdog_arm(pn_watchdog *w, const char *what);
void pn_watchdog_disarm(pn_watchdog *w);
/* Joins the thread and frees w (NULL is fine). */
void pn_watchdog_stop(pn_watchdog *w);

#endif
