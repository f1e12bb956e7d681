/* pneumo data stats|grid|bench: look at a dataset, its augmentation, and how
 * fast the pipeline feeds training. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/options.h"
#include "pneumo/data.h"
#include "pneumo/os.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: pneumo data stats DIR|FILE.csv\n"
            "       pneumo data convert DIR --out FILE.csv   (a folder dataset as a manifest)\n"
            "       pneumo data grid --data DIR --out grid.png [--n 16] [--seed S] [--size 224]\n"
            "                        [--hflip] [--crop MIN_AREA] [--erase P] [--no-augment]\n"
            "       pneumo data bench --data DIR [--size 224] [--threads 2] [--batch 32]\n"
            "                         [--cache FILE] [--keep-resident] [--no-augment]\n"
            "         --cache FILE: build the cache there (reused when it matches); default: a temporary one\n"
            "         --no-augment: one loader epoch, without augmentation (default: one with, one without)\n"
            "         --keep-resident: keep every cache page read in memory (the peer of the default, which\n"
            "                          lets them go after every 64 MiB; for peak-RSS comparisons)\n"
            "DIR is <root>/<split>/{NORMAL,PNEUMONIA}/<files> or <root>/{NORMAL,PNEUMONIA}/<files>;\n"
            "--data also takes a CSV manifest (FILE.csv, docs/datasets.md).\n");
}

static int fail(const pn_error *e)
{
    fprintf(stderr, "pneumo data: %s\n", e->msg);
    return 1;
}

/* ------------------------------------------------------------------ stats */

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static const char *subtype_name(int s)
{
    static const char *names[] = {"normal", "bacteria", "virus"};
    return s >= 0 && s <= 2 ? names[s] : "unknown";
}

/* Distinct patients among samples [lo, hi) with the given label and subtype
 * (subtype -2 = any). */
static size_t distinct_patients(const pn_dataset *ds, size_t lo, size_t hi, int label, int sub)
{
    char **ids = malloc((hi - lo + 1) * sizeof *ids);
    size_t n = 0, distinct = 0;
    if (!ids)
        return 0;
    for (size_t k = lo; k < hi; k++) {
        const pn_sample *s = &ds->samples[k];
        if ((label < 0 || s->label == label) && (sub == -2 || s->subtype == sub))
            ids[n++] = s->patient;
    }
    qsort(ids, n, sizeof *ids, cmp_str_ptr);
    for (size_t i = 0; i < n; i++)
        distinct += i == 0 || strcmp(ids[i - 1], ids[i]);
    free(ids);
    return distinct;
}

static void print_counts(const pn_dataset *ds)
{
    printf("%-8s %-10s %-9s %7s %9s\n", "split", "class", "subtype", "images", "patients");
    for (size_t i = 0; i < ds->n;) {
        const char *split = ds->samples[i].split;
        size_t end = i;
        while (end < ds->n && !strcmp(ds->samples[end].split, split))
            end++;
        for (int label = 0; label < 2; label++)
            for (int sub = -1; sub <= 2; sub++) {
                size_t count = 0;
                for (size_t k = i; k < end; k++)
                    count += ds->samples[k].label == label && ds->samples[k].subtype == sub;
                if (count)
                    printf("%-8s %-10s %-9s %7zu %9zu\n", *split ? split : "(root)",
                           label ? "PNEUMONIA" : "NORMAL", subtype_name(sub), count,
                           distinct_patients(ds, i, end, label, sub));
            }
        printf("%-8s %-10s %-9s %7zu %9zu\n", *split ? split : "(root)", "all", "", end - i,
               distinct_patients(ds, i, end, -1, -2));
        i = end;
    }
    printf("patients overall: %zu; patient/duplicate groups: %d\n",
           distinct_patients(ds, 0, ds->n, -1, -2), ds->n_groups);
}

/* Pairs of files with equal keys (file hash or decoded-pixel hash). */
static size_t print_duplicates(const pn_dataset *ds, const uint64_t *key, const char *what,
                               int list)
{
    uint64_t *pairs = malloc(ds->n * 2 * sizeof *pairs);  /* (key, index) */
    if (!pairs)
        return 0;
    for (size_t i = 0; i < ds->n; i++) {
        pairs[2 * i] = key[i];
        pairs[2 * i + 1] = i;
    }
    qsort(pairs, ds->n, 2 * sizeof *pairs, cmp_u64);
    size_t n_pairs = 0;
    for (size_t i = 0; i < ds->n;) {
        size_t j = i + 1;
        while (j < ds->n && pairs[2 * j] == pairs[2 * i])
            j++;
        if (key[pairs[2 * i + 1]] != 0 && j - i > 1) {
            n_pairs += (j - i) * (j - i - 1) / 2;
            if (list) {
                printf("  ");
                for (size_t k = i; k < j; k++)
                    printf("%s%s", k > i ? " == " : "", ds->samples[pairs[2 * k + 1]].path);
                printf("\n");
            }
        }
        i = j;
    }
    printf("duplicate pairs (%s): %zu\n", what, n_pairs);
    free(pairs);
    return n_pairs;
}

typedef struct decode_info {
    int w, h, ok, is_color, orientation;
    uint64_t pixel_hash;  /* 0 when undecodable */
    char reason[PN_ERROR_MSG_MAX];
} decode_info;

static void decode_all(const pn_dataset *ds, decode_info *info)
{
    #pragma omp parallel for schedule(dynamic, 8)
    for (size_t i = 0; i < ds->n; i++) {
        pn_image img;
        pn_error e;
        decode_info *d = &info[i];
        if (pn_image_decode_file(ds->samples[i].path, 0, 0, &img, &e)) {
            snprintf(d->reason, sizeof d->reason, "%s", e.msg);
            continue;
        }
        *d = (decode_info){.w = img.w, .h = img.h, .ok = 1, .is_color = img.is_color,
                           .orientation = img.orientation};
        /* Pixel hash includes the size so different shapes never collide trivially. */
        uint64_t h = 1469598103934665603ULL ^ ((uint64_t)img.w << 32 | (uint64_t)img.h);
        for (size_t k = 0; k < (size_t)img.w * img.h; k++)
            h = (h ^ img.pixels[k]) * 1099511628211ULL;
        d->pixel_hash = h ? h : 1;
        pn_image_free(&img);
    }
}

static void print_sizes(const decode_info *info, size_t n)
{
    int *w = malloc((n + 1) * sizeof *w), *h = malloc((n + 1) * sizeof *h);
    size_t m = 0, color = 0, rotated = 0;
    for (size_t i = 0; w && h && i < n; i++)
        if (info[i].ok) {
            w[m] = info[i].w;
            h[m++] = info[i].h;
            color += info[i].is_color;
            rotated += info[i].orientation != 1;
        }
    if (m) {
        qsort(w, m, sizeof *w, cmp_int);
        qsort(h, m, sizeof *h, cmp_int);
        printf("image size: width min/median/max %d/%d/%d, height min/median/max %d/%d/%d\n",
               w[0], w[m / 2], w[m - 1], h[0], h[m / 2], h[m - 1]);
        printf("colour images: %zu; EXIF-rotated: %zu\n", color, rotated);
    }
    free(w);
    free(h);
}

static int cmd_stats(int argc, char **argv)
{
    if (argc != 2) {
        usage(stderr);
        return 2;
    }
    pn_dataset ds;
    pn_error e;
    if (pn_dataset_load(argv[1], &ds, &e))
        return fail(&e);
    printf("dataset %s: %zu files\n", argv[1], ds.n);
    print_counts(&ds);
    decode_info *info = calloc(ds.n, sizeof *info);
    uint64_t *key = malloc(ds.n * sizeof *key);
    if (!info || !key) {
        free(info);
        free(key);
        pn_dataset_free(&ds);
        fprintf(stderr, "pneumo data: out of memory\n");
        return 1;
    }
    decode_all(&ds, info);
    print_sizes(info, ds.n);
    for (size_t i = 0; i < ds.n; i++)
        key[i] = ds.samples[i].hash;
    print_duplicates(&ds, key, "identical file bytes", 0);
    for (size_t i = 0; i < ds.n; i++)
        key[i] = info[i].pixel_hash;
    print_duplicates(&ds, key, "identical decoded pixels", 1);
    size_t bad = 0;
    for (size_t i = 0; i < ds.n; i++)
        bad += !info[i].ok;
    printf("unreadable files: %zu\n", bad);
    for (size_t i = 0; i < ds.n; i++)
        if (!info[i].ok)
            printf("  %s\n", info[i].reason);
    free(info);
    free(key);
    pn_dataset_free(&ds);
    return 0;
}

/* ------------------------------------------------------------- grid/bench */

typedef struct opts {
    const char *data, *out, *cache;
    int n, size, threads, batch, hflip, no_augment, keep_resident;
    float crop, erase;
    uint64_t seed;
} opts;

static int parse_opts(int argc, char **argv, opts *o)
{
    *o = (opts){.n = 16, .size = 224, .threads = 2, .batch = 32, .crop = 1, .seed = 1};
    const pn_option table[] = {
        PN_OPT_STRING("data", &o->data),
        PN_OPT_STRING("out", &o->out),
        PN_OPT_STRING("cache", &o->cache),
        PN_OPT_INT("n", &o->n, 1, 1024),
        PN_OPT_INT("size", &o->size, 8, 2048),
        PN_OPT_INT("threads", &o->threads, 1, 1024),
        PN_OPT_INT("batch", &o->batch, 1, 65536),
        PN_OPT_U64("seed", &o->seed, 0, 1e18),
        PN_OPT_FLOAT_ABOVE("crop", &o->crop, 0, 1),
        PN_OPT_FLOAT("erase", &o->erase, 0, 1),
        PN_OPT_FLAG("hflip", &o->hflip, 1),
        PN_OPT_FLAG("no-augment", &o->no_augment, 1),
        PN_OPT_FLAG("keep-resident", &o->keep_resident, 1),
        PN_OPT_END,
    };
    pn_opts_result r = pn_opts_parse("pneumo data", table, argc, argv, 1, NULL, NULL);
    if (r == PN_OPTS_OK && !o->data)
        return fprintf(stderr, "pneumo data: --data DIR is required\n"), -1;
    return r == PN_OPTS_OK ? 0 : -1;
}

static pn_augment augment_from(const opts *o)
{
    pn_augment a = o->no_augment ? pn_augment_none() : pn_augment_default();
    a.hflip = o->hflip;
    a.crop_min_area = o->crop;
    a.erase_prob = o->erase;
    return a;
}

/* Decodes, resizes and augments sample i into a size x size cell. */
static pn_status grid_cell(const pn_dataset *ds, size_t i, const opts *o, const pn_augment *aug,
                           uint8_t *cell, pn_error *e)
{
    pn_image img, small;
    pn_status st = pn_image_decode_file(ds->samples[i].path, o->size, o->size, &img, e);
    if (st)
        return st;
    st = pn_image_resize(&img, o->size, o->size, PN_RESIZE_SQUASH, &small, e);
    pn_image_free(&img);
    if (st)
        return st;
    st = pn_augment_apply(aug, o->seed, 0, i, small.pixels, o->size, o->size, cell, e);
    pn_image_free(&small);
    return st;
}

static int cmd_grid(int argc, char **argv)
{
    opts o;
    if (parse_opts(argc, argv, &o) || !o.out) {
        usage(stderr);
        return 2;
    }
    pn_dataset ds;
    pn_error e;
    if (pn_dataset_load(o.data, &ds, &e))
        return fail(&e);
    pn_augment aug = augment_from(&o);
    const int gap = 4, cols = (int)ceil(sqrt(o.n)), rows = (o.n + cols - 1) / cols;
    pn_image grid = {.w = cols * (o.size + gap) - gap, .h = rows * (o.size + gap) - gap};
    grid.pixels = calloc((size_t)grid.w * grid.h, 1);
    uint8_t *cell = malloc((size_t)o.size * o.size);
    int rc = 0;
    uint64_t rng = o.seed;
    for (int k = 0; k < o.n && grid.pixels && cell && !rc; k++) {
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        size_t i = (size_t)((rng >> 17) % ds.n);
        if (grid_cell(&ds, i, &o, &aug, cell, &e)) {
            rc = fail(&e);
            break;
        }
        int x0 = (k % cols) * (o.size + gap), y0 = (k / cols) * (o.size + gap);
        for (int y = 0; y < o.size; y++)
            memcpy(grid.pixels + (size_t)(y0 + y) * grid.w + x0, cell + (size_t)y * o.size,
                   o.size);
        printf("%2d %s\n", k, ds.samples[i].path);
    }
    if (!rc && (!grid.pixels || !cell))
        rc = (fprintf(stderr, "pneumo data: out of memory\n"), 1);
    if (!rc && pn_image_write_png(o.out, &grid, &e))
        rc = fail(&e);
    if (!rc)
        printf("wrote %s (%dx%d)\n", o.out, grid.w, grid.h);
    free(cell);
    pn_image_free(&grid);
    pn_dataset_free(&ds);
    return rc;
}

/* One epoch over every cached image, the caller doing no work: the loader's
 * ceiling in images per second. */
static pn_status time_loader(const pn_cache *cache, const opts *o, const pn_augment *aug,
                             double *ips, pn_error *e)
{
    size_t n = pn_cache_count(cache);
    size_t *idx = malloc(n * sizeof *idx);
    pn_loader_config cfg = pn_loader_config_default();
    cfg.batch_size = o->batch;
    cfg.shuffle = 1;
    cfg.seed = o->seed;
    cfg.augment = aug;
    cfg.norm = pn_norm_default(3);
    cfg.n_threads = o->threads;
    float *x = malloc((size_t)o->batch * o->size * o->size * 3 * sizeof *x);
    int *labels = malloc(o->batch * sizeof *labels);
    pn_loader *l = NULL;
    pn_status st = !idx || !x || !labels ? pn_fail(e, PN_ENOMEM, "out of memory") : PN_OK;
    for (size_t i = 0; !st && i < n; i++)
        idx[i] = i;
    if (!st)
        st = pn_loader_create(cache, idx, n, &cfg, &l, e);
    double t0 = pn_clock_s();
    size_t total = 0;
    if (!st)
        st = pn_loader_start_epoch(l, 0, e);
    for (int got = 1; !st && got;) {
        st = pn_loader_next(l, x, labels, NULL, &got, e);
        total += (size_t)got;
    }
    *ips = total / (pn_clock_s() - t0);
    pn_loader_free(l);
    free(idx);
    free(x);
    free(labels);
    return st;
}

static pn_status build_cache(const char *path, const pn_dataset *ds, const opts *o, pn_error *e)
{
    size_t failed;
    double t0 = pn_clock_s();
    pn_status st = pn_cache_build(path, ds, o->size, PN_RESIZE_SQUASH, o->threads, &failed, e);
    double dt = pn_clock_s() - t0;
    if (!st)
        printf("cache build (decode + resize to %d, %d threads): %.2f s, %.0f images/s, %zu failed\n",
               o->size, o->threads, dt, ds->n / dt, failed);
    return st;
}

static int cmd_bench(int argc, char **argv)
{
    opts o;
    if (parse_opts(argc, argv, &o)) {
        usage(stderr);
        return 2;
    }
    pn_dataset ds;
    pn_error e;
    double t0 = pn_clock_s();
    if (pn_dataset_load(o.data, &ds, &e))
        return fail(&e);
    printf("scan + hash of %zu files: %.2f s\n", ds.n, pn_clock_s() - t0);
    char tmp[256];
    snprintf(tmp, sizeof tmp, "/tmp/pneumo-bench-%ld.cache", (long)getpid());
    const char *path = o.cache ? o.cache : tmp;
    pn_cache_options co = {.resident_bytes = o.keep_resident ? UINT64_MAX : 0};
    pn_cache *cache = NULL;
    if (o.cache && pn_cache_open_with(path, &ds, o.size, PN_RESIZE_SQUASH, &co, &cache, NULL) == PN_OK)
        printf("cache reused: %s, %zu shards\n", path, pn_cache_shards(cache));
    else if (build_cache(path, &ds, &o, &e)) {
        pn_dataset_free(&ds);
        return fail(&e);
    }
    int rc = 0;
    if (!cache && pn_cache_open_with(path, &ds, o.size, PN_RESIZE_SQUASH, &co, &cache, &e)) {
        rc = fail(&e);
    } else {
        pn_augment aug = augment_from(&o), none = pn_augment_none();
        double with_aug = 0, without;
        if ((!o.no_augment && time_loader(cache, &o, &aug, &with_aug, &e)) ||
            time_loader(cache, &o, &none, &without, &e))
            rc = fail(&e);
        else if (o.no_augment)
            printf("loader (%d threads, batch %d, 3-channel float NHWC %dx%d): %.0f images/s without augmentation\n",
                   o.threads, o.batch, o.size, o.size, without);
        else
            printf("loader (%d threads, batch %d, 3-channel float NHWC %dx%d): %.0f images/s "
                   "with augmentation, %.0f images/s without\n",
                   o.threads, o.batch, o.size, o.size, with_aug, without);
        pn_cache_close(cache);
    }
    if (!o.cache)
        pn_cache_remove(path);
    pn_dataset_free(&ds);
    return rc;
}

int pn_cmd_data(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "convert"))
        return pn_cmd_data_convert(argc - 1, argv + 1);
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
    if (argc >= 2 && !strcmp(argv[1], "stats"))
        return cmd_stats(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "grid"))
        return cmd_grid(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "bench"))
        return cmd_bench(argc - 1, argv + 1);

    usage(stderr);
    return 2;
}
