/* The ONNX exporter's parts: one pneumo layer -> ONNX nodes (onnx_layers.c),
 * one network with its preprocessing (onnx_member.c) and its head: logits ->
 * the probabilities pneumo computes from them (onnx_head.c). */
#ifndef PNEUMO_EXPORT_ONNX_INTERNAL_H
#define PNEUMO_EXPORT_ONNX_INTERNAL_H

#include "export/onnx_builder.h"
#include "pneumo/export.h"
#include "pneumo/nn.h"

/* The opset every node is written for (HardSwish needs 14; ONNX 1.12 knows up to 17). */
#define PN_ONNX_OPSET 17

/* A tensor of the graph being built: float32, N x C x H x W (rank 4) or, after
 * a fully connected layer, N x C (rank 2). name lives as long as the graph. */
typedef struct onnx_tensor {
    const char *name;
    int rank;
} onnx_tensor;

/* Emits the nodes and initializers of layer d (not folded), whose inputs
 * in[k] are the outputs of layers in_desc[k]; names start with prefix.
 * A layer with no ONNX mapping is PN_EUNSUPPORTED naming the layer. */
pn_status pn_onnx_emit_layer(onnx_builder *b, const char *prefix, const pn_layer_desc *d,
                             const pn_layer_desc *const *in_desc, const onnx_tensor *in,
                             onnx_tensor *out);

/* logits (rank 2, or N x classes x 1 x 1) of a 2- or 3-class network ->
 * probs_name, N x 2 [1 - p, p] with p = P(pneumonia) as pneumo computes it
 * (temperature-scaled); for 3 classes and three_name not NULL also
 * three_name, N x 3 [P(normal), P(bacterial), P(viral)]. */
void pn_onnx_emit_head(onnx_builder *b, const char *prefix, onnx_tensor logits, int classes, float temperature,
                       const char *probs_name, const char *three_name);

/* Adds one network to the graph: the uint8 image tensor `image` (N x 1 x S x S)
 * preprocessed as pneumo does, the network and its head (pn_onnx_emit_head)
 * into probs_name and, for a 3-class network, three_name (NULL: not wanted).
 * Other names start with prefix ("" for a single network, "m0/" ... for
 * ensemble members). */
pn_status pn_onnx_add_member(onnx_builder *b, const pn_export_member *m, const char *prefix,
                             const char *image, const char *probs_name, const char *three_name);

#endif
