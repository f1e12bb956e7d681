/* pn_model: a trained model file loaded for prediction (loading, metadata).
 * Each member holds a fused inference network for speed and, on the first
 * Grad-CAM request, an unfused copy that can backpropagate (predict.c). */
#include <jansson.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "infer/internal.h"
#include "pneumo/safetensors.h"
#include "pneumo/sha256.h"

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

/* The member's calibration and preprocessing from the file's metadata. */
static pn_status read_member_metadata(pn_model_member *mb, pn_st_file *f, pn_error *err)
{
    const char *temp = pn_st_metadata(f, "temperature"), *resize = pn_st_metadata(f, "resize");
    mb->temperature = temp ? strtof(temp, NULL) : 1.0f;
    if (!(mb->temperature > 0 && mb->temperature <= 100))
        return pn_fail(err, PN_EFORMAT, "%s: temperature metadata out of range", mb->path);
    mb->resize = resize && !strcmp(resize, "letterbox") ? PN_RESIZE_LETTERBOX : PN_RESIZE_SQUASH;
    int classes = pn_net_classes(mb->net);
    if (classes != PN_MODEL_CLASSES)
        return pn_fail(err, PN_EUNSUPPORTED,
                       "%s: the network has %d output class%s; pneumo predicts with 2-class "
                       "(NORMAL, PNEUMONIA) models",
                       mb->path, classes, classes == 1 ? "" : "es");
    return PN_OK;
}

/* The model's identity and stored decision rule, shown by every front end. */
static pn_status read_model_metadata(pn_model *m, pn_st_file *f, pn_error *err)
{
    const pn_model_member *mb = &m->members[0];
    uint8_t digest[32];
    char hex[65];
    pn_status st = pn_sha256_file(mb->path, digest, err);
    if (st)
        return st;
    pn_sha256_hex(digest, hex);
    memcpy(m->id, hex, 16);
    m->id[16] = '\0';
    const char *thr = pn_st_metadata(f, "threshold"), *trained = pn_st_metadata(f, "trained_at");
    float threshold = thr ? strtof(thr, NULL) : 0.5f;
    if (!(threshold >= 0 && threshold <= 1))
        return pn_fail(err, PN_EFORMAT, "%s: threshold metadata out of range", mb->path);
    char version[96];
    snprintf(version, sizeof version, "pneumo-model-%s%s%s", pn_st_metadata(f, "pneumo_format_version"),
             trained ? "+" : "", trained ? trained : "");
    m->version = strdup(version);
    m->arch_name = dup_or(pn_st_metadata(f, "arch_name"), "custom");
    m->metrics_json = dup_or(pn_st_metadata(f, "metrics"), "{}");
    m->card_json = card_json(f);
    if (!m->version || !m->arch_name || !m->metrics_json || !m->card_json)
        return pn_fail(err, PN_ENOMEM, "out of memory");
    m->info = (pn_model_info){m->id, m->version, m->arch_name, pn_net_input_size(mb->net),
                              pn_net_channels(mb->net), threshold, m->metrics_json, m->card_json};
    return PN_OK;
}

/* Loads one member from path; *meta stays open for the model's metadata. */
static pn_status load_member(pn_model *m, pn_model_member *mb, const char *path, pn_st_file **meta,
                             pn_error *err)
{
    if (!(mb->path = strdup(path)))
        return pn_fail(err, PN_ENOMEM, "out of memory");
    pn_status st = pn_net_load(m->ctx, path, PN_F32, &mb->net, meta, err);
    if (!st)
        st = read_member_metadata(mb, *meta, err);
    if (!st)
        st = pn_net_fuse_for_inference(mb->net, err);
    if (st)
        return st;
    int size = pn_net_input_size(mb->net), ch = pn_net_channels(mb->net);
    if (!(mb->input = malloc((size_t)size * size * ch * sizeof(float))))
        return pn_fail(err, PN_ENOMEM, "out of memory");
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
    if (!m || !(m->members = calloc(1, sizeof *m->members))) {
        free(m);
        return pn_fail(err, PN_ENOMEM, "out of memory");
    }
    m->n_members = 1;
    pn_ctx_options copt = {.threads = threads > 0 ? threads : omp_get_num_procs()};
    pn_st_file *f = NULL;
    pn_status st = pn_ctx_create_with(&copt, &m->ctx, err);
    if (!st)
        st = load_member(m, &m->members[0], path, &f, err);
    if (!st)
        st = read_model_metadata(m, f, err);
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
    for (int i = 0; i < m->n_members; i++) {
        pn_model_member *mb = &m->members[i];
        pn_net_destroy(mb->net);
        pn_net_destroy(mb->cam_net);
        free(mb->path);
        free(mb->input);
    }
    free(m->members);
    pn_ctx_destroy(m->ctx);
    free(m->version);
    free(m->arch_name);
    free(m->metrics_json);
    free(m->card_json);
    free(m);
}

const pn_model_info *pn_model_get_info(const pn_model *m) { return &m->info; }
