/* pneumo ood fit: fits and stores the out-of-distribution gate of an
 * existing model file (single network or ensemble); docs/ood.md. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/options.h"
#include "pneumo/infer.h"

static int usage(FILE *out)
{
    fprintf(out, "usage: pneumo ood fit --model FILE --data DIR [--max-images N] [--threads N]\n"
                 "Fits each member's feature statistics on its training images of DIR (the dataset\n"
                 "the model was trained on, split as its recipe records) and its threshold on its\n"
                 "held-out images, and stores them in FILE (rewritten in place).\n");
    return out == stdout ? 0 : 2;
}

static void report_member(void *user, int i, const pn_ood_member_report *r)
{
    (void)user;
    fprintf(stderr, "member %d: %d features, fitted on %zu training images (%zu refused by the image checks); "
                    "threshold %.1f from %zu held-out images: %zu over it, %zu refused by the image checks, "
                    "median distance %.2f x threshold\n",
            i, r->dim, r->n_fit, r->fit_refused_by_checks, r->threshold, r->n_held, r->held_refused_by_score,
            r->held_refused_by_checks, r->held_median_ratio);
}

void pn_cli_ood_fit(const char *model, const char *data, int threads)
{
    pn_ood_fit_options o = {.threads = threads, .progress = report_member};
    pn_ood_fit_report rep;
    pn_error err = {0};
    if (pn_ood_fit(model, data, &o, &rep, &err))
        fprintf(stderr, "warning: %s has no out-of-distribution gate statistics (%s); only the image checks "
                        "will refuse images. `pneumo ood fit` adds them.\n", model, err.msg);
}

int pn_cmd_ood(int argc, char **argv)
{
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")))
        return usage(stdout);
    if (argc < 2 || strcmp(argv[1], "fit"))
        return usage(stderr);
    const char *model = NULL, *data = NULL;
    pn_ood_fit_options o = {.progress = report_member};
    const pn_option table[] = {
        PN_OPT_STRING("model", &model),
        PN_OPT_STRING("data", &data),
        PN_OPT_INT("max-images", &o.max_fit_images, 50, 1000000),
        PN_OPT_INT("threads", &o.threads, 1, 1024),
        PN_OPT_END,
    };
    switch (pn_opts_parse("pneumo ood fit", table, argc, argv, 2, NULL, NULL)) {
    case PN_OPTS_HELP: return usage(stdout);
    case PN_OPTS_BAD: return 2;
    case PN_OPTS_OK: break;
    }
    if (!model || !data)
        return usage(stderr);
    pn_ood_fit_report rep;
    pn_error err = {0};
    if (pn_ood_fit(model, data, &o, &rep, &err)) {
        fprintf(stderr, "pneumo ood fit: %s\n", err.msg);
        return 1;
    }
    printf("%s: out-of-distribution gate stored for %d member%s\n", model, rep.n_members,
           rep.n_members == 1 ? "" : "s");
    return 0;
}
