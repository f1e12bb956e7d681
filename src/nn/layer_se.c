/* Squeeze-and-excitation (MobileNetV3): y = x * gate(W2 act(W1 mean_hw(x) + b1) + b2),
 * channel-wise. The vectors are tiny (N x C), so this is hand-written. Each
 * thread takes whole images and runs both passes over an image back to back
 * (pool, excite, scale; gate gradient, excite backward, input gradient), so
 * the second pass finds the image in cache. The weight gradients are added
 * over the batch afterwards. */
#include <stdlib.h>
#include <string.h>

#include "nn/bn_se.h"
#include "nn/internal.h"
#include "nn/layer_batchnorm.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include "nn/avx512_util.h"
#define HAVE_AVX512_KERNELS 1
#endif

enum { P_W1, P_B1, P_W2, P_B2 };

typedef struct se_priv {
    int c, s;
    pn_act_kind act, gate;
    int cap_n;
    float *pooled, *z1, *a1, *z2, *scale, *dscale, *dz1, *dz2;
} se_priv;

static pn_status se_init(pn_layer *l, pn_net *net, const pn_cfg_section *s, pn_error *err)
{
    se_priv *p = calloc(1, sizeof *p);
    if (!p)
        return pn_fail(err, PN_ENOMEM, "out of memory");
    l->priv = p;
    l->out = *pn_layer_in(net, l, 0);
    p->c = l->out.c;
    pn_status st;
    if ((st = pn_cfg_int(s, "squeeze", 0, &p->s, err)) ||
        (st = pn_act_parse(pn_cfg_str(s, "activation", "relu"), &p->act, err)) ||
        (st = pn_act_parse(pn_cfg_str(s, "gate", "hardsigmoid"), &p->gate, err)))
        return pn_error_prefix(err, st, "cfg line %d [se]: ", s->line);
    if (p->s <= 0)
        return pn_fail(err, PN_EFORMAT, "cfg line %d [se]: squeeze must be positive", s->line);
    int w1[4] = {p->s, p->c, 1, 1}, w2[4] = {p->c, p->s, 1, 1};
    size_t i1, i2, ib;
    if ((st = pn_net_add_param(net, l, "fc1.weight", 4, w1, 0, 0, &i1, err)) ||
        (st = pn_net_add_param(net, l, "fc1.bias", 1, &p->s, 0, 1, &ib, err)) ||
        (st = pn_net_add_param(net, l, "fc2.weight", 4, w2, 0, 0, &i2, err)) ||
        (st = pn_net_add_param(net, l, "fc2.bias", 1, &p->c, 0, 1, &ib, err)))
        return st;
    pn_rng r = pn_rng_seed(net->seed, (uint64_t)l->index, 1);
    pn_init_kaiming(net->params[i1].data, net->params[i1].numel, p->c, &r);
    pn_init_xavier(net->params[i2].data, net->params[i2].numel, p->s, p->c, &r);
    l->macs = 2ull * p->c * p->s + (uint64_t)l->out.h * l->out.w * p->c;
    return PN_OK;
}

static void free_work(se_priv *p)
{
    float **v[] = {&p->pooled, &p->z1, &p->a1, &p->z2, &p->scale, &p->dscale, &p->dz1, &p->dz2};
    for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
        free(*v[i]);
        *v[i] = NULL;
    }
    p->cap_n = 0;
}

static void se_reset(pn_layer *l) { (void)l; }

static void se_destroy(pn_layer *l)
{
    if (l->priv)
        free_work(l->priv);
    free(l->priv);
    l->priv = NULL;
}

static pn_status ensure_work(se_priv *p, int n, pn_error *err)
{
    if (n <= p->cap_n)
        return PN_OK;
    free_work(p);
    size_t nc = (size_t)n * p->c, ns = (size_t)n * p->s;
    p->pooled = malloc(nc * sizeof(float));
    p->z2 = malloc(nc * sizeof(float));
    p->scale = malloc(nc * sizeof(float));
    p->dscale = malloc(nc * sizeof(float));
    p->dz2 = malloc(nc * sizeof(float));
    p->z1 = malloc(ns * sizeof(float));
    p->a1 = malloc(ns * sizeof(float));
    p->dz1 = malloc(ns * sizeof(float));
    if (!p->pooled || !p->z2 || !p->scale || !p->dscale || !p->z1 || !p->a1 || !p->dz1 || !p->dz2)
        return pn_fail(err, PN_ENOMEM, "squeeze-excitation: out of memory");
    p->cap_n = n;
    return PN_OK;
}

/* out[o] = b[o] + sum_i w[o][i] * in[i] */
PN_SIMD_CLONES static void dense(const float *in, const float *w, const float *b, float *out,
                                 int in_f, int out_f)
{
    for (int o = 0; o < out_f; o++) {
        const float *wr = w + (size_t)o * in_f;
        float acc = 0;
#pragma omp simd reduction(+ : acc)
        for (int i = 0; i < in_f; i++)
            acc += wr[i] * in[i];
        out[o] = b[o] + acc;
    }
}

/* The full-tensor passes work on rows of c channels of one image. */
PN_SIMD_CLONES static void sum_rows_c(const void *x, pn_dtype t, size_t row0, int rows, int c,
                                    float *sum)
{
    memset(sum, 0, (size_t)c * sizeof(float));
    for (int i = 0; i < rows; i++) {
        size_t off = (row0 + (size_t)i) * c;
        if (t == PN_F32) {
            const float *xr = (const float *)x + off;
#pragma omp simd
            for (int ch = 0; ch < c; ch++)
                sum[ch] += xr[ch];
        } else {
            const uint16_t *xr = (const uint16_t *)x + off;
#pragma omp simd
            for (int ch = 0; ch < c; ch++)
                sum[ch] += pn_bf16_to_f32(xr[ch]);
        }
    }
}

/* y = x * s[ch] */
PN_SIMD_CLONES static void scale_rows_c(const void *x, void *y, pn_dtype t, size_t row0, int rows,
                                      int c, const float *s)
{
    size_t begin = row0 * c, end = (row0 + (size_t)rows) * c;
    for (size_t off = begin; off < end; off += (size_t)c) {
        if (t == PN_F32) {
            const float *xr = (const float *)x + off;
            float *yr = (float *)y + off;
#pragma omp simd
            for (int ch = 0; ch < c; ch++)
                yr[ch] = xr[ch] * s[ch];
        } else {
            const uint16_t *xr = (const uint16_t *)x + off;
            uint16_t *yr = (uint16_t *)y + off;
#pragma omp simd
            for (int ch = 0; ch < c; ch++)
                yr[ch] = pn_f32_to_bf16(pn_bf16_to_f32(xr[ch]) * s[ch]);
        }
    }
}

/* ds[ch] = sum over rows of dy * x (dL/dscale) */
PN_SIMD_CLONES static void dot_rows_c(const void *dy, const void *x, pn_dtype t, size_t row0,
                                    int rows, int c, float *ds)
{
    memset(ds, 0, (size_t)c * sizeof(float));
    for (int i = 0; i < rows; i++) {
        size_t off = (row0 + (size_t)i) * c;
        if (t == PN_F32) {
            const float *gr = (const float *)dy + off, *xr = (const float *)x + off;
#pragma omp simd
            for (int ch = 0; ch < c; ch++)
                ds[ch] += gr[ch] * xr[ch];
        } else {
            const uint16_t *gr = (const uint16_t *)dy + off, *xr = (const uint16_t *)x + off;
#pragma omp simd
            for (int ch = 0; ch < c; ch++)
                ds[ch] += pn_bf16_to_f32(gr[ch]) * pn_bf16_to_f32(xr[ch]);
        }
    }
}

/* dx = dy * s[ch] + d[ch] */
PN_SIMD_CLONES static void scale_add_rows_c(const void *dy, void *dx, pn_dtype t, size_t row0,
                                          int rows, int c, const float *s, const float *d)
{
    size_t begin = row0 * c, end = (row0 + (size_t)rows) * c;
    for (size_t off = begin; off < end; off += (size_t)c) {
        if (t == PN_F32) {
            const float *gr = (const float *)dy + off;
            float *o = (float *)dx + off;
#pragma omp simd
            for (int ch = 0; ch < c; ch++)
                o[ch] = gr[ch] * s[ch] + d[ch];
        } else {
            const uint16_t *gr = (const uint16_t *)dy + off;
            uint16_t *o = (uint16_t *)dx + off;
#pragma omp simd
            for (int ch = 0; ch < c; ch++)
                o[ch] = pn_f32_to_bf16(pn_bf16_to_f32(gr[ch]) * s[ch] + d[ch]);
        }
    }
}

#ifdef HAVE_AVX512_KERNELS
/* AVX-512 versions: a channel group walks down the rows with its sums or
 * scales in registers. */
static AVX512 void sum_rows_v(const void *x, pn_dtype t, size_t row0, int rows, int c, float *sum)
{
    for (int k = 0; k < c; k += 16) {
        __mmask16 m = tail_mask(c, k);
        __m512 a0 = _mm512_setzero_ps(), a1 = a0;
        int i = 0;
        for (; i + 1 < rows; i += 2) {
            a0 = _mm512_add_ps(a0, ld(x, t, (row0 + i) * c + k, m));
            a1 = _mm512_add_ps(a1, ld(x, t, (row0 + i + 1) * c + k, m));
        }
        if (i < rows)
            a0 = _mm512_add_ps(a0, ld(x, t, (row0 + i) * c + k, m));
        _mm512_mask_storeu_ps(sum + k, m, _mm512_add_ps(a0, a1));
    }
}

static AVX512 void scale_rows_v(const void *x, void *y, pn_dtype t, size_t row0, int rows, int c,
                                const float *s)
{
    for (int k = 0; k < c; k += 16) {
        __mmask16 m = tail_mask(c, k);
        __m512 sv = _mm512_maskz_loadu_ps(m, s + k);
        for (int i = 0; i < rows; i++) {
            size_t off = (row0 + i) * c + k;
            st(y, t, off, m, _mm512_mul_ps(ld(x, t, off, m), sv));
        }
    }
}

static AVX512 void dot_rows_v(const void *dy, const void *x, pn_dtype t, size_t row0, int rows,
                              int c, float *ds)
{
    for (int k = 0; k < c; k += 16) {
        __mmask16 m = tail_mask(c, k);
        __m512 a0 = _mm512_setzero_ps(), a1 = a0;
        int i = 0;
        for (; i + 1 < rows; i += 2) {
            size_t o0 = (row0 + i) * c + k, o1 = o0 + c;
            a0 = _mm512_fmadd_ps(ld(dy, t, o0, m), ld(x, t, o0, m), a0);
            a1 = _mm512_fmadd_ps(ld(dy, t, o1, m), ld(x, t, o1, m), a1);
        }
        if (i < rows) {
            size_t o0 = (row0 + i) * c + k;
            a0 = _mm512_fmadd_ps(ld(dy, t, o0, m), ld(x, t, o0, m), a0);
        }
        _mm512_mask_storeu_ps(ds + k, m, _mm512_add_ps(a0, a1));
    }
}

static AVX512 void scale_add_rows_v(const void *dy, void *dx, pn_dtype t, size_t row0, int rows,
                                    int c, const float *s, const float *d)
{
    for (int k = 0; k < c; k += 16) {
        __mmask16 m = tail_mask(c, k);
        __m512 sv = _mm512_maskz_loadu_ps(m, s + k), dv = _mm512_maskz_loadu_ps(m, d + k);
        for (int i = 0; i < rows; i++) {
            size_t off = (row0 + i) * c + k;
            st(dx, t, off, m, _mm512_fmadd_ps(ld(dy, t, off, m), sv, dv));
        }
    }
}
#endif

/* The passes over one image's rows, on the fastest kernels this CPU runs. */
static void sum_rows(const void *x, pn_dtype t, size_t row0, int rows, int c, float *sum)
{
#ifdef HAVE_AVX512_KERNELS
    if (pn_cpu_has_avx512()) {
        sum_rows_v(x, t, row0, rows, c, sum);
        return;
    }
#endif
    sum_rows_c(x, t, row0, rows, c, sum);
}

static void scale_rows(const void *x, void *y, pn_dtype t, size_t row0, int rows, int c,
                       const float *s)
{
#ifdef HAVE_AVX512_KERNELS
    if (pn_cpu_has_avx512()) {
        scale_rows_v(x, y, t, row0, rows, c, s);
        return;
    }
#endif
    scale_rows_c(x, y, t, row0, rows, c, s);
}

static void dot_rows(const void *dy, const void *x, pn_dtype t, size_t row0, int rows, int c,
                     float *ds)
{
#ifdef HAVE_AVX512_KERNELS
    if (pn_cpu_has_avx512()) {
        dot_rows_v(dy, x, t, row0, rows, c, ds);
        return;
    }
#endif
    dot_rows_c(dy, x, t, row0, rows, c, ds);
}

static void scale_add_rows(const void *dy, void *dx, pn_dtype t, size_t row0, int rows, int c,
                           const float *s, const float *d)
{
#ifdef HAVE_AVX512_KERNELS
    if (pn_cpu_has_avx512()) {
        scale_add_rows_v(dy, dx, t, row0, rows, c, s, d);
        return;
    }
#endif
    scale_add_rows_c(dy, dx, t, row0, rows, c, s, d);
}

/* When the input is a deferred batch norm (bn_se.h), the passes over it read
 * the batch norm's input and apply the normalisation on the fly. Returns 1
 * then (f ready for the per-image calls, mean: the backward's), 0 when the
 * input is an ordinary tensor, -1 on OOM. */
static int fused_input(pn_layer *l, pn_net *net, int backward, pn_bn_se *f, pn_bn_view *v)
{
    pn_layer *bn = &net->layers[l->inputs[0]];
    if (!bn->deferred)
        return 0;
    pn_batchnorm_view(bn, net, v);
    *f = (pn_bn_se){.x = pn_layer_in(net, bn, 0)->data, .t = net->dt, .n = net->cur_n,
                    .hw = l->out.h * l->out.w, .c = l->out.c, .scale = v->scale,
                    .shift = v->shift, .act = v->act};
    return pn_bn_se_begin(f, backward ? v->mean : NULL) ? -1 : 1;
}

/* pooled[k] (the mean) -> the gate scale[k] */
static void excite(se_priv *p, pn_layer *l, pn_net *net, int k)
{
    int c = p->c, s = p->s;
    float *z1 = p->z1 + (size_t)k * s, *a1 = p->a1 + (size_t)k * s, *z2 = p->z2 + (size_t)k * c;
    dense(p->pooled + (size_t)k * c, pn_layer_param(net, l, P_W1)->data, pn_layer_param(net, l, P_B1)->data, z1, c, s);
    for (int j = 0; j < s; j++)
        a1[j] = pn_act_apply(p->act, z1[j]);
    dense(a1, pn_layer_param(net, l, P_W2)->data, pn_layer_param(net, l, P_B2)->data, z2, s, c);
    for (int ch = 0; ch < c; ch++)
        p->scale[(size_t)k * c + ch] = pn_act_apply(p->gate, z2[ch]);
}

static pn_status se_forward(pn_layer *l, pn_net *net, int train, pn_error *err)
{
    (void)train;
    se_priv *p = l->priv;
    int n = net->cur_n, c = p->c, hw = l->out.h * l->out.w;
    pn_status st = ensure_work(p, n, err);
    if (st)
        return st;
    const void *x = pn_layer_in(net, l, 0)->data;
    pn_bn_se f;
    pn_bn_view v;
    int fused = fused_input(l, net, 0, &f, &v);
    if (fused < 0)
        return pn_fail(err, PN_ENOMEM, "%s: out of memory", l->name);
#pragma omp parallel for schedule(static)
    for (int k = 0; k < n; k++) {
        float *pool = p->pooled + (size_t)k * c, *gate = p->scale + (size_t)k * c;
        if (fused)
            pn_bn_se_pool(&f, k, pool);
        else
            sum_rows(x, net->dt, (size_t)k * hw, hw, c, pool);
        for (int ch = 0; ch < c; ch++)
            pool[ch] /= (float)hw;
        excite(p, l, net, k);
        if (fused)
            pn_bn_se_scale(&f, k, gate, l->out.data);
        else
            scale_rows(x, l->out.data, net->dt, (size_t)k * hw, hw, c, gate);
    }
    if (fused)
        pn_bn_se_end(&f);
    return PN_OK;
}

/* o[i] += a * v[i] */
PN_SIMD_CLONES static void axpy(float *restrict o, float a, const float *restrict v, int n)
{
#pragma omp simd
    for (int i = 0; i < n; i++)
        o[i] += a * v[i];
}

/* Image k backward through the two dense layers: dscale[k] (dL/dgate) in,
 * dz2[k], dz1[k] out, and dscale[k] becomes the pooling's share of the
 * input gradient per position, dL/dpooled / hw. */
static void excite_backward(se_priv *p, pn_layer *l, pn_net *net, int k, int hw)
{
    int c = p->c, s = p->s;
    const float *w1 = pn_layer_param(net, l, P_W1)->data, *w2 = pn_layer_param(net, l, P_W2)->data;
    float *ds = p->dscale + (size_t)k * c, *dz2 = p->dz2 + (size_t)k * c, *dz1 = p->dz1 + (size_t)k * s;
    for (int ch = 0; ch < c; ch++)
        dz2[ch] = ds[ch] * pn_act_grad(p->gate, p->z2[(size_t)k * c + ch]);
    memset(dz1, 0, (size_t)s * sizeof(float)); /* act'(z1) * sum_ch dz2[ch] w2[ch][:] */
    for (int ch = 0; ch < c; ch++)
        axpy(dz1, dz2[ch], w2 + (size_t)ch * s, s);
    for (int j = 0; j < s; j++)
        dz1[j] *= pn_act_grad(p->act, p->z1[(size_t)k * s + j]);
    memset(ds, 0, (size_t)c * sizeof(float)); /* sum_j dz1[j] w1[j][:] / hw */
    for (int j = 0; j < s; j++)
        axpy(ds, dz1[j] / (float)hw, w1 + (size_t)j * c, c);
}

/* A dense layer's gradients over the batch: gw[o][:] = sum_k dz[k][o] in[k][:],
 * gb[o] = sum_k dz[k][o]. Every loop runs along a contiguous row (axpy), and
 * each thread owns the rows it writes. */
static void dense_weight_grad(const float *dz, const float *in, int n, int in_f, int out_f,
                              float *gw, float *gb)
{
#pragma omp parallel for schedule(static)
    for (int o = 0; o < out_f; o++) {
        float *g = gw + (size_t)o * in_f, b = 0;
        memset(g, 0, (size_t)in_f * sizeof(float));
        for (int k = 0; k < n; k++) {
            axpy(g, dz[(size_t)k * out_f + o], in + (size_t)k * in_f, in_f);
            b += dz[(size_t)k * out_f + o];
        }
        gb[o] = b;
    }
}

static pn_status se_backward(pn_layer *l, pn_net *net, pn_error *err)
{
    se_priv *p = l->priv;
    int n = net->cur_n, c = p->c, hw = l->out.h * l->out.w;
    pn_buf *in = pn_layer_in(net, l, 0);
    pn_bn_se f;
    pn_bn_view v;
    int fused = fused_input(l, net, 1, &f, &v);
    if (fused < 0)
        return pn_fail(err, PN_ENOMEM, "%s: out of memory", l->name);
    /* what flows on: this layer's input gradient, or the deferred batch norm's */
    pn_layer *bn = fused ? &net->layers[l->inputs[0]] : NULL;
    int want_dx = pn_net_needs_input_grad(net, fused ? bn : l, 0);
    int bn_part = fused && (want_dx || pn_layer_trains(net, bn));
    void *dx = !fused && want_dx ? pn_grad_begin(net, in) : NULL;
    const void *dz = l->out.grad;
#pragma omp parallel for schedule(static)
    for (int k = 0; k < n; k++) {
        float *ds = p->dscale + (size_t)k * c, *gate = p->scale + (size_t)k * c;
        if (fused)
            pn_bn_se_gate_grad(&f, k, dz, ds);
        else
            dot_rows(dz, in->data, net->dt, (size_t)k * hw, hw, c, ds);
        excite_backward(p, l, net, k, hw);
        if (bn_part)
            pn_bn_se_sums(&f, k, dz, gate, ds);
        else if (dx)
            scale_add_rows(dz, dx, net->dt, (size_t)k * hw, hw, c, gate, ds);
    }
    dense_weight_grad(p->dz2, p->a1, n, p->s, c, pn_layer_param(net, l, P_W2)->grad,
                      pn_layer_param(net, l, P_B2)->grad);
    dense_weight_grad(p->dz1, p->pooled, n, c, p->s, pn_layer_param(net, l, P_W1)->grad,
                      pn_layer_param(net, l, P_B1)->grad);
    if (dx)
        pn_grad_end(net, in, dx, n);
    pn_status st = PN_OK;
    if (bn_part) { /* the deferred batch norm's backward */
        pn_buf *bin = pn_layer_in(net, bn, 0);
        void *bdx = want_dx ? pn_grad_begin(net, bin) : NULL;
        if (pn_bn_se_backward(&f, dz, p->scale, p->dscale, v.invstd, v.gamma, v.global_stats,
                              v.dgamma, v.dbeta, bdx))
            st = pn_fail(err, PN_ENOMEM, "%s: out of memory", l->name);
        else if (bdx)
            pn_grad_end(net, bin, bdx, n);
    }
    if (fused)
        pn_bn_se_end(&f);
    return st;
}

static void se_describe(const pn_layer *l, const pn_net *net, pn_layer_desc *d)
{
    const se_priv *p = l->priv;
    const pn_param *w = &net->params[l->first_param];
    d->squeeze = p->s;
    d->act = p->act;
    d->gate = p->gate;
    d->weight = w[P_W1].data;
    d->bias = w[P_B1].data;
    d->weight2 = w[P_W2].data;
    d->bias2 = w[P_B2].data;
}

const pn_layer_ops pn_layer_se_ops = {"se", se_init, se_forward, se_backward, se_reset, se_destroy,
                                      se_describe};
