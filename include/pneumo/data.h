/* Data pipeline: image decoding, datasets, patient-wise splits, preprocessing,
 * a memory-mapped decode cache, augmentation and a prefetching batch loader.
 *
 * Typical training flow:
 *   pn_dataset_scan(dir)            -> every image with label, subtype, patient
 *   pn_dataset_split(ds, "train")   -> patient-wise stratified train/val indices
 *   (or pn_manifest_read(file.csv); pn_dataset_load picks by the path)
 *   pn_cache_ensure(path, ds, 224)  -> decoded once, uint8 size x size per image, sharded
 *   pn_loader_create(cache, train idx, {augment, shuffle}) -> float NHWC batches
 *   pn_loader_create(cache, val idx,   {no augment, no shuffle})
 *
 * Pixels are always one 8-bit grayscale plane, row-major, stride = width. */
#ifndef PNEUMO_DATA_H
#define PNEUMO_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "pneumo/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- images */

/* Decompression-bomb guard: headers announcing more pixels are refused before
 * anything is allocated. */
#define PN_IMAGE_MAX_PIXELS (100u * 1000u * 1000u)
/* Warnings a decoder can attach to an image (see pn_image.notes). */
#define PN_IMAGE_MAX_NOTES 5

typedef struct pn_image {
    int w, h;
    uint8_t *pixels;  /* w * h bytes, malloc'ed; pn_image_free releases it */
    /* 1 when the source had real colour: more than 0.5% of pixels have two
     * channels differing by more than 12 levels (so a 3-component JPEG of a
     * gray X-ray, whose chroma is only compression noise, stays 0). */
    int is_color;
    int orientation;  /* EXIF orientation that was applied (1 = none) */
    int src_w, src_h; /* the stored image's size (oriented), before any DCT down-scaling */
    /* What the decoder wants said with every prediction on this image, e.g.
     * "multi-frame DICOM: only the first frame was used" (never patient data). */
    int n_notes;
    char notes[PN_IMAGE_MAX_NOTES][160];
    /* Set by the DICOM decoder when the file's own header says it is not a
     * chest radiograph (a Modality such as CT, MR or US, or a
     * BodyPartExamined naming another body part): the reason, which the
     * out-of-distribution gate gives when it refuses the image
     * (docs/ood.md); "" otherwise. */
    char not_chest[96];
} pn_image;

/* Decodes JPEG (libjpeg-turbo), PNG (libpng) or DICOM (DCMTK); the format is
 * sniffed from the magic bytes, never from the name. Colour becomes BT.601
 * luminance, EXIF orientation is applied, alpha is dropped. 16-bit PNG and
 * DICOM are mapped to 8 bits as docs/input-formats.md describes. When min_w/min_h > 0 a JPEG is
 * decoded with DCT scaling at the smallest scale whose (oriented) output is
 * still >= min_w x min_h, and a non-interlaced PNG at least twice that size
 * is read row by row into the largest integer f x f box average that still
 * covers it (a 16-bit one in two passes, the first finding the range its
 * 8-bit mapping needs), which makes huge images cheap to shrink later
 * (src_w/src_h keep the stored size). DICOM is always rendered whole.
 * name is only used in error messages. Truncated or corrupt data, libjpeg
 * warnings included, is an error (PN_EFORMAT); PN_ELIMIT above
 * PN_IMAGE_MAX_PIXELS; PN_EUNSUPPORTED for other recognised formats. */
pn_status pn_image_decode_memory(const void *data, size_t size, const char *name,
                                 int min_w, int min_h, pn_image *out, pn_error *err);
pn_status pn_image_decode_file(const char *path, int min_w, int min_h, pn_image *out,
                               pn_error *err);

/* What decoding an image would cost, read from its header alone (no pixel
 * is decoded; a DICOM's data set is parsed, its pixels not rendered): stored
 * size, bits per sample and samples per pixel. */
typedef struct pn_image_info {
    const char *format;  /* "JPEG", "PNG" or "DICOM" */
    int w, h;
    int bit_depth;       /* 8 or 12 (JPEG); 1..16 (PNG); Bits Stored (DICOM) */
    int channels;        /* as stored: 1 gray, 2 gray+alpha, 3 colour, 4 colour+alpha or CMYK */
} pn_image_info;
/* Errors as pn_image_decode_memory's for the same bytes' header. */
pn_status pn_image_probe(const void *data, size_t size, const char *name, pn_image_info *info,
                         pn_error *err);
void pn_image_free(pn_image *img);

/* The format pn_image_decode_memory would decode these bytes as, from the
 * magic bytes alone (DICOM with or without the 128-byte preamble). */
typedef enum pn_image_format {
    PN_FORMAT_UNKNOWN = 0,
    PN_FORMAT_JPEG,
    PN_FORMAT_PNG,
    PN_FORMAT_DICOM
} pn_image_format;
pn_image_format pn_image_sniff(const void *data, size_t size);

/* Writes an 8-bit grayscale PNG. */
pn_status pn_image_write_png(const char *path, const pn_image *img, pn_error *err);

/* ---------------------------------------------------------- preprocessing */

typedef enum pn_resize_mode {
    PN_RESIZE_SQUASH = 0,   /* stretch to w x h, aspect ratio not kept */
    PN_RESIZE_LETTERBOX = 1 /* fit inside w x h keeping aspect, pad with black */
} pn_resize_mode;

/* Resizes to w x h: area averaging along an axis that shrinks, bilinear along
 * one that grows (so there is no aliasing either way). dst gets new pixels. */
pn_status pn_image_resize(const pn_image *src, int w, int h, pn_resize_mode mode,
                          pn_image *dst, pn_error *err);

/* Contrast-limited tiled histogram equalisation (CLAHE), in place: tiles x
 * tiles histograms clipped at clip_limit times the mean bin height, pixels
 * mapped by bilinear interpolation between the four nearest tile mappings.
 * Typical: tiles 8, clip_limit 2.0. */
pn_status pn_image_clahe(pn_image *img, int tiles, float clip_limit, pn_error *err);
/* The parameters training and inference use when a model asks for CLAHE. */
#define PN_CLAHE_TILES 8
#define PN_CLAHE_CLIP 2.0f

/* (x / 255 - mean[c]) / std[c] for channels 1 or 3 (gray replicated). */
typedef struct pn_norm {
    int channels;
    float mean[3], std[3];
} pn_norm;

/* mean 0.5 / std 0.5 for the given channel count; ImageNet values for 3
 * channels are {0.485,0.456,0.406} / {0.229,0.224,0.225} if a pretrained
 * backbone wants them. */
pn_norm pn_norm_default(int channels);

/* Writes w*h*channels float32 values, NHWC order (one image). */
pn_status pn_normalize(const uint8_t *plane, int w, int h, const pn_norm *norm, float *out,
                       pn_error *err);

/* --------------------------------------------------------------- datasets */

enum { PN_CLASS_NORMAL = 0, PN_CLASS_PNEUMONIA = 1 };
enum { PN_SUBTYPE_UNKNOWN = -1, PN_SUBTYPE_NORMAL = 0, PN_SUBTYPE_BACTERIA = 1, PN_SUBTYPE_VIRUS = 2 };

typedef struct pn_sample {
    char *path;      /* root-joined file path */
    char *split;     /* "train", "val", ... (folder or manifest column); "" for a single split */
    int label;       /* PN_CLASS_* from the class folder name or the manifest label */
    int subtype;     /* PN_SUBTYPE_*; pneumonia without bacteria/virus in the name: UNKNOWN */
    char *patient;   /* manifest patient_id, else "person12", "IM-0115", "NORMAL2-IM-0568", else the file stem */
    int patient_known; /* 1: from the manifest or a known file-name pattern; 0: the stem stands in */
    int64_t bytes;   /* file size and modification time (ns), for cache staleness */
    int64_t mtime_ns;
    uint64_t hash;   /* 64-bit FNV-1a-style hash of the file bytes (duplicate detection) */
    int group;       /* patients joined with their byte-identical duplicates; splits never cut a group */
} pn_sample;

typedef struct pn_dataset {
    pn_sample *samples;  /* sorted by split then path, so order never depends on readdir */
    size_t n;
    int n_groups;
} pn_dataset;

/* Scans <root>/<split>/<CLASS>/<file> or <root>/<CLASS>/<file> (CLASS = NORMAL or
 * PNEUMONIA, case-insensitive; other folders and hidden files are ignored)
 * and reads every file once to hash it. Fails if no image file is found. */
pn_status pn_dataset_scan(const char *root, pn_dataset *ds, pn_error *err);
void pn_dataset_free(pn_dataset *ds);

/* Reads a CSV manifest (docs/datasets.md): a header row naming the columns
 * path and label, optionally patient_id and split, in any order (other
 * columns are ignored), then one row per image. RFC 4180 quoting (libcsv,
 * strict); blank lines are skipped; a UTF-8 byte-order mark is allowed.
 * Relative paths are relative to the manifest's folder. Labels,
 * case-insensitive: NORMAL; PNEUMONIA (subtype from the file name, as in a
 * folder); BACTERIAL or BACTERIA; VIRAL or VIRUS. An empty or absent
 * patient_id is parsed from the file name as in a folder. split: train, val
 * or test (case-insensitive), required in every row when the column exists;
 * without the column every sample has split "". Every file is read once to
 * hash it, as pn_dataset_scan does. Errors (PN_EFORMAT, PN_EIO for a file that
 * cannot be read) name the manifest and the line: an unknown label or split,
 * a missing or non-regular file, a file listed twice (by device and inode), a
 * row with more or fewer fields than the header, malformed quoting, a patient
 * id over 255 bytes or holding a comma, quote or line break (never echoed),
 * a path holding a quote or a line break. */
pn_status pn_manifest_read(const char *csv_path, pn_dataset *ds, pn_error *err);
/* Writes ds as a manifest through a temporary file and rename: columns path,
 * label (NORMAL, BACTERIAL, VIRAL, or PNEUMONIA when the subtype is unknown),
 * patient_id (empty when it came from no known file-name pattern) and, when
 * any sample has one, split. A path inside the manifest's folder is written
 * relative to it, any other one absolute (folders resolved, file names kept).
 * Reading it back gives the same dataset. */
pn_status pn_manifest_write(const pn_dataset *ds, const char *csv_path, pn_error *err);
/* 1 when path names a manifest: ends in .csv (any case) and is not a folder. */
int pn_dataset_is_manifest(const char *path);
/* pn_manifest_read for a manifest, pn_dataset_scan otherwise. */
pn_status pn_dataset_load(const char *path, pn_dataset *ds, pn_error *err);

/* Patient id and subtype parsed from a file name (exposed for tests/tools).
 * pn_patient_id returns 1 for a recognised pattern, 0 when the file stem
 * stands in (the image is its own patient). */
int pn_patient_id(const char *filename, char *out, size_t out_size);
int pn_subtype_from_name(const char *filename, int label);

/* Indices into ds->samples. */
typedef struct pn_split {
    size_t *train, *val;
    size_t n_train, n_val;
    size_t n_unknown_patient; /* samples whose file name carries no patient id */
} pn_split;

/* Patient-wise split of the samples of one split folder (NULL = all): whole
 * groups (see pn_sample.group) go to validation, chosen per class in a
 * seeded order, until about val_fraction of each class's images are there.
 * Deterministic for a given dataset and seed. */
pn_status pn_dataset_split(const pn_dataset *ds, const char *split, double val_fraction,
                           uint64_t seed, pn_split *out, pn_error *err);
void pn_split_free(pn_split *s);
/* "patient-wise" when every sample has a patient id from its file name,
 * "image-wise" when none has (each image is its own group, so two images of
 * one patient can land on both sides), "partly patient-wise" otherwise. */
const char *pn_split_kind(const pn_split *s);

/* Patient-wise stratified K-fold assignment of the samples of one split
 * folder (NULL = all): fold[i] in [0, k) for those, -1 for the others
 * (fold has ds->n entries). Whole groups (pn_sample.group: a patient and
 * byte-identical duplicates) stay in one fold; groups are stratified by
 * their majority subtype (normal / bacterial / viral / unknown) and dealt,
 * in a seeded order, to the fold holding the fewest of that stratum.
 * Deterministic for a given dataset, k and seed. */
pn_status pn_dataset_folds(const pn_dataset *ds, const char *split, int k, uint64_t seed, int *fold,
                           pn_error *err);

/* The train/validation rule of `pneumo train`, which `pneumo evaluate
 * --holdout` repeats: the patient-wise split of the "train" split folder when
 * the root has one, else of the flat <root>/{NORMAL,PNEUMONIA} layout (split
 * ""). PN_EINVAL when either side would be empty. */
pn_status pn_dataset_holdout_split(const pn_dataset *ds, double val_fraction, uint64_t seed, pn_split *out,
                                   pn_error *err);
/* The split folder that rule uses: "train" when the root has one, else "". */
const char *pn_dataset_holdout_folder(const pn_dataset *ds);

/* Which images a model held out, as its recipe metadata records it: fold
 * `fold` of the patient-wise `folds`-fold split (pn_dataset_folds of the
 * holdout folder) when folds >= 2 (pneumo cv, train --folds), else the
 * val_fraction split of pn_dataset_holdout_split (pneumo train). */
typedef struct pn_holdout {
    int folds, fold;
    double val_fraction;
    uint64_t seed;
} pn_holdout;
/* The training (out->train) and held-out (out->val) images of that rule: the
 * one function train, evaluate --holdout and ood fit split through.
 * PN_EINVAL when h names no rule or a side would be empty. */
pn_status pn_dataset_holdout(const pn_dataset *ds, const pn_holdout *h, pn_split *out, pn_error *err);
/* The recipe keys that record the rule (val_fraction, seed, and folds/fold
 * when folds >= 2) as a JSON object text (malloc'ed; NULL when out of memory). */
char *pn_holdout_to_json(const pn_holdout *h);
/* Reads those keys from a recipe JSON object text: 1 when it records a rule,
 * 0 (and a zeroed *h) otherwise. */
int pn_holdout_from_json(const char *recipe_json, pn_holdout *h);

/* Indices of samples of one split folder ("" for a single-split layout). */
pn_status pn_dataset_select(const pn_dataset *ds, const char *split, size_t **idx, size_t *n,
                            pn_error *err);

/* Inverse class frequency, scaled so the mean weight over the n samples is 1.
 * Classes without samples get weight 0. labels in [0, n_classes). */
pn_status pn_class_weights(const int *labels, size_t n, int n_classes, float *weights,
                           pn_error *err);

/* ------------------------------------------------------------------ cache */

/* Every dataset image decoded and resized to size x size uint8, in an index
 * file at the cache path and shard files beside it ("<path>.shard0000", ...;
 * layout in src/data/cache_format.h). The index records a format version,
 * size, mode and every source path with byte size and mtime, so the cache is
 * only reused for exactly the same files. Shards are memory-mapped read-only;
 * the pages a process has read are let go after every resident_bytes served,
 * so its memory does not grow with the dataset (the kernel's page cache keeps
 * what fits). Images that failed to decode are kept as black and flagged
 * (pn_cache_ok = 0); the loader skips them. */
typedef struct pn_cache pn_cache;

typedef struct pn_cache_options {
    uint64_t shard_bytes;    /* build: pixel bytes per shard (at least one image); 0 = 256 MiB */
    uint64_t resident_bytes; /* open: pixel bytes served between trims; 0 = 64 MiB; UINT64_MAX = never trim */
    int in_memory;           /* open: read every shard into memory instead (the plain reference path) */
} pn_cache_options;

/* Decodes ds with n_threads OpenMP threads, shard by shard, each shard and
 * then the index written through a temporary file, fsync and rename; shards
 * left by an earlier, larger build are removed. n_failed (may be NULL)
 * receives the number of undecodable files. o may be NULL (defaults). */
pn_status pn_cache_build_with(const char *path, const pn_dataset *ds, int size, pn_resize_mode mode,
                              int n_threads, const pn_cache_options *o, size_t *n_failed, pn_error *err);
pn_status pn_cache_build(const char *path, const pn_dataset *ds, int size, pn_resize_mode mode,
                         int n_threads, size_t *n_failed, pn_error *err);
/* Opens a cache and its shards; when ds is non-NULL it must match ds, size
 * and mode exactly, otherwise PN_EFORMAT with a message starting "stale
 * cache" (also for a missing shard or one from another build). */
pn_status pn_cache_open_with(const char *path, const pn_dataset *ds, int size, pn_resize_mode mode,
                             const pn_cache_options *o, pn_cache **out, pn_error *err);
pn_status pn_cache_open(const char *path, const pn_dataset *ds, int size, pn_resize_mode mode,
                        pn_cache **out, pn_error *err);
/* Opens the cache at path, rebuilding it first when missing, stale or
 * unreadable; *rebuilt (may be NULL) tells which happened. */
pn_status pn_cache_ensure(const char *path, const pn_dataset *ds, int size, pn_resize_mode mode,
                          int n_threads, int *rebuilt, pn_cache **out, pn_error *err);
void pn_cache_close(pn_cache *c);
/* Deletes the index file and its shards. */
void pn_cache_remove(const char *path);

size_t pn_cache_count(const pn_cache *c);
size_t pn_cache_shards(const pn_cache *c);
int pn_cache_size(const pn_cache *c);
/* size*size bytes; valid until pn_cache_close. Thread-safe. */
const uint8_t *pn_cache_pixels(const pn_cache *c, size_t i);
int pn_cache_label(const pn_cache *c, size_t i);
int pn_cache_ok(const pn_cache *c, size_t i);

/* ----------------------------------------------------------- augmentation */

typedef struct pn_augment {
    float rotate_deg;       /* uniform in +-rotate_deg */
    float translate;        /* shift up to +-translate * size, each axis */
    float scale_min, scale_max;
    int hflip;              /* 1: flip horizontally with probability 0.5 */
    float brightness;       /* add uniform +-brightness * 255 */
    float contrast;         /* scale around the mean by 1 +- contrast */
    float gamma;            /* gamma = exp(uniform +-gamma) */
    float crop_min_area;    /* random resized crop: area fraction in [crop_min_area, 1]; 1 = off */
    float erase_prob;       /* random erasing: probability of one 2-20% noise rectangle */
    float blur_prob;        /* probability of a 3x3 box or binomial blur (acquisition sharpness) */
    float noise_std;        /* Gaussian pixel noise, sigma uniform in [0, noise_std] * 255 */
} pn_augment;

/* Named augmentation strengths (recipe `augment-preset`). */
typedef enum pn_augment_preset {
    PN_AUG_DEFAULT = 0, /* pn_augment_default */
    PN_AUG_STRONG,      /* pn_augment_strong */
    PN_AUG_PRESET_COUNT
} pn_augment_preset;
extern const char *const pn_augment_preset_names[PN_AUG_PRESET_COUNT];
/* The preset's parameters; an out-of-range value gives the default. */
pn_augment pn_augment_from_preset(pn_augment_preset p);
/* Index of name in pn_augment_preset_names, or -1. */
int pn_augment_preset_parse(const char *name);

/* Off: identity. Default: rotation 10, translate 0.1, scale 0.9-1.1, no flip,
 * brightness/contrast/gamma 0.1, no crop, no erasing. */
pn_augment pn_augment_none(void);
pn_augment pn_augment_default(void);
/* For acquisition differences: rotation 10, random resized crop (area 0.7-1),
 * scale 0.9-1.1, translate 0.06, brightness/contrast 0.2, gamma 0.25, blur
 * 0.2, noise up to 0.02, erasing 0.25. */
pn_augment pn_augment_strong(void);

/* Augments one w x h plane into dst (same size, not aliasing src). The random
 * draws depend only on (seed, epoch, index), so results do not depend on
 * which thread runs them. */
pn_status pn_augment_apply(const pn_augment *aug, uint64_t seed, uint64_t epoch, uint64_t index,
                           const uint8_t *src, int w, int h, uint8_t *dst, pn_error *err);

/* Test-time augmentation: view `view` (0 = identity; 1-2 zoom 1.05 / 0.95,
 * 3-6 shifts of 3% of the side, 7-8 rotations of +-5 degrees) of a w x h
 * plane into dst (not aliasing src). */
#define PN_TTA_MAX_VIEWS 9
pn_status pn_tta_view(int view, const uint8_t *src, int w, int h, uint8_t *dst, pn_error *err);

/* ----------------------------------------------------------------- loader */

typedef struct pn_loader_config {
    int batch_size;
    int shuffle;          /* seeded permutation per epoch */
    int drop_last;        /* drop the final short batch */
    int balanced;         /* draw n samples with replacement, classes equally often */
    uint64_t seed;
    const pn_augment *augment;  /* NULL = no augmentation */
    int clahe;            /* CLAHE (PN_CLAHE_TILES, PN_CLAHE_CLIP) before augmentation */
    pn_norm norm;
    int n_threads;        /* worker threads (>= 1) */
    int prefetch;         /* batches prepared ahead (>= 1) */
    /* Data-parallel training: this process's slice of every batch, positions
     * [shard_first, shard_first + shard_size) of it (augmentation still drawn
     * for the position in the epoch), so the processes' slices together are
     * the single-process epoch. shard_size 0 = the whole batch; a slice needs
     * drop_last (every batch whole). */
    int shard_first, shard_size;
} pn_loader_config;

/* batch 32, no shuffle, no augmentation, 1 channel mean/std 0.5, 1 thread, prefetch 2 */
pn_loader_config pn_loader_config_default(void);

typedef struct pn_loader pn_loader;

/* Batches over the given cache indices (copied; entries with pn_cache_ok = 0
 * are dropped). The cache must outlive the loader. */
pn_status pn_loader_create(const pn_cache *cache, const size_t *indices, size_t n,
                           const pn_loader_config *cfg, pn_loader **out, pn_error *err);
/* Starts (or restarts) an epoch; workers begin filling batches at once. The
 * order is a function of (seed, epoch) only. Augmentation draws use
 * (seed, epoch, position in the epoch). */
pn_status pn_loader_start_epoch(pn_loader *l, int epoch, pn_error *err);
/* Fills x (batch_size * size * size * channels floats, NHWC), labels and, if
 * non-NULL, the cache indices of the batch; *n = 0 at the end of the epoch. */
pn_status pn_loader_next(pn_loader *l, float *x, int *labels, size_t *indices, int *n,
                         pn_error *err);
size_t pn_loader_count(const pn_loader *l);         /* usable samples */
size_t pn_loader_batches(const pn_loader *l);       /* batches per epoch */
void pn_loader_free(pn_loader *l);

#ifdef __cplusplus
}
#endif
#endif
