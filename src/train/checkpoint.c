/* Training checkpoints: everything pn_train_run needs to continue a stopped
 * run exactly as if it had not stopped. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pneumo/safetensors.h"
#include "train/internal.h"

#define CHECKPOINT_VERSION "1"

static pn_status add_vector(pn_st_writer *w, const char *prefix, const char *name, int ndim,
                            const int *shape, const float *data, pn_error *err)
{
    char full[256];
    int64_t dims[4];
    for (int i = 0; i < ndim; i++)
        dims[i] = shape[i];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    return pn_st_writer_add_f32(w, full, PN_ST_F32, ndim, dims, data, err);
}

static pn_status add_tensors(const trainer *t, pn_st_writer *w, pn_error *err)
{
    pn_status st = PN_OK;
    size_t off = 0;
    for (size_t i = 0; !st && i < pn_net_param_count(t->net); i++) {
        const pn_param *p = pn_net_param(t->net, i);
        st = add_vector(w, "param/", p->name, p->ndim, p->shape, p->data, err);
        if (!st)
            st = add_vector(w, "best/", p->name, p->ndim, p->shape, t->best_params + off, err);
        float *m = pn_optim_state(t->opt, i, 0), *v = pn_optim_state(t->opt, i, 1);
        if (!st && m)
            st = add_vector(w, "optim_m/", p->name, p->ndim, p->shape, m, err);
        if (!st && v)
            st = add_vector(w, "optim_v/", p->name, p->ndim, p->shape, v, err);
        if (!st && t->ema)
            st = add_vector(w, "ema/", p->name, p->ndim, p->shape, t->ema + off, err);
        off += p->numel;
    }
    int e = t->cfg->epochs;
    const float *hist[] = {t->h_train_loss, t->h_val_loss, t->h_train_acc, t->h_val_acc, t->h_val_auc};
    for (int k = 0; !st && k < PN_HISTORY_COLUMNS; k++)
        st = add_vector(w, "history/", pn_history_keys[k], 1, &e, hist[k], err);
    return st;
}

static char *state_json(const trainer *t, const train_state *s)
{
    json_t *j = json_pack("{s:i, s:i, s:i, s:i, s:i, s:f, s:f, s:f, s:f, s:f, s:I, s:I, s:f, s:f, s:i}",
                          "epoch", s->epoch, "batch", s->batch, "step", s->step,
                          "best_epoch", s->best_epoch, "since_best", s->since_best,
                          "best_auc", s->best_auc, "best_loss", isfinite(s->best_loss) ? s->best_loss : 1e300,
                          "loss_sum", s->loss_sum, "correct", s->correct, "seen", s->seen,
                          "net_step", (json_int_t)*pn_net_step_counter(t->net),
                          "optim_step", (json_int_t)*pn_optim_step_counter(t->opt),
                          "sched_best", isfinite(s->sched.best) ? (double)s->sched.best : 1e300,
                          "sched_lr", (double)s->sched.current_lr, "sched_bad", s->sched.bad_epochs);
    char *text = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(j);
    return text;
}

pn_status pn_checkpoint_save(const trainer *t, const train_state *s, pn_error *err)
{
    pn_st_writer *w;
    pn_status st = pn_st_writer_create(&w, err);
    if (st)
        return st;
    char *state = state_json(t, s), *recipe = pn_train_recipe_json(t->cfg, t, 0);
    char path[4096];
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", t->cfg->out_dir);
    st = add_tensors(t, w, err);
    if (!st) st = pn_st_writer_set_metadata(w, "pneumo_checkpoint", CHECKPOINT_VERSION, err);
    if (!st) st = pn_st_writer_set_metadata(w, "state", state ? state : "{}", err);
    if (!st) st = pn_st_writer_set_metadata(w, "recipe", recipe ? recipe : "{}", err);
    if (!st) st = pn_st_writer_save(w, path, err);
    free(state);
    free(recipe);
    pn_st_writer_destroy(w);
    return st;
}

static pn_status read_vector(pn_st_file *f, const char *path, const char *prefix, const char *name,
                             size_t numel, float *dst, pn_error *err)
{
    char full[256];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    const pn_st_tensor *x = pn_st_find(f, full);
    if (!x || x->numel != numel)
        return pn_fail(err, PN_EFORMAT, "%s: '%s' missing or of the wrong size", path, full);
    return pn_st_to_f32(x, dst, err);
}

static pn_status read_tensors(trainer *t, pn_st_file *f, const char *path, pn_error *err)
{
    pn_status st = PN_OK;
    size_t off = 0;
    for (size_t i = 0; !st && i < pn_net_param_count(t->net); i++) {
        pn_param *p = pn_net_param(t->net, i);
        st = read_vector(f, path, "param/", p->name, p->numel, p->data, err);
        if (!st)
            st = read_vector(f, path, "best/", p->name, p->numel, t->best_params + off, err);
        float *m = pn_optim_state(t->opt, i, 0), *v = pn_optim_state(t->opt, i, 1);
        if (!st && m)
            st = read_vector(f, path, "optim_m/", p->name, p->numel, m, err);
        if (!st && v)
            st = read_vector(f, path, "optim_v/", p->name, p->numel, v, err);
        if (!st && t->ema)
            st = read_vector(f, path, "ema/", p->name, p->numel, t->ema + off, err);
        off += p->numel;
    }
    float *hist[] = {t->h_train_loss, t->h_val_loss, t->h_train_acc, t->h_val_acc, t->h_val_auc};
    for (int k = 0; !st && k < PN_HISTORY_COLUMNS; k++)
        st = read_vector(f, path, "history/", pn_history_keys[k], (size_t)t->cfg->epochs, hist[k], err);
    pn_net_params_changed(t->net);
    return st;
}

static pn_status read_state(trainer *t, train_state *s, const char *text, const char *path, pn_error *err)
{
    json_t *j = json_loads(text, 0, NULL);
    if (!j)
        return pn_fail(err, PN_EFORMAT, "%s: unreadable training state", path);
    json_int_t net_step = 0, optim_step = 0;
    double best_loss = 0, sched_best = 0, sched_lr = 0;
    int rc = json_unpack(j, "{s:i, s:i, s:i, s:i, s:i, s:F, s:F, s:F, s:F, s:F, s:I, s:I, s:F, s:F, s:i}",
                         "epoch", &s->epoch, "batch", &s->batch, "step", &s->step,
                         "best_epoch", &s->best_epoch, "since_best", &s->since_best,
                         "best_auc", &s->best_auc, "best_loss", &best_loss, "loss_sum", &s->loss_sum,
                         "correct", &s->correct, "seen", &s->seen, "net_step", &net_step,
                         "optim_step", &optim_step, "sched_best", &sched_best, "sched_lr", &sched_lr,
                         "sched_bad", &s->sched.bad_epochs);
    json_decref(j);
    if (rc)
        return pn_fail(err, PN_EFORMAT, "%s: incomplete training state", path);
    s->best_loss = best_loss >= 1e300 ? INFINITY : best_loss;
    s->sched.best = sched_best >= 1e300 ? INFINITY : (float)sched_best;
    s->sched.current_lr = (float)sched_lr;
    *pn_net_step_counter(t->net) = (uint64_t)net_step;
    *pn_optim_step_counter(t->opt) = optim_step;
    return PN_OK;
}

/* Equal JSON values, whatever the key order or spacing of the two texts. */
static int same_json(const char *a, const char *b)
{
    json_t *x = json_loads(a, 0, NULL), *y = json_loads(b, 0, NULL);
    int same = x && y && json_equal(x, y);
    json_decref(x);
    json_decref(y);
    return same;
}

pn_status pn_checkpoint_load(trainer *t, train_state *s, pn_error *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", t->cfg->out_dir);
    pn_st_file *f;
    pn_status st = pn_st_open(path, &f, err);
    if (st)
        return pn_error_prefix(err, st, "--resume: ");
    const char *version = pn_st_metadata(f, "pneumo_checkpoint"), *state = pn_st_metadata(f, "state");
    const char *saved_recipe = pn_st_metadata(f, "recipe");
    char *recipe = pn_train_recipe_json(t->cfg, t, 0);
    if (!version || strcmp(version, CHECKPOINT_VERSION) || !state || !saved_recipe)
        st = pn_fail(err, PN_EFORMAT, "%s: not a pneumo training checkpoint", path);
    else if (!recipe || !same_json(recipe, saved_recipe))
        st = pn_fail(err, PN_EINVAL, "%s: made with a different recipe; resume needs the same options", path);
    if (!st)
        st = read_tensors(t, f, path, err);
    if (!st)
        st = read_state(t, s, state, path, err);
    free(recipe);
    pn_st_close(f);
    return st;
}
