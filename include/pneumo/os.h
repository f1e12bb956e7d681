/* The operating-system services every module shares: one monotonic clock (and
 * the process's CPU time, for benchmarks), one way to create a directory and
 * one way to find pneumo's installed data. */
#ifndef PNEUMO_OS_H
#define PNEUMO_OS_H

#include <stddef.h>

#include "pneumo/error.h"

/* Seconds on the monotonic clock (for durations; never the time of day). */
double pn_clock_s(void);

/* CPU seconds this process has used, all threads together (benchmarks on a
 * shared machine: waiting for a core is not counted, spinning threads are). */
double pn_cpu_clock_s(void);

/* Creates path and its missing parents (mode 0755); an existing directory is
 * fine, an existing non-directory is PN_EIO. */
pn_status pn_make_dir(const char *path, pn_error *err);

/* Finds NAME (e.g. "default.safetensors", "arch/resnet18.cfg") among pneumo's
 * data files: first in share/pneumo/ beside the running binary's bin/ (an
 * installed pneumo, whatever its prefix: /usr/bin/pneumo reads
 * /usr/share/pneumo/NAME), then in the source tree's models/ (a build in a
 * checkout). Writes the path of the first regular file found to buf and
 * returns buf, or returns NULL when neither has it. */
const char *pn_data_file(const char *name, char *buf, size_t size);

#endif
