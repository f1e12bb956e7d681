/* The operating-system services every module shares: one monotonic clock (and
 * the process's CPU time, for benchmarks) and one way to create a directory. */
#ifndef PNEUMO_OS_H
#define PNEUMO_OS_H

#include "pneumo/error.h"

/* Seconds on the monotonic clock (for durations; never the time of day). */
double pn_clock_s(void);

/* CPU seconds this process has used, all threads together (benchmarks on a
 * shared machine: waiting for a core is not counted, spinning threads are). */
double pn_cpu_clock_s(void);

/* Creates path and its missing parents (mode 0755); an existing directory is
 * fine, an existing non-directory is PN_EIO. */
pn_status pn_make_dir(const char *path, pn_error *err);

#endif
