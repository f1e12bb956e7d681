/* The model-to-server adapter: a pool of pn_model instances, one per
 * prediction slot, behind the pn_predictor interface that pn_server calls
 * (pneumo/serve.h). Each prediction also draws the Grad-CAM overlay and
 * heatmap PNGs the API returns. */
#ifndef PNEUMO_INFER_SERVE_H
#define PNEUMO_INFER_SERVE_H

#include "pneumo/infer.h"
#include "pneumo/serve.h"

typedef struct pn_model_pool pn_model_pool;

/* Loads n_slots instances of the model at path (NULL: the bundled model),
 * each with an equal share of the cores, and warms each one up so the first
 * request does not pay for building kernels. */
pn_status pn_model_pool_create(const char *path, int n_slots, pn_model_pool **out, pn_error *err);
/* The predictor to pass to pn_server_start; valid until pn_model_pool_free. */
const pn_predictor *pn_model_pool_predictor(const pn_model_pool *p);
const pn_model_info *pn_model_pool_info(const pn_model_pool *p);
void pn_model_pool_free(pn_model_pool *p);

#endif
