/* The sharded decode cache: memory-mapped shards (with their resident pages
 * let go every few images) give the same images as the cache read into
 * memory and as decoding each file directly; stale, missing and foreign
 * shards are refused and rebuilt; a manifest of 16-bit PNGs (12-bit values,
 * ChestX-ray14 style) is cached at full depth through the same decoder. */
#include <fcntl.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pneumo/data.h"
#include "testutil.h"

enum { SIZE = 24 };

static void write_png8(const char *path, int w, int h, int seed)
{
    pn_image img = {.w = w, .h = h, .pixels = malloc((size_t)w * h)};
    for (int i = 0; i < w * h; i++)
        img.pixels[i] = (uint8_t)((i % w) * seed + (i / w) * 5 + seed);
    assert_int_equal(pn_image_write_png(path, &img, NULL), PN_OK);
    pn_image_free(&img);
}

/* A manifest of n PNGs of assorted sizes plus one broken file (row n). */
static const char *make_manifest(const char *name, int n, int seed)
{
    static char csv[2][1024];
    static int next;
    char *out = csv[next++ % 2], dir[900], path[1200];
    snprintf(dir, sizeof dir, "%s/%s", pn_test_tmpdir(), name);
    mkdir(dir, 0755);
    snprintf(out, sizeof csv[0], "%s/list.csv", dir);
    FILE *f = fopen(out, "w");
    fputs("path,label,patient_id\n", f);
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/img%03d.png", dir, i);
        write_png8(path, 30 + i, 20 + (i * 7) % 30, i + seed);
        fprintf(f, "img%03d.png,%s,p%d\n", i, i % 3 ? "PNEUMONIA" : "NORMAL", i / 2);
    }
    snprintf(path, sizeof path, "%s/broken.png", dir);
    FILE *b = fopen(path, "wb");
    fputs("\x89PNG\r\n\x1a\n truncated", b);
    fclose(b);
    fputs("broken.png,NORMAL,px\n", f);
    fclose(f);
    return out;
}

/* What the cache should hold for sample s: decode + resize, or black. */
static void expected_pixels(const pn_sample *s, int size, uint8_t *out, int *ok)
{
    pn_image img, small;
    *ok = pn_image_decode_file(s->path, size, size, &img, NULL) == PN_OK;
    memset(out, 0, (size_t)size * size);
    if (!*ok)
        return;
    assert_int_equal(pn_image_resize(&img, size, size, PN_RESIZE_SQUASH, &small, NULL), PN_OK);
    memcpy(out, small.pixels, (size_t)size * size);
    pn_image_free(&img);
    pn_image_free(&small);
}

static void test_sharded_equals_memory_and_decoder(void **state)
{
    const char *csv = make_manifest("shards", 37, 1);
    pn_dataset ds;
    pn_error e = {0};
    assert_int_equal(pn_manifest_read(csv, &ds, &e), PN_OK);
    assert_int_equal(ds.n, 38);
    char path[1200];
    snprintf(path, sizeof path, "%s.cache", csv);
    /* 5 images per shard: 8 shards, the last one short */
    pn_cache_options build = {.shard_bytes = 5 * SIZE * SIZE + 7};
    size_t failed = 0;
    assert_int_equal(pn_cache_build_with(path, &ds, SIZE, PN_RESIZE_SQUASH, 2, &build, &failed, &e), PN_OK);
    assert_int_equal(failed, 1);
    /* let go of the pages after every 2 images served */
    pn_cache_options mapped = {.resident_bytes = 2 * SIZE * SIZE}, memory = {.in_memory = 1};
    pn_cache *m, *r;
    assert_int_equal(pn_cache_open_with(path, &ds, SIZE, PN_RESIZE_SQUASH, &mapped, &m, &e), PN_OK);
    assert_int_equal(pn_cache_open_with(path, &ds, SIZE, PN_RESIZE_SQUASH, &memory, &r, &e), PN_OK);
    assert_int_equal(pn_cache_shards(m), 8);
    assert_int_equal(pn_cache_count(m), 38);
    uint8_t want[SIZE * SIZE];
    for (size_t i = 0; i < ds.n; i++) {
        int ok;
        expected_pixels(&ds.samples[i], SIZE, want, &ok);
        assert_int_equal(pn_cache_ok(m, i), ok);
        assert_int_equal(pn_cache_ok(r, i), ok);
        assert_int_equal(pn_cache_label(m, i), ds.samples[i].label);
        assert_memory_equal(pn_cache_pixels(m, i), want, sizeof want);
        assert_memory_equal(pn_cache_pixels(r, i), want, sizeof want);
    }
    /* Many threads reading in a scattered order while pages are let go. */
    int mismatches = 0;
    #pragma omp parallel for num_threads(4) reduction(+ : mismatches)
    for (int k = 0; k < 2000; k++) {
        size_t i = (size_t)(k * 7919) % ds.n;
        const uint8_t *px = pn_cache_pixels(m, i);
        mismatches += memcmp(px, pn_cache_pixels(r, i), SIZE * SIZE) != 0;
    }
    assert_int_equal(mismatches, 0);
    pn_cache_close(m);
    pn_cache_close(r);

    /* A loader over the mapped cache gives the batches the in-memory one gives. */
    assert_int_equal(pn_cache_open_with(path, &ds, SIZE, PN_RESIZE_SQUASH, &mapped, &m, &e), PN_OK);
    assert_int_equal(pn_cache_open_with(path, &ds, SIZE, PN_RESIZE_SQUASH, &memory, &r, &e), PN_OK);
    size_t idx[38];
    for (size_t i = 0; i < 38; i++)
        idx[i] = i;
    pn_augment aug = pn_augment_default();
    pn_loader_config lc = pn_loader_config_default();
    lc.batch_size = 8;
    lc.shuffle = 1;
    lc.augment = &aug;
    lc.n_threads = 2;
    pn_loader *lm, *lr;
    assert_int_equal(pn_loader_create(m, idx, 38, &lc, &lm, &e), PN_OK);
    assert_int_equal(pn_loader_create(r, idx, 38, &lc, &lr, &e), PN_OK);
    float xm[8 * SIZE * SIZE], xr[8 * SIZE * SIZE];
    int ym[8], yr[8], nm, nr;
    assert_int_equal(pn_loader_start_epoch(lm, 3, &e), PN_OK);
    assert_int_equal(pn_loader_start_epoch(lr, 3, &e), PN_OK);
    do {
        assert_int_equal(pn_loader_next(lm, xm, ym, NULL, &nm, &e), PN_OK);
        assert_int_equal(pn_loader_next(lr, xr, yr, NULL, &nr, &e), PN_OK);
        assert_int_equal(nm, nr);
        assert_memory_equal(xm, xr, (size_t)nm * SIZE * SIZE * sizeof(float));
        assert_memory_equal(ym, yr, (size_t)nm * sizeof(int));
    } while (nm > 0);
    pn_loader_free(lm);
    pn_loader_free(lr);
    pn_cache_close(m);
    pn_cache_close(r);
    pn_cache_remove(path);
    pn_dataset_free(&ds);
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static void test_stale_and_foreign_shards(void **state)
{
    const char *csv = make_manifest("stale", 12, 3), *other = make_manifest("other", 12, 9);
    pn_dataset ds, ds2;
    pn_error e = {0};
    assert_int_equal(pn_manifest_read(csv, &ds, &e), PN_OK);
    assert_int_equal(pn_manifest_read(other, &ds2, &e), PN_OK);
    char path[1200], path2[1200], shard[1300], shard2[1300];
    snprintf(path, sizeof path, "%s.cache", csv);
    snprintf(path2, sizeof path2, "%s.cache", other);
    pn_cache_options small = {.shard_bytes = 4 * SIZE * SIZE};
    assert_int_equal(pn_cache_build_with(path, &ds, SIZE, PN_RESIZE_SQUASH, 2, &small, NULL, &e), PN_OK);
    assert_int_equal(pn_cache_build_with(path2, &ds2, SIZE, PN_RESIZE_SQUASH, 2, &small, NULL, &e), PN_OK);
    pn_cache *c;
    /* a shard of another build in place of one of ours */
    snprintf(shard, sizeof shard, "%s.shard0002", path);
    snprintf(shard2, sizeof shard2, "%s.shard0002", path2);
    assert_int_equal(rename(shard2, shard), 0);
    assert_int_equal(pn_cache_open(path, &ds, SIZE, PN_RESIZE_SQUASH, &c, &e), PN_EFORMAT);
    assert_non_null(strstr(e.msg, "another build"));
    /* a missing shard */
    assert_int_equal(unlink(shard), 0);
    assert_int_equal(pn_cache_open(path, &ds, SIZE, PN_RESIZE_SQUASH, &c, &e), PN_EFORMAT);
    assert_non_null(strstr(e.msg, "stale cache"));
    int rebuilt = 0;
    assert_int_equal(pn_cache_ensure(path, &ds, SIZE, PN_RESIZE_SQUASH, 2, &rebuilt, &c, &e), PN_OK);
    assert_int_equal(rebuilt, 1);
    assert_int_equal(pn_cache_shards(c), 1); /* default shard size: one shard */
    pn_cache_close(c);
    for (int k = 1; k < 4; k++) { /* the earlier build's extra shards are gone, past the gap too */
        snprintf(shard, sizeof shard, "%s.shard%04d", path, k);
        assert_false(exists(shard));
    }
    /* a truncated shard */
    snprintf(shard, sizeof shard, "%s.shard0000", path);
    assert_int_equal(truncate(shard, 4096 + SIZE * SIZE), 0);
    assert_int_equal(pn_cache_open(path, &ds, SIZE, PN_RESIZE_SQUASH, &c, &e), PN_EFORMAT);
    /* the previous format's single file is stale, not misread */
    pn_cache_remove(path);
    FILE *f = fopen(path, "wb");
    static char v1[4096] = "PNCACHE";
    v1[8] = 1;
    fwrite(v1, 1, sizeof v1, f);
    fclose(f);
    assert_int_equal(pn_cache_open(path, NULL, SIZE, PN_RESIZE_SQUASH, &c, &e), PN_EFORMAT);
    assert_non_null(strstr(e.msg, "stale cache"));
    pn_cache_remove(path);
    pn_cache_remove(path2);
    assert_false(exists(path));
    pn_dataset_free(&ds);
    pn_dataset_free(&ds2);
}

/* A 1-channel 16-bit PNG: value(x, y) = lo + (x + y) * (hi - lo) / (w + h - 2). */
static void write_png16(const char *path, int w, int h, unsigned lo, unsigned hi, int sbit)
{
    FILE *f = fopen(path, "wb");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 16, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (sbit) {
        png_color_8 sig = {.gray = (png_byte)sbit};
        png_set_sBIT(png, info, &sig);
    }
    png_write_info(png, info);
    uint8_t *row = malloc((size_t)w * 2);
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            unsigned v = lo + (unsigned)((uint64_t)(x + y) * (hi - lo) / (unsigned)(w + h - 2));
            row[2 * x] = (uint8_t)(v >> 8);
            row[2 * x + 1] = (uint8_t)v;
        }
        png_write_row(png, row);
    }
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    free(row);
    fclose(f);
}

static void test_png16_manifest(void **state)
{
    char dir[1024], csv[1100], path[1200];
    snprintf(dir, sizeof dir, "%s/png16", pn_test_tmpdir());
    mkdir(dir, 0755);
    /* 12-bit values without sBIT (min-max), with sBIT 12 (the 12-bit range),
     * and one large enough to be streamed into a box average */
    static const struct { const char *name; int w, h; unsigned lo, hi; int sbit; } files[] = {
        {"a.png", 64, 48, 0, 4095, 0},
        {"b.png", 80, 80, 300, 3800, 0},
        {"c.png", 64, 64, 0, 4095, 12},
        {"d.png", 1100, 900, 100, 4000, 0},
    };
    snprintf(csv, sizeof csv, "%s/cxr14.csv", dir);
    FILE *f = fopen(csv, "w");
    fputs("path,label,patient_id,split\n", f);
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i].name);
        write_png16(path, files[i].w, files[i].h, files[i].lo, files[i].hi, files[i].sbit);
        fprintf(f, "%s,%s,%d,train\n", files[i].name, i % 2 ? "PNEUMONIA" : "NORMAL", i);
    }
    fclose(f);
    pn_dataset ds;
    pn_error e = {0};
    assert_int_equal(pn_manifest_read(csv, &ds, &e), PN_OK);
    char cache[1200];
    snprintf(cache, sizeof cache, "%s/cache-64.bin", dir);
    pn_cache *c;
    assert_int_equal(pn_cache_ensure(cache, &ds, 64, PN_RESIZE_SQUASH, 2, NULL, &c, &e), PN_OK);
    uint8_t want[64 * 64];
    for (size_t i = 0; i < ds.n; i++) {
        int ok;
        expected_pixels(&ds.samples[i], 64, want, &ok);
        assert_true(ok && pn_cache_ok(c, i));
        const uint8_t *px = pn_cache_pixels(c, i);
        assert_memory_equal(px, want, sizeof want);
        int lo = 255, hi = 0;
        for (int k = 0; k < 64 * 64; k++) {
            lo = px[k] < lo ? px[k] : lo;
            hi = px[k] > hi ? px[k] : hi;
        }
        /* full depth: the ramp spans (nearly) 0..255, where the high byte
         * of a 12-bit value would stay below 16 */
        assert_true(lo <= 8 && hi >= 245);
    }
    pn_cache_close(c);
    pn_cache_remove(cache);
    pn_dataset_free(&ds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sharded_equals_memory_and_decoder),
        cmocka_unit_test(test_stale_and_foreign_shards),
        cmocka_unit_test(test_png16_manifest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
