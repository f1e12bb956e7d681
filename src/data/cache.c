/* Decode cache: every dataset image decoded once at training resolution into
 * one memory-mapped file.
 *
 * Layout (native endianness; the cache is a local, rebuildable artefact):
 *   cache_header | cache_entry[count] | source paths | padding | pixels
 * Pixels start page-aligned; image i is size*size bytes at pixels + i*size*size. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/internal.h"

#define CACHE_MAGIC "PNCACHE"
#define CACHE_VERSION 1u
#define PAGE 4096u

typedef struct cache_header {
    char magic[8];
    uint32_t version, size, mode, reserved;
    uint64_t count, names_offset, names_bytes, pixels_offset, file_bytes;
} cache_header;

typedef struct cache_entry {
    int64_t bytes, mtime_ns;
    uint64_t name_offset;   /* into the names block */
    uint32_t name_len;
    int32_t label;
    uint32_t ok;
    uint32_t reserved;
} cache_entry;

struct pn_cache {
    uint8_t *map;
    size_t map_bytes;
    const cache_header *hdr;
    const cache_entry *entries;
    const char *names;
    const uint8_t *pixels;
};

static uint64_t align_up(uint64_t v, uint64_t a)
{
    return (v + a - 1) / a * a;
}

static void layout(const pn_dataset *ds, int size, cache_header *h)
{
    memset(h, 0, sizeof *h);
    memcpy(h->magic, CACHE_MAGIC, 8);
    h->version = CACHE_VERSION;
    h->size = (uint32_t)size;
    h->count = ds->n;
    h->names_offset = sizeof *h + ds->n * sizeof(cache_entry);
    for (size_t i = 0; i < ds->n; i++)
        h->names_bytes += strlen(ds->samples[i].path);
    h->pixels_offset = align_up(h->names_offset + h->names_bytes, PAGE);
    h->file_bytes = h->pixels_offset + (uint64_t)ds->n * size * size;
}

static void write_index(const pn_dataset *ds, uint8_t *map, const cache_header *h)
{
    memcpy(map, h, sizeof *h);
    cache_entry *e = (cache_entry *)(map + sizeof *h);
    char *names = (char *)map + h->names_offset;
    uint64_t off = 0;
    for (size_t i = 0; i < ds->n; i++) {
        const pn_sample *s = &ds->samples[i];
        size_t len = strlen(s->path);
        e[i] = (cache_entry){.bytes = s->bytes, .mtime_ns = s->mtime_ns, .name_offset = off,
                             .name_len = (uint32_t)len, .label = s->label};
        memcpy(names + off, s->path, len);
        off += len;
    }
}

/* Decodes one file into a size x size slot; 0 on failure (slot left black). */
static int decode_into(const char *path, int size, pn_resize_mode mode, uint8_t *slot)
{
    pn_image img, small;
    if (pn_image_decode_file(path, size, size, &img, NULL))
        return 0;
    int ok = pn_image_resize(&img, size, size, mode, &small, NULL) == PN_OK;
    if (ok)
        memcpy(slot, small.pixels, (size_t)size * size);
    pn_image_free(&img);
    pn_image_free(&small);
    return ok;
}

pn_status pn_cache_build(const char *path, const pn_dataset *ds, int size, pn_resize_mode mode,
                         int n_threads, size_t *n_failed, pn_error *err)
{
    if (size < 8 || size > 4096 || ds->n == 0 || n_threads < 1)
        return pn_fail(err, PN_EINVAL, "%s: cache needs 8 <= size <= 4096, samples and threads",
                       path);
    cache_header h;
    layout(ds, size, &h);
    h.mode = (uint32_t)mode;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return pn_fail(err, PN_EIO, "%s: cannot create cache: %s", tmp, strerror(errno));
    uint8_t *map = MAP_FAILED;
    if (ftruncate(fd, (off_t)h.file_bytes) == 0)
        map = mmap(NULL, h.file_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        unlink(tmp);
        return pn_fail(err, PN_EIO, "%s: cannot size cache to %llu bytes: %s", tmp,
                       (unsigned long long)h.file_bytes, strerror(errno));
    }
    write_index(ds, map, &h);
    cache_entry *entries = (cache_entry *)(map + sizeof h);
    uint8_t *pixels = map + h.pixels_offset;
    size_t failed = 0;
    #pragma omp parallel for num_threads(n_threads) schedule(dynamic, 4) reduction(+ : failed)
    for (size_t i = 0; i < ds->n; i++) {
        entries[i].ok = (uint32_t)decode_into(ds->samples[i].path, size, mode,
                                              pixels + i * (size_t)size * size);
        failed += !entries[i].ok;
    }
    int synced = msync(map, h.file_bytes, MS_SYNC) == 0;
    munmap(map, h.file_bytes);
    if (!synced || rename(tmp, path) != 0) {
        unlink(tmp);
        return pn_fail(err, PN_EIO, "%s: cannot write cache: %s", path, strerror(errno));
    }
    if (n_failed)
        *n_failed = failed;
    return PN_OK;
}

static pn_status check_header(const pn_cache *c, const char *path, pn_error *err)
{
    const cache_header *h = c->hdr;
    if (c->map_bytes < sizeof *h || memcmp(h->magic, CACHE_MAGIC, 8))
        return pn_fail(err, PN_EFORMAT, "%s: not a pneumo cache file", path);
    if (h->version != CACHE_VERSION)
        return pn_fail(err, PN_EFORMAT, "stale cache %s: format version %u, expected %u", path,
                       h->version, CACHE_VERSION);
    uint64_t table_end = sizeof *h + h->count * sizeof(cache_entry);
    if (h->size == 0 || h->size > 4096 || h->count > ((uint64_t)1 << 32) || h->names_offset != table_end ||
        h->pixels_offset < h->names_offset + h->names_bytes || h->file_bytes != c->map_bytes ||
        h->file_bytes != h->pixels_offset + h->count * h->size * h->size)
        return pn_fail(err, PN_EFORMAT, "%s: corrupt cache header", path);
    for (uint64_t i = 0; i < h->count; i++)
        if (c->entries[i].name_offset > h->names_bytes ||
            c->entries[i].name_len > h->names_bytes - c->entries[i].name_offset)
            return pn_fail(err, PN_EFORMAT, "%s: corrupt cache entry %llu", path,
                           (unsigned long long)i);
    return PN_OK;
}

static pn_status check_matches(const pn_cache *c, const char *path, const pn_dataset *ds,
                               int size, pn_resize_mode mode, pn_error *err)
{
    const cache_header *h = c->hdr;
    if (h->size != (uint32_t)size || h->mode != (uint32_t)mode)
        return pn_fail(err, PN_EFORMAT, "stale cache %s: built at %u px mode %u, wanted %d px "
                       "mode %d", path, h->size, h->mode, size, (int)mode);
    if (h->count != ds->n)
        return pn_fail(err, PN_EFORMAT, "stale cache %s: %llu files, dataset has %zu", path,
                       (unsigned long long)h->count, ds->n);
    for (size_t i = 0; i < ds->n; i++) {
        const cache_entry *e = &c->entries[i];
        const pn_sample *s = &ds->samples[i];
        if (e->name_len != strlen(s->path) ||
            memcmp(c->names + e->name_offset, s->path, e->name_len))
            return pn_fail(err, PN_EFORMAT, "stale cache %s: file list differs at %s", path,
                           s->path);
        if (e->bytes != s->bytes || e->mtime_ns != s->mtime_ns || e->label != s->label)
            return pn_fail(err, PN_EFORMAT, "stale cache %s: %s changed since the cache was built",
                           path, s->path);
    }
    return PN_OK;
}

pn_status pn_cache_open(const char *path, const pn_dataset *ds, int size, pn_resize_mode mode,
                        pn_cache **out, pn_error *err)
{
    *out = NULL;
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return pn_fail(err, PN_EIO, "%s: cannot open cache: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < (off_t)sizeof(cache_header)) {
        close(fd);
        return pn_fail(err, PN_EFORMAT, "%s: not a pneumo cache file (too short)", path);
    }
    pn_cache *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return pn_fail(err, PN_ENOMEM, "out of memory opening %s", path);
    }
    c->map_bytes = (size_t)st.st_size;
    c->map = mmap(NULL, c->map_bytes, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (c->map == MAP_FAILED) {
        free(c);
        return pn_fail(err, PN_EIO, "%s: cannot map cache: %s", path, strerror(errno));
    }
    c->hdr = (const cache_header *)c->map;
    c->entries = (const cache_entry *)(c->map + sizeof(cache_header));
    pn_status s = check_header(c, path, err);
    if (!s) {
        c->names = (const char *)c->map + c->hdr->names_offset;
        c->pixels = c->map + c->hdr->pixels_offset;
        if (ds)
            s = check_matches(c, path, ds, size, mode, err);
    }
    if (s) {
        pn_cache_close(c);
        return s;
    }
    *out = c;
    return PN_OK;
}

pn_status pn_cache_ensure(const char *path, const pn_dataset *ds, int size, pn_resize_mode mode,
                          int n_threads, int *rebuilt, pn_cache **out, pn_error *err)
{
    if (rebuilt)
        *rebuilt = 0;
    if (pn_cache_open(path, ds, size, mode, out, NULL) == PN_OK)
        return PN_OK;
    pn_status st = pn_cache_build(path, ds, size, mode, n_threads, NULL, err);
    if (st)
        return st;
    if (rebuilt)
        *rebuilt = 1;
    return pn_cache_open(path, ds, size, mode, out, err);
}

void pn_cache_close(pn_cache *c)
{
    if (!c)
        return;
    munmap(c->map, c->map_bytes);
    free(c);
}

size_t pn_cache_count(const pn_cache *c) { return (size_t)c->hdr->count; }
int pn_cache_size(const pn_cache *c) { return (int)c->hdr->size; }
int pn_cache_label(const pn_cache *c, size_t i) { return c->entries[i].label; }
int pn_cache_ok(const pn_cache *c, size_t i) { return c->entries[i].ok != 0; }

const uint8_t *pn_cache_pixels(const pn_cache *c, size_t i)
{
    return c->pixels + i * (size_t)c->hdr->size * c->hdr->size;
}
