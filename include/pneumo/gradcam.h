/* Grad-CAM heatmaps for a pn_net. */
#ifndef PNEUMO_GRADCAM_H
#define PNEUMO_GRADCAM_H

#include "pneumo/nn.h"

/* Grad-CAM of class target_class at `layer` (NULL = the last layer with
 * spatial output) for one preprocessed input image. *cam_out (malloc'ed) is
 * input_size x input_size in [0, 1] (normalised by its maximum; all zero when
 * no positive evidence). The net must not be fused for inference. */
pn_status pn_gradcam(pn_net *net, const float *input, int target_class, const char *layer,
                     float **cam_out, int *cam_size, pn_error *err);

/* Fraction of the map's mass outside the box [x0,x1) x [y0,y1), given in
 * fractions of the image (e.g. a central lung box). */
double pn_cam_fraction_outside(const float *cam, int size, float x0, float y0, float x1, float y1);

#endif
