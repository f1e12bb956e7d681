/* Grad-CAM heat map drawn over the X-ray, as a PNG for reports and the web page. */
#ifndef PNEUMO_OVERLAY_H
#define PNEUMO_OVERLAY_H

#include <stddef.h>
#include <stdint.h>

#include "pneumo/error.h"

/* Largest overlay side accepted (the PNG is built in memory). */
#define PN_OVERLAY_MAX_SIDE 8192

/* Upsamples cam (cam_size x cam_size, values in [0,1], NaN treated as 0)
 * bilinearly to w x h, colours it with the turbo colormap, blends it over the
 * w x h 8-bit gray image with the given opacity in [0,1] and encodes the
 * result as an 8-bit RGB PNG. *png is malloc'ed; the caller frees it. */
pn_status pn_overlay_png(const uint8_t *gray, int w, int h, const float *cam, int cam_size, float opacity,
                         unsigned char **png, size_t *png_size, pn_error *err);

/* The colour-mapped heatmap alone, w x h RGBA PNG, alpha equal to the map
 * value (weak evidence transparent), for clients that blend it themselves
 * (the web page's opacity slider). */
pn_status pn_heatmap_png(const float *cam, int cam_size, int w, int h, unsigned char **png,
                         size_t *png_size, pn_error *err);

/* Turbo colormap (Google, 2019) at x in [0,1] -> 8-bit RGB. */
void pn_turbo_rgb(float x, uint8_t rgb[3]);

#endif
