/* 2-D convolution on oneDNN: stride, symmetric or TF-SAME padding, dilation,
 * groups (depthwise), optional bias, and for inference a fused activation
 * post-op. Weights are fp32 [O, I/groups, kh, kw]; oneDNN receives them
 * reordered into whatever blocked (and bf16) layout its kernel asks for.
 * fp32 3x3 stride-1 convolutions use oneDNN's Winograd kernels (F(4x4, 3x3)
 * or F(2x2, 3x3), oneDNN's choice) in training and inference: about half the
 * time of the direct ones on AVX-512, even with the activations reordered to
 * and from the nChw16c layout they need (cfg `algorithm = direct` turns it
 * off for a layer). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "nn/internal.h"
#include "nn/wprims.h"
#include "nn/conv_wgrad_gemm.h"
#include "nn/dw_nhwc.h"
#include "nn/layer_batchnorm.h"
#include "nn/layer_conv.h"

typedef struct conv_priv {
    pn_conv_geom g;
    pn_wprims w;
    int manual_dw_grad; /* depthwise weight gradient by dw_nhwc.c (oneDNN has no JIT kernel,
                           or the input is a batch norm this layer applies) */
    int winograd;       /* the built primitives use Winograd */
    int gemm_wgrad;     /* weight gradient by conv_wgrad_gemm.c */
    pn_wgrad_gemm wg;
    int fast_dw;        /* depthwise stride-1 input gradient by dw_nhwc.c */
    float *dw_wt_flip;  /* its weights as [tap][c], flipped */
    uint64_t dw_flip_wver;
    float *dw_wt;       /* the weights as [tap][c], for dw_nhwc.c's forward */
    uint64_t dw_wver;
} conv_priv;

const pn_conv_geom *pn_conv_geometry(const pn_layer *l) { return &((conv_priv *)l->priv)->g; }
pn_conv_geom *pn_conv_geometry_mut(pn_layer *l) { return &((conv_priv *)l->priv)->g; }
int pn_conv_uses_gemm_wgrad(const pn_layer *l) { return ((const conv_priv *)l->priv)->gemm_wgrad; }

const char *pn_conv_algorithm(const pn_layer *l)
{
    return ((const conv_priv *)l->priv)->winograd ? "winograd" : "direct";
}

/* A positive integer in 1..PN_MAX_WINDOW_SIDE ending at one of the chars in
 * `stop`; returns the end or NULL. */
static const char *parse_side(const char *text, const char *stop, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (end == text || errno || v < 1 || v > PN_MAX_WINDOW_SIDE || !strchr(stop, *end))
        return NULL;
    *out = (int)v;
    return end;
}

static pn_status parse_geometry(pn_conv_geom *g, const pn_buf *in, const pn_cfg_section *s,
                                pn_error *err)
{
    pn_status st;
    /* "K" or "HxW"; anything else (not a silent atoi) is an error. */
    const char *size = pn_cfg_str(s, "size", "3"), *end = parse_side(size, "x", &g->kh);
    g->kw = g->kh;
    if (end && *end == 'x')
        end = parse_side(end + 1, "", &g->kw);
    if (!end)
        return pn_fail(err, PN_EFORMAT, "cfg line %d [conv]: size '%s' is not K or HxW with sides in 1..%d",
                       s->line, size, PN_MAX_WINDOW_SIDE);
    int stride, dil;
    if ((st = pn_cfg_int(s, "filters", 0, &g->filters, err)) ||
        (st = pn_cfg_int(s, "stride", 1, &stride, err)) ||
        (st = pn_cfg_int(s, "dilation", 1, &dil, err)))
        return st;
    g->sh = g->sw = stride;
    g->dh = g->dw = dil;
    const char *groups = pn_cfg_str(s, "groups", "1");
    if (!strcmp(groups, "dw"))
        g->groups = in->c;
    else if ((st = pn_cfg_int(s, "groups", 1, &g->groups, err)))
        return st;
    if (g->filters <= 0 && !strcmp(groups, "dw"))
        g->filters = in->c;
    if (g->filters <= 0 || g->kh <= 0 || g->kw <= 0 || stride <= 0 || dil <= 0 || g->groups <= 0)
        return pn_fail(err, PN_EFORMAT, "cfg line %d [conv]: filters, size, stride, dilation and groups must be positive", s->line);
    if (stride > PN_MAX_WINDOW_SIDE || dil > PN_MAX_WINDOW_SIDE)
        return pn_fail(err, PN_EFORMAT, "cfg line %d [conv]: stride and dilation must be at most %d", s->line,
                       PN_MAX_WINDOW_SIDE);
    if (in->c % g->groups || g->filters % g->groups)
        return pn_fail(err, PN_EFORMAT, "cfg line %d [conv]: %d input and %d output channels are not divisible by groups=%d", s->line, in->c, g->filters, g->groups);
    const char *alg = pn_cfg_str(s, "algorithm", "auto");
    if (strcmp(alg, "auto") && strcmp(alg, "direct"))
        return pn_fail(err, PN_EFORMAT, "cfg line %d [conv]: algorithm must be auto or direct, not '%s'", s->line, alg);
    g->direct_only = !strcmp(alg, "direct");
    const char *pad = pn_cfg_str(s, "pad", "same");
    if ((st = pn_parse_padding(pad, in->h, g->kh, g->sh, g->dh, &g->pt, &g->pb, err)) ||
        (st = pn_parse_padding(pad, in->w, g->kw, g->sw, g->dw, &g->pl, &g->pr, err)))
        return pn_error_prefix(err, st, "cfg line %d [conv]: ", s->line);
    g->in_c = in->c;
    return PN_OK;
}

static pn_status conv_init(pn_layer *l, pn_net *net, const pn_cfg_section *s, pn_error *err)
{
    conv_priv *p = calloc(1, sizeof *p);
    if (!p)
        return pn_fail(err, PN_ENOMEM, "out of memory");
    l->priv = p;
    pn_conv_geom *g = &p->g;
    const pn_buf *in = pn_layer_in(net, l, 0);
    pn_status st = parse_geometry(g, in, s, err);
    int batchnorm;
    if (st || (st = pn_cfg_int(s, "batchnorm", 0, &batchnorm, err)) ||
        (st = pn_cfg_int(s, "bias", !batchnorm, &g->has_bias, err)))
        return st;
    int oh = (in->h + g->pt + g->pb - ((g->kh - 1) * g->dh + 1)) / g->sh + 1;
    int ow = (in->w + g->pl + g->pr - ((g->kw - 1) * g->dw + 1)) / g->sw + 1;
    if (oh <= 0 || ow <= 0)
        return pn_fail(err, PN_EFORMAT, "cfg line %d [conv]: input %dx%d is too small for this kernel", s->line, in->h, in->w);
    l->out.c = g->filters;
    l->out.h = oh;
    l->out.w = ow;
    int ipg = in->c / g->groups;
    l->macs = (uint64_t)g->filters * oh * ow * ipg * g->kh * g->kw;
    int wshape[4] = {g->filters, ipg, g->kh, g->kw};
    size_t wi, bi;
    if ((st = pn_net_add_param(net, l, "weight", 4, wshape, 0, 0, &wi, err)))
        return st;
    pn_rng r = pn_rng_seed(net->seed, (uint64_t)l->index, 1);
    pn_init_kaiming(net->params[wi].data, net->params[wi].numel, ipg * g->kh * g->kw, &r);
    if (g->has_bias && (st = pn_net_add_param(net, l, "bias", 1, &g->filters, 0, 1, &bi, err)))
        return st;
    return PN_OK;
}

static void conv_reset(pn_layer *l)
{
    conv_priv *p = l->priv;
    if (!p)
        return;
    pn_wprims_reset(&p->w);
    pn_wgrad_gemm_free(&p->wg);
    p->gemm_wgrad = 0;
}

void pn_conv_rebuild(pn_layer *l) { conv_reset(l); }

static void conv_destroy(pn_layer *l)
{
    conv_reset(l);
    if (l->priv) {
        conv_priv *p = l->priv;
        free(p->g.fused_bias);
        free(p->dw_wt_flip);
        free(p->dw_wt);
    }
    free(l->priv);
    l->priv = NULL;
}

/* Weight descriptors: oneDNN's grouped layout goihw has the same memory order
 * as our [O, I/G, kh, kw]. */
static pn_status weight_mds(const pn_conv_geom *g, dnnl_data_type_t dt, dnnl_memory_desc_t *user,
                            dnnl_memory_desc_t *any, pn_error *err)
{
    int ipg = g->in_c / g->groups;
    if (g->groups > 1) {
        dnnl_dims_t d = {g->groups, g->filters / g->groups, ipg, g->kh, g->kw};
        PN_DNNL(dnnl_memory_desc_init_by_tag(user, 5, d, dnnl_f32, dnnl_goihw), err, "conv weights");
        PN_DNNL(dnnl_memory_desc_init_by_tag(any, 5, d, dt, dnnl_format_tag_any), err, "conv weights");
    } else {
        dnnl_dims_t d = {g->filters, ipg, g->kh, g->kw};
        PN_DNNL(dnnl_memory_desc_init_by_tag(user, 4, d, dnnl_f32, dnnl_oihw), err, "conv weights");
        PN_DNNL(dnnl_memory_desc_init_by_tag(any, 4, d, dt, dnnl_format_tag_any), err, "conv weights");
    }
    return PN_OK;
}

typedef struct conv_descs {
    dnnl_memory_desc_t src, dst;           /* what the primitives see */
    dnnl_memory_desc_t src_user, dst_user; /* the layer's NHWC buffers */
    dnnl_memory_desc_t w_user, w_any, dw_any, bias;
    dnnl_dims_t strides, dilates, pad_l, pad_r;
    dnnl_alg_kind_t alg;
} conv_descs;

/* oneDNN 2.6 has Winograd only for fp32 3x3 stride-1 undilated dense
 * convolutions with channels in multiples of 16, on AVX-512. Inference: every
 * such layer, its fused activation a post-op (ResNet-18 at batch 1: 1.25 ->
 * 0.65 ms at 56x56x64, 1.66 -> 1.28 ms at 7x7x512, the nChw16c reorders
 * around it 0.01-0.05 ms). Training: not with a post-op, and not for 7x7
 * outputs: there the gain is smallest (1.6x instead of 2x) and its weight
 * gradient needs a 140 MB scratchpad at 512 channels and batch 32, which
 * would put training's peak memory above PyTorch's. */
static int winograd_candidate(const pn_conv_geom *g, const pn_layer *l, const pn_net *net,
                              int train)
{
    int shape = net->dt == PN_F32 && !g->direct_only && g->groups == 1 && g->kh == 3 && g->kw == 3 &&
                g->sh == 1 && g->sw == 1 && g->dh == 1 && g->dw == 1 && g->in_c % 16 == 0 &&
                g->filters % 16 == 0;
    return shape && (!train || (g->post_act == PN_ACT_LINEAR && l->out.h * l->out.w > 49));
}

static pn_status make_descs(pn_layer *l, pn_net *net, int n, int winograd, conv_descs *d,
                            pn_error *err)
{
    conv_priv *p = l->priv;
    const pn_conv_geom *g = &p->g;
    const pn_buf *in = pn_layer_in(net, l, 0);
    pn_status st;
    dnnl_memory_desc_t unused;
    if ((st = pn_md_nhwc(&d->src_user, n, in->c, in->h, in->w, net->dt, err)) ||
        (st = pn_md_nhwc(&d->dst_user, n, l->out.c, l->out.h, l->out.w, net->dt, err)) ||
        (st = weight_mds(g, pn_dnnl_dt(net->dt), &d->w_user, &d->w_any, err)) ||
        (st = weight_mds(g, dnnl_f32, &unused, &d->dw_any, err)))
        return st;
    d->src = d->src_user;
    d->dst = d->dst_user;
    d->alg = winograd ? dnnl_convolution_winograd : dnnl_convolution_direct;
    if (winograd) { /* let the kernel choose the activation layout */
        PN_DNNL(dnnl_memory_desc_init_by_tag(&d->src, 4, d->src_user.dims, d->src_user.data_type,
                                             dnnl_format_tag_any), err, l->name);
        PN_DNNL(dnnl_memory_desc_init_by_tag(&d->dst, 4, d->dst_user.dims, d->dst_user.data_type,
                                             dnnl_format_tag_any), err, l->name);
    }
    dnnl_dims_t bd = {g->filters};
    PN_DNNL(dnnl_memory_desc_init_by_tag(&d->bias, 1, bd, dnnl_f32, dnnl_x), err, "conv bias");
    d->strides[0] = g->sh, d->strides[1] = g->sw;
    d->dilates[0] = g->dh - 1, d->dilates[1] = g->dw - 1; /* oneDNN counts extra gaps */
    d->pad_l[0] = g->pt, d->pad_l[1] = g->pl;
    d->pad_r[0] = g->pb, d->pad_r[1] = g->pr;
    return PN_OK;
}

static pn_status build_forward(pn_layer *l, pn_net *net, int n, int train, conv_descs *d,
                               pn_error *err)
{
    conv_priv *p = l->priv;
    pn_conv_geom *g = &p->g;
    dnnl_convolution_desc_t cd;
    PN_DNNL(dnnl_dilated_convolution_forward_desc_init(&cd, train ? dnnl_forward_training : dnnl_forward_inference,
            d->alg, &d->src, &d->w_any, g->has_bias ? &d->bias : NULL, &d->dst,
            d->strides, d->dilates, d->pad_l, d->pad_r), err, l->name);
    dnnl_primitive_attr_t attr = NULL;
    dnnl_alg_kind_t alg;
    float alpha, beta;
    if (g->post_act != PN_ACT_LINEAR && pn_act_dnnl(g->post_act, &alg, &alpha, &beta)) {
        dnnl_post_ops_t po;
        PN_DNNL(dnnl_primitive_attr_create(&attr), err, l->name);
        PN_DNNL(dnnl_post_ops_create(&po), err, l->name);
        dnnl_post_ops_append_eltwise(po, 1.0f, alg, alpha, beta);
        dnnl_primitive_attr_set_post_ops(attr, po);
        dnnl_post_ops_destroy(po);
    }
    pn_status st = pn_make_pd(net, &cd, attr, NULL, &p->w.fwd_pd, l->name, err);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    if (st || (st = pn_make_prim(p->w.fwd_pd, &p->w.fwd, l->name, err)))
        return st;
    pn_param *w = pn_layer_param(net, l, 0);
    const dnnl_memory_desc_t *wmd = dnnl_primitive_desc_query_md(p->w.fwd_pd, dnnl_query_weights_md, 0);
    if ((st = pn_wmem_init(&p->w.w_fwd, net, &d->w_user, w->data, wmd, 0, err)))
        return st;
    dnnl_engine_t eng = net->ctx->engine;
    d->src = *dnnl_primitive_desc_query_md(p->w.fwd_pd, dnnl_query_src_md, 0);
    d->dst = *dnnl_primitive_desc_query_md(p->w.fwd_pd, dnnl_query_dst_md, 0);
    p->w.blocked = !dnnl_memory_desc_equal(&d->src, &d->src_user) ||
                   !dnnl_memory_desc_equal(&d->dst, &d->dst_user);
    if (p->w.blocked && ((st = pn_relayout_init(&p->w.rx, net, &d->src_user, &d->src, err)) ||
                         (st = pn_relayout_init(&p->w.ry, net, &d->dst_user, &d->dst, err))))
        return st;
    PN_DNNL(dnnl_memory_create(&p->w.src, &d->src, eng, DNNL_MEMORY_NONE), err, l->name);
    PN_DNNL(dnnl_memory_create(&p->w.dst, &d->dst, eng, DNNL_MEMORY_NONE), err, l->name);
    if (g->has_bias) {
        float *bias = g->fused_bias ? g->fused_bias : pn_layer_param(net, l, 1)->data;
        PN_DNNL(dnnl_memory_create(&p->w.bias, &d->bias, eng, bias), err, l->name);
    }
    return PN_OK;
}

/* oneDNN 2.6's AMX kernel for bf16 weight gradients is slow on some shapes
 * (measured on MobileNetV3's and ResNet's): for 1x1 convolutions with 7x7 to
 * 14x14 outputs its GEMM-based kernel is 2-3x faster, and for a 3x3 stem on
 * 3 input channels its AVX-512 one is 1.4x faster (for ResNet's 7x7 stem it
 * is 2x slower). NULL: oneDNN's own choice. */
static const char *weight_grad_kernel(const pn_conv_geom *g, const pn_layer *l, const pn_net *net)
{
    if (net->dt != PN_BF16 || g->groups != 1)
        return NULL;
    int pixels = l->out.h * l->out.w;
    if (g->kh == 1 && g->kw == 1 && pixels >= 49 && pixels <= 196)
        return "gemm";
    if (g->in_c < 8 && g->kh * g->kw <= 9)
        return "jit_bf16";
    return NULL;
}

static pn_status build_backward(pn_layer *l, pn_net *net, int n, const conv_descs *d,
                                pn_error *err)
{
    conv_priv *p = l->priv;
    const pn_conv_geom *g = &p->g;
    dnnl_engine_t eng = net->ctx->engine;
    pn_status st;
    PN_DNNL(dnnl_memory_create(&p->w.ddst, &d->dst, eng, DNNL_MEMORY_NONE), err, l->name);
    PN_DNNL(dnnl_memory_create(&p->w.dsrc, &d->src, eng, DNNL_MEMORY_NONE), err, l->name);

    dnnl_convolution_desc_t bd;
    PN_DNNL(dnnl_dilated_convolution_backward_data_desc_init(&bd, d->alg, &d->src,
            &d->w_any, &d->dst, d->strides, d->dilates, d->pad_l, d->pad_r), err, l->name);
    dnnl_primitive_desc_t pd;
    if ((st = pn_make_pd(net, &bd, NULL, p->w.fwd_pd, &pd, l->name, err)))
        return st;
    st = pn_make_prim(pd, &p->w.bwd_data, l->name, err);
    const dnnl_memory_desc_t *wmd = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    if (!st)
        st = pn_wmem_init(&p->w.w_bwd, net, &d->w_user, pn_layer_param(net, l, 0)->data, wmd, 0, err);
    pn_destroy_pd(&pd);
    if (st)
        return st;

    if (net->layers[l->inputs[0]].deferred == PN_BN_IN_CONV) { /* dw_nhwc.c applies it */
        p->manual_dw_grad = 1;
        return PN_OK;
    }
    if (pn_wgrad_gemm_pays(g, l, net)) {
        p->gemm_wgrad = 1;
        return pn_wgrad_gemm_init(&p->wg, net, l, n, err);
    }
    dnnl_convolution_desc_t wd;
    PN_DNNL(dnnl_dilated_convolution_backward_weights_desc_init(&wd, d->alg, &d->src,
            &d->dw_any, g->has_bias ? &d->bias : NULL, &d->dst, d->strides, d->dilates, d->pad_l,
            d->pad_r), err, l->name);
    const char *prefer = weight_grad_kernel(g, l, net);
    if ((st = prefer ? pn_make_pd_prefer(net, &wd, p->w.fwd_pd, prefer, &pd, l->name, err)
                     : pn_make_pd(net, &wd, NULL, p->w.fwd_pd, &pd, l->name, err)))
        return st;
    const char *impl = "";
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    int depthwise = g->groups == g->in_c && g->groups == g->filters;
    p->manual_dw_grad = depthwise && !strstr(impl, "dw");
    if (p->manual_dw_grad) {
        pn_destroy_pd(&pd);
        return PN_OK;
    }
    st = pn_make_prim(pd, &p->w.bwd_weights, l->name, err);
    const dnnl_memory_desc_t *dwmd = dnnl_primitive_desc_query_md(pd, dnnl_query_diff_weights_md, 0);
    dnnl_memory_desc_t dw_user = d->w_user; /* fp32 plain, same dims */
    if (!st)
        st = pn_wmem_init(&p->w.dw, net, &dw_user, pn_layer_param(net, l, 0)->grad, dwmd, 1, err);
    pn_destroy_pd(&pd);
    if (st)
        return st;
    if (g->has_bias)
        PN_DNNL(dnnl_memory_create(&p->w.dbias, &d->bias, eng, pn_layer_param(net, l, 1)->grad), err, l->name);
    return PN_OK;
}

static pn_dw_shape dw_shape(pn_layer *l, pn_net *net, int n)
{
    const pn_conv_geom *g = &((conv_priv *)l->priv)->g;
    const pn_buf *in = pn_layer_in(net, l, 0);
    return (pn_dw_shape){n, g->filters, in->h, in->w, l->out.h, l->out.w, g->kh, g->kw,
                         g->sh, g->sw, g->dh, g->dw, g->pt, g->pl};
}

/* The weights as [tap][c] for dw_nhwc.c (flipped for the input gradient),
 * refreshed when the parameters change. */
static pn_status sync_dw_weights(pn_layer *l, pn_net *net, int flip, pn_error *err)
{
    conv_priv *p = l->priv;
    float **wt = flip ? &p->dw_wt_flip : &p->dw_wt;
    uint64_t *ver = flip ? &p->dw_flip_wver : &p->dw_wver;
    if (*ver == net->wver && *wt)
        return PN_OK;
    const pn_param *w = pn_layer_param(net, l, 0);
    if (!*wt && !(*wt = malloc(w->numel * sizeof(float))))
        return pn_fail(err, PN_ENOMEM, "%s: out of memory", l->name);
    pn_dw_transpose_weights(w->data, p->g.filters, p->g.kh, p->g.kw, flip, *wt);
    *ver = net->wver;
    return PN_OK;
}

/* Not below 32 channels: there our weight gradient, which the fusion needs,
 * is 2x slower than oneDNN's (MobileNetV3's first block, 16 channels at
 * 112x112: +2.1 ms, more than the norm's pass it saves). */
int pn_conv_applies_input_bn(pn_layer *l, pn_net *net)
{
    const pn_conv_geom *g = &((conv_priv *)l->priv)->g;
    pn_dw_shape sh = dw_shape(l, net, 1);
    return g->groups == g->in_c && g->groups == g->filters && g->filters >= 32 &&
           !g->has_bias && pn_dw_nhwc_fast_available(&sh);
}

/* The batch norm this convolution applies to its input (PN_BN_IN_CONV):
 * returns that layer, with its transform in *pro, or NULL. */
static pn_layer *input_bn(pn_layer *l, pn_net *net, pn_dw_prologue *pro)
{
    pn_layer *bn = &net->layers[l->inputs[0]];
    if (bn->deferred != PN_BN_IN_CONV)
        return NULL;
    pn_bn_view v;
    pn_batchnorm_view(bn, net, &v);
    *pro = (pn_dw_prologue){v.scale, v.shift, v.act};
    return bn;
}

static pn_status dw_forward_bn(pn_layer *l, pn_net *net, pn_layer *bn, const pn_dw_prologue *pro,
                               pn_error *err)
{
    pn_status st = sync_dw_weights(l, net, 0, err);
    if (st)
        return st;
    ((conv_priv *)l->priv)->w.ddst_staged = 0;
    pn_dw_shape sh = dw_shape(l, net, net->cur_n);
    if (pn_dw_nhwc_forward(pn_layer_in(net, bn, 0)->data, pro, ((conv_priv *)l->priv)->dw_wt,
                           l->out.data, net->dt, &sh))
        return pn_fail(err, PN_ENOMEM, "%s: out of memory", l->name);
    return PN_OK;
}

static pn_status dw_input_grad(pn_layer *l, pn_net *net, pn_error *err)
{
    conv_priv *p = l->priv;
    pn_status st = sync_dw_weights(l, net, 1, err);
    if (st)
        return st;
    pn_buf *in = pn_layer_in(net, l, 0);
    void *dx = pn_grad_begin(net, in);
    pn_dw_shape sh = dw_shape(l, net, net->cur_n);
    if (pn_dw_nhwc_backward_data(l->out.grad, p->dw_wt_flip, dx, net->dt, &sh))
        return pn_fail(err, PN_ENOMEM, "%s: out of memory", l->name);
    pn_grad_end(net, in, dx, net->cur_n);
    return PN_OK;
}

static pn_status dw_weight_grad(pn_layer *l, pn_net *net, pn_error *err)
{
    const pn_conv_geom *g = &((conv_priv *)l->priv)->g;
    pn_dw_shape sh = dw_shape(l, net, net->cur_n);
    pn_dw_prologue pro;
    pn_layer *bn = input_bn(l, net, &pro);
    const void *x = bn ? pn_layer_in(net, bn, 0)->data : pn_layer_in(net, l, 0)->data;
    if (pn_dw_nhwc_backward_weights(x, bn ? &pro : NULL, l->out.grad, net->dt, &sh,
                                    pn_layer_param(net, l, 0)->grad,
                                    g->has_bias ? pn_layer_param(net, l, 1)->grad : NULL))
        return pn_fail(err, PN_ENOMEM, "%s: out of memory", l->name);
    return PN_OK;
}

static pn_status conv_build(pn_layer *l, pn_net *net, int n, int train, pn_error *err)
{
    conv_priv *p = l->priv;
    conv_reset(l);
    conv_descs d;
    int winograd = winograd_candidate(&p->g, l, net, train);
    pn_status st = make_descs(l, net, n, winograd, &d, err);
    if (!st)
        st = build_forward(l, net, n, train, &d, err);
    if (!st && train)
        st = build_backward(l, net, n, &d, err);
    if (st && winograd) { /* no Winograd kernel for this shape here: direct */
        conv_reset(l);
        if (err)
            *err = (pn_error){0};
        winograd = 0;
        if (!(st = make_descs(l, net, n, 0, &d, err)) && !(st = build_forward(l, net, n, train, &d, err)))
            st = build_backward(l, net, n, &d, err);
    }
    p->winograd = winograd;
    pn_dw_shape sh = dw_shape(l, net, n);
    /* oneDNN's depthwise forward stays (ours is no faster in a network), its
     * input gradient is ~15% slower than ours for stride 1 */
    p->fast_dw = train && p->g.groups == p->g.in_c && p->g.groups == p->g.filters &&
                 p->g.sh == 1 && p->g.sw == 1 && pn_dw_nhwc_fast_available(&sh);
    if (st)
        return st;
    p->w.built_n = n;
    p->w.built_train = train;
    p->w.synced_wver = (uint64_t)-1;
    return PN_OK;
}

static pn_status conv_forward(pn_layer *l, pn_net *net, int train, pn_error *err)
{
    conv_priv *p = l->priv;
    int n = net->cur_n, want_bwd = train != PN_FWD_INFER;
    pn_status st;
    if ((p->w.built_n != n || p->w.built_train != want_bwd) && (st = conv_build(l, net, n, want_bwd, err)))
        return st;
    p->w.has_bias = p->g.has_bias;
    pn_dw_prologue pro;
    pn_layer *bn = input_bn(l, net, &pro);
    return bn ? dw_forward_bn(l, net, bn, &pro, err) : pn_wprims_forward(&p->w, net, l, err);
}

static pn_status conv_backward(pn_layer *l, pn_net *net, pn_error *err)
{
    conv_priv *p = l->priv;
    pn_status st = PN_OK;
    if (pn_layer_trains(net, l))
        st = p->manual_dw_grad ? dw_weight_grad(l, net, err)
             : p->gemm_wgrad   ? pn_wgrad_gemm_run(&p->wg, net, l, err)
                               : pn_wprims_backward_weights(&p->w, net, l, err);
    if (st || !pn_net_needs_input_grad(net, l, 0))
        return st;
    if (p->fast_dw)
        return dw_input_grad(l, net, err);
    return pn_wprims_backward_data(&p->w, net, l, err);
}

static void conv_describe(const pn_layer *l, const pn_net *net, pn_layer_desc *d)
{
    const pn_conv_geom *g = pn_conv_geometry(l);
    d->kh = g->kh, d->kw = g->kw, d->sh = g->sh, d->sw = g->sw, d->dh = g->dh, d->dw = g->dw;
    d->pt = g->pt, d->pb = g->pb, d->pl = g->pl, d->pr = g->pr;
    d->groups = g->groups;
    d->act = g->post_act;
    d->weight = net->params[l->first_param].data;
    d->bias = g->fused_bias ? g->fused_bias : g->has_bias ? net->params[l->first_param + 1].data : NULL;
}

const pn_layer_ops pn_layer_conv_ops = {"conv", conv_init, conv_forward, conv_backward,
                                        conv_reset, conv_destroy, conv_describe};
