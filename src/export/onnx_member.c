/* One network in the ONNX graph: pneumo's preprocessing of an image already
 * at the input size ((v / 255 - mean[c]) / std[c], gray replicated to the
 * network's channels), the layers and the head (onnx_head.c). */
#include <stdio.h>
#include <stdlib.h>

#include "export/onnx_internal.h"

/* image (uint8 N x 1 x S x S) -> the network's normalised input, named prefix + "input". */
static const char *emit_preprocessing(onnx_builder *b, const pn_net *net, const char *prefix,
                                      const char *image)
{
    char f[PN_ONNX_NAME_MAX], k255[PN_ONNX_NAME_MAX], s[PN_ONNX_NAME_MAX], rep[PN_ONNX_NAME_MAX],
        mean[PN_ONNX_NAME_MAX], std[PN_ONNX_NAME_MAX], c[PN_ONNX_NAME_MAX], out[PN_ONNX_NAME_MAX];
    int channels = pn_net_channels(net);
    const int64_t per_channel[4] = {1, channels, 1, 1};
    const float v255 = 255;
    onnx_name(b, f, "%spreprocess:float", prefix);
    onnx_name(b, k255, "%spreprocess.255", prefix);
    onnx_name(b, s, "%spreprocess:scaled", prefix);
    onnx_name(b, rep, "%spreprocess:channels", prefix);
    onnx_name(b, mean, "%spreprocess.mean", prefix);
    onnx_name(b, std, "%spreprocess.std", prefix);
    onnx_name(b, c, "%spreprocess:centred", prefix);
    onnx_name(b, out, "%sinput", prefix);
    Onnx__NodeProto *cast = onnx_node(b, "Cast", f, 1, &image);
    onnx_attr_int(b, cast, "to", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT);
    onnx_const_f32(b, k255, &v255, NULL, 0);
    onnx_node(b, "Div", s, 2, (const char *[]){f, k255});
    const char *x = s;
    if (channels == 3) {
        Onnx__NodeProto *cat = onnx_node(b, "Concat", rep, 3, (const char *[]){s, s, s});
        onnx_attr_int(b, cat, "axis", 1);
        x = rep;
    }
    onnx_const_f32(b, mean, pn_net_mean(net), per_channel, 4);
    onnx_const_f32(b, std, pn_net_std(net), per_channel, 4);
    onnx_node(b, "Sub", c, 2, (const char *[]){x, mean});
    Onnx__NodeProto *n = onnx_node(b, "Div", out, 2, (const char *[]){c, std});
    return n ? n->output[0] : NULL;
}

pn_status pn_onnx_add_member(onnx_builder *b, const pn_export_member *m, const char *prefix,
                             const char *image, const char *probs_name, const char *three_name)
{
    const pn_net *net = m->net;
    int n = pn_net_layer_count(net);
    pn_layer_desc *desc = calloc((size_t)n, sizeof *desc);   /* [n] */
    onnx_tensor *out = calloc((size_t)n, sizeof *out);       /* [n] each layer's output */
    if (!desc || !out) {
        onnx_fail(b, PN_ENOMEM, "out of memory");
        goto done;
    }
    pn_net_describe(net, 0, &desc[0]);
    out[0] = (onnx_tensor){emit_preprocessing(b, net, prefix, image), 4};
    for (int i = 1; i < n && !b->st; i++) {
        pn_layer_desc *d = &desc[i];
        pn_net_describe(net, i, d);
        if (d->folded) { /* computed by the layer it reads */
            out[i] = out[d->inputs[0]];
            continue;
        }
        const pn_layer_desc *in_desc[PN_LAYER_MAX_INPUTS];
        onnx_tensor in[PN_LAYER_MAX_INPUTS];
        for (int k = 0; k < d->n_inputs; k++) {
            in_desc[k] = &desc[d->inputs[k]];
            in[k] = out[d->inputs[k]];
        }
        pn_onnx_emit_layer(b, prefix, d, in_desc, in, &out[i]);
    }
    if (!b->st)
        pn_onnx_emit_head(b, prefix, out[n - 1], pn_net_classes(net), m->temperature, probs_name, three_name);
done:
    free(desc);
    free(out);
    return b->st;
}
