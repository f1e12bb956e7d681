/* Per-layer timing (pn_net_profile): which layers a training step spends
 * its time in, to guide architecture and engine work. */
#include <stdlib.h>

#include "nn/internal.h"

void pn_net_profile(pn_net *net, int on)
{
    net->profiling = on;
    if (!on)
        return;
    net->prof_steps = 0;
    for (int i = 0; i < net->n_layers; i++)
        net->layers[i].prof_fwd_s = net->layers[i].prof_bwd_s = 0;
}

static double layer_time(const pn_net *net, int i)
{
    return net->layers[i].prof_fwd_s + net->layers[i].prof_bwd_s;
}

void pn_net_profile_print(const pn_net *net, FILE *out)
{
    int *order = malloc((size_t)net->n_layers * sizeof *order);
    if (!order || net->prof_steps == 0) {
        free(order);
        fprintf(out, "no profiled steps\n");
        return;
    }
    double steps = (double)net->prof_steps, total = 0;
    for (int i = 0; i < net->n_layers; i++) {
        order[i] = i;
        total += net->layers[i].prof_fwd_s + net->layers[i].prof_bwd_s;
    }
    for (int i = 1; i < net->n_layers; i++) /* insertion sort, slowest first: a few hundred layers */
        for (int k = i; k > 0 && layer_time(net, order[k]) > layer_time(net, order[k - 1]); k--) {
            int tmp = order[k];
            order[k] = order[k - 1];
            order[k - 1] = tmp;
        }
    fprintf(out, "%-28s %-10s %18s %10s %10s %6s\n", "layer", "kind", "output", "fwd ms", "bwd ms", "%");
    for (int k = 0; k < net->n_layers; k++) {
        const pn_layer *l = &net->layers[order[k]];
        double t = l->prof_fwd_s + l->prof_bwd_s;
        if (t <= 0)
            continue;
        char shape[32];
        snprintf(shape, sizeof shape, "%dx%dx%d", l->out.c, l->out.h, l->out.w);
        fprintf(out, "%-28s %-10s %18s %10.2f %10.2f %6.1f\n", l->name, l->ops->kind, shape,
                1e3 * l->prof_fwd_s / steps, 1e3 * l->prof_bwd_s / steps, 100 * t / total);
    }
    fprintf(out, "layers' total: %.1f ms per step over %ld steps\n", 1e3 * total / steps, net->prof_steps);
    free(order);
}
