/* The training loop behind `pneumo train`. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "pneumo/data.h"
#include "pneumo/disclaimer.h"
#include "pneumo/eval.h"
#include "pneumo/os.h"
#include "pneumo/safetensors.h"
#include "pneumo/train.h"
#include "train/internal.h"

pn_train_config pn_train_defaults(void)
{
    pn_train_config c = {0};
    c.arch = "mobilenetv3-small";
    c.out_dir = "runs/latest";
    c.epochs = 10;
    c.batch = 32;
    c.lr = 1e-3f;
    c.weight_decay = 1e-4f;
    c.val_fraction = 0.2f;
    c.optimizer = PN_ADAMW;
    c.schedule = PN_SCHED_COSINE;
    c.warmup_epochs = 0.5f;
    c.phase2_lr_scale = 0.3f;
    c.class_weights_auto = 1;
    c.augment = 1;
    c.target_sensitivity = 0.95f;
    c.precision = PN_BF16;
    c.seed = 42;
    c.classes = 2;
    return c;
}


/* ---- network ---- */
static pn_status setup_net(trainer *t, pn_error *err)
{
    const pn_train_config *c = t->cfg;
    pn_status st;
    if ((st = pn_arch_read(c->arch, &t->arch_text, err)) || (st = pn_ctx_create_with(&(pn_ctx_options){.threads = c->threads}, &t->ctx, err)))
        return st;
    pn_net_options o = {.channels = c->channels, .input_size = c->input_size, .classes = t->classes,
                        .precision = c->precision, .seed = c->seed,
                        .bn_group = c->sync_bn && t->ranks > 1 ? &t->bn_group : NULL};
    if ((st = pn_net_create(t->ctx, t->arch_text, &o, &t->net, err)))
        return st;
    if (c->init) {
        char *report = NULL;
        if ((st = pn_net_load_weights(t->net, c->init, NULL, c->init_skip, &report, err)))
            return st;
        free(report);
    }
    pn_optim_config oc = pn_optim_defaults(c->optimizer);
    oc.lr = c->lr;
    oc.weight_decay = c->weight_decay;
    oc.clip_norm = 5.0f;
    return pn_optim_create(&oc, t->net, &t->opt, err);
}

/* Pretrained batch norms start as identity + folded bias; before they train
 * with batch statistics, match them to this data (see pn_net_recalibrate_bn). */
static pn_status recalibrate(trainer *t, pn_error *err)
{
    int n;
    pn_status st = pn_loader_start_epoch(t->val, 0, err);
    if (!st)
        st = pn_loader_next(t->val, t->x, t->labels, NULL, &n, err);
    if (!st && n > 0)
        st = pn_net_recalibrate_bn(t->net, t->x, n, err);
    return st;
}

/* ---- one epoch ---- */

static int budget_spent(const pn_train_config *c, const train_state *s)
{
    return c->stop_after > 0 && s->step >= c->stop_after;
}

/* Trains from s->batch to the end of epoch s->epoch, or until *stop. The
 * loader's order and augmentation depend only on (seed, epoch, position), so
 * skipping the batches already done resumes exactly where a stop left off. */
static pn_status run_epoch(trainer *t, train_state *s, int phase, float lr_scale,
                           pn_train_progress_fn progress, void *user, volatile int *stop,
                           pn_error *err)
{
    pn_status st = pn_loader_start_epoch(t->train, s->epoch, err);
    int batches = (int)pn_loader_batches(t->train), n;
    for (int skip = 0; !st && skip < s->batch; skip++)
        st = pn_loader_next(t->train, t->x, t->labels, NULL, &n, err);
    double t0 = pn_clock_s(), seen0 = s->seen;
    while (!st && !pn_train_stopping(t, stop) && !budget_spent(t->cfg, s)) {
        double step0 = pn_clock_s();
        if ((st = pn_loader_next(t->train, t->x, t->labels, t->batch_index, &n, err)) || n == 0)
            break;
        pn_train_to_classes(t, t->batch_index, t->labels, n);
        float lam = t->cfg->mixup_alpha > 0 ? pn_train_mixup_batch(t, s->step, n) : 1.0f;
        if ((st = pn_net_forward(t->net, t->x, n, PN_FWD_TRAIN, err)))
            break;
        const float *z = pn_net_logits(t->net);
        float loss = pn_train_batch_loss(t, z, n, lam);
        double correct = 0, seen = n; /* the whole batch's, over all processes */
        for (int i = 0; i < n; i++)
            correct += pn_train_argmax(z + (size_t)i * t->classes, t->classes) == t->labels[i];
        if ((st = pn_train_par_step(t, n, &loss, &correct, &seen, stop, err)) ||
            (st = pn_net_backward(t->net, t->dlogits, err)) || (st = pn_train_par_grads(t, err)))
            break;
        float lr = pn_schedule_lr(&s->sched, s->step, s->epoch) * lr_scale;
        pn_optim_step(t->opt, lr);
        if (t->ema)
            pn_train_ema_update(t, s->step);
        s->step++;
        s->correct += correct;
        s->loss_sum += (double)loss * seen;
        s->seen += seen;
        s->batch++;
        if (++t->steps_run > 2) { /* after the first two: oneDNN makes its primitives there */
            t->images_trained += seen;
            t->train_s += pn_clock_s() - step0;
        }
        if (progress) {
            double el = pn_clock_s() - t0, done = s->seen - seen0;
            pn_train_progress p = {.epoch = s->epoch + 1, .epochs = t->cfg->epochs, .batch = s->batch,
                                   .batches = batches, .phase = phase, .loss = s->loss_sum / s->seen,
                                   .accuracy = s->correct / s->seen, .images_per_s = done / el,
                                   .eta_s = el / done * t->cfg->batch * (batches - s->batch),
                                   .elapsed_s = pn_clock_s() - t->t_start, .lr = lr};
            progress(user, &p);
        }
    }
    return st;
}

/* Validation logits (classes per image, in split order), binary labels and cache indices. */
static pn_status validate(trainer *t, double *loss_out, pn_error *err)
{
    pn_status st = pn_loader_start_epoch(t->val, 0, err);
    size_t done = 0;
    double loss = 0;
    int n, C = t->classes;
    while (!st) {
        if ((st = pn_loader_next(t->val, t->x, t->labels, t->val_index + done, &n, err)) || n == 0)
            break;
        if ((st = pn_net_forward(t->net, t->x, n, PN_FWD_INFER, err)))
            break;
        memcpy(t->val_labels + done, t->labels, (size_t)n * sizeof(int));
        pn_train_to_classes(t, t->val_index + done, t->labels, n);
        const float *z = pn_net_logits(t->net);
        loss += pn_softmax_cross_entropy(z, t->labels, n, C, NULL, 0, NULL) * n;
        memcpy(t->logits_val + (size_t)C * done, z, (size_t)n * C * sizeof(float));
        done += (size_t)n;
    }
    t->n_val = done;
    *loss_out = done ? loss / done : NAN;
    return st;
}

static void val_probs(const trainer *t, double temperature, float *prob)
{
    for (size_t i = 0; i < t->n_val; i++) {
        double d = pn_positive_logit(t->logits_val + (size_t)i * t->classes, t->classes) / temperature;
        prob[i] = (float)(1 / (1 + exp(-d)));
    }
}

/* ---- outputs ---- */
static pn_status save_checkpoint(const trainer *t, const char *name, int epoch, pn_error *err)
{
    char path[4096], ep[16];
    snprintf(path, sizeof path, "%s/%s", t->cfg->out_dir, name);
    snprintf(ep, sizeof ep, "%d", epoch + 1);
    pn_kv meta[] = {{"checkpoint_epoch", ep}, {"arch_name", t->cfg->arch}};
    return pn_net_save(t->net, path, meta, 2, 0, err);
}

pn_holdout pn_train_holdout(const pn_train_config *c)
{
    return (pn_holdout){.folds = c->folds, .fold = c->fold, .val_fraction = c->val_fraction, .seed = c->seed};
}

char *pn_train_recipe_json(const pn_train_config *c, const trainer *t, int with_command)
{
    json_t *r = json_pack("{s:s, s:s, s:i, s:i, s:i, s:i, s:f, s:f, s:f, s:s, s:i, s:f, s:s, s:[f,f], s:b}",
                          "data", c->data_dir, "arch", c->arch, "input_size", pn_net_input_size(t->net),
                          "channels", pn_net_channels(t->net), "epochs", c->epochs, "batch", c->batch,
                          "lr", c->lr, "weight_decay", c->weight_decay, "label_smoothing", c->label_smoothing,
                          "init", c->init ? c->init : "",
                          "freeze_epochs", c->freeze_epochs, "phase2_lr_scale", c->phase2_lr_scale,
                          "precision", pn_net_precision(t->net) == PN_BF16 ? "bf16" : "fp32",
                          "class_weights", t->class_weights[0], t->class_weights[1], "augment", c->augment);
    pn_holdout rule = pn_train_holdout(c);
    char *rule_text = pn_holdout_to_json(&rule);
    json_t *rule_keys = rule_text ? json_loads(rule_text, 0, NULL) : NULL;
    json_object_update(r, rule_keys);
    json_decref(rule_keys);
    free(rule_text);
    json_object_set_new(r, "resize", json_string(c->letterbox ? "letterbox" : "squash"));
    json_object_set_new(r, "classes", json_integer(t->classes));
    json_object_set_new(r, "augment_preset", json_string(pn_augment_preset_names[c->aug_preset]));
    json_object_set_new(r, "ema_decay", json_real(c->ema_decay));
    json_object_set_new(r, "mixup", json_real(c->mixup_alpha));
    json_object_set_new(r, "clahe", json_boolean(c->clahe));
    json_object_set_new(r, "keep", json_string(c->keep_last ? "last" : "best"));
    if (c->sync_bn)
        json_object_set_new(r, "sync_bn", json_true());
    if (c->recipe_text && with_command)
        json_object_set_new(r, "command", json_string(c->recipe_text));
    if (with_command && t->ranks > 1) /* provenance only: a checkpoint resumes on any number */
        json_object_set_new(r, "processes", json_integer(t->ranks));
    char *s = json_dumps(r, JSON_COMPACT);
    json_decref(r);
    return s;
}

/* Validation logits exactly as the saved model will compute them: weights
 * rounded to bf16 as pn_net_save stores them, fp32 inference as pn_model
 * runs. Threshold and temperature are fitted on these, not on the training
 * network's bf16 arithmetic. */
static pn_status validate_as_deployed(trainer *t, pn_error *err)
{
    pn_net_options o = {.channels = pn_net_channels(t->net), .input_size = pn_net_input_size(t->net),
                        .classes = t->classes, .precision = PN_F32, .seed = t->cfg->seed};
    pn_net *deployed;
    pn_status st = pn_net_create(t->ctx, t->arch_text, &o, &deployed, err);
    if (st)
        return st;
    for (size_t i = 0; i < pn_net_param_count(t->net); i++) {
        const pn_param *src = pn_net_param(t->net, i);
        pn_param *dst = pn_net_param(deployed, i);
        int as_bf16 = pn_param_stored_bf16(src);
        for (size_t k = 0; k < src->numel; k++)
            dst->data[k] = as_bf16 ? pn_bf16_to_f32(pn_f32_to_bf16(src->data[k])) : src->data[k];
    }
    pn_net_params_changed(deployed);
    pn_net *training = t->net;
    double vloss;
    t->net = deployed;
    st = validate(t, &vloss, err);
    t->net = training;
    pn_net_destroy(deployed);
    return st;
}

/* out_dir/val_predictions.csv: one row per held-out image with its binary
 * logit as the saved model computes it (before temperature scaling) and,
 * with three classes, the three logits; cv pools these across folds. */
static pn_status write_predictions(const trainer *t, pn_error *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/val_predictions.csv", t->cfg->out_dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return pn_fail(err, PN_EIO, "%s: %s", path, strerror(errno));
    fprintf(f, "path,patient,label,subtype,fold,logit%s\n", t->classes == 3 ? ",z_normal,z_bacterial,z_viral" : "");
    for (size_t i = 0; i < t->n_val; i++) {
        const pn_sample *smp = &t->ds.samples[t->val_index[i]];
        const float *z = t->logits_val + (size_t)i * t->classes;
        /* A manifest's patient_id may be a hospital's record number: written only on request. */
        char group[24];
        snprintf(group, sizeof group, "group%d", smp->group);
        fprintf(f, "\"%s\",%s,%d,%d,%d,%.7g", smp->path, t->cfg->patient_ids ? smp->patient : group,
                t->val_labels[i], smp->subtype, t->cfg->folds > 0 ? t->cfg->fold : -1,
                pn_positive_logit(z, t->classes));
        for (int k = 0; t->classes == 3 && k < 3; k++)
            fprintf(f, ",%.7g", z[k]);
        fputc('\n', f);
    }
    return fclose(f) ? pn_fail(err, PN_EIO, "%s: write failed", path) : PN_OK;
}

/* Temperature, thresholds and validation metrics of the best weights; writes model.safetensors. */
static pn_status finalize(trainer *t, pn_train_result *res, int epochs_done, pn_error *err)
{
    double temperature = 1;
    pn_status st = validate_as_deployed(t, err);
    float *prob = malloc(t->n_val * sizeof(float)), *diff = malloc(t->n_val * sizeof(float));
    if (!prob || !diff)
        st = st ? st : pn_fail(err, PN_ENOMEM, "out of memory");
    for (size_t i = 0; !st && i < t->n_val; i++)
        diff[i] = pn_positive_logit(t->logits_val + (size_t)i * t->classes, t->classes);
    if (!st)
        st = write_predictions(t, err);
    if (!st)
        st = pn_temperature_fit(diff, t->val_labels, t->n_val, &temperature, err);
    pn_operating_point sens_op, youden;
    pn_metrics m;
    pn_metrics_ci ci;
    json_t *mj = NULL;
    if (!st) {
        val_probs(t, temperature, prob);
        st = pn_threshold_for_sensitivity(prob, t->val_labels, t->n_val, t->cfg->target_sensitivity, &sens_op, err);
    }
    if (!st) {
        /* The rule returns one validation score; halfway to the next lower score
         * keeps the operating point when deployment arithmetic differs by 1e-6. */
        float below = 0;
        for (size_t i = 0; i < t->n_val; i++)
            if (prob[i] < sens_op.threshold && prob[i] > below)
                below = prob[i];
        sens_op.threshold = 0.5f * (sens_op.threshold + below);
    }
    if (!st) st = pn_threshold_youden(prob, t->val_labels, t->n_val, &youden, err);
    if (!st) st = pn_metrics_compute(prob, t->val_labels, t->n_val, sens_op.threshold, &m, err);
    if (!st) st = pn_metrics_bootstrap(prob, t->val_labels, t->n_val, sens_op.threshold, 1000, t->cfg->seed, &ci, err);
    if (!st) st = pn_metrics_to_json(&m, &ci, &mj, err);
    if (!st) {
        char split_desc[96];
        if (t->cfg->folds > 0)
            snprintf(split_desc, sizeof split_desc, "held-out fold %d of %d (%s) of the training folder",
                     t->cfg->fold + 1, t->cfg->folds, pn_split_kind(&t->split));
        else
            snprintf(split_desc, sizeof split_desc, "%s validation split of the training folder",
                     pn_split_kind(&t->split));
        json_object_set_new(mj, "split", json_string(split_desc));
        json_object_set_new(mj, "threshold_youden", json_real(youden.threshold));
        char *metrics = json_dumps(mj, JSON_COMPACT | JSON_REAL_PRECISION(6));
        char *recipe = pn_train_recipe_json(t->cfg, t, 1);
        char *history = pn_train_history_json(t, epochs_done);
        char thr[32], thr_y[32], temp[32], secs[32], when[32], counts[96];
        snprintf(thr, sizeof thr, "%.6g", sens_op.threshold);
        snprintf(thr_y, sizeof thr_y, "%.6g", youden.threshold);
        snprintf(temp, sizeof temp, "%.6g", temperature);
        snprintf(secs, sizeof secs, "%.1f", pn_clock_s() - t->t_start);
        time_t tt = time(NULL);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&tt));
        snprintf(counts, sizeof counts, "{\"train\":%zu,\"val\":%zu}", t->n_train, t->n_val);
        char rule[64];
        snprintf(rule, sizeof rule, "highest threshold with validation sensitivity >= %.2f", t->cfg->target_sensitivity);
        pn_kv meta[] = {{"arch_name", t->cfg->arch}, {"threshold", thr}, {"threshold_rule", rule},
                        {"threshold_youden", thr_y}, {"temperature", temp}, {"metrics", metrics},
                        {"recipe", recipe}, {"trained_at", when}, {"train_seconds", secs},
                        {"class_names", t->classes == 3 ? "[\"NORMAL\",\"BACTERIAL\",\"VIRAL\"]" : "[\"NORMAL\",\"PNEUMONIA\"]"},
                        {"resize", t->cfg->letterbox ? "letterbox" : "squash"}, {"clahe", t->cfg->clahe ? "1" : "0"},
                        {"images", counts}, {"history", history ? history : "{}"},
                        {"disclaimer", PN_DISCLAIMER}};
        snprintf(res->model_path, sizeof res->model_path, "%s/model.safetensors", t->cfg->out_dir);
        st = pn_net_save(t->net, res->model_path, meta, sizeof meta / sizeof *meta, 1, err);
        free(metrics);
        free(recipe);
        free(history);
        res->threshold = sens_op.threshold;
        res->threshold_youden = youden.threshold;
        res->temperature = (float)temperature;
        res->val_auc = m.roc_auc;
        res->val_sensitivity = m.sensitivity;
        res->val_specificity = m.specificity;
        res->val_accuracy = m.accuracy;
        res->val_balanced_accuracy = m.balanced_accuracy;
    }
    json_decref(mj);
    free(prob);
    free(diff);
    return st;
}

static void trainer_free(trainer *t)
{
    pn_loader_free(t->train);
    pn_loader_free(t->val);
    pn_cache_close(t->cache);
    pn_split_free(&t->split);
    pn_dataset_free(&t->ds);
    pn_optim_destroy(t->opt);
    pn_net_destroy(t->net);
    pn_ctx_destroy(t->ctx);
    pn_train_par_free(t);
    pn_dist_close(t->own_dist);
    free(t->arch_text);
    free(t->x), free(t->dlogits), free(t->dlogits_mix), free(t->logits_val), free(t->best_params);
    free(t->ema), free(t->labels), free(t->mix_labels), free(t->val_labels), free(t->batch_index);
    free(t->val_index);
    free(t->h_train_loss), free(t->h_val_loss), free(t->h_train_acc), free(t->h_val_acc), free(t->h_val_auc);
}

static pn_status alloc_buffers(trainer *t, pn_error *err)
{
    int size = pn_net_input_size(t->net), ch = pn_net_channels(t->net), e = t->cfg->epochs;
    size_t nv = t->split.n_val;
    size_t B = (size_t)t->local_batch, C = (size_t)t->classes; /* this process's images per step */
    t->x = malloc(B * size * size * ch * sizeof(float));
    t->dlogits = malloc(B * C * sizeof(float));
    t->dlogits_mix = malloc(B * C * sizeof(float));
    t->labels = malloc(B * sizeof(int));
    t->mix_labels = malloc(B * sizeof(int));
    t->batch_index = malloc(B * sizeof(size_t));
    t->logits_val = malloc(nv * C * sizeof(float));
    t->val_labels = malloc(nv * sizeof(int));
    t->val_index = malloc(nv * sizeof(size_t));
    t->best_params = malloc(pn_train_param_values(t->net) * sizeof(float));
    if (t->cfg->ema_decay > 0 && (t->ema = malloc(pn_train_param_values(t->net) * sizeof(float))))
        pn_train_copy_params(t->net, t->ema, 1);
    float **h[] = {&t->h_train_loss, &t->h_val_loss, &t->h_train_acc, &t->h_val_acc, &t->h_val_auc};
    int ok = t->x && t->dlogits && t->dlogits_mix && t->labels && t->mix_labels && t->batch_index &&
             t->logits_val && t->val_labels && t->val_index && t->best_params &&
             (t->ema || !(t->cfg->ema_decay > 0));
    for (int i = 0; i < 5; i++)
        ok &= (*h[i] = calloc((size_t)e, sizeof(float))) != NULL;
    return ok ? PN_OK : pn_fail(err, PN_ENOMEM, "out of memory for training buffers");
}

static pn_status epoch_end(trainer *t, train_state *s, double lr, pn_train_progress_fn progress,
                           void *user, pn_error *err)
{
    int epoch = s->epoch;
    double tl = s->seen ? s->loss_sum / s->seen : NAN, ta = s->seen ? s->correct / s->seen : NAN;
    int *best_epoch = &s->best_epoch;
    double *best_auc = &s->best_auc, *best_loss = &s->best_loss;
    double vl;
    if (t->ema)
        pn_train_ema_swap(t); /* validate, keep and report the averaged weights */
    pn_status st = validate(t, &vl, err);
    float *prob = malloc(t->n_val * sizeof(float));
    pn_metrics m;
    if (!prob)
        return pn_fail(err, PN_ENOMEM, "out of memory");
    val_probs(t, 1.0, prob);
    if (!st)
        st = pn_metrics_compute(prob, t->val_labels, t->n_val, 0.5f, &m, err);
    free(prob);
    int best = t->cfg->keep_last || m.roc_auc > *best_auc + 1e-6 ||
               (fabs(m.roc_auc - *best_auc) <= 1e-6 && vl < *best_loss);
    if (!st && best) {
        *best_auc = m.roc_auc;
        *best_loss = vl;
        *best_epoch = epoch;
        pn_train_copy_params(t->net, t->best_params, 1);
    }
    if (t->ema)
        pn_train_ema_swap(t);
    if (st)
        return st;
    t->h_train_loss[epoch] = (float)tl, t->h_train_acc[epoch] = (float)ta;
    t->h_val_loss[epoch] = (float)vl, t->h_val_acc[epoch] = (float)m.accuracy, t->h_val_auc[epoch] = (float)m.roc_auc;
    pn_train_append_history(t, epoch, lr, tl, ta, vl, &m);
    if ((st = save_checkpoint(t, "last.safetensors", epoch, err)) ||
        (best && (st = save_checkpoint(t, "best.safetensors", epoch, err))))
        return st;
    if (progress) {
        pn_train_progress p = {.epoch = epoch + 1, .epochs = t->cfg->epochs, .epoch_done = 1,
                               .loss = tl, .accuracy = ta, .val_loss = vl, .val_accuracy = m.accuracy,
                               .val_auc = m.roc_auc, .val_sensitivity = m.sensitivity,
                               .val_specificity = m.specificity, .lr = lr, .best = best,
                               .elapsed_s = pn_clock_s() - t->t_start};
        progress(user, &p);
    }
    return PN_OK;
}

static void set_phase(trainer *t, int epoch)
{
    const pn_train_config *c = t->cfg;
    if (c->freeze_prefix && c->freeze_epochs > 0)
        pn_net_freeze(t->net, c->freeze_prefix, epoch < c->freeze_epochs);
}

/* Validation, checkpoints and the plateau/early-stop bookkeeping at the end of an epoch. */
static pn_status finish_epoch(trainer *t, train_state *s, float lr, pn_train_progress_fn progress,
                              void *user, int *early_stop, pn_error *err)
{
    int prev_best = s->best_epoch;
    pn_status st = PN_OK;
    if (pn_train_is_root(t)) { /* validation and files are rank 0's; the others take its decisions */
        if ((st = epoch_end(t, s, lr, progress, user, err)))
            return st;
        pn_schedule_observe(&s->sched, t->h_val_loss[s->epoch]);
        s->since_best = s->best_epoch != prev_best ? 0 : s->since_best + 1;
        *early_stop = t->cfg->early_stop > 0 && s->since_best >= t->cfg->early_stop;
        s->epoch++;
        s->batch = 0;
        s->loss_sum = s->correct = s->seen = 0;
        st = pn_checkpoint_save(t, s, err);
    }
    return st ? st : pn_train_par_epoch_end(t, s, early_stop, err);
}

static pn_status train_loop(trainer *t, train_state *s, pn_train_progress_fn progress, void *user,
                            volatile int *stop, int *stopped, pn_error *err)
{
    const pn_train_config *c = t->cfg;
    pn_status st = PN_OK;
    int early = 0;
    while (!st && !early && s->epoch < c->epochs) {
        int two_phase = c->freeze_prefix && c->freeze_epochs > 0;
        set_phase(t, s->epoch);
        /* pretrained batch norms meet batch statistics: at the start, or when unfreezing */
        int unfreezes = two_phase ? s->epoch == c->freeze_epochs : s->epoch == 0;
        if (c->init && unfreezes && s->batch == 0 && (st = recalibrate(t, err)))
            break;
        float scale = two_phase && s->epoch >= c->freeze_epochs ? c->phase2_lr_scale : 1.0f;
        /* the epoch's first learning rate, also when resuming mid-epoch */
        float lr = pn_schedule_lr(&s->sched, s->step - s->batch, s->epoch) * scale;
        int phase = two_phase && s->epoch < c->freeze_epochs ? 1 : 2;
        if ((st = pn_train_par_epoch_start(t, err)) ||
            (st = run_epoch(t, s, phase, scale, progress, user, stop, err)))
            break;
        if (pn_train_stopping(t, stop) || budget_spent(c, s)) {
            *stopped = 1;
            st = pn_train_is_root(t) ? pn_checkpoint_save(t, s, err) : PN_OK;
            return st ? st : pn_dist_barrier(t->dist, "rank 0 writes the checkpoint", err);
        }
        st = finish_epoch(t, s, lr, progress, user, &early, err);
    }
    return st;
}

/* Validation is patient-wise only when file names or the manifest carry patient ids. */
static void warn_split_kind(const trainer *t, pn_train_progress_fn progress, void *user)
{
    if (!progress || t->split.n_unknown_patient == 0)
        return;
    char msg[256];
    snprintf(msg, sizeof msg,
             "%zu of %zu images have no patient id (file name or manifest): the validation split is %s, "
             "so images of one patient may sit on both sides and validation metrics may be optimistic",
             t->split.n_unknown_patient, t->split.n_train + t->split.n_val, pn_split_kind(&t->split));
    pn_train_progress p = {.warning = msg};
    progress(user, &p);
}

pn_status pn_train_run(const pn_train_config *cfg, pn_train_progress_fn progress, void *user,
                       volatile int *stop, pn_train_result *res, pn_error *err)
{
    trainer t = {.cfg = cfg, .t_start = pn_clock_s(), .classes = cfg->classes ? cfg->classes : 2};
    memset(res, 0, sizeof *res);
    pn_status st = t.classes == 2 || t.classes == 3
                       ? pn_make_dir(cfg->out_dir, err)
                       : pn_fail(err, PN_EINVAL, "classes must be 2 or 3, got %d", t.classes);
    if (!st) st = pn_train_par_init(&t, err);
    if (!st) st = setup_net(&t, err);
    if (!st) st = pn_train_setup_data(&t, pn_net_input_size(t.net), pn_net_channels(t.net), pn_net_mean(t.net),
                             pn_net_std(t.net), err);
    if (!st) st = alloc_buffers(&t, err);
    if (!st) st = pn_train_par_setup(&t, err);
    if (!st) {
        res->split_kind = pn_split_kind(&t.split);
        warn_split_kind(&t, progress, user);
    }
    int batches = t.train ? (int)pn_loader_batches(t.train) : 0;
    train_state s = {.best_epoch = -1, .best_auc = -1, .best_loss = INFINITY};
    s.sched = (pn_schedule){.kind = cfg->schedule, .base_lr = cfg->lr, .min_lr = cfg->lr * 0.01f,
                            .warmup_steps = (int)(cfg->warmup_epochs * batches),
                            .total_steps = cfg->epochs * batches, .step_size = 3, .gamma = 0.3f,
                            .patience = 1};
    if (!st && cfg->resume && !(st = pn_checkpoint_load(&t, &s, err)) && pn_train_is_root(&t))
        st = pn_train_trim_history(&t, s.epoch, err);
    int stopped = 0;
    if (!st)
        st = train_loop(&t, &s, progress, user, stop, &stopped, err);
    res->stopped = stopped;
    if (!st && !stopped && s.best_epoch >= 0 && pn_train_is_root(&t)) {
        pn_train_copy_params(t.net, t.best_params, 0);
        res->best_epoch = s.best_epoch + 1;
        st = finalize(&t, res, s.epoch, err);
    }
    res->seconds = pn_clock_s() - t.t_start;
    res->processes = t.ranks;
    res->images_per_s = t.train_s > 0 ? t.images_trained / t.train_s : 0;
    res->grad_wait_s = t.grad_wait_s;
    res->comm_wait_s = t.dist ? pn_dist_wait_seconds(t.dist) : 0;
    trainer_free(&t);
    return st;
}
