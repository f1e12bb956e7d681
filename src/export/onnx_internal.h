/* The ONNX exporter's parts: one pneumo layer -> ONNX nodes (onnx_layers.c),
 * one network with its preprocessing, temperature and softmax -> a
 * probability tensor (onnx_member.c). */
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

/* Adds one network to the graph: the uint8 image tensor `image` (N x 1 x S x S)
 * preprocessed as pneumo does, the network, logits / temperature and a
 * softmax into probs_name, the N x classes probabilities. Other names start
 * with prefix ("" for a single network, "m0/" ... for ensemble members). */
pn_status pn_onnx_add_member(onnx_builder *b, const pn_export_member *m, const char *prefix,
                             const char *image, const char *probs_name);

#endif
