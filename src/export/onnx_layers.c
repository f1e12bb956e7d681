/* pneumo layers as ONNX nodes, one function per layer kind, NCHW. A layer's
 * output tensor is named prefix + layer name; its weights prefix + layer name
 * + ".weight" etc., like pneumo's parameters. */
#include <assert.h>
#include <stdio.h>

#include "export/onnx_internal.h"

typedef struct layer_ctx {
    onnx_builder *b;
    const pn_layer_desc *d;
    const pn_layer_desc *const *in_desc;
    const onnx_tensor *in;
    char base[PN_ONNX_NAME_MAX]; /* prefix + layer name: the layer's output */
} layer_ctx;

static const char *name_of(layer_ctx *x, const char *suffix, char *buf)
{
    return onnx_name(x->b, buf, "%s%s", x->base, suffix);
}

static Onnx__NodeProto *node1(onnx_builder *b, const char *op, const char *out, const char *in)
{
    return onnx_node(b, op, out, 1, &in);
}

/* act(x) -> out; x itself when the activation is linear (then out is unused).
 * layer names the layer in errors. */
static const char *emit_act(onnx_builder *b, const char *layer, pn_act_kind act, const char *x,
                            const char *out)
{
    char aux[PN_ONNX_NAME_MAX], aux2[PN_ONNX_NAME_MAX];
    Onnx__NodeProto *n = NULL;
    switch (act) {
    case PN_ACT_LINEAR: return x;
    case PN_ACT_RELU: n = node1(b, "Relu", out, x); break;
    case PN_ACT_SIGMOID: n = node1(b, "Sigmoid", out, x); break;
    case PN_ACT_HARDSWISH: n = node1(b, "HardSwish", out, x); break;
    case PN_ACT_HARDSIGMOID: /* relu6(x + 3) / 6 */
        n = node1(b, "HardSigmoid", out, x);
        onnx_attr_float(b, n, "alpha", 1.0f / 6);
        onnx_attr_float(b, n, "beta", 0.5f);
        break;
    case PN_ACT_RELU6: {
        onnx_name(b, aux, "%s.min", out);
        onnx_name(b, aux2, "%s.max", out);
        const float lo = 0, hi = 6;
        onnx_const_f32(b, aux, &lo, NULL, 0);
        onnx_const_f32(b, aux2, &hi, NULL, 0);
        n = onnx_node(b, "Clip", out, 3, (const char *[]){x, aux, aux2});
        break;
    }
    case PN_ACT_SILU: /* x * sigmoid(x) */
        onnx_name(b, aux, "%s.sigmoid", out);
        node1(b, "Sigmoid", aux, x);
        n = onnx_node(b, "Mul", out, 2, (const char *[]){x, aux});
        break;
    }
    if (!n && !b->st)
        onnx_fail(b, PN_EUNSUPPORTED, "layer '%s': activation %d has no ONNX mapping", layer, (int)act);
    return n ? n->output[0] : NULL;
}

/* op output: the layer's name, or name + "/pre" when an activation follows. */
static const char *op_out(layer_ctx *x, char *buf)
{
    return x->d->act == PN_ACT_LINEAR ? name_of(x, "", buf) : name_of(x, "/pre", buf);
}

static pn_status finish(layer_ctx *x, Onnx__NodeProto *op, int rank, onnx_tensor *out)
{
    const char *y = op ? emit_act(x->b, x->d->name, x->d->act, op->output[0], x->base) : NULL;
    out->name = y;
    out->rank = rank;
    return x->b->st;
}

static pn_status need_rank4(layer_ctx *x)
{
    for (int k = 0; k < x->d->n_inputs; k++)
        if (x->in[k].rank != 4)
            return onnx_fail(x->b, PN_EUNSUPPORTED,
                             "layer '%s' (%s) reads '%s', a flat output of a fully connected "
                             "layer: the ONNX export supports only activations, batch norms, "
                             "dropout, add, concat and fully connected layers after one",
                             x->d->name, pn_layer_kind_name(x->d->kind), x->in_desc[k]->name);
    return PN_OK;
}

static void window_attrs(layer_ctx *x, Onnx__NodeProto *n)
{
    const pn_layer_desc *d = x->d;
    onnx_attr_ints(x->b, n, "kernel_shape", (const int64_t[]){d->kh, d->kw}, 2);
    onnx_attr_ints(x->b, n, "strides", (const int64_t[]){d->sh, d->sw}, 2);
    onnx_attr_ints(x->b, n, "pads", (const int64_t[]){d->pt, d->pl, d->pb, d->pr}, 4);
}

static pn_status emit_conv(layer_ctx *x, onnx_tensor *out)
{
    const pn_layer_desc *d = x->d;
    char w[PN_ONNX_NAME_MAX], bias[PN_ONNX_NAME_MAX], o[PN_ONNX_NAME_MAX];
    int in_c = x->in_desc[0]->c;
    if (need_rank4(x))
        return x->b->st;
    onnx_const_f32(x->b, name_of(x, ".weight", w), d->weight,
                   (const int64_t[]){d->c, in_c / d->groups, d->kh, d->kw}, 4);
    if (d->bias)
        onnx_const_f32(x->b, name_of(x, ".bias", bias), d->bias, (const int64_t[]){d->c}, 1);
    Onnx__NodeProto *n = onnx_node(x->b, "Conv", op_out(x, o), d->bias ? 3 : 2,
                                   (const char *[]){x->in[0].name, w, bias});
    window_attrs(x, n);
    onnx_attr_ints(x->b, n, "dilations", (const int64_t[]){d->dh, d->dw}, 2);
    onnx_attr_int(x->b, n, "group", d->groups);
    return finish(x, n, 4, out);
}

static pn_status emit_batchnorm(layer_ctx *x, onnx_tensor *out)
{
    const pn_layer_desc *d = x->d;
    const float *v[4] = {d->gamma, d->beta, d->mean, d->var};
    const char *suffix[4] = {".weight", ".bias", ".running_mean", ".running_var"};
    char names[4][PN_ONNX_NAME_MAX], o[PN_ONNX_NAME_MAX];
    for (int k = 0; k < 4; k++)
        onnx_const_f32(x->b, name_of(x, suffix[k], names[k]), v[k], (const int64_t[]){d->c}, 1);
    Onnx__NodeProto *n = onnx_node(x->b, "BatchNormalization", op_out(x, o), 5,
                                   (const char *[]){x->in[0].name, names[0], names[1], names[2], names[3]});
    onnx_attr_float(x->b, n, "epsilon", d->eps);
    return finish(x, n, x->in[0].rank, out);
}

static pn_status emit_activation(layer_ctx *x, onnx_tensor *out)
{
    /* linear: a named identity, so the layer's output name exists */
    Onnx__NodeProto *n = x->d->act == PN_ACT_LINEAR ? node1(x->b, "Identity", x->base, x->in[0].name) : NULL;
    out->name = n ? n->output[0] : emit_act(x->b, x->d->name, x->d->act, x->in[0].name, x->base);
    out->rank = x->in[0].rank;
    return x->b->st;
}

static pn_status emit_pool(layer_ctx *x, onnx_tensor *out)
{
    char o[PN_ONNX_NAME_MAX];
    if (need_rank4(x))
        return x->b->st;
    int max = x->d->kind == PN_LAYER_MAXPOOL;
    Onnx__NodeProto *n = node1(x->b, max ? "MaxPool" : "AveragePool", op_out(x, o), x->in[0].name);
    window_attrs(x, n);
    if (!max) /* PyTorch's AvgPool2d default, as pneumo computes it */
        onnx_attr_int(x->b, n, "count_include_pad", 1);
    return finish(x, n, 4, out);
}

static pn_status emit_gap(layer_ctx *x, onnx_tensor *out)
{
    char o[PN_ONNX_NAME_MAX];
    if (need_rank4(x))
        return x->b->st;
    return finish(x, node1(x->b, "GlobalAveragePool", op_out(x, o), x->in[0].name), 4, out);
}

/* Gemm on the input flattened in NHWC order, as pneumo's inner product reads it. */
static pn_status emit_fc(layer_ctx *x, onnx_tensor *out)
{
    const pn_layer_desc *d = x->d, *src = x->in_desc[0];
    char t[PN_ONNX_NAME_MAX], f[PN_ONNX_NAME_MAX], w[PN_ONNX_NAME_MAX], bias[PN_ONNX_NAME_MAX], o[PN_ONNX_NAME_MAX];
    const char *flat = x->in[0].name;
    if (x->in[0].rank == 4) {
        const char *nhwc = flat;
        if (src->h * src->w > 1) {
            Onnx__NodeProto *tr = node1(x->b, "Transpose", name_of(x, "/nhwc", t), flat);
            onnx_attr_ints(x->b, tr, "perm", (const int64_t[]){0, 2, 3, 1}, 4);
            nhwc = t;
        }
        Onnx__NodeProto *fl = node1(x->b, "Flatten", name_of(x, "/flat", f), nhwc);
        onnx_attr_int(x->b, fl, "axis", 1);
        flat = f;
    }
    onnx_const_f32(x->b, name_of(x, ".weight", w), d->weight,
                   (const int64_t[]){d->c, (int64_t)src->c * src->h * src->w}, 2);
    if (d->bias)
        onnx_const_f32(x->b, name_of(x, ".bias", bias), d->bias, (const int64_t[]){d->c}, 1);
    Onnx__NodeProto *n = onnx_node(x->b, "Gemm", op_out(x, o), d->bias ? 3 : 2,
                                   (const char *[]){flat, w, bias});
    onnx_attr_int(x->b, n, "transB", 1);
    return finish(x, n, 2, out);
}

static pn_status emit_identity(layer_ctx *x, onnx_tensor *out) /* dropout at inference */
{
    out->name = x->in[0].name;
    out->rank = x->in[0].rank;
    return x->b->st;
}

static pn_status emit_add(layer_ctx *x, onnx_tensor *out)
{
    char o[PN_ONNX_NAME_MAX];
    if (x->in[0].rank != x->in[1].rank && need_rank4(x))
        return x->b->st;
    Onnx__NodeProto *n = onnx_node(x->b, "Add", op_out(x, o), 2, (const char *[]){x->in[0].name, x->in[1].name});
    return finish(x, n, x->in[0].rank, out);
}

static pn_status emit_concat(layer_ctx *x, onnx_tensor *out)
{
    const char *names[PN_LAYER_MAX_INPUTS];
    char o[PN_ONNX_NAME_MAX];
    for (int k = 0; k < x->d->n_inputs; k++) {
        if (x->in[k].rank != x->in[0].rank && need_rank4(x))
            return x->b->st;
        names[k] = x->in[k].name;
    }
    Onnx__NodeProto *n = onnx_node(x->b, "Concat", op_out(x, o), x->d->n_inputs, names);
    onnx_attr_int(x->b, n, "axis", 1); /* channels, flat or not */
    return finish(x, n, x->in[0].rank, out);
}

/* y = x * gate(W2 act(W1 mean_hw(x) + b1) + b2), the 1x1 layers as 1x1 convolutions. */
static pn_status emit_se(layer_ctx *x, onnx_tensor *out)
{
    const pn_layer_desc *d = x->d;
    char pool[PN_ONNX_NAME_MAX], w1[PN_ONNX_NAME_MAX], b1[PN_ONNX_NAME_MAX], w2[PN_ONNX_NAME_MAX],
        b2[PN_ONNX_NAME_MAX], z1[PN_ONNX_NAME_MAX], a1[PN_ONNX_NAME_MAX], z2[PN_ONNX_NAME_MAX],
        g[PN_ONNX_NAME_MAX];
    if (need_rank4(x))
        return x->b->st;
    onnx_builder *b = x->b;
    node1(b, "GlobalAveragePool", name_of(x, "/pool", pool), x->in[0].name);
    onnx_const_f32(b, name_of(x, ".fc1.weight", w1), d->weight, (const int64_t[]){d->squeeze, d->c, 1, 1}, 4);
    onnx_const_f32(b, name_of(x, ".fc1.bias", b1), d->bias, (const int64_t[]){d->squeeze}, 1);
    onnx_const_f32(b, name_of(x, ".fc2.weight", w2), d->weight2, (const int64_t[]){d->c, d->squeeze, 1, 1}, 4);
    onnx_const_f32(b, name_of(x, ".fc2.bias", b2), d->bias2, (const int64_t[]){d->c}, 1);
    onnx_node(b, "Conv", name_of(x, "/fc1", z1), 3, (const char *[]){pool, w1, b1});
    const char *a = emit_act(b, d->name, d->act, z1, name_of(x, "/act", a1));
    onnx_node(b, "Conv", name_of(x, "/fc2", z2), 3, (const char *[]){a ? a : "", w2, b2});
    const char *gate = emit_act(b, d->name, d->gate, z2, name_of(x, "/gate", g));
    Onnx__NodeProto *n = onnx_node(b, "Mul", x->base, 2, (const char *[]){x->in[0].name, gate ? gate : ""});
    out->name = n ? n->output[0] : NULL;
    out->rank = 4;
    return b->st;
}

typedef pn_status (*emit_fn)(layer_ctx *x, onnx_tensor *out);

/* Every kind of the registry; NULL: no ONNX mapping (the input is the
 * preprocessing, emitted by onnx_member.c). */
static const emit_fn emitters[] = {
    [PN_LAYER_INPUT] = NULL,          [PN_LAYER_CONV] = emit_conv,
    [PN_LAYER_BATCHNORM] = emit_batchnorm, [PN_LAYER_ACTIVATION] = emit_activation,
    [PN_LAYER_MAXPOOL] = emit_pool,   [PN_LAYER_AVGPOOL] = emit_pool,
    [PN_LAYER_GAP] = emit_gap,        [PN_LAYER_FC] = emit_fc,
    [PN_LAYER_DROPOUT] = emit_identity, [PN_LAYER_ADD] = emit_add,
    [PN_LAYER_CONCAT] = emit_concat,  [PN_LAYER_SE] = emit_se,
};
static_assert(sizeof emitters / sizeof *emitters == PN_LAYER_KIND_COUNT,
              "every layer kind is listed (NULL when it has no ONNX mapping)");

pn_status pn_onnx_emit_layer(onnx_builder *b, const char *prefix, const pn_layer_desc *d,
                             const pn_layer_desc *const *in_desc, const onnx_tensor *in,
                             onnx_tensor *out)
{
    emit_fn emit = d->kind >= 0 && d->kind < PN_LAYER_KIND_COUNT ? emitters[d->kind] : NULL;
    if (!emit)
        return onnx_fail(b, PN_EUNSUPPORTED, "layer '%s' (%s) has no ONNX mapping", d->name,
                         pn_layer_kind_name(d->kind));
    layer_ctx x = {.b = b, .d = d, .in_desc = in_desc, .in = in};
    onnx_name(b, x.base, "%s%s", prefix, d->name);
    return emit(&x, out);
}
