/* pneumo audit export: the prediction audit log written by `pneumo serve`, as CSV. */
#include <stdio.h>
#include <string.h>

#include "cli/options.h"
#include "pneumo/audit.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: pneumo audit export [--db pneumo-audit.db] [--since YYYY-MM-DD[THH:MM[:SS[.mmm]]][Z]] --csv\n"
                 "Prints one RFC 4180 CSV row per logged prediction (UTC times), oldest first.\n");
}

int pn_cmd_audit(int argc, char **argv)
{
    int help = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
    if (argc < 2 || strcmp(argv[1], "export")) {
        usage(help ? stdout : stderr);
        return help ? 0 : 2;
    }
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
