/* The training run's history.csv (one row per epoch, trimmed to the
 * checkpoint's epochs on resume) and its curves as JSON and history.png. */
#include <stdio.h>
#include <stdlib.h>

#include "train/internal.h"

void pn_train_append_history(const trainer *t, int epoch, double lr, double tl, double ta, double vl,
                             const pn_metrics *m)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/history.csv", t->cfg->out_dir);
    FILE *f = fopen(path, epoch == 0 ? "w" : "a");
    if (!f)
        return;
    if (epoch == 0)
        fprintf(f, "epoch,lr,train_loss,train_accuracy,val_loss,val_accuracy,val_auc,val_sensitivity,val_specificity,elapsed_s\n");
    fprintf(f, "%d,%.6g,%.5f,%.5f,%.5f,%.5f,%.5f,%.5f,%.5f,%.1f\n", epoch + 1, lr, tl, ta, vl,
            m->accuracy, m->roc_auc, m->sensitivity, m->specificity, pn_clock_s() - t->t_start);
    fclose(f);
}

/* On resume: keeps history.csv's header and the rows of the `completed`
 * epochs the checkpoint holds. A run killed after appending an epoch's row
 * but before its checkpoint replaced the previous one left a row that the
 * resumed run writes again. Rewritten through a temporary file and rename. */
pn_status pn_train_trim_history(const trainer *t, int completed, pn_error *err)
{
    char path[4096], tmp[4120], line[1024];
    snprintf(path, sizeof path, "%s/history.csv", t->cfg->out_dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *in = fopen(path, "r");
    if (!in)
        return PN_OK; /* nothing written yet */
    FILE *out = fopen(tmp, "w");
    if (!out) {
        fclose(in);
        return pn_fail(err, PN_EIO, "%s: cannot write", tmp);
    }
    for (int first = 1; fgets(line, sizeof line, in); first = 0)
        if (first || atoi(line) <= completed)
            fputs(line, out);
    fclose(in);
    int failed = ferror(out) | fclose(out);
    if (failed || rename(tmp, path)) {
        remove(tmp);
        return pn_fail(err, PN_EIO, "%s: cannot rewrite", path);
    }
    return PN_OK;
}

/* The per-epoch curves as JSON (stored in the model for reports) and as history.png. */
char *pn_train_history_json(trainer *t, int epochs)
{
    pn_history hist = {(size_t)epochs, t->h_train_loss, t->h_val_loss, t->h_train_acc, t->h_val_acc,
                       t->h_val_auc};
    char *text = pn_history_to_json(&hist);
    char path[4096];
    snprintf(path, sizeof path, "%s/history.png", t->cfg->out_dir);
    /* A missing picture does not fail training, so its error is not recorded:
     * err is written only on a failing path. */
    pn_plot_history(&hist, path, NULL);
    return text;
}

