/* The network object: parameters, which layers train, accessors, the
 * watched layer for Grad-CAM and the layer table. Building is in
 * net_build.c, fusion in fuse.c, memory in net_memory.c, execution in
 * net_exec.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/internal.h"

/* ---- parameters ---- */
pn_status pn_net_add_param(pn_net *net, pn_layer *l, const char *suffix, int ndim,
                           const int *shape, int is_buffer, int no_decay, size_t *index,
                           pn_error *err)
{
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (shape[i] > 0 && numel > PN_MAX_PARAM_ELEMS / (size_t)shape[i]))
            return pn_fail(err, PN_ELIMIT, "%s.%s: a parameter of more than %zu elements", l->name, suffix,
                           PN_MAX_PARAM_ELEMS);
        numel *= (size_t)shape[i];
    }
    if (net->n_params == net->cap_params) {
        size_t cap = net->cap_params ? net->cap_params * 2 : 64;
        pn_param *grown = realloc(net->params, cap * sizeof *grown);
        if (!grown)
            return pn_fail(err, PN_ENOMEM, "out of memory");
        net->params = grown;
        net->cap_params = cap;
    }
    if (l->n_params == 0)
        l->first_param = net->n_params;
    pn_param *p = &net->params[net->n_params];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s.%s", l->name, suffix);
    p->ndim = ndim;
    p->numel = numel;
    memcpy(p->shape, shape, (size_t)ndim * sizeof *shape);
    p->is_buffer = is_buffer;
    p->no_decay = no_decay;
    p->data = calloc(p->numel, sizeof(float));
    p->grad = is_buffer ? NULL : calloc(p->numel, sizeof(float));
    if (!p->data || (!is_buffer && !p->grad)) {
        free(p->data);
        free(p->grad);
        return pn_fail(err, PN_ENOMEM, "out of memory for %s", p->name);
    }
    *index = net->n_params++;
    l->n_params++;
    return PN_OK;
}

int pn_layer_trains(const pn_net *net, const pn_layer *l)
{
    if (!net->can_train)
        return 0;
    for (size_t k = 0; k < l->n_params; k++) {
        const pn_param *p = &net->params[l->first_param + k];
        if (!p->is_buffer && !p->frozen)
            return 1;
    }
    return 0;
}

/* The gradient at layer m's output is needed when m is watched or any layer
 * at or before m trains (backward must pass through m to reach it). */
int pn_net_needs_input_grad(const pn_net *net, const pn_layer *l, int k)
{
    int m = l->inputs[k];
    if (m == 0)
        return 0;
    if (net->watch >= 0 && net->watch <= m)
        return 1;
    for (int i = 1; i <= m; i++)
        if (pn_layer_trains(net, &net->layers[i]))
            return 1;
    return 0;
}

/* ---- accessors ---- */
int pn_net_input_size(const pn_net *net) { return net->input_size; }
int pn_net_channels(const pn_net *net) { return net->channels; }
int pn_net_classes(const pn_net *net) { return net->classes; }
pn_dtype pn_net_precision(const pn_net *net) { return net->dt; }
const char *pn_net_cfg_text(const pn_net *net) { return net->cfg_text; }
const float *pn_net_mean(const pn_net *net) { return net->mean; }
const float *pn_net_std(const pn_net *net) { return net->std; }
size_t pn_net_param_count(const pn_net *net) { return net->n_params; }
pn_param *pn_net_param(pn_net *net, size_t i) { return i < net->n_params ? &net->params[i] : NULL; }
void pn_net_params_changed(pn_net *net) { net->wver++; }
uint64_t *pn_net_step_counter(pn_net *net) { return &net->step; }
void pn_net_set_batch_offset(pn_net *net, int first) { net->batch_offset = first; }

void pn_net_set_grad_hook(pn_net *net, pn_net_grad_hook hook, void *user)
{
    net->grad_hook = hook;
    net->grad_hook_user = user;
}

pn_param *pn_net_find_param(pn_net *net, const char *name)
{
    for (size_t i = 0; i < net->n_params; i++)
        if (!strcmp(net->params[i].name, name))
            return &net->params[i];
    return NULL;
}

size_t pn_net_freeze(pn_net *net, const char *prefix, int frozen)
{
    size_t matched = 0, len = strlen(prefix);
    for (size_t i = 0; i < net->n_params; i++)
        if (!strncmp(net->params[i].name, prefix, len)) {
            net->params[i].frozen = frozen;
            matched++;
        }
    return matched;
}

size_t pn_net_trainable_count(const pn_net *net)
{
    size_t total = 0;
    for (size_t i = 0; i < net->n_params; i++)
        if (!net->params[i].is_buffer && !net->params[i].frozen)
            total += net->params[i].numel;
    return total;
}

static int find_layer(const pn_net *net, const char *name)
{
    for (int i = 1; i < net->n_layers; i++)
        if (!strcmp(net->layers[i].name, name))
            return i;
    return -1;
}

pn_status pn_net_watch(pn_net *net, const char *layer_name, pn_error *err)
{
    int i = find_layer(net, layer_name);
    if (i < 0)
        return pn_fail(err, PN_EINVAL, "no layer named '%s'", layer_name);
    if (net->layers[i].fused_away)
        return pn_fail(err, PN_EINVAL, "layer '%s' was fused away", layer_name);
    if (net->layers[i].deferred) /* a watched output must be stored */
        pn_net_undefer(net);
    /* A watched output must survive the forward pass: no activation may overwrite it. */
    for (int j = i + 1; j < net->n_layers; j++)
        if (net->layers[j].in_place && net->layers[j].inputs[0] == i) {
            net->layers[j].in_place = 0;
            if (net->layers[j].ops->reset)
                net->layers[j].ops->reset(&net->layers[j]);
            pn_net_free_buffers(net);
        }
    net->watch = i;
    return PN_OK;
}

pn_status pn_net_watched(pn_net *net, float **act, float **grad, int *c, int *h, int *w,
                         pn_error *err)
{
    if (net->watch < 0 || !net->watch_act)
        return pn_fail(err, PN_EINVAL, "no watched layer, or no forward pass yet");
    *act = net->watch_act;
    *grad = net->watch_grad;
    *c = net->layers[net->watch].out.c;
    *h = net->layers[net->watch].out.h;
    *w = net->layers[net->watch].out.w;
    return PN_OK;
}

const char *pn_net_last_conv_name(const pn_net *net)
{
    for (int i = net->n_layers - 1; i >= 1; i--)
        if (net->layers[i].out.h > 1 && !net->layers[i].fused_away)
            return net->layers[i].name;
    return NULL;
}

const char *pn_net_layer_at_stride(const pn_net *net, int stride)
{
    int width = net->layers[0].out.w / stride, last = -1;
    for (int i = net->n_layers - 1; i >= 1; i--) {
        const pn_layer *l = &net->layers[i];
        if (l->out.w != width || l->fused_away)
            continue;
        if (!strcmp(l->ops->kind, "add"))
            return l->name;
        last = last < 0 ? i : last;
    }
    return last < 0 ? NULL : net->layers[last].name;
}

uint64_t pn_net_macs(const pn_net *net)
{
    uint64_t total = 0;
    for (int i = 0; i < net->n_layers; i++)
        total += net->layers[i].macs;
    return total;
}

void pn_net_print(const pn_net *net, FILE *out)
{
    fprintf(out, "%-4s %-34s %-10s %-16s %12s %14s\n", "#", "layer", "kind", "output (HxWxC)",
            "params", "MACs");
    size_t total_params = 0;
    for (int i = 0; i < net->n_layers; i++) {
        const pn_layer *l = &net->layers[i];
        size_t params = 0;
        for (size_t k = 0; k < l->n_params; k++)
            if (!net->params[l->first_param + k].is_buffer)
                params += net->params[l->first_param + k].numel;
        total_params += params;
        char shape[32];
        snprintf(shape, sizeof shape, "%dx%dx%d", l->out.h, l->out.w, l->out.c);
        fprintf(out, "%-4d %-34.34s %-10s %-16s %12zu %14llu\n", i, l->name, l->ops->kind, shape,
                params, (unsigned long long)l->macs);
    }
    fprintf(out, "total: %zu parameters, %.3f GMACs per image (%.3f GFLOPs), input %dx%dx%d, %d classes\n",
            total_params, (double)pn_net_macs(net) / 1e9, 2.0 * (double)pn_net_macs(net) / 1e9,
            net->input_size, net->input_size, net->channels, net->classes);
}
