/* Numeric types shared by the engine, the data pipeline and model files. */
#ifndef PNEUMO_TENSOR_H
#define PNEUMO_TENSOR_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef enum pn_dtype { PN_F32 = 0, PN_BF16 = 1 } pn_dtype;

static inline size_t pn_dtype_size(pn_dtype t) { return t == PN_BF16 ? 2 : 4; }

/* bf16 is the top half of an IEEE float32; convert with round-to-nearest-even
 * (NaN stays NaN), matching oneDNN and PyTorch. */
static inline uint16_t pn_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline float pn_bf16_to_f32(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

#endif
