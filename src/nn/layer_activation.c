/* Element-wise activations: oneDNN eltwise where it has the function,
 * a hand-written loop for hardsigmoid (absent from oneDNN 2.6). */
#include <stdlib.h>
#include <string.h>

#include "nn/internal.h"

typedef struct act_priv {
    pn_act_kind kind;
    pn_prims k;
} act_priv;

pn_act_kind pn_activation_kind(const pn_layer *l) { return ((const act_priv *)l->priv)->kind; }

static pn_status act_init(pn_layer *l, pn_net *net, const pn_cfg_section *s, pn_error *err)
{
    act_priv *p = calloc(1, sizeof *p);
    if (!p)
        return pn_fail(err, PN_ENOMEM, "out of memory");
    l->priv = p;
    l->out = *pn_layer_in(net, l, 0);
    /* Standalone [activation type=...] or `activation =` on another section. */
    const char *key = strcmp(s->kind, "activation") ? "activation" : "type";
    pn_status st = pn_act_parse(pn_cfg_str(s, key, "relu"), &p->kind, err);
    return st ? pn_error_prefix(err, st, "cfg line %d: ", s->line) : PN_OK;
}

static void act_reset(pn_layer *l)
{
    act_priv *p = l->priv;
    if (p)
        pn_prims_reset(&p->k);
}

static void act_destroy(pn_layer *l)
{
    act_reset(l);
    free(l->priv);
    l->priv = NULL;
}

static pn_status act_build(pn_layer *l, pn_net *net, int n, int train, pn_error *err)
{
    act_priv *p = l->priv;
    act_reset(l);
    dnnl_alg_kind_t alg;
    float alpha, beta;
    pn_act_dnnl(p->kind, &alg, &alpha, &beta);
    if (l->in_place)
        pn_act_dnnl_use_dst(p->kind, &alg);
    dnnl_memory_desc_t md;
    pn_status st = pn_md_nhwc(&md, n, l->out.c, l->out.h, l->out.w, net->dt, err);
    if (st)
        return st;
    dnnl_eltwise_desc_t fd;
    PN_DNNL(dnnl_eltwise_forward_desc_init(&fd, train ? dnnl_forward_training : dnnl_forward_inference,
            alg, &md, alpha, beta), err, l->name);
    if ((st = pn_make_pd(net, &fd, NULL, NULL, &p->k.fwd_pd, l->name, err)) ||
        (st = pn_make_prim(p->k.fwd_pd, &p->k.fwd, l->name, err)) ||
        (st = pn_prims_memories(&p->k, net, &md, &md, train, l->name, err)))
        return st;
    if (train) {
        dnnl_eltwise_desc_t bd;
        PN_DNNL(dnnl_eltwise_backward_desc_init(&bd, alg, &md, &md, alpha, beta), err, l->name);
        if ((st = pn_make_bwd_prim(net, &bd, p->k.fwd_pd, &p->k.bwd, l->name, err)))
            return st;
    }
    p->k.built_n = n;
    p->k.built_mode = train;
    return PN_OK;
}

static int handwritten(const act_priv *p)
{
    dnnl_alg_kind_t alg;
    float a, b;
    return !pn_act_dnnl(p->kind, &alg, &a, &b);
}

static pn_status act_forward(pn_layer *l, pn_net *net, int train, pn_error *err)
{
    act_priv *p = l->priv;
    pn_buf *in = pn_layer_in(net, l, 0);
    size_t count = pn_buf_numel(&l->out, net->cur_n);
    if (handwritten(p)) {
        pn_dtype t = net->dt;
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < count; i++)
            pn_st(l->out.data, t, i, pn_act_apply(p->kind, pn_ld(in->data, t, i)));
        return PN_OK;
    }
    int want_bwd = train != PN_FWD_INFER;
    pn_status st;
    if ((p->k.built_n != net->cur_n || p->k.built_mode != want_bwd) &&
        (st = act_build(l, net, net->cur_n, want_bwd, err)))
        return st;
    dnnl_memory_set_data_handle(p->k.src, in->data);
    dnnl_memory_set_data_handle(p->k.dst, l->out.data);
    dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, p->k.src}, {DNNL_ARG_DST, p->k.dst}};
    return pn_exec(net, p->k.fwd, 2, args, l->name, err);
}

static pn_status act_backward(pn_layer *l, pn_net *net, pn_error *err)
{
    act_priv *p = l->priv;
    if (!pn_net_needs_input_grad(net, l, 0))
        return PN_OK;
    pn_buf *in = pn_layer_in(net, l, 0);
    void *dsrc = pn_grad_begin(net, in);
    if (handwritten(p)) {
        size_t count = pn_buf_numel(&l->out, net->cur_n);
        pn_dtype t = net->dt;
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < count; i++)
            pn_st(dsrc, t, i, pn_ld(l->out.grad, t, i) * pn_act_grad(p->kind, pn_ld(in->data, t, i)));
    } else {
        /* in place, the input was overwritten: the use_dst variant reads the output */
        dnnl_memory_set_data_handle(p->k.src, l->in_place ? l->out.data : in->data);
        dnnl_memory_set_data_handle(p->k.ddst, l->out.grad);
        dnnl_memory_set_data_handle(p->k.dsrc, dsrc);
        dnnl_exec_arg_t args[] = {{l->in_place ? DNNL_ARG_DST : DNNL_ARG_SRC, p->k.src},
                                  {DNNL_ARG_DIFF_DST, p->k.ddst}, {DNNL_ARG_DIFF_SRC, p->k.dsrc}};
        pn_status st = pn_exec(net, p->k.bwd, 3, args, l->name, err);
        if (st)
            return st;
    }
    pn_grad_end(net, in, dsrc, net->cur_n);
    return PN_OK;
}

static void act_describe(const pn_layer *l, const pn_net *net, pn_layer_desc *d)
{
    d->act = pn_activation_kind(l);
}

const pn_layer_ops pn_layer_activation_ops = {"activation", act_init, act_forward, act_backward,
                                              act_reset, act_destroy, act_describe};
