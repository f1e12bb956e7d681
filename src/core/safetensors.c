#include "pneumo/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pneumo/tensor.h"

/* Tensor bytes are used in place, so the host must match the file's byte order. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors data is little-endian");

#define MAX_HEADER_BYTES ((uint64_t)100 << 20)
#define MAX_FILE_BYTES ((uint64_t)4 << 30)
#define DATA_ALIGN 64
/* Names are user-controlled and may be long: cap them in messages so the reason stays visible. */
#define NAME_FMT "\"%.100s\""

static const struct {
    const char *name;
    size_t size;
} dtype_table[] = {
    [PN_ST_F32] = {"F32", 4}, [PN_ST_BF16] = {"BF16", 2}, [PN_ST_F16] = {"F16", 2},
    [PN_ST_F64] = {"F64", 8}, [PN_ST_I64] = {"I64", 8},   [PN_ST_I32] = {"I32", 4},
    [PN_ST_U8] = {"U8", 1},   [PN_ST_I8] = {"I8", 1},     [PN_ST_BOOL] = {"BOOL", 1},
};
#define DTYPE_COUNT (sizeof dtype_table / sizeof dtype_table[0])

const char *pn_st_dtype_name(pn_st_dtype t)
{
    return (unsigned)t < DTYPE_COUNT ? dtype_table[t].name : "?";
}

size_t pn_st_dtype_size(pn_st_dtype t)
{
    return (unsigned)t < DTYPE_COUNT ? dtype_table[t].size : 0;
}

static int dtype_from_name(const char *name, pn_st_dtype *out)
{
    for (size_t i = 0; i < DTYPE_COUNT; i++) {
        if (strcmp(dtype_table[i].name, name) == 0) {
            *out = (pn_st_dtype)i;
            return 1;
        }
    }
    return 0;
}

/* numel and byte size of a shape; 0 when a dimension is negative or the
 * product overflows size_t. */
static int shape_size(int ndim, const int64_t *shape, size_t elem_size, size_t *numel,
                      size_t *nbytes)
{
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return 0;
        if ((uint64_t)shape[i] > SIZE_MAX)
            return 0;
        size_t d = (size_t)shape[i];
        if (d != 0 && n > SIZE_MAX / d)
            return 0;
        n *= d;
    }
    if (elem_size != 0 && n > SIZE_MAX / elem_size)
        return 0;
    *numel = n;
    *nbytes = n * elem_size;
    return 1;
}

/* ------------------------------------------------------------------ reader */

struct meta_entry {
    char *key, *value;
};

struct pn_st_file {
    uint8_t *storage;    /* one allocation holding the file copy */
    const uint8_t *data; /* start of the data buffer inside storage */
    size_t data_size;
    pn_st_tensor *tensors;
    size_t count;
    struct meta_entry *meta; /* sorted by key */
    size_t meta_count;
};

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

static uint64_t load_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void store_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static pn_status check_sizes(const uint8_t *first8, uint64_t file_size, const char *label,
                             uint64_t *header_len, pn_error *err)
{
    if (file_size < 8)
        return pn_fail(err, PN_EFORMAT,
                       "%s: file is %llu bytes, too short for the 8-byte header length", label,
                       (unsigned long long)file_size);
    if (file_size > MAX_FILE_BYTES)
        return pn_fail(err, PN_ELIMIT, "%s: file is %llu bytes, more than the 4 GiB limit", label,
                       (unsigned long long)file_size);
    uint64_t n = load_le64(first8);
    if (n > MAX_HEADER_BYTES)
        return pn_fail(err, PN_ELIMIT, "%s: header length %llu exceeds the 100 MB limit", label,
                       (unsigned long long)n);
    if (n > file_size - 8)
        return pn_fail(err, PN_EFORMAT, "%s: header length %llu exceeds the file size (%llu bytes)",
                       label, (unsigned long long)n, (unsigned long long)file_size);
    *header_len = n;
    return PN_OK;
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

static pn_status fail_tensor(pn_error *err, pn_status code, const char *label, const char *name,
                             const char *reason)
{
    return pn_fail(err, code, "%s: tensor " NAME_FMT ": %s", label, name, reason);
}

static pn_status parse_dtype(json_t *entry, const char *label, const char *name, pn_st_tensor *t,
                             pn_error *err)
{
    json_t *dtype = json_object_get(entry, "dtype");
    if (!dtype)
        return fail_tensor(err, PN_EFORMAT, label, name, "missing \"dtype\"");
    if (!json_is_string(dtype))
        return fail_tensor(err, PN_EFORMAT, label, name, "\"dtype\" is not a string");
    if (!dtype_from_name(json_string_value(dtype), &t->dtype))
        return pn_fail(err, PN_EUNSUPPORTED, "%s: tensor " NAME_FMT ": unsupported dtype \"%.20s\"",
                       label, name, json_string_value(dtype));
    return PN_OK;
}

static pn_status parse_shape(json_t *entry, const char *label, const char *name, pn_st_tensor *t,
                             pn_error *err)
{
    json_t *shape = json_object_get(entry, "shape");
    if (!shape)
        return fail_tensor(err, PN_EFORMAT, label, name, "missing \"shape\"");
    if (!json_is_array(shape))
        return fail_tensor(err, PN_EFORMAT, label, name, "\"shape\" is not an array");
    size_t ndim = json_array_size(shape);
    if (ndim > PN_ST_MAX_DIMS)
        return pn_fail(err, PN_EUNSUPPORTED, "%s: tensor " NAME_FMT ": %zu dimensions, at most %d supported",
                       label, name, ndim, PN_ST_MAX_DIMS);
    t->ndim = (int)ndim;
    for (size_t i = 0; i < ndim; i++) {
        json_t *dim = json_array_get(shape, i);
        if (!json_is_integer(dim) || json_integer_value(dim) < 0)
            return pn_fail(err, PN_EFORMAT, "%s: tensor " NAME_FMT ": dimension %zu is not a non-negative integer",
                           label, name, i);
        t->shape[i] = json_integer_value(dim);
    }
    if (!shape_size(t->ndim, t->shape, pn_st_dtype_size(t->dtype), &t->numel, &t->nbytes))
        return fail_tensor(err, PN_EFORMAT, label, name, "shape x dtype size overflows");
    return PN_OK;
}

/* Reads data_offsets into [begin, end) and checks them against the buffer and the shape. */
static pn_status parse_offsets(json_t *entry, const char *label, const char *name,
                               size_t data_size, size_t *begin, pn_st_tensor *t, pn_error *err)
{
    json_t *offsets = json_object_get(entry, "data_offsets");
    if (!offsets)
        return fail_tensor(err, PN_EFORMAT, label, name, "missing \"data_offsets\"");
    json_t *b = json_array_get(offsets, 0), *e = json_array_get(offsets, 1);
    if (!json_is_array(offsets) || json_array_size(offsets) != 2 || !json_is_integer(b) ||
        !json_is_integer(e) || json_integer_value(b) < 0 || json_integer_value(e) < 0)
        return fail_tensor(err, PN_EFORMAT, label, name,
                           "\"data_offsets\" is not [begin, end] with non-negative integers");
    uint64_t bv = (uint64_t)json_integer_value(b), ev = (uint64_t)json_integer_value(e);
    if (ev < bv)
        return pn_fail(err, PN_EFORMAT, "%s: tensor " NAME_FMT ": data_offsets end %llu < begin %llu",
                       label, name, (unsigned long long)ev, (unsigned long long)bv);
    if (ev > data_size)
        return pn_fail(err, PN_EFORMAT,
                       "%s: tensor " NAME_FMT ": data_offsets end %llu is beyond the %zu-byte data buffer",
                       label, name, (unsigned long long)ev, data_size);
    if (ev - bv != t->nbytes)
        return pn_fail(err, PN_EFORMAT,
                       "%s: tensor " NAME_FMT ": data_offsets span %llu bytes but shape x %s needs %zu",
                       label, name, (unsigned long long)(ev - bv), pn_st_dtype_name(t->dtype),
                       t->nbytes);
    *begin = (size_t)bv;
    return PN_OK;
}

static pn_status parse_tensor(pn_st_file *f, const char *label, const char *name, json_t *entry,
                              pn_st_tensor *t, pn_error *err)
{
    if (!json_is_object(entry))
        return fail_tensor(err, PN_EFORMAT, label, name, "entry is not a JSON object");
    size_t begin = 0;
    pn_status st = parse_dtype(entry, label, name, t, err);
    if (st == PN_OK)
        st = parse_shape(entry, label, name, t, err);
    if (st == PN_OK)
        st = parse_offsets(entry, label, name, f->data_size, &begin, t, err);
    if (st != PN_OK)
        return st;
    t->data = f->data + begin;
    t->name = strdup(name);
    if (!t->name)
        return pn_fail(err, PN_ENOMEM, "%s: out of memory", label);
    return PN_OK;
}

static int compare_meta_keys(const void *a, const void *b)
{
    return strcmp(((const struct meta_entry *)a)->key, ((const struct meta_entry *)b)->key);
}

static pn_status parse_metadata(pn_st_file *f, const char *label, json_t *meta, pn_error *err)
{
    if (!json_is_object(meta))
        return pn_fail(err, PN_EFORMAT, "%s: __metadata__ is not a JSON object", label);
    size_t n = json_object_size(meta);
    f->meta = calloc(n ? n : 1, sizeof *f->meta);
    if (!f->meta)
        return pn_fail(err, PN_ENOMEM, "%s: out of memory", label);
    const char *key;
    json_t *value;
    json_object_foreach(meta, key, value) {
        if (!json_is_string(value))
            return pn_fail(err, PN_EFORMAT, "%s: __metadata__ value for " NAME_FMT " is not a string",
                           label, key);
        struct meta_entry *e = &f->meta[f->meta_count++];
        e->key = strdup(key);
        e->value = strdup(json_string_value(value));
        if (!e->key || !e->value)
            return pn_fail(err, PN_ENOMEM, "%s: out of memory", label);
    }
    qsort(f->meta, f->meta_count, sizeof *f->meta, compare_meta_keys);
    return PN_OK;
}

static int compare_by_offset(const void *a, const void *b)
{
    const pn_st_tensor *x = a, *y = b;
    if (x->data != y->data)
        return (const uint8_t *)x->data < (const uint8_t *)y->data ? -1 : 1;
    if (x->nbytes != y->nbytes)
        return x->nbytes < y->nbytes ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* The tensors must tile the data buffer exactly: no overlaps, no holes, no
 * trailing bytes (as the reference implementation requires). */
static pn_status check_coverage(pn_st_file *f, const char *label, pn_error *err)
{
    qsort(f->tensors, f->count, sizeof *f->tensors, compare_by_offset);
    size_t expected = 0;
    for (size_t i = 0; i < f->count; i++) {
        const pn_st_tensor *t = &f->tensors[i];
        size_t begin = (size_t)((const uint8_t *)t->data - f->data);
        if (begin < expected)
            return pn_fail(err, PN_EFORMAT, "%s: tensor " NAME_FMT " overlaps tensor " NAME_FMT,
                           label, t->name, f->tensors[i - 1].name);
        if (begin > expected)
            return pn_fail(err, PN_EFORMAT, "%s: %zu unused bytes in the data buffer before tensor " NAME_FMT,
                           label, begin - expected, t->name);
        expected = begin + t->nbytes;
    }
    if (expected != f->data_size)
        return pn_fail(err, PN_EFORMAT, "%s: %zu unused bytes at the end of the data buffer", label,
                       f->data_size - expected);
    return PN_OK;
}

static pn_status parse_entries(pn_st_file *f, const char *label, json_t *root, pn_error *err)
{
    size_t n = json_object_size(root);
    f->tensors = calloc(n ? n : 1, sizeof *f->tensors);
    if (!f->tensors)
        return pn_fail(err, PN_ENOMEM, "%s: out of memory", label);
    const char *key;
    json_t *value;
    json_object_foreach(root, key, value) {
        pn_status st;
        if (strcmp(key, "__metadata__") == 0) {
            st = parse_metadata(f, label, value, err);
        } else {
            st = parse_tensor(f, label, key, value, &f->tensors[f->count], err);
            if (st == PN_OK)
                f->count++;
        }
        if (st != PN_OK)
            return st;
    }
    return check_coverage(f, label, err);
}

static pn_status parse_header(pn_st_file *f, const uint8_t *file_bytes, size_t header_len,
                              const char *label, pn_error *err)
{
    json_error_t jerr;
    /* The parser rejects duplicate names; DECODE_ANY lets a non-object header
     * get the clearer "not a JSON object" message below. */
    json_t *root = json_loadb((const char *)file_bytes + 8, header_len,
                         JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!root)
        return pn_fail(err, PN_EFORMAT, "%s: header is not valid JSON: %s (at byte %d of the header)",
                       label, jerr.text, jerr.position);
    pn_status st = json_is_object(root)
                       ? parse_entries(f, label, root, err)
                       : pn_fail(err, PN_EFORMAT, "%s: header is not a JSON object", label);
    json_decref(root);
    return st;
}

/* Takes the file bytes already placed in f's storage and parses them. */
static pn_status finish_open(pn_st_file *f, const uint8_t *file_bytes, uint64_t header_len,
                             const char *label, pn_st_file **out, pn_error *err)
{
    pn_status st = parse_header(f, file_bytes, (size_t)header_len, label, err);
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
    pn_status st = check_sizes(bytes, size, label, &header_len, err);
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
        st = check_sizes(first8, size, path, &header_len, err);
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
        bsearch(&probe, f->meta, f->meta_count, sizeof *f->meta, compare_meta_keys);
    return found ? found->value : NULL;
}

size_t pn_st_metadata_count(const pn_st_file *f) { return f->meta_count; }

const char *pn_st_metadata_key(const pn_st_file *f, size_t i)
{
    return i < f->meta_count ? f->meta[i].key : NULL;
}

/* --------------------------------------------------------- float conversion */

/* IEEE half to float, exact for every half value (subnormals, inf, NaN payload). */
static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu;
    if (exponent == 0) {
        float magnitude = ldexpf((float)mantissa, -24);
        return sign ? -magnitude : magnitude;
    }
    uint32_t bits = exponent == 31 ? sign | 0x7f800000u | mantissa << 13
                                   : sign | (exponent + 112) << 23 | mantissa << 13;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* Explicit saturation: an out-of-range double-to-float conversion is undefined in C. */
static float double_to_float(double d)
{
    if (d > FLT_MAX)
        return INFINITY;
    if (d < -FLT_MAX)
        return -INFINITY;
    return (float)d;
}

pn_status pn_st_to_f32(const pn_st_tensor *t, float *dst, pn_error *err)
{
    const uint8_t *src = t->data;
    switch (t->dtype) {
    case PN_ST_F32:
        if (t->numel)
            memcpy(dst, src, t->numel * 4);
        return PN_OK;
    case PN_ST_BF16:
    case PN_ST_F16:
        for (size_t i = 0; i < t->numel; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            dst[i] = t->dtype == PN_ST_BF16 ? pn_bf16_to_f32(h) : half_to_float(h);
        }
        return PN_OK;
    case PN_ST_F64:
        for (size_t i = 0; i < t->numel; i++) {
            double d;
            memcpy(&d, src + 8 * i, 8);
            dst[i] = double_to_float(d);
        }
        return PN_OK;
    default:
        return pn_fail(err, PN_EINVAL, "tensor " NAME_FMT " is %s, not a floating-point dtype",
                       t->name, pn_st_dtype_name(t->dtype));
    }
}

/* ------------------------------------------------------------------ writer */

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
    if ((unsigned)dtype >= DTYPE_COUNT)
        return pn_fail(err, PN_EINVAL, "safetensors writer: tensor " NAME_FMT ": invalid dtype %d",
                       name, (int)dtype);
    if (ndim < 0 || ndim > PN_ST_MAX_DIMS || (ndim > 0 && !shape))
        return pn_fail(err, PN_EINVAL, "safetensors writer: tensor " NAME_FMT ": bad rank %d", name,
                       ndim);
    if (!shape_size(ndim, shape, pn_st_dtype_size(dtype), numel, nbytes))
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
    store_le64(prefix, padded);
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
