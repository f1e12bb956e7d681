/* pneumo audit export | prune: the prediction audit log written by `pneumo serve`. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pneumo/audit.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: pneumo audit export [--db pneumo-audit.db] [--since YYYY-MM-DD[THH:MM[:SS[.mmm]]][Z]] --csv\n"
                 "       pneumo audit prune --older-than DAYS [--db pneumo-audit.db]\n"
                 "export prints one RFC 4180 CSV row per logged prediction (UTC times), oldest first;\n"
                 "cells a spreadsheet would run as a formula are prefixed with '.\n"
                 "prune deletes the rows older than DAYS days and compacts the file (VACUUM).\n");
}

static int cmd_export(const char *db, const char *since, int csv)
{
    if (!csv) {
        fprintf(stderr, "pneumo audit export: --csv is required (the only format)\n");
        return 2;
    }
    pn_error err = {0};
    if (pn_audit_export_csv(db, since, stdout, &err)) {
        fprintf(stderr, "pneumo audit export: %s\n", err.msg);
        return 1;
    }
    return fflush(stdout) ? 1 : 0;
}

static int cmd_prune(const char *db, const char *older_than)
{
    char *end = NULL;
    long days = older_than ? strtol(older_than, &end, 10) : 0;
    if (!older_than || end == older_than || *end || days < 1 || days > 100000) {
        fprintf(stderr, "pneumo audit prune: --older-than DAYS is required: a whole number of days >= 1\n");
        return 2;
    }
    pn_error err = {0};
    int64_t deleted = 0;
    if (pn_audit_prune(db, (int)days, &deleted, &err)) {
        fprintf(stderr, "pneumo audit prune: %s\n", err.msg);
        return 1;
    }
    printf("pneumo audit prune: deleted %" PRId64 " row%s older than %ld day%s from %s\n", deleted,
           deleted == 1 ? "" : "s", days, days == 1 ? "" : "s", db);
    return 0;
}

int pn_cmd_audit(int argc, char **argv)
{
    static const struct option longopts[] = {{"db", required_argument, NULL, 'd'},
                                             {"since", required_argument, NULL, 's'},
                                             {"csv", no_argument, NULL, 'c'},
                                             {"older-than", required_argument, NULL, 'o'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    int is_export = argc >= 2 && !strcmp(argv[1], "export"), is_prune = argc >= 2 && !strcmp(argv[1], "prune");
    if (!is_export && !is_prune) {
        int help = argc >= 2 && !strcmp(argv[1], "--help");
        usage(help ? stdout : stderr);
        return help ? 0 : 2;
    }
    const char *db = "pneumo-audit.db", *since = NULL, *older_than = NULL;
    int csv = 0, c;
    while ((c = getopt_long(argc - 1, argv + 1, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'd': db = optarg; break;
        case 's': since = optarg; break;
        case 'c': csv = 1; break;
        case 'o': older_than = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc - 1 || (is_export && older_than) || (is_prune && (since || csv))) {
        fprintf(stderr, "pneumo audit %s: unexpected argument\n", argv[1]);
        return 2;
    }
    return is_export ? cmd_export(db, since, csv) : cmd_prune(db, older_than);
}
