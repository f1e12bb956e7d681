/* Helpers shared by the libFuzzer targets (tests/fuzz/fuzz_*.c) and their
 * corpus replay (replay_main.c). Header-only: each target is one file. */
#ifndef PNEUMO_FUZZ_UTIL_H
#define PNEUMO_FUZZ_UTIL_H

#define _GNU_SOURCE /* memfd_create */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pneumo/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An error must carry a message: a failure without one is a bug. */
static inline void fuzz_check_error(pn_status st, const pn_error *err)
{
    if (st != PN_OK && err->msg[0] == '\0')
        abort();
}

/* Writes data to an anonymous in-memory file for code that takes a path;
 * path receives "/proc/self/fd/N". Returns the descriptor (close it after),
 * or -1. */
static inline int fuzz_memfd(const uint8_t *data, size_t size, char *path, size_t path_size)
{
    int fd = memfd_create("fuzz", 0);
    if (fd < 0)
        return -1;
    size_t done = 0;
    while (done < size) {
        ssize_t n = write(fd, data + done, size - done);
        if (n <= 0) {
            close(fd);
            return -1;
        }
        done += (size_t)n;
    }
    snprintf(path, path_size, "/proc/self/fd/%d", fd);
    return fd;
}

/* A NUL-terminated copy (the text parsers take C strings). */
static inline char *fuzz_strndup(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s) {
        memcpy(s, data, size);
        s[size] = '\0';
    }
    return s;
}

#endif
