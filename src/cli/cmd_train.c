/* pneumo train: train a model on a folder dataset (options or a recipe file). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "pneumo/train.h"

static volatile int stop_requested;
static void on_sigint(int sig) { (void)sig; stop_requested = 1; }

static int usage(FILE *out)
{
    fprintf(out,
        "usage: pneumo train --data DIR [options]   (or --recipe FILE with the same keys)\n"
        "  --arch NAME|FILE      architecture (default mobilenetv3-small)\n"
        "  --input-size N --channels 1|3 --resize squash|letterbox (default squash)\n"
        "  --init FILE           pretrained weights by name (e.g. ../shared/pretrained/...)\n"
        "  --init-skip PREFIX    do not import these parameters (e.g. classifier.)\n"
        "  --epochs N --batch N --lr X --weight-decay X --label-smoothing X\n"
        "  --optimizer sgd|adam|adamw --schedule constant|step|cosine|plateau --warmup-epochs X\n"
        "  --freeze PREFIX --freeze-epochs N --phase2-lr-scale X   two-phase transfer learning\n"
        "  --class-weights auto|none|W0,W1  --no-augment  --early-stop N\n"
        "  --augment-preset default|strong  --mixup ALPHA  --ema DECAY  --clahe 0|1\n"
        "  --classes 2|3         normal/pneumonia, or normal/bacterial/viral (p(pneumonia) = b + v)\n"
        "  --keep best|last      weights kept: best validation ROC AUC epoch (default) or the last\n"
        "  --folds K --fold I    hold out fold I of a patient-wise K-fold split (pneumo cv runs all)\n"
        "  --val-fraction X      patient-wise validation split from train (default 0.2)\n"
        "  --target-sensitivity X  threshold rule on validation (default 0.95)\n"
        "  --precision fp32|bf16 --seed N --threads N --max-images N --out DIR\n"
        "  --resume              continue from DIR/checkpoint.safetensors (Ctrl-C leaves one)\n"
        "  --stop-after N        stop like Ctrl-C after N optimiser steps (a time budget in steps)\n");
    return out == stdout ? 0 : 2;
}

static int set_option(pn_train_config *c, const char *key, const char *v)
{
    if (!strcmp(key, "data")) c->data_dir = v;
    else if (!strcmp(key, "arch")) c->arch = v;
    else if (!strcmp(key, "init")) c->init = v;
    else if (!strcmp(key, "init-skip")) c->init_skip = v;
    else if (!strcmp(key, "out")) c->out_dir = v;
    else if (!strcmp(key, "input-size")) c->input_size = atoi(v);
    else if (!strcmp(key, "channels")) c->channels = atoi(v);
    else if (!strcmp(key, "epochs")) c->epochs = atoi(v);
    else if (!strcmp(key, "batch")) c->batch = atoi(v);
    else if (!strcmp(key, "threads")) c->threads = atoi(v);
    else if (!strcmp(key, "lr")) c->lr = strtof(v, NULL);
    else if (!strcmp(key, "weight-decay")) c->weight_decay = strtof(v, NULL);
    else if (!strcmp(key, "label-smoothing")) c->label_smoothing = strtof(v, NULL);
    else if (!strcmp(key, "val-fraction")) c->val_fraction = strtof(v, NULL);
    else if (!strcmp(key, "warmup-epochs")) c->warmup_epochs = strtof(v, NULL);
    else if (!strcmp(key, "freeze")) c->freeze_prefix = v;
    else if (!strcmp(key, "freeze-epochs")) c->freeze_epochs = atoi(v);
    else if (!strcmp(key, "phase2-lr-scale")) c->phase2_lr_scale = strtof(v, NULL);
    else if (!strcmp(key, "early-stop")) c->early_stop = atoi(v);
    else if (!strcmp(key, "target-sensitivity")) c->target_sensitivity = strtof(v, NULL);
    else if (!strcmp(key, "seed")) c->seed = strtoull(v, NULL, 10);
    else if (!strcmp(key, "max-images")) c->max_images = atoi(v);
    else if (!strcmp(key, "stop-after")) c->stop_after = atoi(v);
    else if (!strcmp(key, "resize")) {
        if (strcmp(v, "squash") && strcmp(v, "letterbox")) return -1;
        c->letterbox = !strcmp(v, "letterbox");
    }
    else if (!strcmp(key, "augment")) c->augment = atoi(v);
    else if (!strcmp(key, "augment-preset")) {
        int p = pn_augment_preset_parse(v);
        if (p < 0) return -1;
        c->aug_preset = (pn_augment_preset)p;
    }
    else if (!strcmp(key, "folds")) c->folds = atoi(v);
    else if (!strcmp(key, "fold")) c->fold = atoi(v);
    else if (!strcmp(key, "classes")) {
        c->classes = atoi(v);
        if (c->classes != 2 && c->classes != 3) return -1;
    }
    else if (!strcmp(key, "keep")) {
        if (strcmp(v, "best") && strcmp(v, "last")) return -1;
        c->keep_last = !strcmp(v, "last");
    }
    else if (!strcmp(key, "ema")) c->ema_decay = strtof(v, NULL);
    else if (!strcmp(key, "mixup")) c->mixup_alpha = strtof(v, NULL);
    else if (!strcmp(key, "clahe")) c->clahe = atoi(v);
    else if (!strcmp(key, "precision")) {
        if (strcmp(v, "fp32") && strcmp(v, "bf16")) return -1;
        c->precision = !strcmp(v, "bf16") ? PN_BF16 : PN_F32;
    } else if (!strcmp(key, "optimizer")) {
        if (!strcmp(v, "sgd")) c->optimizer = PN_SGD;
        else if (!strcmp(v, "adam")) c->optimizer = PN_ADAM;
        else if (!strcmp(v, "adamw")) c->optimizer = PN_ADAMW;
        else return -1;
    } else if (!strcmp(key, "schedule")) {
        if (!strcmp(v, "constant")) c->schedule = PN_SCHED_CONSTANT;
        else if (!strcmp(v, "step")) c->schedule = PN_SCHED_STEP;
        else if (!strcmp(v, "cosine")) c->schedule = PN_SCHED_COSINE;
        else if (!strcmp(v, "plateau")) c->schedule = PN_SCHED_PLATEAU;
        else return -1;
    } else if (!strcmp(key, "class-weights")) {
        c->class_weights_auto = !strcmp(v, "auto");
        c->class_weights[0] = c->class_weights[1] = 0;
        if (strcmp(v, "auto") && strcmp(v, "none") &&
            sscanf(v, "%f,%f", &c->class_weights[0], &c->class_weights[1]) != 2)
            return -1;
    } else
        return -2;
    return 0;
}

/* A recipe is `key = value` lines with the option names (comments with #).
 * Its strings live until exit, as the config points into them. */
static int read_recipe(pn_train_config *c, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        return -1;
    }
    char line[1024];
    int lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        char key[128], value[896];
        if (sscanf(line, " %127[^= \t] = %895[^\n]", key, value) != 2) continue;
        for (char *e = value + strlen(value); e > value && (e[-1] == ' ' || e[-1] == '\t'); ) *--e = '\0';
        if (set_option(c, key, strdup(value))) {
            fprintf(stderr, "%s:%d: bad option '%s = %s'\n", path, lineno, key, value);
            fclose(f);
            return -1;
        }
    }
    fclose(f);
    return 0;
}

void pn_cli_train_progress(void *user, const pn_train_progress *p)
{
    int tty = *(int *)user;
    char fold[32] = "";
    if (p->folds)
        snprintf(fold, sizeof fold, "fold %d/%d  ", p->fold, p->folds);
    const char *clear = tty ? "\r\033[K" : "";
    if (p->epoch_done) {
        fprintf(stderr, "%s%sepoch %d/%d  train loss %.4f acc %.4f | val loss %.4f acc %.4f auc %.4f sens %.3f spec %.3f%s  [%.0fs]\n",
                clear, fold, p->epoch, p->epochs, p->loss, p->accuracy, p->val_loss,
                p->val_accuracy, p->val_auc, p->val_sensitivity, p->val_specificity,
                p->best ? "  *best" : "", p->elapsed_s);
        return;
    }
    if (tty) {
        int width = 30, filled = p->batches ? p->batch * width / p->batches : 0;
        char bar[64];
        for (int i = 0; i < width; i++) bar[i] = i < filled ? '#' : '.';
        bar[width] = '\0';
        fprintf(stderr, "%s%sepoch %d/%d [%s] %d/%d loss %.4f acc %.4f %.0f img/s ETA %.0fs", clear, fold,
                p->epoch, p->epochs, bar, p->batch, p->batches, p->loss, p->accuracy, p->images_per_s, p->eta_s);
    } else if (p->batch % 50 == 0 || p->batch == p->batches) {
        fprintf(stderr, "%sepoch %d/%d batch %d/%d loss %.4f acc %.4f %.0f img/s\n", fold, p->epoch, p->epochs,
                p->batch, p->batches, p->loss, p->accuracy, p->images_per_s);
    }
}

int pn_cli_train_args(int argc, char **argv, pn_train_config *c)
{
    static char command[4096];
    size_t len = 0;
    for (int i = 0; i < argc && len < sizeof command - 1; i++)
        len += (size_t)snprintf(command + len, sizeof command - len, "%s%s", i ? " " : "pneumo ", argv[i]);
    c->recipe_text = command;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return usage(stdout) - 1;
        if (!strcmp(argv[i], "--no-augment")) { c->augment = 0; continue; }
        if (!strcmp(argv[i], "--resume")) { c->resume = 1; continue; }
        if (strncmp(argv[i], "--", 2) || i + 1 >= argc) return usage(stderr);
        int rc = !strcmp(argv[i], "--recipe") ? read_recipe(c, argv[i + 1]) : set_option(c, argv[i] + 2, argv[i + 1]);
        if (rc) {
            fprintf(stderr, "pneumo %s: bad option %s %s\n", argv[0], argv[i], argv[i + 1]);
            return 2;
        }
        i++;
    }
    return c->data_dir ? 0 : usage(stderr);
}

volatile int *pn_cli_stop_flag(void)
{
    signal(SIGINT, on_sigint);
    return &stop_requested;
}

int pn_cmd_train(int argc, char **argv)
{
    pn_train_config c = pn_train_defaults();
    int rc = pn_cli_train_args(argc, argv, &c);
    if (rc)
        return rc < 0 ? 0 : rc;
    volatile int *stop = pn_cli_stop_flag();
    int tty = isatty(2);
    pn_train_result r;
    pn_error err = {0};
    pn_status st = pn_train_run(&c, pn_cli_train_progress, &tty, stop, &r, &err);
    if (st) {
        fprintf(stderr, "\npneumo train: %s\n", err.msg);
        return 1;
    }
    if (r.stopped) {
        fprintf(stderr, "\nstopped; continue with the same command plus --resume (checkpoint in %s)\n", c.out_dir);
        return 130;
    }
    printf("model: %s\nbest epoch %d, %.1f s\nvalidation (patient-wise split of train, %s): ROC AUC %.4f, "
           "sensitivity %.4f, specificity %.4f, accuracy %.4f, balanced accuracy %.4f\n"
           "threshold %.4f (sensitivity >= %.2f rule; Youden %.4f), temperature %.3f\n",
           r.model_path, r.best_epoch, r.seconds, "at the stored threshold", r.val_auc,
           r.val_sensitivity, r.val_specificity, r.val_accuracy, r.val_balanced_accuracy, r.threshold,
           c.target_sensitivity, r.threshold_youden, r.temperature);
    return 0;
}
