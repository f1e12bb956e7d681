/* safetensors dtypes: names, sizes, shape arithmetic and conversion to float32. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/safetensors_internal.h"
#include "pneumo/tensor.h"

static const struct {
    const char *name;
    size_t size;
} dtype_table[] = {
    [PN_ST_F32] = {"F32", 4}, [PN_ST_BF16] = {"BF16", 2}, [PN_ST_F16] = {"F16", 2},
    [PN_ST_F64] = {"F64", 8}, [PN_ST_I64] = {"I64", 8},   [PN_ST_I32] = {"I32", 4},
    [PN_ST_U8] = {"U8", 1},   [PN_ST_I8] = {"I8", 1},     [PN_ST_BOOL] = {"BOOL", 1},
};
#define DTYPE_COUNT (sizeof dtype_table / sizeof dtype_table[0])

const char *pn_st_dtype_name(pn_st_dtype t)
{
    return (unsigned)t < DTYPE_COUNT ? dtype_table[t].name : "?";
}

int pn_st_dtype_known(pn_st_dtype t) { return (unsigned)t < DTYPE_COUNT; }

size_t pn_st_dtype_size(pn_st_dtype t)
{
    return (unsigned)t < DTYPE_COUNT ? dtype_table[t].size : 0;
}

int pn_st_dtype_from_name(const char *name, pn_st_dtype *out)
{
    for (size_t i = 0; i < DTYPE_COUNT; i++) {
        if (strcmp(dtype_table[i].name, name) == 0) {
            *out = (pn_st_dtype)i;
            return 1;
        }
    }
    return 0;
}

int pn_st_shape_size(int ndim, const int64_t *shape, size_t elem_size, size_t *numel, size_t *nbytes)
{
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return 0;
        if ((uint64_t)shape[i] > SIZE_MAX)
            return 0;
        size_t d = (size_t)shape[i];
        if (d != 0 && n > SIZE_MAX / d)
            return 0;
        n *= d;
    }
    if (elem_size != 0 && n > SIZE_MAX / elem_size)
        return 0;
    *numel = n;
    *nbytes = n * elem_size;
    return 1;
}

/* --------------------------------------------------------- float conversion */

/* IEEE half to float, exact for every half value (subnormals, inf, NaN payload). */
static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu;
    if (exponent == 0) {
        float magnitude = ldexpf((float)mantissa, -24);
        return sign ? -magnitude : magnitude;
    }
    uint32_t bits = exponent == 31 ? sign | 0x7f800000u | mantissa << 13
                                   : sign | (exponent + 112) << 23 | mantissa << 13;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* Explicit saturation: an out-of-range double-to-float conversion is undefined in C. */
static float double_to_float(double d)
{
    if (d > FLT_MAX)
        return INFINITY;
    if (d < -FLT_MAX)
        return -INFINITY;
    return (float)d;
}

pn_status pn_st_to_f32(const pn_st_tensor *t, float *dst, pn_error *err)
{
    const uint8_t *src = t->data;
    switch (t->dtype) {
    case PN_ST_F32:
        if (t->numel)
            memcpy(dst, src, t->numel * 4);
        return PN_OK;
    case PN_ST_BF16:
    case PN_ST_F16:
        for (size_t i = 0; i < t->numel; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            dst[i] = t->dtype == PN_ST_BF16 ? pn_bf16_to_f32(h) : half_to_float(h);
        }
        return PN_OK;
    case PN_ST_F64:
        for (size_t i = 0; i < t->numel; i++) {
            double d;
            memcpy(&d, src + 8 * i, 8);
            dst[i] = double_to_float(d);
        }
        return PN_OK;
    default:
        return pn_fail(err, PN_EINVAL, "tensor " NAME_FMT " is %s, not a floating-point dtype",
                       t->name, pn_st_dtype_name(t->dtype));
    }
}
