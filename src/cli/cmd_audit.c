/* pneumo audit export | prune: the prediction audit log written by `pneumo serve`. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli/options.h"
#include "pneumo/audit.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: pneumo audit export [--db pneumo-audit.db] [--since YYYY-MM-DD[THH:MM[:SS[.mmm]]][Z]] --csv\n"
                 "       pneumo audit prune --older-than DAYS [--db pneumo-audit.db]\n"
                 "export prints one RFC 4180 CSV row per logged prediction (UTC times), oldest first;\n"
                 "cells a spreadsheet would run as a formula are prefixed with '.\n"
                 "prune deletes the rows older than DAYS days and compacts the file (VACUUM).\n");
}

static int cmd_export(int argc, char **argv)
{
    const char *db = "pneumo-audit.db", *since = NULL;
    int csv = 0;
    const pn_option table[] = {
        PN_OPT_STRING("db", &db),
        PN_OPT_STRING("since", &since),
        PN_OPT_FLAG("csv", &csv, 1),
        PN_OPT_END,
    };
    switch (pn_opts_parse("pneumo audit export", table, argc, argv, 2, NULL, NULL)) {
    case PN_OPTS_HELP: usage(stdout); return 0;
    case PN_OPTS_BAD: return 2;
    case PN_OPTS_OK: break;
    }
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

static int cmd_prune(int argc, char **argv)
{
    const char *db = "pneumo-audit.db";
    int days = 0;
    const pn_option table[] = {
        PN_OPT_STRING("db", &db),
        PN_OPT_INT("older-than", &days, 1, 100000),
        PN_OPT_END,
    };
    switch (pn_opts_parse("pneumo audit prune", table, argc, argv, 2, NULL, NULL)) {
    case PN_OPTS_HELP: usage(stdout); return 0;
    case PN_OPTS_BAD: return 2;
    case PN_OPTS_OK: break;
    }
    if (days < 1) {
        fprintf(stderr, "pneumo audit prune: --older-than DAYS is required: a whole number of days >= 1\n");
        return 2;
    }
    pn_error err = {0};
    int64_t deleted = 0;
    if (pn_audit_prune(db, days, &deleted, &err)) {
        fprintf(stderr, "pneumo audit prune: %s\n", err.msg);
        return 1;
    }
    printf("pneumo audit prune: deleted %" PRId64 " row%s older than %d day%s from %s\n", deleted,
           deleted == 1 ? "" : "s", days, days == 1 ? "" : "s", db);
    return 0;
}

int pn_cmd_audit(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "export"))
        return cmd_export(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "prune"))
        return cmd_prune(argc, argv);
    int help = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
    usage(help ? stdout : stderr);
    return help ? 0 : 2;
}
