/* safetensors files: 8-byte little-endian header length, a JSON header
 * {"name": {"dtype","shape","data_offsets"}, "__metadata__": {str: str}},
 * then the raw little-endian tensor bytes.
 *
 * The reader validates the whole header before anything is used: offsets in
 * bounds, contiguous and non-overlapping, sizes equal to shape x dtype, no
 * duplicate names, shapes with non-negative dims; errors name the file.
 * Only little-endian hosts are supported (checked at compile time). */
#ifndef PNEUMO_SAFETENSORS_H
#define PNEUMO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "pneumo/error.h"

#define PN_ST_MAX_DIMS 8

typedef enum pn_st_dtype {
    PN_ST_F32, PN_ST_BF16, PN_ST_F16, PN_ST_F64, PN_ST_I64, PN_ST_I32, PN_ST_U8, PN_ST_I8, PN_ST_BOOL
} pn_st_dtype;

typedef struct pn_st_tensor {
    const char *name;
    pn_st_dtype dtype;
    int ndim;
    int64_t shape[PN_ST_MAX_DIMS];
    size_t numel;
    const void *data; /* points into the loaded file; little-endian */
    size_t nbytes;
} pn_st_tensor;

typedef struct pn_st_file pn_st_file;

/* Reads the whole file into memory (limit 4 GiB, header limit 100 MB). The
 * data buffer starts 64-byte aligned in memory, so a tensor's data is aligned
 * for its dtype when its offset is a multiple of the dtype size (always so for
 * F32/BF16-only files like ours); pn_st_to_f32 copes with any alignment. */
pn_status pn_st_open(const char *path, pn_st_file **out, pn_error *err);
/* Parses an in-memory copy (the buffer is copied); label names it in errors. */
pn_status pn_st_open_memory(const void *bytes, size_t size, const char *label,
                            pn_st_file **out, pn_error *err);
void pn_st_close(pn_st_file *f);

/* Tensors are indexed in data-buffer order (the order of their bytes in the file). */
size_t pn_st_count(const pn_st_file *f);
const pn_st_tensor *pn_st_get(const pn_st_file *f, size_t i);
/* pn_st_find and pn_st_metadata return NULL when absent. Metadata keys are
 * indexed in sorted (strcmp) order. */
const pn_st_tensor *pn_st_find(const pn_st_file *f, const char *name);
const char *pn_st_metadata(const pn_st_file *f, const char *key);
size_t pn_st_metadata_count(const pn_st_file *f);
const char *pn_st_metadata_key(const pn_st_file *f, size_t i);

/* Converts a floating tensor (F32, BF16, F16, F64) to float32 into dst (numel
 * floats); other dtypes fail with PN_EINVAL. F64 beyond float range becomes inf. */
pn_status pn_st_to_f32(const pn_st_tensor *t, float *dst, pn_error *err);

/* "F32", "BF16", ...; "?" and 0 for values outside the enum. */
const char *pn_st_dtype_name(pn_st_dtype t);
size_t pn_st_dtype_size(pn_st_dtype t);

/* Writer: collect tensors (data is copied) and metadata, then write the file
 * atomically (<path>.tmp.<pid> in the same directory + fsync + rename).
 * The file lists tensors and metadata sorted by name, data contiguous in name
 * order, header space-padded to a multiple of 8 bytes. Adding a name twice or
 * the reserved name "__metadata__" fails with PN_EINVAL; setting a metadata
 * key again replaces its value. A writer can be saved more than once. */
typedef struct pn_st_writer pn_st_writer;

pn_status pn_st_writer_create(pn_st_writer **out, pn_error *err);
void pn_st_writer_destroy(pn_st_writer *w);
pn_status pn_st_writer_add(pn_st_writer *w, const char *name, pn_st_dtype dtype, int ndim,
                           const int64_t *shape, const void *data, pn_error *err);
/* Adds float32 data stored as dtype (PN_ST_F32 or PN_ST_BF16, rounded to nearest even). */
pn_status pn_st_writer_add_f32(pn_st_writer *w, const char *name, pn_st_dtype dtype, int ndim,
                               const int64_t *shape, const float *data, pn_error *err);
pn_status pn_st_writer_set_metadata(pn_st_writer *w, const char *key, const char *value,
                                    pn_error *err);
pn_status pn_st_writer_save(pn_st_writer *w, const char *path, pn_error *err);

#endif
