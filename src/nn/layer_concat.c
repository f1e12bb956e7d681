/* Channel concatenation of inputs with equal spatial size (NHWC: each pixel's
 * channel vectors are laid side by side). */
#include <stdlib.h>
#include <string.h>

#include "nn/internal.h"

static pn_status concat_init(pn_layer *l, pn_net *net, const pn_cfg_section *s, pn_error *err)
{
    const pn_buf *first = pn_layer_in(net, l, 0);
    l->out = *first;
    l->out.c = 0;
    for (int k = 0; k < l->n_inputs; k++) {
        const pn_buf *in = pn_layer_in(net, l, k);
        if (in->h != first->h || in->w != first->w)
            return pn_fail(err, PN_EFORMAT, "cfg line %d [concat]: spatial sizes differ", s->line);
        l->out.c += in->c;
    }
    return PN_OK;
}

static void concat_noop(pn_layer *l) { (void)l; }

static pn_status concat_forward(pn_layer *l, pn_net *net, int train, pn_error *err)
{
    size_t es = pn_dtype_size(net->dt), pixels = (size_t)net->cur_n * l->out.h * l->out.w;
    int offset = 0;
    for (int k = 0; k < l->n_inputs; k++) {
        const pn_buf *in = pn_layer_in(net, l, k);
#pragma omp parallel for schedule(static)
        for (size_t px = 0; px < pixels; px++)
            memcpy((char *)l->out.data + (px * l->out.c + offset) * es,
                   (const char *)in->data + px * in->c * es, in->c * es);
        offset += in->c;
    }
    return PN_OK;
}

static pn_status concat_backward(pn_layer *l, pn_net *net, pn_error *err)
{
    size_t es = pn_dtype_size(net->dt), pixels = (size_t)net->cur_n * l->out.h * l->out.w;
    int offset = 0;
    for (int k = 0; k < l->n_inputs; k++) {
        pn_buf *in = pn_layer_in(net, l, k);
        if (pn_net_needs_input_grad(net, l, k)) {
            void *dst = pn_grad_begin(net, in);
#pragma omp parallel for schedule(static)
            for (size_t px = 0; px < pixels; px++)
                memcpy((char *)dst + px * in->c * es,
                       (const char *)l->out.grad + (px * l->out.c + offset) * es, in->c * es);
            pn_grad_end(net, in, dst, net->cur_n);
        }
        offset += in->c;
    }
    return PN_OK;
}

const pn_layer_ops pn_layer_concat_ops = {"concat", concat_init, concat_forward, concat_backward,
                                          concat_noop, concat_noop, NULL};
