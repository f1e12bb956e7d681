/* pneumo arch show NAME|FILE: the layer table of an architecture. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/options.h"
#include "pneumo/nn.h"

static int usage(FILE *out)
{
    fprintf(out, "usage: pneumo arch show NAME|FILE [--channels 1|3] [--input-size N] [--classes K]\n"
                 "Built-in names: simple-cnn, resnet18, vgg19, mobilenetv2, mobilenetv3-small\n");
    return out == stdout ? 0 : 2;
}

int pn_cmd_arch(int argc, char **argv)
{
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")))
        return usage(stdout);
    if (argc < 3 || strcmp(argv[1], "show"))
        return usage(stderr);
    pn_net_options opt = {0};
    const pn_option table[] = {
        PN_OPT_INT("channels", &opt.channels, 1, 3),
        PN_OPT_INT("input-size", &opt.input_size, 8, 4096),
        PN_OPT_INT("classes", &opt.classes, 1, 1000),
        PN_OPT_END,
    };
    switch (pn_opts_parse("pneumo arch", table, argc, argv, 3, NULL, NULL)) {
    case PN_OPTS_HELP: return usage(stdout);
    case PN_OPTS_BAD: return 2;
    case PN_OPTS_OK: break;
    }
    pn_error err = {0};
    char *text = NULL;
    pn_ctx *ctx = NULL;
    pn_net *net = NULL;
    if (pn_arch_read(argv[2], &text, &err) || pn_ctx_create(&ctx, &err) ||
        pn_net_create(ctx, text, &opt, &net, &err)) {
        fprintf(stderr, "pneumo arch: %s\n", err.msg);
        free(text);
        pn_ctx_destroy(ctx);
        return 1;
    }
    pn_net_print(net, stdout);
    pn_net_destroy(net);
    pn_ctx_destroy(ctx);
    free(text);
    return 0;
}
