/* Execution: forward and backward passes in layer order (backward in
 * reverse), the watched layer's activation and gradient for Grad-CAM. */
#include <stdlib.h>

#include "nn/internal.h"
#include "pneumo/os.h"
#include "nn/vec.h"

static pn_status forward(pn_net *net, const float *input, int n, int mode, pn_error *err)
{
    if (n <= 0)
        return pn_fail(err, PN_EINVAL, "batch size must be positive");
    if (mode != PN_FWD_INFER && !net->can_train)
        return pn_fail(err, PN_EINVAL, "this network was fused for inference and cannot train");
    pn_status st = pn_net_ensure_buffers(net, n, mode != PN_FWD_INFER, err);
    if (st)
        return st;
    net->cur_n = n;
    if (mode == PN_FWD_TRAIN)
        net->step++;
    net->prof_steps += net->profiling;
    pn_layer *in = &net->layers[0];
    pn_vec_from_f32(input, in->out.data, net->dt, pn_buf_numel(&in->out, n));
    for (int i = 1; i < net->n_layers; i++) {
        pn_layer *l = &net->layers[i];
        if (l->fused_away)
            continue;
        double t0 = net->profiling ? pn_clock_s() : 0;
        if ((st = l->ops->forward(l, net, mode, err)))
            return pn_error_prefix(err, st, "layer %s: ", l->name);
        if (net->profiling)
            l->prof_fwd_s += pn_clock_s() - t0;
    }
    const pn_buf *last = &net->layers[net->n_layers - 1].out;
    for (size_t i = 0; i < (size_t)n * net->classes; i++)
        net->logits[i] = pn_ld(last->data, net->dt, i);
    if (net->watch >= 0) {
        const pn_buf *w = &net->layers[net->watch].out;
        size_t wc = pn_buf_numel(w, n);
        float *grown = realloc(net->watch_act, wc * sizeof(float));
        if (!grown)
            return pn_fail(err, PN_ENOMEM, "out of memory");
        net->watch_act = grown;
        for (size_t i = 0; i < wc; i++)
            grown[i] = pn_ld(w->data, net->dt, i);
    }
    net->trained_forward = mode;
    return PN_OK;
}

pn_status pn_net_forward(pn_net *net, const float *input, int n, int mode, pn_error *err)
{
    int saved = pn_ctx_threads_enter(net->ctx);
    pn_status st = forward(net, input, n, mode, err);
    pn_ctx_threads_leave(saved);
    return st;
}

const float *pn_net_logits(pn_net *net) { return net->logits; }

/* The watched gradient is complete (all consumers ran) just before the
 * watched layer's own backward; after it, its buffer may be reused. */
static pn_status capture_watch_grad(pn_net *net, pn_error *err)
{
    const pn_buf *w = &net->layers[net->watch].out;
    size_t wc = pn_buf_numel(w, net->cur_n);
    float *grown = realloc(net->watch_grad, wc * sizeof(float));
    if (!grown)
        return pn_fail(err, PN_ENOMEM, "out of memory");
    net->watch_grad = grown;
    for (size_t i = 0; i < wc; i++)
        grown[i] = w->grad_written ? pn_ld(w->grad, net->dt, i) : 0.0f;
    return PN_OK;
}

static pn_status backward(pn_net *net, const float *dlogits, pn_error *err)
{
    if (net->trained_forward == PN_FWD_INFER)
        return pn_fail(err, PN_EINVAL, "backward needs a preceding training (or gradient) forward pass");
    int n = net->cur_n;
    for (int i = 0; i < net->n_layers; i++)
        net->layers[i].out.grad_written = 0;
    pn_layer *last = &net->layers[net->n_layers - 1];
    for (size_t i = 0; i < (size_t)n * net->classes; i++)
        pn_st(last->out.grad, net->dt, i, dlogits[i]);
    last->out.grad_written = 1;
    pn_status st;
    size_t done = net->n_params; /* params from here on have their final gradient */
    for (int i = net->n_layers - 1; i >= 1; i--) {
        pn_layer *l = &net->layers[i];
        if (i == net->watch && (st = capture_watch_grad(net, err)))
            return st;
        if (!l->out.grad_written)
            continue; /* no gradient reaches this layer (frozen prefix) */
        double t0 = net->profiling ? pn_clock_s() : 0;
        if ((st = l->ops->backward(l, net, err)))
            return pn_error_prefix(err, st, "layer %s (backward): ", l->name);
        if (net->profiling)
            l->prof_bwd_s += pn_clock_s() - t0;
        done = l->n_params ? l->first_param : done;
        if (net->grad_hook)
            net->grad_hook(net->grad_hook_user, done);
    }
    return PN_OK;
}

pn_status pn_net_backward(pn_net *net, const float *dlogits, pn_error *err)
{
    int saved = pn_ctx_threads_enter(net->ctx);
    pn_status st = backward(net, dlogits, err);
    pn_ctx_threads_leave(saved);
    return st;
}

pn_status pn_net_recalibrate_bn(pn_net *net, const float *input, int n, pn_error *err)
{
    net->calibrating_bn = 1;
    pn_status st = pn_net_forward(net, input, n, PN_FWD_TRAIN, err);
    net->calibrating_bn = 0;
    pn_net_params_changed(net);
    return st;
}
