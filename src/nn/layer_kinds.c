/* The registry of layer kinds: pn_layer_kind <-> cfg section name <-> the
 * kind's operations, and pn_net_describe, which reads a layer through its
 * kind's describe operation. */
#include <assert.h>
#include <string.h>

#include "nn/internal.h"

static const pn_layer_ops *const kind_ops[] = {
    [PN_LAYER_INPUT] = &pn_layer_input_ops,         [PN_LAYER_CONV] = &pn_layer_conv_ops,
    [PN_LAYER_BATCHNORM] = &pn_layer_batchnorm_ops, [PN_LAYER_ACTIVATION] = &pn_layer_activation_ops,
    [PN_LAYER_MAXPOOL] = &pn_layer_maxpool_ops,     [PN_LAYER_AVGPOOL] = &pn_layer_avgpool_ops,
    [PN_LAYER_GAP] = &pn_layer_gap_ops,             [PN_LAYER_FC] = &pn_layer_fc_ops,
    [PN_LAYER_DROPOUT] = &pn_layer_dropout_ops,     [PN_LAYER_ADD] = &pn_layer_add_ops,
    [PN_LAYER_CONCAT] = &pn_layer_concat_ops,       [PN_LAYER_SE] = &pn_layer_se_ops,
};
static_assert(sizeof kind_ops / sizeof *kind_ops == PN_LAYER_KIND_COUNT,
              "every pn_layer_kind has its operations");

const pn_layer_ops *pn_layer_ops_for(pn_layer_kind kind)
{
    return kind >= 0 && kind < PN_LAYER_KIND_COUNT ? kind_ops[kind] : NULL;
}

const char *pn_layer_kind_name(pn_layer_kind kind)
{
    const pn_layer_ops *ops = pn_layer_ops_for(kind);
    return ops ? ops->kind : "unknown";
}

/* The input layer is built by pn_net_create, never named in a cfg. */
const pn_layer_ops *pn_layer_ops_named(const char *name)
{
    for (int k = PN_LAYER_INPUT + 1; k < PN_LAYER_KIND_COUNT; k++)
        if (!strcmp(kind_ops[k]->kind, name))
            return kind_ops[k];
    return NULL;
}

static pn_layer_kind kind_of(const pn_layer *l)
{
    for (int k = 0; k < PN_LAYER_KIND_COUNT; k++)
        if (kind_ops[k] == l->ops)
            return (pn_layer_kind)k;
    return PN_LAYER_KIND_COUNT;
}

int pn_net_layer_count(const pn_net *net) { return net->n_layers; }

void pn_net_describe(const pn_net *net, int index, pn_layer_desc *d)
{
    const pn_layer *l = &net->layers[index];
    memset(d, 0, sizeof *d);
    d->kind = kind_of(l);
    d->name = l->name;
    d->n_inputs = l->n_inputs;
    memcpy(d->inputs, l->inputs, sizeof d->inputs);
    d->c = l->out.c;
    d->h = l->out.h;
    d->w = l->out.w;
    d->folded = l->fused_away;
    d->act = PN_ACT_LINEAR;
    d->gate = PN_ACT_LINEAR;
    if (l->ops->describe)
        l->ops->describe(l, net, d);
}
