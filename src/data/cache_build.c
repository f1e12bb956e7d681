/* Decode cache, writing side: every dataset image decoded once and resized
 * to size x size, shard by shard. Each thread writes its images straight
 * into the shard file (pwrite), so building needs no more memory than the
 * decoders use, whatever the dataset's size. File layout: cache_format.h. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/cache_format.h"
#include "data/internal.h"

/* The whole index file in memory: header, entries (ok flags still 0), names. */
static uint8_t *make_index(const pn_dataset *ds, int size, pn_resize_mode mode, uint64_t per_shard)
{
    cache_header h = {.version = CACHE_VERSION, .size = (uint32_t)size, .mode = (uint32_t)mode,
                      .per_shard = (uint32_t)per_shard, .count = ds->n};
    memcpy(h.magic, CACHE_MAGIC, 8);
    h.shards = (ds->n + per_shard - 1) / per_shard;
    h.names_offset = sizeof h + ds->n * sizeof(cache_entry);
    for (size_t i = 0; i < ds->n; i++)
        h.names_bytes += strlen(ds->samples[i].path);
    h.file_bytes = h.names_offset + h.names_bytes;
    uint8_t *index = calloc(1, h.file_bytes);
    if (!index)
        return NULL;
    cache_entry *e = (cache_entry *)(index + sizeof h);
    char *names = (char *)index + h.names_offset;
    uint64_t off = 0;
    for (size_t i = 0; i < ds->n; i++) {
        const pn_sample *s = &ds->samples[i];
        size_t len = strlen(s->path);
        e[i] = (cache_entry){.bytes = s->bytes, .mtime_ns = s->mtime_ns, .name_offset = off,
                             .name_len = (uint32_t)len, .label = s->label};
        memcpy(names + off, s->path, len);
        off += len;
    }
    memcpy(index, &h, sizeof h);
    h.build_id = pn_hash_bytes(index, h.file_bytes);
    memcpy(index, &h, sizeof h);
    return index;
}

/* pwrite until n bytes are written; 0 on success. */
static int write_full(int fd, const void *buf, size_t n, off_t off)
{
    for (size_t done = 0; done < n;) {
        ssize_t put = pwrite(fd, (const uint8_t *)buf + done, n - done, off + (off_t)done);
        if (put <= 0 && !(put < 0 && errno == EINTR))
            return -1;
        done += put > 0 ? (size_t)put : 0;
    }
    return 0;
}

/* Decodes one file into its size x size slot at offset off of fd: 1 done,
 * 0 undecodable (the slot stays black), -1 write error. */
static int decode_into(const char *path, int size, pn_resize_mode mode, int fd, off_t off)
{
    pn_image img, small;
    if (pn_image_decode_file(path, size, size, &img, NULL))
        return 0;
    int ok = pn_image_resize(&img, size, size, mode, &small, NULL) == PN_OK;
    if (ok && write_full(fd, small.pixels, (size_t)size * size, off))
        ok = -1;
    pn_image_free(&img);
    pn_image_free(&small);
    return ok;
}

/* Writes (fsync'ed, into place by rename) the file at path, or the shard's
 * temporary file given fd. */
static pn_status commit(int fd, const char *tmp, const char *path, pn_error *err)
{
    int failed = fdatasync(fd) != 0;
    failed |= close(fd) != 0;
    if (failed || rename(tmp, path) != 0) {
        pn_status st = pn_fail(err, PN_EIO, "%s: cannot write cache: %s", path, strerror(errno));
        unlink(tmp);
        return st;
    }
    return PN_OK;
}

static int create_tmp(const char *path, char *tmp, size_t size)
{
    snprintf(tmp, size, "%s.tmp.%ld", path, (long)getpid());
    return open(tmp, O_RDWR | O_CREAT | O_TRUNC, 0644);
}

/* Shard k: header page, then each image decoded in parallel into its slot;
 * sets the images' ok flags and adds the undecodable ones to *failed. */
static pn_status write_shard(const char *path, uint8_t *index, uint64_t k, const pn_dataset *ds, int n_threads,
                             size_t *failed, pn_error *err)
{
    const cache_header *h = (const cache_header *)index;
    cache_entry *entries = (cache_entry *)(index + sizeof *h);
    uint64_t n = pn_cache_shard_count(h, k), first = k * h->per_shard, img = (uint64_t)h->size * h->size;
    char name[4200], tmp[4300];
    pn_cache_shard_path(path, k, name, sizeof name);
    int fd = create_tmp(name, tmp, sizeof tmp);
    if (fd < 0)
        return pn_fail(err, PN_EIO, "%s: cannot create cache shard: %s", tmp, strerror(errno));
    uint8_t page[CACHE_PAGE] = {0};
    shard_header sh = {.version = CACHE_VERSION, .size = h->size, .build_id = h->build_id, .index = k,
                       .first = first, .count = n};
    memcpy(sh.magic, SHARD_MAGIC, 8);
    memcpy(page, &sh, sizeof sh);
    int io_failed = write_full(fd, page, CACHE_PAGE, 0) || ftruncate(fd, (off_t)(CACHE_PAGE + n * img));
    size_t bad = 0;
    if (!io_failed) {
        #pragma omp parallel for num_threads(n_threads) schedule(dynamic, 4) reduction(+ : bad) reduction(| : io_failed)
        for (uint64_t j = 0; j < n; j++) {
            int r = decode_into(ds->samples[first + j].path, (int)h->size, (pn_resize_mode)h->mode, fd,
                                (off_t)(CACHE_PAGE + j * img));
            entries[first + j].ok = r > 0;
            bad += r == 0;
            io_failed |= r < 0;
        }
    }
    *failed += bad;
    if (io_failed) {
        pn_status st = pn_fail(err, PN_EIO, "%s: cannot write cache shard: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        return st;
    }
    return commit(fd, tmp, name, err);
}

static pn_status write_index(const char *path, const uint8_t *index, pn_error *err)
{
    const cache_header *h = (const cache_header *)index;
    char tmp[4200];
    int fd = create_tmp(path, tmp, sizeof tmp);
    if (fd < 0)
        return pn_fail(err, PN_EIO, "%s: cannot create cache: %s", tmp, strerror(errno));
    if (write_full(fd, index, h->file_bytes, 0)) {
        pn_status st = pn_fail(err, PN_EIO, "%s: cannot write cache: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        return st;
    }
    return commit(fd, tmp, path, err);
}

/* Shards numbered k and up beside the index at path (an earlier build's). */
static void remove_shards_from(const char *path, uint64_t k)
{
    const char *slash = strrchr(path, '/');
    char dir[4096], prefix[4200], name[8400];
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) + (slash == path) : 1, slash ? path : ".");
    snprintf(prefix, sizeof prefix, "%s.shard", slash ? slash + 1 : path);
    DIR *d = opendir(dir);
    if (!d)
        return;
    size_t n = strlen(prefix);
    for (struct dirent *e; (e = readdir(d));) {
        char *end;
        if (strncmp(e->d_name, prefix, n) || !isdigit((unsigned char)e->d_name[n]))
            continue;
        unsigned long long i = strtoull(e->d_name + n, &end, 10);
        if (*end == '\0' && i >= k) {
            snprintf(name, sizeof name, "%s/%s", dir, e->d_name);
            unlink(name);
        }
    }
    closedir(d);
}

void pn_cache_remove(const char *path)
{
    unlink(path);
    remove_shards_from(path, 0);
}

pn_status pn_cache_build_with(const char *path, const pn_dataset *ds, int size, pn_resize_mode mode,
                              int n_threads, const pn_cache_options *o, size_t *n_failed, pn_error *err)
{
    if (size < 8 || size > 4096 || ds->n == 0 || ds->n > ((size_t)1 << 32) || n_threads < 1)
        return pn_fail(err, PN_EINVAL, "%s: cache needs 8 <= size <= 4096, 1 to 2^32 samples and threads",
                       path);
    uint64_t img = (uint64_t)size * size, bytes = o && o->shard_bytes ? o->shard_bytes : CACHE_SHARD_BYTES;
    uint64_t per_shard = bytes / img ? bytes / img : 1;
    per_shard = per_shard < ds->n ? per_shard : ds->n;
    uint8_t *index = make_index(ds, size, mode, per_shard);
    if (!index)
        return pn_fail(err, PN_ENOMEM, "out of memory for the cache index of %zu files", ds->n);
    const cache_header *h = (const cache_header *)index;
    size_t failed = 0;
    pn_status st = PN_OK;
    for (uint64_t k = 0; !st && k < h->shards; k++)
        st = write_shard(path, index, k, ds, n_threads, &failed, err);
    if (!st)
        st = write_index(path, index, err);
    if (!st)
        remove_shards_from(path, h->shards);
    if (!st && n_failed)
        *n_failed = failed;
    free(index);
    return st;
}

pn_status pn_cache_build(const char *path, const pn_dataset *ds, int size, pn_resize_mode mode,
                         int n_threads, size_t *n_failed, pn_error *err)
{
    return pn_cache_build_with(path, ds, size, mode, n_threads, NULL, n_failed, err);
}
