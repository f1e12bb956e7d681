/* safetensors writer: tensors and metadata collected in memory, then written
 * atomically (temporary file, fsync, rename, directory fsync). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "core/safetensors_internal.h"
#include "pneumo/tensor.h"

typedef struct writer_tensor {
    char *name;
    pn_st_dtype dtype;
    int ndim;
    int64_t shape[PN_ST_MAX_DIMS];
    void *data;
    size_t nbytes;
} writer_tensor;

struct pn_st_writer {
    writer_tensor *tensors;
    size_t count, capacity;
    struct meta_entry *meta;
    size_t meta_count, meta_capacity;
};

pn_status pn_st_writer_create(pn_st_writer **out, pn_error *err)
{
    *out = calloc(1, sizeof **out);
    return *out ? PN_OK : pn_fail(err, PN_ENOMEM, "out of memory for a safetensors writer");
}

void pn_st_writer_destroy(pn_st_writer *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->count; i++) {
        free(w->tensors[i].name);
        free(w->tensors[i].data);
    }
    for (size_t i = 0; i < w->meta_count; i++) {
        free(w->meta[i].key);
        free(w->meta[i].value);
    }
    free(w->tensors);
    free(w->meta);
    free(w);
}

/* Validates name, dtype and shape for a new tensor; returns its byte size. */
static pn_status check_new_tensor(const pn_st_writer *w, const char *name, pn_st_dtype dtype,
                                  int ndim, const int64_t *shape, size_t *numel, size_t *nbytes,
                                  pn_error *err)
{
    if (!name)
        return pn_fail(err, PN_EINVAL, "safetensors writer: tensor name is NULL");
    if (strcmp(name, "__metadata__") == 0)
        return pn_fail(err, PN_EINVAL, "safetensors writer: \"__metadata__\" is reserved");
    for (size_t i = 0; i < w->count; i++)
        if (strcmp(w->tensors[i].name, name) == 0)
            return pn_fail(err, PN_EINVAL, "safetensors writer: tensor " NAME_FMT " added twice", name);
    if (!pn_st_dtype_known(dtype))
        return pn_fail(err, PN_EINVAL, "safetensors writer: tensor " NAME_FMT ": invalid dtype %d",
                       name, (int)dtype);
    if (ndim < 0 || ndim > PN_ST_MAX_DIMS || (ndim > 0 && !shape))
        return pn_fail(err, PN_EINVAL, "safetensors writer: tensor " NAME_FMT ": bad rank %d", name,
                       ndim);
    if (!pn_st_shape_size(ndim, shape, pn_st_dtype_size(dtype), numel, nbytes))
        return pn_fail(err, PN_EINVAL,
                       "safetensors writer: tensor " NAME_FMT ": negative dimension or size overflow",
                       name);
    return PN_OK;
}

/* Appends a validated tensor; takes ownership of data (freed on failure). */
static pn_status append_tensor(pn_st_writer *w, const char *name, pn_st_dtype dtype, int ndim,
                               const int64_t *shape, void *data, size_t nbytes, pn_error *err)
{
    if (w->count == w->capacity) {
        size_t cap = w->capacity ? 2 * w->capacity : 16;
        writer_tensor *grown = realloc(w->tensors, cap * sizeof *grown);
        if (!grown) {
            free(data);
            return pn_fail(err, PN_ENOMEM, "safetensors writer: out of memory");
        }
        w->tensors = grown;
        w->capacity = cap;
    }
    writer_tensor *t = &w->tensors[w->count];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    if (!t->name) {
        free(data);
        return pn_fail(err, PN_ENOMEM, "safetensors writer: out of memory");
    }
    t->dtype = dtype;
    t->ndim = ndim;
    if (ndim > 0)
        memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    t->data = data;
    t->nbytes = nbytes;
    w->count++;
    return PN_OK;
}

pn_status pn_st_writer_add(pn_st_writer *w, const char *name, pn_st_dtype dtype, int ndim,
                           const int64_t *shape, const void *data, pn_error *err)
{
    size_t numel, nbytes;
    pn_status st = check_new_tensor(w, name, dtype, ndim, shape, &numel, &nbytes, err);
    if (st != PN_OK)
        return st;
    if (nbytes > 0 && !data)
        return pn_fail(err, PN_EINVAL, "safetensors writer: tensor " NAME_FMT ": NULL data", name);
    void *copy = malloc(nbytes ? nbytes : 1);
    if (!copy)
        return pn_fail(err, PN_ENOMEM, "safetensors writer: out of memory for " NAME_FMT, name);
    if (nbytes)
        memcpy(copy, data, nbytes);
    return append_tensor(w, name, dtype, ndim, shape, copy, nbytes, err);
}

pn_status pn_st_writer_add_f32(pn_st_writer *w, const char *name, pn_st_dtype dtype, int ndim,
                               const int64_t *shape, const float *data, pn_error *err)
{
    if (dtype != PN_ST_F32 && dtype != PN_ST_BF16)
        return pn_fail(err, PN_EINVAL, "safetensors writer: float data can be stored as F32 or BF16, not %s",
                       pn_st_dtype_name(dtype));
    size_t numel, nbytes;
    pn_status st = check_new_tensor(w, name, dtype, ndim, shape, &numel, &nbytes, err);
    if (st != PN_OK)
        return st;
    if (numel > 0 && !data)
        return pn_fail(err, PN_EINVAL, "safetensors writer: tensor " NAME_FMT ": NULL data", name);
    uint8_t *converted = malloc(nbytes ? nbytes : 1);
    if (!converted)
        return pn_fail(err, PN_ENOMEM, "safetensors writer: out of memory for " NAME_FMT, name);
    if (dtype == PN_ST_F32 && nbytes) {
        memcpy(converted, data, nbytes);
    } else {
        for (size_t i = 0; i < numel; i++) {
            uint16_t b = pn_f32_to_bf16(data[i]);
            memcpy(converted + 2 * i, &b, 2);
        }
    }
    return append_tensor(w, name, dtype, ndim, shape, converted, nbytes, err);
}

pn_status pn_st_writer_set_metadata(pn_st_writer *w, const char *key, const char *value,
                                    pn_error *err)
{
    if (!key || !value)
        return pn_fail(err, PN_EINVAL, "safetensors writer: NULL metadata key or value");
    char *value_copy = strdup(value);
    if (!value_copy)
        return pn_fail(err, PN_ENOMEM, "safetensors writer: out of memory");
    for (size_t i = 0; i < w->meta_count; i++) {
        if (strcmp(w->meta[i].key, key) == 0) {
            free(w->meta[i].value);
            w->meta[i].value = value_copy;
            return PN_OK;
        }
    }
    if (w->meta_count == w->meta_capacity) {
        size_t cap = w->meta_capacity ? 2 * w->meta_capacity : 16;
        struct meta_entry *grown = realloc(w->meta, cap * sizeof *grown);
        if (!grown) {
            free(value_copy);
            return pn_fail(err, PN_ENOMEM, "safetensors writer: out of memory");
        }
        w->meta = grown;
        w->meta_capacity = cap;
    }
    char *key_copy = strdup(key);
    if (!key_copy) {
        free(value_copy);
        return pn_fail(err, PN_ENOMEM, "safetensors writer: out of memory");
    }
    w->meta[w->meta_count++] = (struct meta_entry){key_copy, value_copy};
    return PN_OK;
}

static int compare_writer_tensors(const void *a, const void *b)
{
    return strcmp(((const writer_tensor *)a)->name, ((const writer_tensor *)b)->name);
}

static json_t *tensor_json(const writer_tensor *t, size_t begin)
{
    json_t *shape = json_array();
    for (int i = 0; shape && i < t->ndim; i++)
        if (json_array_append_new(shape, json_integer(t->shape[i])) != 0) {
            json_decref(shape);
            return NULL;
        }
    return json_pack("{s:s, s:o, s:[I,I]}", "dtype", pn_st_dtype_name(t->dtype), "shape", shape,
                     "data_offsets", (json_int_t)begin, (json_int_t)(begin + t->nbytes));
}

/* Adds "__metadata__" to root. */
static pn_status add_metadata_json(const pn_st_writer *w, json_t *root, const char *path,
                                   pn_error *err)
{
    json_t *meta = json_object();
    if (!meta || json_object_set_new(root, "__metadata__", meta) != 0)
        return pn_fail(err, PN_ENOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < w->meta_count; i++) {
        json_t *value = json_string(w->meta[i].value);
        if (!value || json_object_set_new(meta, w->meta[i].key, value) != 0)
            return pn_fail(err, PN_EINVAL, "%s: metadata " NAME_FMT " is not valid UTF-8", path,
                           w->meta[i].key);
    }
    return PN_OK;
}

/* Builds the header JSON text (tensors already sorted by name). */
static pn_status header_text(const pn_st_writer *w, const char *path, char **out, pn_error *err)
{
    json_t *root = json_object();
    if (!root)
        return pn_fail(err, PN_ENOMEM, "%s: out of memory", path);
    size_t offset = 0;
    for (size_t i = 0; i < w->count; i++) {
        const writer_tensor *t = &w->tensors[i];
        json_t *entry = tensor_json(t, offset);
        if (!entry || json_object_set_new(root, t->name, entry) != 0) {
            json_decref(root);
            return pn_fail(err, PN_EINVAL, "%s: tensor " NAME_FMT ": name is not valid UTF-8", path,
                           t->name);
        }
        offset += t->nbytes;
    }
    if (w->meta_count > 0) {
        pn_status st = add_metadata_json(w, root, path, err);
        if (st != PN_OK) {
            json_decref(root);
            return st;
        }
    }
    *out = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(root);
    return *out ? PN_OK : pn_fail(err, PN_ENOMEM, "%s: out of memory for the header", path);
}

static int write_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Writes length prefix, space-padded header and the tensor bytes to fd. */
static int write_contents(int fd, const pn_st_writer *w, const char *header)
{
    size_t len = strlen(header);
    size_t padded = (len + 7) / 8 * 8;
    uint8_t prefix[8];
    pn_st_store_le64(prefix, padded);
    static const char spaces[8] = "        ";
    if (write_all(fd, prefix, 8) != 0 || write_all(fd, header, len) != 0 ||
        write_all(fd, spaces, padded - len) != 0)
        return -1;
    for (size_t i = 0; i < w->count; i++)
        if (write_all(fd, w->tensors[i].data, w->tensors[i].nbytes) != 0)
            return -1;
    return 0;
}

/* Makes the rename durable. Best effort: the file itself is already complete
 * and in place, so a failure here is not worth reporting as a failed save. */
static void sync_parent_dir(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash == path ? 1 : slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

static pn_status write_atomically(const pn_st_writer *w, const char *header, const char *path,
                                  pn_error *err)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return pn_fail(err, PN_EINVAL, "%s: path too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return pn_fail(err, PN_EIO, "%s: cannot create %s: %s", path, tmp, strerror(errno));
    const char *step = NULL;
    int saved = 0;
    if (write_contents(fd, w, header) != 0)
        step = "write";
    else if (fsync(fd) != 0)
        step = "fsync";
    if (step)
        saved = errno;
    if (close(fd) != 0 && !step) {
        step = "close";
        saved = errno;
    }
    if (!step && rename(tmp, path) != 0) {
        step = "rename";
        saved = errno;
    }
    if (step) {
        unlink(tmp);
        return pn_fail(err, PN_EIO, "%s: %s failed: %s", path, step, strerror(saved));
    }
    sync_parent_dir(path);
    return PN_OK;
}

pn_status pn_st_writer_save(pn_st_writer *w, const char *path, pn_error *err)
{
    if (w->count > 1) /* qsort must not see the NULL array of an empty writer */
        qsort(w->tensors, w->count, sizeof *w->tensors, compare_writer_tensors);
    char *header;
    pn_status st = header_text(w, path, &header, err);
    if (st != PN_OK)
        return st;
    st = write_atomically(w, header, path, err);
    free(header);
    return st;
}
