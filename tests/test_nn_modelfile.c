/* Model files: pn_net_save / pn_net_load round trips, metadata, and every way
 * a file can be wrong. A broken file must give a clear error that names the
 * file and the reason, never a crash (ASan run) and never a half-built net. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pneumo/nn.h"
#include "pneumo/safetensors.h"
#include "testutil.h"
#include "nn_testctx.h"


/* conv+BN, depthwise conv, SE, dropout, fc: every kind of saved tensor,
 * weights (4-D, 2-D), biases and BN buffers. */
static const char *CFG =
    "[net]\ninput = 16\nchannels = 1\nclasses = 3\n"
    "[conv]\nname = c1\nfilters = 8\nstride = 2\nbatchnorm = 1\nactivation = relu\n"
    "[conv]\nname = c2\ngroups = dw\nbatchnorm = 1\nactivation = hardswish\n"
    "[se]\nname = se\nsqueeze = 4\n"
    "[gap]\n[dropout]\np = 0.2\n[fc]\nname = fc\nout = classes\n";

enum { N = 3, SIZE = 16 };

static float *input(void)
{
    float *x = malloc(N * SIZE * SIZE * sizeof *x);
    assert_non_null(x);
    pn_rng r = pn_rng_seed(8, 0, 0);
    for (int i = 0; i < N * SIZE * SIZE; i++)
        x[i] = pn_rng_normal(&r);
    return x;
}

static void path_of(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s/%s", pn_test_tmpdir(), name);
}

/* A trained-looking net: one Adam step so weights, biases and BN running
 * statistics all differ from their initial values. */
static pn_net *trained_net(void)
{
    pn_error err = {0};
    pn_net *net;
    pn_net_options opt = {.precision = PN_F32, .seed = 3};
    assert_int_equal(pn_net_create(g_ctx, CFG, &opt, &net, &err), PN_OK);
    float *x = input();
    assert_int_equal(pn_net_forward(net, x, N, PN_FWD_TRAIN, &err), PN_OK);
    float dl[N * 3];
    int labels[N] = {0, 1, 2};
    pn_softmax_cross_entropy(pn_net_logits(net), labels, N, 3, NULL, 0, dl);
    assert_int_equal(pn_net_backward(net, dl, &err), PN_OK);
    pn_optim_config c = pn_optim_defaults(PN_ADAM);
    pn_optim *o;
    assert_int_equal(pn_optim_create(&c, net, &o, &err), PN_OK);
    pn_optim_step(o, 0.01f);
    pn_optim_destroy(o);
    free(x);
    return net;
}

static void logits_of(pn_net *net, float *out)
{
    pn_error err = {0};
    float *x = input();
    assert_int_equal(pn_net_forward(net, x, N, PN_FWD_INFER, &err), PN_OK);
    memcpy(out, pn_net_logits(net), N * 3 * sizeof *out);
    free(x);
}

static const char *saved_model(int bf16)
{
    static char path[2][512];
    char *p = path[bf16];
    if (!p[0]) {
        path_of(p, sizeof path[0], bf16 ? "model-bf16.safetensors" : "model.safetensors");
        pn_error err = {0};
        pn_net *net = trained_net();
        pn_kv meta[2] = {{"threshold", "0.42"}, {"trained_on", "synthetic"}};
        assert_int_equal(pn_net_save(net, p, meta, 2, bf16, &err), PN_OK);
        pn_net_destroy(net);
    }
    return p;
}

static void test_round_trip_fp32(void **state)
{
    pn_error err = {0};
    pn_net *net = trained_net();
    float before[N * 3], after[N * 3];
    logits_of(net, before);
    const char *path = saved_model(0);
    pn_net *loaded;
    pn_st_file *meta = NULL;
    pn_status st = pn_net_load(g_ctx, path, PN_F32, &loaded, &meta, &err);
    if (st)
        fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(st, PN_OK);
    logits_of(loaded, after);
    /* fp32 weights are stored exactly and the same kernels run: bit-identical */
    assert_memory_equal(before, after, sizeof before);
    assert_int_equal(pn_net_classes(loaded), 3);
    assert_int_equal(pn_net_input_size(loaded), SIZE);
    assert_int_equal(pn_net_channels(loaded), 1);
    assert_string_equal(pn_net_cfg_text(loaded), CFG);
    assert_true(pn_net_mean(loaded)[0] == pn_net_mean(net)[0]);
    assert_true(pn_net_std(loaded)[0] == pn_net_std(net)[0]);
    /* every parameter and buffer identical */
    for (size_t i = 0; i < pn_net_param_count(net); i++) {
        pn_param *a = pn_net_param(net, i), *b = pn_net_find_param(loaded, a->name);
        assert_non_null(b);
        assert_memory_equal(a->data, b->data, a->numel * sizeof(float));
    }
    /* metadata: ours and the caller's extra keys */
    assert_non_null(meta);
    assert_string_equal(pn_st_metadata(meta, "threshold"), "0.42");
    assert_string_equal(pn_st_metadata(meta, "trained_on"), "synthetic");
    assert_string_equal(pn_st_metadata(meta, "format"), "pneumo");
    assert_string_equal(pn_st_metadata(meta, "pneumo_format_version"), PN_MODEL_FORMAT_VERSION);
    assert_string_equal(pn_st_metadata(meta, "classes"), "3");
    assert_string_equal(pn_st_metadata(meta, "arch"), CFG);
    pn_st_close(meta);
    pn_net_destroy(loaded);
    pn_net_destroy(net);
}

static void test_round_trip_bf16_weights(void **state)
{
    pn_error err = {0};
    pn_net *net = trained_net();
    float before[N * 3], after[N * 3];
    logits_of(net, before);
    pn_net *loaded;
    assert_int_equal(pn_net_load(g_ctx, saved_model(1), PN_F32, &loaded, NULL, &err), PN_OK);
    logits_of(loaded, after);
    /* bf16 weights: each rounded by <= 2^-9 relative, so logits of magnitude
     * ~1 move by ~1e-2 at most; running statistics stay fp32. */
    double max_d = 0, max_l = 0;
    for (int i = 0; i < N * 3; i++) {
        max_d = fmax(max_d, fabs(before[i] - after[i]));
        max_l = fmax(max_l, fabs(before[i]));
    }
    printf("bf16 weights: max |logit diff| %.3g (max |logit| %.3g)\n", max_d, max_l);
    assert_true(max_d < 2e-2 * fmax(1, max_l));
    const pn_param *rm = pn_net_find_param(loaded, "c1.bn.running_mean");
    assert_memory_equal(rm->data, pn_net_find_param(net, "c1.bn.running_mean")->data,
                        rm->numel * sizeof(float));
    struct stat s16, s32;
    assert_int_equal(stat(saved_model(1), &s16), 0);
    assert_int_equal(stat(saved_model(0), &s32), 0);
    assert_true(s16.st_size < s32.st_size);
    pn_net_destroy(loaded);
    pn_net_destroy(net);
}

static void test_load_in_bf16(void **state)
{
    pn_error err = {0};
    pn_net *loaded;
    assert_int_equal(pn_net_load(g_ctx, saved_model(0), PN_BF16, &loaded, NULL, &err), PN_OK);
    assert_int_equal(pn_net_precision(loaded), pn_ctx_has_native_bf16(g_ctx) ? PN_BF16 : PN_F32);
    float l16[N * 3], l32[N * 3];
    logits_of(loaded, l16);
    pn_net_destroy(loaded);
    assert_int_equal(pn_net_load(g_ctx, saved_model(0), PN_F32, &loaded, NULL, &err), PN_OK);
    logits_of(loaded, l32);
    for (int i = 0; i < N * 3; i++)
        assert_true(fabs(l16[i] - l32[i]) < 5e-2 * fmax(1, fabs(l32[i])));
    pn_net_destroy(loaded);
}

/* ---- broken files ---- */

/* Expects pn_net_load to fail with code, naming the file and containing reason. */
static void expect_load_error(const char *path, pn_status code, const char *reason)
{
    pn_error err = {0};
    pn_net *net = (pn_net *)(uintptr_t)1;
    pn_st_file *meta = (pn_st_file *)(uintptr_t)1;
    pn_status st = pn_net_load(g_ctx, path, PN_F32, &net, &meta, &err);
    printf("%-28s -> %s: %s\n", strrchr(path, '/') + 1, pn_status_name(st), err.msg);
    assert_int_equal(st, code);
    assert_null(net);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, reason));
    /* Without an error record the load still fails (prefixed errors keep their status). */
    net = (pn_net *)(uintptr_t)1;
    assert_int_equal(pn_net_load(g_ctx, path, PN_F32, &net, NULL, NULL), code);
    assert_null(net);
}

typedef enum mutation {
    M_RENAME_META, M_VERSION, M_BAD_ARCH, M_NO_ARCH, M_BAD_CLASSES, M_SHAPE, M_UNKNOWN,
    M_MISSING, M_NAN, M_INF_BF16, M_WRONG_DTYPE
} mutation;

/* Rewrites the saved fp32 model with one defect, through pn_st_writer. */
static const char *mutated(mutation m, const char *name)
{
    static char path[64][512];
    static int used;
    char *out = path[used++ % 64];
    path_of(out, 512, name);
    pn_error err = {0};
    pn_st_file *f;
    assert_int_equal(pn_st_open(saved_model(0), &f, &err), PN_OK);
    pn_st_writer *w;
    assert_int_equal(pn_st_writer_create(&w, &err), PN_OK);
    for (size_t i = 0; i < pn_st_count(f); i++) {
        const pn_st_tensor *t = pn_st_get(f, i);
        int64_t shape[PN_ST_MAX_DIMS];
        memcpy(shape, t->shape, sizeof shape);
        float *data = malloc(t->numel * sizeof *data + sizeof *data);
        assert_int_equal(pn_st_to_f32(t, data, &err), PN_OK);
        const char *tname = t->name;
        int is_fc_bias = !strcmp(t->name, "fc.bias");
        if (is_fc_bias && m == M_MISSING) {
            free(data);
            continue;
        }
        if (is_fc_bias && m == M_SHAPE)
            shape[0] = 2; /* 3 classes in the arch, 2 in the tensor */
        if (is_fc_bias && m == M_NAN)
            data[1] = NAN;
        if (is_fc_bias && m == M_INF_BF16)
            data[0] = INFINITY;
        if (is_fc_bias && m == M_UNKNOWN)
            tname = "fc.bias_typo";
        if (is_fc_bias && m == M_WRONG_DTYPE) {
            int32_t ints[3] = {1, 2, 3};
            assert_int_equal(pn_st_writer_add(w, tname, PN_ST_I32, t->ndim, shape, ints, &err), PN_OK);
        } else {
            pn_st_dtype dt = is_fc_bias && m == M_INF_BF16 ? PN_ST_BF16 : PN_ST_F32;
            assert_int_equal(pn_st_writer_add_f32(w, tname, dt, t->ndim, shape, data, &err), PN_OK);
        }
        free(data);
    }
    for (size_t i = 0; i < pn_st_metadata_count(f); i++) {
        const char *key = pn_st_metadata_key(f, i), *value = pn_st_metadata(f, key);
        if (!strcmp(key, "format") && m == M_RENAME_META)
            value = "onnx";
        if (!strcmp(key, "pneumo_format_version") && m == M_VERSION)
            value = "2";
        if (!strcmp(key, "arch") && m == M_BAD_ARCH)
            value = "[net]\ninput = 16\nchannels = 1\nclasses = 3\n[conv\nfilters = 8\n";
        if (!strcmp(key, "arch") && m == M_NO_ARCH)
            continue;
        if (!strcmp(key, "classes") && m == M_BAD_CLASSES)
            value = "three";
        assert_int_equal(pn_st_writer_set_metadata(w, key, value, &err), PN_OK);
    }
    assert_int_equal(pn_st_writer_save(w, out, &err), PN_OK);
    pn_st_writer_destroy(w);
    pn_st_close(f);
    return out;
}

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
}

static char *read_bytes(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    rewind(f);
    char *buf = malloc(*n);
    assert_int_equal(fread(buf, 1, *n, f), *n);
    fclose(f);
    return buf;
}

static void test_not_safetensors(void **state)
{
    char path[512], path2[512], path3[512];
    path_of(path, sizeof path, "text.safetensors");
    const char text[] = "this is a text file, not a model\n";
    write_bytes(path, text, sizeof text - 1);
    pn_error err = {0};
    pn_net *net;
    pn_status st = pn_net_load(g_ctx, path, PN_F32, &net, NULL, &err);
    printf("text file -> %s: %s\n", pn_status_name(st), err.msg);
    assert_int_not_equal(st, PN_OK);
    assert_null(net);
    assert_non_null(strstr(err.msg, path));
    /* empty file, and a missing one */
    path_of(path2, sizeof path2, "empty.safetensors");
    write_bytes(path2, "", 0);
    st = pn_net_load(g_ctx, path2, PN_F32, &net, NULL, &err);
    assert_int_not_equal(st, PN_OK);
    assert_non_null(strstr(err.msg, path2));
    path_of(path3, sizeof path3, "does-not-exist.safetensors");
    st = pn_net_load(g_ctx, path3, PN_F32, &net, NULL, &err);
    assert_int_equal(st, PN_EIO);
    assert_non_null(strstr(err.msg, path3));
}

static void test_truncated(void **state)
{
    size_t n;
    char *bytes = read_bytes(saved_model(0), &n);
    char path[512];
    /* cut inside the tensor data, inside the header, and inside the length */
    size_t cuts[3] = {n - 100, 40, 5};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/truncated-%d.safetensors", pn_test_tmpdir(), i);
        write_bytes(path, bytes, cuts[i]);
        pn_error err = {0};
        pn_net *net;
        pn_status st = pn_net_load(g_ctx, path, PN_F32, &net, NULL, &err);
        printf("truncated to %zu of %zu bytes -> %s: %s\n", cuts[i], n, pn_status_name(st), err.msg);
        assert_int_equal(st, PN_EFORMAT);
        assert_null(net);
        assert_non_null(strstr(err.msg, path));
    }
    free(bytes);
}

static void test_tensor_defects(void **state)
{
    expect_load_error(mutated(M_SHAPE, "shape.safetensors"), PN_EFORMAT, "wrong shape");
    expect_load_error(mutated(M_UNKNOWN, "unknown.safetensors"), PN_EFORMAT, "unknown tensor 'fc.bias_typo'");
    expect_load_error(mutated(M_MISSING, "missing.safetensors"), PN_EFORMAT, "'fc.bias' is missing");
    expect_load_error(mutated(M_NAN, "nan.safetensors"), PN_EFORMAT, "NaN");
    expect_load_error(mutated(M_INF_BF16, "inf.safetensors"), PN_EFORMAT, "infinity");
    expect_load_error(mutated(M_WRONG_DTYPE, "int32.safetensors"), PN_EINVAL, "fc.bias");
}

static void test_metadata_defects(void **state)
{
    expect_load_error(mutated(M_RENAME_META, "format.safetensors"), PN_EFORMAT, "not a pneumo model file");
    expect_load_error(mutated(M_NO_ARCH, "noarch.safetensors"), PN_EFORMAT, "not a pneumo model file");
    expect_load_error(mutated(M_VERSION, "version.safetensors"), PN_EUNSUPPORTED, "version 2");
    expect_load_error(mutated(M_BAD_ARCH, "arch.safetensors"), PN_EFORMAT, "cfg line 5");
    expect_load_error(mutated(M_BAD_CLASSES, "classes.safetensors"), PN_EFORMAT, "'classes'");
}

static void test_plain_safetensors_is_not_a_model(void **state)
{
    /* A valid safetensors file without our metadata (e.g. a torchvision export). */
    char path[512];
    path_of(path, sizeof path, "plain.safetensors");
    pn_error err = {0};
    pn_st_writer *w;
    assert_int_equal(pn_st_writer_create(&w, &err), PN_OK);
    const float v[2] = {1, 2};
    const int64_t shape[1] = {2};
    assert_int_equal(pn_st_writer_add_f32(w, "fc.bias", PN_ST_F32, 1, shape, v, &err), PN_OK);
    assert_int_equal(pn_st_writer_save(w, path, &err), PN_OK);
    pn_st_writer_destroy(w);
    expect_load_error(path, PN_EFORMAT, "not a pneumo model file");
}

static void test_save_fused_refused(void **state)
{
    pn_error err = {0};
    pn_net *net = trained_net();
    assert_int_equal(pn_net_fuse_for_inference(net, &err), PN_OK);
    char path[512];
    path_of(path, sizeof path, "fused.safetensors");
    assert_int_equal(pn_net_save(net, path, NULL, 0, 0, &err), PN_EINVAL);
    assert_int_not_equal(access(path, F_OK), 0);
    /* an unwritable destination fails cleanly */
    pn_net *net2 = trained_net();
    assert_int_equal(pn_net_save(net2, "/nonexistent-dir/m.safetensors", NULL, 0, 0, &err), PN_EIO);
    pn_net_destroy(net2);
    pn_net_destroy(net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_fp32),
        cmocka_unit_test(test_round_trip_bf16_weights),
        cmocka_unit_test(test_load_in_bf16),
        cmocka_unit_test(test_not_safetensors),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_tensor_defects),
        cmocka_unit_test(test_metadata_defects),
        cmocka_unit_test(test_plain_safetensors_is_not_a_model),
        cmocka_unit_test(test_save_fused_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
