/* pneumo bench: engine throughput on random data, for bench/run.sh.
 * Prints one JSON line in the same shape as bench/torch_bench.py. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cli/commands.h"
#include "cli/options.h"
#include "pneumo/nn.h"
#include "pneumo/os.h"

typedef struct bench_opts {
    const char *arch;
    int train; /* 1: forward + backward + update; 0: inference */
    int batch, size, threads, iters, warmup, bf16, fused, profile;
} bench_opts;

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
                 "       [--profile]   per-layer times of the timed iterations, to stderr\n");
    return out == stdout ? 0 : 2;
}

/* Returns -1 to go on, else the exit code. */
static int parse(int argc, char **argv, bench_opts *o)
{
    *o = (bench_opts){"resnet18", 1, 32, 224, 2, 10, 3, 0, 1, 0};
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
        PN_OPT_END,
    };
    switch (pn_opts_parse("pneumo bench", table, argc, argv, 1, NULL, NULL)) {
    case PN_OPTS_HELP: return usage(stdout);
    case PN_OPTS_BAD: return 2;
    case PN_OPTS_OK: break;
    }
    return -1;
}

static int run_iters(const bench_opts *o, pn_net *net, pn_optim *opt, const float *x,
                     const int *labels, double *times, pn_error *err)
{
    int classes = pn_net_classes(net), train = o->train;
    float *dlogits = malloc((size_t)o->batch * classes * sizeof(float));
    for (int it = 0; it < o->warmup + o->iters; it++) {
        double t0 = pn_clock_s();
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
        if (it >= o->warmup)
            times[it - o->warmup] = pn_clock_s() - t0;
        if (o->profile && it + 1 == o->warmup)
            pn_net_profile(net, 1);
    }
    free(dlogits);
    return 0;
}

int pn_cmd_bench(int argc, char **argv)
{
    bench_opts o;
    int rc_parse = parse(argc, argv, &o);
    if (rc_parse >= 0)
        return rc_parse;
    pn_error err = {0};
    char *text = NULL;
    pn_ctx *ctx = NULL;
    pn_net *net = NULL;
    pn_optim *opt = NULL;
    pn_net_options nopt = {.input_size = o.size, .precision = o.bf16 ? PN_BF16 : PN_F32, .seed = 1};
    int train = o.train, rc = 1;
    if (pn_arch_read(o.arch, &text, &err) || pn_ctx_create_with(&(pn_ctx_options){.threads = o.threads}, &ctx, &err) ||
        pn_net_create(ctx, text, &nopt, &net, &err))
        goto done;
    pn_optim_config oc = pn_optim_defaults(PN_ADAM);
    if (train && pn_optim_create(&oc, net, &opt, &err))
        goto done;
    if (!train && o.fused && pn_net_fuse_for_inference(net, &err))
        goto done;
    size_t in_count = (size_t)o.batch * o.size * o.size * pn_net_channels(net);
    float *x = malloc(in_count * sizeof(float));
    int *labels = malloc((size_t)o.batch * sizeof(int));
    double *times = malloc((size_t)o.iters * sizeof(double));
    pn_rng r = pn_rng_seed(7, 0, 0);
    for (size_t i = 0; i < in_count; i++)
        x[i] = pn_rng_normal(&r);
    for (int i = 0; i < o.batch; i++)
        labels[i] = i % 2;
    if (o.profile && o.warmup == 0)
        pn_net_profile(net, 1);
    rc = run_iters(&o, net, opt, x, labels, times, &err);
    if (!rc && o.profile)
        pn_net_profile_print(net, stderr);
    if (!rc) {
        qsort(times, (size_t)o.iters, sizeof *times, cmp_double);
        double med = times[o.iters / 2];
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        printf("{\"impl\": \"pneumo\", \"arch\": \"%s\", \"mode\": \"%s\", \"config\": \"%s%s\", "
               "\"threads\": %d, \"batch\": %d, \"median_s\": %.6f, \"imgs_per_s\": %.2f, "
               "\"ms_per_batch\": %.3f, \"peak_rss_mb\": %.1f, \"isa\": \"%s\"}\n",
               o.arch, train ? "train" : "infer", pn_net_precision(net) == PN_BF16 ? "bf16" : "fp32",
               !train && o.fused ? "_fused" : "", o.threads, o.batch, med, o.batch / med,
               med * 1e3, ru.ru_maxrss / 1024.0, pn_ctx_isa_name(ctx));
    }
    free(x);
    free(labels);
    free(times);
done:
    if (rc)
        fprintf(stderr, "pneumo bench: %s\n", err.msg);
    pn_optim_destroy(opt);
    pn_net_destroy(net);
    pn_ctx_destroy(ctx);
    free(text);
    return rc;
}
