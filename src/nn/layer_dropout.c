/* Inverted dropout: at training time zero each value with probability p and
 * scale the rest by 1/(1-p); identity at inference. The mask is a pure
 * function of (seed, forward step, layer, element), so runs are reproducible;
 * the element's position counts from the whole batch's start
 * (pn_net_set_batch_offset), so processes holding slices of a batch draw
 * the masks one process would. */
#include <stdlib.h>
#include <string.h>

#include "nn/internal.h"

typedef struct dropout_priv {
    float p;
    uint8_t *mask;
    size_t mask_cap;
} dropout_priv;

static pn_status dropout_init(pn_layer *l, pn_net *net, const pn_cfg_section *s, pn_error *err)
{
    dropout_priv *p = calloc(1, sizeof *p);
    if (!p)
        return pn_fail(err, PN_ENOMEM, "out of memory");
    l->priv = p;
    l->out = *pn_layer_in(net, l, 0);
    pn_status st = pn_cfg_float(s, "p", 0.5f, &p->p, err);
    if (!st && (p->p < 0 || p->p >= 1))
        st = pn_fail(err, PN_EFORMAT, "cfg line %d [dropout]: p must be in [0, 1)", s->line);
    return st;
}

static void dropout_reset(pn_layer *l) { (void)l; }

static void dropout_destroy(pn_layer *l)
{
    dropout_priv *p = l->priv;
    if (p)
        free(p->mask);
    free(p);
    l->priv = NULL;
}

static pn_status dropout_forward(pn_layer *l, pn_net *net, int train, pn_error *err)
{
    dropout_priv *p = l->priv;
    pn_buf *in = pn_layer_in(net, l, 0);
    size_t count = pn_buf_numel(&l->out, net->cur_n);
    pn_dtype t = net->dt;
    if (train != PN_FWD_TRAIN || p->p == 0) {
        memcpy(l->out.data, in->data, count * pn_dtype_size(t));
        return PN_OK;
    }
    if (count > p->mask_cap) {
        uint8_t *m = realloc(p->mask, count);
        if (!m)
            return pn_fail(err, PN_ENOMEM, "%s: out of memory", l->name);
        p->mask = m;
        p->mask_cap = count;
    }
    float scale = 1 / (1 - p->p);
    uint64_t seed = net->seed ^ 0xd1b54a32d192ed03ULL;
    /* One generator per 4096-element chunk of the whole batch keeps the mask
     * thread-independent; elements [base, base + count) are this process's. */
    size_t base = (size_t)net->batch_offset * (count / (size_t)net->cur_n);
    size_t first = base / 4096, chunks = (base + count + 4095) / 4096 - first;
#pragma omp parallel for schedule(static)
    for (size_t c = first; c < first + chunks; c++) {
        pn_rng r = pn_rng_seed(seed, net->step * 1024 + (uint64_t)l->index, c);
        size_t end = (c + 1) * 4096 < base + count ? (c + 1) * 4096 : base + count;
        for (size_t g = c * 4096; g < end; g++) {
            int keep = pn_rng_uniform(&r) >= p->p;
            if (g < base)
                continue; /* another process's element */
            size_t i = g - base;
            p->mask[i] = (uint8_t)keep;
            pn_st(l->out.data, t, i, keep ? pn_ld(in->data, t, i) * scale : 0.0f);
        }
    }
    return PN_OK;
}

static pn_status dropout_backward(pn_layer *l, pn_net *net, pn_error *err)
{
    dropout_priv *p = l->priv;
    if (!pn_net_needs_input_grad(net, l, 0))
        return PN_OK;
    pn_buf *in = pn_layer_in(net, l, 0);
    size_t count = pn_buf_numel(&l->out, net->cur_n);
    pn_dtype t = net->dt;
    void *dsrc = pn_grad_begin(net, in);
    float scale = 1 / (1 - p->p);
    int masked = p->p > 0 && net->trained_forward == PN_FWD_TRAIN;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < count; i++) {
        float g = pn_ld(l->out.grad, t, i);
        pn_st(dsrc, t, i, masked ? (p->mask[i] ? g * scale : 0.0f) : g);
    }
    pn_grad_end(net, in, dsrc, net->cur_n);
    return PN_OK;
}

const pn_layer_ops pn_layer_dropout_ops = {"dropout", dropout_init, dropout_forward,
                                           dropout_backward, dropout_reset, dropout_destroy, NULL};
