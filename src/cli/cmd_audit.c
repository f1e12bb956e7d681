/* pneumo audit export: the prediction audit log written by `pneumo serve`, as CSV. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "pneumo/audit.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: pneumo audit export [--db pneumo-audit.db] [--since YYYY-MM-DD[THH:MM[:SS[.mmm]]][Z]] --csv\n"
                 "Prints one RFC 4180 CSV row per logged prediction (UTC times), oldest first.\n");
}

int pn_cmd_audit(int argc, char **argv)
{
    static const struct option longopts[] = {{"db", required_argument, NULL, 'd'},
                                             {"since", required_argument, NULL, 's'},
                                             {"csv", no_argument, NULL, 'c'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    if (argc < 2 || strcmp(argv[1], "export")) {
        usage(argc >= 2 && !strcmp(argv[1], "--help") ? stdout : stderr);
        return argc >= 2 && !strcmp(argv[1], "--help") ? 0 : 2;
    }
    const char *db = "pneumo-audit.db", *since = NULL;
    int csv = 0, c;
    while ((c = getopt_long(argc - 1, argv + 1, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'd': db = optarg; break;
        case 's': since = optarg; break;
        case 'c': csv = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!csv || optind < argc - 1) {
        fprintf(stderr, "pneumo audit export: %s\n", csv ? "unexpected argument" : "--csv is required (the only format)");
        return 2;
    }
    pn_error err = {0};
    if (pn_audit_export_csv(db, since, stdout, &err)) {
        fprintf(stderr, "pneumo audit export: %s\n", err.msg);
        return 1;
    }
    return fflush(stdout) ? 1 : 0;
}
