/* Moving parameters in and out of safetensors files: pneumo model files, and
 * weight import from other files (torchvision-named, BN-folded pretrained). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/internal.h"
#include "nn/layer_batchnorm.h"
#include "pneumo/safetensors.h"

/* ---- import by name ---- */

/* Applies "from=to;from2=to2" prefix rewrites to a file tensor name. */
static void map_name(const char *map, const char *name, char *out, size_t size)
{
    snprintf(out, size, "%s", name);
    if (!map)
        return;
    const char *rule = map;
    while (*rule) {
        const char *eq = strchr(rule, '='), *end = strchr(rule, ';');
        if (!end)
            end = rule + strlen(rule);
        if (eq && eq < end) {
            size_t from_len = (size_t)(eq - rule);
            if (!strncmp(name, rule, from_len)) {
                snprintf(out, size, "%.*s%s", (int)(end - eq - 1), eq + 1, name + from_len);
                return;
            }
        }
        rule = *end ? end + 1 : end;
    }
}

static int same_shape(const pn_param *p, const pn_st_tensor *t)
{
    if (t->ndim != p->ndim)
        return 0;
    for (int i = 0; i < p->ndim; i++)
        if (t->shape[i] != p->shape[i])
            return 0;
    return 1;
}

/* A 3-channel first conv loaded into a 1-channel network: a grayscale image
 * replicated to RGB gives the same response as the summed kernel. */
static int is_rgb_to_gray(const pn_param *p, const pn_st_tensor *t)
{
    return p->ndim == 4 && t->ndim == 4 && p->shape[1] == 1 && t->shape[1] == 3 &&
           t->shape[0] == p->shape[0] && t->shape[2] == p->shape[2] && t->shape[3] == p->shape[3];
}

static pn_status copy_tensor(pn_param *p, const pn_st_tensor *t, pn_error *err)
{
    if (same_shape(p, t))
        return pn_st_to_f32(t, p->data, err);
    if (!is_rgb_to_gray(p, t))
        return pn_fail(err, PN_EFORMAT, "%s: shape in file does not match the network", p->name);
    float *rgb = malloc(t->numel * sizeof(float));
    if (!rgb)
        return pn_fail(err, PN_ENOMEM, "out of memory");
    pn_status st = pn_st_to_f32(t, rgb, err);
    size_t plane = (size_t)p->shape[2] * p->shape[3];
    for (int o = 0; !st && o < p->shape[0]; o++)
        for (size_t k = 0; k < plane; k++)
            p->data[(size_t)o * plane + k] = rgb[(o * 3 + 0) * plane + k] +
                                             rgb[(o * 3 + 1) * plane + k] + rgb[(o * 3 + 2) * plane + k];
    free(rgb);
    return st;
}

/* "X.bias" for a conv without bias that feeds batch norm X.bn: a BN-folded
 * file. The BN becomes identity plus that bias (gamma 1, mean 0, var 1-eps). */
static pn_param *folded_bias_target(pn_net *net, const char *name, float *eps_out)
{
    size_t len = strlen(name);
    if (len < 6 || strcmp(name + len - 5, ".bias"))
        return NULL;
    char bn_layer[160];
    snprintf(bn_layer, sizeof bn_layer, "%.*s.bn", (int)(len - 5), name);
    for (int i = 1; i < net->n_layers; i++) {
        pn_layer *l = &net->layers[i];
        if (l->ops == &pn_layer_batchnorm_ops && !strcmp(l->name, bn_layer)) {
            *eps_out = pn_batchnorm_eps(l);
            return pn_layer_param(net, l, 1);
        }
    }
    return NULL;
}

static void set_identity_bn(pn_net *net, pn_param *beta, float eps)
{
    char base[160];
    snprintf(base, sizeof base, "%.*s", (int)(strlen(beta->name) - 5), beta->name);
    char name[200];
    snprintf(name, sizeof name, "%s.weight", base);
    pn_param *gamma = pn_net_find_param(net, name);
    snprintf(name, sizeof name, "%s.running_mean", base);
    pn_param *mean = pn_net_find_param(net, name);
    snprintf(name, sizeof name, "%s.running_var", base);
    pn_param *var = pn_net_find_param(net, name);
    for (size_t i = 0; gamma && mean && var && i < gamma->numel; i++) {
        gamma->data[i] = 1;
        mean->data[i] = 0;
        var->data[i] = 1 - eps;
    }
}

typedef struct import_report {
    char *text;
    size_t len, cap;
    int loaded, unused, missing;
} import_report;

static void report_line(import_report *r, const char *fmt, const char *name)
{
    char line[256];
    int n = snprintf(line, sizeof line, fmt, name);
    if (n <= 0)
        return;
    if (r->len + (size_t)n + 1 > r->cap) {
        size_t cap = (r->cap + (size_t)n + 1) * 2;
        char *grown = realloc(r->text, cap);
        if (!grown)
            return;
        r->text = grown;
        r->cap = cap;
    }
    memcpy(r->text + r->len, line, (size_t)n + 1);
    r->len += (size_t)n;
}

static pn_status import_one(pn_net *net, const pn_st_tensor *t, const char *map,
                            const char *skip_prefix, uint8_t *loaded, import_report *r, pn_error *err)
{
    char name[256];
    map_name(map, t->name, name, sizeof name);
    pn_param *p = pn_net_find_param(net, name);
    float eps = 1e-5f;
    int folded = 0;
    if (!p && (p = folded_bias_target(net, name, &eps)))
        folded = 1;
    if (!p) {
        r->unused++;
        report_line(r, "unused: %s\n", t->name);
        return PN_OK;
    }
    if (skip_prefix && *skip_prefix && !strncmp(p->name, skip_prefix, strlen(skip_prefix)))
        return PN_OK;
    pn_status st = copy_tensor(p, t, err);
    if (st)
        return pn_error_prefix(err, st, "importing %s: ", t->name);
    if (folded)
        set_identity_bn(net, p, eps);
    loaded[p - net->params] = 1;
    r->loaded++;
    return PN_OK;
}

pn_status pn_net_load_weights(pn_net *net, const char *path, const char *map,
                              const char *skip_prefix, char **report, pn_error *err)
{
    pn_st_file *f;
    pn_status st = pn_st_open(path, &f, err);
    if (st)
        return st;
    import_report r = {0};
    uint8_t *loaded = calloc(net->n_params ? net->n_params : 1, 1);
    if (!loaded)
        st = pn_fail(err, PN_ENOMEM, "out of memory");
    for (size_t i = 0; !st && i < pn_st_count(f); i++)
        st = import_one(net, pn_st_get(f, i), map, skip_prefix, loaded, &r, err);
    for (size_t i = 0; !st && i < net->n_params; i++) {
        const char *n = net->params[i].name;
        size_t len = strlen(n);
        int bn_stat = len > 5 && (strstr(n, ".bn.") != NULL); /* set from folded biases */
        if (!loaded[i] && !bn_stat) {
            r.missing++;
            report_line(&r, "not in file (kept initial value): %s\n", n);
        }
    }
    char summary[160];
    snprintf(summary, sizeof summary, "loaded %d tensors, %d in the file unused, %d of ours not in the file\n",
             r.loaded, r.unused, r.missing);
    report_line(&r, "%s", summary);
    free(loaded);
    pn_st_close(f);
    if (!st && r.loaded == 0)
        st = pn_fail(err, PN_EFORMAT, "%s: no tensor matches this network's parameter names", path);
    if (report && !st)
        *report = r.text;
    else
        free(r.text);
    if (!st)
        pn_net_params_changed(net);
    return st;
}

/* ---- pneumo model files ---- */

static pn_status add_meta_int(pn_st_writer *w, const char *key, int v, pn_error *err)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%d", v);
    return pn_st_writer_set_metadata(w, key, buf, err);
}

static pn_status add_meta_floats(pn_st_writer *w, const char *key, const float *v, int n, pn_error *err)
{
    char buf[128];
    size_t len = 0;
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%.9g", i ? "," : "", v[i]);
    return pn_st_writer_set_metadata(w, key, buf, err);
}

int pn_param_stored_bf16(const pn_param *p) { return !p->is_buffer && p->ndim > 1; }

pn_status pn_net_save(const pn_net *net, const char *path, const pn_kv *meta, size_t n_meta,
                      int bf16_weights, pn_error *err)
{
    if (!net->can_train)
        return pn_fail(err, PN_EINVAL, "a network fused for inference cannot be saved");
    pn_st_writer *w;
    pn_status st = pn_st_writer_create(&w, err);
    if (st)
        return st;
    for (size_t i = 0; !st && i < net->n_params; i++) {
        const pn_param *p = &net->params[i];
        int64_t shape[4];
        for (int k = 0; k < p->ndim; k++)
            shape[k] = p->shape[k];
        pn_st_dtype dt = bf16_weights && pn_param_stored_bf16(p) ? PN_ST_BF16 : PN_ST_F32;
        st = pn_st_writer_add_f32(w, p->name, dt, p->ndim, shape, p->data, err);
    }
    if (!st) st = pn_st_writer_set_metadata(w, "format", "pneumo", err);
    if (!st) st = pn_st_writer_set_metadata(w, "pneumo_format_version", PN_MODEL_FORMAT_VERSION, err);
    if (!st) st = pn_st_writer_set_metadata(w, "arch", net->cfg_text, err);
    if (!st) st = add_meta_int(w, "input_size", net->input_size, err);
    if (!st) st = add_meta_int(w, "channels", net->channels, err);
    if (!st) st = add_meta_int(w, "classes", net->classes, err);
    if (!st) st = add_meta_floats(w, "mean", net->mean, net->channels, err);
    if (!st) st = add_meta_floats(w, "std", net->std, net->channels, err);
    for (size_t i = 0; !st && i < n_meta; i++)
        st = pn_st_writer_set_metadata(w, meta[i].key, meta[i].value, err);
    if (!st)
        st = pn_st_writer_save(w, path, err);
    pn_st_writer_destroy(w);
    return st;
}

static pn_status meta_int(pn_st_file *f, const char *path, const char *key, int *out, pn_error *err)
{
    const char *v = pn_st_metadata(f, key);
    char *end;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || *end || x <= 0 || x > 100000)
        return pn_fail(err, PN_EFORMAT, "%s: metadata '%s' missing or invalid", path, key);
    *out = (int)x;
    return PN_OK;
}

/* A network's own tensors are the file's tensors named prefix + a name
 * without '/' (parameter names have none): other parts of a model file, e.g.
 * other ensemble members "m1/..." or statistics "ood/..." and "m0/ood/...",
 * are not its own. */
static int in_scope(const char *name, const char *prefix)
{
    size_t n = strlen(prefix);
    return !strncmp(name, prefix, n) && !strchr(name + n, '/');
}

static pn_status load_tensors(pn_net *net, pn_st_file *f, const char *path, const char *prefix,
                              pn_error *err)
{
    size_t plen = strlen(prefix);
    for (size_t i = 0; i < pn_st_count(f); i++) {
        const pn_st_tensor *t = pn_st_get(f, i);
        if (!in_scope(t->name, prefix))
            continue;
        pn_param *p = pn_net_find_param(net, t->name + plen);
        if (!p)
            return pn_fail(err, PN_EFORMAT, "%s: unknown tensor '%s' for this architecture", path, t->name);
        if (!same_shape(p, t))
            return pn_fail(err, PN_EFORMAT, "%s: tensor '%s' has the wrong shape", path, t->name);
        pn_status st = pn_st_to_f32(t, p->data, err);
        if (st)
            return pn_error_prefix(err, st, "%s: ", path);
        for (size_t k = 0; k < p->numel; k++)
            if (!isfinite(p->data[k]))
                return pn_fail(err, PN_EFORMAT, "%s: tensor '%s' contains NaN or infinity", path, t->name);
    }
    for (size_t i = 0; i < net->n_params; i++) {
        char full[256];
        snprintf(full, sizeof full, "%s%s", prefix, net->params[i].name);
        if (!pn_st_find(f, full))
            return pn_fail(err, PN_EFORMAT, "%s: tensor '%s' is missing", path, full);
    }
    return PN_OK;
}

pn_status pn_net_load_from(pn_ctx *ctx, struct pn_st_file *f, const char *path, const char *prefix,
                           const pn_net_spec *spec, pn_dtype precision, pn_net **out, pn_error *err)
{
    *out = NULL;
    pn_net_options opt = {.precision = precision, .input_size = spec->input_size,
                          .channels = spec->channels, .classes = spec->classes};
    if (opt.channels != 1 && opt.channels != 3)
        return pn_fail(err, PN_EFORMAT, "%s: %schannels must be 1 or 3", path, prefix);
    pn_net *net = NULL;
    pn_status st = pn_net_create(ctx, spec->arch, &opt, &net, err);
    if (st)
        return pn_error_prefix(err, st, "%s: %s", path, prefix);
    if ((st = load_tensors(net, f, path, prefix, err))) {
        pn_net_destroy(net);
        return st;
    }
    for (int c = 0; c < net->channels; c++) {
        net->mean[c] = spec->mean[c];
        net->std[c] = spec->std[c];
    }
    pn_net_params_changed(net);
    *out = net;
    return PN_OK;
}

/* "a,b,c" -> up to n floats; 0 when the text has exactly n finite values. */
static int parse_floats(const char *text, float *v, int n)
{
    for (int i = 0; i < n; i++) {
        char *end;
        v[i] = strtof(text, &end);
        if (end == text || !isfinite(v[i]))
            return -1;
        text = end + (*end == ',');
    }
    return *text ? -1 : 0;
}

pn_status pn_net_spec_from_metadata(struct pn_st_file *f, const char *path, pn_net_spec *spec,
                                    pn_error *err)
{
    memset(spec, 0, sizeof *spec);
    const char *format = pn_st_metadata(f, "format");
    const char *version = pn_st_metadata(f, "pneumo_format_version");
    spec->arch = pn_st_metadata(f, "arch");
    if (!format || strcmp(format, "pneumo") || !spec->arch)
        return pn_fail(err, PN_EFORMAT, "%s: not a pneumo model file (no format=pneumo and arch metadata)", path);
    if (!version || strcmp(version, PN_MODEL_FORMAT_VERSION))
        return pn_fail(err, PN_EUNSUPPORTED, "%s: model format version %s, this build reads %s", path,
                       version ? version : "(none)", PN_MODEL_FORMAT_VERSION);
    pn_status st = meta_int(f, path, "input_size", &spec->input_size, err);
    if (!st) st = meta_int(f, path, "channels", &spec->channels, err);
    if (!st) st = meta_int(f, path, "classes", &spec->classes, err);
    if (st)
        return st;
    const char *mean = pn_st_metadata(f, "mean"), *std = pn_st_metadata(f, "std");
    int ch = spec->channels > 3 ? 3 : spec->channels;
    for (int c = 0; c < 3; c++) {
        spec->mean[c] = 0.5f;
        spec->std[c] = 0.5f;
    }
    if ((mean && parse_floats(mean, spec->mean, ch)) || (std && parse_floats(std, spec->std, ch)))
        return pn_fail(err, PN_EFORMAT, "%s: metadata 'mean' or 'std' is not %d numbers", path, ch);
    return PN_OK;
}

pn_status pn_net_load(pn_ctx *ctx, const char *path, pn_dtype precision, pn_net **out,
                      pn_st_file **meta, pn_error *err)
{
    *out = NULL;
    pn_st_file *f;
    pn_status st = pn_st_open(path, &f, err);
    if (st)
        return st;
    pn_net_spec spec;
    st = pn_net_spec_from_metadata(f, path, &spec, err);
    if (!st)
        st = pn_net_load_from(ctx, f, path, "", &spec, precision, out, err);
    if (st || !meta)
        pn_st_close(f);
    else
        *meta = f;
    return st;
}
