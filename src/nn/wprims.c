#include "nn/wprims.h"

void pn_wprims_reset(pn_wprims *w)
{
    pn_destroy_prim(&w->fwd);
    pn_destroy_prim(&w->bwd_data);
    pn_destroy_prim(&w->bwd_weights);
    pn_destroy_pd(&w->fwd_pd);
    dnnl_memory_t *mems[] = {&w->src, &w->dst, &w->bias, &w->dsrc, &w->ddst, &w->dbias};
    for (size_t i = 0; i < sizeof mems / sizeof *mems; i++)
        pn_destroy_mem(mems[i]);
    pn_wmem_free(&w->w_fwd);
    pn_wmem_free(&w->w_bwd);
    pn_wmem_free(&w->dw);
    pn_relayout_free(&w->rx);
    pn_relayout_free(&w->ry);
    w->blocked = 0;
    w->built_n = 0;
}

pn_status pn_wprims_forward(pn_wprims *w, pn_net *net, pn_layer *l, pn_error *err)
{
    pn_status st;
    if (w->synced_wver != net->wver) {
        if ((st = pn_wmem_sync(&w->w_fwd, net, err)))
            return st;
        w->synced_wver = net->wver;
    }
    w->ddst_staged = 0;
    void *x = pn_layer_in(net, l, 0)->data;
    if (!w->blocked) {
        dnnl_memory_set_data_handle(w->src, x);
        dnnl_memory_set_data_handle(w->dst, l->out.data);
    } else if ((st = pn_relayout_in(&w->rx, net, 0, x, 1, err)) ||
               (st = pn_relayout_in(&w->ry, net, 1, l->out.data, 0, err))) {
        return st;
    }
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, w->blocked ? w->rx.prim : w->src},
                               {DNNL_ARG_WEIGHTS, pn_wmem_get(&w->w_fwd)},
                               {DNNL_ARG_DST, w->blocked ? w->ry.prim : w->dst},
                               {DNNL_ARG_BIAS, w->bias}};
    if ((st = pn_exec(net, w->fwd, w->has_bias ? 4 : 3, args, l->name, err)))
        return st;
    return w->blocked ? pn_relayout_out(&w->ry, net, err) : PN_OK;
}

/* The output gradient in the primitives' layout: staged in relayout slot 1
 * by the weight gradient and reused by the data gradient. */
static pn_status stage_ddst(pn_wprims *w, pn_net *net, pn_layer *l, pn_error *err)
{
    if (!w->blocked) {
        dnnl_memory_set_data_handle(w->ddst, l->out.grad);
        return PN_OK;
    }
    if (w->ddst_staged)
        return PN_OK;
    pn_status st = pn_relayout_in(&w->ry, net, 1, l->out.grad, 1, err);
    w->ddst_staged = !st;
    return st;
}

pn_status pn_wprims_backward_weights(pn_wprims *w, pn_net *net, pn_layer *l, pn_error *err)
{
    void *x = pn_layer_in(net, l, 0)->data;
    pn_status st = stage_ddst(w, net, l, err);
    if (st)
        return st;
    if (!w->blocked)
        dnnl_memory_set_data_handle(w->src, x);
    else if ((st = pn_relayout_in(&w->rx, net, 0, x, 1, err)))
        return st;
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, w->blocked ? w->rx.prim : w->src},
                               {DNNL_ARG_DIFF_DST, w->blocked ? w->ry.prim : w->ddst},
                               {DNNL_ARG_DIFF_WEIGHTS, pn_wmem_get(&w->dw)},
                               {DNNL_ARG_DIFF_BIAS, w->dbias}};
    st = pn_exec(net, w->bwd_weights, w->has_bias ? 4 : 3, args, l->name, err);
    return st ? st : pn_wmem_sync(&w->dw, net, err);
}

pn_status pn_wprims_backward_data(pn_wprims *w, pn_net *net, pn_layer *l, pn_error *err)
{
    pn_status st = pn_wmem_sync(&w->w_bwd, net, err);
    if (st)
        return st;
    pn_buf *in = pn_layer_in(net, l, 0);
    void *dsrc = pn_grad_begin(net, in);
    if ((st = stage_ddst(w, net, l, err)))
        return st;
    if (!w->blocked)
        dnnl_memory_set_data_handle(w->dsrc, dsrc);
    else if ((st = pn_relayout_in(&w->rx, net, 0, dsrc, 0, err)))
        return st;
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_DIFF_DST, w->blocked ? w->ry.prim : w->ddst},
                               {DNNL_ARG_WEIGHTS, pn_wmem_get(&w->w_bwd)},
                               {DNNL_ARG_DIFF_SRC, w->blocked ? w->rx.prim : w->dsrc}};
    if ((st = pn_exec(net, w->bwd_data, 3, args, l->name, err)) ||
        (w->blocked && (st = pn_relayout_out(&w->rx, net, err))))
        return st;
    pn_grad_end(net, in, dsrc, net->cur_n);
    return PN_OK;
}
