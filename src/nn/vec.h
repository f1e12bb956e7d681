/* Element-wise loops over whole tensors (fp32 or bf16 storage), vectorised
 * with AVX-512 where the CPU has it: the residual add and gradient
 * accumulation run them over every activation of a ResNet. */
#ifndef PNEUMO_NN_VEC_H
#define PNEUMO_NN_VEC_H

#include <stddef.h>

#include "pneumo/tensor.h"

/* out[i] = a[i] + b[i] (out may alias a or b), threads over the range. */
void pn_vec_add(const void *a, const void *b, void *out, pn_dtype t, size_t n);
/* out[i] = in[i] (fp32) stored as t (rounded to nearest even for bf16). */
void pn_vec_from_f32(const float *in, void *out, pn_dtype t, size_t n);

#endif
