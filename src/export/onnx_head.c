/* A member's head in the ONNX graph: its logits -> the probabilities
 * `pneumo predict` computes from them (predict.c's member_probability).
 *   2 classes: softmax(z / T) = [1 - p, p] with p = sigmoid((z1 - z0) / T).
 *   3 classes (NORMAL, BACTERIAL, VIRAL): p = sigmoid((logsumexp(z1, z2) - z0) / T),
 *     the binary [1 - p, p], and [1 - p, p s1, p s2] with s = softmax(z1, z2)
 *     (the split between the subtypes is not temperature-scaled). */
#include "export/onnx_internal.h"

/* z[:, begin:end] (N x classes -> N x (end - begin)), named out; axes is
 * the int64 initializer {1}. */
static void emit_columns(onnx_builder *b, const char *z, const char *axes, int64_t begin, int64_t end,
                         const char *out)
{
    char starts[PN_ONNX_NAME_MAX], ends[PN_ONNX_NAME_MAX];
    const int64_t one = 1;
    onnx_name(b, starts, "%s.start", out);
    onnx_name(b, ends, "%s.end", out);
    onnx_const_i64(b, starts, &begin, &one, 1);
    onnx_const_i64(b, ends, &end, &one, 1);
    onnx_node(b, "Slice", out, 4, (const char *[]){z, starts, ends, axes});
}

static void concat_columns(onnx_builder *b, const char *out, const char *left, const char *right)
{
    Onnx__NodeProto *cat = onnx_node(b, "Concat", out, 2, (const char *[]){left, right});
    onnx_attr_int(b, cat, "axis", 1);
}

static void emit_two_class(onnx_builder *b, const char *prefix, const char *z, const char *t,
                           const char *probs_name)
{
    char scaled[PN_ONNX_NAME_MAX];
    onnx_name(b, scaled, "%shead:scaled_logits", prefix);
    onnx_node(b, "Div", scaled, 2, (const char *[]){z, t});
    Onnx__NodeProto *sm = onnx_node(b, "Softmax", probs_name, 1, (const char *[]){scaled});
    onnx_attr_int(b, sm, "axis", 1);
}

static void emit_three_class(onnx_builder *b, const char *prefix, const char *z, const char *t,
                             const char *probs_name, const char *three_name)
{
    char axes[PN_ONNX_NAME_MAX], z0[PN_ONNX_NAME_MAX], zs[PN_ONNX_NAME_MAX], lse[PN_ONNX_NAME_MAX], pos[PN_ONNX_NAME_MAX],
        scaled[PN_ONNX_NAME_MAX], p[PN_ONNX_NAME_MAX], k1[PN_ONNX_NAME_MAX], q[PN_ONNX_NAME_MAX],
        split[PN_ONNX_NAME_MAX], sub[PN_ONNX_NAME_MAX];
    const float one = 1;
    const int64_t class_axis = 1, axes_dims = 1;
    onnx_name(b, axes, "%shead.class_axis", prefix);
    onnx_name(b, z0, "%shead:normal_logit", prefix);     /* N x 1 */
    onnx_name(b, zs, "%shead:subtype_logits", prefix);   /* N x 2 */
    onnx_name(b, lse, "%shead:pneumonia_logsumexp", prefix);
    onnx_name(b, pos, "%shead:positive_logit", prefix);
    onnx_name(b, scaled, "%shead:scaled_positive_logit", prefix);
    onnx_name(b, p, "%shead:pneumonia", prefix);         /* N x 1 P(pneumonia) */
    onnx_name(b, k1, "%shead.one", prefix);
    onnx_name(b, q, "%shead:normal", prefix);            /* N x 1 1 - P(pneumonia) */
    onnx_name(b, split, "%shead:subtype_split", prefix); /* N x 2 softmax(z1, z2) */
    onnx_name(b, sub, "%shead:subtypes", prefix);        /* N x 2 P(bacterial), P(viral) */
    onnx_const_i64(b, axes, &class_axis, &axes_dims, 1);
    emit_columns(b, z, axes, 0, 1, z0);
    emit_columns(b, z, axes, 1, 3, zs);
    Onnx__NodeProto *r = onnx_node(b, "ReduceLogSumExp", lse, 1, (const char *[]){zs});
    onnx_attr_ints(b, r, "axes", (const int64_t[]){1}, 1);
    onnx_attr_int(b, r, "keepdims", 1);
    onnx_node(b, "Sub", pos, 2, (const char *[]){lse, z0});
    onnx_node(b, "Div", scaled, 2, (const char *[]){pos, t});
    onnx_node(b, "Sigmoid", p, 1, (const char *[]){scaled});
    onnx_const_f32(b, k1, &one, NULL, 0);
    onnx_node(b, "Sub", q, 2, (const char *[]){k1, p});
    concat_columns(b, probs_name, q, p);
    if (!three_name)
        return;
    Onnx__NodeProto *sm = onnx_node(b, "Softmax", split, 1, (const char *[]){zs});
    onnx_attr_int(b, sm, "axis", 1);
    onnx_node(b, "Mul", sub, 2, (const char *[]){p, split});
    concat_columns(b, three_name, q, sub);
}

void pn_onnx_emit_head(onnx_builder *b, const char *prefix, onnx_tensor logits, int classes, float temperature,
                       const char *probs_name, const char *three_name)
{
    char flat[PN_ONNX_NAME_MAX], t[PN_ONNX_NAME_MAX];
    onnx_name(b, flat, "%shead:logits", prefix);
    onnx_name(b, t, "%shead.temperature", prefix);
    const char *z = logits.name;
    if (logits.rank == 4) {
        Onnx__NodeProto *fl = onnx_node(b, "Flatten", flat, 1, &z);
        onnx_attr_int(b, fl, "axis", 1);
        z = flat;
    }
    onnx_const_f32(b, t, &temperature, NULL, 0);
    if (classes == 3)
        emit_three_class(b, prefix, z, t, probs_name, three_name);
    else
        emit_two_class(b, prefix, z, t, probs_name);
}
