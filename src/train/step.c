/* What an optimiser step of the training loop adds to the network's own
 * forward and backward: mixup of the batch and its loss, the exponential
 * moving average of the weights, and copies of the parameters. */
#include <string.h>

#include "train/internal.h"

size_t pn_train_param_values(pn_net *net)
{
    size_t n = 0;
    for (size_t i = 0; i < pn_net_param_count(net); i++)
        n += pn_net_param(net, i)->numel;
    return n;
}

void pn_train_copy_params(pn_net *net, float *buf, int to_buf)
{
    size_t off = 0;
    for (size_t i = 0; i < pn_net_param_count(net); i++) {
        pn_param *p = pn_net_param(net, i);
        if (to_buf)
            memcpy(buf + off, p->data, p->numel * sizeof(float));
        else
            memcpy(p->data, buf + off, p->numel * sizeof(float));
        off += p->numel;
    }
    if (!to_buf)
        pn_net_params_changed(net);
}

/* ema = d * ema + (1 - d) * params, over every parameter and buffer; d ramps
 * up as min(decay, (1 + step) / (10 + step)) so the starting weights fade
 * out within the first few hundred steps (as timm's ModelEmaV2 warm-up). */
void pn_train_ema_update(trainer *t, int step)
{
    float ramp = (1.0f + (float)step) / (10.0f + (float)step);
    float d = t->cfg->ema_decay < ramp ? t->cfg->ema_decay : ramp;
    size_t off = 0;
    for (size_t i = 0; i < pn_net_param_count(t->net); i++) {
        const pn_param *p = pn_net_param(t->net, i);
        for (size_t k = 0; k < p->numel; k++)
            t->ema[off + k] = d * t->ema[off + k] + (1 - d) * p->data[k];
        off += p->numel;
    }
}

/* Exchanges the network's weights with the EMA weights (twice = no change). */
void pn_train_ema_swap(trainer *t)
{
    size_t off = 0;
    for (size_t i = 0; i < pn_net_param_count(t->net); i++) {
        pn_param *p = pn_net_param(t->net, i);
        for (size_t k = 0; k < p->numel; k++) {
            float v = p->data[k];
            p->data[k] = t->ema[off + k];
            t->ema[off + k] = v;
        }
        off += p->numel;
    }
    pn_net_params_changed(t->net);
}

/* Mixup (Zhang et al. 2018) with the reversed batch as partner: image i
 * becomes lam * x_i + (1 - lam) * x_{n-1-i}; lam ~ Beta(a, a) from a
 * stream of (seed, step), so a resumed run draws the same values. */
float pn_train_mixup_batch(trainer *t, int step, int n)
{
    pn_rng rng = pn_rng_seed(t->cfg->seed, 0x6d69787570ULL, (uint64_t)step);
    float lam = pn_rng_beta(&rng, t->cfg->mixup_alpha);
    size_t per = (size_t)pn_net_input_size(t->net) * pn_net_input_size(t->net) * pn_net_channels(t->net);
    for (int i = 0; i < n / 2; i++) {
        float *a = t->x + (size_t)i * per, *b = t->x + (size_t)(n - 1 - i) * per;
        for (size_t k = 0; k < per; k++) {
            float va = a[k], vb = b[k];
            a[k] = lam * va + (1 - lam) * vb;
            b[k] = lam * vb + (1 - lam) * va;
        }
    }
    for (int i = 0; i < n; i++)
        t->mix_labels[i] = t->labels[n - 1 - i];
    return lam;
}

/* Loss of the batch's logits, dlogits filled; with mixup the lam-weighted mix of both targets. */
float pn_train_batch_loss(trainer *t, const float *z, int n, float lam)
{
    float ls = t->cfg->label_smoothing;
    float loss = pn_softmax_cross_entropy(z, t->labels, n, t->classes, t->class_weights, ls, t->dlogits);
    if (lam >= 1)
        return loss;
    float loss_b = pn_softmax_cross_entropy(z, t->mix_labels, n, t->classes, t->class_weights, ls,
                                            t->dlogits_mix);
    for (size_t k = 0; k < (size_t)n * t->classes; k++)
        t->dlogits[k] = lam * t->dlogits[k] + (1 - lam) * t->dlogits_mix[k];
    return lam * loss + (1 - lam) * loss_b;
}

int pn_train_argmax(const float *z, int classes)
{
    int best = 0;
    for (int k = 1; k < classes; k++)
        if (z[k] > z[best])
            best = k;
    return best;
}

