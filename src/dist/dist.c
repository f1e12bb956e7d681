/* The communicator interface, its single-process implementation, and the
 * choice between it and MPI (dist_mpi.c, built only with MPI). */
#include <stdlib.h>

#include "dist/internal.h"

/* ---- the single process: rank 0 of 1, every collective the identity ---- */

static pn_status local_sum_f64(pn_dist *d, double *v, size_t n, const char *what, pn_error *err)
{
    return PN_OK;
}

static pn_status local_bcast(pn_dist *d, void *buf, size_t bytes, const char *what, pn_error *err)
{
    return PN_OK;
}

static pn_status local_barrier(pn_dist *d, const char *what, pn_error *err) { return PN_OK; }

static pn_status local_start_sum_f32(pn_dist *d, float *v, size_t n, pn_error *err) { return PN_OK; }

static pn_status local_progress(pn_dist *d, pn_error *err) { return PN_OK; }

static void local_abort(pn_dist *d, int code) { (void)code; }

static void local_close(pn_dist *d) { free(d); }

static const pn_dist_ops local_ops = {"single process", local_sum_f64, local_bcast, local_barrier,
                                      local_start_sum_f32, local_progress, local_barrier,
                                      local_abort, local_close};

pn_status pn_dist_local(pn_dist **out, pn_error *err)
{
    pn_dist *d = calloc(1, sizeof *d);
    if (!d)
        return pn_fail(err, PN_ENOMEM, "out of memory");
    *d = (pn_dist){.ops = &local_ops, .rank = 0, .size = 1};
    *out = d;
    return PN_OK;
}

/* ---- choosing ---- */

int pn_dist_launched_size(void)
{
    /* Open MPI's mpirun, MPICH/Intel MPI (Hydra, PMI), MVAPICH; then PMIx
     * launchers (srun --mpi=pmix), whose world size Slurm states. */
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
        const char *v = getenv(vars[i]);
        int n = v ? atoi(v) : 0;
        if (n > 0)
            return n;
    }
    if (!getenv("PMIX_RANK"))
        return 0;
    const char *tasks = getenv("SLURM_NTASKS");
    return tasks && atoi(tasks) > 0 ? atoi(tasks) : 1;
}

int pn_dist_mpi_built(void)
{
#ifdef PNEUMO_HAVE_MPI
    return 1;
#else
    return 0;
#endif
}

pn_status pn_dist_open(const pn_dist_options *opt, pn_dist **out, pn_error *err)
{
    *out = NULL;
    int launched = pn_dist_launched_size();
    if (launched == 0)
        return pn_dist_local(out, err);
#ifdef PNEUMO_HAVE_MPI
    return pn_dist_mpi_open(opt, out, err);
#else
    if (launched == 1)
        return pn_dist_local(out, err);
    return pn_fail(err, PN_EUNSUPPORTED,
                   "an MPI launcher started %d processes, but this pneumo was built without MPI, so "
                   "they cannot train together: install Open MPI (Debian packages libopenmpi-dev and "
                   "openmpi-bin, `scripts/install-deps.sh build`) and rebuild, or run without mpirun",
                   launched);
#endif
}

/* ---- dispatch ---- */

void pn_dist_close(pn_dist *d)
{
    if (d)
        d->ops->close(d);
}

void pn_dist_abort(pn_dist *d, int code) { d->ops->abort(d, code); }
int pn_dist_rank(const pn_dist *d) { return d->rank; }
int pn_dist_size(const pn_dist *d) { return d->size; }
double pn_dist_wait_seconds(const pn_dist *d) { return d->wait_s; }

pn_status pn_dist_sum_f64(pn_dist *d, double *v, size_t n, const char *what, pn_error *err)
{
    return d->ops->sum_f64(d, v, n, what, err);
}

pn_status pn_dist_bcast(pn_dist *d, void *buf, size_t bytes, const char *what, pn_error *err)
{
    return d->ops->bcast(d, buf, bytes, what, err);
}

pn_status pn_dist_barrier(pn_dist *d, const char *what, pn_error *err)
{
    return d->ops->barrier(d, what, err);
}

pn_status pn_dist_start_sum_f32(pn_dist *d, float *v, size_t n, pn_error *err)
{
    return d->ops->start_sum_f32(d, v, n, err);
}

pn_status pn_dist_progress(pn_dist *d, pn_error *err) { return d->ops->progress(d, err); }

pn_status pn_dist_wait_all(pn_dist *d, const char *what, pn_error *err)
{
    return d->ops->wait_all(d, what, err);
}
