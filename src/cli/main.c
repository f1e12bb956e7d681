/* pneumo: chest X-ray pneumonia screening toolkit (research use, not a diagnostic device). */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "pneumo/disclaimer.h"

static const pn_command commands[] = {
    /* {name, summary, function}: each defined in src/cli/cmd_NAME.c */
    {"train", "train a model on a folder dataset (options or a NAME.recipe file)", pn_cmd_train},
    {"cv", "patient-wise K-fold cross-validation: out-of-fold metrics, calibration, report", pn_cmd_cv},
    {"evaluate", "metrics with CIs, plots and an HTML report on a labelled folder", pn_cmd_evaluate},
    {"predict", "probability, label and optional Grad-CAM for image files or folders", pn_cmd_predict},
    {"export", "write a model as an ONNX graph for another runtime (ONNX Runtime, ...)", pn_cmd_export},
    {"ood", "fit and store the out-of-distribution gate (not a chest X-ray) of a model file", pn_cmd_ood},
    {"serve", "HTTP prediction server: REST API, web page, metrics, audit log", pn_cmd_serve},
    {"audit", "export the prediction audit log of `pneumo serve` as CSV", pn_cmd_audit},
    {"data", "dataset statistics, augmentation grid, loader benchmark", pn_cmd_data},
    {"arch", "show an architecture's layers, shapes, parameters and FLOPs", pn_cmd_arch},
    {"bench", "measure training and inference speed on random data", pn_cmd_bench},
    {NULL, NULL, NULL}
};

static void usage(FILE *out)
{
    fprintf(out, "pneumo %s: chest X-ray pneumonia screening toolkit.\n"
                 PN_DISCLAIMER "\n\n"
                 "usage: pneumo <command> [options]   (pneumo <command> --help for details)\n\n",
            PNEUMO_VERSION);
    for (const pn_command *c = commands; c->name; c++)
        fprintf(out, "  %-10s %s\n", c->name, c->summary);
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("pneumo %s\n", PNEUMO_VERSION);
        return 0;
    }
    for (const pn_command *c = commands; c->name; c++)
        if (!strcmp(argv[1], c->name))
            return c->run(argc - 1, argv + 1);
    fprintf(stderr, "pneumo: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
