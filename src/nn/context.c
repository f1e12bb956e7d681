/* The oneDNN engine and stream a network runs on, and CPU capability checks. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "nn/internal.h"

#if defined(__SSE__)
#include <pmmintrin.h>
#include <xmmintrin.h>
#endif

static const char *isa_name(dnnl_cpu_isa_t isa)
{
    switch (isa) {
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_sse41: return "sse41";
    default: return "other";
    }
}

pn_status pn_ctx_create(pn_ctx **out, pn_error *err) { return pn_ctx_create_with(NULL, out, err); }

pn_status pn_ctx_create_with(const pn_ctx_options *opt, pn_ctx **out, pn_error *err)
{
    *out = NULL;
    if (opt && (opt->threads < 0 || opt->threads > 4096))
        return pn_fail(err, PN_EINVAL, "thread count %d out of range (0-4096)", opt->threads);
    pn_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return pn_fail(err, PN_ENOMEM, "out of memory");
    ctx->threads = opt ? opt->threads : 0;
    if (dnnl_engine_create(&ctx->engine, dnnl_cpu, 0) != dnnl_success) {
        free(ctx);
        return pn_fail(err, PN_EDNNL, "cannot create the oneDNN CPU engine");
    }
    if (dnnl_stream_create(&ctx->stream, ctx->engine, dnnl_stream_default_flags) != dnnl_success) {
        dnnl_engine_destroy(ctx->engine);
        free(ctx);
        return pn_fail(err, PN_EDNNL, "cannot create a oneDNN stream");
    }
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    /* bf16 is only worth it (and only exact to oneDNN's reference) with native
     * instructions; elsewhere we compute in fp32. PNEUMO_NO_BF16=1 forces the
     * fallback, to test it on bf16 machines. */
    const char *no_bf16 = getenv("PNEUMO_NO_BF16");
    ctx->native_bf16 = (isa == dnnl_cpu_isa_avx512_core_bf16 || isa == dnnl_cpu_isa_avx512_core_amx) &&
                       !(no_bf16 && *no_bf16 == '1');
    snprintf(ctx->isa, sizeof ctx->isa, "%s", isa_name(isa));
#if defined(__SSE__)
    /* Subnormal floats are ~100x slower on x86 and meaningless for this work;
     * OpenMP workers created after this inherit the mode (the optimiser also
     * sets it in every worker). */
    _MM_SET_FLUSH_ZERO_MODE(_MM_FLUSH_ZERO_ON);
    _MM_SET_DENORMALS_ZERO_MODE(_MM_DENORMALS_ZERO_ON);
#endif
    *out = ctx;
    return PN_OK;
}

void pn_ctx_destroy(pn_ctx *ctx)
{
    if (!ctx)
        return;
    dnnl_stream_destroy(ctx->stream);
    dnnl_engine_destroy(ctx->engine);
    free(ctx);
}

int pn_ctx_has_native_bf16(const pn_ctx *ctx) { return ctx->native_bf16; }

int pn_ctx_threads_enter(const pn_ctx *ctx)
{
    int saved = omp_get_max_threads();
    if (ctx->threads > 0 && ctx->threads != saved)
        omp_set_num_threads(ctx->threads);
    return saved;
}

void pn_ctx_threads_leave(int saved)
{
    if (omp_get_max_threads() != saved)
        omp_set_num_threads(saved);
}
const char *pn_ctx_isa_name(const pn_ctx *ctx) { return ctx->isa; }
