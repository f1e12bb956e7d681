/* The process-group module without a launcher: the single process's
 * communicator, how a launch is recognised from the environment, what a
 * build without MPI says when launched over several processes, and the
 * watchdog that ends waits lasting longer than the timeout. (MPI itself is
 * exercised by tests/dist_*_test.sh under mpirun.) */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dist/internal.h"
#include "pneumo/dist.h"
#include "pneumo/os.h"
#include "testutil.h"

static const char *const launch_vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE",
                                          "PMIX_RANK", "SLURM_NTASKS"};

static void clear_launch(void)
{
    for (size_t i = 0; i < sizeof launch_vars / sizeof *launch_vars; i++)
        unsetenv(launch_vars[i]);
}

static void test_local(void **state)
{
    clear_launch();
    pn_dist *d;
    pn_error err = {0};
    assert_int_equal(pn_dist_open(NULL, &d, &err), PN_OK); /* no launcher: one process */
    assert_int_equal(pn_dist_rank(d), 0);
    assert_int_equal(pn_dist_size(d), 1);
    assert_true(pn_dist_is_root(d));
    double v[3] = {1, -2, 3.5};
    float g[2] = {0.25f, 4};
    char bytes[4] = "abc";
    assert_int_equal(pn_dist_sum_f64(d, v, 3, "test", &err), PN_OK);
    assert_int_equal(pn_dist_bcast(d, bytes, sizeof bytes, "test", &err), PN_OK);
    assert_int_equal(pn_dist_barrier(d, "test", &err), PN_OK);
    assert_int_equal(pn_dist_start_sum_f32(d, g, 2, &err), PN_OK);
    assert_int_equal(pn_dist_progress(d, &err), PN_OK);
    assert_int_equal(pn_dist_wait_all(d, "test", &err), PN_OK);
    assert_true(v[0] == 1 && v[1] == -2 && v[2] == 3.5 && g[0] == 0.25f && g[1] == 4);
    assert_string_equal(bytes, "abc");
    assert_true(pn_dist_wait_seconds(d) == 0);
    pn_dist_close(d);
}

static void test_launch_detection(void **state)
{
    clear_launch();
    assert_int_equal(pn_dist_launched_size(), 0);
    setenv("OMPI_COMM_WORLD_SIZE", "4", 1);
    assert_int_equal(pn_dist_launched_size(), 4);
    clear_launch();
    setenv("PMI_SIZE", "3", 1);
    assert_int_equal(pn_dist_launched_size(), 3);
    clear_launch();
    setenv("PMIX_RANK", "0", 1);
    assert_int_equal(pn_dist_launched_size(), 1); /* launched, size unknown */
    setenv("SLURM_NTASKS", "8", 1);
    assert_int_equal(pn_dist_launched_size(), 8);
    clear_launch();
}

/* Only a build without MPI can be asked to open a launched group here: with
 * MPI, pn_dist_open would initialise MPI outside mpirun. */
static void test_built_without_mpi(void **state)
{
    if (pn_dist_mpi_built())
        skip(); /* this build has MPI: tests/dist_*_test.sh cover the launched case */
    clear_launch();
    setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
    pn_dist *d = NULL;
    pn_error err = {0};
    assert_int_equal(pn_dist_open(NULL, &d, &err), PN_EUNSUPPORTED);
    assert_null(d);
    assert_non_null(strstr(err.msg, "built without MPI"));
    assert_non_null(strstr(err.msg, "libopenmpi-dev"));
    setenv("OMPI_COMM_WORLD_SIZE", "1", 1); /* one process launched: it trains alone */
    assert_int_equal(pn_dist_open(NULL, &d, &err), PN_OK);
    assert_int_equal(pn_dist_size(d), 1);
    pn_dist_close(d);
    clear_launch();
}

/* ---- the watchdog ---- */

typedef struct fired {
    pthread_mutex_t mu;
    int count;
    char what[64];
    double waited;
} fired;

static void on_fire(void *user, const char *what, double waited_s)
{
    fired *f = user;
    pthread_mutex_lock(&f->mu);
    f->count++;
    snprintf(f->what, sizeof f->what, "%s", what);
    f->waited = waited_s;
    pthread_mutex_unlock(&f->mu);
}

static int fire_count(fired *f)
{
    pthread_mutex_lock(&f->mu);
    int n = f->count;
    pthread_mutex_unlock(&f->mu);
    return n;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

static void test_watchdog(void **state)
{
    fired f = {.count = 0};
    pthread_mutex_init(&f.mu, NULL);
    pn_watchdog *w;
    pn_error err = {0};
    assert_int_equal(pn_watchdog_start(0, on_fire, &f, &w, &err), PN_EINVAL);
    assert_int_equal(pn_watchdog_start(0.2, on_fire, &f, &w, &err), PN_OK);
    /* A wait that ends in time does not fire, however long it is unarmed after. */
    pn_watchdog_arm(w, "short wait");
    pn_watchdog_disarm(w);
    sleep_s(0.6);
    assert_int_equal(fire_count(&f), 0);
    /* One that does not end fires once, naming the wait, after at least the timeout. */
    pn_watchdog_arm(w, "stuck wait");
    for (double t0 = pn_clock_s(); fire_count(&f) == 0 && pn_clock_s() - t0 < 30;)
        sleep_s(0.05);
    sleep_s(0.6);
    assert_int_equal(fire_count(&f), 1);
    assert_string_equal(f.what, "stuck wait");
    assert_true(f.waited >= 0.2);
    pn_watchdog_disarm(w);
    pn_watchdog_stop(w);
    pn_watchdog_stop(NULL);
    pthread_mutex_destroy(&f.mu);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_local),
        cmocka_unit_test(test_launch_detection),
        cmocka_unit_test(test_built_without_mpi),
        cmocka_unit_test(test_watchdog),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
