/* Data-parallel training: what the training loop asks of its process group
 * (pn_train_config.dist), and nothing when it is one process.
 *
 * Each of N processes trains on its slice of every batch (the loader's
 * shard_first/shard_size: together the single-process epoch, augmentation
 * drawn for the global position, dropout masks too). After the forward pass
 * one small sum gives every process the batch's loss-weight total, loss,
 * accuracy, image count and stop request; each rescales its loss gradient to
 * the whole batch's normalisation, so summing gradients over the processes
 * gives exactly the gradient of one process with the whole batch. Gradients
 * are summed in buckets of about PN_BUCKET_BYTES, in reverse parameter order,
 * each started (MPI_Iallreduce) as soon as backward has finished every
 * parameter in it, while the earlier layers' backward still runs. */
#include <stdlib.h>
#include <string.h>

#include "train/internal.h"

#define PN_BUCKET_BYTES ((size_t)4 << 20)

typedef struct bucket {
    size_t lo, hi;   /* parameter indices [lo, hi); the trainable ones are summed */
    size_t values;
    int members;     /* parameters summed; with one it is summed in place */
    float *buf;      /* [values] packed gradients (members > 1), else NULL */
    int started;
} bucket;

struct pn_train_par {
    bucket *buckets; /* in the order backward completes them (last parameters first) */
    int n_buckets;
    float *flat;     /* packed buckets' storage */
    pn_status st;    /* first failure inside the backward hook */
    pn_error err;
};

static int summed(const pn_param *p) { return !p->is_buffer && !p->frozen && p->grad; }

static void start_bucket(trainer *t, bucket *b)
{
    pn_train_par *par = t->par;
    b->started = 1;
    size_t off = 0;
    float *v = b->buf;
    for (size_t i = b->lo; i < b->hi; i++) {
        const pn_param *p = pn_net_param(t->net, i);
        if (!summed(p))
            continue;
        if (!v)
            v = p->grad;
        else
            memcpy(b->buf + off, p->grad, p->numel * sizeof(float));
        off += p->numel;
    }
    if (!par->st)
        par->st = pn_dist_start_sum_f32(t->dist, v, b->values, &par->err);
}

/* pn_net_grad_hook: parameters from first_done on are final. */
static void on_grads(void *user, size_t first_done)
{
    trainer *t = user;
    pn_train_par *par = t->par;
    for (int k = 0; k < par->n_buckets; k++)
        if (!par->buckets[k].started && par->buckets[k].lo >= first_done)
            start_bucket(t, &par->buckets[k]);
    if (!par->st)
        par->st = pn_dist_progress(t->dist, &par->err);
}

static void free_buckets(pn_train_par *par)
{
    free(par->buckets);
    free(par->flat);
    par->buckets = NULL;
    par->flat = NULL;
    par->n_buckets = 0;
}

/* Buckets over the parameters that train now (freezing changes them). */
static pn_status plan_buckets(trainer *t, pn_error *err)
{
    pn_train_par *par = t->par;
    free_buckets(par);
    size_t n = pn_net_param_count(t->net), packed = 0;
    par->buckets = calloc(n ? n : 1, sizeof *par->buckets);
    if (!par->buckets)
        return pn_fail(err, PN_ENOMEM, "out of memory");
    bucket *b = NULL;
    for (size_t i = n; i-- > 0;) {
        const pn_param *p = pn_net_param(t->net, i);
        if (!summed(p))
            continue;
        if (!b) {
            b = &par->buckets[par->n_buckets++];
            b->hi = i + 1;
        }
        b->lo = i;
        b->values += p->numel;
        b->members++;
        if (b->values * sizeof(float) >= PN_BUCKET_BYTES)
            b = NULL;
    }
    for (int k = 0; k < par->n_buckets; k++)
        packed += par->buckets[k].members > 1 ? par->buckets[k].values : 0;
    par->flat = malloc((packed ? packed : 1) * sizeof(float));
    if (!par->flat)
        return pn_fail(err, PN_ENOMEM, "out of memory for gradient buckets");
    packed = 0;
    for (int k = 0; k < par->n_buckets; k++)
        if (par->buckets[k].members > 1) {
            par->buckets[k].buf = par->flat + packed;
            packed += par->buckets[k].values;
        }
    return PN_OK;
}

pn_status pn_train_par_setup(trainer *t, pn_error *err)
{
    if (t->ranks == 1)
        return PN_OK;
    if (!(t->par = calloc(1, sizeof *t->par)))
        return pn_fail(err, PN_ENOMEM, "out of memory");
    /* Every process starts from rank 0's weights (they are seeded alike; this makes sure). */
    pn_train_copy_params(t->net, t->best_params, 1);
    pn_status st = pn_dist_bcast(t->dist, t->best_params, pn_train_param_values(t->net) * sizeof(float),
                                 "broadcast of the initial weights", err);
    if (st)
        return st;
    pn_train_copy_params(t->net, t->best_params, 0);
    if (t->ema)
        pn_train_copy_params(t->net, t->ema, 1);
    pn_net_set_batch_offset(t->net, t->batch_first);
    pn_net_set_grad_hook(t->net, on_grads, t);
    return plan_buckets(t, err);
}

pn_status pn_train_par_epoch_start(trainer *t, pn_error *err)
{
    return t->par ? plan_buckets(t, err) : PN_OK;
}

void pn_train_par_free(trainer *t)
{
    if (t->par)
        free_buckets(t->par);
    free(t->par);
    t->par = NULL;
}

/* The denominator of this slice's loss (pn_softmax_cross_entropy's). */
static double loss_weight(const trainer *t, int n)
{
    double w = 0;
    for (int i = 0; i < n; i++)
        w += t->class_weights[t->labels[i]];
    return w;
}

pn_status pn_train_par_step(trainer *t, int n, float *loss, double *correct, double *seen,
                            volatile int *stop, pn_error *err)
{
    if (t->ranks == 1)
        return PN_OK;
    double w = loss_weight(t, n);
    double v[5] = {w, (double)*loss * w, *correct, n, stop && *stop}; /* [weight, loss, correct, images, stop] */
    pn_status st = pn_dist_sum_f64(t->dist, v, 5, "sum of the step's loss and accuracy", err);
    if (st)
        return st;
    float scale = v[0] > 0 ? (float)(w / v[0]) : 0; /* this slice's share of the whole batch's loss */
    for (size_t k = 0; k < (size_t)n * t->classes; k++)
        t->dlogits[k] *= scale;
    *loss = v[0] > 0 ? (float)(v[1] / v[0]) : 0;
    *correct = v[2];
    *seen = v[3];
    t->stop_agreed = v[4] > 0;
    return PN_OK;
}

pn_status pn_train_par_grads(trainer *t, pn_error *err)
{
    pn_train_par *par = t->par;
    if (!par)
        return PN_OK;
    for (int k = 0; k < par->n_buckets; k++)
        if (!par->buckets[k].started) /* below the layers backward ran (frozen), or none reported */
            start_bucket(t, &par->buckets[k]);
    double t0 = pn_clock_s();
    pn_status st = par->st ? par->st : pn_dist_wait_all(t->dist, "gradient sum", &par->err);
    t->grad_wait_s += pn_clock_s() - t0;
    if (st) {
        par->st = PN_OK;
        *err = par->err;
        return st;
    }
    for (int k = 0; k < par->n_buckets; k++) {
        bucket *b = &par->buckets[k];
        size_t off = 0;
        for (size_t i = b->lo; b->buf && i < b->hi; i++) {
            pn_param *p = pn_net_param(t->net, i);
            if (summed(p)) {
                memcpy(p->grad, b->buf + off, p->numel * sizeof(float));
                off += p->numel;
            }
        }
        b->started = 0;
    }
    return PN_OK;
}

int pn_train_stopping(const trainer *t, volatile int *stop)
{
    return t->ranks > 1 ? t->stop_agreed : stop && *stop;
}

pn_status pn_train_par_epoch_end(trainer *t, train_state *s, int *early, pn_error *err)
{
    if (t->ranks == 1)
        return PN_OK;
    /* Rank 0 validated and decided; the others take its state (plateau LR, best epoch, early stop). */
    struct { train_state s; int early; } msg = {*s, *early};
    pn_status st = pn_dist_bcast(t->dist, &msg, sizeof msg, "epoch end (rank 0 validates)", err);
    *s = msg.s;
    *early = msg.early;
    return st;
}

/* pn_net_group.sum for synchronised batch norm. */
static int bn_sum(void *user, double *v, size_t n)
{
    trainer *t = user;
    pn_error err;
    return pn_dist_sum_f64(t->dist, v, n, "sum of batch-norm statistics", &err) ? -1 : 0;
}

pn_status pn_train_par_init(trainer *t, pn_error *err)
{
    pn_status st = t->cfg->dist ? PN_OK : pn_dist_local(&t->own_dist, err);
    if (st)
        return st;
    t->dist = t->cfg->dist ? t->cfg->dist : t->own_dist;
    t->rank = pn_dist_rank(t->dist);
    t->ranks = pn_dist_size(t->dist);
    int b = t->cfg->batch, n = t->ranks, r = t->rank;
    if (b < n)
        return pn_fail(err, PN_EINVAL, "a batch of %d cannot be split over %d processes (--batch is the "
                       "batch of one step, over all processes)", b, n);
    /* b / n images each, the first b % n processes one more */
    t->local_batch = b / n + (r < b % n);
    t->batch_first = r * (b / n) + (r < b % n ? r : b % n);
    t->bn_group = (pn_net_group){bn_sum, t};
    return PN_OK;
}
