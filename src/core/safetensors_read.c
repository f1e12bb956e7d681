/* safetensors reader: the whole file is read into one aligned allocation
 * (so tensor data can be used in place) and validated before use. */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "core/safetensors_internal.h"

void pn_st_close(pn_st_file *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->count; i++)
        free((char *)f->tensors[i].name);
    for (size_t i = 0; i < f->meta_count; i++) {
        free(f->meta[i].key);
        free(f->meta[i].value);
    }
    free(f->tensors);
    free(f->meta);
    free(f->storage);
    free(f);
}

/* Allocates the file object with room for size file bytes, placed so that the
 * data buffer (at 8 + header_len) starts DATA_ALIGN-aligned. */
static pn_status alloc_file(size_t size, uint64_t header_len, const char *label, pn_st_file **out,
                            uint8_t **file_bytes, pn_error *err)
{
    size_t shift = (DATA_ALIGN - (size_t)((8 + header_len) % DATA_ALIGN)) % DATA_ALIGN;
    size_t total = (size + shift + DATA_ALIGN - 1) / DATA_ALIGN * DATA_ALIGN;
    pn_st_file *f = calloc(1, sizeof *f);
    if (!f)
        return pn_fail(err, PN_ENOMEM, "%s: out of memory", label);
    f->storage = aligned_alloc(DATA_ALIGN, total);
    if (!f->storage) {
        free(f);
        return pn_fail(err, PN_ENOMEM, "%s: out of memory for %zu bytes", label, size);
    }
    *file_bytes = f->storage + shift;
    f->data = *file_bytes + 8 + header_len;
    f->data_size = size - 8 - (size_t)header_len;
    *out = f;
    return PN_OK;
}

/* Takes the file bytes already placed in f's storage and parses them. */
static pn_status finish_open(pn_st_file *f, const uint8_t *file_bytes, uint64_t header_len,
                             const char *label, pn_st_file **out, pn_error *err)
{
    pn_status st = pn_st_parse_header(f, file_bytes, (size_t)header_len, label, err);
    if (st != PN_OK) {
        pn_st_close(f);
        return st;
    }
    *out = f;
    return PN_OK;
}

pn_status pn_st_open_memory(const void *bytes, size_t size, const char *label, pn_st_file **out,
                            pn_error *err)
{
    *out = NULL;
    if (!label)
        label = "<memory>";
    if (!bytes && size > 0)
        return pn_fail(err, PN_EINVAL, "%s: NULL buffer", label);
    uint64_t header_len = 0;
    pn_status st = pn_st_check_sizes(bytes, size, label, &header_len, err);
    if (st != PN_OK)
        return st;
    pn_st_file *f;
    uint8_t *file_bytes;
    st = alloc_file(size, header_len, label, &f, &file_bytes, err);
    if (st != PN_OK)
        return st;
    memcpy(file_bytes, bytes, size);
    return finish_open(f, file_bytes, header_len, label, out, err);
}

static pn_status read_exact(int fd, uint8_t *buf, size_t len, off_t offset, const char *path,
                            pn_error *err)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, buf + done, len - done, offset + (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return pn_fail(err, PN_EIO, "%s: read failed: %s", path, strerror(errno));
        if (n == 0)
            return pn_fail(err, PN_EIO, "%s: file shrank while being read", path);
        done += (size_t)n;
    }
    return PN_OK;
}

static pn_status open_fd(int fd, const char *path, pn_st_file **out, pn_error *err)
{
    struct stat sb;
    if (fstat(fd, &sb) != 0)
        return pn_fail(err, PN_EIO, "%s: cannot stat: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return pn_fail(err, PN_EINVAL, "%s: not a regular file", path);
    uint64_t size = (uint64_t)sb.st_size;
    uint8_t first8[8] = {0};
    pn_status st = size >= 8 ? read_exact(fd, first8, 8, 0, path, err) : PN_OK;
    uint64_t header_len = 0;
    if (st == PN_OK)
        st = pn_st_check_sizes(first8, size, path, &header_len, err);
    if (st != PN_OK)
        return st;
    pn_st_file *f;
    uint8_t *file_bytes;
    st = alloc_file((size_t)size, header_len, path, &f, &file_bytes, err);
    if (st != PN_OK)
        return st;
    st = read_exact(fd, file_bytes, (size_t)size, 0, path, err);
    if (st != PN_OK) {
        pn_st_close(f);
        return st;
    }
    return finish_open(f, file_bytes, header_len, path, out, err);
}

pn_status pn_st_open(const char *path, pn_st_file **out, pn_error *err)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return pn_fail(err, PN_EIO, "%s: cannot open: %s", path, strerror(errno));
    pn_status st = open_fd(fd, path, out, err);
    close(fd);
    return st;
}

size_t pn_st_count(const pn_st_file *f) { return f->count; }

const pn_st_tensor *pn_st_get(const pn_st_file *f, size_t i)
{
    return i < f->count ? &f->tensors[i] : NULL;
}

const pn_st_tensor *pn_st_find(const pn_st_file *f, const char *name)
{
    for (size_t i = 0; i < f->count; i++)
        if (strcmp(f->tensors[i].name, name) == 0)
            return &f->tensors[i];
    return NULL;
}

const char *pn_st_metadata(const pn_st_file *f, const char *key)
{
    if (f->meta_count == 0) /* f->meta may be NULL, which bsearch must not see */
        return NULL;
    struct meta_entry probe = {.key = (char *)key};
    const struct meta_entry *found =
        bsearch(&probe, f->meta, f->meta_count, sizeof *f->meta, pn_st_compare_meta_keys);
    return found ? found->value : NULL;
}

size_t pn_st_metadata_count(const pn_st_file *f) { return f->meta_count; }

const char *pn_st_metadata_key(const pn_st_file *f, size_t i)
{
    return i < f->meta_count ? f->meta[i].key : NULL;
}
