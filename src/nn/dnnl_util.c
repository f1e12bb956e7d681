/* Small wrappers around oneDNN's C API used by every layer. */
#include <stdlib.h>
#include <string.h>

#include "nn/internal.h"
#include "nn/vec.h"

dnnl_data_type_t pn_dnnl_dt(pn_dtype t) { return t == PN_BF16 ? dnnl_bf16 : dnnl_f32; }

pn_status pn_md_nhwc(dnnl_memory_desc_t *md, int n, int c, int h, int w, pn_dtype t, pn_error *err)
{
    dnnl_dims_t dims = {n, c, h, w};
    PN_DNNL(dnnl_memory_desc_init_by_tag(md, 4, dims, pn_dnnl_dt(t), dnnl_nhwc), err, "memory desc");
    return PN_OK;
}

pn_status pn_exec(pn_net *net, dnnl_primitive_t p, int nargs, const dnnl_exec_arg_t *args,
                  const char *what, pn_error *err)
{
    PN_DNNL(dnnl_primitive_execute(p, net->ctx->stream, nargs, args), err, what);
    return PN_OK;
}

pn_status pn_make_pd(pn_net *net, const void *op_desc, const_dnnl_primitive_attr_t attr,
                     const_dnnl_primitive_desc_t hint, dnnl_primitive_desc_t *pd,
                     const char *what, pn_error *err)
{
    PN_DNNL(dnnl_primitive_desc_create(pd, op_desc, attr, net->ctx->engine, hint), err, what);
    return PN_OK;
}

pn_status pn_make_pd_prefer(pn_net *net, const void *op_desc, const_dnnl_primitive_desc_t hint,
                            const char *prefer, dnnl_primitive_desc_t *pd, const char *what,
                            pn_error *err)
{
    dnnl_primitive_desc_iterator_t it;
    PN_DNNL(dnnl_primitive_desc_iterator_create(&it, op_desc, NULL, net->ctx->engine, hint), err, what);
    *pd = NULL;
    do {
        dnnl_primitive_desc_t cand = dnnl_primitive_desc_iterator_fetch(it);
        const char *impl = "";
        dnnl_primitive_desc_query(cand, dnnl_query_impl_info_str, 0, &impl);
        if (!strstr(impl, prefer)) {
            dnnl_primitive_desc_destroy(cand);
            continue;
        }
        *pd = cand;
        break;
    } while (dnnl_primitive_desc_iterator_next(it) == dnnl_success);
    dnnl_primitive_desc_iterator_destroy(it);
    return *pd ? PN_OK : pn_make_pd(net, op_desc, NULL, hint, pd, what, err);
}

pn_status pn_make_prim(dnnl_primitive_desc_t pd, dnnl_primitive_t *p, const char *what,
                       pn_error *err)
{
    PN_DNNL(dnnl_primitive_create(p, pd), err, what);
    return PN_OK;
}

void pn_prims_reset(pn_prims *k)
{
    pn_destroy_prim(&k->fwd);
    pn_destroy_prim(&k->bwd);
    pn_destroy_pd(&k->fwd_pd);
    dnnl_memory_t *mems[] = {&k->src, &k->dst, &k->dsrc, &k->ddst, &k->ws};
    for (size_t i = 0; i < sizeof mems / sizeof *mems; i++)
        pn_destroy_mem(mems[i]);
    k->built_n = 0;
}

pn_status pn_prims_memories(pn_prims *k, pn_net *net, const dnnl_memory_desc_t *src,
                            const dnnl_memory_desc_t *dst, int with_grad, const char *what,
                            pn_error *err)
{
    dnnl_engine_t eng = net->ctx->engine;
    PN_DNNL(dnnl_memory_create(&k->src, src, eng, DNNL_MEMORY_NONE), err, what);
    PN_DNNL(dnnl_memory_create(&k->dst, dst, eng, DNNL_MEMORY_NONE), err, what);
    if (with_grad) {
        PN_DNNL(dnnl_memory_create(&k->dsrc, src, eng, DNNL_MEMORY_NONE), err, what);
        PN_DNNL(dnnl_memory_create(&k->ddst, dst, eng, DNNL_MEMORY_NONE), err, what);
    }
    return PN_OK;
}

pn_status pn_prims_workspace(pn_prims *k, pn_net *net, const char *what, pn_error *err)
{
    const dnnl_memory_desc_t *ws = dnnl_primitive_desc_query_md(k->fwd_pd, dnnl_query_workspace_md, 0);
    if (ws && ws->ndims > 0)
        PN_DNNL(dnnl_memory_create(&k->ws, ws, net->ctx->engine, DNNL_MEMORY_ALLOCATE), err, what);
    return PN_OK;
}

pn_status pn_make_bwd_prim(pn_net *net, const void *op_desc, const_dnnl_primitive_desc_t fwd_pd,
                           dnnl_primitive_t *prim, const char *what, pn_error *err)
{
    dnnl_primitive_desc_t pd;
    pn_status st = pn_make_pd(net, op_desc, NULL, fwd_pd, &pd, what, err);
    if (st)
        return st;
    st = pn_make_prim(pd, prim, what, err);
    pn_destroy_pd(&pd);
    return st;
}

void pn_destroy_prim(dnnl_primitive_t *p)
{
    if (*p)
        dnnl_primitive_destroy(*p);
    *p = NULL;
}

void pn_destroy_pd(dnnl_primitive_desc_t *pd)
{
    if (*pd)
        dnnl_primitive_desc_destroy(*pd);
    *pd = NULL;
}

void pn_destroy_mem(dnnl_memory_t *m)
{
    if (*m)
        dnnl_memory_destroy(*m);
    *m = NULL;
}

pn_status pn_wmem_init(pn_wmem *w, pn_net *net, const dnnl_memory_desc_t *user_md, void *user_data,
                       const dnnl_memory_desc_t *prim_md, int to_user, pn_error *err)
{
    memset(w, 0, sizeof *w);
    w->to_user = to_user;
    dnnl_engine_t eng = net->ctx->engine;
    PN_DNNL(dnnl_memory_create(&w->user, user_md, eng, user_data), err, "weights memory");
    if (dnnl_memory_desc_equal(user_md, prim_md))
        return PN_OK;
    PN_DNNL(dnnl_memory_create(&w->prim, prim_md, eng, DNNL_MEMORY_ALLOCATE), err,
            "weights memory");
    dnnl_primitive_desc_t rpd;
    const dnnl_memory_desc_t *from = to_user ? prim_md : user_md, *to = to_user ? user_md : prim_md;
    PN_DNNL(dnnl_reorder_primitive_desc_create(&rpd, from, eng, to, eng, NULL), err, "reorder");
    dnnl_status_t st = dnnl_primitive_create(&w->reorder, rpd);
    dnnl_primitive_desc_destroy(rpd);
    if (st != dnnl_success)
        return pn_fail(err, PN_EDNNL, "reorder: oneDNN status %d", (int)st);
    return PN_OK;
}

pn_status pn_wmem_sync(pn_wmem *w, pn_net *net, pn_error *err)
{
    if (!w->reorder)
        return PN_OK;
    dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, w->to_user ? w->prim : w->user},
                              {DNNL_ARG_TO, w->to_user ? w->user : w->prim}};
    return pn_exec(net, w->reorder, 2, args, "weights reorder", err);
}

void pn_wmem_free(pn_wmem *w)
{
    pn_destroy_prim(&w->reorder);
    pn_destroy_mem(&w->prim);
    pn_destroy_mem(&w->user);
}

pn_status pn_relayout_init(pn_relayout *r, pn_net *net, const dnnl_memory_desc_t *user_md,
                           const dnnl_memory_desc_t *prim_md, pn_error *err)
{
    memset(r, 0, sizeof *r);
    dnnl_engine_t eng = net->ctx->engine;
    PN_DNNL(dnnl_memory_create(&r->user, user_md, eng, DNNL_MEMORY_NONE), err, "relayout");
    PN_DNNL(dnnl_memory_create(&r->prim, prim_md, eng, DNNL_MEMORY_NONE), err, "relayout");
    r->prim_bytes = dnnl_memory_desc_get_size(prim_md);
    dnnl_primitive_desc_t rpd;
    PN_DNNL(dnnl_reorder_primitive_desc_create(&rpd, user_md, eng, prim_md, eng, NULL), err, "relayout");
    dnnl_status_t st = dnnl_primitive_create(&r->to_prim, rpd);
    dnnl_primitive_desc_destroy(rpd);
    PN_DNNL(st, err, "relayout");
    PN_DNNL(dnnl_reorder_primitive_desc_create(&rpd, prim_md, eng, user_md, eng, NULL), err, "relayout");
    st = dnnl_primitive_create(&r->to_user, rpd);
    dnnl_primitive_desc_destroy(rpd);
    PN_DNNL(st, err, "relayout");
    return PN_OK;
}

void *pn_net_slot(pn_net *net, int slot, size_t bytes, pn_error *err)
{
    if (net->relayout_bytes[slot] < bytes) {
        free(net->relayout[slot]);
        size_t rounded = (bytes + 63) / 64 * 64;
        if (!(net->relayout[slot] = aligned_alloc(64, rounded))) {
            net->relayout_bytes[slot] = 0;
            pn_fail(err, PN_ENOMEM, "out of memory (%zu-byte work buffer)", bytes);
            return NULL;
        }
        net->relayout_bytes[slot] = rounded;
    }
    return net->relayout[slot];
}

pn_status pn_relayout_in(pn_relayout *r, pn_net *net, int slot, void *user_buf, int to_prim,
                         pn_error *err)
{
    void *buf = pn_net_slot(net, slot, r->prim_bytes, err);
    if (!buf)
        return PN_ENOMEM; /* pn_net_slot fails only for memory */
    dnnl_memory_set_data_handle(r->user, user_buf);
    dnnl_memory_set_data_handle(r->prim, buf);
    if (!to_prim)
        return PN_OK;
    dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, r->user}, {DNNL_ARG_TO, r->prim}};
    return pn_exec(net, r->to_prim, 2, args, "relayout", err);
}

pn_status pn_relayout_out(pn_relayout *r, pn_net *net, pn_error *err)
{
    dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, r->prim}, {DNNL_ARG_TO, r->user}};
    return pn_exec(net, r->to_user, 2, args, "relayout", err);
}

void pn_relayout_free(pn_relayout *r)
{
    pn_destroy_prim(&r->to_prim);
    pn_destroy_prim(&r->to_user);
    pn_destroy_mem(&r->user);
    pn_destroy_mem(&r->prim);
}

void *pn_grad_begin(pn_net *net, pn_buf *b)
{
    return b->grad_written ? net->scratch : b->grad;
}

void pn_grad_end(pn_net *net, pn_buf *b, void *dst, int n)
{
    if (!b->grad_written) {
        b->grad_written = 1;
        return;
    }
    pn_vec_add(b->grad, dst, b->grad, net->dt, pn_buf_numel(b, n));
}

pn_status pn_parse_padding(const char *spec, int in, int k, int stride, int dilation,
                           int *pad_before, int *pad_after, pn_error *err)
{
    int span = (k - 1) * dilation + 1;
    if (!strcmp(spec, "same")) {
        *pad_before = *pad_after = span / 2;
    } else if (!strcmp(spec, "valid")) {
        *pad_before = *pad_after = 0;
    } else if (!strcmp(spec, "tf_same")) {
        /* TensorFlow SAME: output = ceil(in / stride), extra padding at the end. */
        int out = (in + stride - 1) / stride;
        int total = (out - 1) * stride + span - in;
        if (total < 0)
            total = 0;
        *pad_before = total / 2;
        *pad_after = total - total / 2;
    } else {
        char *end;
        long p = strtol(spec, &end, 10);
        if (*end || p < 0 || p > 64)
            return pn_fail(err, PN_EFORMAT, "bad padding '%s' (same, tf_same, valid or N)", spec);
        *pad_before = *pad_after = (int)p;
    }
    return PN_OK;
}
