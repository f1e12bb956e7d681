/* The oneDNN context shared by the tests of one nn test program: created in
 * the cmocka group setup, destroyed in its teardown. */
#ifndef PNEUMO_NN_TESTCTX_H
#define PNEUMO_NN_TESTCTX_H

#include "pneumo/nn.h"

static pn_ctx *g_ctx;

static int setup(void **state)
{
    (void)state;
    pn_error err = {0};
    return pn_ctx_create(&g_ctx, &err) == PN_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    pn_ctx_destroy(g_ctx);
    return 0;
}

#endif
