/* Process groups for data-parallel training: the small communicator the
 * training loop talks to (rank, size, sums over ranks, broadcast from rank 0,
 * barrier, and gradient sums started while backward still runs). Two
 * implementations behind it: the single process (rank 0 of 1, every
 * collective is the identity) and MPI, compiled only when CMake finds MPI.
 *
 * Failure policy: no rank ever waits forever. The MPI communicator returns
 * errors (MPI_ERRORS_RETURN) as pn_status, and the caller ends the job with
 * pn_dist_abort; a collective that has not completed after timeout_s (the
 * other side stopped, hung or lost its link) is ended by a watchdog thread,
 * which hands the caller's on_timeout a message naming this rank and the
 * operation, then calls MPI_Abort, so the runtime takes every rank down. A
 * rank that dies is noticed by the launcher (mpirun), which ends the others. */
#ifndef PNEUMO_DIST_H
#define PNEUMO_DIST_H

#include <stddef.h>

#include "pneumo/error.h"

typedef struct pn_dist pn_dist;

#define PN_DIST_DEFAULT_TIMEOUT_S 600.0

typedef struct pn_dist_options {
    /* A collective still waiting after this long ends the job (0 = the
     * default). It must exceed the longest legitimate wait: rank 0 building
     * the image cache on a first run, rank 0's validation at each epoch end. */
    double timeout_s;
    /* Shown the watchdog's message just before it ends the job (e.g. printed
     * to stderr); may be NULL. Called from the watchdog thread. */
    void (*on_timeout)(void *user, const char *message);
    void *user;
} pn_dist_options;

/* How many processes an MPI launcher (mpirun, mpiexec, srun with PMI/PMIx)
 * started this one among, from the environment it sets; 0 when none did. */
int pn_dist_launched_size(void);
/* 1 when this build has MPI. */
int pn_dist_mpi_built(void);

/* The single process: rank 0 of 1. */
pn_status pn_dist_local(pn_dist **out, pn_error *err);
/* MPI (MPI_Init_thread) when an MPI launcher started this process, else the
 * single process. A launch over several processes in a build without MPI is
 * PN_EUNSUPPORTED ("built without MPI"), never N independent runs. MPI can be
 * initialised once per process. */
pn_status pn_dist_open(const pn_dist_options *opt, pn_dist **out, pn_error *err);
/* Stops the watchdog, finalises MPI, frees d (NULL is fine). */
void pn_dist_close(pn_dist *d);
/* Ends every process of the job with exit code `code` (MPI_Abort) after a
 * fatal error on this rank; returns only for the single process. */
void pn_dist_abort(pn_dist *d, int code);

int pn_dist_rank(const pn_dist *d);
int pn_dist_size(const pn_dist *d);
static inline int pn_dist_is_root(const pn_dist *d) { return pn_dist_rank(d) == 0; }

/* Collectives: every rank makes the same calls in the same order; `what`
 * names the operation in timeout messages. */
/* v[0..n) becomes its element-wise sum over the ranks. */
pn_status pn_dist_sum_f64(pn_dist *d, double *v, size_t n, const char *what, pn_error *err);
/* Rank 0's bytes to every rank. */
pn_status pn_dist_bcast(pn_dist *d, void *buf, size_t bytes, const char *what, pn_error *err);
pn_status pn_dist_barrier(pn_dist *d, const char *what, pn_error *err);

/* Non-blocking sums (gradient buckets): v[0..n) is summed over the ranks in
 * place; v must stay untouched until pn_dist_wait_all returns. */
pn_status pn_dist_start_sum_f32(pn_dist *d, float *v, size_t n, pn_error *err);
/* Lets started sums advance (MPI progresses them only inside its calls). */
pn_status pn_dist_progress(pn_dist *d, pn_error *err);
/* Waits for every started sum. */
pn_status pn_dist_wait_all(pn_dist *d, const char *what, pn_error *err);

/* Seconds this rank has spent blocked in collectives (waits, sums,
 * broadcasts, barriers) since pn_dist_open. */
double pn_dist_wait_seconds(const pn_dist *d);

#endif
