/* Decode cache, reading side: the index is mapped, every shard is mapped
 * read-only (or, as the plain reference path, read into memory). Mapped pixel
 * pages count towards the process's resident set while it holds them, so
 * after every resident_bytes of pixels served the shards touched since the
 * last trim are let go (madvise MADV_DONTNEED): the pages stay in the kernel's
 * page cache, which evicts them under memory pressure, and pointers into the
 * shards stay valid (a later read faults the page in again). Training memory
 * therefore does not grow with the dataset, and a dataset larger than RAM
 * trains from its cache. File layout: cache_format.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/cache_format.h"
#include "data/internal.h"

/* What pn_cache_pixels updates through a const cache. */
typedef struct residency {
    _Atomic uint64_t served;   /* pixel bytes handed out */
    uint64_t limit;            /* trim after every limit bytes */
    atomic_uchar *touched;     /* [shards] served since the last trim */
} residency;

struct pn_cache {
    uint8_t *map;              /* the index file */
    size_t map_bytes;
    const cache_header *hdr;
    const cache_entry *entries;
    const char *names;
    uint8_t **shard_map;       /* [shards] header page + pixels, mapped; NULL entries in memory */
    size_t *shard_bytes;       /* [shards] mapping lengths */
    uint8_t *memory;           /* in memory: [count][size][size] */
    residency *res;
};

void pn_cache_shard_path(const char *path, uint64_t k, char *out, size_t size)
{
    snprintf(out, size, "%s.shard%04llu", path, (unsigned long long)k);
}

uint64_t pn_cache_shard_count(const cache_header *h, uint64_t k)
{
    uint64_t first = k * h->per_shard;
    return h->count - first < h->per_shard ? h->count - first : h->per_shard;
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
    if (h->size == 0 || h->size > 4096 || h->count == 0 || h->count > ((uint64_t)1 << 32) ||
        h->per_shard == 0 || h->shards != (h->count + h->per_shard - 1) / h->per_shard ||
        h->names_offset != table_end || h->file_bytes != c->map_bytes ||
        h->file_bytes != h->names_offset + h->names_bytes)
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

/* pread until n bytes arrived; 0 on success. */
static int read_full(int fd, void *buf, size_t n, off_t off)
{
    for (size_t done = 0; done < n;) {
        ssize_t got = pread(fd, (uint8_t *)buf + done, n - done, off + (off_t)done);
        if (got <= 0 && !(got < 0 && errno == EINTR))
            return -1;
        done += got > 0 ? (size_t)got : 0;
    }
    return 0;
}

/* Checks shard k's header and size, then maps it or reads its pixels. */
static pn_status open_shard(pn_cache *c, const char *path, uint64_t k, int fd, const char *name, pn_error *err)
{
    const cache_header *h = c->hdr;
    uint64_t n = pn_cache_shard_count(h, k), img = (uint64_t)h->size * h->size;
    struct stat st;
    shard_header sh;
    if (fstat(fd, &st) != 0 || (uint64_t)st.st_size != CACHE_PAGE + n * img || read_full(fd, &sh, sizeof sh, 0) ||
        memcmp(sh.magic, SHARD_MAGIC, 8) || sh.version != CACHE_VERSION || sh.size != h->size ||
        sh.build_id != h->build_id || sh.index != k || sh.first != k * h->per_shard || sh.count != n)
        return pn_fail(err, PN_EFORMAT, "stale cache %s: %s belongs to another build or is incomplete", path, name);
    if (c->memory) {
        if (read_full(fd, c->memory + sh.first * img, n * img, CACHE_PAGE))
            return pn_fail(err, PN_EIO, "%s: read error", name);
        return PN_OK;
    }
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED)
        return pn_fail(err, PN_EIO, "%s: cannot map: %s", name, strerror(errno));
    c->shard_map[k] = m;
    c->shard_bytes[k] = (size_t)st.st_size;
    return PN_OK;
}

static pn_status open_shards(pn_cache *c, const char *path, const pn_cache_options *o, pn_error *err)
{
    const cache_header *h = c->hdr;
    c->shard_map = calloc(h->shards, sizeof *c->shard_map);
    c->shard_bytes = calloc(h->shards, sizeof *c->shard_bytes);
    if ((c->res = calloc(1, sizeof *c->res)))
        c->res->touched = calloc(h->shards, sizeof *c->res->touched);
    if (o && o->in_memory)
        c->memory = malloc(h->count * h->size * h->size);
    if (!c->shard_map || !c->shard_bytes || !c->res || !c->res->touched || (o && o->in_memory && !c->memory))
        return pn_fail(err, PN_ENOMEM, "out of memory opening %s", path);
    c->res->limit = o && o->resident_bytes ? o->resident_bytes : CACHE_RESIDENT_BYTES;
    pn_status st = PN_OK;
    for (uint64_t k = 0; !st && k < h->shards; k++) {
        char name[4200];
        pn_cache_shard_path(path, k, name, sizeof name);
        int fd = open(name, O_RDONLY);
        if (fd < 0)
            return pn_fail(err, PN_EFORMAT, "stale cache %s: %s: %s", path, name, strerror(errno));
        st = open_shard(c, path, k, fd, name, err);
        close(fd);
    }
    return st;
}

static pn_status map_index(const char *path, pn_cache *c, pn_error *err)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return pn_fail(err, PN_EIO, "%s: cannot open cache: %s", path, strerror(errno));
    struct stat st;
    pn_status s = PN_OK;
    if (fstat(fd, &st) != 0 || st.st_size < (off_t)sizeof(cache_header))
        s = pn_fail(err, PN_EFORMAT, "%s: not a pneumo cache file (too short)", path);
    if (!s) {
        c->map_bytes = (size_t)st.st_size;
        c->map = mmap(NULL, c->map_bytes, PROT_READ, MAP_SHARED, fd, 0);
        if (c->map == MAP_FAILED) {
            c->map = NULL;
            s = pn_fail(err, PN_EIO, "%s: cannot map cache: %s", path, strerror(errno));
        }
    }
    close(fd);
    return s;
}

pn_status pn_cache_open_with(const char *path, const pn_dataset *ds, int size, pn_resize_mode mode,
                             const pn_cache_options *o, pn_cache **out, pn_error *err)
{
    *out = NULL;
    pn_cache *c = calloc(1, sizeof *c);
    if (!c)
        return pn_fail(err, PN_ENOMEM, "out of memory opening %s", path);
    pn_status s = map_index(path, c, err);
    if (!s) {
        c->hdr = (const cache_header *)c->map;
        c->entries = (const cache_entry *)(c->map + sizeof(cache_header));
        s = check_header(c, path, err);
    }
    if (!s) {
        c->names = (const char *)c->map + c->hdr->names_offset;
        if (ds)
            s = check_matches(c, path, ds, size, mode, err);
    }
    if (!s)
        s = open_shards(c, path, o, err);
    if (s) {
        pn_cache_close(c);
        return s;
    }
    *out = c;
    return PN_OK;
}

pn_status pn_cache_open(const char *path, const pn_dataset *ds, int size, pn_resize_mode mode,
                        pn_cache **out, pn_error *err)
{
    return pn_cache_open_with(path, ds, size, mode, NULL, out, err);
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
    for (uint64_t k = 0; c->shard_map && k < c->hdr->shards; k++)
        if (c->shard_map[k])
            munmap(c->shard_map[k], c->shard_bytes[k]);
    if (c->map)
        munmap(c->map, c->map_bytes);
    if (c->res)
        free(c->res->touched);
    free(c->res);
    free(c->shard_map);
    free(c->shard_bytes);
    free(c->memory);
    free(c);
}

size_t pn_cache_count(const pn_cache *c) { return (size_t)c->hdr->count; }
int pn_cache_size(const pn_cache *c) { return (int)c->hdr->size; }
int pn_cache_label(const pn_cache *c, size_t i) { return c->entries[i].label; }
int pn_cache_ok(const pn_cache *c, size_t i) { return c->entries[i].ok != 0; }
size_t pn_cache_shards(const pn_cache *c) { return (size_t)c->hdr->shards; }

/* Lets go of the pages of every shard served since the last trim. */
static void trim(const pn_cache *c)
{
    for (uint64_t k = 0; k < c->hdr->shards; k++)
        if (atomic_exchange_explicit(&c->res->touched[k], 0, memory_order_relaxed))
            madvise(c->shard_map[k], c->shard_bytes[k], MADV_DONTNEED);
}

const uint8_t *pn_cache_pixels(const pn_cache *c, size_t i)
{
    size_t img = (size_t)c->hdr->size * c->hdr->size;
    if (c->memory)
        return c->memory + i * img;
    uint64_t k = i / c->hdr->per_shard;
    residency *r = c->res;
    atomic_store_explicit(&r->touched[k], 1, memory_order_relaxed);
    uint64_t before = atomic_fetch_add_explicit(&r->served, img, memory_order_relaxed);
    if (before / r->limit != (before + img) / r->limit)
        trim(c);
    return c->shard_map[k] + CACHE_PAGE + (i - k * c->hdr->per_shard) * img;
}
