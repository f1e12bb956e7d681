/* One monotonic clock, the process CPU clock and one make_dir for every module (pneumo/os.h). */
#include "pneumo/os.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

double pn_clock_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

double pn_cpu_clock_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

pn_status pn_make_dir(const char *path, pn_error *err)
{
    char buf[4096];
    if (!path || !*path)
        return pn_fail(err, PN_EINVAL, "empty directory name");
    if ((size_t)snprintf(buf, sizeof buf, "%s", path) >= sizeof buf)
        return pn_fail(err, PN_EINVAL, "%.100s...: directory path is too long", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (!is_dir(buf) && mkdir(buf, 0755) != 0 && errno != EEXIST)
                return pn_fail(err, PN_EIO, "%s: cannot create directory: %s", buf, strerror(errno));
            *p = '/';
        }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return pn_fail(err, PN_EIO, "%s: cannot create directory: %s", path, strerror(errno));
    if (!is_dir(buf))
        return pn_fail(err, PN_EIO, "%s: exists and is not a directory", path);
    return PN_OK;
}
