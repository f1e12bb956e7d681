/* Fully connected layer on oneDNN inner product. The input is flattened in
 * NHWC order (for 1x1 spatial inputs, as after global pooling, this equals
 * PyTorch's flatten). */
#include <stdlib.h>
#include <string.h>

#include "nn/internal.h"
#include "nn/wprims.h"

typedef struct fc_priv {
    int in_features, out_features, has_bias;
    pn_wprims w;
} fc_priv;

static pn_status fc_init(pn_layer *l, pn_net *net, const pn_cfg_section *s, pn_error *err)
{
    fc_priv *p = calloc(1, sizeof *p);
    if (!p)
        return pn_fail(err, PN_ENOMEM, "out of memory");
    l->priv = p;
    const pn_buf *in = pn_layer_in(net, l, 0);
    const char *out = pn_cfg_str(s, "out", NULL);
    pn_status st;
    if (!out)
        return pn_fail(err, PN_EFORMAT, "cfg line %d [fc]: missing out", s->line);
    p->out_features = !strcmp(out, "classes") ? net->classes : atoi(out);
    if (p->out_features <= 0)
        return pn_fail(err, PN_EFORMAT, "cfg line %d [fc]: bad out '%s'", s->line, out);
    if ((st = pn_cfg_int(s, "bias", 1, &p->has_bias, err)))
        return st;
    p->in_features = in->c * in->h * in->w;
    l->out.c = p->out_features;
    l->out.h = l->out.w = 1;
    l->macs = (uint64_t)p->in_features * p->out_features;
    int wshape[2] = {p->out_features, p->in_features};
    size_t wi, bi;
    if ((st = pn_net_add_param(net, l, "weight", 2, wshape, 0, 0, &wi, err)))
        return st;
    pn_rng r = pn_rng_seed(net->seed, (uint64_t)l->index, 1);
    pn_init_xavier(net->params[wi].data, net->params[wi].numel, p->in_features, p->out_features, &r);
    if (p->has_bias && (st = pn_net_add_param(net, l, "bias", 1, &p->out_features, 0, 1, &bi, err)))
        return st;
    return PN_OK;
}

static void fc_reset(pn_layer *l)
{
    fc_priv *p = l->priv;
    if (p)
        pn_wprims_reset(&p->w);
}

static void fc_destroy(pn_layer *l)
{
    fc_reset(l);
    free(l->priv);
    l->priv = NULL;
}

static pn_status md2(dnnl_memory_desc_t *md, int a, int b, dnnl_data_type_t dt,
                     dnnl_format_tag_t tag, pn_error *err)
{
    dnnl_dims_t d = {a, b};
    PN_DNNL(dnnl_memory_desc_init_by_tag(md, 2, d, dt, tag), err, "fc memory desc");
    return PN_OK;
}

static pn_status build_backward(pn_layer *l, pn_net *net, const dnnl_memory_desc_t *src,
                                const dnnl_memory_desc_t *dst, const dnnl_memory_desc_t *w_any,
                                const dnnl_memory_desc_t *w_user, const dnnl_memory_desc_t *bias,
                                pn_error *err)
{
    fc_priv *p = l->priv;
    dnnl_engine_t eng = net->ctx->engine;
    pn_status st;
    dnnl_inner_product_desc_t bd, wd;
    dnnl_primitive_desc_t pd;
    PN_DNNL(dnnl_inner_product_backward_data_desc_init(&bd, src, w_any, dst), err, l->name);
    if ((st = pn_make_pd(net, &bd, NULL, p->w.fwd_pd, &pd, l->name, err)))
        return st;
    st = pn_make_prim(pd, &p->w.bwd_data, l->name, err);
    if (!st)
        st = pn_wmem_init(&p->w.w_bwd, net, w_user, pn_layer_param(net, l, 0)->data,
                          dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0), 0, err);
    pn_destroy_pd(&pd);
    if (st)
        return st;
    dnnl_memory_desc_t dw_any;
    if ((st = md2(&dw_any, p->out_features, p->in_features, dnnl_f32, dnnl_format_tag_any, err)))
        return st;
    PN_DNNL(dnnl_inner_product_backward_weights_desc_init(&wd, src, &dw_any, p->has_bias ? bias : NULL, dst), err, l->name);
    if ((st = pn_make_pd(net, &wd, NULL, p->w.fwd_pd, &pd, l->name, err)))
        return st;
    st = pn_make_prim(pd, &p->w.bwd_weights, l->name, err);
    if (!st)
        st = pn_wmem_init(&p->w.dw, net, w_user, pn_layer_param(net, l, 0)->grad,
                          dnnl_primitive_desc_query_md(pd, dnnl_query_diff_weights_md, 0), 1, err);
    pn_destroy_pd(&pd);
    if (st)
        return st;
    PN_DNNL(dnnl_memory_create(&p->w.dsrc, src, eng, DNNL_MEMORY_NONE), err, l->name);
    PN_DNNL(dnnl_memory_create(&p->w.ddst, dst, eng, DNNL_MEMORY_NONE), err, l->name);
    if (p->has_bias)
        PN_DNNL(dnnl_memory_create(&p->w.dbias, bias, eng, pn_layer_param(net, l, 1)->grad), err, l->name);
    return PN_OK;
}

static pn_status fc_build(pn_layer *l, pn_net *net, int n, int train, pn_error *err)
{
    fc_priv *p = l->priv;
    fc_reset(l);
    dnnl_data_type_t dt = pn_dnnl_dt(net->dt);
    dnnl_memory_desc_t src, dst, w_any, w_user, bias;
    pn_status st;
    if ((st = md2(&src, n, p->in_features, dt, dnnl_nc, err)) ||
        (st = md2(&dst, n, p->out_features, dt, dnnl_nc, err)) ||
        (st = md2(&w_any, p->out_features, p->in_features, dt, dnnl_format_tag_any, err)) ||
        (st = md2(&w_user, p->out_features, p->in_features, dnnl_f32, dnnl_oi, err)))
        return st;
    dnnl_dims_t bd = {p->out_features};
    PN_DNNL(dnnl_memory_desc_init_by_tag(&bias, 1, bd, dnnl_f32, dnnl_x), err, l->name);
    dnnl_inner_product_desc_t fd;
    PN_DNNL(dnnl_inner_product_forward_desc_init(&fd, train ? dnnl_forward_training : dnnl_forward_inference,
            &src, &w_any, p->has_bias ? &bias : NULL, &dst), err, l->name);
    if ((st = pn_make_pd(net, &fd, NULL, NULL, &p->w.fwd_pd, l->name, err)) ||
        (st = pn_make_prim(p->w.fwd_pd, &p->w.fwd, l->name, err)) ||
        (st = pn_wmem_init(&p->w.w_fwd, net, &w_user, pn_layer_param(net, l, 0)->data,
                           dnnl_primitive_desc_query_md(p->w.fwd_pd, dnnl_query_weights_md, 0), 0, err)))
        return st;
    dnnl_engine_t eng = net->ctx->engine;
    PN_DNNL(dnnl_memory_create(&p->w.src, &src, eng, DNNL_MEMORY_NONE), err, l->name);
    PN_DNNL(dnnl_memory_create(&p->w.dst, &dst, eng, DNNL_MEMORY_NONE), err, l->name);
    if (p->has_bias)
        PN_DNNL(dnnl_memory_create(&p->w.bias, &bias, eng, pn_layer_param(net, l, 1)->data), err, l->name);
    if (train && (st = build_backward(l, net, &src, &dst, &w_any, &w_user, &bias, err)))
        return st;
    p->w.built_n = n;
    p->w.built_train = train;
    p->w.synced_wver = (uint64_t)-1;
    return PN_OK;
}

static pn_status fc_forward(pn_layer *l, pn_net *net, int train, pn_error *err)
{
    fc_priv *p = l->priv;
    int want_bwd = train != PN_FWD_INFER;
    pn_status st;
    if ((p->w.built_n != net->cur_n || p->w.built_train != want_bwd) &&
        (st = fc_build(l, net, net->cur_n, want_bwd, err)))
        return st;
    p->w.has_bias = p->has_bias;
    return pn_wprims_forward(&p->w, net, l, err);
}

static pn_status fc_backward(pn_layer *l, pn_net *net, pn_error *err)
{
    fc_priv *p = l->priv;
    pn_status st = pn_layer_trains(net, l) ? pn_wprims_backward_weights(&p->w, net, l, err) : PN_OK;
    if (st || !pn_net_needs_input_grad(net, l, 0))
        return st;
    return pn_wprims_backward_data(&p->w, net, l, err);
}

static void fc_describe(const pn_layer *l, const pn_net *net, pn_layer_desc *d)
{
    const fc_priv *p = l->priv;
    d->weight = net->params[l->first_param].data;
    d->bias = p->has_bias ? net->params[l->first_param + 1].data : NULL;
}

const pn_layer_ops pn_layer_fc_ops = {"fc", fc_init, fc_forward, fc_backward, fc_reset, fc_destroy,
                                      fc_describe};
