/* pneumo serve: the HTTP prediction server (see docs/api.md), with one model
 * instance per prediction slot. */
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pneumo/data.h"
#include "pneumo/model.h"
#include "pneumo/overlay.h"
#include "pneumo/serve.h"

/* Overlays larger than this (long side) are shrunk: the PNG travels in JSON. */
#define OVERLAY_MAX_SIDE 512
#define OVERLAY_OPACITY 0.45f

typedef struct served_model {
    pn_model **slots;
    int n_slots;
    char *model_json;
} served_model;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: pneumo serve [--model FILE] [--host 127.0.0.1] [--port 8080]\n"
            "                    [--audit-db pneumo-audit.db] [--threads N] [--max-body BYTES]\n"
            "                    [--max-per-client N] [--request-deadline SECONDS] [--max-pixels N]\n"
            "                    [--token-file FILE] [--tls-cert PEM --tls-key PEM]\n"
            "                    [--allow-origin ORIGIN]... [--insecure-no-auth] [--audit-client-info]\n"
            "Serves the REST API and web page (docs/api.md) until SIGINT or SIGTERM.\n"
            "  --model     model file (default: models/default.safetensors)\n"
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
            "  --audit-client-info  also record the upload's file name and the client address\n"
            "              in the audit log (often identifying: off by default)\n"
            "Research and screening-assist tool, not a diagnostic device.\n");
}

static void add_warning(pn_prediction *p, const char *text)
{
    if (p->n_warnings < PN_MAX_WARNINGS)
        snprintf(p->warnings[p->n_warnings++], sizeof p->warnings[0], "%s", text);
}

/* Draws the Grad-CAM over the uploaded image itself (not the 224 px model
 * input), shrunk so the long side is at most OVERLAY_MAX_SIDE. */
static pn_status render_overlay(const void *bytes, size_t size, const pn_prediction *p, pn_predict_result *out,
                                pn_error *err)
{
    pn_image img = {0}, small = {0};
    pn_status st = pn_image_decode_memory(bytes, size, "upload", OVERLAY_MAX_SIDE, OVERLAY_MAX_SIDE, &img, err);
    if (st)
        return st;
    const pn_image *src = &img;
    int long_side = img.w > img.h ? img.w : img.h;
    if (long_side > OVERLAY_MAX_SIDE) {
        double scale = (double)OVERLAY_MAX_SIDE / long_side;
        int w = (int)lround(img.w * scale), h = (int)lround(img.h * scale);
        st = pn_image_resize(&img, w > 0 ? w : 1, h > 0 ? h : 1, PN_RESIZE_SQUASH, &small, err);
        src = &small;
    }
    if (!st)
        st = pn_overlay_png(src->pixels, src->w, src->h, p->cam, p->cam_size, OVERLAY_OPACITY, &out->overlay_png,
                            &out->overlay_png_size, err);
    if (!st)
        st = pn_heatmap_png(p->cam, p->cam_size, src->w, src->h, &out->heatmap_png, &out->heatmap_png_size, err);
    pn_image_free(&small);
    pn_image_free(&img);
    return st;
}

static pn_status predict_slot(void *user, int slot, const void *bytes, size_t size, int want_cam,
                              pn_predict_result *out, pn_error *err)
{
    served_model *sm = user;
    memset(out, 0, sizeof *out);
    pn_status st = pn_model_predict_bytes(sm->slots[slot], bytes, size, want_cam, &out->pred, err);
    if (st)
        return st;
    if (want_cam && out->pred.cam) {
        pn_error overlay_err = {0};
        /* A failed drawing should not cost the prediction: say so instead. */
        if (render_overlay(bytes, size, &out->pred, out, &overlay_err)) {
            char msg[160];
            snprintf(msg, sizeof msg, "Grad-CAM overlay failed: %.120s", overlay_err.msg);
            add_warning(&out->pred, msg);
        }
    }
    pn_prediction_clear(&out->pred);
    return PN_OK;
}

static json_t *json_or_empty(const char *text)
{
    json_t *j = text ? json_loads(text, 0, NULL) : NULL;
    return j ? j : json_object();
}

static char *model_json(const pn_model_info *info, int n_slots)
{
    json_t *root = json_pack("{s:s,s:s,s:s,s:i,s:i,s:f,s:[s,s],s:o,s:o,s:i,s:s}", "id", info->id,
                             "version", info->version, "arch", info->arch_name, "input_size",
                             info->input_size, "channels", info->channels, "threshold",
                             (double)info->threshold, "classes", "NORMAL", "PNEUMONIA", "metrics",
                             json_or_empty(info->metrics_json), "card", json_or_empty(info->card_json),
                             "workers", n_slots, "disclaimer",
                             "Research and screening-assist tool, not a diagnostic device.");
    char *text = root ? json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
    json_decref(root);
    return text;
}

static void free_models(served_model *sm)
{
    for (int i = 0; i < sm->n_slots; i++)
        pn_model_free(sm->slots[i]);
    free(sm->slots);
    free(sm->model_json);
}

/* One instance per slot, each with an equal share of the cores for oneDNN. */
static pn_status load_models(const char *path, int n_slots, served_model *sm, pn_error *err)
{
    memset(sm, 0, sizeof *sm);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int threads_each = cores > n_slots ? (int)(cores / n_slots) : 1;
    if (!(sm->slots = calloc((size_t)n_slots, sizeof *sm->slots)))
        return pn_fail(err, PN_ENOMEM, "out of memory");
    for (; sm->n_slots < n_slots; sm->n_slots++) {
        pn_status st = pn_model_load(path, threads_each, &sm->slots[sm->n_slots], err);
        if (!st) /* build the kernels now, not on the first user's request */
            st = pn_model_warm_up(sm->slots[sm->n_slots], err);
        if (st)
            return st;
    }
    if (!(sm->model_json = model_json(pn_model_get_info(sm->slots[0]), n_slots)))
        return pn_fail(err, PN_ENOMEM, "out of memory describing the model");
    return PN_OK;
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

static int parse_int(const char *name, const char *text, long lo, long hi, long *out)
{
    char *end;
    long v = strtol(text, &end, 10);
    if (end == text || *end || v < lo || v > hi) {
        fprintf(stderr, "pneumo serve: %s '%s': expected an integer in %ld..%ld\n", name, text, lo, hi);
        return 0;
    }
    *out = v;
    return 1;
}

/* Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, serve_args *a)
{
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'},   {"host", required_argument, NULL, 'H'},
        {"port", required_argument, NULL, 'p'},    {"audit-db", required_argument, NULL, 'a'},
        {"threads", required_argument, NULL, 't'}, {"max-body", required_argument, NULL, 'b'},
        {"max-per-client", required_argument, NULL, 'P'},
        {"request-deadline", required_argument, NULL, 'D'},
        {"max-pixels", required_argument, NULL, 'X'},
        {"token-file", required_argument, NULL, 'T'},
        {"tls-cert", required_argument, NULL, 'C'},
        {"tls-key", required_argument, NULL, 'K'},
        {"allow-origin", required_argument, NULL, 'O'},
        {"insecure-no-auth", no_argument, NULL, 'I'},
        {"audit-client-info", no_argument, NULL, 'A'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};
    long cores = sysconf(_SC_NPROCESSORS_ONLN), v;
    a->model = NULL;
    a->token_file = NULL;
    a->tokens = NULL;
    a->n_tokens = 0;
    a->threads = cores > 0 ? (int)cores : 1;
    pn_serve_options_default(&a->opt);
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': a->model = optarg; break;
        case 'H': a->opt.host = optarg; break;
        case 'a': a->opt.audit_db = optarg; break;
        case 'p':
            if (!parse_int("--port", optarg, 0, 65535, &v))
                return 2;
            a->opt.port = (int)v;
            break;
        case 't':
            if (!parse_int("--threads", optarg, 1, 256, &v))
                return 2;
            a->threads = (int)v;
            break;
        case 'b':
            if (!parse_int("--max-body", optarg, 1, LONG_MAX, &v))
                return 2;
            a->opt.max_body = (size_t)v;
            break;
        case 'P':
            if (!parse_int("--max-per-client", optarg, 1, 65535, &v))
                return 2;
            a->opt.max_per_client = (int)v;
            break;
        case 'D':
            if (!parse_int("--request-deadline", optarg, 1, 3600, &v))
                return 2;
            a->opt.request_deadline_s = (int)v;
            break;
        case 'X':
            if (!parse_int("--max-pixels", optarg, 1, (long)PN_IMAGE_MAX_PIXELS, &v))
                return 2;
            a->opt.max_pixels = (uint64_t)v;
            break;
        case 'T': a->token_file = optarg; break;
        case 'C': a->opt.tls_cert_file = optarg; break;
        case 'K': a->opt.tls_key_file = optarg; break;
        case 'I': a->opt.insecure_no_auth = 1; break;
        case 'A': a->opt.audit_client_info = 1; break;
        case 'O':
            if (a->opt.n_allow_origins == MAX_ALLOWED_ORIGINS || strncmp(optarg, "http", 4) ||
                !strstr(optarg, "://") || optarg[strlen(optarg) - 1] == '/') {
                fprintf(stderr, "pneumo serve: --allow-origin '%s': expected scheme://host[:port] without a "
                                "trailing slash, at most %d times\n", optarg, MAX_ALLOWED_ORIGINS);
                return 2;
            }
            a->origins[a->opt.n_allow_origins++] = optarg;
            a->opt.allow_origins = a->origins;
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "pneumo serve: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
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
    served_model sm = {0};
    pn_server *server = NULL;
    pn_status st = PN_OK;
    if (a.token_file && !(st = pn_serve_read_tokens(a.token_file, &a.tokens, &a.n_tokens, &err))) {
        a.opt.tokens = (const char *const *)a.tokens;
        a.opt.n_tokens = a.n_tokens;
    }
    if (!st)
        st = load_models(a.model, a.threads, &sm, &err);
    const pn_model_info *info = st ? NULL : pn_model_get_info(sm.slots[0]);
    pn_predictor predictor = {.user = &sm, .n_slots = a.threads, .predict = predict_slot};
    if (!st) {
        predictor.model_json = sm.model_json;
        predictor.model_id = info->id;
        predictor.model_version = info->version;
        predictor.default_threshold = info->threshold;
        st = pn_server_start(&a.opt, &predictor, &server, &err);
    }
    if (st) {
        fprintf(stderr, "pneumo serve: %s\n", err.msg);
        free_models(&sm);
        pn_serve_free_tokens(a.tokens, a.n_tokens);
        return 1;
    }
    if (pn_server_audit_migration(server))
        fprintf(stderr, "pneumo serve: %s\n", pn_server_audit_migration(server));
    int v6 = strchr(a.opt.host, ':') != NULL;
    fprintf(stderr,
            "pneumo serve: %s://%s%s%s:%d/ model %s (%s, %s), %d prediction slot%s, audit log %s, %s\n"
            "Research and screening-assist tool, not a diagnostic device. Ctrl-C to stop.\n",
            a.opt.tls_cert_file ? "https" : "http", v6 ? "[" : "", a.opt.host, v6 ? "]" : "",
            pn_server_port(server), info->id, info->arch_name, info->version, a.threads, a.threads == 1 ? "" : "s",
            a.opt.audit_db, a.n_tokens ? "API token required" : "no API token");
    int sig = 0;
    sigwait(&stop_signals, &sig);
    fprintf(stderr, "pneumo serve: %s received, finishing requests in flight\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    pn_server_stop(server);
    free_models(&sm);
    pn_serve_free_tokens(a.tokens, a.n_tokens);
    fprintf(stderr, "pneumo serve: stopped, audit log closed\n");
    return 0;
}
