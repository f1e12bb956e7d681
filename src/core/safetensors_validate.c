/* safetensors validation: every size, dtype, shape, offset and metadata
 * value of an untrusted header is checked before a tensor is handed out
 * (tensors must tile the data buffer exactly, without gaps or overlaps). */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/safetensors_internal.h"

pn_status pn_st_check_sizes(const uint8_t *first8, uint64_t file_size, const char *label, uint64_t *header_len,
                            pn_error *err)
{
    if (file_size < 8)
        return pn_fail(err, PN_EFORMAT,
                       "%s: file is %llu bytes, too short for the 8-byte header length", label,
                       (unsigned long long)file_size);
    if (file_size > MAX_FILE_BYTES)
        return pn_fail(err, PN_ELIMIT, "%s: file is %llu bytes, more than the 4 GiB limit", label,
                       (unsigned long long)file_size);
    uint64_t n = pn_st_load_le64(first8);
    if (n > MAX_HEADER_BYTES)
        return pn_fail(err, PN_ELIMIT, "%s: header length %llu exceeds the 100 MB limit", label,
                       (unsigned long long)n);
    if (n > file_size - 8)
        return pn_fail(err, PN_EFORMAT, "%s: header length %llu exceeds the file size (%llu bytes)",
                       label, (unsigned long long)n, (unsigned long long)file_size);
    *header_len = n;
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
    if (!pn_st_dtype_from_name(json_string_value(dtype), &t->dtype))
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
    if (!pn_st_shape_size(t->ndim, t->shape, pn_st_dtype_size(t->dtype), &t->numel, &t->nbytes))
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
    qsort(f->meta, f->meta_count, sizeof *f->meta, pn_st_compare_meta_keys);
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

pn_status pn_st_parse_header(pn_st_file *f, const uint8_t *file_bytes, size_t header_len, const char *label,
                             pn_error *err)
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
