/* pneumo train: train a model on a folder dataset (options or a recipe file). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/options.h"
#include "pneumo/train.h"

static volatile int stop_requested;
static void on_sigint(int sig) { (void)sig; stop_requested = 1; }

static int usage(FILE *out)
{
    fprintf(out,
        "usage: pneumo train --data DIR|FILE.csv [options]   (or --recipe NAME.recipe with the same keys)\n"
        "  --data DIR|FILE.csv   a folder (<root>[/train]/{NORMAL,PNEUMONIA}/) or a CSV manifest\n"
        "                        path,label[,patient_id][,split] (docs/datasets.md); train uses the train\n"
        "                        split (folder or column) when there is one, else every image\n"
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
        "  --folds K --fold I    hold out fold I (0-based) of a patient-wise K-fold split (pneumo cv runs all)\n"
        "  --val-fraction X      validation split from train (default 0.2), patient-wise where the\n"
        "                        manifest or the file names carry patient ids (image-wise otherwise, with a warning)\n"
        "  --target-sensitivity X  threshold rule on validation (default 0.95)\n"
        "  --precision fp32|bf16 --seed N --threads N --max-images N --out DIR\n"
        "  --resume              continue from DIR/checkpoint.safetensors (Ctrl-C or SIGUSR1 leaves one)\n"
        "  --stop-after N        stop like Ctrl-C after N optimiser steps (a time budget in steps)\n"
        "  --patient-ids         write patient ids into val_predictions.csv / oof.csv (default: the\n"
        "                        patient's group number, so no manifest patient_id leaves the dataset)\n"
        "data-parallel: mpirun -np N pneumo train ... (N processes share each --batch; rank 0\n"
        "  validates and writes; see docs/distributed.md)\n"
        "  --sync-bn             batch-norm statistics over the whole batch (default: each process's slice)\n"
        "  --dist-timeout S      a process waiting longer than S seconds for the others ends the job\n"
        "                        (default 600; must exceed rank 0's validation time)\n");
    return out == stdout ? 0 : 2;
}

static const pn_opt_choice resize_choices[] = {{"squash", 0}, {"letterbox", 1}, {NULL, 0}};
static const pn_opt_choice precision_choices[] = {{"fp32", PN_F32}, {"bf16", PN_BF16}, {NULL, 0}};
static const pn_opt_choice optimizer_choices[] = {
    {"sgd", PN_SGD}, {"adam", PN_ADAM}, {"adamw", PN_ADAMW}, {NULL, 0}};
static const pn_opt_choice schedule_choices[] = {{"constant", PN_SCHED_CONSTANT}, {"step", PN_SCHED_STEP},
                                                 {"cosine", PN_SCHED_COSINE}, {"plateau", PN_SCHED_PLATEAU},
                                                 {NULL, 0}};

/* auto | none | W0,W1 (two positive weights) */
static int parse_class_weights(const char *v, void *dest)
{
    pn_train_config *c = dest;
    float w[2];
    char tail;
    if (!strcmp(v, "auto") || !strcmp(v, "none")) {
        c->class_weights_auto = !strcmp(v, "auto");
        c->class_weights[0] = c->class_weights[1] = 0;
        return 0;
    }
    if (sscanf(v, "%f,%f%c", &w[0], &w[1], &tail) != 2 || !(w[0] > 0 && w[0] < 1e6f) || !(w[1] > 0 && w[1] < 1e6f))
        return -1;
    c->class_weights_auto = 0;
    c->class_weights[0] = w[0];
    c->class_weights[1] = w[1];
    return 0;
}

/* The recipe's option table and the values read from it, which the config
 * points into until the command ends. */
typedef struct recipe_reader {
    const pn_option *table;
    char **values;
    size_t n, cap;
} recipe_reader;

static const char *keep_value(recipe_reader *r, const char *value)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 32;
        char **grown = realloc(r->values, cap * sizeof *grown);
        if (!grown)
            return NULL;
        r->values = grown;
        r->cap = cap;
    }
    return (r->values[r->n] = strdup(value)) ? r->values[r->n++] : NULL;
}

static void recipe_reader_free(recipe_reader *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->values[i]);
    free(r->values);
}

/* A recipe is `key = value` lines with the option names (comments with #),
 * checked by the same parser as the command line. */
static int read_recipe(const char *path, void *reader)
{
    recipe_reader *rr = reader;
    size_t len = strlen(path);
    if (len > 4 && !strcmp(path + len - 4, ".cfg"))
        fprintf(stderr, "pneumo train: warning: %s: .cfg is the extension of architecture files; "
                        "name recipes NAME.recipe (read anyway)\n", path);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "pneumo train: %s: %s\n", path, strerror(errno));
        return -1;
    }
    char line[1024];
    int lineno = 0, rc = 0;
    while (!rc && fgets(line, sizeof line, f)) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        char key[128], value[896], where[600];
        snprintf(where, sizeof where, "%s:%d", path, lineno);
        if (line[strspn(line, " \t\r\n")] == '\0')
            continue;
        if (sscanf(line, " %127[^= \t] = %895[^\n]", key, value) != 2) {
            fprintf(stderr, "pneumo train: %s: expected key = value\n", where);
            rc = -1;
            break;
        }
        for (char *e = value + strlen(value); e > value && strchr(" \t\r", e[-1]); ) *--e = '\0';
        if (!strcmp(key, "recipe")) {
            fprintf(stderr, "pneumo train: %s: a recipe cannot include another\n", where);
            rc = -1;
        } else {
            const char *kept = keep_value(rr, value);
            rc = kept && !pn_opts_set("pneumo train", rr->table, key, kept, where) ? 0 : -1;
        }
    }
    fclose(f);
    return rc;
}

void pn_cli_train_progress(void *user, const pn_train_progress *p)
{
    int tty = *(int *)user;
    const char *clear = tty ? "\r\033[K" : "";
    if (p->warning) {
        fprintf(stderr, "%swarning: %s\n", clear, p->warning);
        return;
    }
    char fold[32] = "";
    if (p->folds)
        snprintf(fold, sizeof fold, "fold %d/%d  ", p->fold, p->folds);
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

volatile int *pn_cli_stop_flag(void)
{
    signal(SIGINT, on_sigint);
    signal(SIGUSR1, on_sigint);
    return &stop_requested;
}

static const pn_opt_choice keep_choices[] = {{"best", 0}, {"last", 1}, {NULL, 0}};

static int parse_preset(const char *v, void *dest)
{
    int p = pn_augment_preset_parse(v);
    if (p < 0)
        return -1;
    *(pn_augment_preset *)dest = (pn_augment_preset)p;
    return 0;
}

/* Training throughput and, in a process group, the time rank 0 waited for the others. */
static void print_throughput(const pn_train_result *r)
{
    if (r->processes > 1)
        printf("training: %.1f images/s over %d processes; rank 0 waited %.1f s for gradient sums, "
               "%.1f s in all collectives, of %.1f s\n", r->images_per_s, r->processes, r->grad_wait_s,
               r->comm_wait_s, r->seconds);
    else
        printf("training: %.1f images/s\n", r->images_per_s);
}

/* Trains with the parsed config and prints the outcome; the exit code. */
static int train(const pn_train_config *cfg)
{
    pn_dist *d = pn_cli_dist_open("pneumo train", cfg->dist_timeout_s);
    if (!d)
        return 1;
    pn_train_config cc = *cfg, *c = &cc;
    cc.dist = d;
    int tty = isatty(2), root = pn_dist_is_root(d);
    pn_train_result r;
    pn_error err = {0};
    pn_status st = pn_train_run(c, root ? pn_cli_train_progress : NULL, &tty, pn_cli_stop_flag(), &r, &err);
    if (st) {
        pn_cli_dist_fail(d, "pneumo train", err.msg);
        return 1;
    }
    if (!root) { /* rank 0 reports (and exits 130 when stopped) */
        pn_dist_close(d);
        return 0;
    }
    if (r.stopped) {
        print_throughput(&r);
        fprintf(stderr, "\nstopped; continue with the same command plus --resume (checkpoint in %s)\n", c->out_dir);
        pn_dist_close(d);
        return 130;
    }
    print_throughput(&r);
    printf("model: %s\nbest epoch %d, %.1f s\nvalidation (%s split of train, %s): ROC AUC %.4f, "
           "sensitivity %.4f, specificity %.4f, accuracy %.4f, balanced accuracy %.4f\n"
           "threshold %.4f (sensitivity >= %.2f rule; Youden %.4f), temperature %.3f\n",
           r.model_path, r.best_epoch, r.seconds, r.split_kind, "at the stored threshold", r.val_auc,
           r.val_sensitivity, r.val_specificity, r.val_accuracy, r.val_balanced_accuracy, r.threshold,
           c->target_sensitivity, r.threshold_youden, r.temperature);
    pn_cli_ood_fit(r.model_path, c->data_dir, c->threads);
    pn_dist_close(d);
    return 0;
}

int pn_cli_train_main(int argc, char **argv, pn_train_config c, int (*run)(const pn_train_config *c))
{
    static char command[4096];
    size_t len = 0;
    for (int i = 0; i < argc && len < sizeof command - 1; i++)
        len += (size_t)snprintf(command + len, sizeof command - len, "%s%s", i ? " " : "pneumo ", argv[i]);
    c.recipe_text = command;
    _Static_assert(sizeof(pn_dtype) == sizeof(int) && sizeof(pn_optim_kind) == sizeof(int) &&
                   sizeof(pn_schedule_kind) == sizeof(int), "choice options store an int");
    recipe_reader recipe = {0};
    char prog[64];
    snprintf(prog, sizeof prog, "pneumo %s", argv[0]);
    pn_option table[48] = {
        PN_OPT_STRING("data", &c.data_dir),
        PN_OPT_STRING("arch", &c.arch),
        PN_OPT_STRING("init", &c.init),
        PN_OPT_STRING("init-skip", &c.init_skip),
        PN_OPT_STRING("out", &c.out_dir),
        PN_OPT_INT("input-size", &c.input_size, 8, 4096),
        PN_OPT_INT("channels", &c.channels, 1, 3),
        PN_OPT_INT("epochs", &c.epochs, 1, 100000),
        PN_OPT_INT("batch", &c.batch, 1, 65536),
        PN_OPT_INT("threads", &c.threads, 1, 1024),
        PN_OPT_FLOAT_ABOVE("lr", &c.lr, 0, 10),
        PN_OPT_FLOAT("weight-decay", &c.weight_decay, 0, 1),
        PN_OPT_FLOAT("label-smoothing", &c.label_smoothing, 0, 0.5),
        PN_OPT_FLOAT_ABOVE("val-fraction", &c.val_fraction, 0, 0.9),
        PN_OPT_FLOAT("warmup-epochs", &c.warmup_epochs, 0, 100000),
        PN_OPT_STRING("freeze", &c.freeze_prefix),
        PN_OPT_INT("freeze-epochs", &c.freeze_epochs, 0, 100000),
        PN_OPT_FLOAT_ABOVE("phase2-lr-scale", &c.phase2_lr_scale, 0, 1000),
        PN_OPT_INT("early-stop", &c.early_stop, 0, 100000),
        PN_OPT_FLOAT_ABOVE("target-sensitivity", &c.target_sensitivity, 0, 1),
        PN_OPT_U64("seed", &c.seed, 0, 1e18),
        PN_OPT_INT("max-images", &c.max_images, 1, 1 << 30),
        PN_OPT_INT("stop-after", &c.stop_after, 1, 1 << 30),
        PN_OPT_CHOICE("resize", &c.letterbox, resize_choices),
        PN_OPT_INT("augment", &c.augment, 0, 1),
        PN_OPT_FLAG("no-augment", &c.augment, 0),
        PN_OPT_FLAG("resume", &c.resume, 1),
        PN_OPT_CHOICE("precision", (int *)&c.precision, precision_choices),
        PN_OPT_CHOICE("optimizer", (int *)&c.optimizer, optimizer_choices),
        PN_OPT_CHOICE("schedule", (int *)&c.schedule, schedule_choices),
        PN_OPT_CUSTOM("class-weights", &c, parse_class_weights, "auto, none or two positive weights W0,W1"),
        PN_OPT_CUSTOM("augment-preset", &c.aug_preset, parse_preset, "default or strong"),
        PN_OPT_FLOAT("mixup", &c.mixup_alpha, 0, 10),
        PN_OPT_FLOAT("ema", &c.ema_decay, 0, 0.99999),
        PN_OPT_INT("clahe", &c.clahe, 0, 1),
        PN_OPT_INT("classes", &c.classes, 2, 3),
        PN_OPT_CHOICE("keep", &c.keep_last, keep_choices),
        PN_OPT_INT("folds", &c.folds, 2, 100),
        PN_OPT_INT("fold", &c.fold, 0, 99),
        PN_OPT_FLAG("sync-bn", &c.sync_bn, 1),
        PN_OPT_FLAG("patient-ids", &c.patient_ids, 1),
        PN_OPT_FLOAT_ABOVE("dist-timeout", &c.dist_timeout_s, 0, 1e6),
        PN_OPT_CUSTOM("recipe", &recipe, read_recipe, "a readable recipe file of valid keys (see above)"),
        PN_OPT_END,
    };
    recipe.table = table;
    pn_opts_result parsed = pn_opts_parse(prog, table, argc, argv, 1, NULL, NULL);
    int rc = parsed == PN_OPTS_HELP ? usage(stdout)
             : parsed == PN_OPTS_BAD ? 2
             : c.data_dir           ? run(&c)
                                    : usage(stderr);
    recipe_reader_free(&recipe);
    return rc;
}

int pn_cmd_train(int argc, char **argv)
{
    return pn_cli_train_main(argc, argv, pn_train_defaults(), train);
}
