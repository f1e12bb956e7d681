/* Prediction with a pn_model: preprocessing as in training, temperature-
 * scaled P(pneumonia) averaged over the model's members, image warnings and
 * the Grad-CAM map. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "infer/internal.h"
#include "pneumo/gradcam.h"
#include "pneumo/safetensors.h"

static void add_warning(pn_prediction *p, const char *text)
{
    if (p->n_warnings < PN_MAX_WARNINGS)
        snprintf(p->warnings[p->n_warnings++], sizeof p->warnings[0], "%s", text);
}

static void image_warnings(const pn_image *img, pn_prediction *p)
{
    if (img->is_color)
        add_warning(p, "colour image: chest X-rays are grayscale, this may not be an X-ray");
    if (img->src_w < 128 || img->src_h < 128)
        add_warning(p, "very small image: the prediction may be unreliable");
    double aspect = (double)img->src_w / img->src_h;
    if (aspect > 2.0 || aspect < 0.5)
        add_warning(p, "unusual aspect ratio for a chest X-ray");
    for (int i = 0; i < img->n_notes && i < PN_IMAGE_MAX_NOTES; i++)
        add_warning(p, img->notes[i]);
}

/* img -> mb->input: resized (and equalised) as the member was trained, then
 * one normalised plane per test-time view. */
static pn_status preprocess(pn_model_member *mb, const pn_image *img, int views, pn_error *err)
{
    int size = mb->spec.input_size, ch = mb->spec.channels;
    pn_image resized = {0};
    pn_status st = pn_image_resize(img, size, size, mb->resize, &resized, err);
    if (!st && mb->clahe)
        st = pn_image_clahe(&resized, PN_CLAHE_TILES, PN_CLAHE_CLIP, err);
    pn_norm norm = {.channels = ch};
    memcpy(norm.mean, mb->spec.mean, (size_t)ch * sizeof(float));
    memcpy(norm.std, mb->spec.std, (size_t)ch * sizeof(float));
    size_t stride = (size_t)size * size * ch;
    for (int v = 0; !st && v < views; v++) {
        st = pn_tta_view(v, resized.pixels, size, size, mb->view, err);
        if (!st)
            st = pn_normalize(mb->view, size, size, &norm, mb->input + v * stride, err);
    }
    pn_image_free(&resized);
    return st;
}

/* P(pneumonia) of one view's logits, and with three classes the three
 * probabilities (the binary one split by the softmax of the two subtypes). */
static float member_probability(const pn_model_member *mb, const float *logits, float *p3)
{
    float p = 1.0f / (1.0f + expf(-pn_positive_logit(logits, mb->classes) / mb->temperature));
    if (mb->classes == 3) {
        float m = logits[1] > logits[2] ? logits[1] : logits[2];
        float eb = expf(logits[1] - m), ev = expf(logits[2] - m);
        p3[0] = 1 - p;
        p3[1] = p * eb / (eb + ev);
        p3[2] = p - p3[1];
    }
    return p;
}

/* The model's probabilities: the mean over members and their views. */
static pn_status model_probability(pn_model *m, const pn_image *img, pn_prediction *out, pn_error *err)
{
    double sum = 0, sum3[3] = {0, 0, 0};
    for (int i = 0; i < m->n_members; i++) {
        pn_model_member *mb = &m->members[i];
        pn_status st = preprocess(mb, img, m->tta, err);
        if (!st)
            st = pn_net_forward(mb->net, mb->input, m->tta, PN_FWD_INFER, err);
        if (st)
            return st;
        const float *z = pn_net_logits(mb->net);
        memcpy(mb->logits, z, (size_t)mb->classes * sizeof(float));
        for (int v = 0; v < m->tta; v++) {
            float p3[3];
            sum += member_probability(mb, z + (size_t)v * mb->classes, p3);
            for (int k = 0; m->classes == 3 && k < 3; k++)
                sum3[k] += p3[k];
        }
    }
    double n = (double)m->n_members * m->tta;
    out->probability = (float)(sum / n);
    out->n_classes = m->classes;
    for (int k = 0; m->classes == 3 && k < 3; k++)
        out->class_prob[k] = (float)(sum3[k] / n);
    return PN_OK;
}

pn_status pn_model_member_features(pn_model *m, int i, const pn_image *img, const float **feat, int *dim,
                                   pn_error *err)
{
    pn_model_member *mb = &m->members[i];
    if (!mb->feature_layer)
        return pn_fail(err, PN_EUNSUPPORTED, "%s: %sthe network has no pooled feature vector", mb->path, mb->prefix);
    pn_status st = pn_net_watch(mb->net, mb->feature_layer, err);
    if (!st) st = preprocess(mb, img, 1, err);
    if (!st) st = pn_net_forward(mb->net, mb->input, 1, PN_FWD_INFER, err);
    if (st)
        return st;
    *dim = pn_ood_features(mb);
    *feat = mb->feat;
    return *dim > 0 ? PN_OK : pn_fail(err, PN_ENOMEM, "out of memory");
}

/* With letterboxing the image fills only a centred rectangle of the input
 * (as pn_image_resize places it): keep that part of the map, stretched back
 * to the square, so the map lies over the image the way squash maps do. */
static void crop_cam_to_image(float *cam, int size, int img_w, int img_h)
{
    double s = fmin((double)size / img_w, (double)size / img_h);
    int fw = (int)lround(img_w * s), fh = (int)lround(img_h * s);
    fw = fw < 1 ? 1 : fw > size ? size : fw;
    fh = fh < 1 ? 1 : fh > size ? size : fh;
    int ox = (size - fw) / 2, oy = (size - fh) / 2;
    float *copy = malloc((size_t)size * size * sizeof(float));
    if (!copy)
        return; /* keep the uncropped map rather than fail the prediction */
    memcpy(copy, cam, (size_t)size * size * sizeof(float));
    for (int y = 0; y < size; y++) {
        int sy = oy + (int)((y + 0.5) * fh / size);
        for (int x = 0; x < size; x++)
            cam[y * size + x] = copy[sy * size + ox + (int)((x + 0.5) * fw / size)];
    }
    free(copy);
}

/* The member's unfused network, built once from the model file. */
static pn_status member_cam_net(pn_model *m, pn_model_member *mb, pn_error *err)
{
    if (mb->cam_net)
        return PN_OK;
    pn_st_file *f;
    pn_status st = pn_st_open(mb->path, &f, err);
    if (st)
        return st;
    st = pn_net_load_from(m->ctx, f, mb->path, mb->prefix, &mb->spec, PN_F32, &mb->cam_net, err);
    pn_st_close(f);
    if (!st)
        pn_net_freeze(mb->cam_net, "", 1); /* no weight gradients: only the map is wanted */
    return st;
}

/* Grad-CAM of the pneumonia evidence: the mean of the members' maps, each on
 * its identity view (class PNEUMONIA, or with three classes the likelier subtype). */
static pn_status compute_cam(pn_model *m, pn_prediction *out, int img_w, int img_h, pn_error *err)
{
    pn_status st = PN_OK;
    for (int i = 0; !st && i < m->n_members; i++) {
        pn_model_member *mb = &m->members[i];
        float *cam = NULL;
        int size = 0, target = mb->classes == 3 && mb->logits[2] > mb->logits[1] ? 2 : 1;
        st = member_cam_net(m, mb, err);
        if (!st)
            st = pn_gradcam(mb->cam_net, mb->input, target, NULL, &cam, &size, err);
        if (!st && mb->resize == PN_RESIZE_LETTERBOX)
            crop_cam_to_image(cam, size, img_w, img_h);
        if (!st && i == 0) {
            out->cam = cam;
            out->cam_size = size;
            continue;
        }
        if (!st && size != out->cam_size)
            st = pn_fail(err, PN_EUNSUPPORTED, "ensemble members with different input sizes have no common Grad-CAM grid");
        for (int k = 0; !st && k < size * size; k++)
            out->cam[k] += (cam[k] - out->cam[k]) / (float)(i + 1); /* running mean */
        free(cam);
    }
    return st;
}

pn_status pn_model_predict_image(pn_model *m, const pn_image *img, int want_cam, pn_prediction *out,
                                 pn_error *err)
{
    memset(out, 0, sizeof *out);
    out->width = img->src_w;
    out->height = img->src_h;
    out->is_color = img->is_color;
    image_warnings(img, out);
    pn_status st = model_probability(m, img, out, err);
    if (!st)
        pn_ood_judge(m, img, out);
    /* compute_cam reads each member's identity view, which holds this image */
    if (!st && want_cam)
        st = compute_cam(m, out, img->w, img->h, err);
    return st;
}

pn_status pn_model_predict_bytes(pn_model *m, const void *bytes, size_t size, int want_cam,
                                 pn_prediction *out, pn_error *err)
{
    memset(out, 0, sizeof *out);
    int in = m->info.input_size;
    pn_image img = {0};
    pn_status st = pn_image_decode_memory(bytes, size, "upload", in, in, &img, err);
    if (!st)
        st = pn_model_predict_image(m, &img, want_cam, out, err);
    pn_image_free(&img);
    return st;
}

pn_status pn_model_predict_file(pn_model *m, const char *path, int want_cam, pn_prediction *out,
                                pn_error *err)
{
    memset(out, 0, sizeof *out);
    int in = m->info.input_size;
    pn_image img = {0};
    pn_status st = pn_image_decode_file(path, in, in, &img, err);
    if (!st)
        st = pn_model_predict_image(m, &img, want_cam, out, err);
    pn_image_free(&img);
    return st;
}

pn_status pn_model_warm_up(pn_model *m, pn_error *err)
{
    pn_status st = PN_OK;
    for (int i = 0; !st && i < m->n_members; i++) {
        pn_model_member *mb = &m->members[i];
        int size = mb->spec.input_size;
        memset(mb->input, 0, (size_t)m->tta * size * size * mb->spec.channels * sizeof(float));
        st = pn_net_forward(mb->net, mb->input, m->tta, PN_FWD_INFER, err);
    }
    pn_prediction p = {0};
    if (!st)
        st = compute_cam(m, &p, m->info.input_size, m->info.input_size, err);
    pn_prediction_clear(&p);
    return st;
}

void pn_prediction_clear(pn_prediction *p)
{
    free(p->cam);
    p->cam = NULL;
    p->cam_size = 0;
}
