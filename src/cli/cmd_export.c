/* pneumo export --format onnx MODEL --out FILE.onnx: the model as an ONNX
 * graph that takes uint8 grayscale images at the model's input size and
 * returns the probabilities `pneumo predict` computes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/options.h"
#include "pneumo/export.h"
#include "pneumo/infer.h"

enum { FORMAT_ONNX };
static const pn_opt_choice format_choices[] = {{"onnx", FORMAT_ONNX}, {NULL, 0}};

static int usage(FILE *out)
{
    fprintf(out, "usage: pneumo export --format onnx MODEL --out FILE.onnx\n"
                 "Writes MODEL (a .safetensors model file) as an ONNX graph (opset 17): input\n"
                 "\"image\", uint8 grayscale N x 1 x S x S already at the model's input size S;\n"
                 "output \"probabilities\", float N x 2 (NORMAL, PNEUMONIA), and for a three-class\n"
                 "model also \"class_probabilities\", float N x 3 (NORMAL, BACTERIAL, VIRAL): the\n"
                 "probabilities `pneumo predict --tta 1` reports (preprocessing, batch norm folded,\n"
                 "temperature, the heads and the ensemble mean are in the graph; the\n"
                 "out-of-distribution gate and test-time views are not). Resizing to S x S is\n"
                 "left to the caller. Models whose networks equalise with CLAHE are refused.\n"
                 "Research and screening-assist tool, not a diagnostic device.\n");
    return out == stdout ? 0 : 2;
}

/* The model's members (one network, or an ensemble's) as the exporter takes them;
 * NULL after printing why. CLAHE (adaptive histogram equalisation on tiles)
 * has no exact expression in ONNX operators, so such members are refused. */
static pn_export_member *members_of(const pn_model *m, const char *model_path)
{
    int n = pn_model_member_count(m);
    pn_export_member *members = calloc((size_t)n, sizeof *members); /* [n] */
    if (!members) {
        fprintf(stderr, "pneumo export: out of memory\n");
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        members[i] = (pn_export_member){pn_model_member_net(m, i), pn_model_member_temperature(m, i)};
        if (pn_model_member_clahe(m, i)) {
            fprintf(stderr, "pneumo export: %s: member %d equalises its input with CLAHE (contrast-limited "
                            "adaptive histogram equalisation), which the ONNX graph cannot express exactly\n",
                    model_path, i);
            free(members);
            return NULL;
        }
    }
    return members;
}

static void print_written(const char *out, const pn_model *m, const char *threshold)
{
    const pn_model_info *info = pn_model_get_info(m);
    printf("wrote %s: %s, input \"image\" uint8 N x 1 x %d x %d, output \"probabilities\" "
           "N x 2 (P(PNEUMONIA) = column 1, threshold %s)%s\n",
           out, info->arch_name, info->input_size, info->input_size, threshold,
           pn_model_classes(m) == 3 ? ", \"class_probabilities\" N x 3 (NORMAL, BACTERIAL, VIRAL)" : "");
    if (pn_model_tta(m) > 1)
        fprintf(stderr, "pneumo export: note: %s averages %d test-time views per network; the graph computes "
                        "the plain view, as `pneumo predict --tta 1` does\n", out, pn_model_tta(m));
}

static int export_onnx(const char *model_path, const char *out)
{
    pn_error err = {0};
    pn_model *m = NULL;
    if (pn_model_load(model_path, 1, &m, &err)) {
        fprintf(stderr, "pneumo export: %s\n", err.msg);
        return 1;
    }
    const pn_model_info *info = pn_model_get_info(m);
    char threshold[32], size[16];
    snprintf(threshold, sizeof threshold, "%.6g", info->threshold);
    snprintf(size, sizeof size, "%d", info->input_size);
    const pn_kv meta[] = {{"pneumo.model_id", info->id},   {"pneumo.model_version", info->version},
                          {"pneumo.arch", info->arch_name}, {"pneumo.input_size", size},
                          {"pneumo.classes", "NORMAL,PNEUMONIA"}, {"pneumo.threshold", threshold},
                          {"pneumo.class_probabilities", pn_model_classes(m) == 3 ? "NORMAL,BACTERIAL,VIRAL" : ""}};
    size_t n_meta = sizeof meta / sizeof *meta - (pn_model_classes(m) == 3 ? 0 : 1);
    pn_export_member *members = members_of(m, model_path);
    int rc = members ? 0 : 1;
    if (members && pn_export_onnx(members, pn_model_member_count(m), meta, n_meta, out, &err)) {
        fprintf(stderr, "pneumo export: %s: %s\n", model_path, err.msg);
        rc = 1;
    } else if (members) {
        print_written(out, m, threshold);
    }
    free(members);
    pn_model_free(m);
    return rc;
}

int pn_cmd_export(int argc, char **argv)
{
    const char *out = NULL;
    int format = -1, n_positional = 0;
    const pn_option table[] = {
        PN_OPT_CHOICE("format", &format, format_choices),
        PN_OPT_STRING("out", &out),
        PN_OPT_END,
    };
    const char **positional = calloc((size_t)argc, sizeof *positional);
    if (!positional)
        return 1;
    int rc = -1;
    switch (pn_opts_parse("pneumo export", table, argc, argv, 1, positional, &n_positional)) {
    case PN_OPTS_HELP: rc = usage(stdout); break;
    case PN_OPTS_BAD: rc = 2; break;
    case PN_OPTS_OK:
        if (format < 0 || !out || n_positional != 1) {
            fprintf(stderr, "pneumo export: needs --format onnx, one MODEL and --out FILE\n");
            rc = usage(stderr);
        }
        break;
    }
    if (rc < 0)
        rc = export_onnx(positional[0], out);
    free(positional);
    return rc;
}
