/* Fixtures for tests/onnx_export_test.sh (a helper program, not a test).
 *
 *   onnx_fixtures images SIZE OUTDIR IMAGE...
 *       decodes each image, resizes it to SIZE x SIZE and writes OUTDIR/<i>.png
 *       (for `pneumo predict`) and OUTDIR/<i>.raw (the same SIZE*SIZE bytes, for
 *       ONNX Runtime).
 *   onnx_fixtures model ARCH CLASSES OUT.safetensors RAW...
 *       saves a randomly initialised model of ARCH (a models/arch name or a
 *       cfg file) with 2 (NORMAL, PNEUMONIA) or 3 (NORMAL, BACTERIAL, VIRAL)
 *       classes, whose batch norms have random statistics and affine
 *       parameters (so folding them matters), with a temperature chosen so
 *       that P(pneumonia) on the RAW images is neither 0 nor 1.
 *   onnx_fixtures ensemble OUT.onnx MODEL...
 *       exports separate model files as one ensemble graph (the mean of their
 *       probabilities) through the library, so that its members may mix
 *       architectures and heads; each model's temperature is its own. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pneumo/data.h"
#include "pneumo/export.h"
#include "pneumo/nn.h"
#include "pneumo/safetensors.h"

static int fail(const char *what, const pn_error *err)
{
    fprintf(stderr, "onnx_fixtures: %s: %s\n", what, err->msg);
    return 1;
}

static int write_file(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(data, 1, size, f) == size;
    if (f && fclose(f) != 0)
        ok = 0;
    if (!ok)
        fprintf(stderr, "onnx_fixtures: cannot write %s\n", path);
    return ok ? 0 : 1;
}

static int make_images(int size, const char *dir, int n, char **paths)
{
    pn_error err = {0};
    for (int i = 0; i < n; i++) {
        pn_image img = {0}, resized = {0};
        char out[4096];
        if (pn_image_decode_file(paths[i], size, size, &img, &err) ||
            pn_image_resize(&img, size, size, PN_RESIZE_SQUASH, &resized, &err))
            return fail(paths[i], &err);
        snprintf(out, sizeof out, "%s/%d.png", dir, i);
        if (pn_image_write_png(out, &resized, &err))
            return fail(out, &err);
        snprintf(out, sizeof out, "%s/%d.raw", dir, i);
        if (write_file(out, resized.pixels, (size_t)size * size))
            return 1;
        pn_image_free(&img);
        pn_image_free(&resized);
    }
    return 0;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* Batch norms away from the identity: gamma, beta, mean in a range, var > 0.
 * A batch norm is the prefix of a "...running_mean" buffer. */
static void randomise_batchnorms(pn_net *net)
{
    static const struct { const char *suffix; float lo, span; } parts[] = {
        {"weight", 0.75f, 0.5f}, {"bias", -0.1f, 0.2f}, {"running_mean", -0.1f, 0.2f},
        {"running_var", 0.5f, 1.0f}};
    pn_rng r = pn_rng_seed(7, 0, 0);
    for (size_t i = 0; i < pn_net_param_count(net); i++) {
        const char *name = pn_net_param(net, i)->name;
        if (!ends_with(name, ".running_mean"))
            continue;
        int prefix_len = (int)(strlen(name) - strlen("running_mean"));
        for (size_t k = 0; k < sizeof parts / sizeof *parts; k++) {
            char full[160];
            snprintf(full, sizeof full, "%.*s%s", prefix_len, name, parts[k].suffix);
            pn_param *p = pn_net_find_param(net, full);
            for (size_t j = 0; p && j < p->numel; j++)
                p->data[j] = parts[k].lo + parts[k].span * pn_rng_uniform(&r);
        }
    }
    pn_net_params_changed(net);
}

/* The largest |positive logit| (z1 - z0, or logsumexp(z1, z2) - z0) over the
 * images, after pneumo's preprocessing. */
static int logit_spread(pn_net *net, int n, char **raws, float *spread)
{
    int size = pn_net_input_size(net), ch = pn_net_channels(net);
    size_t plane = (size_t)size * size;
    uint8_t *pixels = malloc(plane);              /* [size * size] one image */
    float *input = malloc(plane * ch * sizeof(float)); /* [size * size * ch] NHWC */
    pn_norm norm = {.channels = ch};
    memcpy(norm.mean, pn_net_mean(net), (size_t)ch * sizeof(float));
    memcpy(norm.std, pn_net_std(net), (size_t)ch * sizeof(float));
    pn_error err = {0};
    int rc = !pixels || !input;
    *spread = 0;
    for (int i = 0; !rc && i < n; i++) {
        FILE *f = fopen(raws[i], "rb");
        rc = !f || fread(pixels, 1, plane, f) != plane;
        if (f)
            fclose(f);
        if (rc)
            fprintf(stderr, "onnx_fixtures: cannot read %zu bytes from %s\n", plane, raws[i]);
        else if (pn_normalize(pixels, size, size, &norm, input, &err) ||
                 pn_net_forward(net, input, 1, PN_FWD_INFER, &err))
            rc = fail(raws[i], &err);
        else
            *spread = fmaxf(*spread, fabsf(pn_positive_logit(pn_net_logits(net), pn_net_classes(net))));
    }
    free(pixels);
    free(input);
    return rc;
}

static int make_model(const char *arch, int classes, const char *out, int n, char **raws)
{
    pn_error err = {0};
    char *text = NULL;
    pn_ctx *ctx = NULL;
    pn_net *net = NULL;
    pn_net_options opt = {.classes = classes, .seed = 11};
    float spread = 0;
    int rc = 0;
    if (pn_arch_read(arch, &text, &err) || pn_ctx_create(&ctx, &err) ||
        pn_net_create(ctx, text, &opt, &net, &err))
        rc = fail(arch, &err);
    if (!rc) {
        randomise_batchnorms(net);
        rc = logit_spread(net, n, raws, &spread);
    }
    if (!rc) {
        /* |positive logit| / T at most 3: P(pneumonia) within [0.047, 0.953] */
        float temperature = fminf(fmaxf(spread / 3, 0.01f), 100.0f);
        char t[32];
        snprintf(t, sizeof t, "%.6g", temperature);
        const char *name = strrchr(arch, '/') ? strrchr(arch, '/') + 1 : arch;
        pn_kv meta[] = {{"temperature", t}, {"arch_name", name}};
        if (pn_net_save(net, out, meta, 2, 0, &err))
            rc = fail(out, &err);
        else
            printf("%s: temperature %s (largest logit difference %.3g)\n", out, t, spread);
    }
    pn_net_destroy(net);
    pn_ctx_destroy(ctx);
    free(text);
    return rc;
}

static int export_ensemble(const char *out, int n, char **paths)
{
    pn_error err = {0};
    pn_ctx *ctx = NULL;
    pn_export_member *members = calloc((size_t)n, sizeof *members); /* [n] */
    int rc = !members || pn_ctx_create(&ctx, &err) ? fail("setup", &err) : 0;
    for (int i = 0; !rc && i < n; i++) {
        pn_net *net = NULL;
        pn_st_file *meta = NULL;
        if (pn_net_load(ctx, paths[i], PN_F32, &net, &meta, &err) || pn_net_fuse_for_inference(net, &err))
            rc = fail(paths[i], &err);
        const char *t = meta ? pn_st_metadata(meta, "temperature") : NULL;
        members[i] = (pn_export_member){net, t ? strtof(t, NULL) : 1.0f};
        pn_st_close(meta);
    }
    if (!rc && pn_export_onnx(members, n, NULL, 0, out, &err))
        rc = fail(out, &err);
    for (int i = 0; members && i < n; i++)
        pn_net_destroy((pn_net *)members[i].net);
    free(members);
    pn_ctx_destroy(ctx);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc >= 5 && !strcmp(argv[1], "images"))
        return make_images(atoi(argv[2]), argv[3], argc - 4, argv + 4);
    if (argc >= 6 && !strcmp(argv[1], "model") && (!strcmp(argv[3], "2") || !strcmp(argv[3], "3")))
        return make_model(argv[2], atoi(argv[3]), argv[4], argc - 5, argv + 5);
    if (argc >= 4 && !strcmp(argv[1], "ensemble"))
        return export_ensemble(argv[2], argc - 3, argv + 3);
    fprintf(stderr, "usage: onnx_fixtures images SIZE OUTDIR IMAGE... | model ARCH 2|3 OUT.safetensors RAW... | "
                    "ensemble OUT.onnx MODEL...\n");
    return 2;
}
