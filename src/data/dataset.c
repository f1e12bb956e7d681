/* Dataset scanning (Kaggle folder layout), patient ids from file names,
 * patient-wise stratified splits and class weights. */
#define _GNU_SOURCE /* strcasestr */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "data/internal.h"

static int class_of_dir(const char *name)
{
    if (!strcasecmp(name, "NORMAL"))
        return PN_CLASS_NORMAL;
    if (!strcasecmp(name, "PNEUMONIA"))
        return PN_CLASS_PNEUMONIA;
    return -1;
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* Length of a run of digits at s. */
static size_t digits(const char *s)
{
    size_t n = 0;
    while (isdigit((unsigned char)s[n]))
        n++;
    return n;
}

int pn_patient_id(const char *filename, char *out, size_t out_size)
{
    const char *name = base_name(filename);
    size_t len = 0;
    if (!strncmp(name, "person", 6)) {
        size_t d = digits(name + 6);
        if (d && name[6 + d] == '_')
            len = 6 + d;
    } else {
        /* NORMAL2-IM-<id>-<n> and IM-<id>-<n>: the two normal batches number
         * patients independently, so the prefix stays in the id. */
        size_t pre = !strncmp(name, "NORMAL2-IM-", 11) ? 11 : !strncmp(name, "IM-", 3) ? 3 : 0;
        size_t d = pre ? digits(name + pre) : 0;
        if (d && name[pre + d] == '-')
            len = pre + d;
    }
    int known = len > 0;
    if (!known) {  /* unknown pattern: the file stem is its own patient */
        const char *dot = strrchr(name, '.');
        len = dot && dot != name ? (size_t)(dot - name) : strlen(name);
    }
    snprintf(out, out_size, "%.*s", (int)len, name);
    return known;
}

int pn_subtype_from_name(const char *filename, int label)
{
    if (label == PN_CLASS_NORMAL)
        return PN_SUBTYPE_NORMAL;
    const char *name = base_name(filename);
    if (strcasestr(name, "bacteria"))
        return PN_SUBTYPE_BACTERIA;
    if (strcasestr(name, "virus"))
        return PN_SUBTYPE_VIRUS;
    return PN_SUBTYPE_UNKNOWN;
}

static char *join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 2);
    if (s) {
        memcpy(s, a, la);
        s[la] = '/';
        memcpy(s + la + 1, b, lb + 1);
    }
    return s;
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static pn_status add_sample(pn_sample_list *l, const char *path, const char *split, int label,
                            pn_error *err)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return PN_OK;  /* sockets, subfolders, dangling links: not images */
    return pn_sample_list_add(l, path, split, label, PN_SUBTYPE_FROM_NAME, NULL, &st, err);
}

static pn_status scan_class_dir(pn_sample_list *l, const char *dir, const char *split, int label,
                                pn_error *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return pn_fail(err, PN_EIO, "%s: cannot list folder: %s", dir, strerror(errno));
    pn_status st = PN_OK;
    struct dirent *e;
    while (!st && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char *path = join(dir, e->d_name);
        st = path ? add_sample(l, path, split, label, err)
                  : pn_fail(err, PN_ENOMEM, "out of memory scanning %s", dir);
        free(path);
    }
    closedir(d);
    return st;
}

/* Calls scan_class_dir for each class folder directly inside dir. */
static pn_status scan_split_dir(pn_sample_list *l, const char *dir, const char *split, int *found,
                                pn_error *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return pn_fail(err, PN_EIO, "%s: cannot list folder: %s", dir, strerror(errno));
    pn_status st = PN_OK;
    struct dirent *e;
    while (!st && (e = readdir(d))) {
        int label = class_of_dir(e->d_name);
        if (label < 0)
            continue;
        char *path = join(dir, e->d_name);
        if (!path)
            st = pn_fail(err, PN_ENOMEM, "out of memory scanning %s", dir);
        else if (is_dir(path)) {
            *found = 1;
            st = scan_class_dir(l, path, split, label, err);
        }
        free(path);
    }
    closedir(d);
    return st;
}

static pn_status scan_root(pn_sample_list *l, const char *root, pn_error *err)
{
    int found = 0;
    pn_status st = scan_split_dir(l, root, "", &found, err);
    if (st || found)
        return st;
    DIR *d = opendir(root);
    if (!d)
        return pn_fail(err, PN_EIO, "%s: cannot list folder: %s", root, strerror(errno));
    struct dirent *e;
    while (!st && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char *path = join(root, e->d_name);
        if (!path)
            st = pn_fail(err, PN_ENOMEM, "out of memory scanning %s", root);
        else if (is_dir(path))
            st = scan_split_dir(l, path, e->d_name, &found, err);
        free(path);
    }
    closedir(d);
    return st;
}

pn_status pn_dataset_scan(const char *root, pn_dataset *ds, pn_error *err)
{
    memset(ds, 0, sizeof *ds);
    if (!is_dir(root))
        return pn_fail(err, PN_EIO, "%s: not a folder", root);
    pn_sample_list l = {0};
    pn_status st = scan_root(&l, root, err);
    if (!st && l.n == 0)
        st = pn_fail(err, PN_EINVAL, "%s: no images found (expected <root>[/<split>]/NORMAL|"
                     "PNEUMONIA/*)", root);
    if (st) {
        pn_sample_list_free(&l);
        return st;
    }
    return pn_dataset_finish(&l, root, ds, err);
}

pn_status pn_dataset_select(const pn_dataset *ds, const char *split, size_t **idx, size_t *n,
                            pn_error *err)
{
    *idx = malloc((ds->n ? ds->n : 1) * sizeof **idx);
    *n = 0;
    if (!*idx)
        return pn_fail(err, PN_ENOMEM, "out of memory selecting samples");
    for (size_t i = 0; i < ds->n; i++)
        if (!split || !strcmp(ds->samples[i].split, split))
            (*idx)[(*n)++] = i;
    return PN_OK;
}

void pn_split_free(pn_split *s)
{
    free(s->train);
    free(s->val);
    memset(s, 0, sizeof *s);
}

const char *pn_split_kind(const pn_split *s)
{
    if (s->n_unknown_patient == 0)
        return "patient-wise";
    return s->n_unknown_patient == s->n_train + s->n_val ? "image-wise" : "partly patient-wise";
}

typedef struct group_info {
    int size, count[2], to_val;
} group_info;

/* Moves whole groups of majority class `label` to validation, in a seeded
 * order, while that brings the class's validation count closer to target. */
static void choose_val_groups(group_info *g, int n_groups, int label, double target,
                              uint64_t seed, int *order)
{
    int n = 0;
    for (int i = 0; i < n_groups; i++) {
        int major = g[i].count[1] >= g[i].count[0];
        if (g[i].size && major == label)
            order[n++] = i;
    }
    uint64_t rng = seed ^ (0x5851f42d4c957f2dULL * (uint64_t)(label + 1));
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(pn_splitmix64(&rng) % (uint64_t)(i + 1));
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    double val = 0;
    for (int i = 0; i < n; i++) {
        group_info *gi = &g[order[i]];
        if (val + gi->size / 2.0 < target) {
            gi->to_val = 1;
            val += gi->size;
        }
    }
}

pn_status pn_dataset_split(const pn_dataset *ds, const char *split, double val_fraction,
                           uint64_t seed, pn_split *out, pn_error *err)
{
    memset(out, 0, sizeof *out);
    if (!(val_fraction >= 0 && val_fraction < 1))
        return pn_fail(err, PN_EINVAL, "validation fraction must be in [0, 1), got %g",
                       val_fraction);
    size_t *idx, n;
    pn_status st = pn_dataset_select(ds, split, &idx, &n, err);
    if (st)
        return st;
    if (n == 0) {
        free(idx);
        return pn_fail(err, PN_EINVAL, "no samples in split '%s'", split ? split : "(all)");
    }
    group_info *g = calloc(ds->n_groups, sizeof *g);
    int *order = malloc(ds->n_groups * sizeof *order);
    out->train = malloc(n * sizeof *out->train);
    out->val = malloc(n * sizeof *out->val);
    if (!g || !order || !out->train || !out->val) {
        st = pn_fail(err, PN_ENOMEM, "out of memory splitting %zu samples", n);
        goto done;
    }
    int class_total[2] = {0, 0};
    for (size_t k = 0; k < n; k++) {
        const pn_sample *s = &ds->samples[idx[k]];
        int c = s->label != 0;
        g[s->group].size++;
        g[s->group].count[c]++;
        class_total[c]++;
        out->n_unknown_patient += !s->patient_known;
    }
    for (int c = 0; c < 2; c++)
        choose_val_groups(g, ds->n_groups, c, val_fraction * class_total[c], seed, order);
    for (size_t k = 0; k < n; k++) {
        if (g[ds->samples[idx[k]].group].to_val)
            out->val[out->n_val++] = idx[k];
        else
            out->train[out->n_train++] = idx[k];
    }
done:
    free(idx);
    free(g);
    free(order);
    if (st)
        pn_split_free(out);
    return st;
}

pn_status pn_class_weights(const int *labels, size_t n, int n_classes, float *weights,
                           pn_error *err)
{
    if (n_classes < 1 || n == 0)
        return pn_fail(err, PN_EINVAL, "class weights need samples and classes");
    size_t *count = calloc(n_classes, sizeof *count);
    if (!count)
        return pn_fail(err, PN_ENOMEM, "out of memory for class weights");
    for (size_t i = 0; i < n; i++) {
        if (labels[i] < 0 || labels[i] >= n_classes) {
            free(count);
            return pn_fail(err, PN_EINVAL, "label %d outside [0, %d)", labels[i], n_classes);
        }
        count[labels[i]]++;
    }
    int present = 0;
    for (int c = 0; c < n_classes; c++)
        present += count[c] > 0;
    /* w_c = n / (present * count_c): sum over samples of w is n, so the mean is 1. */
    for (int c = 0; c < n_classes; c++)
        weights[c] = count[c] ? (float)((double)n / ((double)present * count[c])) : 0.0f;
    free(count);
    return PN_OK;
}

const char *pn_dataset_holdout_folder(const pn_dataset *ds)
{
    for (size_t i = 0; i < ds->n; i++)
        if (!strcmp(ds->samples[i].split, "train"))
            return "train";
    return "";
}

pn_status pn_dataset_holdout_split(const pn_dataset *ds, double val_fraction, uint64_t seed, pn_split *out,
                                   pn_error *err)
{
    int has_train = *pn_dataset_holdout_folder(ds) != '\0';
    pn_status st = pn_dataset_split(ds, pn_dataset_holdout_folder(ds), val_fraction, seed, out, err);
    if (st)
        return st;
    if (out->n_val == 0 || out->n_train == 0) {
        pn_split_free(out);
        return pn_fail(err, PN_EINVAL, "too few images for a train/validation split (%s)",
                       has_train ? "the train split" : "no train split: the whole set");
    }
    return PN_OK;
}
