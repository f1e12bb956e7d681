/* Building an ONNX graph (ONNX's own onnx.proto, compiled by protoc-c):
 * nodes, attributes, float initializers and typed graph inputs/outputs.
 * Every call after the first failure does nothing, so a caller emits a whole
 * layer and checks b->st once. Names are copied; a node's output name
 * (node->output[0]) lives as long as the graph. */
#ifndef PNEUMO_EXPORT_ONNX_BUILDER_H
#define PNEUMO_EXPORT_ONNX_BUILDER_H

#include <stddef.h>
#include <stdint.h>

#include "onnx.pb-c.h"
#include "pneumo/error.h"

/* Tensor names: prefix (an ensemble member's "m0/") + layer name + suffix. */
#define PN_ONNX_NAME_MAX 160

typedef struct onnx_builder {
    Onnx__GraphProto *graph;
    pn_error *err;
    pn_status st; /* the first failure; PN_OK while building */
} onnx_builder;

pn_status onnx_builder_init(onnx_builder *b, const char *graph_name, pn_error *err);
/* Frees the graph unless it was handed to a model (graph set to NULL). */
void onnx_builder_free(onnx_builder *b);
/* Records a failure (the first one wins) and returns it. */
pn_status onnx_fail(onnx_builder *b, pn_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Formats a tensor name into buf (PN_ONNX_NAME_MAX bytes) and returns buf; a
 * name that does not fit is a failure (never a truncated, maybe clashing name). */
const char *onnx_name(onnx_builder *b, char *buf, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* op(in[0..n_in)) -> out; NULL after a failure. */
Onnx__NodeProto *onnx_node(onnx_builder *b, const char *op, const char *out, int n_in,
                           const char *const *in);
void onnx_attr_int(onnx_builder *b, Onnx__NodeProto *n, const char *name, int64_t v);
void onnx_attr_float(onnx_builder *b, Onnx__NodeProto *n, const char *name, float v);
void onnx_attr_ints(onnx_builder *b, Onnx__NodeProto *n, const char *name, const int64_t *v, size_t count);

/* A float32 initializer (constant) named name with dims[0..ndim). */
void onnx_const_f32(onnx_builder *b, const char *name, const float *data, const int64_t *dims, int ndim);
/* The same for int64 (Slice's starts, ends and axes). */
void onnx_const_i64(onnx_builder *b, const char *name, const int64_t *data, const int64_t *dims, int ndim);
/* A graph input (is_output 0) or output: elem_type is an ONNX__TENSOR_PROTO__DATA_TYPE__*;
 * a dimension < 0 is the symbolic batch size "N". */
void onnx_value_info(onnx_builder *b, int is_output, const char *name, int elem_type,
                     const int64_t *dims, int ndim);

#endif
