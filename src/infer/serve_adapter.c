/* pn_model_pool: pn_model instances behind pn_server's pn_predictor. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pneumo/disclaimer.h"
#include "pneumo/infer_serve.h"

/* Overlays larger than this (long side) are shrunk: the PNG travels in JSON. */

struct pn_model_pool {
    pn_model **slots; /* [n_slots], one instance per prediction slot */
    int n_slots;
    char *model_json; /* body of GET /api/v1/model */
    pn_predictor predictor;
};

static void add_warning(pn_prediction *p, const char *text)
{
    if (p->n_warnings < PN_MAX_WARNINGS)
        snprintf(p->warnings[p->n_warnings++], sizeof p->warnings[0], "%s", text);
}

/* Draws the Grad-CAM over the uploaded image itself (not the model input). */
static pn_status render_overlay(const void *bytes, size_t size, const pn_prediction *p, pn_predict_result *out,
                                pn_error *err)
{
    pn_image img = {0};
    pn_status st = pn_image_decode_memory(bytes, size, "upload", PN_CAM_DISPLAY_SIDE, PN_CAM_DISPLAY_SIDE, &img, err);
    if (!st)
        st = pn_prediction_cam_pngs(&img, p, &out->overlay_png, &out->overlay_png_size, &out->heatmap_png,
                                    &out->heatmap_png_size, err);
    pn_image_free(&img);
    return st;
}

static pn_status predict_slot(void *user, int slot, const void *bytes, size_t size, int want_cam,
                              pn_predict_result *out, pn_error *err)
{
    pn_model_pool *pool = user;
    memset(out, 0, sizeof *out);
    pn_status st = pn_model_predict_bytes(pool->slots[slot], bytes, size, want_cam, &out->pred, err);
    if (st)
        return st;
    if (want_cam && out->pred.cam) {
        pn_error overlay_err = {0};
        /* A failed drawing should not cost the prediction: say so instead. */
        if (render_overlay(bytes, size, &out->pred, out, &overlay_err)) {
            char msg[160];
            snprintf(msg, sizeof msg, "Grad-CAM overlay failed: %.120s", overlay_err.msg);
            add_warning(&out->pred, msg);
        }
    }
    pn_prediction_clear(&out->pred);
    return PN_OK;
}

static json_t *json_or_empty(const char *text)
{
    json_t *j = text ? json_loads(text, 0, NULL) : NULL;
    return j ? j : json_object();
}

static char *model_json(const pn_model_info *info, int n_slots)
{
    json_t *root = json_pack("{s:s,s:s,s:s,s:i,s:i,s:f,s:[s,s],s:o,s:o,s:i,s:s}", "id", info->id,
                             "version", info->version, "arch", info->arch_name, "input_size",
                             info->input_size, "channels", info->channels, "threshold",
                             (double)info->threshold, "classes", "NORMAL", "PNEUMONIA", "metrics",
                             json_or_empty(info->metrics_json), "card", json_or_empty(info->card_json),
                             "workers", n_slots, "disclaimer", PN_DISCLAIMER);
    char *text = root ? json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
    json_decref(root);
    return text;
}

pn_status pn_model_pool_create(const char *path, int n_slots, pn_model_pool **out, pn_error *err)
{
    *out = NULL;
    if (n_slots < 1)
        return pn_fail(err, PN_EINVAL, "a model pool needs at least one slot (got %d)", n_slots);
    pn_model_pool *pool = calloc(1, sizeof *pool);
    if (!pool || !(pool->slots = calloc((size_t)n_slots, sizeof *pool->slots))) {
        free(pool);
        return pn_fail(err, PN_ENOMEM, "out of memory");
    }
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int threads_each = cores > n_slots ? (int)(cores / n_slots) : 1;
    pn_status st = PN_OK;
    for (; !st && pool->n_slots < n_slots; pool->n_slots++) {
        st = pn_model_load(path, threads_each, &pool->slots[pool->n_slots], err);
        if (!st) /* build the kernels now, not on the first user's request */
            st = pn_model_warm_up(pool->slots[pool->n_slots], err);
    }
    const pn_model_info *info = st ? NULL : pn_model_get_info(pool->slots[0]);
    if (!st && !(pool->model_json = model_json(info, n_slots)))
        st = pn_fail(err, PN_ENOMEM, "out of memory describing the model");
    if (st) {
        pn_model_pool_free(pool);
        return st;
    }
    pool->predictor = (pn_predictor){.user = pool, .n_slots = n_slots, .predict = predict_slot,
                                     .model_json = pool->model_json, .model_id = info->id,
                                     .model_version = info->version, .default_threshold = info->threshold};
    *out = pool;
    return PN_OK;
}

const pn_predictor *pn_model_pool_predictor(const pn_model_pool *p) { return &p->predictor; }

const pn_model_info *pn_model_pool_info(const pn_model_pool *p) { return pn_model_get_info(p->slots[0]); }

void pn_model_pool_free(pn_model_pool *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->n_slots; i++)
        pn_model_free(p->slots[i]);
    free(p->slots);
    free(p->model_json);
    free(p);
}
