/* pneumo cv: patient-wise K-fold cross-validation with train's options. */
#include <stdio.h>
#include <unistd.h>

#include "cli/commands.h"
#include "pneumo/train.h"

static int cross_validate(const pn_train_config *c)
{
    if (pn_dist_launched_size() > 1) {
        fprintf(stderr, "pneumo cv: runs in one process, but an MPI launcher started %d: train folds "
                        "data-parallel with `mpirun ... pneumo train --folds K --fold I`\n", pn_dist_launched_size());
        return 2;
    }
    int tty = isatty(2);
    pn_cv_result r;
    pn_error err = {0};
    if (pn_cv_run(c, pn_cli_train_progress, &tty, pn_cli_stop_flag(), &r, &err)) {
        fprintf(stderr, "\npneumo cv: %s\n", err.msg);
        return 1;
    }
    if (r.stopped) {
        fprintf(stderr, "\nstopped; the same command continues (finished folds are kept in %s)\n", c->out_dir);
        return 130;
    }
    printf("%d-fold patient-wise cross-validation, pooled out-of-fold (%s/oof.csv):\n"
           "ROC AUC %.4f, sensitivity %.4f, specificity %.4f, accuracy %.4f at threshold %.4f "
           "(sensitivity >= %.2f rule), temperature %.3f\n"
           "ECE %.4f before, %.4f after temperature scaling\n",
           r.folds, r.dir, r.roc_auc, r.sensitivity, r.specificity, r.accuracy, r.threshold,
           c->target_sensitivity, r.temperature, r.ece_before, r.ece_after);
    if (r.classes == 3)
        printf("three classes: accuracy %.4f, macro ROC AUC %.4f\n", r.accuracy3, r.macro_auc3);
    printf("report: %s/report/report.html, %s/cv.json; the fold models as one: %s/ensemble.safetensors (%.0f s)\n",
           r.dir, r.dir, r.dir, r.seconds);
    char ensemble[4200];
    snprintf(ensemble, sizeof ensemble, "%s/ensemble.safetensors", r.dir);
    pn_cli_ood_fit(ensemble, c->data_dir, c->threads);
    return 0;
}

int pn_cmd_cv(int argc, char **argv)
{
    pn_train_config c = pn_train_defaults();
    c.folds = 5;
    c.out_dir = "runs/cv";
    return pn_cli_train_main(argc, argv, c, cross_validate);
}
