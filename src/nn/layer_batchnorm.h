#ifndef PNEUMO_NN_LAYER_BATCHNORM_H
#define PNEUMO_NN_LAYER_BATCHNORM_H
#include "nn/internal.h"
float pn_batchnorm_eps(const pn_layer *l);
#endif
