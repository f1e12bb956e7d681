/* The MPI link between two ranks, for the cost model in bench/README.md:
 * ping-pong latency (half the round trip of a 1-byte message) and bandwidth
 * (large messages), and MPI_Allreduce time over message sizes from 4 bytes
 * to 64 MiB, each the median of repeated runs. Rank 0 prints one line per
 * measurement: `pingpong BYTES SECONDS_ONE_WAY` and `allreduce BYTES SECONDS`.
 * Run: mpirun -np 2 --bind-to core build/mpi_probe [max MiB] */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp);
    return v[n / 2];
}

/* Repetitions: many for small messages, a few for large ones. */
static int reps_for(size_t bytes) { return bytes <= 65536 ? 200 : bytes <= (1 << 22) ? 30 : 7; }

static double pingpong(char *buf, size_t bytes, int rank)
{
    int reps = reps_for(bytes);
    double *t = malloc((size_t)reps * sizeof *t);
    for (int r = -2; r < reps; r++) { /* two warm-up rounds */
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        if (rank == 0) {
            MPI_Send(buf, (int)bytes, MPI_BYTE, 1, 0, MPI_COMM_WORLD);
            MPI_Recv(buf, (int)bytes, MPI_BYTE, 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        } else if (rank == 1) {
            MPI_Recv(buf, (int)bytes, MPI_BYTE, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            MPI_Send(buf, (int)bytes, MPI_BYTE, 0, 0, MPI_COMM_WORLD);
        }
        if (r >= 0)
            t[r] = (MPI_Wtime() - t0) / 2;
    }
    double m = median(t, reps);
    free(t);
    return m;
}

static double allreduce(float *v, size_t bytes)
{
    int reps = reps_for(bytes);
    double *t = malloc((size_t)reps * sizeof *t);
    for (int r = -2; r < reps; r++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        MPI_Allreduce(MPI_IN_PLACE, v, (int)(bytes / sizeof(float)), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        double dt = MPI_Wtime() - t0;
        MPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD); /* the slowest rank's */
        if (r >= 0)
            t[r] = dt;
    }
    double m = median(t, reps);
    free(t);
    return m;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    size_t max = (size_t)(argc > 1 ? atoi(argv[1]) : 64) << 20;
    char *buf = calloc(max, 1);
    if (!buf || size < 2) {
        if (rank == 0)
            fprintf(stderr, "mpi_probe: needs at least 2 ranks and %zu bytes\n", max);
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    if (rank == 0)
        printf("# %d ranks; median seconds\n", size);
    for (size_t b = 1; b <= max; b *= 4) {
        double t = pingpong(buf, b, rank);
        if (rank == 0)
            printf("pingpong %zu %.3e\n", b, t);
    }
    for (size_t b = 4; b <= max; b *= 4) {
        double t = allreduce((float *)buf, b);
        if (rank == 0)
            printf("allreduce %zu %.3e\n", b, t);
    }
    free(buf);
    MPI_Finalize();
    return 0;
}
