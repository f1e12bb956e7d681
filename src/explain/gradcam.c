/* Grad-CAM (Selvaraju et al. 2017): the class score's gradient at a
 * convolutional layer, averaged over space, weights that layer's channels;
 * the positive part of the weighted sum says where the evidence was. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pneumo/gradcam.h"

/* Bilinear upsampling of an h x w map to size x size (align-corners off, as
 * image resizers do). */
static void upsample(const float *src, int h, int w, float *dst, int size)
{
    for (int y = 0; y < size; y++) {
        float fy = ((float)y + 0.5f) * (float)h / (float)size - 0.5f;
        fy = fy < 0 ? 0 : fy > h - 1 ? (float)(h - 1) : fy;
        int y0 = (int)fy, y1 = y0 + 1 < h ? y0 + 1 : y0;
        float ty = fy - (float)y0;
        for (int x = 0; x < size; x++) {
            float fx = ((float)x + 0.5f) * (float)w / (float)size - 0.5f;
            fx = fx < 0 ? 0 : fx > w - 1 ? (float)(w - 1) : fx;
            int x0 = (int)fx, x1 = x0 + 1 < w ? x0 + 1 : x0;
            float tx = fx - (float)x0;
            float top = src[y0 * w + x0] * (1 - tx) + src[y0 * w + x1] * tx;
            float bottom = src[y1 * w + x0] * (1 - tx) + src[y1 * w + x1] * tx;
            dst[y * size + x] = top * (1 - ty) + bottom * ty;
        }
    }
}

pn_status pn_gradcam(pn_net *net, const float *input, int target_class, const char *layer,
                     float **cam_out, int *cam_size, pn_error *err)
{
    *cam_out = NULL;
    const char *target = layer ? layer : pn_net_last_conv_name(net);
    if (!target)
        return pn_fail(err, PN_EINVAL, "Grad-CAM: the network has no spatial layer");
    int classes = pn_net_classes(net);
    if (target_class < 0 || target_class >= classes)
        return pn_fail(err, PN_EINVAL, "Grad-CAM: no class %d", target_class);
    pn_status st;
    if ((st = pn_net_watch(net, target, err)) ||
        (st = pn_net_forward(net, input, 1, PN_FWD_GRAD, err)))
        return st;
    float *dlogits = calloc((size_t)classes, sizeof(float));
    if (!dlogits)
        return pn_fail(err, PN_ENOMEM, "out of memory");
    dlogits[target_class] = 1;
    st = pn_net_backward(net, dlogits, err);
    free(dlogits);
    float *act, *grad;
    int c, h, w;
    if (st || (st = pn_net_watched(net, &act, &grad, &c, &h, &w, err)))
        return st;
    float *weights = calloc((size_t)c, sizeof(float)), *map = calloc((size_t)h * w, sizeof(float));
    int size = pn_net_input_size(net);
    float *cam = malloc((size_t)size * size * sizeof(float));
    if (!weights || !map || !cam) {
        free(weights), free(map), free(cam);
        return pn_fail(err, PN_ENOMEM, "out of memory");
    }
    for (int i = 0; i < h * w; i++)
        for (int k = 0; k < c; k++)
            weights[k] += grad[(size_t)i * c + k] / (float)(h * w);
    float max = 0;
    for (int i = 0; i < h * w; i++) {
        float v = 0;
        for (int k = 0; k < c; k++)
            v += weights[k] * act[(size_t)i * c + k];
        map[i] = v > 0 ? v : 0;
        max = map[i] > max ? map[i] : max;
    }
    for (int i = 0; i < h * w; i++)
        map[i] = max > 0 ? map[i] / max : 0;
    upsample(map, h, w, cam, size);
    free(weights);
    free(map);
    *cam_out = cam;
    *cam_size = size;
    return PN_OK;
}

double pn_cam_fraction_outside(const float *cam, int size, float x0, float y0, float x1, float y1)
{
    double inside = 0, total = 0;
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++) {
            float fx = ((float)x + 0.5f) / (float)size, fy = ((float)y + 0.5f) / (float)size;
            double v = cam[y * size + x];
            total += v;
            if (fx >= x0 && fx < x1 && fy >= y0 && fy < y1)
                inside += v;
        }
    return total > 0 ? 1.0 - inside / total : 0.0;
}
