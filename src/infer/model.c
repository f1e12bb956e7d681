/* pn_model: a trained model file loaded for prediction (loading, metadata).
 * Each member holds a fused inference network for speed and, on the first
 * Grad-CAM request, an unfused copy that can backpropagate (predict.c). */
#include <jansson.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "infer/internal.h"
#include "pneumo/os.h"
#include "pneumo/safetensors.h"
#include "pneumo/sha256.h"

static int file_exists(const char *p)
{
    struct stat st;
    return p && stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* The bundled model: $PNEUMO_MODEL, else default.safetensors among the
 * installed data files or in the checkout's models/ (pn_data_file). */
static const char *default_model_path(char *buf, size_t size)
{
    const char *env = getenv("PNEUMO_MODEL");
    if (file_exists(env))
        return env;
    return pn_data_file("default.safetensors", buf, size);
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

/* The head and the calibration of a loaded member network. */
static pn_status check_member(pn_model_member *mb, pn_error *err)
{
    if (!(mb->temperature > 0 && mb->temperature <= 100))
        return pn_fail(err, PN_EFORMAT, "%s: %stemperature out of range", mb->path, mb->prefix);
    mb->classes = pn_net_classes(mb->net);
    if (mb->classes != 2 && mb->classes != 3)
        return pn_fail(err, PN_EUNSUPPORTED,
                       "%s: %sthe network has %d output class%s; pneumo predicts with 2-class "
                       "(NORMAL, PNEUMONIA) or 3-class (NORMAL, BACTERIAL, VIRAL) models",
                       mb->path, mb->prefix, mb->classes, mb->classes == 1 ? "" : "es");
    return PN_OK;
}

/* A single-network file: its spec, calibration and preprocessing are the top-level metadata. */
static pn_status single_member(pn_model_member *mb, pn_st_file *f, pn_error *err)
{
    pn_status st = pn_net_spec_from_metadata(f, mb->path, &mb->spec, err);
    if (st)
        return st;
    const char *temp = pn_st_metadata(f, "temperature"), *resize = pn_st_metadata(f, "resize");
    const char *clahe = pn_st_metadata(f, "clahe");
    mb->temperature = temp ? strtof(temp, NULL) : 1.0f;
    mb->resize = resize && !strcmp(resize, "letterbox") ? PN_RESIZE_LETTERBOX : PN_RESIZE_SQUASH;
    mb->clahe = clahe && !strcmp(clahe, "1");
    if (!(mb->prefix = strdup("")) || !(mb->arch = strdup(mb->spec.arch)))
        return pn_fail(err, PN_ENOMEM, "out of memory");
    mb->spec.arch = mb->arch;
    return PN_OK;
}

static int json_floats(json_t *a, float *v, int n)
{
    if (json_array_size(a) != (size_t)n)
        return -1;
    for (int i = 0; i < n; i++) {
        json_t *x = json_array_get(a, (size_t)i);
        if (!json_is_number(x))
            return -1;
        v[i] = (float)json_number_value(x);
    }
    return 0;
}

/* One entry of an ensemble's "members" array (pn_ensemble_write's format). */
static pn_status ensemble_member(pn_model_member *mb, json_t *j, pn_error *err)
{
    const char *prefix = NULL, *arch = NULL, *resize = "squash";
    json_t *mean = NULL, *std = NULL;
    double temperature = 1;
    int size = 0, channels = 0, classes = 0, clahe = 0;
    if (json_unpack(j, "{s:s, s:s, s:i, s:i, s:i, s:o, s:o, s:F, s?:s, s?:b}", "prefix", &prefix, "arch", &arch,
                    "input_size", &size, "channels", &channels, "classes", &classes, "mean", &mean,
                    "std", &std, "temperature", &temperature, "resize", &resize, "clahe", &clahe) ||
        size < 8 || size > 4096 || (channels != 1 && channels != 3) ||
        json_floats(mean, mb->spec.mean, channels) || json_floats(std, mb->spec.std, channels) ||
        strncmp(prefix, "m", 1) || !strchr(prefix, '/'))
        return pn_fail(err, PN_EFORMAT, "%s: an ensemble member's description is incomplete or invalid", mb->path);
    mb->spec.input_size = size;
    mb->spec.channels = channels;
    mb->spec.classes = classes;
    mb->temperature = (float)temperature;
    mb->resize = !strcmp(resize, "letterbox") ? PN_RESIZE_LETTERBOX : PN_RESIZE_SQUASH;
    mb->clahe = clahe;
    if (!(mb->prefix = strdup(prefix)) || !(mb->arch = strdup(arch)))
        return pn_fail(err, PN_ENOMEM, "out of memory");
    mb->spec.arch = mb->arch;
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

/* Builds the member's network from the open file and its buffers. */
static pn_status load_member_net(pn_model *m, pn_model_member *mb, pn_st_file *f, pn_error *err)
{
    pn_status st = pn_net_load_from(m->ctx, f, mb->path, mb->prefix, &mb->spec, PN_F32, &mb->net, err);
    if (!st) st = check_member(mb, err);
    if (!st) st = pn_net_fuse_for_inference(mb->net, err);
    if (!st) st = pn_ood_load_member(mb, f, err);
    if (st)
        return st;
    size_t plane = (size_t)mb->spec.input_size * mb->spec.input_size;
    mb->input = malloc(PN_TTA_MAX_VIEWS * plane * mb->spec.channels * sizeof(float));
    mb->view = malloc(plane);
    return mb->input && mb->view ? PN_OK : pn_fail(err, PN_ENOMEM, "out of memory");
}

/* Members from the file: the "members" array of an ensemble, or the file's one network. */
static pn_status load_members(pn_model *m, const char *path, pn_st_file *f, pn_error *err)
{
    const char *text = pn_st_metadata(f, "members");
    json_t *list = text ? json_loads(text, 0, NULL) : NULL;
    int n = text ? (int)json_array_size(list) : 1;
    pn_status st = PN_OK;
    if (text && (n < 1 || n > PN_MODEL_MAX_MEMBERS))
        st = pn_fail(err, PN_EFORMAT, "%s: 'members' must list 1 to %d networks", path, PN_MODEL_MAX_MEMBERS);
    else if (!(m->members = calloc((size_t)n, sizeof *m->members)))
        st = pn_fail(err, PN_ENOMEM, "out of memory");
    m->classes = 3;
    for (int i = 0; !st && i < n; i++) {
        pn_model_member *mb = &m->members[i];
        m->n_members = i + 1;
        if (!(mb->path = strdup(path)))
            st = pn_fail(err, PN_ENOMEM, "out of memory");
        if (!st)
            st = text ? ensemble_member(mb, json_array_get(list, (size_t)i), err) : single_member(mb, f, err);
        if (!st)
            st = load_member_net(m, mb, f, err);
        if (!st && mb->classes != 3)
            m->classes = 2;
    }
    json_decref(list);
    return st;
}

/* Test-time views from the file's "tta" key (1 when absent). */
static pn_status read_tta(pn_model *m, pn_st_file *f, const char *path, pn_error *err)
{
    const char *tta = pn_st_metadata(f, "tta");
    char *end = NULL;
    long v = tta ? strtol(tta, &end, 10) : 1;
    if (tta && (*end || v < 1 || v > PN_TTA_MAX_VIEWS))
        return pn_fail(err, PN_EFORMAT, "%s: 'tta' must be 1 to %d views", path, PN_TTA_MAX_VIEWS);
    m->tta = (int)v;
    return PN_OK;
}

pn_status pn_model_load(const char *path, int threads, pn_model **out, pn_error *err)
{
    *out = NULL;
    char buf[4096];
    if (!path && !(path = default_model_path(buf, sizeof buf)))
        return pn_fail(err, PN_EIO, "no model given and no bundled default.safetensors found in "
                                    "share/pneumo/ beside the binary's bin/ or in the source tree's "
                                    "models/ (set PNEUMO_MODEL or pass --model)");
    pn_model *m = calloc(1, sizeof *m);
    if (!m)
        return pn_fail(err, PN_ENOMEM, "out of memory");
    pn_ctx_options copt = {.threads = threads > 0 ? threads : omp_get_num_procs()};
    pn_st_file *f = NULL;
    pn_status st = pn_ctx_create_with(&copt, &m->ctx, err);
    if (!st)
        st = pn_st_open(path, &f, err);
    if (!st)
        st = load_members(m, path, f, err);
    if (!st)
        st = read_tta(m, f, path, err);
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

pn_status pn_model_set_tta(pn_model *m, int views, pn_error *err)
{
    if (views < 1 || views > PN_TTA_MAX_VIEWS)
        return pn_fail(err, PN_EINVAL, "test-time augmentation takes 1 to %d views, not %d", PN_TTA_MAX_VIEWS, views);
    m->tta = views;
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
        free(mb->prefix);
        free(mb->arch);
        free(mb->input);
        free(mb->view);
        pn_ood_stats_free(&mb->ood);
        free(mb->feat);
        free(mb->feature_layer);
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
int pn_model_tta(const pn_model *m) { return m->tta; }
int pn_model_members(const pn_model *m) { return m->n_members; }
int pn_model_classes(const pn_model *m) { return m->classes; }
