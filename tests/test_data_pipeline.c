/* Preprocessing, cache, augmentation and loader tests. */
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pneumo/data.h"
#include "testutil.h"

static pn_image make_image(int w, int h, int kind)
{
    pn_image img = {.w = w, .h = h, .pixels = malloc((size_t)w * h)};
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            img.pixels[y * w + x] = kind == 0   ? 100
                                    : kind == 1 ? (uint8_t)(((x + y) & 1) * 255)  /* checker */
                                    : kind == 2 ? (uint8_t)(x * 255 / (w - 1))    /* ramp */
                                                : (uint8_t)(96 + (x * 7 + y * 13) % 64);
    return img;
}

static void test_resize(void **state)
{
    pn_image src = make_image(64, 48, 0), dst;
    assert_int_equal(pn_image_resize(&src, 20, 30, PN_RESIZE_SQUASH, &dst, NULL), PN_OK);
    for (int i = 0; i < 600; i++)
        assert_int_equal(dst.pixels[i], 100);
    pn_image_free(&dst);
    pn_image_free(&src);

    /* Shrinking a 1-pixel checkerboard must average, not alias to black/white. */
    src = make_image(64, 64, 1);
    assert_int_equal(pn_image_resize(&src, 16, 16, PN_RESIZE_SQUASH, &dst, NULL), PN_OK);
    for (int i = 0; i < 256; i++)
        assert_in_range(dst.pixels[i], 126, 129);
    pn_image_free(&dst);
    assert_int_equal(pn_image_resize(&src, 21, 13, PN_RESIZE_SQUASH, &dst, NULL), PN_OK);
    for (int i = 0; i < 21 * 13; i++)
        assert_in_range(dst.pixels[i], 110, 145);
    pn_image_free(&dst);
    pn_image_free(&src);

    /* Enlarging a ramp stays monotone and keeps its end points. */
    src = make_image(10, 4, 2);
    assert_int_equal(pn_image_resize(&src, 37, 9, PN_RESIZE_SQUASH, &dst, NULL), PN_OK);
    for (int x = 1; x < 37; x++)
        assert_true(dst.pixels[4 * 37 + x] >= dst.pixels[4 * 37 + x - 1]);
    assert_int_equal(dst.pixels[0], 0);
    assert_int_equal(dst.pixels[36], 255);
    pn_image_free(&dst);
    pn_image_free(&src);

    /* Letterbox 200x100 into 50x50: 25 content rows centred, black bars. */
    src = make_image(200, 100, 0);
    assert_int_equal(pn_image_resize(&src, 50, 50, PN_RESIZE_LETTERBOX, &dst, NULL), PN_OK);
    int content_rows = 0;
    for (int y = 0; y < 50; y++) {
        int v = dst.pixels[y * 50 + 25];
        assert_true(v == 0 || v == 100);
        content_rows += v == 100;
    }
    assert_int_equal(content_rows, 25);
    assert_int_equal(dst.pixels[0], 0);
    assert_int_equal(dst.pixels[25 * 50 + 25], 100);
    pn_image_free(&dst);
    assert_int_equal(pn_image_resize(&src, 0, 50, PN_RESIZE_SQUASH, &dst, NULL), PN_EINVAL);
    pn_image_free(&src);
}

static void test_normalize_and_clahe(void **state)
{
    uint8_t px[4] = {0, 51, 255, 128};
    pn_norm n1 = pn_norm_default(1);
    float out[12];
    assert_int_equal(pn_normalize(px, 2, 2, &n1, out, NULL), PN_OK);
    assert_float_equal(out[0], -1.0f, 1e-6);
    assert_float_equal(out[2], 1.0f, 1e-6);
    pn_norm n3 = {.channels = 3, .mean = {0.485f, 0.456f, 0.406f}, .std = {0.229f, 0.224f, 0.225f}};
    assert_int_equal(pn_normalize(px, 2, 2, &n3, out, NULL), PN_OK);
    for (int i = 0; i < 4; i++)
        for (int c = 0; c < 3; c++)
            assert_float_equal(out[3 * i + c], (px[i] / 255.0f - n3.mean[c]) / n3.std[c], 1e-5);
    n3.channels = 2;
    assert_int_equal(pn_normalize(px, 2, 2, &n3, out, NULL), PN_EINVAL);

    /* Low-contrast input (values 96..159) is stretched by CLAHE. */
    pn_image img = make_image(64, 64, 3);
    assert_int_equal(pn_image_clahe(&img, 4, 2.0f, NULL), PN_OK);
    int lo = 255, hi = 0;
    for (int i = 0; i < 64 * 64; i++) {
        lo = img.pixels[i] < lo ? img.pixels[i] : lo;
        hi = img.pixels[i] > hi ? img.pixels[i] : hi;
    }
    assert_true(hi - lo > 120);
    assert_int_equal(pn_image_clahe(&img, 0, 2.0f, NULL), PN_EINVAL);
    pn_image_free(&img);
}

/* --------------------------------------------------------------- cache */

static void write_png(const char *dir, const char *name, int w, int h, int seed)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    pn_image img = {.w = w, .h = h, .pixels = malloc((size_t)w * h)};
    for (int i = 0; i < w * h; i++)
        img.pixels[i] = (uint8_t)((i % w) * seed + (i / w) * 3);
    assert_int_equal(pn_image_write_png(path, &img, NULL), PN_OK);
    pn_image_free(&img);
}

/* Small dataset: 13 normal + 20 pneumonia images of assorted sizes, one broken. */
static const char *make_dataset(void)
{
    static char root[1024];
    char d[1100];
    snprintf(root, sizeof root, "%s/ds", pn_test_tmpdir());
    mkdir(root, 0755);
    snprintf(d, sizeof d, "%s/NORMAL", root);
    mkdir(d, 0755);
    for (int i = 0; i < 13; i++) {
        char name[64];
        snprintf(name, sizeof name, "IM-%04d-0001.png", i);
        write_png(d, name, 40 + i, 30 + 2 * i, i + 1);
    }
    snprintf(d, sizeof d, "%s/PNEUMONIA", root);
    mkdir(d, 0755);
    for (int i = 0; i < 20; i++) {
        char name[64];
        snprintf(name, sizeof name, "person%d_bacteria_%d.png", i, i);
        write_png(d, name, 50, 20 + i, i + 5);
    }
    char path[1200];
    snprintf(path, sizeof path, "%s/broken.png", d);
    FILE *f = fopen(path, "wb");
    fputs("\x89PNG\r\n\x1a\n truncated", f);
    fclose(f);
    return root;
}

static void test_cache_roundtrip_and_staleness(void **state)
{
    const char *root = make_dataset();
    pn_dataset ds;
    pn_error e;
    assert_int_equal(pn_dataset_scan(root, &ds, &e), PN_OK);
    assert_int_equal(ds.n, 34);
    char path[1200];
    snprintf(path, sizeof path, "%s/c.cache", pn_test_tmpdir());
    size_t failed = 99;
    assert_int_equal(pn_cache_build(path, &ds, 24, PN_RESIZE_SQUASH, 2, &failed, &e), PN_OK);
    assert_int_equal(failed, 1);
    pn_cache *c;
    assert_int_equal(pn_cache_open(path, &ds, 24, PN_RESIZE_SQUASH, &c, &e), PN_OK);
    assert_int_equal(pn_cache_count(c), 34);
    assert_int_equal(pn_cache_size(c), 24);
    for (size_t i = 0; i < ds.n; i++) {
        assert_int_equal(pn_cache_label(c, i), ds.samples[i].label);
        pn_image img, small;
        if (pn_image_decode_file(ds.samples[i].path, 24, 24, &img, NULL)) {
            assert_int_equal(pn_cache_ok(c, i), 0);
            continue;
        }
        assert_int_equal(pn_cache_ok(c, i), 1);
        assert_int_equal(pn_image_resize(&img, 24, 24, PN_RESIZE_SQUASH, &small, NULL), PN_OK);
        assert_memory_equal(pn_cache_pixels(c, i), small.pixels, 24 * 24);
        pn_image_free(&img);
        pn_image_free(&small);
    }
    pn_cache_close(c);

    /* Different size or mode: stale. */
    assert_int_equal(pn_cache_open(path, &ds, 32, PN_RESIZE_SQUASH, &c, &e), PN_EFORMAT);
    assert_non_null(strstr(e.msg, "stale cache"));
    assert_int_equal(pn_cache_open(path, &ds, 24, PN_RESIZE_LETTERBOX, &c, &e), PN_EFORMAT);

    /* A source file changes (new mtime): stale, and ensure rebuilds once. */
    struct timespec times[2] = {{.tv_sec = 1000000000}, {.tv_sec = 1000000000}};
    assert_int_equal(utimensat(AT_FDCWD, ds.samples[3].path, times, 0), 0);
    pn_dataset ds2;
    assert_int_equal(pn_dataset_scan(root, &ds2, NULL), PN_OK);
    assert_int_equal(pn_cache_open(path, &ds2, 24, PN_RESIZE_SQUASH, &c, &e), PN_EFORMAT);
    assert_non_null(strstr(e.msg, "changed"));
    int rebuilt = -1;
    assert_int_equal(pn_cache_ensure(path, &ds2, 24, PN_RESIZE_SQUASH, 2, &rebuilt, &c, &e), PN_OK);
    assert_int_equal(rebuilt, 1);
    pn_cache_close(c);
    assert_int_equal(pn_cache_ensure(path, &ds2, 24, PN_RESIZE_SQUASH, 2, &rebuilt, &c, &e), PN_OK);
    assert_int_equal(rebuilt, 0);
    pn_cache_close(c);

    /* Garbage and truncated cache files are refused, not crashed on. */
    char bad[1300];
    snprintf(bad, sizeof bad, "%s/bad.cache", pn_test_tmpdir());
    FILE *f = fopen(bad, "wb");
    fputs("PNCACHE\0 not really a cache file, just bytes ..........................", f);
    fclose(f);
    assert_int_equal(pn_cache_open(bad, NULL, 24, PN_RESIZE_SQUASH, &c, &e), PN_EFORMAT);
    assert_int_equal(truncate(path, 5000), 0);
    assert_int_equal(pn_cache_open(path, NULL, 24, PN_RESIZE_SQUASH, &c, &e), PN_EFORMAT);
    pn_dataset_free(&ds);
    pn_dataset_free(&ds2);
}

/* --------------------------------------------------------- augmentation */

static void test_augment_determinism(void **state)
{
    pn_image src = make_image(64, 64, 3);
    for (int i = 0; i < 64 * 64; i++)
        src.pixels[i] = (uint8_t)(src.pixels[i] + (i % 64 > 40 ? 60 : 0));
    uint8_t a[4096], b[4096];
    pn_augment aug = pn_augment_default();
    aug.hflip = 1;
    aug.crop_min_area = 0.5f;
    aug.erase_prob = 0.5f;
    assert_int_equal(pn_augment_apply(&aug, 1, 0, 5, src.pixels, 64, 64, a, NULL), PN_OK);
    assert_int_equal(pn_augment_apply(&aug, 1, 0, 5, src.pixels, 64, 64, b, NULL), PN_OK);
    assert_memory_equal(a, b, sizeof a);
    assert_memory_not_equal(a, src.pixels, sizeof a);
    assert_int_equal(pn_augment_apply(&aug, 2, 0, 5, src.pixels, 64, 64, b, NULL), PN_OK);
    assert_memory_not_equal(a, b, sizeof a);
    assert_int_equal(pn_augment_apply(&aug, 1, 1, 5, src.pixels, 64, 64, b, NULL), PN_OK);
    assert_memory_not_equal(a, b, sizeof a);
    assert_int_equal(pn_augment_apply(&aug, 1, 0, 6, src.pixels, 64, 64, b, NULL), PN_OK);
    assert_memory_not_equal(a, b, sizeof a);
    pn_augment none = pn_augment_none();
    assert_int_equal(pn_augment_apply(&none, 1, 0, 5, src.pixels, 64, 64, b, NULL), PN_OK);
    assert_memory_equal(b, src.pixels, sizeof b);
    /* Geometry only with everything zero but a pure flip mirrors exactly (or not at all). */
    none.hflip = 1;
    int mirrored = 0;
    for (int idx = 0; idx < 8; idx++) {
        assert_int_equal(pn_augment_apply(&none, 3, 0, idx, src.pixels, 64, 64, b, NULL), PN_OK);
        int same = !memcmp(b, src.pixels, sizeof b), mirror = 1;
        for (int y = 0; y < 64 && mirror; y++)
            for (int x = 0; x < 64; x++)
                mirror &= b[y * 64 + x] == src.pixels[y * 64 + 63 - x];
        assert_true(same || mirror);
        mirrored += mirror && !same;
    }
    assert_true(mirrored > 0 && mirrored < 8);
    aug.scale_min = 0;
    assert_int_equal(pn_augment_apply(&aug, 1, 0, 5, src.pixels, 64, 64, b, NULL), PN_EINVAL);
    pn_image_free(&src);
}

/* ---------------------------------------------------------------- loader */

typedef struct epoch_run {
    size_t *order;
    float *x;     /* all batches concatenated */
    size_t n;
} epoch_run;

static epoch_run run_epoch(pn_loader *l, int epoch, int bs, int size, int ch)
{
    size_t per = (size_t)size * size * ch;
    epoch_run r = {.order = malloc(64 * sizeof(size_t)), .x = malloc(64 * per * sizeof(float))};
    float *x = malloc(bs * per * sizeof *x);
    int labels[64];
    size_t idx[64];
    assert_int_equal(pn_loader_start_epoch(l, epoch, NULL), PN_OK);
    for (;;) {
        int n;
        assert_int_equal(pn_loader_next(l, x, labels, idx, &n, NULL), PN_OK);
        if (!n)
            break;
        assert_true(r.n + n <= 64);
        memcpy(r.order + r.n, idx, n * sizeof *idx);
        memcpy(r.x + r.n * per, x, n * per * sizeof *x);
        r.n += n;
    }
    free(x);
    return r;
}

static void free_run(epoch_run *r)
{
    free(r->order);
    free(r->x);
}

static void test_loader(void **state)
{
    const char *root = make_dataset();
    pn_dataset ds;
    assert_int_equal(pn_dataset_scan(root, &ds, NULL), PN_OK);
    char path[1200];
    snprintf(path, sizeof path, "%s/loader.cache", pn_test_tmpdir());
    pn_cache *c;
    assert_int_equal(pn_cache_ensure(path, &ds, 16, PN_RESIZE_SQUASH, 2, NULL, &c, NULL), PN_OK);
    size_t idx[34];
    for (size_t i = 0; i < 34; i++)
        idx[i] = i;
    pn_augment aug = pn_augment_default();
    pn_loader_config cfg = pn_loader_config_default();
    cfg.batch_size = 5;
    cfg.shuffle = 1;
    cfg.seed = 11;
    cfg.augment = &aug;
    cfg.norm = pn_norm_default(3);
    cfg.n_threads = 3;
    pn_loader *l, *l1;
    assert_int_equal(pn_loader_create(c, idx, 34, &cfg, &l, NULL), PN_OK);
    assert_int_equal(pn_loader_count(l), 33);  /* the broken file is dropped */
    assert_int_equal(pn_loader_batches(l), 7);
    int x;
    assert_int_equal(pn_loader_next(l, NULL, NULL, NULL, &x, NULL), PN_EINVAL);  /* no epoch */

    epoch_run e0 = run_epoch(l, 0, 5, 16, 3);
    assert_int_equal(e0.n, 33);
    int seen[34] = {0};
    for (size_t k = 0; k < e0.n; k++)
        seen[e0.order[k]]++;
    for (size_t i = 0; i < 34; i++)
        assert_int_equal(seen[i], pn_cache_ok(c, i) ? 1 : 0);
    /* Same epoch again, and with one worker: identical bytes. */
    epoch_run again = run_epoch(l, 0, 5, 16, 3);
    assert_memory_equal(again.order, e0.order, e0.n * sizeof(size_t));
    assert_memory_equal(again.x, e0.x, e0.n * 16 * 16 * 3 * sizeof(float));
    cfg.n_threads = 1;
    assert_int_equal(pn_loader_create(c, idx, 34, &cfg, &l1, NULL), PN_OK);
    epoch_run one = run_epoch(l1, 0, 5, 16, 3);
    assert_memory_equal(one.x, e0.x, e0.n * 16 * 16 * 3 * sizeof(float));
    /* Next epoch: another order. */
    epoch_run e1 = run_epoch(l, 1, 5, 16, 3);
    assert_int_equal(e1.n, 33);
    assert_memory_not_equal(e1.order, e0.order, e0.n * sizeof(size_t));
    /* Abandon an epoch midway, restart: still complete. */
    float *buf = malloc(5 * 16 * 16 * 3 * sizeof *buf);
    int labels[5], n;
    assert_int_equal(pn_loader_start_epoch(l, 2, NULL), PN_OK);
    assert_int_equal(pn_loader_next(l, buf, labels, NULL, &n, NULL), PN_OK);
    assert_int_equal(n, 5);
    epoch_run e2 = run_epoch(l, 2, 5, 16, 3);
    assert_int_equal(e2.n, 33);
    free(buf);
    free_run(&e0);
    free_run(&again);
    free_run(&one);
    free_run(&e1);
    free_run(&e2);
    pn_loader_free(l);
    pn_loader_free(l1);

    /* No augmentation, no shuffle, drop_last: in order, values = normalised cache. */
    cfg = pn_loader_config_default();
    cfg.batch_size = 4;
    cfg.drop_last = 1;
    assert_int_equal(pn_loader_create(c, idx, 34, &cfg, &l, NULL), PN_OK);
    assert_int_equal(pn_loader_batches(l), 8);
    epoch_run plain = run_epoch(l, 0, 4, 16, 1);
    assert_int_equal(plain.n, 32);
    float ref[256];
    for (size_t k = 0; k < plain.n; k++) {
        assert_true(k == 0 || plain.order[k] > plain.order[k - 1]);
        pn_normalize(pn_cache_pixels(c, plain.order[k]), 16, 16, &cfg.norm, ref, NULL);
        assert_memory_equal(plain.x + k * 256, ref, sizeof ref);
    }
    free_run(&plain);
    pn_loader_free(l);

    /* Balanced sampler: 13 normal vs 20 pneumonia drawn about equally. */
    cfg.batch_size = 64;
    cfg.drop_last = 0;
    cfg.balanced = 1;
    assert_int_equal(pn_loader_create(c, idx, 34, &cfg, &l, NULL), PN_OK);
    int normal = 0, total = 0;
    for (int ep = 0; ep < 30; ep++) {
        epoch_run r = run_epoch(l, ep, 64, 16, 1);
        for (size_t k = 0; k < r.n; k++)
            normal += pn_cache_label(c, r.order[k]) == 0;
        total += (int)r.n;
        free_run(&r);
    }
    assert_true(fabs((double)normal / total - 0.5) < 0.06);
    pn_loader_free(l);

    cfg.batch_size = 0;
    assert_int_equal(pn_loader_create(c, idx, 34, &cfg, &l, NULL), PN_EINVAL);
    pn_cache_close(c);
    pn_dataset_free(&ds);
}

/* Data-parallel slices: three loaders taking images [0, 3), [3, 5) and [5, 7)
 * of every batch of 7 deliver, batch by batch, exactly the images (bytes,
 * augmentation included) and order of one loader taking whole batches. */
static void test_loader_slices(void **state)
{
    const char *root = make_dataset();
    pn_dataset ds;
    assert_int_equal(pn_dataset_scan(root, &ds, NULL), PN_OK);
    char path[1200];
    snprintf(path, sizeof path, "%s/slices.cache", pn_test_tmpdir());
    pn_cache *c;
    assert_int_equal(pn_cache_ensure(path, &ds, 16, PN_RESIZE_SQUASH, 2, NULL, &c, NULL), PN_OK);
    size_t idx[34];
    for (size_t i = 0; i < 34; i++)
        idx[i] = i;
    pn_augment aug = pn_augment_default();
    pn_loader_config cfg = pn_loader_config_default();
    cfg.batch_size = 7;
    cfg.shuffle = cfg.drop_last = 1;
    cfg.seed = 5;
    cfg.augment = &aug;
    pn_loader *whole, *part[3];
    assert_int_equal(pn_loader_create(c, idx, 34, &cfg, &whole, NULL), PN_OK);
    const int first[3] = {0, 3, 5}, size[3] = {3, 2, 2};
    for (int r = 0; r < 3; r++) {
        cfg.shard_first = first[r];
        cfg.shard_size = size[r];
        assert_int_equal(pn_loader_create(c, idx, 34, &cfg, &part[r], NULL), PN_OK);
        assert_int_equal(pn_loader_batches(part[r]), pn_loader_batches(whole)); /* 33 / 7 = 4 */
    }
    epoch_run all = run_epoch(whole, 1, 7, 16, 1), slice[3];
    for (int r = 0; r < 3; r++)
        slice[r] = run_epoch(part[r], 1, size[r], 16, 1);
    assert_int_equal(all.n, 28);
    for (size_t b = 0; b < 4; b++)
        for (int r = 0; r < 3; r++) {
            size_t from = b * 7 + (size_t)first[r], to = b * (size_t)size[r];
            assert_memory_equal(slice[r].order + to, all.order + from, (size_t)size[r] * sizeof(size_t));
            assert_memory_equal(slice[r].x + to * 256, all.x + from * 256, (size_t)size[r] * 256 * sizeof(float));
        }
    for (int r = 0; r < 3; r++) {
        free_run(&slice[r]);
        pn_loader_free(part[r]);
    }
    free_run(&all);
    pn_loader_free(whole);
    /* A slice must lie inside the batch, and every batch be whole. */
    pn_loader *bad;
    cfg.shard_first = 6;
    assert_int_equal(pn_loader_create(c, idx, 34, &cfg, &bad, NULL), PN_EINVAL);
    cfg.shard_first = 0;
    cfg.drop_last = 0;
    assert_int_equal(pn_loader_create(c, idx, 34, &cfg, &bad, NULL), PN_EINVAL);
    pn_cache_close(c);
    pn_dataset_free(&ds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resize),
        cmocka_unit_test(test_normalize_and_clahe),
        cmocka_unit_test(test_cache_roundtrip_and_staleness),
        cmocka_unit_test(test_augment_determinism),
        cmocka_unit_test(test_loader),
        cmocka_unit_test(test_loader_slices),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
