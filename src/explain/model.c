/* pn_model: a trained model file loaded for prediction. Holds a fused
 * inference network for speed and, on first Grad-CAM request, an unfused
 * copy that can backpropagate. */
#include <jansson.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pneumo/data.h"
#include "pneumo/gradcam.h"
#include "pneumo/model.h"
#include "pneumo/nn.h"
#include "pneumo/safetensors.h"
#include "pneumo/sha256.h"

struct pn_model {
    pn_ctx *ctx;
    char *path;
    pn_net *net;       /* fused, inference only */
    pn_net *cam_net;   /* unfused, for Grad-CAM; created lazily */
    int threads;
    float temperature; /* logits are divided by it (1 = uncalibrated) */
    pn_resize_mode resize;
    pn_model_info info;
    char id[17], *version, *arch_name, *metrics_json, *card_json;
    float *input;      /* one preprocessed image */
};

static int file_exists(const char *p)
{
    struct stat st;
    return p && stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* The bundled model: $PNEUMO_MODEL, the source tree, or the install prefix. */
static const char *default_model_path(char *buf, size_t size)
{
    const char *env = getenv("PNEUMO_MODEL");
    if (file_exists(env))
        return env;
    snprintf(buf, size, "%s/models/default.safetensors", PNEUMO_SOURCE_DIR);
    if (file_exists(buf))
        return buf;
    snprintf(buf, size, "/usr/local/share/pneumo/default.safetensors");
    return file_exists(buf) ? buf : NULL;
}

static char *dup_or(const char *s, const char *fallback) { return strdup(s ? s : fallback); }

/* Everything in __metadata__ except the large arch text, as a JSON object;
 * values that are JSON themselves (metrics, recipe) are embedded as such. */
static char *card_json(pn_st_file *f)
{
    json_t *obj = json_object();
    for (size_t i = 0; i < pn_st_metadata_count(f); i++) {
        const char *k = pn_st_metadata_key(f, i), *v = pn_st_metadata(f, k);
        if (!strcmp(k, "arch"))
            continue;
        json_t *parsed = (v[0] == '{' || v[0] == '[') ? json_loads(v, 0, NULL) : NULL;
        json_object_set_new(obj, k, parsed ? parsed : json_string(v));
    }
    char *text = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(obj);
    return text;
}

static pn_status read_metadata(pn_model *m, pn_st_file *f, pn_error *err)
{
    uint8_t digest[32];
    char hex[65];
    pn_status st = pn_sha256_file(m->path, digest, err);
    if (st)
        return st;
    pn_sha256_hex(digest, hex);
    memcpy(m->id, hex, 16);
    m->id[16] = '\0';
    const char *thr = pn_st_metadata(f, "threshold"), *temp = pn_st_metadata(f, "temperature");
    const char *trained = pn_st_metadata(f, "trained_at"), *resize = pn_st_metadata(f, "resize");
    float threshold = thr ? strtof(thr, NULL) : 0.5f;
    m->temperature = temp ? strtof(temp, NULL) : 1.0f;
    if (!(threshold >= 0 && threshold <= 1) || !(m->temperature > 0 && m->temperature <= 100))
        return pn_fail(err, PN_EFORMAT, "%s: threshold or temperature metadata out of range", m->path);
    m->resize = resize && !strcmp(resize, "letterbox") ? PN_RESIZE_LETTERBOX : PN_RESIZE_SQUASH;
    char version[96];
    snprintf(version, sizeof version, "pneumo-model-%s%s%s", pn_st_metadata(f, "pneumo_format_version"),
             trained ? "+" : "", trained ? trained : "");
    m->version = strdup(version);
    m->arch_name = dup_or(pn_st_metadata(f, "arch_name"), "custom");
    m->metrics_json = dup_or(pn_st_metadata(f, "metrics"), "{}");
    m->card_json = card_json(f);
    if (!m->version || !m->arch_name || !m->metrics_json || !m->card_json)
        return pn_fail(err, PN_ENOMEM, "out of memory");
    m->info = (pn_model_info){m->id, m->version, m->arch_name, pn_net_input_size(m->net),
                              pn_net_channels(m->net), threshold, m->metrics_json, m->card_json};
    return PN_OK;
}

pn_status pn_model_load(const char *path, int threads, pn_model **out, pn_error *err)
{
    *out = NULL;
    char buf[4096];
    if (!path && !(path = default_model_path(buf, sizeof buf)))
        return pn_fail(err, PN_EIO, "no model given and no bundled models/default.safetensors found "
                                    "(set PNEUMO_MODEL or pass --model)");
    pn_model *m = calloc(1, sizeof *m);
    if (!m)
        return pn_fail(err, PN_ENOMEM, "out of memory");
    m->threads = threads > 0 ? threads : omp_get_num_procs();
    omp_set_num_threads(m->threads);
    m->path = strdup(path);
    pn_st_file *f = NULL;
    pn_status st = pn_ctx_create(&m->ctx, err);
    if (!st)
        st = pn_net_load(m->ctx, path, PN_F32, &m->net, &f, err);
    if (!st)
        st = read_metadata(m, f, err);
    if (!st)
        st = pn_net_fuse_for_inference(m->net, err);
    int size = m->net ? pn_net_input_size(m->net) : 0;
    if (!st && !(m->input = malloc((size_t)size * size * 3 * sizeof(float))))
        st = pn_fail(err, PN_ENOMEM, "out of memory");
    pn_st_close(f);
    if (st) {
        pn_model_free(m);
        return st;
    }
    *out = m;
    return PN_OK;
}

void pn_model_free(pn_model *m)
{
    if (!m)
        return;
    pn_net_destroy(m->net);
    pn_net_destroy(m->cam_net);
    pn_ctx_destroy(m->ctx);
    free(m->path);
    free(m->version);
    free(m->arch_name);
    free(m->metrics_json);
    free(m->card_json);
    free(m->input);
    free(m);
}

const pn_model_info *pn_model_get_info(const pn_model *m) { return &m->info; }

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

static pn_status preprocess(pn_model *m, const pn_image *img, pn_error *err)
{
    int size = pn_net_input_size(m->net), ch = pn_net_channels(m->net);
    pn_image resized = {0};
    pn_status st = pn_image_resize(img, size, size, m->resize, &resized, err);
    if (st)
        return st;
    pn_norm norm = {.channels = ch};
    memcpy(norm.mean, pn_net_mean(m->net), (size_t)ch * sizeof(float));
    memcpy(norm.std, pn_net_std(m->net), (size_t)ch * sizeof(float));
    st = pn_normalize(resized.pixels, size, size, &norm, m->input, err);
    pn_image_free(&resized);
    return st;
}

static float probability(pn_model *m, const float *logits)
{
    int classes = pn_net_classes(m->net);
    float scaled[8], probs[8];
    if (classes == 1)
        return 1.0f / (1.0f + expf(-logits[0] / m->temperature));
    for (int k = 0; k < classes && k < 8; k++)
        scaled[k] = logits[k] / m->temperature;
    pn_softmax(scaled, 1, classes < 8 ? classes : 8, probs);
    return probs[1]; /* class 1 is PNEUMONIA */
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

static pn_status compute_cam(pn_model *m, pn_prediction *out, int img_w, int img_h, pn_error *err)
{
    if (!m->cam_net) {
        pn_status st = pn_net_load(m->ctx, m->path, PN_F32, &m->cam_net, NULL, err);
        if (st)
            return st;
        pn_net_freeze(m->cam_net, "", 1); /* no weight gradients: only the map is wanted */
    }
    pn_status st = pn_gradcam(m->cam_net, m->input, 1, NULL, &out->cam, &out->cam_size, err);
    if (!st && m->resize == PN_RESIZE_LETTERBOX)
        crop_cam_to_image(out->cam, out->cam_size, img_w, img_h);
    return st;
}

static pn_status predict_image(pn_model *m, const pn_image *img, int want_cam, pn_prediction *out,
                               pn_error *err)
{
    omp_set_num_threads(m->threads);
    out->width = img->src_w;
    out->height = img->src_h;
    out->is_color = img->is_color;
    image_warnings(img, out);
    pn_status st = preprocess(m, img, err);
    if (!st)
        st = pn_net_forward(m->net, m->input, 1, PN_FWD_INFER, err);
    if (st)
        return st;
    out->probability = probability(m, pn_net_logits(m->net));
    return want_cam ? compute_cam(m, out, img->w, img->h, err) : PN_OK;
}

pn_status pn_model_predict_bytes(pn_model *m, const void *bytes, size_t size, int want_cam,
                                 pn_prediction *out, pn_error *err)
{
    memset(out, 0, sizeof *out);
    int in = pn_net_input_size(m->net);
    pn_image img = {0};
    pn_status st = pn_image_decode_memory(bytes, size, "upload", in, in, &img, err);
    if (!st)
        st = predict_image(m, &img, want_cam, out, err);
    pn_image_free(&img);
    return st;
}

pn_status pn_model_predict_file(pn_model *m, const char *path, int want_cam, pn_prediction *out,
                                pn_error *err)
{
    memset(out, 0, sizeof *out);
    int in = pn_net_input_size(m->net);
    pn_image img = {0};
    pn_status st = pn_image_decode_file(path, in, in, &img, err);
    if (!st)
        st = predict_image(m, &img, want_cam, out, err);
    pn_image_free(&img);
    return st;
}

pn_status pn_model_warm_up(pn_model *m, pn_error *err)
{
    int size = pn_net_input_size(m->net);
    memset(m->input, 0, (size_t)size * size * pn_net_channels(m->net) * sizeof(float));
    omp_set_num_threads(m->threads);
    pn_prediction p = {0};
    pn_status st = pn_net_forward(m->net, m->input, 1, PN_FWD_INFER, err);
    if (!st)
        st = compute_cam(m, &p, pn_net_input_size(m->net), pn_net_input_size(m->net), err);
    pn_prediction_clear(&p);
    return st;
}

void pn_prediction_clear(pn_prediction *p)
{
    free(p->cam);
    p->cam = NULL;
    p->cam_size = 0;
}
