/* Residual addition of two tensors of the same shape. */
#include <stdlib.h>
#include <string.h>

#include "nn/internal.h"
#include "nn/vec.h"

static pn_status add_init(pn_layer *l, pn_net *net, const pn_cfg_section *s, pn_error *err)
{
    if (l->n_inputs != 2)
        return pn_fail(err, PN_EFORMAT, "cfg line %d [add]: needs `from` (the other input)", s->line);
    const pn_buf *a = pn_layer_in(net, l, 0), *b = pn_layer_in(net, l, 1);
    if (a->c != b->c || a->h != b->h || a->w != b->w)
        return pn_fail(err, PN_EFORMAT, "cfg line %d [add]: shapes %dx%dx%d and %dx%dx%d differ",
                       s->line, a->c, a->h, a->w, b->c, b->h, b->w);
    l->out = *a;
    l->macs = 0;
    return PN_OK;
}

static void add_noop(pn_layer *l) { (void)l; }

static pn_status add_forward(pn_layer *l, pn_net *net, int train, pn_error *err)
{
    (void)train;
    (void)err;
    const pn_buf *a = pn_layer_in(net, l, 0), *b = pn_layer_in(net, l, 1);
    pn_vec_add(a->data, b->data, l->out.data, net->dt, pn_buf_numel(&l->out, net->cur_n));
    return PN_OK;
}

/* d(a+b)/da = d(a+b)/db = 1: the output gradient flows to both inputs. */
static pn_status add_backward(pn_layer *l, pn_net *net, pn_error *err)
{
    size_t bytes = pn_buf_numel(&l->out, net->cur_n) * pn_dtype_size(net->dt);
    for (int k = 0; k < 2; k++) {
        if (!pn_net_needs_input_grad(net, l, k))
            continue;
        pn_buf *in = pn_layer_in(net, l, k);
        if (in->grad_written) { /* accumulate straight into it: one pass, not a copy and an add */
            pn_vec_add(in->grad, l->out.grad, in->grad, net->dt, pn_buf_numel(in, net->cur_n));
            continue;
        }
        memcpy(pn_grad_begin(net, in), l->out.grad, bytes);
        pn_grad_end(net, in, in->grad, net->cur_n);
    }
    return PN_OK;
}

const pn_layer_ops pn_layer_add_ops = {"add", add_init, add_forward, add_backward, add_noop, add_noop,
                                       NULL};
