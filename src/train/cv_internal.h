/* Shared by pn_cv_run and the pooling of its out-of-fold predictions. */
#ifndef PNEUMO_TRAIN_CV_INTERNAL_H
#define PNEUMO_TRAIN_CV_INTERNAL_H

#include <stdio.h>

#include "pneumo/train.h"

/* out_dir/fold-<k+1> */
static inline void pn_cv_fold_dir(const pn_train_config *c, int k, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/fold-%d", c->out_dir, k + 1);
}

/* P(normal), P(bacterial), P(viral) from three logits and the calibrated
 * P(pneumonia); bacterial + viral == p_pneumonia. */
void pn_cv_three_class_probs(const float *z, float p_pneumonia, float *out);

/* The report section for a cv.json object (malloc'ed HTML, NULL when out of memory). */
typedef struct json_t json_t;
char *pn_cv_section_html(json_t *cv);

#endif
