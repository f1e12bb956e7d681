/* The one encoder/decoder of training curves (pn_history) as JSON, shared by
 * the trainer that stores them and the reports that draw them. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "pneumo/eval.h"

const char *const pn_history_keys[PN_HISTORY_COLUMNS] = {"train_loss", "val_loss", "train_acc", "val_acc",
                                                          "val_auc"};

const float *pn_history_column(const pn_history *h, int k)
{
    const float *cols[PN_HISTORY_COLUMNS] = {h->train_loss, h->val_loss, h->train_acc, h->val_acc, h->val_auc};
    return k >= 0 && k < PN_HISTORY_COLUMNS ? cols[k] : NULL;
}

char *pn_history_to_json(const pn_history *h)
{
    json_t *root = json_object();
    for (int k = 0; root && k < PN_HISTORY_COLUMNS; k++) {
        json_t *a = json_array();
        const float *col = pn_history_column(h, k);
        for (size_t e = 0; a && col && e < h->epochs; e++)
            json_array_append_new(a, json_real(col[e]));
        json_object_set_new(root, pn_history_keys[k], a);
    }
    char *text = root ? json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
    json_decref(root);
    return text;
}

int pn_history_from_json(const char *text, pn_history *out)
{
    memset(out, 0, sizeof *out);
    json_t *root = text ? json_loads(text, 0, NULL) : NULL;
    size_t epochs = root ? json_array_size(json_object_get(root, pn_history_keys[0])) : 0;
    float *cols[PN_HISTORY_COLUMNS] = {0};
    int ok = epochs > 0;
    for (int k = 0; ok && k < PN_HISTORY_COLUMNS; k++) {
        json_t *a = json_object_get(root, pn_history_keys[k]);
        ok = (cols[k] = calloc(epochs, sizeof(float))) != NULL;
        for (size_t e = 0; ok && e < epochs && e < json_array_size(a); e++)
            cols[k][e] = (float)json_number_value(json_array_get(a, e));
    }
    json_decref(root);
    if (!ok) {
        for (int k = 0; k < PN_HISTORY_COLUMNS; k++)
            free(cols[k]);
        return 0;
    }
    *out = (pn_history){epochs, cols[0], cols[1], cols[2], cols[3], cols[4]};
    return 1;
}

void pn_history_free(pn_history *h)
{
    for (int k = 0; k < PN_HISTORY_COLUMNS; k++)
        free((void *)pn_history_column(h, k));
    memset(h, 0, sizeof *h);
}
