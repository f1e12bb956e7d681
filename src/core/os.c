/* One monotonic clock, the process CPU clock, one make_dir and one data-file
 * lookup for every module (pneumo/os.h). */
#include "pneumo/os.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* PREFIX of an installed binary PREFIX/bin/NAME, written to buf (size bytes);
 * 0 when the running binary is not in a directory named bin. */
static int install_prefix(char *buf, size_t size)
{
    ssize_t n = readlink("/proc/self/exe", buf, size - 1);
    if (n <= 0 || (size_t)n >= size - 1)
        return 0;
    buf[n] = '\0';
    char *slash = strrchr(buf, '/');
    if (!slash)
        return 0;
    *slash = '\0';
    slash = strrchr(buf, '/');
    if (!slash || strcmp(slash + 1, "bin"))
        return 0;
    *slash = '\0';
    return 1;
}

const char *pn_data_file(const char *name, char *buf, size_t size)
{
    char prefix[4096];
    if (install_prefix(prefix, sizeof prefix) &&
        (size_t)snprintf(buf, size, "%s/share/pneumo/%s", prefix, name) < size && is_file(buf))
        return buf;
    if ((size_t)snprintf(buf, size, "%s/models/%s", PNEUMO_SOURCE_DIR, name) < size && is_file(buf))
        return buf;
    return NULL;
}
