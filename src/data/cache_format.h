/* The decode cache's files (internal to cache.c and cache_build.c).
 *
 * An index file at the cache path and shard files beside it, "<path>.shard<k>"
 * (native endianness; the cache is a local, rebuildable artefact):
 *   index:  cache_header | cache_entry[count] | source paths
 *   shard:  shard_header, zero-padded to CACHE_PAGE | pixels of images
 *           [k * per_shard, min(count, (k + 1) * per_shard)), size*size each
 * build_id (a hash of the index's content) ties the shards to their index;
 * shards are written first and the index last, each through a temporary
 * file and rename, so an index that opens names complete shards. */
#ifndef PNEUMO_DATA_CACHE_FORMAT_H
#define PNEUMO_DATA_CACHE_FORMAT_H

#include <stdint.h>

#define CACHE_MAGIC "PNCACHE"
#define SHARD_MAGIC "PNSHARD"
#define CACHE_VERSION 2u
#define CACHE_PAGE 4096u
/* Pixel bytes per shard and resident before a trim, unless options say otherwise. */
#define CACHE_SHARD_BYTES ((uint64_t)256 << 20)
#define CACHE_RESIDENT_BYTES ((uint64_t)64 << 20)

typedef struct cache_header {
    char magic[8];
    uint32_t version, size, mode, per_shard;  /* per_shard: images per shard file */
    uint64_t count, shards, names_offset, names_bytes, file_bytes, build_id;
} cache_header;

typedef struct cache_entry {
    int64_t bytes, mtime_ns;
    uint64_t name_offset;   /* into the names block */
    uint32_t name_len;
    int32_t label;
    uint32_t ok;
    uint32_t reserved;
} cache_entry;

typedef struct shard_header {
    char magic[8];
    uint32_t version, size;
    uint64_t build_id, index, first, count;
} shard_header;

/* "<path>.shard<k>" into out. */
void pn_cache_shard_path(const char *path, uint64_t k, char *out, size_t size);
/* Images in shard k of a cache with header h. */
uint64_t pn_cache_shard_count(const cache_header *h, uint64_t k);

#endif
