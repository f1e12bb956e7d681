/* Helpers shared by the data module's source files (not public API). */
#ifndef PNEUMO_DATA_INTERNAL_H
#define PNEUMO_DATA_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "pneumo/data.h"

/* Decoders for one format; data is complete file content, name for messages. */
pn_status pn_decode_jpeg(const uint8_t *data, size_t size, const char *name, int min_w,
                         int min_h, pn_image *out, pn_error *err);
/* A non-interlaced PNG at least twice min_w x min_h is streamed row by row
 * into an integer box down-scale, so memory follows the width, not the
 * height; out->src_w/src_h keep the stored size. */
pn_status pn_decode_png(const uint8_t *data, size_t size, const char *name, int min_w, int min_h,
                        pn_image *out, pn_error *err);
pn_status pn_probe_jpeg(const uint8_t *data, size_t size, const char *name, pn_image_info *info,
                        pn_error *err);
pn_status pn_probe_png(const uint8_t *data, size_t size, const char *name, pn_image_info *info,
                       pn_error *err);

/* Whether d starts like a DICOM data set without preamble and meta header:
 * a first element in group 0002 (meta) or 0008 (identification), little
 * endian (explicit or implicit VR) or big endian. */
int pn_dicom_bare_dataset(const uint8_t *d, size_t n);

/* Interleaved RGB (stride 3 bytes per pixel) to BT.601 luminance; returns the
 * is_color verdict documented on pn_image. */
int pn_rgb_to_gray(const uint8_t *rgb, size_t n_pixels, uint8_t *gray);
/* The same for part of an image: returns how many pixels were coloured;
 * pn_is_color turns a whole image's count into the verdict. */
size_t pn_rgb_to_gray_count(const uint8_t *rgb, size_t n_pixels, uint8_t *gray);
int pn_is_color(size_t colored, size_t n_pixels);

/* EXIF orientation (1..8) found in an APP1 "Exif" payload, 1 if absent. */
int pn_exif_orientation(const uint8_t *app1, size_t size);

/* Applies EXIF orientation o to img (may swap w and h). */
pn_status pn_image_orient(pn_image *img, int o, pn_error *err);

/* Reads a whole file (refuses files over 1 GiB). */
pn_status pn_read_file(const char *path, uint8_t **data, size_t *size, pn_error *err);

/* Separable resampling of a plane into dst (dw x dh): area average along a
 * shrinking axis, bilinear along a growing one. */
pn_status pn_resample(const uint8_t *src, int sw, int sh, int sstride, uint8_t *dst, int dw,
                      int dh, int dstride, pn_error *err);

/* The samples a scan or a manifest collects before they become a dataset. */
typedef struct pn_sample_list {
    pn_sample *s;
    size_t n, cap;
} pn_sample_list;

/* Subtype argument of pn_sample_list_add: parse it from the file name. */
#define PN_SUBTYPE_FROM_NAME (-2)

/* Appends one sample for the regular file path (st: its stat). patient NULL:
 * parsed from the file name (pn_patient_id); subtype PN_SUBTYPE_FROM_NAME:
 * pn_subtype_from_name. On failure the list keeps what it had. */
pn_status pn_sample_list_add(pn_sample_list *l, const char *path, const char *split, int label,
                             int subtype, const char *patient, const struct stat *st, pn_error *err);
void pn_sample_list_free(pn_sample_list *l);

/* Turns the list into ds (which takes its samples): sorted by split then
 * path, every file read once and hashed, patients and byte-identical files
 * grouped. `what` names the source in messages. On failure ds is empty. */
pn_status pn_dataset_finish(pn_sample_list *l, const char *what, pn_dataset *ds, pn_error *err);

/* 64-bit hash of a byte string (FNV-1a over 8-byte words, then mixed). */
uint64_t pn_hash_bytes(const void *data, size_t n);
/* splitmix64 step: deterministic stream from one 64-bit state. */
uint64_t pn_splitmix64(uint64_t *state);
/* Uniform double in [0, 1). */
double pn_rand_unit(uint64_t *state);

#endif
