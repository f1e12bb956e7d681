/* Network graph building: the cfg's sections become layers (an operation,
 * its batch norm and activation), wired by name or offset, after a [net]
 * section with the input shape, classes and normalisation. */
#include <stdlib.h>
#include <string.h>

#include "nn/internal.h"

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
                                         input_noop, input_noop, NULL};

/* ---- building from cfg ---- */
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
    const pn_layer_ops *ops = pn_layer_ops_named(s->kind);
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
    if (opt && opt->bn_group)
        net->bn_group = *opt->bn_group;
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
        pn_net_plan_fusion(net, !(opt && opt->no_bn_fusion));
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
