/* What every dataset source (folder scan, CSV manifest) shares: the growing
 * sample list, then sorting, hashing every file and grouping patients with
 * their byte-identical duplicates; and pn_dataset_load, which picks the
 * source from the path. */
#define _GNU_SOURCE /* qsort_r, strcasecmp */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "data/internal.h"

pn_status pn_sample_list_add(pn_sample_list *l, const char *path, const char *split, int label,
                             int subtype, const char *patient, const struct stat *st, pn_error *err)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 1024;
        pn_sample *s = realloc(l->s, cap * sizeof *s);
        if (!s)
            return pn_fail(err, PN_ENOMEM, "out of memory listing %s", path);
        l->s = s;
        l->cap = cap;
    }
    char parsed[256];
    pn_sample *s = &l->s[l->n];
    memset(s, 0, sizeof *s);
    s->patient_known = patient ? 1 : pn_patient_id(path, parsed, sizeof parsed);
    s->path = strdup(path);
    s->split = strdup(split);
    s->patient = strdup(patient ? patient : parsed);
    if (!s->path || !s->split || !s->patient) {
        free(s->path);
        free(s->split);
        free(s->patient);
        return pn_fail(err, PN_ENOMEM, "out of memory listing %s", path);
    }
    s->label = label;
    s->subtype = subtype == PN_SUBTYPE_FROM_NAME ? pn_subtype_from_name(path, label) : subtype;
    s->bytes = st->st_size;
    s->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
    l->n++;
    return PN_OK;
}

void pn_sample_list_free(pn_sample_list *l)
{
    pn_dataset ds = {.samples = l->s, .n = l->n};
    pn_dataset_free(&ds);
    memset(l, 0, sizeof *l);
}

static int by_split_path(const void *a, const void *b)
{
    const pn_sample *x = a, *y = b;
    int c = strcmp(x->split, y->split);
    return c ? c : strcmp(x->path, y->path);
}

static pn_status hash_files(pn_dataset *ds, pn_error *err)
{
    pn_status st = PN_OK;
    #pragma omp parallel for schedule(dynamic, 16)
    for (size_t i = 0; i < ds->n; i++) {
        uint8_t *data;
        size_t size;
        pn_error e;
        if (pn_read_file(ds->samples[i].path, &data, &size, &e)) {
            #pragma omp critical(pn_hash_error)
            if (!st) {
                st = e.code;
                if (err)
                    *err = e;
            }
            continue;
        }
        ds->samples[i].hash = pn_hash_bytes(data, size);
        free(data);
    }
    return st;
}

/* Union-find over sample indices. */
static int find_root(int *parent, int i)
{
    while (parent[i] != i)
        i = parent[i] = parent[parent[i]];
    return i;
}

static void unite(int *parent, int a, int b)
{
    a = find_root(parent, a);
    b = find_root(parent, b);
    if (a != b)
        parent[a > b ? a : b] = a < b ? a : b;  /* smaller index wins: order-independent */
}

static int by_patient(const void *a, const void *b, void *samples)
{
    const pn_sample *s = samples;
    return strcmp(s[*(const int *)a].patient, s[*(const int *)b].patient);
}

static int by_hash(const void *a, const void *b, void *samples)
{
    const pn_sample *s = samples;
    uint64_t x = s[*(const int *)a].hash, y = s[*(const int *)b].hash;
    return x < y ? -1 : x > y;
}

/* Same patient or byte-identical content => same group. */
static pn_status assign_groups(pn_dataset *ds, pn_error *err)
{
    int n = (int)ds->n;
    int *parent = malloc(n * sizeof *parent), *order = malloc(n * sizeof *order);
    if (!parent || !order) {
        free(parent);
        free(order);
        return pn_fail(err, PN_ENOMEM, "out of memory grouping %d samples", n);
    }
    for (int i = 0; i < n; i++)
        parent[i] = order[i] = i;
    int (*cmps[2])(const void *, const void *, void *) = {by_patient, by_hash};
    for (int k = 0; k < 2; k++) {
        qsort_r(order, n, sizeof *order, cmps[k], ds->samples);
        for (int i = 1; i < n; i++)
            if (!cmps[k](&order[i - 1], &order[i], ds->samples))
                unite(parent, order[i - 1], order[i]);
    }
    int groups = 0;
    for (int i = 0; i < n; i++) {
        int r = find_root(parent, i);
        ds->samples[i].group = r == i ? groups++ : ds->samples[r].group;
    }
    ds->n_groups = groups;
    free(parent);
    free(order);
    return PN_OK;
}

pn_status pn_dataset_finish(pn_sample_list *l, const char *what, pn_dataset *ds, pn_error *err)
{
    *ds = (pn_dataset){.samples = l->s, .n = l->n};
    memset(l, 0, sizeof *l);
    pn_status st = ds->n > (size_t)1 << 30 ? pn_fail(err, PN_ELIMIT, "%s: too many files", what) : PN_OK;
    if (!st) {
        qsort(ds->samples, ds->n, sizeof *ds->samples, by_split_path);
        st = hash_files(ds, err);
    }
    if (!st)
        st = assign_groups(ds, err);
    if (st)
        pn_dataset_free(ds);
    return st;
}

void pn_dataset_free(pn_dataset *ds)
{
    for (size_t i = 0; i < ds->n; i++) {
        free(ds->samples[i].path);
        free(ds->samples[i].split);
        free(ds->samples[i].patient);
    }
    free(ds->samples);
    memset(ds, 0, sizeof *ds);
}

int pn_dataset_is_manifest(const char *path)
{
    size_t n = strlen(path);
    struct stat st;
    return n > 4 && !strcasecmp(path + n - 4, ".csv") && !(stat(path, &st) == 0 && S_ISDIR(st.st_mode));
}

pn_status pn_dataset_load(const char *path, pn_dataset *ds, pn_error *err)
{
    return pn_dataset_is_manifest(path) ? pn_manifest_read(path, ds, err) : pn_dataset_scan(path, ds, err);
}
