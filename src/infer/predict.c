/* Prediction with a pn_model: preprocessing as in training, temperature-
 * scaled P(pneumonia) averaged over the model's members, image warnings and
 * the Grad-CAM map. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "infer/internal.h"
#include "pneumo/gradcam.h"

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

/* img -> mb->input, resized and normalised as the member was trained. */
static pn_status preprocess(pn_model_member *mb, const pn_image *img, pn_error *err)
{
    int size = pn_net_input_size(mb->net), ch = pn_net_channels(mb->net);
    pn_image resized = {0};
    pn_status st = pn_image_resize(img, size, size, mb->resize, &resized, err);
    if (st)
        return st;
    pn_norm norm = {.channels = ch};
    memcpy(norm.mean, pn_net_mean(mb->net), (size_t)ch * sizeof(float));
    memcpy(norm.std, pn_net_std(mb->net), (size_t)ch * sizeof(float));
    st = pn_normalize(resized.pixels, size, size, &norm, mb->input, err);
    pn_image_free(&resized);
    return st;
}

/* P(pneumonia) from one member's logits: softmax of logits / temperature,
 * then 1 - P(NORMAL), i.e. the mass of every class that is not class 0. */
static float member_probability(const pn_model_member *mb, const float *logits)
{
    float scaled[PN_MODEL_CLASSES], probs[PN_MODEL_CLASSES];
    for (int k = 0; k < PN_MODEL_CLASSES; k++)
        scaled[k] = logits[k] / mb->temperature;
    pn_softmax(scaled, 1, PN_MODEL_CLASSES, probs);
    float p = 0;
    for (int k = 1; k < PN_MODEL_CLASSES; k++)
        p += probs[k];
    return p;
}

/* The model's P(pneumonia): the mean of its members' probabilities. */
static pn_status model_probability(pn_model *m, const pn_image *img, float *prob, pn_error *err)
{
    double sum = 0;
    for (int i = 0; i < m->n_members; i++) {
        pn_model_member *mb = &m->members[i];
        pn_status st = preprocess(mb, img, err);
        if (!st)
            st = pn_net_forward(mb->net, mb->input, 1, PN_FWD_INFER, err);
        if (st)
            return st;
        sum += member_probability(mb, pn_net_logits(mb->net));
    }
    *prob = (float)(sum / m->n_members);
    return PN_OK;
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

/* Grad-CAM of the PNEUMONIA class on the first member's preprocessed input. */
static pn_status compute_cam(pn_model *m, pn_prediction *out, int img_w, int img_h, pn_error *err)
{
    pn_model_member *mb = &m->members[0];
    if (!mb->cam_net) {
        pn_status st = pn_net_load(m->ctx, mb->path, PN_F32, &mb->cam_net, NULL, err);
        if (st)
            return st;
        pn_net_freeze(mb->cam_net, "", 1); /* no weight gradients: only the map is wanted */
    }
    pn_status st = pn_gradcam(mb->cam_net, mb->input, 1, NULL, &out->cam, &out->cam_size, err);
    if (!st && mb->resize == PN_RESIZE_LETTERBOX)
        crop_cam_to_image(out->cam, out->cam_size, img_w, img_h);
    return st;
}

pn_status pn_model_predict_image(pn_model *m, const pn_image *img, int want_cam, pn_prediction *out,
                                 pn_error *err)
{
    memset(out, 0, sizeof *out);
    omp_set_num_threads(m->threads);
    out->width = img->src_w;
    out->height = img->src_h;
    out->is_color = img->is_color;
    image_warnings(img, out);
    pn_status st = model_probability(m, img, &out->probability, err);
    /* compute_cam reads members[0]'s input, which holds this image while the
     * model has one member (an ensemble would preprocess it again here). */
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
    omp_set_num_threads(m->threads);
    pn_status st = PN_OK;
    for (int i = 0; !st && i < m->n_members; i++) {
        pn_model_member *mb = &m->members[i];
        int size = pn_net_input_size(mb->net);
        memset(mb->input, 0, (size_t)size * size * pn_net_channels(mb->net) * sizeof(float));
        st = pn_net_forward(mb->net, mb->input, 1, PN_FWD_INFER, err);
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
