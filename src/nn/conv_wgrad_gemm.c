#include <string.h>

#include "nn/conv_wgrad_gemm.h"

int pn_wgrad_gemm_pays(const pn_conv_geom *g, const pn_layer *l, const pn_net *net)
{
    return net->dt == PN_BF16 && g->groups == 1 && !g->has_bias && g->kh * g->kw > 1 &&
           l->out.h * l->out.w <= 49;
}

void pn_wgrad_gemm_free(pn_wgrad_gemm *w)
{
    pn_destroy_prim(&w->matmul);
    pn_destroy_prim(&w->to_oihw);
    dnnl_memory_t *m[] = {&w->dy_t, &w->col, &w->prod, &w->prod_4d, &w->grad};
    for (size_t i = 0; i < sizeof m / sizeof *m; i++)
        pn_destroy_mem(m[i]);
}

pn_status pn_wgrad_gemm_init(pn_wgrad_gemm *w, pn_net *net, pn_layer *l, int n, pn_error *err)
{
    const pn_conv_geom *g = pn_conv_geometry(l);
    const pn_buf *in = pn_layer_in(net, l, 0);
    memset(w, 0, sizeof *w);
    dnnl_engine_t eng = net->ctx->engine;
    dnnl_dim_t rows = (dnnl_dim_t)n * l->out.h * l->out.w, oc = g->filters;
    dnnl_dim_t k = (dnnl_dim_t)g->kh * g->kw * in->c;
    dnnl_memory_desc_t a, b, c, c4, user;
    /* dY is [rows][oc] in NHWC: read transposed, with strides, no copy */
    dnnl_dims_t ad = {oc, rows}, bd = {rows, k}, cd = {oc, k}, astr = {1, oc};
    PN_DNNL(dnnl_memory_desc_init_by_strides(&a, 2, ad, dnnl_bf16, astr), err, l->name);
    PN_DNNL(dnnl_memory_desc_init_by_tag(&b, 2, bd, dnnl_bf16, dnnl_ab), err, l->name);
    PN_DNNL(dnnl_memory_desc_init_by_tag(&c, 2, cd, dnnl_f32, dnnl_ab), err, l->name);
    /* the product's [oc][kh][kw][ic] is the O,I,H,W tensor in acdb order */
    dnnl_dims_t wd = {oc, in->c, g->kh, g->kw};
    PN_DNNL(dnnl_memory_desc_init_by_tag(&c4, 4, wd, dnnl_f32, dnnl_acdb), err, l->name);
    PN_DNNL(dnnl_memory_desc_init_by_tag(&user, 4, wd, dnnl_f32, dnnl_oihw), err, l->name);
    dnnl_matmul_desc_t md;
    PN_DNNL(dnnl_matmul_desc_init(&md, &a, &b, NULL, &c), err, l->name);
    dnnl_primitive_desc_t pd;
    pn_status st;
    if ((st = pn_make_pd(net, &md, NULL, NULL, &pd, l->name, err)))
        return st;
    st = pn_make_prim(pd, &w->matmul, l->name, err);
    pn_destroy_pd(&pd);
    if (st)
        return st;
    PN_DNNL(dnnl_reorder_primitive_desc_create(&pd, &c4, eng, &user, eng, NULL), err, l->name);
    st = pn_make_prim(pd, &w->to_oihw, l->name, err);
    pn_destroy_pd(&pd);
    if (st)
        return st;
    PN_DNNL(dnnl_memory_create(&w->dy_t, &a, eng, DNNL_MEMORY_NONE), err, l->name);
    PN_DNNL(dnnl_memory_create(&w->col, &b, eng, DNNL_MEMORY_NONE), err, l->name);
    PN_DNNL(dnnl_memory_create(&w->prod, &c, eng, DNNL_MEMORY_NONE), err, l->name);
    PN_DNNL(dnnl_memory_create(&w->prod_4d, &c4, eng, DNNL_MEMORY_NONE), err, l->name);
    PN_DNNL(dnnl_memory_create(&w->grad, &user, eng, pn_layer_param(net, l, 0)->grad), err, l->name);
    w->col_bytes = dnnl_memory_desc_get_size(&b);
    w->prod_bytes = dnnl_memory_desc_get_size(&c);
    return PN_OK;
}

/* col[(n, oy, ox)][(i, j, :)] = x[n][oy*sh - pt + i*dh][ox*sw - pl + j*dw][:], 0 outside. */
static void im2col(const uint16_t *x, uint16_t *col, const pn_conv_geom *g, int n, int ih, int iw,
                   int oh, int ow)
{
    size_t c = (size_t)g->in_c, k = (size_t)g->kh * g->kw * c;
    int rows = n * oh * ow;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) {
        int b = r / (oh * ow), oy = r / ow % oh, ox = r % ow;
        uint16_t *dst = col + (size_t)r * k;
        for (int i = 0; i < g->kh; i++)
            for (int j = 0; j < g->kw; j++, dst += c) {
                int y = oy * g->sh - g->pt + i * g->dh, xx = ox * g->sw - g->pl + j * g->dw;
                if (y < 0 || y >= ih || xx < 0 || xx >= iw)
                    memset(dst, 0, c * sizeof *dst);
                else
                    memcpy(dst, x + (((size_t)b * ih + y) * iw + xx) * c, c * sizeof *dst);
            }
    }
}

pn_status pn_wgrad_gemm_run(pn_wgrad_gemm *w, pn_net *net, pn_layer *l, pn_error *err)
{
    const pn_conv_geom *g = pn_conv_geometry(l);
    const pn_buf *in = pn_layer_in(net, l, 0);
    void *col = pn_net_slot(net, 0, w->col_bytes, err);
    void *prod = col ? pn_net_slot(net, 1, w->prod_bytes, err) : NULL;
    if (!prod)
        return PN_ENOMEM; /* pn_net_slot fails only for memory */
    im2col(in->data, col, g, net->cur_n, in->h, in->w, l->out.h, l->out.w);
    dnnl_memory_set_data_handle(w->dy_t, l->out.grad);
    dnnl_memory_set_data_handle(w->col, col);
    dnnl_memory_set_data_handle(w->prod, prod);
    dnnl_memory_set_data_handle(w->prod_4d, prod);
    dnnl_exec_arg_t mm[] = {{DNNL_ARG_SRC, w->dy_t}, {DNNL_ARG_WEIGHTS, w->col}, {DNNL_ARG_DST, w->prod}};
    pn_status st = pn_exec(net, w->matmul, 3, mm, l->name, err);
    if (st)
        return st;
    dnnl_exec_arg_t ro[] = {{DNNL_ARG_FROM, w->prod_4d}, {DNNL_ARG_TO, w->grad}};
    return pn_exec(net, w->to_oihw, 2, ro, l->name, err);
}
