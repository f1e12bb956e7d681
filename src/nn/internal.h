/* Engine internals shared by the layer files. Not a public API. */
#ifndef PNEUMO_NN_INTERNAL_H
#define PNEUMO_NN_INTERNAL_H

#include <oneapi/dnnl/dnnl.h>
#include <time.h>

#include "pneumo/nn.h"
#include "nn/cfg.h"

#define PN_MAX_INPUTS PN_LAYER_MAX_INPUTS
/* Largest kernel side, stride or dilation a cfg may ask for: beyond any
 * input (at most 2048), and small enough that window arithmetic cannot
 * overflow an int. */
#define PN_MAX_WINDOW_SIDE 4096
/* Largest parameter tensor, in elements (1 GiB of fp32; VGG-19's largest
 * has 103M): a cfg asking for more is refused before anything is allocated. */
#define PN_MAX_PARAM_ELEMS ((size_t)1 << 28)

struct pn_ctx {
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    int native_bf16;
    int threads; /* pn_ctx_options.threads */
    char isa[32];
};

/* Applies ctx's thread count to the calling thread for one library call and
 * returns what to restore: `int saved = pn_ctx_threads_enter(ctx); ...;
 * pn_ctx_threads_leave(saved);` */
int pn_ctx_threads_enter(const pn_ctx *ctx);
void pn_ctx_threads_leave(int saved);

/* An activation tensor (NHWC) and, for training, its gradient. */
typedef struct pn_buf {
    int c, h, w;
    void *data;       /* n x h x w x c of the net's compute dtype */
    void *grad;       /* same shape; allocated when the net trains */
    int grad_written; /* backward: set by the first consumer that writes grad */
} pn_buf;

typedef struct pn_layer pn_layer;


enum { PN_RELAYOUT_SLOTS = 2 }; /* shared buffers for activations in a primitive's layout (pn_relayout) */

typedef struct pn_layer_ops {
    const char *kind;
    /* Reads the cfg section, sets l->out shape from the inputs, adds params. */
    pn_status (*init)(pn_layer *l, pn_net *net, const pn_cfg_section *s, pn_error *err);
    pn_status (*forward)(pn_layer *l, pn_net *net, int train, pn_error *err);
    pn_status (*backward)(pn_layer *l, pn_net *net, pn_error *err);
    /* Drops batch-size dependent state (primitives, memories); may be NULL. */
    void (*reset)(pn_layer *l);
    void (*destroy)(pn_layer *l);
    /* Fills the kind's fields of d (pn_net_describe has set the common ones). */
    void (*describe)(const pn_layer *l, const pn_net *net, pn_layer_desc *d);
} pn_layer_ops;

struct pn_layer {
    const pn_layer_ops *ops;
    char name[112];
    int index;
    int inputs[PN_MAX_INPUTS]; /* layer indices; 0 is the input layer */
    int n_inputs;
    pn_buf out;
    uint64_t macs;
    size_t first_param, n_params; /* range in net->params */
    int fused_away;   /* inference fusion: output aliases the input, forward is a no-op */
    int in_place;     /* output overwrites the input buffer (activations whose backward uses the output) */
    pn_act_kind fused_act; /* batch norm applies the following ReLU or hardswish itself
                              (that layer is fused away); PN_ACT_LINEAR when none */
    int deferred;     /* batch norm whose only reader applies it on the fly, so its output
                         is never stored (pn_bn_deferral) */
    double prof_fwd_s, prof_bwd_s; /* time spent, while net->profiling */
    void *priv;
};

struct pn_net {
    pn_ctx *ctx;
    char *cfg_text;
    int input_size, channels, classes;
    float mean[3], std[3];
    pn_dtype dt;          /* compute dtype of activations */
    uint64_t seed;
    uint64_t step;        /* forward counter: varies dropout masks */

    pn_layer *layers;     /* layers[0] is the input */
    int n_layers;
    pn_param *params;
    size_t n_params, cap_params;

    int batch;            /* allocated batch size (activations) */
    int cur_n;            /* batch of the last forward */
    int trained_forward;  /* last forward kept training state */
    int can_train;        /* 0 after pn_net_fuse_for_inference */
    int calibrating_bn;   /* pn_net_recalibrate_bn in progress */
    uint64_t wver;        /* bumped whenever parameters change: layers re-sync weights */
    float *logits;        /* cur_n x classes */
    void *scratch;        /* gradient accumulation scratch, largest activation */
    void **grad_pool;     /* gradient buffers shared by layers (see alloc_grads) */
    int n_grad_pool;
    int watch;            /* layer index watched for Grad-CAM, or -1 */
    float *watch_act, *watch_grad;
    void *relayout[PN_RELAYOUT_SLOTS]; /* see pn_relayout; grown on demand */
    size_t relayout_bytes[PN_RELAYOUT_SLOTS];
    pn_net_group bn_group; /* synchronised batch norm (pn_net_options.bn_group); sum NULL = off */
    int batch_offset;     /* pn_net_set_batch_offset */
    pn_net_grad_hook grad_hook; /* pn_net_set_grad_hook */
    void *grad_hook_user;
    int profiling;        /* pn_net_profile: layers' times are accumulated */
    long prof_steps;      /* forwards while profiling */
};

/* ---- helpers used by the layers ---- */
/* Element loops compiled twice, for AVX-512 and for any x86-64, the loader
 * picking one: 16 lanes instead of SSE2's 4 (Adam's divisions and square
 * roots, the squeeze-excitation passes). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define PN_SIMD_CLONES __attribute__((target_clones("avx512f", "default")))
#else
#define PN_SIMD_CLONES
#endif

#define PN_DNNL(call, err, what)                                                          \
    do {                                                                              \
        dnnl_status_t st_ = (call);                                                   \
        if (st_ != dnnl_success)                                                      \
            return pn_fail((err), PN_EDNNL, "%s: oneDNN status %d in %s", (what), (int)st_, #call); \
    } while (0)

dnnl_data_type_t pn_dnnl_dt(pn_dtype t);
/* NHWC memory descriptor for n x c x h x w. */
pn_status pn_md_nhwc(dnnl_memory_desc_t *md, int n, int c, int h, int w, pn_dtype t, pn_error *err);

/* Adds a parameter owned by layer l; returns its index. data zeroed. */
pn_status pn_net_add_param(pn_net *net, pn_layer *l, const char *suffix, int ndim,
                           const int *shape, int is_buffer, int no_decay, size_t *index,
                           pn_error *err);
static inline pn_param *pn_layer_param(pn_net *net, pn_layer *l, size_t k)
{
    return &net->params[l->first_param + k];
}
static inline pn_buf *pn_layer_in(pn_net *net, pn_layer *l, int k)
{
    return &net->layers[l->inputs[k]].out;
}
static inline size_t pn_buf_numel(const pn_buf *b, int n) { return (size_t)n * b->c * b->h * b->w; }

/* Whether layer l must produce the gradient of its input k (some layer
 * before it trains, or Grad-CAM watches it). */
int pn_net_needs_input_grad(const pn_net *net, const pn_layer *l, int k);
/* Training fusions of a batch norm into its only reader (pn_layer.deferred). */
enum pn_bn_deferral {
    PN_BN_STORED = 0, /* not deferred */
    PN_BN_IN_SE,      /* an SE block applies it and runs its backward (bn_se.h) */
    PN_BN_IN_CONV     /* a depthwise convolution applies it as it reads its input rows
                         (dw_nhwc.h); the norm's backward runs as usual */
};
/* Ends every batch norm -> SE training fusion (pn_layer.deferred): for a
 * watched batch-norm output, and before inference fusion folds the norms. */
void pn_net_undefer(pn_net *net);
/* Whether any param of l trains. */
int pn_layer_trains(const pn_net *net, const pn_layer *l);

/* Gradient accumulation for tensors with several consumers: the first writer
 * writes the gradient buffer in place; later ones write scratch and add it.
 * Usage: void *dst = pn_grad_begin(net, buf); ...write dst...; pn_grad_end(net, buf, dst, n); */
void *pn_grad_begin(pn_net *net, pn_buf *b);
void pn_grad_end(pn_net *net, pn_buf *b, void *dst, int n);

/* Frees activation buffers (re-allocated by the next forward). */
void pn_net_free_buffers(pn_net *net);
/* Buffers for a batch of n (and gradients when with_grad), kept when big enough. */
pn_status pn_net_ensure_buffers(pn_net *net, int n, int with_grad, pn_error *err);
/* The training fusions (when fuse) and in-place activations of a new net (fuse.c). */
void pn_net_plan_fusion(pn_net *net, int fuse);

/* Runs a oneDNN primitive with (arg, memory) pairs. */
pn_status pn_exec(pn_net *net, dnnl_primitive_t p, int nargs, const dnnl_exec_arg_t *args,
                  const char *what, pn_error *err);
/* Creates a primitive from an op descriptor; fails when oneDNN would pick a
 * reference (slow) implementation and PNEUMO_ALLOW_REF is unset? No: ref is
 * allowed but reported by pn_impl_name for tests and benchmarks. */
pn_status pn_make_pd(pn_net *net, const void *op_desc, const_dnnl_primitive_attr_t attr,
                     const_dnnl_primitive_desc_t hint, dnnl_primitive_desc_t *pd,
                     const char *what, pn_error *err);
/* As pn_make_pd, but takes the first implementation whose name contains
 * `prefer` when oneDNN offers one (else its default choice). */
pn_status pn_make_pd_prefer(pn_net *net, const void *op_desc, const_dnnl_primitive_desc_t hint,
                            const char *prefer, dnnl_primitive_desc_t *pd, const char *what,
                            pn_error *err);
pn_status pn_make_prim(dnnl_primitive_desc_t pd, dnnl_primitive_t *p, const char *what,
                       pn_error *err);

/* A weight tensor kept in the layout a primitive wants: user fp32 memory
 * (pointing at the param) reordered into prim memory when they differ. */
typedef struct pn_wmem {
    dnnl_memory_t user, prim;
    dnnl_primitive_t reorder; /* NULL when user == prim layout */
    int to_user;              /* direction: prim -> user (diff weights) */
} pn_wmem;
pn_status pn_wmem_init(pn_wmem *w, pn_net *net, const dnnl_memory_desc_t *user_md, void *user_data,
                       const dnnl_memory_desc_t *prim_md, int to_user, pn_error *err);
/* Copies user->prim (to_user=0) or prim->user (to_user=1). */
pn_status pn_wmem_sync(pn_wmem *w, pn_net *net, pn_error *err);
void pn_wmem_free(pn_wmem *w);
static inline dnnl_memory_t pn_wmem_get(const pn_wmem *w) { return w->prim ? w->prim : w->user; }

/* An activation (or its gradient) in a layout a primitive asked for instead
 * of NHWC, e.g. nChw16c for Winograd convolutions: reorders between the
 * layer's NHWC buffer and one of the net's shared relayout buffers, which
 * hold it only for the duration of one layer's forward or backward. */
typedef struct pn_relayout {
    dnnl_memory_t user, prim;
    dnnl_primitive_t to_prim, to_user;
    size_t prim_bytes;
} pn_relayout;
/* The net's shared work buffer `slot`, grown to at least `bytes` (contents
 * are not kept when it grows); NULL with err set when out of memory. Valid
 * until the next call for the same slot; layers use it within one forward
 * or backward. */
void *pn_net_slot(pn_net *net, int slot, size_t bytes, pn_error *err);
pn_status pn_relayout_init(pn_relayout *r, pn_net *net, const dnnl_memory_desc_t *user_md,
                           const dnnl_memory_desc_t *prim_md, pn_error *err);
/* Points r at user_buf and relayout slot `slot`, then reorders user -> prim
 * when to_prim (else leaves the slot as it is, for the primitive to fill). */
pn_status pn_relayout_in(pn_relayout *r, pn_net *net, int slot, void *user_buf, int to_prim,
                         pn_error *err);
/* Reorders the slot's contents (prim layout) into the user buffer bound last. */
pn_status pn_relayout_out(pn_relayout *r, pn_net *net, pn_error *err);
void pn_relayout_free(pn_relayout *r);

/* The oneDNN state of a layer without weights whose forward and backward are
 * one primitive each (activation, pooling, batch norm). */
typedef struct pn_prims {
    int built_n, built_mode; /* what the primitives were made for (batch, layer's mode) */
    dnnl_primitive_desc_t fwd_pd;
    dnnl_primitive_t fwd, bwd;
    dnnl_memory_t src, dst, dsrc, ddst, ws;
} pn_prims;
void pn_prims_reset(pn_prims *k);
/* src/dst memories (and dsrc/ddst when with_grad), handles set at execution. */
pn_status pn_prims_memories(pn_prims *k, pn_net *net, const dnnl_memory_desc_t *src,
                            const dnnl_memory_desc_t *dst, int with_grad, const char *what,
                            pn_error *err);
/* The workspace the forward primitive asks for, if any (max pooling, fused ReLU). */
pn_status pn_prims_workspace(pn_prims *k, pn_net *net, const char *what, pn_error *err);
/* A backward primitive for op_desc, hinted by the forward primitive descriptor. */
pn_status pn_make_bwd_prim(pn_net *net, const void *op_desc, const_dnnl_primitive_desc_t fwd_pd,
                           dnnl_primitive_t *prim, const char *what, pn_error *err);

void pn_destroy_prim(dnnl_primitive_t *p);
void pn_destroy_pd(dnnl_primitive_desc_t *pd);
void pn_destroy_mem(dnnl_memory_t *m);

/* Element access for hand-written layers in either dtype. */
static inline float pn_ld(const void *p, pn_dtype t, size_t i)
{
    return t == PN_BF16 ? pn_bf16_to_f32(((const uint16_t *)p)[i]) : ((const float *)p)[i];
}
static inline void pn_st(void *p, pn_dtype t, size_t i, float v)
{
    if (t == PN_BF16)
        ((uint16_t *)p)[i] = pn_f32_to_bf16(v);
    else
        ((float *)p)[i] = v;
}

/* Activation functions shared by [activation], [se] and the fusion code. */
pn_status pn_act_parse(const char *name, pn_act_kind *out, pn_error *err);
float pn_act_apply(pn_act_kind k, float x);
float pn_act_grad(pn_act_kind k, float x); /* derivative at pre-activation x */
/* oneDNN eltwise algorithm for k (0 when none, e.g. hardsigmoid). */
int pn_act_dnnl(pn_act_kind k, dnnl_alg_kind_t *alg, float *alpha, float *beta);
/* The variant whose backward needs only the output (so it can run in place); 0 if none. */
int pn_act_dnnl_use_dst(pn_act_kind k, dnnl_alg_kind_t *alg);
/* The function an [activation] layer applies. */
pn_act_kind pn_activation_kind(const pn_layer *l);

/* Layer kinds: the registry (layer_kinds.c) maps pn_layer_kind to these. */
const pn_layer_ops *pn_layer_ops_for(pn_layer_kind kind);
const pn_layer_ops *pn_layer_ops_named(const char *name); /* NULL when unknown */
extern const pn_layer_ops pn_layer_input_ops, pn_layer_conv_ops, pn_layer_batchnorm_ops,
    pn_layer_activation_ops, pn_layer_maxpool_ops, pn_layer_avgpool_ops, pn_layer_gap_ops,
    pn_layer_fc_ops, pn_layer_dropout_ops, pn_layer_add_ops, pn_layer_concat_ops,
    pn_layer_se_ops;

/* Padding spec shared by conv and pooling: "same", "tf_same", "valid" or N. */
pn_status pn_parse_padding(const char *spec, int in, int k, int stride, int dilation,
                           int *pad_before, int *pad_after, pn_error *err);

/* Parameter initialisation. */
void pn_init_kaiming(float *w, size_t n, int fan_in, pn_rng *r);
void pn_init_xavier(float *w, size_t n, int fan_in, int fan_out, pn_rng *r);

#endif
