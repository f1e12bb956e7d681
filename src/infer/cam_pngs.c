/* A prediction's Grad-CAM drawn for people: over the image itself (not the
 * model input), shrunk to a display size, as the CLI and the server show it. */
#include <math.h>
#include <stdlib.h>

#include "pneumo/infer.h"
#include "pneumo/overlay.h"

pn_status pn_prediction_cam_pngs(const pn_image *img, const pn_prediction *p, unsigned char **overlay_png,
                                 size_t *overlay_size, unsigned char **heatmap_png, size_t *heatmap_size,
                                 pn_error *err)
{
    if (!p->cam)
        return pn_fail(err, PN_EINVAL, "the prediction has no Grad-CAM map");
    pn_image small = {0};
    const pn_image *src = img;
    int long_side = img->w > img->h ? img->w : img->h;
    pn_status st = PN_OK;
    if (long_side > PN_CAM_DISPLAY_SIDE) {
        double scale = (double)PN_CAM_DISPLAY_SIDE / long_side;
        int w = (int)lround(img->w * scale), h = (int)lround(img->h * scale);
        st = pn_image_resize(img, w > 0 ? w : 1, h > 0 ? h : 1, PN_RESIZE_SQUASH, &small, err);
        src = &small;
    }
    if (!st)
        st = pn_overlay_png(src->pixels, src->w, src->h, p->cam, p->cam_size, PN_CAM_OPACITY, overlay_png,
                            overlay_size, err);
    if (!st && heatmap_png)
        st = pn_heatmap_png(p->cam, p->cam_size, src->w, src->h, heatmap_png, heatmap_size, err);
    pn_image_free(&small);
    return st;
}
