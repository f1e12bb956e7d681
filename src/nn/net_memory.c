/* Memory planning: activation buffers (fused and in-place layers alias their
 * producer's), gradient buffers shared by interval colouring, scratch and
 * logits, sized for the largest batch seen. */
#include <stdlib.h>
#include <string.h>

#include "nn/internal.h"

void pn_net_free_buffers(pn_net *net)
{
    for (int i = 0; i < net->n_layers; i++) {
        pn_layer *l = &net->layers[i];
        if (!l->fused_away && !l->in_place)
            free(l->out.data);
        l->out.data = l->out.grad = NULL;
    }
    for (int i = 0; i < net->n_grad_pool; i++)
        free(net->grad_pool[i]);
    free(net->grad_pool);
    net->grad_pool = NULL;
    net->n_grad_pool = 0;
    free(net->scratch);
    net->scratch = NULL;
    for (int i = 0; i < PN_RELAYOUT_SLOTS; i++) {
        free(net->relayout[i]);
        net->relayout[i] = NULL;
        net->relayout_bytes[i] = 0;
    }
    free(net->logits);
    net->logits = NULL;
    net->batch = 0;
}

/* Gradient buffers are shared by layers whose gradients are never live at the
 * same time. Backward runs from the last layer down; layer i's gradient is
 * written from the backward of its last consumer (index last_use[i]) until
 * its own backward reads it. Greedy interval colouring in that time order
 * roughly halves training memory, as a framework freeing gradients would. */
static pn_status alloc_grads(pn_net *net, int batch, pn_error *err)
{
    int n = net->n_layers, *last_use = malloc((size_t)n * sizeof(int));
    int *order = malloc((size_t)n * sizeof(int)), *buf_of = malloc((size_t)n * sizeof(int));
    int *busy_until = malloc((size_t)n * sizeof(int));
    size_t *size = calloc((size_t)n, sizeof(size_t));
    pn_status st = PN_OK;
    if (!last_use || !order || !buf_of || !busy_until || !size)
        st = pn_fail(err, PN_ENOMEM, "out of memory");
    for (int i = 0; !st && i < n; i++)
        last_use[i] = order[i] = i;
    for (int j = 1; !st && j < n; j++)
        for (int k = 0; k < net->layers[j].n_inputs; k++)
            if (last_use[net->layers[j].inputs[k]] < j)
                last_use[net->layers[j].inputs[k]] = j;
    /* layers by descending start time (last_use); insertion sort, n is small */
    for (int a = 1; !st && a < n; a++)
        for (int b = a; b > 0 && last_use[order[b]] > last_use[order[b - 1]]; b--) {
            int t = order[b];
            order[b] = order[b - 1];
            order[b - 1] = t;
        }
    int pool = 0;
    size_t es = pn_dtype_size(net->dt);
    for (int a = 0; !st && a < n; a++) {
        int i = order[a], chosen = -1;
        if (i == 0 || net->layers[i].fused_away)
            continue;
        /* a buffer is free once its last owner's backward (at index busy_until) ran */
        for (int b = 0; b < pool && chosen < 0; b++)
            if (busy_until[b] > last_use[i])
                chosen = b;
        if (chosen < 0)
            chosen = pool++;
        busy_until[chosen] = i;
        buf_of[i] = chosen;
        size_t bytes = pn_buf_numel(&net->layers[i].out, batch) * es;
        size[chosen] = bytes > size[chosen] ? bytes : size[chosen];
    }
    if (!st && !(net->grad_pool = calloc((size_t)(pool ? pool : 1), sizeof(void *))))
        st = pn_fail(err, PN_ENOMEM, "out of memory");
    for (int b = 0; !st && b < pool; b++, net->n_grad_pool++)
        if (!(net->grad_pool[b] = malloc(size[b])))
            st = pn_fail(err, PN_ENOMEM, "out of memory for gradients (batch %d)", batch);
    for (int i = 1; !st && i < n; i++)
        if (!net->layers[i].fused_away)
            net->layers[i].out.grad = net->grad_pool[buf_of[i]];
    free(last_use), free(order), free(buf_of), free(busy_until), free(size);
    return st;
}

pn_status pn_net_ensure_buffers(pn_net *net, int n, int with_grad, pn_error *err)
{
    int have_grad = net->grad_pool != NULL;
    if (n <= net->batch && (!with_grad || have_grad))
        return PN_OK;
    int batch = n > net->batch ? n : net->batch;
    pn_net_free_buffers(net);
    size_t es = pn_dtype_size(net->dt), largest = 0;
    for (int i = 0; i < net->n_layers; i++) {
        pn_layer *l = &net->layers[i];
        size_t bytes = pn_buf_numel(&l->out, batch) * es;
        largest = bytes > largest ? bytes : largest;
        if (l->fused_away || l->in_place || l->deferred)
            continue;
        if (!(l->out.data = malloc(bytes)))
            return pn_fail(err, PN_ENOMEM, "out of memory for activations (batch %d)", batch);
    }
    pn_status st = with_grad ? alloc_grads(net, batch, err) : PN_OK;
    if (st)
        return st;
    for (int i = 0; i < net->n_layers; i++)
        if (net->layers[i].fused_away || net->layers[i].in_place)
            net->layers[i].out.data = net->layers[net->layers[i].inputs[0]].out.data;
    net->scratch = with_grad ? malloc(largest) : NULL;
    net->logits = malloc((size_t)batch * net->classes * sizeof(float));
    if ((with_grad && !net->scratch) || !net->logits)
        return pn_fail(err, PN_ENOMEM, "out of memory");
    net->batch = batch;
    return PN_OK;
}
