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
            "                    [--max-per-client N] [--request-deadline SECONDS] [--max-pixels N]\n"
            "                    [--token-file FILE] [--tls-cert PEM --tls-key PEM]\n"
            "                    [--allow-origin ORIGIN]... [--insecure-no-auth] [--audit-client-info]\n"
            "Serves the REST API and web page (docs/api.md) until SIGINT or SIGTERM.\n"
            "  --model     model file (default: $PNEUMO_MODEL, else the bundled model)\n"
            "  --host      numeric address to listen on; 0.0.0.0 exposes it to the network\n"
            "  --threads   prediction slots, each with its own model instance (default: cores)\n"
            "  --max-body  largest accepted upload in bytes (default 20000000)\n"
            "  --max-pixels  largest image (width x height) decoded; larger ones get 413 from\n"
            "              their header alone (default 25000000: 5000 x 5000, a third above the\n"
            "              largest digital chest radiographs, ~4300 x 4300)\n"
            "  --max-per-client  open connections allowed from one client address (default 32)\n"
            "  --request-deadline  seconds a client has to send a whole request, headers and\n"
            "              body, however slowly; then the connection is closed (default 30)\n"
            "  --token-file  API tokens, one a line: the API and /metrics then need\n"
            "              'Authorization: Bearer <token>' (the page asks for it once per tab)\n"
            "  --tls-cert, --tls-key  serve HTTPS with this PEM certificate chain and key\n"
            "  --allow-origin  an origin (https://host[:port]) whose pages may call the API;\n"
            "              other sites' pages get 403. Repeatable\n"
            "  --insecure-no-auth  allow a non-loopback --host without --token-file\n"
            "  --audit-client-info  also record the upload's file name (never a DICOM's) and the\n"
            "              client address in the audit log (often identifying: off by default)\n"
            PN_DISCLAIMER "\n");
}

#define MAX_ALLOWED_ORIGINS 16

typedef struct serve_args {
    const char *model;
    pn_serve_options opt;
    int threads;
    const char *token_file;
    char **tokens;
    int n_tokens;
    const char *origins[MAX_ALLOWED_ORIGINS];
} serve_args;

/* --allow-origin, repeatable: one origin appended to the list. */
static int add_origin(const char *value, void *dest)
{
    serve_args *a = dest;
    if (a->opt.n_allow_origins == MAX_ALLOWED_ORIGINS || strncmp(value, "http", 4) || !strstr(value, "://") ||
        value[strlen(value) - 1] == '/')
        return -1;
    a->origins[a->opt.n_allow_origins++] = value;
    a->opt.allow_origins = a->origins;
    return 0;
}

/* Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, serve_args *a)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    a->model = NULL;
    a->token_file = NULL;
    a->tokens = NULL;
    a->n_tokens = 0;
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
        PN_OPT_INT("max-per-client", &a->opt.max_per_client, 1, 65535),
        PN_OPT_INT("request-deadline", &a->opt.request_deadline_s, 1, 3600),
        PN_OPT_U64("max-pixels", &a->opt.max_pixels, 1, PN_IMAGE_MAX_PIXELS),
        PN_OPT_STRING("token-file", &a->token_file),
        PN_OPT_STRING("tls-cert", &a->opt.tls_cert_file),
        PN_OPT_STRING("tls-key", &a->opt.tls_key_file),
        PN_OPT_CUSTOM("allow-origin", a, add_origin, "scheme://host[:port] without a trailing slash, at most 16 times"),
        PN_OPT_FLAG("insecure-no-auth", &a->opt.insecure_no_auth, 1),
        PN_OPT_FLAG("audit-client-info", &a->opt.audit_client_info, 1),
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
    pn_status st = PN_OK;
    if (a.token_file && !(st = pn_serve_read_tokens(a.token_file, &a.tokens, &a.n_tokens, &err))) {
        a.opt.tokens = (const char *const *)a.tokens;
        a.opt.n_tokens = a.n_tokens;
    }
    if (!st)
        st = pn_model_pool_create(a.model, a.threads, &pool, &err);
    if (!st)
        st = pn_server_start(&a.opt, pn_model_pool_predictor(pool), &server, &err);
    if (st) {
        fprintf(stderr, "pneumo serve: %s\n", err.msg);
        pn_model_pool_free(pool);
        pn_serve_free_tokens(a.tokens, a.n_tokens);
        return 1;
    }
    if (pn_server_audit_migration(server))
        fprintf(stderr, "pneumo serve: %s\n", pn_server_audit_migration(server));
    const pn_model_info *info = pn_model_pool_info(pool);
    int v6 = strchr(a.opt.host, ':') != NULL;
    fprintf(stderr,
            "pneumo serve: %s://%s%s%s:%d/ model %s (%s, %s), %d prediction slot%s, audit log %s, %s\n"
            PN_DISCLAIMER " Ctrl-C to stop.\n",
            a.opt.tls_cert_file ? "https" : "http", v6 ? "[" : "", a.opt.host, v6 ? "]" : "",
            pn_server_port(server), info->id, info->arch_name, info->version, a.threads, a.threads == 1 ? "" : "s",
            a.opt.audit_db, a.n_tokens ? "API token required" : "no API token");
    int sig = 0;
    sigwait(&stop_signals, &sig);
    fprintf(stderr, "pneumo serve: %s received, finishing requests in flight\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    pn_server_stop(server);
    pn_model_pool_free(pool);
    pn_serve_free_tokens(a.tokens, a.n_tokens);
    fprintf(stderr, "pneumo serve: stopped, audit log closed\n");
    return 0;
}
