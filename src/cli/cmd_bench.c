/* pneumo bench: engine throughput on random data, for bench/run.sh and
 * bench/ort_run.sh. Prints one JSON line in the same shape as
 * bench/torch_bench.py and bench/ort_bench.mjs. With --model it times what
 * `pneumo export` puts in an ONNX graph: uint8 images -> normalised input ->
 * the network -> temperature-scaled probabilities. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cli/commands.h"
#include "cli/options.h"
#include "pneumo/data.h"
#include "pneumo/nn.h"
#include "pneumo/os.h"
#include "pneumo/safetensors.h"

typedef struct bench_opts {
    const char *arch;
    int train; /* 1: forward + backward + update; 0: inference */
    int batch, size, threads, iters, warmup, bf16, fused, profile;
    const char *model;      /* a model file's network instead of arch, timed from pixels */
    const char *save_model; /* write the randomly initialised arch network here instead of timing */
} bench_opts;

/* --model: random uint8 images and what turns them into probabilities. */
typedef struct bench_pixels {
    uint8_t *pixels;    /* [batch][size * size] grayscale images */
    pn_norm norm;       /* the network's channels, mean, std */
    float temperature;  /* the model file's */
    float *probs;       /* [batch] P(pneumonia) */
} bench_pixels;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static const pn_opt_choice mode_choices[] = {{"train", 1}, {"infer", 0}, {NULL, 0}};
static const pn_opt_choice precision_choices[] = {{"fp32", 0}, {"bf16", 1}, {NULL, 0}};

static int usage(FILE *out)
{
    fprintf(out, "usage: pneumo bench [--arch NAME] [--mode train|infer] [--batch N] [--size N]\n"
                 "       [--threads N] [--iters N] [--warmup N] [--precision fp32|bf16] [--no-fuse]\n"
                 "       [--profile]   per-layer times of the timed iterations, to stderr\n"
                 "       [--model FILE]  time a model file's network (one network, inference) from uint8\n"
                 "                       images to probabilities, the work of its `pneumo export` graph\n"
                 "       [--save-model FILE]  write the randomly initialised --arch network as a model\n"
                 "                       file (temperature 1) instead of timing it\n");
    return out == stdout ? 0 : 2;
}

/* Returns -1 to go on, else the exit code. */
static int parse(int argc, char **argv, bench_opts *o)
{
    *o = (bench_opts){"resnet18", 1, 32, 0, 2, 10, 3, 0, 1, 0, NULL, NULL};
    const pn_option table[] = {
        PN_OPT_STRING("arch", &o->arch),
        PN_OPT_CHOICE("mode", &o->train, mode_choices),
        PN_OPT_INT("batch", &o->batch, 1, 65536),
        PN_OPT_INT("size", &o->size, 8, 4096),
        PN_OPT_INT("threads", &o->threads, 1, 1024),
        PN_OPT_INT("iters", &o->iters, 1, 1000000),
        PN_OPT_INT("warmup", &o->warmup, 0, 1000000),
        PN_OPT_CHOICE("precision", &o->bf16, precision_choices),
        PN_OPT_FLAG("no-fuse", &o->fused, 0),
        PN_OPT_FLAG("profile", &o->profile, 1),
        PN_OPT_STRING("model", &o->model),
        PN_OPT_STRING("save-model", &o->save_model),
        PN_OPT_END,
    };
    switch (pn_opts_parse("pneumo bench", table, argc, argv, 1, NULL, NULL)) {
    case PN_OPTS_HELP: return usage(stdout);
    case PN_OPTS_BAD: return 2;
    case PN_OPTS_OK: break;
    }
    if (o->model && (o->train || o->save_model || o->size)) {
        fprintf(stderr, "pneumo bench: --model times inference at the model's input size: it takes no "
                        "--mode train, --save-model or --size\n");
        return 2;
    }
    if (!o->size)
        o->size = 224;
    return -1;
}

/* px->probs from the logits, as `pneumo predict` computes P(pneumonia). */
static void bench_head(pn_net *net, int batch, bench_pixels *px)
{
    const float *z = pn_net_logits(net);
    int classes = pn_net_classes(net);
    for (int i = 0; i < batch; i++)
        px->probs[i] = 1.0f / (1.0f + expf(-pn_positive_logit(z + (size_t)i * classes, classes) / px->temperature));
}

/* x (batch x size x size x channels NHWC) from the images in px. */
static int bench_normalise(const bench_pixels *px, int batch, int size, float *x, pn_error *err)
{
    size_t plane = (size_t)size * size;
    for (int i = 0; i < batch; i++)
        if (pn_normalize(px->pixels + i * plane, size, size, &px->norm, x + i * plane * px->norm.channels, err))
            return 1;
    return 0;
}

/* times[0..iters) wall seconds per timed iteration, then times[iters..2 iters) CPU seconds. */
static int run_iters(const bench_opts *o, pn_net *net, pn_optim *opt, float *x, bench_pixels *px,
                     const int *labels, double *times, pn_error *err)
{
    int classes = pn_net_classes(net), train = o->train;
    float *dlogits = malloc((size_t)o->batch * classes * sizeof(float));
    for (int it = 0; it < o->warmup + o->iters; it++) {
        double t0 = pn_clock_s(), c0 = pn_cpu_clock_s();
        if (px && bench_normalise(px, o->batch, pn_net_input_size(net), x, err))
            return free(dlogits), 1;
        if (train) {
            if (pn_net_forward(net, x, o->batch, PN_FWD_TRAIN, err))
                return free(dlogits), 1;
            pn_softmax_cross_entropy(pn_net_logits(net), labels, o->batch, classes, NULL, 0, dlogits);
            if (pn_net_backward(net, dlogits, err))
                return free(dlogits), 1;
            pn_optim_step(opt, 1e-4f);
        } else if (pn_net_forward(net, x, o->batch, PN_FWD_INFER, err)) {
            return free(dlogits), 1;
        }
        if (px)
            bench_head(net, o->batch, px);
        if (it >= o->warmup) {
            times[it - o->warmup] = pn_clock_s() - t0;
            times[o->iters + it - o->warmup] = pn_cpu_clock_s() - c0;
        }
        if (o->profile && it + 1 == o->warmup)
            pn_net_profile(net, 1);
    }
    free(dlogits);
    return 0;
}

/* The network to time: a model file's (*arch_name and *temperature from its
 * metadata) or --arch's, randomly initialised. */
static pn_status make_net(const bench_opts *o, pn_ctx *ctx, pn_net **net, char *arch_name, size_t name_size,
                          float *temperature, pn_error *err)
{
    pn_dtype precision = o->bf16 ? PN_BF16 : PN_F32;
    snprintf(arch_name, name_size, "%s", o->arch);
    *temperature = 1;
    if (o->model) {
        pn_st_file *meta = NULL;
        pn_status st = pn_net_load(ctx, o->model, precision, net, &meta, err);
        const char *t = meta ? pn_st_metadata(meta, "temperature") : NULL, *name = meta ? pn_st_metadata(meta, "arch_name") : NULL;
        *temperature = t ? strtof(t, NULL) : 1.0f;
        snprintf(arch_name, name_size, "%s", name ? name : "custom");
        pn_st_close(meta);
        if (!st && !(*temperature > 0))
            st = pn_fail(err, PN_EFORMAT, "%s: temperature must be positive", o->model);
        return st;
    }
    char *text = NULL;
    pn_net_options nopt = {.input_size = o->size, .precision = precision, .seed = 1};
    pn_status st = pn_arch_read(o->arch, &text, err);
    if (!st)
        st = pn_net_create(ctx, text, &nopt, net, err);
    free(text);
    return st;
}

static pn_status save_model(const bench_opts *o, const pn_net *net, pn_error *err)
{
    const pn_kv meta[] = {{"arch_name", o->arch}, {"temperature", "1"}};
    pn_status st = pn_net_save(net, o->save_model, meta, sizeof meta / sizeof *meta, 0, err);
    if (!st)
        printf("wrote %s: %s, randomly initialised (seed 1), %d x %d input\n", o->save_model, o->arch,
               pn_net_input_size(net), pn_net_input_size(net));
    return st;
}

/* Random inputs: floats, or with --model uint8 images in px (and its buffers). */
static int make_inputs(const bench_opts *o, const pn_net *net, float temperature, float *x, bench_pixels **px)
{
    int size = pn_net_input_size(net), ch = pn_net_channels(net);
    size_t in_count = (size_t)o->batch * size * size * ch;
    pn_rng r = pn_rng_seed(7, 0, 0);
    for (size_t i = 0; i < in_count; i++)
        x[i] = pn_rng_normal(&r);
    if (!o->model)
        return 0;
    bench_pixels *p = *px = calloc(1, sizeof *p);
    if (!p || !(p->pixels = malloc((size_t)o->batch * size * size)) || !(p->probs = malloc((size_t)o->batch * sizeof(float))))
        return 1;
    for (size_t i = 0; i < (size_t)o->batch * size * size; i++)
        p->pixels[i] = (uint8_t)(pn_rng_next(&r) >> 56);
    p->norm.channels = ch;
    memcpy(p->norm.mean, pn_net_mean(net), (size_t)ch * sizeof(float));
    memcpy(p->norm.std, pn_net_std(net), (size_t)ch * sizeof(float));
    p->temperature = temperature;
    return 0;
}

static void report(const bench_opts *o, pn_ctx *ctx, const pn_net *net, const char *arch_name, double *times)
{
    qsort(times, (size_t)o->iters, sizeof *times, cmp_double);
    qsort(times + o->iters, (size_t)o->iters, sizeof *times, cmp_double);
    double med = times[o->iters / 2], cpu = times[o->iters + o->iters / 2];
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"impl\": \"pneumo\", \"arch\": \"%s\", \"mode\": \"%s\", \"config\": \"%s%s\", "
           "\"threads\": %d, \"batch\": %d, \"median_s\": %.6f, \"imgs_per_s\": %.2f, "
           "\"ms_per_batch\": %.3f, \"min_s\": %.6f, \"cpu_s\": %.6f, \"peak_rss_mb\": %.1f, \"isa\": \"%s\", \"input\": \"%s\"}\n",
           arch_name, o->train ? "train" : "infer", pn_net_precision(net) == PN_BF16 ? "bf16" : "fp32",
           !o->train && o->fused ? "_fused" : "", o->threads, o->batch, med, o->batch / med, med * 1e3, times[0], cpu,
           ru.ru_maxrss / 1024.0, pn_ctx_isa_name(ctx), o->model ? "uint8" : "float");
}

int pn_cmd_bench(int argc, char **argv)
{
    bench_opts o;
    int rc_parse = parse(argc, argv, &o);
    if (rc_parse >= 0)
        return rc_parse;
    pn_error err = {0};
    pn_ctx *ctx = NULL;
    pn_net *net = NULL;
    pn_optim *opt = NULL;
    float *x = NULL, temperature = 1;
    int *labels = NULL, rc = 1;
    double *times = NULL;
    bench_pixels *px = NULL;
    char arch_name[128];
    pn_optim_config oc = pn_optim_defaults(PN_ADAM);
    if (pn_ctx_create_with(&(pn_ctx_options){.threads = o.threads}, &ctx, &err) ||
        make_net(&o, ctx, &net, arch_name, sizeof arch_name, &temperature, &err))
        goto done;
    if (o.save_model) {
        rc = save_model(&o, net, &err) ? 1 : 0;
        goto done;
    }
    if ((o.train && pn_optim_create(&oc, net, &opt, &err)) ||
        (!o.train && o.fused && pn_net_fuse_for_inference(net, &err)))
        goto done;
    int size = pn_net_input_size(net);
    x = malloc((size_t)o.batch * size * size * pn_net_channels(net) * sizeof(float)); /* [batch][size][size][ch] */
    labels = malloc((size_t)o.batch * sizeof(int));                                    /* [batch] */
    times = malloc(2 * (size_t)o.iters * sizeof(double));                              /* [2][iters] wall, CPU */
    if (!x || !labels || !times || make_inputs(&o, net, temperature, x, &px)) {
        pn_fail(&err, PN_ENOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < o.batch; i++)
        labels[i] = i % 2;
    if (o.profile && o.warmup == 0)
        pn_net_profile(net, 1);
    rc = run_iters(&o, net, opt, x, px, labels, times, &err);
    if (!rc && o.profile)
        pn_net_profile_print(net, stderr);
    if (!rc)
        report(&o, ctx, net, arch_name, times);
done:
    if (rc)
        fprintf(stderr, "pneumo bench: %s\n", err.msg);
    if (px) {
        free(px->pixels);
        free(px->probs);
        free(px);
    }
    free(x);
    free(labels);
    free(times);
    pn_optim_destroy(opt);
    pn_net_destroy(net);
    pn_ctx_destroy(ctx);
    return rc;
}
