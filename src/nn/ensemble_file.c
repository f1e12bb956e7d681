/* Ensemble model files: several single-network model files in one, each
 * network's tensors under "m<i>/" and its description in the "members"
 * metadata array (pn_model_load in src/infer/ reads them). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/internal.h"
#include "pneumo/safetensors.h"
#include "pneumo/sha256.h"

/* "a,b,c" metadata -> JSON array of numbers. */
static json_t *float_list(const char *text)
{
    json_t *a = json_array();
    while (text && *text) {
        char *end;
        double v = strtod(text, &end);
        if (end == text)
            break;
        json_array_append_new(a, json_real(v));
        text = end + (*end == ',');
    }
    return a;
}

/* Metadata value as JSON when it is a JSON object or array, else as a string. */
static json_t *meta_value(const char *v)
{
    json_t *parsed = v && (v[0] == '{' || v[0] == '[') ? json_loads(v, 0, NULL) : NULL;
    return parsed ? parsed : json_string(v ? v : "");
}

/* The member's entry of "members" from its file's metadata. */
static pn_status describe_member(pn_st_file *f, const char *path, int index, double temperature,
                                 json_t **out, pn_error *err)
{
    pn_net_spec spec;
    pn_status st = pn_net_spec_from_metadata(f, path, &spec, err);
    if (st)
        return st;
    uint8_t digest[PN_SHA256_DIGEST_SIZE];
    char hex[2 * PN_SHA256_DIGEST_SIZE + 1], prefix[16];
    if ((st = pn_sha256_file(path, digest, err)))
        return st;
    pn_sha256_hex(digest, hex);
    snprintf(prefix, sizeof prefix, "m%d/", index);
    const char *temp = pn_st_metadata(f, "temperature"), *resize = pn_st_metadata(f, "resize");
    const char *clahe = pn_st_metadata(f, "clahe"), *name = pn_st_metadata(f, "arch_name");
    json_t *m = json_object();
    json_object_set_new(m, "prefix", json_string(prefix));
    json_object_set_new(m, "arch", json_string(spec.arch));
    json_object_set_new(m, "arch_name", json_string(name ? name : "custom"));
    json_object_set_new(m, "input_size", json_integer(spec.input_size));
    json_object_set_new(m, "channels", json_integer(spec.channels));
    json_object_set_new(m, "classes", json_integer(spec.classes));
    json_object_set_new(m, "mean", float_list(pn_st_metadata(f, "mean")));
    json_object_set_new(m, "std", float_list(pn_st_metadata(f, "std")));
    json_object_set_new(m, "resize", json_string(resize ? resize : "squash"));
    json_object_set_new(m, "clahe", json_boolean(clahe && !strcmp(clahe, "1")));
    json_object_set_new(m, "temperature", json_real(temperature > 0 ? temperature : temp ? atof(temp) : 1.0));
    json_object_set_new(m, "source_sha256", json_string(hex));
    json_object_set_new(m, "recipe", meta_value(pn_st_metadata(f, "recipe")));
    json_object_set_new(m, "metrics", meta_value(pn_st_metadata(f, "metrics")));
    *out = m;
    return PN_OK;
}

/* Copies the member's network tensors (names without '/') under its prefix, bytes as stored. */
static pn_status copy_tensors(pn_st_writer *w, pn_st_file *f, int index, pn_error *err)
{
    pn_status st = PN_OK;
    for (size_t i = 0; !st && i < pn_st_count(f); i++) {
        const pn_st_tensor *t = pn_st_get(f, i);
        if (strchr(t->name, '/'))
            continue;
        char name[300];
        snprintf(name, sizeof name, "m%d/%s", index, t->name);
        st = pn_st_writer_add(w, name, t->dtype, t->ndim, t->shape, t->data, err);
    }
    return st;
}

static pn_status add_member(pn_st_writer *w, json_t *list, const char *path, int index,
                            double temperature, pn_error *err)
{
    pn_st_file *f;
    pn_status st = pn_st_open(path, &f, err);
    if (st)
        return st;
    json_t *entry = NULL;
    if (pn_st_metadata(f, "members"))
        st = pn_fail(err, PN_EINVAL, "%s: is an ensemble already; give its member files", path);
    if (!st) st = describe_member(f, path, index, temperature, &entry, err);
    if (!st) st = copy_tensors(w, f, index, err);
    if (!st)
        json_array_append_new(list, entry);
    else
        json_decref(entry);
    pn_st_close(f);
    return st;
}

/* Top-level keys every pneumo model file has, from the first member. */
static pn_status common_metadata(pn_st_writer *w, const char *first, int n, pn_error *err)
{
    pn_st_file *f;
    pn_status st = pn_st_open(first, &f, err);
    if (st)
        return st;
    const char *keys[] = {"class_names", "disclaimer", "input_size", "channels", "classes"};
    for (size_t i = 0; !st && i < sizeof keys / sizeof *keys; i++) {
        const char *v = pn_st_metadata(f, keys[i]);
        if (v)
            st = pn_st_writer_set_metadata(w, keys[i], v, err);
    }
    char name[160];
    const char *arch = pn_st_metadata(f, "arch_name");
    snprintf(name, sizeof name, "ensemble of %d x %s", n, arch ? arch : "custom");
    if (!st) st = pn_st_writer_set_metadata(w, "arch_name", name, err);
    pn_st_close(f);
    return st;
}

pn_status pn_ensemble_write(const char *out, const char *const *members, int n, double temperature,
                            const pn_kv *meta, size_t n_meta, pn_error *err)
{
    if (n < 1 || n > 16)
        return pn_fail(err, PN_EINVAL, "an ensemble holds 1 to 16 models, not %d", n);
    pn_st_writer *w;
    pn_status st = pn_st_writer_create(&w, err);
    if (st)
        return st;
    json_t *list = json_array();
    for (int i = 0; !st && i < n; i++)
        st = add_member(w, list, members[i], i, temperature, err);
    char *text = st ? NULL : json_dumps(list, JSON_COMPACT | JSON_REAL_PRECISION(9));
    if (!st && !text)
        st = pn_fail(err, PN_ENOMEM, "out of memory");
    if (!st) st = pn_st_writer_set_metadata(w, "format", "pneumo", err);
    if (!st) st = pn_st_writer_set_metadata(w, "pneumo_format_version", PN_MODEL_FORMAT_VERSION, err);
    if (!st) st = pn_st_writer_set_metadata(w, "members", text, err);
    if (!st) st = pn_st_writer_set_metadata(w, "combine", "mean of the members' temperature-scaled probabilities", err);
    if (!st) st = common_metadata(w, members[0], n, err);
    for (size_t i = 0; !st && i < n_meta; i++)
        st = pn_st_writer_set_metadata(w, meta[i].key, meta[i].value, err);
    if (!st)
        st = pn_st_writer_save(w, out, err);
    free(text);
    json_decref(list);
    pn_st_writer_destroy(w);
    return st;
}
