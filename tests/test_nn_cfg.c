/* Architecture cfg files: parse errors point at the line and name the
 * problem; every built-in models/arch/NAME.cfg builds with the parameter counts
 * of its torchvision counterpart and the expected multiply-accumulate count. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pneumo/nn.h"
#include "testutil.h"
#include "nn_testctx.h"


static void expect_error(const char *cfg, pn_status code, const char *needle, const char *needle2)
{
    pn_error err = {0};
    pn_net *net = (pn_net *)(uintptr_t)1;
    pn_net_options opt = {.precision = PN_F32};
    pn_status st = pn_net_create(g_ctx, cfg, &opt, &net, &err);
    printf("%-16s: %s\n", pn_status_name(st), err.msg);
    assert_int_equal(st, code);
    assert_null(net);
    assert_non_null(strstr(err.msg, needle));
    if (needle2)
        assert_non_null(strstr(err.msg, needle2));
    /* The same failure without an error record (err == NULL) is still a failure:
     * the layers' `return pn_error_prefix(err, st, ...)` must not turn it into PN_OK. */
    net = (pn_net *)(uintptr_t)1;
    assert_int_equal(pn_net_create(g_ctx, cfg, &opt, &net, NULL), code);
    assert_null(net);
}

#define NET "[net]\ninput = 16\nchannels = 1\nclasses = 2\n" /* lines 1-4 */
#define HEAD "[gap]\n[fc]\nout = classes\n"

static void test_parse_errors(void **state)
{
    /* line numbers: [net] block is lines 1-4, so the next section is line 5 */
    expect_error(NET "[conv2d]\nfilters = 4\n" HEAD, PN_EFORMAT, "line 5", "unknown section [conv2d]");
    /* a typo in a key: reported with its section's line */
    expect_error(NET "[conv]\nfilters = 4\nstrid = 2\n" HEAD, PN_EFORMAT, "line 5", "no key 'strid'");
    expect_error(NET "[conv]\nfilters = 4\nstride = two\n" HEAD, PN_EFORMAT, "line 5", "stride = 'two' is not an integer");
    expect_error(NET "[conv]\nfilters = 4\nfilters = 8\n" HEAD, PN_EFORMAT, "line 7", "key 'filters' repeated");
    expect_error(NET "[dropout]\np = lots\n" HEAD, PN_EFORMAT, "line 5", "p = 'lots' is not a number");
    expect_error(NET "[dropout]\np = 1\n" HEAD, PN_EFORMAT, "line 5", "p must be in [0, 1)");
    expect_error(NET "[conv]\nfilters = 4\nactivation = gelu\n" HEAD, PN_EFORMAT, "line 5", "unknown activation 'gelu'");
    expect_error(NET "[conv]\nfilters = 4\npad = wide\n" HEAD, PN_EFORMAT, "line 5", "bad padding 'wide'");
    expect_error(NET "[conv]\nfilters = 3\ngroups = 2\n" HEAD, PN_EFORMAT, "line 5", "not divisible by groups=2");
    expect_error(NET "[conv]\nfilters = 4\nsize = 21\npad = valid\n" HEAD, PN_EFORMAT, "line 5", "too small");
    /* sizes are checked before any arithmetic or allocation (found by fuzz_cfg) */
    expect_error(NET "[conv]\nfilters = 4\nsize = 3abc\n" HEAD, PN_EFORMAT, "line 5", "size '3abc' is not K or HxW");
    expect_error(NET "[conv]\nfilters = 4\nsize = 3x\n" HEAD, PN_EFORMAT, "line 5", "size '3x' is not K or HxW");
    expect_error(NET "[conv]\nfilters = 4\nsize = 5000\n" HEAD, PN_EFORMAT, "line 5", "sides in 1..4096");
    expect_error(NET "[conv]\nfilters = 4\ngroups = two\n" HEAD, PN_EFORMAT, "line 5", "groups = 'two' is not an integer");
    expect_error(NET "[conv]\nfilters = 4\ndilation = 100000\n" HEAD, PN_EFORMAT, "line 5", "at most 4096");
    expect_error(NET "[conv]\nfilters = 1000000000\n" HEAD, PN_ELIMIT, "conv0.weight", "more than 268435456 elements");
    expect_error(NET "[maxpool]\nsize = 0\n" HEAD, PN_EFORMAT, "line 5", "size and stride must be in 1..4096");
    expect_error(NET "[avgpool]\nsize = 2\nstride = 0\n" HEAD, PN_EFORMAT, "line 5", "size and stride must be in 1..4096");
    expect_error(NET "[maxpool]\nsize = 70000\n" HEAD, PN_EFORMAT, "line 5", "size and stride must be in 1..4096");
    expect_error(NET "[conv]\nfilters = 4\n[add]\nfrom = nosuch\n" HEAD, PN_EFORMAT, "line 7", "no earlier block named 'nosuch'");
    expect_error(NET "[conv]\nfilters = 4\n[add]\nfrom = -5\n" HEAD, PN_EFORMAT, "line 7", "offset -5");
    expect_error(NET "[conv]\nfilters = 4\n[add]\n" HEAD, PN_EFORMAT, "line 7", "needs `from`");
    expect_error(NET "[conv]\nname = a\nfilters = 4\n[conv]\nfilters = 8\n[add]\nfrom = a\n" HEAD, PN_EFORMAT,
                 "line 10", "differ");
    expect_error(NET "[conv]\nname = a\nfilters = 4\n[maxpool]\n[concat]\nfrom = a, -1\n" HEAD, PN_EFORMAT,
                 "line 9", "spatial sizes differ");
    expect_error(NET "[fc]\nname = f\n" HEAD, PN_EFORMAT, "line 5", "missing out");
    expect_error(NET "[se]\nname = s\n" HEAD, PN_EFORMAT, "line 5", "squeeze must be positive");
    /* each layer kind that prefixes its callee's error with the cfg line */
    expect_error(NET "[se]\nsqueeze = 2\ngate = gelu\n" HEAD, PN_EFORMAT, "line 5 [se]", "unknown activation");
    expect_error(NET "[maxpool]\npad = wide\n" HEAD, PN_EFORMAT, "line 5", "bad padding 'wide'");
    expect_error(NET "[activation]\ntype = gelu\n" HEAD, PN_EFORMAT, "line 5", "unknown activation 'gelu'");
    expect_error(NET "[conv\nfilters = 4\n", PN_EFORMAT, "line 5", "bad section header");
    expect_error(NET "filters 4\n", PN_EFORMAT, "line 5", "expected key = value");
    expect_error("input = 16\n[net]\n", PN_EFORMAT, "line 1", "outside a [section]");
    expect_error(NET "[conv]\nfilters =\n", PN_EFORMAT, "line 6", "empty key or value");
    expect_error("[conv]\nfilters = 4\n" HEAD, PN_EFORMAT, "[net]", NULL);
    expect_error(NET, PN_EFORMAT, "no layers", NULL);
    expect_error("", PN_EFORMAT, "no sections", NULL);
    expect_error("# only a comment\n", PN_EFORMAT, "no sections", NULL);
    expect_error("[net]\nchannels = 2\n" HEAD, PN_EINVAL, "channels must be 1 or 3", NULL);
    expect_error("[net]\ninput = 4\n" HEAD, PN_EINVAL, "out of range", NULL);
    expect_error("[net]\ninput = 16\nchanels = 1\n" HEAD, PN_EFORMAT, "no key 'chanels'", NULL);
    expect_error("[net]\ninput = 16\nmean = abc\n" HEAD, PN_EFORMAT, "comma-separated numbers in 'abc'", NULL);
    /* the last block must be the logits: classes x 1 x 1 */
    expect_error(NET "[conv]\nfilters = 2\n", PN_EFORMAT, "outputs 2x16x16", "not the 2 class logits");
    expect_error(NET "[gap]\n[fc]\nout = 5\n", PN_EFORMAT, "outputs 5x1x1", "not the 2 class logits");
}

static void test_comments_and_spacing(void **state)
{
    pn_error err = {0};
    pn_net *net;
    pn_net_options opt = {.precision = PN_F32};
    const char *cfg = "# leading comment\n\n[net]   \n  input=16 # trailing\nchannels = 1\n"
                      "classes = 3\n\n[ conv ]\n  name = c # the conv\n filters=4\nsize = 3x1\n"
                      "[gap]\n[fc]\nout = classes\n";
    pn_status st = pn_net_create(g_ctx, cfg, &opt, &net, &err);
    if (st)
        fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(st, PN_OK);
    assert_int_equal(pn_net_classes(net), 3);
    pn_param *w = pn_net_find_param(net, "c.weight");
    assert_non_null(w);
    assert_int_equal(w->shape[2], 3);
    assert_int_equal(w->shape[3], 1);
    pn_net_destroy(net);
    /* options override the cfg */
    pn_net_options o2 = {.precision = PN_F32, .classes = 5, .input_size = 32};
    assert_int_equal(pn_net_create(g_ctx, cfg, &o2, &net, &err), PN_OK);
    assert_int_equal(pn_net_classes(net), 5);
    assert_int_equal(pn_net_input_size(net), 32);
    pn_net_destroy(net);
}

/* Trainable parameters with 2 classes, from torchvision (sum of p.numel()
 * over model.parameters(); simple-cnn has no torchvision model: its comment
 * gives 32*9+32 + 64*32*9+64 + 128*64*9+128 + 32768*256+256 + 256*2+2).
 * MACs: conv and linear multiply-accumulates of the torchvision model at
 * 224x224, counted with forward hooks; pneumo also counts pooling and SE
 * scaling, which add < 1%, hence the 1% tolerance. mobilenetv3-small is
 * torchvision's features with a 576->256->2 head instead of 576->1024->1000:
 * 56,510,400 - (576*1024 + 1024*1000) + (576*256 + 256*2) = 55,044,544. */
static const struct {
    const char *name;
    size_t trainable;
    double macs;
} KNOWN[] = {
    {"simple-cnn", 8482050, 164102656},
    {"resnet18", 11177538, 1813562368},
    {"mobilenetv2", 2226434, 299496832},
    {"mobilenetv3-small", 1075234, 55044544},
    {"mobilenetv3-small-imagenet", 2542856, 56510400},
    {"vgg19", 139578434, 19627974656.0},
};

static void check_arch(const char *name, size_t trainable, double macs)
{
    pn_error err = {0};
    char *text;
    pn_status st = pn_arch_read(name, &text, &err);
    if (st)
        fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(st, PN_OK);
    pn_net *net;
    pn_net_options opt = {.precision = PN_F32};
    st = pn_net_create(g_ctx, text, &opt, &net, &err);
    if (st)
        fprintf(stderr, "%s: %s\n", name, err.msg);
    assert_int_equal(st, PN_OK);
    size_t got = pn_net_trainable_count(net);
    double got_macs = (double)pn_net_macs(net);
    printf("%-28s %12zu trainable (want %12zu), %8.4f GMACs (torchvision conv+fc %.4f)\n", name,
           got, trainable, got_macs / 1e9, macs / 1e9);
    assert_int_equal(got, trainable);
    assert_true(got_macs >= macs);
    assert_true(got_macs <= macs * 1.01);
    assert_non_null(pn_net_last_conv_name(net));
    free(text);
    pn_net_destroy(net);
}

static void test_builtin_archs(void **state)
{
    for (size_t i = 0; i < sizeof KNOWN / sizeof *KNOWN; i++) {
        if (pn_test_sanitized() && !strcmp(KNOWN[i].name, "vgg19")) {
            printf("vgg19: skipped under sanitizers (139M parameters to initialise)\n");
            continue;
        }
        check_arch(KNOWN[i].name, KNOWN[i].trainable, KNOWN[i].macs);
    }
}

static void test_every_arch_file_builds_and_is_known(void **state)
{
    /* A new models/arch/NAME.cfg must get an entry in KNOWN (and so a checked count). */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/models/arch", pn_test_source_dir());
    DIR *d = opendir(dir);
    assert_non_null(d);
    int files = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".cfg"))
            continue;
        files++;
        int known = 0;
        for (size_t i = 0; i < sizeof KNOWN / sizeof *KNOWN; i++)
            known |= len - 4 == strlen(KNOWN[i].name) && !strncmp(e->d_name, KNOWN[i].name, len - 4);
        if (!known)
            fprintf(stderr, "models/arch/%s has no known parameter count in test_nn_cfg.c\n", e->d_name);
        assert_true(known);
    }
    closedir(d);
    assert_int_equal(files, (int)(sizeof KNOWN / sizeof *KNOWN));
}

static void test_simple_cnn_macs_exact(void **state)
{
    /* conv1 32*128*128*9 + pool 32*64*64*4 + conv2 64*64*64*32*9 + pool
     * 64*32*32*4 + conv3 128*32*32*64*9 + pool 128*16*16*4 + fc1 32768*256
     * + fc2 256*2 = 164,102,656 + 917,504 (pooling) = 165,020,160 */
    pn_error err = {0};
    char *text;
    assert_int_equal(pn_arch_read("simple-cnn", &text, &err), PN_OK);
    pn_net *net;
    pn_net_options opt = {.precision = PN_F32};
    assert_int_equal(pn_net_create(g_ctx, text, &opt, &net, &err), PN_OK);
    assert_int_equal(pn_net_macs(net), 165020160ull);
    free(text);
    pn_net_destroy(net);
}

static void test_arch_read_errors(void **state)
{
    pn_error err = {0};
    char *text = NULL;
    assert_int_equal(pn_arch_read("no-such-arch", &text, &err), PN_EINVAL);
    assert_non_null(strstr(err.msg, "no-such-arch"));
    assert_int_equal(pn_arch_read("../etc/passwd", &text, &err), PN_EIO); /* a path: read as given */
    assert_int_equal(pn_arch_read("Bad Name!", &text, &err), PN_EINVAL);
    assert_null(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_comments_and_spacing),
        cmocka_unit_test(test_builtin_archs),
        cmocka_unit_test(test_every_arch_file_builds_and_is_known),
        cmocka_unit_test(test_simple_cnn_macs_exact),
        cmocka_unit_test(test_arch_read_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
