#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef PNEUMO_SOURCE_DIR
#define PNEUMO_SOURCE_DIR "."
#endif

const char *pn_test_source_dir(void)
{
    const char *env = getenv("PNEUMO_SOURCE_DIR");
    return env && *env ? env : PNEUMO_SOURCE_DIR;
}

const char *pn_test_shared_dir(void)
{
    static char path[4096];
    const char *env = getenv("PNEUMO_SHARED_DIR");
    if (env && *env)
        snprintf(path, sizeof path, "%s", env);
    else
        snprintf(path, sizeof path, "%s/../shared", pn_test_source_dir());
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode) ? path : NULL;
}

const char *pn_test_require_shared(const char *what)
{
    const char *dir = pn_test_shared_dir();
    if (!dir) {
        printf("SKIP: ../shared is absent, so %s cannot be tested here\n", what);
        skip(); /* this test only: the others in the program still run */
    }
    return dir;
}

const char *pn_test_tmpdir(void)
{
    static char path[256];
    if (!path[0]) {
        snprintf(path, sizeof path, "/tmp/pneumo-test-XXXXXX");
        if (!mkdtemp(path)) {
            perror("mkdtemp");
            exit(1);
        }
    }
    return path;
}

int pn_test_sanitized(void)
{
    const char *env = getenv("PNEUMO_SANITIZED");
    return env && *env == '1';
}
