/* The engine's part of data-parallel training, without MPI. A batch of 8 is
 * split 5 + 3 over a "group" of two threads, each with its own context and
 * network, whose pn_net_group.sum adds the two members' vectors; they must
 * compute what one network computes on the whole batch:
 *  - the logits (batch statistics over the group; dropout masks drawn for
 *    each image's place in the whole batch, pn_net_set_batch_offset),
 *  - the parameter gradients (the members' sum = the whole batch's),
 *  - the running statistics,
 * for a network with every kind of batch norm the engine runs (ReLU fused,
 * applied by a depthwise convolution, read by an SE block, standalone after a
 * residual sum) and dropout. The loss is sum(logits * R), so the members'
 * gradients add up without any normalisation. Tolerances are float rounding:
 * the group sums its statistics in another order than one pass over 8 images,
 * and the whole-batch net runs the SE block's batch norm fused into it (not
 * done for a group, whose SE block could not sum the norm's statistics).
 * And the backward hook: it reports a non-increasing first_done, and every
 * parameter from first_done on already holds its final gradient then. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "pneumo/nn.h"
#include "testutil.h"

static const char *cfg_text =
    "[net]\ninput = 12\nchannels = 3\nclasses = 3\n"
    "[conv]\nname = stem\nfilters = 8\nsize = 3\nbatchnorm = 1\nactivation = relu\n"
    "[conv]\nname = expand\nfilters = 32\nsize = 1\nbatchnorm = 1\nactivation = relu\n"
    "[conv]\nname = dw\nfilters = 32\nsize = 3\ngroups = dw\nbatchnorm = 1\nactivation = relu\n"
    "[se]\nname = se\nsqueeze = 8\n"
    "[conv]\nname = project\nfilters = 8\nsize = 1\nbatchnorm = 1\n"
    "[add]\nfrom = -5\n"
    "[batchnorm]\nname = post\nactivation = relu\n"
    "[gap]\n[dropout]\np = 0.4\n[fc]\nname = fc\nout = classes\n";

enum { N = 8, SIZE = 12, CH = 3, CLASSES = 3, PER = SIZE * SIZE * CH };

typedef struct group {
    pthread_barrier_t barrier;
    double *v[2];
    size_t n[2];
} group;

typedef struct member {
    group *g;
    int id, first, n;      /* images [first, first + n) of the batch */
    const float *x, *r;    /* the whole batch's input and loss weights */
    float *logits;         /* [n][CLASSES] */
    float *grads, *params; /* every gradient / every parameter and buffer, concatenated */
    int ok;
} member;

/* Both members add in the same order, so both get the same sums. */
static int group_sum(void *user, double *v, size_t n)
{
    member *m = user;
    group *g = m->g;
    g->v[m->id] = v;
    g->n[m->id] = n;
    pthread_barrier_wait(&g->barrier);
    double *sum = malloc(n * sizeof *sum);
    int ok = sum && g->n[0] == g->n[1];
    for (size_t i = 0; ok && i < n; i++)
        sum[i] = g->v[0][i] + g->v[1][i];
    pthread_barrier_wait(&g->barrier); /* both have read before either writes */
    if (ok)
        memcpy(v, sum, n * sizeof *v);
    free(sum);
    return ok ? 0 : -1;
}

static void randomise(pn_net *net)
{
    pn_rng r = pn_rng_seed(9, 1, 1);
    for (size_t i = 0; i < pn_net_param_count(net); i++) {
        pn_param *p = pn_net_param(net, i);
        for (size_t k = 0; k < p->numel; k++) {
            float u = pn_rng_uniform(&r);
            if (p->is_buffer)
                p->data[k] = strstr(p->name, "var") ? 0.5f + u : u - 0.5f;
            else if (p->ndim == 1)
                p->data[k] = strstr(p->name, "bias") ? 0.6f * u - 0.3f : 0.5f + u;
        }
    }
    pn_net_params_changed(net);
}

static size_t total_values(pn_net *net)
{
    size_t n = 0;
    for (size_t i = 0; i < pn_net_param_count(net); i++)
        n += pn_net_param(net, i)->numel;
    return n;
}

/* One training step of images [first, first + n); with g, synchronised over it. */
static void step(member *m, const pn_net_group *g)
{
    pn_ctx *ctx;
    pn_net *net;
    pn_error err = {0};
    if (pn_ctx_create_with(&(pn_ctx_options){.threads = 1}, &ctx, &err))
        return;
    pn_net_options o = {.precision = PN_F32, .seed = 3, .bn_group = g};
    if (!pn_net_create(ctx, cfg_text, &o, &net, &err)) {
        randomise(net);
        pn_net_set_batch_offset(net, m->first);
        size_t values = total_values(net), off = 0;
        m->grads = calloc(values, sizeof(float));
        m->params = calloc(values, sizeof(float));
        m->logits = malloc((size_t)m->n * CLASSES * sizeof(float));
        m->ok = m->grads && m->params && m->logits &&
                !pn_net_forward(net, m->x + (size_t)m->first * PER, m->n, PN_FWD_TRAIN, &err) &&
                !pn_net_backward(net, m->r + (size_t)m->first * CLASSES, &err);
        for (size_t i = 0; m->ok && i < pn_net_param_count(net); i++) {
            const pn_param *p = pn_net_param(net, i);
            if (p->grad)
                memcpy(m->grads + off, p->grad, p->numel * sizeof(float));
            memcpy(m->params + off, p->data, p->numel * sizeof(float));
            off += p->numel;
        }
        if (m->ok)
            memcpy(m->logits, pn_net_logits(net), (size_t)m->n * CLASSES * sizeof(float));
        pn_net_destroy(net);
    }
    pn_ctx_destroy(ctx);
}

static void *member_main(void *arg)
{
    member *m = arg;
    pn_net_group g = {group_sum, m};
    step(m, &g);
    return NULL;
}

static float *random_floats(size_t n, uint64_t seed)
{
    float *v = malloc(n * sizeof *v);
    pn_rng r = pn_rng_seed(seed, 0, 0);
    for (size_t i = 0; i < n; i++)
        v[i] = pn_rng_normal(&r);
    return v;
}

static double max_abs(const float *v, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fabs(v[i]) > m ? fabs(v[i]) : m;
    return m;
}

static void test_group_equals_whole_batch(void **state)
{
    float *x = random_floats((size_t)N * PER, 1), *r = random_floats((size_t)N * CLASSES, 2);
    member whole = {.id = 0, .first = 0, .n = N, .x = x, .r = r};
    step(&whole, NULL);
    assert_true(whole.ok);
    group g;
    pthread_barrier_init(&g.barrier, NULL, 2);
    member part[2] = {{.g = &g, .id = 0, .first = 0, .n = 5, .x = x, .r = r},
                      {.g = &g, .id = 1, .first = 5, .n = 3, .x = x, .r = r}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, member_main, &part[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&g.barrier);
    assert_true(part[0].ok && part[1].ok);

    /* logits: the members' rows are the whole batch's */
    double scale = max_abs(whole.logits, N * CLASSES), worst = 0;
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < part[i].n * CLASSES; k++)
            worst = fmax(worst, fabs(part[i].logits[k] - whole.logits[part[i].first * CLASSES + k]));
    print_message("logits: largest difference %.2g of %.2g\n", worst, scale);
    assert_true(worst <= 1e-5 * scale);
    /* gradients add up; parameters and running statistics agree */
    pn_ctx *ctx;
    pn_net *net;
    assert_int_equal(pn_ctx_create(&ctx, NULL), PN_OK);
    assert_int_equal(pn_net_create(ctx, cfg_text, &(pn_net_options){.precision = PN_F32, .seed = 3}, &net, NULL), PN_OK);
    size_t off = 0;
    /* A gradient that is zero in exact arithmetic (a batch norm's shift
     * followed by another batch norm) is rounding noise: differences are
     * measured against at least 1% of the largest gradient of the net. */
    double worst_grad = 0, worst_stat = 0, all = max_abs(whole.grads, total_values(net));
    for (size_t i = 0; i < pn_net_param_count(net); off += pn_net_param(net, i)->numel, i++) {
        const pn_param *p = pn_net_param(net, i);
        double gs = max_abs(whole.grads + off, p->numel), ps = max_abs(whole.params + off, p->numel);
        for (size_t k = 0; k < p->numel; k++) {
            double d = fabs(part[0].grads[off + k] + part[1].grads[off + k] - whole.grads[off + k]);
            worst_grad = fmax(worst_grad, d / fmax(gs, 1e-2 * all));
            for (int m = 0; m < 2; m++)
                worst_stat = fmax(worst_stat, fabs(part[m].params[off + k] - whole.params[off + k]) / (ps + 1e-3));
        }
    }
    print_message("gradients: largest difference %.2g, parameters and statistics %.2g "
                  "(relative to each tensor's largest)\n", worst_grad, worst_stat);
    assert_true(worst_grad <= 1e-4);
    assert_true(worst_stat <= 1e-5);
    pn_net_destroy(net);
    pn_ctx_destroy(ctx);
    for (int i = 0; i < 2; i++)
        free(part[i].logits), free(part[i].grads), free(part[i].params);
    free(whole.logits), free(whole.grads), free(whole.params);
    free(x);
    free(r);
}

/* ---- the backward hook ---- */

typedef struct hook_log {
    pn_net *net;
    size_t last, calls;
    float *snapshot; /* every gradient as it was when reported final */
    size_t *offset;  /* per parameter, into snapshot */
    int increasing;
} hook_log;

static void on_grads(void *user, size_t first_done)
{
    hook_log *h = user;
    h->increasing |= first_done > h->last;
    h->last = first_done;
    h->calls++;
    for (size_t i = first_done; i < pn_net_param_count(h->net); i++) {
        const pn_param *p = pn_net_param(h->net, i);
        if (p->grad)
            memcpy(h->snapshot + h->offset[i], p->grad, p->numel * sizeof(float));
    }
}

static void test_grad_hook(void **state)
{
    pn_ctx *ctx;
    pn_net *net;
    assert_int_equal(pn_ctx_create(&ctx, NULL), PN_OK);
    assert_int_equal(pn_net_create(ctx, cfg_text, &(pn_net_options){.precision = PN_F32, .seed = 3}, &net, NULL), PN_OK);
    randomise(net);
    size_t count = pn_net_param_count(net), values = total_values(net);
    hook_log h = {.net = net, .last = count, .snapshot = calloc(values, sizeof(float)),
                  .offset = calloc(count, sizeof(size_t))};
    for (size_t i = 1; i < count; i++)
        h.offset[i] = h.offset[i - 1] + pn_net_param(net, i - 1)->numel;
    pn_net_set_grad_hook(net, on_grads, &h);
    float *x = random_floats((size_t)N * PER, 1), *r = random_floats((size_t)N * CLASSES, 2);
    for (int rep = 0; rep < 2; rep++) { /* the second step overwrites the first's gradients */
        h.last = count;
        h.calls = 0;
        assert_int_equal(pn_net_forward(net, x, N, PN_FWD_TRAIN, NULL), PN_OK);
        assert_int_equal(pn_net_backward(net, r, NULL), PN_OK);
        assert_false(h.increasing);
        assert_true(h.calls > 0);
        assert_int_equal(h.last, 0); /* the first layer trains */
        for (size_t i = 0; i < count; i++) {
            const pn_param *p = pn_net_param(net, i);
            if (p->grad)
                assert_memory_equal(h.snapshot + h.offset[i], p->grad, p->numel * sizeof(float));
        }
        memset(h.snapshot, 0, values * sizeof(float));
    }
    free(h.snapshot);
    free(h.offset);
    free(x);
    free(r);
    pn_net_destroy(net);
    pn_ctx_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_group_equals_whole_batch),
        cmocka_unit_test(test_grad_hook),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
