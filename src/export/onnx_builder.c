/* The ONNX graph builder: protobuf-c messages allocated with malloc, so that
 * protobuf_c_message_free_unpacked (system allocator) frees a whole model. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export/onnx_builder.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "ONNX raw_data is little-endian: this writer copies float32 and int64 memory as is"
#endif

pn_status onnx_fail(onnx_builder *b, pn_status st, const char *fmt, ...)
{
    if (b->st)
        return b->st;
    b->st = st;
    char msg[PN_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return pn_fail(b->err, st, "%s", msg);
}

const char *onnx_name(onnx_builder *b, char *buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(buf, PN_ONNX_NAME_MAX, fmt, ap);
    va_end(ap);
    if (len < 0 || len >= PN_ONNX_NAME_MAX)
        onnx_fail(b, PN_ELIMIT, "ONNX tensor name '%s...' is longer than %d bytes", buf, PN_ONNX_NAME_MAX - 1);
    return buf;
}

static void *alloc(onnx_builder *b, size_t size)
{
    void *p = b->st ? NULL : calloc(1, size);
    if (!p && !b->st)
        onnx_fail(b, PN_ENOMEM, "out of memory building the ONNX graph");
    return p;
}

static char *copy_str(onnx_builder *b, const char *s)
{
    char *c = alloc(b, strlen(s) + 1);
    if (c)
        strcpy(c, s);
    return c;
}

/* Grows a pointer array by one: *arr has *count elements of elem_size bytes. */
static int grow(onnx_builder *b, void *arr_ptr, size_t count, size_t elem_size)
{
    void **arr = arr_ptr;
    void *grown = b->st ? NULL : realloc(*arr, (count + 1) * elem_size);
    if (!grown) {
        onnx_fail(b, PN_ENOMEM, "out of memory building the ONNX graph");
        return 0;
    }
    *arr = grown;
    return 1;
}

static void free_msg(void *msg)
{
    if (msg)
        protobuf_c_message_free_unpacked(msg, NULL);
}

pn_status onnx_builder_init(onnx_builder *b, const char *graph_name, pn_error *err)
{
    memset(b, 0, sizeof *b);
    b->err = err;
    Onnx__GraphProto *g = alloc(b, sizeof *g);
    if (!g)
        return b->st;
    onnx__graph_proto__init(g);
    b->graph = g;
    g->name = copy_str(b, graph_name);
    return b->st;
}

void onnx_builder_free(onnx_builder *b)
{
    free_msg(b->graph);
    b->graph = NULL;
}

Onnx__NodeProto *onnx_node(onnx_builder *b, const char *op, const char *out, int n_in,
                           const char *const *in)
{
    Onnx__NodeProto *n = alloc(b, sizeof *n);
    if (!n)
        return NULL;
    onnx__node_proto__init(n);
    n->op_type = copy_str(b, op);
    n->name = copy_str(b, out);
    n->input = alloc(b, (size_t)(n_in ? n_in : 1) * sizeof *n->input);
    n->output = alloc(b, sizeof *n->output);
    for (int i = 0; n->input && i < n_in; i++)
        if ((n->input[i] = copy_str(b, in[i])))
            n->n_input++;
    if (n->output && (n->output[0] = copy_str(b, out)))
        n->n_output = 1;
    Onnx__GraphProto *g = b->graph;
    if (b->st || !grow(b, &g->node, g->n_node, sizeof *g->node)) {
        free_msg(n);
        return NULL;
    }
    g->node[g->n_node++] = n;
    return n;
}

static Onnx__AttributeProto *new_attr(onnx_builder *b, Onnx__NodeProto *n, const char *name,
                                      Onnx__AttributeProto__AttributeType type)
{
    if (!n)
        return NULL;
    Onnx__AttributeProto *a = alloc(b, sizeof *a);
    if (!a)
        return NULL;
    onnx__attribute_proto__init(a);
    a->name = copy_str(b, name);
    a->has_type = 1;
    a->type = type;
    if (b->st || !grow(b, &n->attribute, n->n_attribute, sizeof *n->attribute)) {
        free_msg(a);
        return NULL;
    }
    n->attribute[n->n_attribute++] = a;
    return a;
}

void onnx_attr_int(onnx_builder *b, Onnx__NodeProto *n, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = new_attr(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (a) {
        a->has_i = 1;
        a->i = v;
    }
}

void onnx_attr_float(onnx_builder *b, Onnx__NodeProto *n, const char *name, float v)
{
    Onnx__AttributeProto *a = new_attr(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (a) {
        a->has_f = 1;
        a->f = v;
    }
}

void onnx_attr_ints(onnx_builder *b, Onnx__NodeProto *n, const char *name, const int64_t *v, size_t count)
{
    Onnx__AttributeProto *a = new_attr(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    if (a && (a->ints = alloc(b, count * sizeof *a->ints))) {
        memcpy(a->ints, v, count * sizeof *v);
        a->n_ints = count;
    }
}

/* An initializer of numel elements of elem_size bytes (raw_data, little-endian). */
static void add_const(onnx_builder *b, const char *name, int elem_type, const void *data, size_t elem_size,
                      const int64_t *dims, int ndim)
{
    Onnx__TensorProto *t = alloc(b, sizeof *t);
    if (!t)
        return;
    onnx__tensor_proto__init(t);
    t->name = copy_str(b, name);
    t->has_data_type = 1;
    t->data_type = elem_type;
    size_t numel = 1;
    if ((t->dims = alloc(b, (size_t)(ndim ? ndim : 1) * sizeof *t->dims))) {
        for (int i = 0; i < ndim; i++)
            numel *= (size_t)(t->dims[i] = dims[i]);
        t->n_dims = (size_t)ndim;
    }
    if ((t->raw_data.data = alloc(b, numel * elem_size))) {
        memcpy(t->raw_data.data, data, numel * elem_size);
        t->raw_data.len = numel * elem_size;
        t->has_raw_data = 1;
    }
    Onnx__GraphProto *g = b->graph;
    if (b->st || !grow(b, &g->initializer, g->n_initializer, sizeof *g->initializer)) {
        free_msg(t);
        return;
    }
    g->initializer[g->n_initializer++] = t;
}

void onnx_const_f32(onnx_builder *b, const char *name, const float *data, const int64_t *dims, int ndim)
{
    add_const(b, name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, data, sizeof *data, dims, ndim);
}

void onnx_const_i64(onnx_builder *b, const char *name, const int64_t *data, const int64_t *dims, int ndim)
{
    add_const(b, name, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, data, sizeof *data, dims, ndim);
}

static Onnx__TypeProto *tensor_type(onnx_builder *b, int elem_type, const int64_t *dims, int ndim)
{
    Onnx__TypeProto *type = alloc(b, sizeof *type);
    if (!type)
        return NULL;
    onnx__type_proto__init(type);
    Onnx__TypeProto__Tensor *tt = alloc(b, sizeof *tt);
    Onnx__TensorShapeProto *shape = alloc(b, sizeof *shape);
    if (tt) {
        onnx__type_proto__tensor__init(tt);
        type->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
        type->tensor_type = tt;
        tt->has_elem_type = 1;
        tt->elem_type = elem_type;
    }
    if (tt && shape) {
        onnx__tensor_shape_proto__init(shape);
        tt->shape = shape;
        shape->dim = alloc(b, (size_t)ndim * sizeof *shape->dim);
    } else {
        free(shape);
    }
    for (int i = 0; !b->st && i < ndim; i++) {
        Onnx__TensorShapeProto__Dimension *d = alloc(b, sizeof *d);
        if (!d)
            break;
        onnx__tensor_shape_proto__dimension__init(d);
        shape->dim[shape->n_dim++] = d;
        if (dims[i] < 0) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = copy_str(b, "N");
        } else {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = dims[i];
        }
    }
    return type;
}

void onnx_value_info(onnx_builder *b, int is_output, const char *name, int elem_type,
                     const int64_t *dims, int ndim)
{
    Onnx__ValueInfoProto *v = alloc(b, sizeof *v);
    if (!v)
        return;
    onnx__value_info_proto__init(v);
    v->name = copy_str(b, name);
    v->type = tensor_type(b, elem_type, dims, ndim);
    Onnx__GraphProto *g = b->graph;
    Onnx__ValueInfoProto ***list = is_output ? &g->output : &g->input;
    size_t *count = is_output ? &g->n_output : &g->n_input;
    if (b->st || !grow(b, list, *count, sizeof **list)) {
        free_msg(v);
        return;
    }
    (*list)[(*count)++] = v;
}
