/* Prefetching batch loader.
 *
 * Worker threads claim whole batches in order (batch b goes to ring slot
 * b % n_slots once the consumer has taken batch b - n_slots), fill them from
 * the cache with augmentation and normalisation, and mark them ready; the
 * consumer copies ready batches out in order. The epoch order and every
 * random draw depend only on (seed, epoch, position), never on scheduling. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "data/internal.h"

enum { SLOT_FREE, SLOT_FILLING, SLOT_READY };

typedef struct slot {
    int state;
    size_t batch;
    int n;
    pn_status status;
    pn_error err;
    float *x;
    int *labels;
    size_t *indices;
} slot;

struct pn_loader {
    const pn_cache *cache;
    pn_loader_config cfg;
    pn_augment aug;
    size_t *items;     /* usable cache indices (grouped by class when balanced) */
    size_t class_count[2];
    size_t n_items;
    size_t *order;     /* this epoch's draw sequence */
    size_t n_order, n_batches;
    int epoch, generation;
    size_t produce_next, consume_next;
    int in_flight, stop, started;
    slot *slots;
    int n_slots;
    pthread_t *threads;
    int n_threads;
    pthread_mutex_t mu;
    pthread_cond_t work, ready;
};

pn_loader_config pn_loader_config_default(void)
{
    return (pn_loader_config){.batch_size = 32, .norm = pn_norm_default(1), .n_threads = 1,
                              .prefetch = 2};
}

/* Fills one slot with batch b of the current epoch (called without the lock;
 * order/epoch are only changed while no worker is in flight). */
static void fill_slot(pn_loader *l, slot *s, size_t b)
{
    int size = pn_cache_size(l->cache);
    size_t plane = (size_t)size * size, stride = plane * l->cfg.norm.channels;
    size_t first = b * l->cfg.batch_size + (size_t)l->cfg.shard_first;
    size_t last = first + (l->cfg.shard_size ? (size_t)l->cfg.shard_size : (size_t)l->cfg.batch_size);
    if (last > l->n_order)
        last = l->n_order;
    uint8_t *tmp = l->cfg.augment ? malloc(plane) : NULL;      /* size x size, augmented */
    uint8_t *equalized = l->cfg.clahe ? malloc(plane) : NULL;  /* size x size, after CLAHE */
    s->status = (l->cfg.augment && !tmp) || (l->cfg.clahe && !equalized)
                    ? pn_fail(&s->err, PN_ENOMEM, "loader: out of memory for augmentation")
                    : PN_OK;
    for (size_t k = first; k < last && !s->status; k++) {
        size_t idx = l->order[k];
        const uint8_t *px = pn_cache_pixels(l->cache, idx);
        if (equalized) {
            memcpy(equalized, px, plane);
            pn_image im = {.w = size, .h = size, .pixels = equalized};
            s->status = pn_image_clahe(&im, PN_CLAHE_TILES, PN_CLAHE_CLIP, &s->err);
            px = equalized;
        }
        if (tmp && !s->status) {
            s->status = pn_augment_apply(&l->aug, l->cfg.seed, (uint64_t)l->epoch, k, px, size,
                                         size, tmp, &s->err);
            px = tmp;
        }
        if (!s->status)
            s->status = pn_normalize(px, size, size, &l->cfg.norm, s->x + (k - first) * stride,
                                     &s->err);
        s->labels[k - first] = pn_cache_label(l->cache, idx);
        s->indices[k - first] = idx;
    }
    s->n = (int)(last - first);
    s->batch = b;
    free(tmp);
    free(equalized);
}

static int claimable(const pn_loader *l)
{
    return l->started && l->produce_next < l->n_batches &&
           l->slots[l->produce_next % l->n_slots].state == SLOT_FREE;
}

static void *worker(void *arg)
{
    pn_loader *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->stop && !claimable(l))
            pthread_cond_wait(&l->work, &l->mu);
        if (l->stop)
            break;
        size_t b = l->produce_next++;
        slot *s = &l->slots[b % l->n_slots];
        s->state = SLOT_FILLING;
        l->in_flight++;
        pthread_mutex_unlock(&l->mu);
        fill_slot(l, s, b);
        pthread_mutex_lock(&l->mu);
        s->state = SLOT_READY;
        l->in_flight--;
        pthread_cond_broadcast(&l->ready);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

static void free_slots(pn_loader *l)
{
    for (int i = 0; l->slots && i < l->n_slots; i++) {
        free(l->slots[i].x);
        free(l->slots[i].labels);
        free(l->slots[i].indices);
    }
    free(l->slots);
}

static pn_status validate(const pn_cache *cache, const pn_loader_config *cfg, pn_error *err)
{
    if (cfg->batch_size < 1 || cfg->n_threads < 1 || cfg->n_threads > 64 || cfg->prefetch < 1)
        return pn_fail(err, PN_EINVAL, "loader: batch size, threads (1-64) and prefetch must "
                       "be >= 1");
    if (cfg->shard_size && (cfg->shard_first < 0 || cfg->shard_size < 0 || !cfg->drop_last ||
                            cfg->shard_first + cfg->shard_size > cfg->batch_size))
        return pn_fail(err, PN_EINVAL, "loader: a batch slice must lie within the batch, with drop_last");
    if (cfg->norm.channels != 1 && cfg->norm.channels != 3)
        return pn_fail(err, PN_EINVAL, "loader: channels must be 1 or 3");
    if (!cache)
        return pn_fail(err, PN_EINVAL, "loader: no cache");
    return PN_OK;
}

/* Stable partition of items, NORMAL first, for the balanced sampler. */
static void group_by_class(pn_loader *l)
{
    for (size_t i = 0; i < l->n_items; i++)
        l->class_count[pn_cache_label(l->cache, l->items[i]) != 0]++;
    size_t fill[2] = {0, l->class_count[0]};
    for (size_t i = 0; i < l->n_items; i++)
        l->order[fill[pn_cache_label(l->cache, l->items[i]) != 0]++] = l->items[i];
    memcpy(l->items, l->order, l->n_items * sizeof *l->items);
}

static pn_status alloc_loader(pn_loader *l, const size_t *indices, size_t n, pn_error *err)
{
    size_t cnt = pn_cache_count(l->cache);
    l->items = malloc((n ? n : 1) * sizeof *l->items);
    l->order = malloc((n ? n : 1) * sizeof *l->order);
    l->n_slots = l->cfg.n_threads + l->cfg.prefetch;
    l->slots = calloc(l->n_slots, sizeof *l->slots);
    l->threads = calloc(l->cfg.n_threads, sizeof *l->threads);
    if (!l->items || !l->order || !l->slots || !l->threads)
        return pn_fail(err, PN_ENOMEM, "loader: out of memory");
    for (size_t i = 0; i < n; i++) {
        if (indices[i] >= cnt)
            return pn_fail(err, PN_EINVAL, "loader: index %zu outside the cache (%zu images)",
                           indices[i], cnt);
        if (pn_cache_ok(l->cache, indices[i]))
            l->items[l->n_items++] = indices[i];
    }
    size_t bs = (size_t)l->cfg.batch_size, size = (size_t)pn_cache_size(l->cache);
    size_t slice = l->cfg.shard_size ? (size_t)l->cfg.shard_size : bs; /* images per slot */
    for (int i = 0; i < l->n_slots; i++) {
        slot *s = &l->slots[i];
        s->x = malloc(slice * size * size * l->cfg.norm.channels * sizeof *s->x);
        s->labels = malloc(slice * sizeof *s->labels);
        s->indices = malloc(slice * sizeof *s->indices);
        if (!s->x || !s->labels || !s->indices)
            return pn_fail(err, PN_ENOMEM, "loader: out of memory for %d batch buffers",
                           l->n_slots);
    }
    if (l->cfg.balanced)
        group_by_class(l);
    l->n_order = l->n_items;
    l->n_batches = l->cfg.drop_last ? l->n_order / bs : (l->n_order + bs - 1) / bs;
    return PN_OK;
}

pn_status pn_loader_create(const pn_cache *cache, const size_t *indices, size_t n,
                           const pn_loader_config *cfg, pn_loader **out, pn_error *err)
{
    *out = NULL;
    pn_status st = validate(cache, cfg, err);
    if (st)
        return st;
    pn_loader *l = calloc(1, sizeof *l);
    if (!l)
        return pn_fail(err, PN_ENOMEM, "loader: out of memory");
    l->cache = cache;
    l->cfg = *cfg;
    if (cfg->augment) {
        l->aug = *cfg->augment;
        l->cfg.augment = &l->aug;
    }
    st = alloc_loader(l, indices, n, err);
    if (st) {
        free_slots(l);
        free(l->items);
        free(l->order);
        free(l->threads);
        free(l);
        return st;
    }
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->work, NULL);
    pthread_cond_init(&l->ready, NULL);
    for (int i = 0; i < cfg->n_threads; i++) {
        if (pthread_create(&l->threads[i], NULL, worker, l) != 0) {
            pn_loader_free(l);
            return pn_fail(err, PN_EINTERNAL, "loader: cannot start worker thread %d", i);
        }
        l->n_threads++;
    }
    *out = l;
    return PN_OK;
}

/* This epoch's sequence of cache indices. Balanced: every draw picks a class
 * uniformly among those present, then a sample of it, with replacement. */
static void make_order(pn_loader *l)
{
    uint64_t rng = l->cfg.seed ^ 0xd1b54a32d192ed03ULL;
    rng = pn_splitmix64(&rng) ^ (uint64_t)l->epoch;
    pn_splitmix64(&rng);
    if (l->cfg.balanced) {
        int present = (l->class_count[0] > 0) + (l->class_count[1] > 0);
        for (size_t k = 0; k < l->n_order; k++) {
            int c = present == 2 ? (int)(pn_splitmix64(&rng) & 1) : l->class_count[1] > 0;
            size_t first = c ? l->class_count[0] : 0;
            l->order[k] = l->items[first + pn_splitmix64(&rng) % l->class_count[c]];
        }
        return;
    }
    memcpy(l->order, l->items, l->n_items * sizeof *l->order);
    if (l->cfg.shuffle)
        for (size_t i = l->n_order; i > 1; i--) {
            size_t j = pn_splitmix64(&rng) % i;
            size_t t = l->order[i - 1];
            l->order[i - 1] = l->order[j];
            l->order[j] = t;
        }
}

pn_status pn_loader_start_epoch(pn_loader *l, int epoch, pn_error *err)
{
    if (epoch < 0)
        return pn_fail(err, PN_EINVAL, "loader: epoch must be >= 0");
    pthread_mutex_lock(&l->mu);
    l->started = 0;  /* no new claims; wait for batches being filled */
    while (l->in_flight > 0)
        pthread_cond_wait(&l->ready, &l->mu);
    for (int i = 0; i < l->n_slots; i++)
        l->slots[i].state = SLOT_FREE;
    l->epoch = epoch;
    make_order(l);
    l->produce_next = l->consume_next = 0;
    l->started = 1;
    pthread_cond_broadcast(&l->work);
    pthread_mutex_unlock(&l->mu);
    return PN_OK;
}

pn_status pn_loader_next(pn_loader *l, float *x, int *labels, size_t *indices, int *n,
                         pn_error *err)
{
    *n = 0;
    pthread_mutex_lock(&l->mu);
    if (!l->started) {
        pthread_mutex_unlock(&l->mu);
        return pn_fail(err, PN_EINVAL, "loader: call pn_loader_start_epoch first");
    }
    if (l->consume_next >= l->n_batches) {
        pthread_mutex_unlock(&l->mu);
        return PN_OK;
    }
    slot *s = &l->slots[l->consume_next % l->n_slots];
    while (!(s->state == SLOT_READY && s->batch == l->consume_next))
        pthread_cond_wait(&l->ready, &l->mu);
    pthread_mutex_unlock(&l->mu);

    pn_status st = s->status;
    if (st) {
        if (err)
            *err = s->err;
    } else {
        int size = pn_cache_size(l->cache);
        memcpy(x, s->x, (size_t)s->n * size * size * l->cfg.norm.channels * sizeof *x);
        memcpy(labels, s->labels, (size_t)s->n * sizeof *labels);
        if (indices)
            memcpy(indices, s->indices, (size_t)s->n * sizeof *indices);
        *n = s->n;
    }
    pthread_mutex_lock(&l->mu);
    s->state = SLOT_FREE;
    l->consume_next++;
    pthread_cond_broadcast(&l->work);
    pthread_mutex_unlock(&l->mu);
    return st;
}

size_t pn_loader_count(const pn_loader *l) { return l->n_items; }
size_t pn_loader_batches(const pn_loader *l) { return l->n_batches; }

void pn_loader_free(pn_loader *l)
{
    if (!l)
        return;
    pthread_mutex_lock(&l->mu);
    l->stop = 1;
    pthread_cond_broadcast(&l->work);
    pthread_mutex_unlock(&l->mu);
    for (int i = 0; i < l->n_threads; i++)
        pthread_join(l->threads[i], NULL);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->work);
    pthread_cond_destroy(&l->ready);
    free_slots(l);
    free(l->items);
    free(l->order);
    free(l->threads);
    free(l);
}
