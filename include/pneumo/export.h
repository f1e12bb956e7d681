/* Exporting a trained model for other runtimes: ONNX (opset 17), written
 * with protobuf-c from ONNX's own onnx.proto. The graph takes what pneumo
 * takes, 8-bit grayscale images at the model's input size (uint8 N x 1 x S x S,
 * N free), and does everything `pneumo predict` does after resizing: scaling to
 * [0, 1], replication to the network's channels, mean/std normalisation, the
 * network (batch norm folded when the net was fused for inference), the
 * temperature-scaled head and the ensemble mean. Outputs: "probabilities"
 * (float N x 2: NORMAL, PNEUMONIA; P(PNEUMONIA) is column 1) and, when every
 * network has the NORMAL/BACTERIAL/VIRAL head, "class_probabilities" (float
 * N x 3). Research and screening-assist tool, not a diagnostic device. */
#ifndef PNEUMO_EXPORT_H
#define PNEUMO_EXPORT_H

#include <stddef.h>

#include "pneumo/error.h"
#include "pneumo/nn.h"

/* One network and what turns its logits into probabilities. */
typedef struct pn_export_member {
    const pn_net *net;     /* as used for inference (pn_net_fuse_for_inference or not) */
    float temperature;     /* P(pneumonia) = sigmoid(positive logit / temperature) (> 0) */
} pn_export_member;

/* Writes the ONNX model of n_members networks to path: one network's
 * probabilities, or for an ensemble the mean of its members' (each with its
 * own preprocessing and temperature, as pneumo averages them; members must
 * share the input size and have 2 or 3 classes, mixed heads give only the
 * binary output). meta: extra metadata_props (model id, threshold, ...), may
 * be NULL. A layer the exporter cannot map is PN_EUNSUPPORTED with a message
 * naming it; nothing is written then. */
pn_status pn_export_onnx(const pn_export_member *members, int n_members, const pn_kv *meta,
                         size_t n_meta, const char *path, pn_error *err);

#endif
