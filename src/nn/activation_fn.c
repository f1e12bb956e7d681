/* Scalar activation functions, their derivatives and oneDNN equivalents. */
#include <math.h>
#include <string.h>

#include "nn/internal.h"

static const char *const act_names[] = {"linear", "relu", "relu6", "hardswish",
                                        "hardsigmoid", "sigmoid", "silu"};

pn_status pn_act_parse(const char *name, pn_act_kind *out, pn_error *err)
{
    for (int k = 0; k < (int)(sizeof act_names / sizeof *act_names); k++)
        if (!strcmp(name, act_names[k])) {
            *out = (pn_act_kind)k;
            return PN_OK;
        }
    if (!strcmp(name, "swish")) {
        *out = PN_ACT_SILU;
        return PN_OK;
    }
    return pn_fail(err, PN_EFORMAT,
                   "unknown activation '%s' (linear, relu, relu6, hardswish, hardsigmoid, sigmoid, silu)",
                   name);
}

const char *pn_act_name(pn_act_kind k) { return act_names[k]; }

int pn_act_dnnl_use_dst(pn_act_kind k, dnnl_alg_kind_t *alg)
{
    switch (k) {
    case PN_ACT_RELU: *alg = dnnl_eltwise_relu_use_dst_for_bwd; return 1;
    case PN_ACT_RELU6: *alg = dnnl_eltwise_clip_v2_use_dst_for_bwd; return 1;
    case PN_ACT_SIGMOID: *alg = dnnl_eltwise_logistic_use_dst_for_bwd; return 1;
    default: return 0;
    }
}

float pn_act_apply(pn_act_kind k, float x)
{
    switch (k) {
    case PN_ACT_LINEAR: return x;
    case PN_ACT_RELU: return x > 0 ? x : 0;
    case PN_ACT_RELU6: return x < 0 ? 0 : x > 6 ? 6 : x;
    case PN_ACT_HARDSWISH: return x <= -3 ? 0 : x >= 3 ? x : x * (x + 3) / 6;
    case PN_ACT_HARDSIGMOID: return x <= -3 ? 0 : x >= 3 ? 1 : x / 6 + 0.5f;
    case PN_ACT_SIGMOID: return 1 / (1 + expf(-x));
    case PN_ACT_SILU: return x / (1 + expf(-x));
    }
    return x;
}

float pn_act_grad(pn_act_kind k, float x)
{
    switch (k) {
    case PN_ACT_LINEAR: return 1;
    case PN_ACT_RELU: return x > 0;
    case PN_ACT_RELU6: return x > 0 && x < 6;
    case PN_ACT_HARDSWISH: return x < -3 ? 0 : x > 3 ? 1 : (2 * x + 3) / 6;
    case PN_ACT_HARDSIGMOID: return x > -3 && x < 3 ? 1.0f / 6 : 0;
    case PN_ACT_SIGMOID: {
        float s = 1 / (1 + expf(-x));
        return s * (1 - s);
    }
    case PN_ACT_SILU: {
        float s = 1 / (1 + expf(-x));
        return s * (1 + x * (1 - s));
    }
    }
    return 1;
}

int pn_act_dnnl(pn_act_kind k, dnnl_alg_kind_t *alg, float *alpha, float *beta)
{
    *alpha = 0;
    *beta = 0;
    switch (k) {
    case PN_ACT_RELU: *alg = dnnl_eltwise_relu; return 1;
    /* clip_v2: zero gradient at both ends, as PyTorch's hardtanh/relu6 */
    case PN_ACT_RELU6: *alg = dnnl_eltwise_clip_v2; *alpha = 0; *beta = 6; return 1;
    case PN_ACT_HARDSWISH: *alg = dnnl_eltwise_hardswish; return 1;
    case PN_ACT_SIGMOID: *alg = dnnl_eltwise_logistic; return 1;
    case PN_ACT_SILU: *alg = dnnl_eltwise_swish; *alpha = 1; return 1;
    case PN_ACT_LINEAR:
    case PN_ACT_HARDSIGMOID: /* not in oneDNN 2.6 */
        return 0;
    }
    return 0;
}
