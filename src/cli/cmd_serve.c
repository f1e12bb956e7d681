/* pneumo serve: the HTTP prediction server (see docs/api.md), with one model
 * instance per prediction slot. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/options.h"
#include "pneumo/disclaimer.h"
#include "pneumo/infer_serve.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: pneumo serve [--model FILE] [--host 127.0.0.1] [--port 8080]\n"
            "                    [--audit-db pneumo-audit.db] [--threads N] [--max-body BYTES]\n"
            "Serves the REST API and web page (docs/api.md) until SIGINT or SIGTERM.\n"
            "  --model     model file (default: models/default.safetensors)\n"
            "  --host      numeric address to listen on; 0.0.0.0 exposes it to the network\n"
            "  --threads   prediction slots, each with its own model instance (default: cores)\n"
            "  --max-body  largest accepted upload in bytes (default 20000000)\n"
            PN_DISCLAIMER "\n");
}

typedef struct serve_args {
    const char *model;
    pn_serve_options opt;
    int threads;
} serve_args;

/* Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, serve_args *a)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    a->model = NULL;
    a->threads = cores > 0 ? (int)cores : 1;
    pn_serve_options_default(&a->opt);
    uint64_t max_body = a->opt.max_body;
    const pn_option table[] = {
        PN_OPT_STRING("model", &a->model),
        PN_OPT_STRING("host", &a->opt.host),
        PN_OPT_STRING("audit-db", &a->opt.audit_db),
        PN_OPT_INT("port", &a->opt.port, 0, 65535),
        PN_OPT_INT("threads", &a->threads, 1, 256),
        PN_OPT_U64("max-body", &max_body, 1, (double)SIZE_MAX),
        PN_OPT_END,
    };
    switch (pn_opts_parse("pneumo serve", table, argc, argv, 1, NULL, NULL)) {
    case PN_OPTS_HELP: usage(stdout); return 0;
    case PN_OPTS_BAD: return 2;
    case PN_OPTS_OK: break;
    }
    a->opt.max_body = (size_t)max_body;
    return -1;
}

int pn_cmd_serve(int argc, char **argv)
{
    serve_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0)
        return rc;
    /* Blocked before any thread starts, so every thread inherits the mask
     * and only sigwait below sees SIGINT/SIGTERM. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);

    pn_error err = {0};
    pn_model_pool *pool = NULL;
    pn_server *server = NULL;
    pn_status st = pn_model_pool_create(a.model, a.threads, &pool, &err);
    if (!st)
        st = pn_server_start(&a.opt, pn_model_pool_predictor(pool), &server, &err);
    if (st) {
        fprintf(stderr, "pneumo serve: %s\n", err.msg);
        pn_model_pool_free(pool);
        return 1;
    }
    const pn_model_info *info = pn_model_pool_info(pool);
    fprintf(stderr,
            "pneumo serve: http://%s:%d/ model %s (%s, %s), %d prediction slot%s, audit log %s\n"
            PN_DISCLAIMER " Ctrl-C to stop.\n",
            a.opt.host, pn_server_port(server), info->id, info->arch_name, info->version, a.threads,
            a.threads == 1 ? "" : "s", a.opt.audit_db);
    int sig = 0;
    sigwait(&stop_signals, &sig);
    fprintf(stderr, "pneumo serve: %s received, finishing requests in flight\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    pn_server_stop(server);
    pn_model_pool_free(pool);
    fprintf(stderr, "pneumo serve: stopped, audit log closed\n");
    return 0;
}
