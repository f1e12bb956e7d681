/* Patient-wise, stratified K-fold assignment for cross-validation. */
#include <stdlib.h>
#include <string.h>

#include "data/internal.h"

enum { N_STRATA = 4 }; /* normal, bacterial, viral, pneumonia of unknown subtype */

static int stratum_of(const pn_sample *s)
{
    if (s->label == PN_CLASS_NORMAL)
        return 0;
    return s->subtype == PN_SUBTYPE_BACTERIA ? 1 : s->subtype == PN_SUBTYPE_VIRUS ? 2 : 3;
}

typedef struct fold_group {
    int size;              /* images of the group in the selected split */
    int count[N_STRATA];   /* images per stratum */
} fold_group;

static int majority_stratum(const fold_group *g)
{
    int best = 0;
    for (int s = 1; s < N_STRATA; s++)
        if (g->count[s] > g->count[best])
            best = s;
    return best;
}

static void shuffle(int *v, int n, uint64_t *rng)
{
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(pn_splitmix64(rng) % (uint64_t)(i + 1));
        int t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
}

/* The fold with the fewest images of stratum s; ties: fewest images, then lowest index. */
static int emptiest_fold(int (*per_fold)[N_STRATA], const int *total, int k, int s)
{
    int best = 0;
    for (int f = 1; f < k; f++)
        if (per_fold[f][s] < per_fold[best][s] ||
            (per_fold[f][s] == per_fold[best][s] && total[f] < total[best]))
            best = f;
    return best;
}

pn_status pn_dataset_folds(const pn_dataset *ds, const char *split, int k, uint64_t seed, int *fold,
                           pn_error *err)
{
    if (k < 2 || k > 100)
        return pn_fail(err, PN_EINVAL, "cross-validation needs 2 to 100 folds, got %d", k);
    pn_status st = PN_OK;
    fold_group *g = calloc((size_t)ds->n_groups, sizeof *g);
    int *order = malloc((size_t)ds->n_groups * sizeof *order);
    int *group_fold = malloc((size_t)ds->n_groups * sizeof *group_fold);
    int (*per_fold)[N_STRATA] = calloc((size_t)k, sizeof *per_fold);
    int *total = calloc((size_t)k, sizeof *total);
    if (!g || !order || !group_fold || !per_fold || !total) {
        st = pn_fail(err, PN_ENOMEM, "out of memory assigning %d folds", k);
        goto done;
    }
    for (size_t i = 0; i < ds->n; i++) {
        const pn_sample *s = &ds->samples[i];
        if (split && strcmp(s->split, split))
            continue;
        g[s->group].size++;
        g[s->group].count[stratum_of(s)]++;
    }
    int n = 0;
    for (int i = 0; i < ds->n_groups; i++)
        if (g[i].size)
            order[n++] = i;
    if (n < k) {
        st = pn_fail(err, PN_EINVAL, "%d patients cannot fill %d folds", n, k);
        goto done;
    }
    uint64_t rng = seed ^ 0x9e3779b97f4a7c15ULL;
    shuffle(order, n, &rng);
    for (int i = 0; i < n; i++) {
        const fold_group *gi = &g[order[i]];
        int s = majority_stratum(gi), f = emptiest_fold(per_fold, total, k, s);
        group_fold[order[i]] = f;
        per_fold[f][s] += gi->size;
        total[f] += gi->size;
    }
    for (size_t i = 0; i < ds->n; i++) {
        const pn_sample *s = &ds->samples[i];
        fold[i] = split && strcmp(s->split, split) ? -1 : group_fold[s->group];
    }
done:
    free(g);
    free(order);
    free(group_fold);
    free(per_fold);
    free(total);
    return st;
}
