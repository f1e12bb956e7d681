/* Internals shared by the safetensors reader, validator and writer. */
#ifndef PNEUMO_CORE_SAFETENSORS_INTERNAL_H
#define PNEUMO_CORE_SAFETENSORS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "pneumo/safetensors.h"

/* Tensor bytes are used in place, so the host must match the file's byte order. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors data is little-endian");

#define MAX_HEADER_BYTES ((uint64_t)100 << 20)
#define MAX_FILE_BYTES ((uint64_t)4 << 30)
#define DATA_ALIGN 64
/* Names are user-controlled and may be long: cap them in messages so the reason stays visible. */
#define NAME_FMT "\"%.100s\""

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

/* Orders metadata entries by key (sorted at parse time, searched by pn_st_metadata). */
static inline int pn_st_compare_meta_keys(const void *a, const void *b)
{
    return strcmp(((const struct meta_entry *)a)->key, ((const struct meta_entry *)b)->key);
}

static inline uint64_t pn_st_load_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static inline void pn_st_store_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* dtypes (safetensors_dtype.c) */
int pn_st_dtype_known(pn_st_dtype t);
int pn_st_dtype_from_name(const char *name, pn_st_dtype *out);
/* numel and byte size of a shape; 0 when a dimension is negative or the
 * product overflows size_t. */
int pn_st_shape_size(int ndim, const int64_t *shape, size_t elem_size, size_t *numel, size_t *nbytes);

/* validation (safetensors_validate.c) */
/* The header length from the first 8 bytes, checked against the file size and limits. */
pn_status pn_st_check_sizes(const uint8_t *first8, uint64_t file_size, const char *label, uint64_t *header_len,
                            pn_error *err);
/* Parses and validates the JSON header of the file bytes into f's tensors and metadata. */
pn_status pn_st_parse_header(pn_st_file *f, const uint8_t *file_bytes, size_t header_len, const char *label,
                             pn_error *err);

#endif
