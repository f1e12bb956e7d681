/* Average pooling and global average pooling on oneDNN; max pooling on the
 * kernels of maxpool_nhwc.c (a third of oneDNN 2.6's time for ResNet's stem). */
#include <stdlib.h>
#include <string.h>

#include "nn/internal.h"
#include "nn/maxpool_nhwc.h"

typedef struct pool_priv {
    dnnl_alg_kind_t alg;
    int kh, kw, sh, sw, pt, pb, pl, pr;
    pn_prims k;
    const pn_maxpool_kernels *max_kernels; /* max pooling */
    uint8_t *argmax;                       /* window position of each output, for backward */
    size_t argmax_bytes;
} pool_priv;

static pn_status finish_init(pn_layer *l, pool_priv *p, const pn_buf *in, int line, pn_error *err)
{
    l->out.c = in->c;
    l->out.h = (in->h + p->pt + p->pb - p->kh) / p->sh + 1;
    l->out.w = (in->w + p->pl + p->pr - p->kw) / p->sw + 1;
    if (l->out.h <= 0 || l->out.w <= 0 || p->kh <= 0 || p->sh <= 0)
        return pn_fail(err, PN_EFORMAT, "cfg line %d: pooling window does not fit the %dx%d input", line, in->h, in->w);
    l->macs = (uint64_t)l->out.c * l->out.h * l->out.w * p->kh * p->kw;
    return PN_OK;
}

static pn_status window_init(pn_layer *l, pn_net *net, const pn_cfg_section *s,
                             dnnl_alg_kind_t alg, pn_error *err)
{
    pool_priv *p = calloc(1, sizeof *p);
    if (!p)
        return pn_fail(err, PN_ENOMEM, "out of memory");
    l->priv = p;
    p->alg = alg;
    const pn_buf *in = pn_layer_in(net, l, 0);
    int size, stride;
    pn_status st;
    if ((st = pn_cfg_int(s, "size", 2, &size, err)) || (st = pn_cfg_int(s, "stride", size, &stride, err)))
        return st;
    if (size < 1 || size > PN_MAX_WINDOW_SIDE || stride < 1 || stride > PN_MAX_WINDOW_SIDE)
        return pn_fail(err, PN_EFORMAT, "cfg line %d: pooling size and stride must be in 1..%d", s->line,
                       PN_MAX_WINDOW_SIDE);
    p->kh = p->kw = size;
    p->sh = p->sw = stride;
    const char *pad = pn_cfg_str(s, "pad", "valid");
    if ((st = pn_parse_padding(pad, in->h, size, stride, 1, &p->pt, &p->pb, err)) ||
        (st = pn_parse_padding(pad, in->w, size, stride, 1, &p->pl, &p->pr, err)))
        return pn_error_prefix(err, st, "cfg line %d: ", s->line);
    return finish_init(l, p, in, s->line, err);
}

static pn_status maxpool_init(pn_layer *l, pn_net *net, const pn_cfg_section *s, pn_error *err)
{
    pn_status st = window_init(l, net, s, dnnl_pooling_max, err);
    if (st)
        return st;
    pool_priv *p = l->priv;
    if (p->kh * p->kw > PN_MAXPOOL_MAX_WINDOW)
        return pn_fail(err, PN_EFORMAT, "cfg line %d: max-pool windows are limited to %d positions", s->line, PN_MAXPOOL_MAX_WINDOW);
    p->max_kernels = pn_maxpool_kernels_best();
    return PN_OK;
}

static pn_status avgpool_init(pn_layer *l, pn_net *net, const pn_cfg_section *s, pn_error *err)
{
    /* PyTorch's AvgPool2d default (count_include_pad=True). */
    return window_init(l, net, s, dnnl_pooling_avg_include_padding, err);
}

static pn_status gap_init(pn_layer *l, pn_net *net, const pn_cfg_section *s, pn_error *err)
{
    pool_priv *p = calloc(1, sizeof *p);
    if (!p)
        return pn_fail(err, PN_ENOMEM, "out of memory");
    l->priv = p;
    p->alg = dnnl_pooling_avg_exclude_padding;
    const pn_buf *in = pn_layer_in(net, l, 0);
    p->kh = p->sh = in->h;
    p->kw = p->sw = in->w;
    return finish_init(l, p, in, s->line, err);
}

static void pool_reset(pn_layer *l)
{
    pool_priv *p = l->priv;
    if (p)
        pn_prims_reset(&p->k);
}

static void pool_destroy(pn_layer *l)
{
    pool_reset(l);
    if (l->priv)
        free(((pool_priv *)l->priv)->argmax);
    free(l->priv);
    l->priv = NULL;
}

static pn_status pool_build(pn_layer *l, pn_net *net, int n, int train, pn_error *err)
{
    pool_priv *p = l->priv;
    pool_reset(l);
    const pn_buf *in = pn_layer_in(net, l, 0);
    dnnl_memory_desc_t src, dst;
    pn_status st;
    if ((st = pn_md_nhwc(&src, n, in->c, in->h, in->w, net->dt, err)) ||
        (st = pn_md_nhwc(&dst, n, l->out.c, l->out.h, l->out.w, net->dt, err)))
        return st;
    dnnl_dims_t strides = {p->sh, p->sw}, kernel = {p->kh, p->kw}, pl = {p->pt, p->pl}, pr = {p->pb, p->pr};
    dnnl_pooling_desc_t fd;
    PN_DNNL(dnnl_pooling_forward_desc_init(&fd, train ? dnnl_forward_training : dnnl_forward_inference,
            p->alg, &src, &dst, strides, kernel, pl, pr), err, l->name);
    if ((st = pn_make_pd(net, &fd, NULL, NULL, &p->k.fwd_pd, l->name, err)) ||
        (st = pn_make_prim(p->k.fwd_pd, &p->k.fwd, l->name, err)) ||
        (st = pn_prims_memories(&p->k, net, &src, &dst, train, l->name, err)) ||
        (st = pn_prims_workspace(&p->k, net, l->name, err)))
        return st;
    if (train) {
        dnnl_pooling_desc_t bd;
        PN_DNNL(dnnl_pooling_backward_desc_init(&bd, p->alg, &src, &dst, strides, kernel, pl, pr), err, l->name);
        if ((st = pn_make_bwd_prim(net, &bd, p->k.fwd_pd, &p->k.bwd, l->name, err)))
            return st;
    }
    p->k.built_n = n;
    p->k.built_mode = train;
    return PN_OK;
}

static pn_pool_shape pool_shape(const pn_layer *l, const pn_net *net)
{
    const pool_priv *p = l->priv;
    const pn_buf *in = pn_layer_in((pn_net *)net, (pn_layer *)l, 0);
    return (pn_pool_shape){net->cur_n, in->c, in->h, in->w, l->out.h, l->out.w,
                           p->kh, p->kw, p->sh, p->sw, p->pt, p->pl};
}

static pn_status maxpool_forward(pn_layer *l, pn_net *net, int train, pn_error *err)
{
    pool_priv *p = l->priv;
    pn_pool_shape sh = pool_shape(l, net);
    uint8_t *argmax = NULL;
    if (train != PN_FWD_INFER) {
        size_t bytes = (size_t)sh.n * sh.oh * sh.ow * sh.c;
        if (bytes > p->argmax_bytes) {
            free(p->argmax);
            p->argmax_bytes = 0;
            if (!(p->argmax = malloc(bytes)))
                return pn_fail(err, PN_ENOMEM, "%s: out of memory", l->name);
            p->argmax_bytes = bytes;
        }
        argmax = p->argmax;
    }
    pn_maxpool_nhwc_forward(p->max_kernels, pn_layer_in(net, l, 0)->data, l->out.data, argmax,
                            net->dt, &sh);
    return PN_OK;
}

static pn_status maxpool_backward(pn_layer *l, pn_net *net, pn_error *err)
{
    (void)err;
    pool_priv *p = l->priv;
    if (!pn_net_needs_input_grad(net, l, 0))
        return PN_OK;
    pn_buf *in = pn_layer_in(net, l, 0);
    void *dsrc = pn_grad_begin(net, in);
    pn_pool_shape sh = pool_shape(l, net);
    pn_maxpool_nhwc_backward(p->max_kernels, l->out.grad, p->argmax, dsrc, net->dt, &sh);
    pn_grad_end(net, in, dsrc, net->cur_n);
    return PN_OK;
}

static pn_status pool_forward(pn_layer *l, pn_net *net, int train, pn_error *err)
{
    pool_priv *p = l->priv;
    int want_bwd = train != PN_FWD_INFER;
    pn_status st;
    if ((p->k.built_n != net->cur_n || p->k.built_mode != want_bwd) &&
        (st = pool_build(l, net, net->cur_n, want_bwd, err)))
        return st;
    dnnl_memory_set_data_handle(p->k.src, pn_layer_in(net, l, 0)->data);
    dnnl_memory_set_data_handle(p->k.dst, l->out.data);
    dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, p->k.src}, {DNNL_ARG_DST, p->k.dst}, {DNNL_ARG_WORKSPACE, p->k.ws}};
    return pn_exec(net, p->k.fwd, p->k.ws ? 3 : 2, args, l->name, err);
}

static pn_status pool_backward(pn_layer *l, pn_net *net, pn_error *err)
{
    pool_priv *p = l->priv;
    if (!pn_net_needs_input_grad(net, l, 0))
        return PN_OK;
    pn_buf *in = pn_layer_in(net, l, 0);
    void *dsrc = pn_grad_begin(net, in);
    dnnl_memory_set_data_handle(p->k.ddst, l->out.grad);
    dnnl_memory_set_data_handle(p->k.dsrc, dsrc);
    dnnl_exec_arg_t args[] = {{DNNL_ARG_DIFF_DST, p->k.ddst}, {DNNL_ARG_DIFF_SRC, p->k.dsrc},
                              {DNNL_ARG_WORKSPACE, p->k.ws}};
    pn_status st = pn_exec(net, p->k.bwd, p->k.ws ? 3 : 2, args, l->name, err);
    if (!st)
        pn_grad_end(net, in, dsrc, net->cur_n);
    return st;
}

/* The window (for [gap], the whole input). */
static void pool_describe(const pn_layer *l, const pn_net *net, pn_layer_desc *d)
{
    const pool_priv *p = l->priv;
    d->kh = p->kh, d->kw = p->kw, d->sh = p->sh, d->sw = p->sw, d->dh = d->dw = 1;
    d->pt = p->pt, d->pb = p->pb, d->pl = p->pl, d->pr = p->pr;
}

const pn_layer_ops pn_layer_maxpool_ops = {"maxpool", maxpool_init, maxpool_forward,
                                           maxpool_backward, NULL, pool_destroy, pool_describe};
const pn_layer_ops pn_layer_avgpool_ops = {"avgpool", avgpool_init, pool_forward, pool_backward,
                                           pool_reset, pool_destroy, pool_describe};
const pn_layer_ops pn_layer_gap_ops = {"gap", gap_init, pool_forward, pool_backward, pool_reset,
                                       pool_destroy, pool_describe};
