/* Network graph: builds layers from the cfg, owns parameters and activation
 * buffers, runs forward and backward passes in layer order. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/bn_se.h"
#include "nn/internal.h"
#include "nn/layer_conv.h"
#include "nn/vec.h"

/* ---- the input layer: converts the caller's float32 NHWC into the compute type ---- */
static pn_status input_init(pn_layer *l, pn_net *net, const pn_cfg_section *s, pn_error *err)
{
    l->out.c = net->channels;
    l->out.h = l->out.w = net->input_size;
    return PN_OK;
}
static pn_status input_noop_fwd(pn_layer *l, pn_net *net, int train, pn_error *err) { return PN_OK; }
static pn_status input_noop_bwd(pn_layer *l, pn_net *net, pn_error *err) { return PN_OK; }
static void input_noop(pn_layer *l) { (void)l; }
const pn_layer_ops pn_layer_input_ops = {"input", input_init, input_noop_fwd, input_noop_bwd,
                                         input_noop, input_noop};

/* ---- parameters ---- */
pn_status pn_net_add_param(pn_net *net, pn_layer *l, const char *suffix, int ndim,
                           const int *shape, int is_buffer, int no_decay, size_t *index,
                           pn_error *err)
{
    if (net->n_params == net->cap_params) {
        size_t cap = net->cap_params ? net->cap_params * 2 : 64;
        pn_param *grown = realloc(net->params, cap * sizeof *grown);
        if (!grown)
            return pn_fail(err, PN_ENOMEM, "out of memory");
        net->params = grown;
        net->cap_params = cap;
    }
    if (l->n_params == 0)
        l->first_param = net->n_params;
    pn_param *p = &net->params[net->n_params];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s.%s", l->name, suffix);
    p->ndim = ndim;
    p->numel = 1;
    for (int i = 0; i < ndim; i++) {
        p->shape[i] = shape[i];
        p->numel *= (size_t)shape[i];
    }
    p->is_buffer = is_buffer;
    p->no_decay = no_decay;
    p->data = calloc(p->numel, sizeof(float));
    p->grad = is_buffer ? NULL : calloc(p->numel, sizeof(float));
    if (!p->data || (!is_buffer && !p->grad)) {
        free(p->data);
        free(p->grad);
        return pn_fail(err, PN_ENOMEM, "out of memory for %s", p->name);
    }
    *index = net->n_params++;
    l->n_params++;
    return PN_OK;
}

int pn_layer_trains(const pn_net *net, const pn_layer *l)
{
    if (!net->can_train)
        return 0;
    for (size_t k = 0; k < l->n_params; k++) {
        const pn_param *p = &net->params[l->first_param + k];
        if (!p->is_buffer && !p->frozen)
            return 1;
    }
    return 0;
}

/* The gradient at layer m's output is needed when m is watched or any layer
 * at or before m trains (backward must pass through m to reach it). */
int pn_net_needs_input_grad(const pn_net *net, const pn_layer *l, int k)
{
    int m = l->inputs[k];
    if (m == 0)
        return 0;
    if (net->watch >= 0 && net->watch <= m)
        return 1;
    for (int i = 1; i <= m; i++)
        if (pn_layer_trains(net, &net->layers[i]))
            return 1;
    return 0;
}

/* ---- building from cfg ---- */
static const pn_layer_ops *ops_for(const char *kind)
{
    static const struct { const char *name; const pn_layer_ops *ops; } table[] = {
        {"conv", &pn_layer_conv_ops}, {"batchnorm", &pn_layer_batchnorm_ops},
        {"activation", &pn_layer_activation_ops}, {"maxpool", &pn_layer_maxpool_ops},
        {"avgpool", &pn_layer_avgpool_ops}, {"gap", &pn_layer_gap_ops}, {"fc", &pn_layer_fc_ops},
        {"dropout", &pn_layer_dropout_ops}, {"add", &pn_layer_add_ops},
        {"concat", &pn_layer_concat_ops}, {"se", &pn_layer_se_ops}};
    for (size_t i = 0; i < sizeof table / sizeof *table; i++)
        if (!strcmp(kind, table[i].name))
            return table[i].ops;
    return NULL;
}

typedef struct build_state {
    pn_cfg cfg;
    int *section_out; /* layer index holding each section's output */
    int n_done;
} build_state;

/* A reference is a section name or a negative offset in sections (-1 = previous). */
static pn_status resolve_ref(pn_net *net, build_state *b, const char *ref, int line, int *layer,
                             pn_error *err)
{
    char *end;
    long off = strtol(ref, &end, 10);
    if (!*end) {
        if (off >= 0 || -off > b->n_done)
            return pn_fail(err, PN_EFORMAT, "cfg line %d: offset %ld does not name an earlier block", line, off);
        *layer = b->section_out[b->n_done + off];
        return PN_OK;
    }
    for (int s = b->n_done - 1; s >= 0; s--) {
        const char *name = pn_cfg_str(&b->cfg.sections[s + 1], "name", NULL);
        if (name && !strcmp(name, ref)) {
            *layer = b->section_out[s];
            return PN_OK;
        }
    }
    if (!strcmp(ref, "input")) {
        *layer = 0;
        return PN_OK;
    }
    return pn_fail(err, PN_EFORMAT, "cfg line %d: no earlier block named '%s'", line, ref);
}

static pn_status add_layer(pn_net *net, const pn_layer_ops *ops, const char *name,
                           const int *inputs, int n_inputs, const pn_cfg_section *s, pn_error *err)
{
    pn_layer *grown = realloc(net->layers, (size_t)(net->n_layers + 1) * sizeof *grown);
    if (!grown)
        return pn_fail(err, PN_ENOMEM, "out of memory");
    net->layers = grown;
    pn_layer *l = &net->layers[net->n_layers];
    memset(l, 0, sizeof *l);
    l->ops = ops;
    l->index = net->n_layers++;
    snprintf(l->name, sizeof l->name, "%s", name);
    if (n_inputs) /* the input layer has none (and inputs is NULL) */
        memcpy(l->inputs, inputs, (size_t)n_inputs * sizeof *inputs);
    l->n_inputs = n_inputs;
    pn_status st = ops->init(l, net, s, err);
    return st;
}

/* One cfg section becomes one to three layers: the operation, a batch norm
 * (conv with batchnorm=1) and an activation. */
static pn_status build_section(pn_net *net, build_state *b, const pn_cfg_section *s, pn_error *err)
{
    const pn_layer_ops *ops = ops_for(s->kind);
    if (!ops)
        return pn_fail(err, PN_EFORMAT, "cfg line %d: unknown section [%s]", s->line, s->kind);
    char name[112];
    const char *given = pn_cfg_str(s, "name", NULL);
    if (given)
        snprintf(name, sizeof name, "%s", given);
    else
        snprintf(name, sizeof name, "%s%d", s->kind, b->n_done);
    int inputs[PN_MAX_INPUTS], n_in = 1;
    pn_status st = PN_OK;
    const char *input = pn_cfg_str(s, "input", NULL);
    if (input)
        st = resolve_ref(net, b, input, s->line, &inputs[0], err);
    else
        inputs[0] = b->n_done ? b->section_out[b->n_done - 1] : 0;
    const char *from = pn_cfg_str(s, "from", NULL);
    if (!st && from) {
        char *list = strdup(from), *save = NULL;
        if (!strcmp(s->kind, "concat"))
            n_in = 0;
        for (char *tok = strtok_r(list, ",", &save); tok && !st; tok = strtok_r(NULL, ",", &save)) {
            while (*tok == ' ')
                tok++;
            if (n_in == PN_MAX_INPUTS)
                st = pn_fail(err, PN_EFORMAT, "cfg line %d: too many inputs", s->line);
            else
                st = resolve_ref(net, b, tok, s->line, &inputs[n_in++], err);
        }
        free(list);
    }
    if (st || (st = add_layer(net, ops, name, inputs, n_in, s, err)))
        return st;
    int last = net->n_layers - 1, bn = 0;
    if (!strcmp(s->kind, "conv") && (st = pn_cfg_int(s, "batchnorm", 0, &bn, err)))
        return st;
    if (bn) {
        char bn_name[112];
        snprintf(bn_name, sizeof bn_name, "%.100s.bn", name);
        if ((st = add_layer(net, &pn_layer_batchnorm_ops, bn_name, &last, 1, s, err)))
            return st;
        last = net->n_layers - 1;
    }
    /* In [se], `activation` names the internal one, not a post-activation. */
    int post_act = strcmp(s->kind, "activation") && strcmp(s->kind, "se");
    const char *act = post_act ? pn_cfg_str(s, "activation", NULL) : NULL;
    if (act && strcmp(act, "linear")) {
        char act_name[112];
        snprintf(act_name, sizeof act_name, "%.100s.act", name);
        if ((st = add_layer(net, &pn_layer_activation_ops, act_name, &last, 1, s, err)))
            return st;
    }
    b->section_out[b->n_done++] = net->n_layers - 1;
    return pn_cfg_check_unused(s, err);
}

pn_act_kind pn_activation_kind(const pn_layer *l);

/* An activation whose backward can use its output, reading a tensor nobody
 * else reads, may overwrite that tensor: the producer's backward needs its
 * own input and output gradient, never its output. Saves a buffer per block. */
static int readers_of(const pn_net *net, int index)
{
    int readers = 0;
    for (int j = 1; j < net->n_layers; j++)
        for (int k = 0; k < net->layers[j].n_inputs && !net->layers[j].fused_away; k++)
            readers += net->layers[j].inputs[k] == index;
    return readers;
}

/* batch norm -> ReLU or hardswish, the norm read by nothing else: the
 * batch-norm kernels apply the activation in the same pass (training too),
 * recompute its derivative from their input in backward, and the activation
 * layer drops out of the graph with its two passes over the tensor. */
static void fuse_bn_act(pn_net *net)
{
    for (int i = 1; i < net->n_layers; i++) {
        pn_layer *act = &net->layers[i];
        int bn = act->inputs[0];
        if (act->ops != &pn_layer_activation_ops ||
            (pn_activation_kind(act) != PN_ACT_RELU && pn_activation_kind(act) != PN_ACT_HARDSWISH) ||
            net->layers[bn].ops != &pn_layer_batchnorm_ops || readers_of(net, bn) != 1)
            continue;
        net->layers[bn].fused_act = pn_activation_kind(act);
        act->fused_away = 1;
        for (int j = i + 1; j < net->n_layers; j++)
            for (int k = 0; k < net->layers[j].n_inputs; k++)
                if (net->layers[j].inputs[k] == i)
                    net->layers[j].inputs[k] = bn;
    }
}

/* batch norm -> squeeze-excitation, the norm read by nothing else: the SE
 * block applies the normalisation on the fly and runs its backward (bn_se.h),
 * saving two passes over the tensor each way and its buffer. */
static void fuse_bn_se(pn_net *net)
{
    if (!pn_bn_se_available())
        return;
    for (int i = 1; i < net->n_layers; i++) {
        int bn = net->layers[i].inputs[0];
        if (net->layers[i].ops == &pn_layer_se_ops &&
            net->layers[bn].ops == &pn_layer_batchnorm_ops && readers_of(net, bn) == 1)
            net->layers[bn].deferred = PN_BN_IN_SE;
    }
}

/* batch norm -> depthwise convolution (MobileNet's expansions), the norm read
 * by nothing else: the convolution's kernels (dw_nhwc.h) apply the norm as
 * they convert input rows, in the forward and the weight gradient, saving
 * the norm's output pass and the convolution's read of it, and the buffer. */
static void fuse_bn_conv(pn_net *net)
{
    for (int i = 1; i < net->n_layers; i++) {
        pn_layer *conv = &net->layers[i];
        int bn = conv->inputs[0];
        if (conv->ops == &pn_layer_conv_ops && net->layers[bn].ops == &pn_layer_batchnorm_ops &&
            !net->layers[bn].deferred && readers_of(net, bn) == 1 && pn_conv_applies_input_bn(conv, net))
            net->layers[bn].deferred = PN_BN_IN_CONV;
    }
}

void pn_net_undefer(pn_net *net)
{
    int any = 0;
    for (int i = 0; i < net->n_layers; i++) {
        any |= net->layers[i].deferred;
        net->layers[i].deferred = 0;
    }
    if (any) /* the batch norms' outputs need buffers now */
        pn_net_free_buffers(net);
}

static void mark_in_place(pn_net *net, int fuse)
{
    if (fuse) {
        fuse_bn_act(net);
        fuse_bn_se(net);
        fuse_bn_conv(net);
    }
    for (int i = 1; i < net->n_layers; i++) {
        pn_layer *l = &net->layers[i];
        dnnl_alg_kind_t alg;
        int src = l->inputs[0];
        if (l->ops != &pn_layer_activation_ops || l->fused_away || src == 0 ||
            !pn_act_dnnl_use_dst(pn_activation_kind(l), &alg))
            continue;
        l->in_place = readers_of(net, src) == 1 && net->watch != src;
    }
}

static pn_status parse_floats(const char *text, float *out, int n, pn_error *err)
{
    char *end;
    for (int i = 0; i < n; i++) {
        out[i] = strtof(text, &end);
        if (end == text)
            return pn_fail(err, PN_EFORMAT, "cfg [net]: expected %d comma-separated numbers in '%s'", n, text);
        text = *end == ',' ? end + 1 : end;
    }
    return PN_OK;
}

static pn_status read_net_section(pn_net *net, const pn_cfg_section *s, const pn_net_options *opt,
                                  pn_error *err)
{
    if (strcmp(s->kind, "net"))
        return pn_fail(err, PN_EFORMAT, "cfg: the first section must be [net], not [%s]", s->kind);
    pn_status st;
    if ((st = pn_cfg_int(s, "input", 224, &net->input_size, err)) ||
        (st = pn_cfg_int(s, "channels", 3, &net->channels, err)) ||
        (st = pn_cfg_int(s, "classes", 2, &net->classes, err)))
        return st;
    pn_cfg_str(s, "name", NULL);
    if (opt && opt->channels)
        net->channels = opt->channels;
    if (opt && opt->input_size)
        net->input_size = opt->input_size;
    if (opt && opt->classes)
        net->classes = opt->classes;
    if (net->channels != 1 && net->channels != 3)
        return pn_fail(err, PN_EINVAL, "channels must be 1 or 3, not %d", net->channels);
    if (net->input_size < 8 || net->input_size > 2048 || net->classes < 1 || net->classes > 100000)
        return pn_fail(err, PN_EINVAL, "input size %d or classes %d out of range", net->input_size, net->classes);
    /* ImageNet statistics for 3-channel (pretrained) networks, a neutral
     * 0.5/0.25 for grayscale ones, unless the cfg says otherwise. */
    static const float in_mean[3] = {0.485f, 0.456f, 0.406f}, in_std[3] = {0.229f, 0.224f, 0.225f};
    for (int c = 0; c < 3; c++) {
        net->mean[c] = net->channels == 3 ? in_mean[c] : 0.5f;
        net->std[c] = net->channels == 3 ? in_std[c] : 0.25f;
    }
    const char *mean = pn_cfg_str(s, "mean", NULL), *std = pn_cfg_str(s, "std", NULL);
    if ((mean && (st = parse_floats(mean, net->mean, net->channels, err))) ||
        (std && (st = parse_floats(std, net->std, net->channels, err))))
        return st;
    return pn_cfg_check_unused(s, err);
}

pn_status pn_net_create(pn_ctx *ctx, const char *cfg_text, const pn_net_options *opt,
                        pn_net **out, pn_error *err)
{
    *out = NULL;
    pn_net *net = calloc(1, sizeof *net);
    if (!net)
        return pn_fail(err, PN_ENOMEM, "out of memory");
    net->ctx = ctx;
    net->watch = -1;
    net->can_train = 1;
    net->seed = opt ? opt->seed : 0;
    net->dt = opt && opt->precision == PN_BF16 && ctx->native_bf16 ? PN_BF16 : PN_F32;
    net->cfg_text = strdup(cfg_text);
    build_state b = {0};
    pn_status st = net->cfg_text ? pn_cfg_parse(cfg_text, &b.cfg, err) : pn_fail(err, PN_ENOMEM, "out of memory");
    if (!st)
        st = read_net_section(net, &b.cfg.sections[0], opt, err);
    if (!st && b.cfg.n_sections < 2)
        st = pn_fail(err, PN_EFORMAT, "cfg: no layers after [net]");
    if (!st && !(b.section_out = calloc((size_t)b.cfg.n_sections, sizeof(int))))
        st = pn_fail(err, PN_ENOMEM, "out of memory");
    if (!st)
        st = add_layer(net, &pn_layer_input_ops, "input", NULL, 0, &b.cfg.sections[0], err);
    for (int i = 1; !st && i < b.cfg.n_sections; i++)
        st = build_section(net, &b, &b.cfg.sections[i], err);
    if (!st)
        mark_in_place(net, !(opt && opt->no_bn_fusion));
    pn_layer *last = net->n_layers ? &net->layers[net->n_layers - 1] : NULL;
    if (!st && (last->out.c != net->classes || last->out.h != 1 || last->out.w != 1))
        st = pn_fail(err, PN_EFORMAT, "cfg: the last block outputs %dx%dx%d, not the %d class logits",
                     last->out.c, last->out.h, last->out.w, net->classes);
    free(b.section_out);
    pn_cfg_free(&b.cfg);
    if (st) {
        pn_net_destroy(net);
        return st;
    }
    *out = net;
    return PN_OK;
}

void pn_net_free_buffers(pn_net *net)
{
    for (int i = 0; i < net->n_layers; i++) {
        pn_layer *l = &net->layers[i];
        if (!l->fused_away && !l->in_place)
            free(l->out.data);
        l->out.data = l->out.grad = NULL;
    }
    for (int i = 0; i < net->n_grad_pool; i++)
        free(net->grad_pool[i]);
    free(net->grad_pool);
    net->grad_pool = NULL;
    net->n_grad_pool = 0;
    free(net->scratch);
    net->scratch = NULL;
    for (int i = 0; i < PN_RELAYOUT_SLOTS; i++) {
        free(net->relayout[i]);
        net->relayout[i] = NULL;
        net->relayout_bytes[i] = 0;
    }
    free(net->logits);
    net->logits = NULL;
    net->batch = 0;
}

void pn_net_destroy(pn_net *net)
{
    if (!net)
        return;
    pn_net_free_buffers(net);
    for (int i = 0; i < net->n_layers; i++)
        if (net->layers[i].ops->destroy)
            net->layers[i].ops->destroy(&net->layers[i]);
    for (size_t i = 0; i < net->n_params; i++) {
        free(net->params[i].data);
        free(net->params[i].grad);
    }
    free(net->params);
    free(net->layers);
    free(net->cfg_text);
    free(net->watch_act);
    free(net->watch_grad);
    free(net);
}

/* ---- buffers ---- */

/* Gradient buffers are shared by layers whose gradients are never live at the
 * same time. Backward runs from the last layer down; layer i's gradient is
 * written from the backward of its last consumer (index last_use[i]) until
 * its own backward reads it. Greedy interval colouring in that time order
 * roughly halves training memory, as a framework freeing gradients would. */
static pn_status alloc_grads(pn_net *net, int batch, pn_error *err)
{
    int n = net->n_layers, *last_use = malloc((size_t)n * sizeof(int));
    int *order = malloc((size_t)n * sizeof(int)), *buf_of = malloc((size_t)n * sizeof(int));
    int *busy_until = malloc((size_t)n * sizeof(int));
    size_t *size = calloc((size_t)n, sizeof(size_t));
    pn_status st = PN_OK;
    if (!last_use || !order || !buf_of || !busy_until || !size)
        st = pn_fail(err, PN_ENOMEM, "out of memory");
    for (int i = 0; !st && i < n; i++)
        last_use[i] = order[i] = i;
    for (int j = 1; !st && j < n; j++)
        for (int k = 0; k < net->layers[j].n_inputs; k++)
            if (last_use[net->layers[j].inputs[k]] < j)
                last_use[net->layers[j].inputs[k]] = j;
    /* layers by descending start time (last_use); insertion sort, n is small */
    for (int a = 1; !st && a < n; a++)
        for (int b = a; b > 0 && last_use[order[b]] > last_use[order[b - 1]]; b--) {
            int t = order[b];
            order[b] = order[b - 1];
            order[b - 1] = t;
        }
    int pool = 0;
    size_t es = pn_dtype_size(net->dt);
    for (int a = 0; !st && a < n; a++) {
        int i = order[a], chosen = -1;
        if (i == 0 || net->layers[i].fused_away)
            continue;
        /* a buffer is free once its last owner's backward (at index busy_until) ran */
        for (int b = 0; b < pool && chosen < 0; b++)
            if (busy_until[b] > last_use[i])
                chosen = b;
        if (chosen < 0)
            chosen = pool++;
        busy_until[chosen] = i;
        buf_of[i] = chosen;
        size_t bytes = pn_buf_numel(&net->layers[i].out, batch) * es;
        size[chosen] = bytes > size[chosen] ? bytes : size[chosen];
    }
    if (!st && !(net->grad_pool = calloc((size_t)(pool ? pool : 1), sizeof(void *))))
        st = pn_fail(err, PN_ENOMEM, "out of memory");
    for (int b = 0; !st && b < pool; b++, net->n_grad_pool++)
        if (!(net->grad_pool[b] = malloc(size[b])))
            st = pn_fail(err, PN_ENOMEM, "out of memory for gradients (batch %d)", batch);
    for (int i = 1; !st && i < n; i++)
        if (!net->layers[i].fused_away)
            net->layers[i].out.grad = net->grad_pool[buf_of[i]];
    free(last_use), free(order), free(buf_of), free(busy_until), free(size);
    return st;
}

static pn_status ensure_buffers(pn_net *net, int n, int with_grad, pn_error *err)
{
    int have_grad = net->grad_pool != NULL;
    if (n <= net->batch && (!with_grad || have_grad))
        return PN_OK;
    int batch = n > net->batch ? n : net->batch;
    pn_net_free_buffers(net);
    size_t es = pn_dtype_size(net->dt), largest = 0;
    for (int i = 0; i < net->n_layers; i++) {
        pn_layer *l = &net->layers[i];
        size_t bytes = pn_buf_numel(&l->out, batch) * es;
        largest = bytes > largest ? bytes : largest;
        if (l->fused_away || l->in_place || l->deferred)
            continue;
        if (!(l->out.data = malloc(bytes)))
            return pn_fail(err, PN_ENOMEM, "out of memory for activations (batch %d)", batch);
    }
    pn_status st = with_grad ? alloc_grads(net, batch, err) : PN_OK;
    if (st)
        return st;
    for (int i = 0; i < net->n_layers; i++)
        if (net->layers[i].fused_away || net->layers[i].in_place)
            net->layers[i].out.data = net->layers[net->layers[i].inputs[0]].out.data;
    net->scratch = with_grad ? malloc(largest) : NULL;
    net->logits = malloc((size_t)batch * net->classes * sizeof(float));
    if ((with_grad && !net->scratch) || !net->logits)
        return pn_fail(err, PN_ENOMEM, "out of memory");
    net->batch = batch;
    return PN_OK;
}

/* ---- forward / backward ---- */
pn_status pn_net_forward(pn_net *net, const float *input, int n, int mode, pn_error *err)
{
    if (n <= 0)
        return pn_fail(err, PN_EINVAL, "batch size must be positive");
    if (mode != PN_FWD_INFER && !net->can_train)
        return pn_fail(err, PN_EINVAL, "this network was fused for inference and cannot train");
    pn_status st = ensure_buffers(net, n, mode != PN_FWD_INFER, err);
    if (st)
        return st;
    net->cur_n = n;
    if (mode == PN_FWD_TRAIN)
        net->step++;
    net->prof_steps += net->profiling;
    pn_layer *in = &net->layers[0];
    pn_vec_from_f32(input, in->out.data, net->dt, pn_buf_numel(&in->out, n));
    for (int i = 1; i < net->n_layers; i++) {
        pn_layer *l = &net->layers[i];
        if (l->fused_away)
            continue;
        double t0 = net->profiling ? pn_now_s() : 0;
        if ((st = l->ops->forward(l, net, mode, err)))
            return pn_error_prefix(err, st, "layer %s: ", l->name);
        if (net->profiling)
            l->prof_fwd_s += pn_now_s() - t0;
    }
    const pn_buf *last = &net->layers[net->n_layers - 1].out;
    for (size_t i = 0; i < (size_t)n * net->classes; i++)
        net->logits[i] = pn_ld(last->data, net->dt, i);
    if (net->watch >= 0) {
        const pn_buf *w = &net->layers[net->watch].out;
        size_t wc = pn_buf_numel(w, n);
        float *grown = realloc(net->watch_act, wc * sizeof(float));
        if (!grown)
            return pn_fail(err, PN_ENOMEM, "out of memory");
        net->watch_act = grown;
        for (size_t i = 0; i < wc; i++)
            grown[i] = pn_ld(w->data, net->dt, i);
    }
    net->trained_forward = mode;
    return PN_OK;
}

const float *pn_net_logits(pn_net *net) { return net->logits; }

/* The watched gradient is complete (all consumers ran) just before the
 * watched layer's own backward; after it, its buffer may be reused. */
static pn_status capture_watch_grad(pn_net *net, pn_error *err)
{
    const pn_buf *w = &net->layers[net->watch].out;
    size_t wc = pn_buf_numel(w, net->cur_n);
    float *grown = realloc(net->watch_grad, wc * sizeof(float));
    if (!grown)
        return pn_fail(err, PN_ENOMEM, "out of memory");
    net->watch_grad = grown;
    for (size_t i = 0; i < wc; i++)
        grown[i] = w->grad_written ? pn_ld(w->grad, net->dt, i) : 0.0f;
    return PN_OK;
}

pn_status pn_net_backward(pn_net *net, const float *dlogits, pn_error *err)
{
    if (net->trained_forward == PN_FWD_INFER)
        return pn_fail(err, PN_EINVAL, "backward needs a preceding training (or gradient) forward pass");
    int n = net->cur_n;
    for (int i = 0; i < net->n_layers; i++)
        net->layers[i].out.grad_written = 0;
    pn_layer *last = &net->layers[net->n_layers - 1];
    for (size_t i = 0; i < (size_t)n * net->classes; i++)
        pn_st(last->out.grad, net->dt, i, dlogits[i]);
    last->out.grad_written = 1;
    pn_status st;
    for (int i = net->n_layers - 1; i >= 1; i--) {
        pn_layer *l = &net->layers[i];
        if (i == net->watch && (st = capture_watch_grad(net, err)))
            return st;
        if (!l->out.grad_written)
            continue; /* no gradient reaches this layer (frozen prefix) */
        double t0 = net->profiling ? pn_now_s() : 0;
        if ((st = l->ops->backward(l, net, err)))
            return pn_error_prefix(err, st, "layer %s (backward): ", l->name);
        if (net->profiling)
            l->prof_bwd_s += pn_now_s() - t0;
    }
    return PN_OK;
}

pn_status pn_net_recalibrate_bn(pn_net *net, const float *input, int n, pn_error *err)
{
    net->calibrating_bn = 1;
    pn_status st = pn_net_forward(net, input, n, PN_FWD_TRAIN, err);
    net->calibrating_bn = 0;
    pn_net_params_changed(net);
    return st;
}

/* ---- accessors ---- */
int pn_net_input_size(const pn_net *net) { return net->input_size; }
int pn_net_channels(const pn_net *net) { return net->channels; }
int pn_net_classes(const pn_net *net) { return net->classes; }
pn_dtype pn_net_precision(const pn_net *net) { return net->dt; }
const char *pn_net_cfg_text(const pn_net *net) { return net->cfg_text; }
const float *pn_net_mean(const pn_net *net) { return net->mean; }
const float *pn_net_std(const pn_net *net) { return net->std; }
size_t pn_net_param_count(const pn_net *net) { return net->n_params; }
pn_param *pn_net_param(pn_net *net, size_t i) { return i < net->n_params ? &net->params[i] : NULL; }
void pn_net_params_changed(pn_net *net) { net->wver++; }
uint64_t *pn_net_step_counter(pn_net *net) { return &net->step; }

pn_param *pn_net_find_param(pn_net *net, const char *name)
{
    for (size_t i = 0; i < net->n_params; i++)
        if (!strcmp(net->params[i].name, name))
            return &net->params[i];
    return NULL;
}

size_t pn_net_freeze(pn_net *net, const char *prefix, int frozen)
{
    size_t matched = 0, len = strlen(prefix);
    for (size_t i = 0; i < net->n_params; i++)
        if (!strncmp(net->params[i].name, prefix, len)) {
            net->params[i].frozen = frozen;
            matched++;
        }
    return matched;
}

size_t pn_net_trainable_count(const pn_net *net)
{
    size_t total = 0;
    for (size_t i = 0; i < net->n_params; i++)
        if (!net->params[i].is_buffer && !net->params[i].frozen)
            total += net->params[i].numel;
    return total;
}

static int find_layer(const pn_net *net, const char *name)
{
    for (int i = 1; i < net->n_layers; i++)
        if (!strcmp(net->layers[i].name, name))
            return i;
    return -1;
}

pn_status pn_net_watch(pn_net *net, const char *layer_name, pn_error *err)
{
    int i = find_layer(net, layer_name);
    if (i < 0)
        return pn_fail(err, PN_EINVAL, "no layer named '%s'", layer_name);
    if (net->layers[i].fused_away)
        return pn_fail(err, PN_EINVAL, "layer '%s' was fused away", layer_name);
    if (net->layers[i].deferred) /* a watched output must be stored */
        pn_net_undefer(net);
    /* A watched output must survive the forward pass: no activation may overwrite it. */
    for (int j = i + 1; j < net->n_layers; j++)
        if (net->layers[j].in_place && net->layers[j].inputs[0] == i) {
            net->layers[j].in_place = 0;
            if (net->layers[j].ops->reset)
                net->layers[j].ops->reset(&net->layers[j]);
            pn_net_free_buffers(net);
        }
    net->watch = i;
    return PN_OK;
}

pn_status pn_net_watched(pn_net *net, float **act, float **grad, int *c, int *h, int *w,
                         pn_error *err)
{
    if (net->watch < 0 || !net->watch_act)
        return pn_fail(err, PN_EINVAL, "no watched layer, or no forward pass yet");
    *act = net->watch_act;
    *grad = net->watch_grad;
    *c = net->layers[net->watch].out.c;
    *h = net->layers[net->watch].out.h;
    *w = net->layers[net->watch].out.w;
    return PN_OK;
}

const char *pn_net_last_conv_name(const pn_net *net)
{
    for (int i = net->n_layers - 1; i >= 1; i--)
        if (net->layers[i].out.h > 1 && !net->layers[i].fused_away)
            return net->layers[i].name;
    return NULL;
}

uint64_t pn_net_macs(const pn_net *net)
{
    uint64_t total = 0;
    for (int i = 0; i < net->n_layers; i++)
        total += net->layers[i].macs;
    return total;
}

void pn_net_print(const pn_net *net, FILE *out)
{
    fprintf(out, "%-4s %-34s %-10s %-16s %12s %14s\n", "#", "layer", "kind", "output (HxWxC)",
            "params", "MACs");
    size_t total_params = 0;
    for (int i = 0; i < net->n_layers; i++) {
        const pn_layer *l = &net->layers[i];
        size_t params = 0;
        for (size_t k = 0; k < l->n_params; k++)
            if (!net->params[l->first_param + k].is_buffer)
                params += net->params[l->first_param + k].numel;
        total_params += params;
        char shape[32];
        snprintf(shape, sizeof shape, "%dx%dx%d", l->out.h, l->out.w, l->out.c);
        fprintf(out, "%-4d %-34.34s %-10s %-16s %12zu %14llu\n", i, l->name, l->ops->kind, shape,
                params, (unsigned long long)l->macs);
    }
    fprintf(out, "total: %zu parameters, %.3f GMACs per image (%.3f GFLOPs), input %dx%dx%d, %d classes\n",
            total_params, (double)pn_net_macs(net) / 1e9, 2.0 * (double)pn_net_macs(net) / 1e9,
            net->input_size, net->input_size, net->channels, net->classes);
}
