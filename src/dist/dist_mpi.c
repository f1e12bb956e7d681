/* The communicator over MPI (built only when CMake finds MPI).
 *
 * Every wait is watched: MPI has no timeouts on collectives, so each one is
 * armed on the watchdog (watchdog.c), which ends the job with MPI_Abort when
 * it lasts longer than the timeout. MPI_Abort from the watchdog thread needs
 * MPI_THREAD_MULTIPLE; a library that does not provide it is ended with
 * _exit instead, which the launcher reports and answers by ending the job.
 * Errors are returned (MPI_ERRORS_RETURN on the communicator), for the caller
 * to report and then end the job with pn_dist_abort. */
#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "dist/internal.h"
#include "pneumo/os.h"

typedef struct mpi_dist {
    pn_dist base;           /* first: a pn_dist * is an mpi_dist * */
    MPI_Comm comm;          /* MPI_COMM_WORLD's duplicate, errors returned */
    int thread_multiple;    /* the watchdog may call MPI_Abort */
    double timeout_s;
    void (*on_timeout)(void *user, const char *message);
    void *user;
    pn_watchdog *dog;
    MPI_Request *reqs;      /* [n_reqs] started sums */
    int n_reqs, cap_reqs;
} mpi_dist;

static pn_status check(mpi_dist *m, int rc, const char *call, const char *what, pn_error *err)
{
    if (rc == MPI_SUCCESS)
        return PN_OK;
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS)
        snprintf(text, sizeof text, "error %d", rc);
    return pn_fail(err, PN_EIO, "rank %d of %d: %s (%s) failed: %s", m->base.rank, m->base.size, call,
                   what, text);
}

/* The watchdog fired: this rank waited timeout_s in one collective. */
static void on_fire(void *user, const char *what, double waited_s)
{
    mpi_dist *m = user;
    char msg[512];
    snprintf(msg, sizeof msg,
             "rank %d of %d: %s has waited %.0f s for the other processes (timeout %.0f s): one of "
             "them has stopped, hung or lost its connection; ending the job",
             m->base.rank, m->base.size, what, waited_s, m->timeout_s);
    if (m->on_timeout)
        m->on_timeout(m->user, msg);
    if (m->thread_multiple)
        MPI_Abort(MPI_COMM_WORLD, 124);
    _exit(124);
}

/* A blocking collective runs between these two: watched, its time counted. */
static double wait_begins(mpi_dist *m, const char *what)
{
    pn_watchdog_arm(m->dog, what);
    return pn_clock_s();
}

static void wait_ends(mpi_dist *m, double t0)
{
    pn_watchdog_disarm(m->dog);
    m->base.wait_s += pn_clock_s() - t0;
}

static pn_status mpi_sum_f64(pn_dist *d, double *v, size_t n, const char *what, pn_error *err)
{
    mpi_dist *m = (mpi_dist *)d;
    if (n > INT_MAX)
        return pn_fail(err, PN_ELIMIT, "%s: %zu values in one sum", what, n);
    double t0 = wait_begins(m, what);
    int rc = MPI_Allreduce(MPI_IN_PLACE, v, (int)n, MPI_DOUBLE, MPI_SUM, m->comm);
    wait_ends(m, t0);
    return check(m, rc, "MPI_Allreduce", what, err);
}

static pn_status mpi_bcast(pn_dist *d, void *buf, size_t bytes, const char *what, pn_error *err)
{
    mpi_dist *m = (mpi_dist *)d;
    pn_status st = PN_OK;
    for (size_t off = 0; !st && off < bytes; off += (size_t)1 << 30) {
        size_t chunk = bytes - off < (size_t)1 << 30 ? bytes - off : (size_t)1 << 30;
        double t0 = wait_begins(m, what);
        int rc = MPI_Bcast((char *)buf + off, (int)chunk, MPI_BYTE, 0, m->comm);
        wait_ends(m, t0);
        st = check(m, rc, "MPI_Bcast", what, err);
    }
    return st;
}

static pn_status mpi_barrier(pn_dist *d, const char *what, pn_error *err)
{
    mpi_dist *m = (mpi_dist *)d;
    double t0 = wait_begins(m, what);
    int rc = MPI_Barrier(m->comm);
    wait_ends(m, t0);
    return check(m, rc, "MPI_Barrier", what, err);
}

static pn_status mpi_start_sum_f32(pn_dist *d, float *v, size_t n, pn_error *err)
{
    mpi_dist *m = (mpi_dist *)d;
    if (n > INT_MAX)
        return pn_fail(err, PN_ELIMIT, "gradient sum of %zu values", n);
    if (m->n_reqs == m->cap_reqs) {
        int cap = m->cap_reqs ? 2 * m->cap_reqs : 16;
        MPI_Request *grown = realloc(m->reqs, (size_t)cap * sizeof *grown);
        if (!grown)
            return pn_fail(err, PN_ENOMEM, "out of memory");
        m->reqs = grown;
        m->cap_reqs = cap;
    }
    int rc = MPI_Iallreduce(MPI_IN_PLACE, v, (int)n, MPI_FLOAT, MPI_SUM, m->comm, &m->reqs[m->n_reqs]);
    if (rc == MPI_SUCCESS)
        m->n_reqs++;
    return check(m, rc, "MPI_Iallreduce", "gradient sum", err);
}

static pn_status mpi_progress(pn_dist *d, pn_error *err)
{
    mpi_dist *m = (mpi_dist *)d;
    int done = 0;
    if (m->n_reqs == 0)
        return PN_OK;
    pn_status st = check(m, MPI_Testall(m->n_reqs, m->reqs, &done, MPI_STATUSES_IGNORE), "MPI_Testall",
                         "gradient sums", err);
    if (done)
        m->n_reqs = 0;
    return st;
}

static pn_status mpi_wait_all(pn_dist *d, const char *what, pn_error *err)
{
    mpi_dist *m = (mpi_dist *)d;
    if (m->n_reqs == 0)
        return PN_OK;
    double t0 = wait_begins(m, what);
    int rc = MPI_Waitall(m->n_reqs, m->reqs, MPI_STATUSES_IGNORE);
    wait_ends(m, t0);
    m->n_reqs = 0;
    return check(m, rc, "MPI_Waitall", what, err);
}

static void mpi_abort(pn_dist *d, int code) { MPI_Abort(MPI_COMM_WORLD, code); }

static void mpi_close(pn_dist *d)
{
    mpi_dist *m = (mpi_dist *)d;
    pn_watchdog_stop(m->dog);
    if (m->comm != MPI_COMM_NULL)
        MPI_Comm_free(&m->comm);
    MPI_Finalize();
    free(m->reqs);
    free(m);
}

static const pn_dist_ops mpi_ops = {"MPI", mpi_sum_f64, mpi_bcast, mpi_barrier, mpi_start_sum_f32,
                                    mpi_progress, mpi_wait_all, mpi_abort, mpi_close};

pn_status pn_dist_mpi_open(const pn_dist_options *opt, pn_dist **out, pn_error *err)
{
    int initialized = 0, provided = 0;
    MPI_Initialized(&initialized);
    if (initialized)
        return pn_fail(err, PN_EINVAL, "MPI is already initialised in this process");
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_MULTIPLE, &provided) != MPI_SUCCESS)
        return pn_fail(err, PN_EIO, "MPI_Init_thread failed");
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    mpi_dist *m = calloc(1, sizeof *m);
    if (!m)
        return pn_fail(err, PN_ENOMEM, "out of memory");
    m->base.ops = &mpi_ops;
    m->comm = MPI_COMM_NULL;
    m->thread_multiple = provided >= MPI_THREAD_MULTIPLE;
    m->timeout_s = opt && opt->timeout_s > 0 ? opt->timeout_s : PN_DIST_DEFAULT_TIMEOUT_S;
    m->on_timeout = opt ? opt->on_timeout : NULL;
    m->user = opt ? opt->user : NULL;
    MPI_Comm_rank(MPI_COMM_WORLD, &m->base.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &m->base.size);
    pn_status st = check(m, MPI_Comm_dup(MPI_COMM_WORLD, &m->comm), "MPI_Comm_dup", "start-up", err);
    if (!st)
        st = check(m, MPI_Comm_set_errhandler(m->comm, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler",
                   "start-up", err);
    if (!st)
        st = pn_watchdog_start(m->timeout_s, on_fire, m, &m->dog, err);
    if (st) {
        /* MPI stays initialised: the caller reports the error and exits,
         * which the launcher answers by ending the job. */
        pn_watchdog_stop(m->dog);
        free(m);
        return st;
    }
    *out = &m->base;
    return PN_OK;
}
