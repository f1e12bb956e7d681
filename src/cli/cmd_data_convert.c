/* pneumo data convert: a folder dataset (Kaggle layout) written as a CSV
 * manifest, which train, cv, evaluate and data read like the folder. */
#include <stdio.h>
#include <stdlib.h>

#include "cli/commands.h"
#include "cli/options.h"
#include "pneumo/data.h"

static int usage(FILE *out)
{
    fprintf(out,
            "usage: pneumo data convert DIR --out FILE.csv\n"
            "Writes the folder dataset DIR (<root>[/<split>]/{NORMAL,PNEUMONIA}/<files>) as a manifest with the\n"
            "columns path,label,patient_id[,split]: paths relative to the manifest's folder when inside it\n"
            "(absolute otherwise), labels NORMAL, BACTERIAL, VIRAL or PNEUMONIA (bacteria/virus from the\n"
            "file name), patient ids parsed from Kermany file names (empty where a name carries none).\n"
            "Reading FILE.csv back gives the same dataset (docs/datasets.md).\n");
    return out == stdout ? 0 : 2;
}

int pn_cmd_data_convert(int argc, char **argv)
{
    const char *out = NULL;
    const char **positional = calloc((size_t)argc + 1, sizeof *positional);
    int n_positional = 0;
    const pn_option table[] = {PN_OPT_STRING("out", &out), PN_OPT_END};
    pn_opts_result r = positional ? pn_opts_parse("pneumo data convert", table, argc, argv, 1, positional,
                                                  &n_positional)
                                  : PN_OPTS_BAD;
    const char *dir = n_positional == 1 ? positional[0] : NULL;
    free(positional);
    if (r == PN_OPTS_HELP)
        return usage(stdout);
    if (r != PN_OPTS_OK || !dir || !out)
        return usage(stderr);
    if (!pn_dataset_is_manifest(out)) {
        fprintf(stderr, "pneumo data convert: --out '%s': expected a file name ending in .csv\n", out);
        return 2;
    }
    pn_dataset ds;
    pn_error e;
    if (pn_dataset_scan(dir, &ds, &e) || pn_manifest_write(&ds, out, &e)) {
        fprintf(stderr, "pneumo data convert: %s\n", e.msg);
        return 1;
    }
    size_t known = 0;
    for (size_t i = 0; i < ds.n; i++)
        known += ds.samples[i].patient_known;
    printf("wrote %s: %zu images, %zu with a patient id from the file name\n", out, ds.n, known);
    pn_dataset_free(&ds);
    return 0;
}
