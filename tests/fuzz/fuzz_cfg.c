/* libFuzzer target: the architecture cfg parser and the network builder.
 * Any text must either build a network (every section known, every
 * reference resolved, shapes consistent, class logits at the end) or fail
 * with a message. */
#include "fuzz_util.h"

#include "nn/cfg.h"
#include "pneumo/nn.h"

static pn_ctx *context(void)
{
    static pn_ctx *ctx; /* one oneDNN engine for the whole run */
    pn_error err = {0};
    if (!ctx && pn_ctx_create(&ctx, &err))
        abort();
    return ctx;
}

/* The parser alone: every key of every section can be looked up. */
static void parse_only(const char *text)
{
    pn_cfg cfg;
    pn_error err = {0};
    pn_status st = pn_cfg_parse(text, &cfg, &err);
    fuzz_check_error(st, &err);
    if (st)
        return;
    for (int i = 0; i < cfg.n_sections; i++) {
        const pn_cfg_section *s = &cfg.sections[i];
        for (int k = 0; k < s->n_kv; k++) {
            int iv;
            float fv;
            if (pn_cfg_str(s, s->kv[k].key, NULL) != s->kv[k].value)
                abort();
            fuzz_check_error(pn_cfg_int(s, s->kv[k].key, 0, &iv, &err), &err);
            fuzz_check_error(pn_cfg_float(s, s->kv[k].key, 0, &fv, &err), &err);
        }
        if (pn_cfg_check_unused(s, &err) != PN_OK)
            abort(); /* every key was just read */
    }
    pn_cfg_free(&cfg);
}

/* Building allocates and initialises every parameter, so a network of
 * hundreds of millions of them takes seconds under ASan and stalls the
 * fuzzer. Only texts whose integers (outside comments, not after a decimal
 * point) are all <= 64 are built, at input size 32: every section kind and
 * wiring is reachable, the largest tensor is 64^4 elements. The size limits
 * beyond that have their own negative cases in tests/test_nn_cfg.c. */
static int small_enough_to_build(const char *text)
{
    int comment = 0;
    for (const char *p = text; *p; p++) {
        if (*p == '\n')
            comment = 0;
        else if (*p == '#')
            comment = 1;
        if (comment || *p < '0' || *p > '9' || (p > text && (p[-1] == '.' || (p[-1] >= '0' && p[-1] <= '9'))))
            continue;
        if (strtol(p, NULL, 10) > 64 || strspn(p, "0123456789") > 2)
            return 0;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_strndup(data, size);
    if (!text)
        return 0;
    parse_only(text);
    if (!small_enough_to_build(text)) {
        free(text);
        return 0;
    }
    pn_net *net = NULL;
    pn_error err = {0};
    pn_net_options opt = {.precision = PN_F32, .seed = 1, .input_size = 32};
    pn_status st = pn_net_create(context(), text, &opt, &net, &err);
    fuzz_check_error(st, &err);
    if (!st) {
        FILE *sink = fopen("/dev/null", "w");
        if (sink) {
            pn_net_print(net, sink);
            fclose(sink);
        }
        if (pn_net_param_count(net) && !pn_net_param(net, 0)->data)
            abort();
        pn_net_destroy(net);
    } else if (net) {
        abort();
    }
    free(text);
    return 0;
}
