/* POST /api/v1/predict: options, upload formats, sniffing, the prediction
 * itself, the audit row and the JSON answer. */
#include <jansson.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pneumo/data.h"
#include "pneumo/sha256.h"
#include "serve/base64.h"
#include "serve/internal.h"
#include "serve/multipart.h"

#define DISCLAIMER "Research and screening-assist tool, not a diagnostic device: every result must be " \
                   "reviewed by a qualified clinician."

/* What the client asked for, from the query string or the form. */
typedef struct predict_input {
    const unsigned char *bytes;
    size_t size;
    const char *file_name;   /* sanitised copy in name_buf; NULL for raw uploads */
    char name_buf[MULTIPART_MAX_NAME];
    double threshold;
    int want_cam;
    int force;               /* answer out-of-distribution images too */
} predict_input;

static int type_is(const char *content_type, const char *mime)
{
    size_t n = strlen(mime);
    if (strncasecmp(content_type, mime, n))
        return 0;
    char next = content_type[n];
    return next == '\0' || next == ';' || next == ' ' || next == '\t';
}

int serve_predict_content_type_ok(const char *content_type)
{
    static const char *const accepted[] = {"image/jpeg", "image/jpg", "image/png", "application/dicom",
                                           "application/octet-stream", "multipart/form-data"};
    if (!content_type || !*content_type)
        return 1;
    for (size_t i = 0; i < sizeof accepted / sizeof *accepted; i++)
        if (type_is(content_type, accepted[i]))
            return 1;
    return 0;
}

/* The format comes from the bytes, never from a name or a header. */
static int sniff_image(const unsigned char *b, size_t n)
{
    return pn_image_sniff(b, n) != PN_FORMAT_UNKNOWN;
}

/* A plain decimal: digits with at most one '.', nothing else (no sign,
 * exponent, hex, inf or nan), then in [0, 1]. */
static int parse_threshold(const char *text, double *out)
{
    size_t digits = strspn(text, "0123456789"), len = strlen(text);
    if (text[digits] == '.')
        digits += 1 + strspn(text + digits + 1, "0123456789");
    if (len == 0 || len > 32 || digits != len || !strcmp(text, "."))
        return 0;
    char *end;
    double v = strtod(text, &end);
    if (*end || !(v >= 0.0 && v <= 1.0))
        return 0;
    *out = v;
    return 1;
}

static int parse_flag(const char *text, int *out)
{
    if (!strcmp(text, "1") || !strcasecmp(text, "true") || !strcasecmp(text, "on") || !strcasecmp(text, "yes"))
        *out = 1;
    else if (!*text || !strcmp(text, "0") || !strcasecmp(text, "false") || !strcasecmp(text, "off") ||
             !strcasecmp(text, "no"))
        *out = 0;
    else
        return 0;
    return 1;
}

/* Applies threshold/gradcam/force values; returns an error message or NULL. */
static const char *apply_options(const char *threshold, const char *gradcam, const char *force, predict_input *in)
{
    if (threshold && !parse_threshold(threshold, &in->threshold))
        return "threshold must be a plain decimal number between 0 and 1 (e.g. 0.5)";
    if (gradcam && !parse_flag(gradcam, &in->want_cam))
        return "gradcam must be 1 or 0";
    if (force && !parse_flag(force, &in->force))
        return "force must be 1 or 0";
    return NULL;
}

/* Keeps the base name only, with control characters replaced: the name is
 * recorded, never used to open anything. */
static void sanitize_file_name(char *name)
{
    char *base = name;
    for (char *p = name; *p; p++)
        if (*p == '/' || *p == '\\')
            base = p + 1;
    memmove(name, base, strlen(base) + 1);
    for (unsigned char *p = (unsigned char *)name; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            *p = '_';
}

/* A form field's value as a short NUL-terminated string; a value holding a
 * NUL byte comes back as "\x01" so that it fails every option parser. */
static const char *form_value(const multipart_form *form, const char *name, char *buf, size_t size)
{
    const multipart_part *p = serve_multipart_find(form, name);
    if (!p)
        return NULL;
    if (memchr(p->data, '\0', p->size))
        return "\x01";
    size_t n = p->size < size - 1 ? p->size : size - 1;
    memcpy(buf, p->data, n);
    buf[n] = '\0';
    return buf;
}

/* Fills in from a multipart body; query options already applied stay unless
 * the form sets them too. Returns an error message or NULL. */
static const char *read_form(const request *r, const char *content_type, multipart_form *form, predict_input *in,
                             pn_error *err)
{
    char boundary[80];
    if (serve_multipart_boundary(content_type, boundary, sizeof boundary, err) ||
        serve_multipart_parse(r->body, r->len, boundary, form, err))
        return err->msg;
    const multipart_part *file = serve_multipart_find(form, "file");
    if (!file)
        file = serve_multipart_find(form, "image");
    if (!file)
        return "multipart upload without a 'file' (or 'image') field";
    in->bytes = file->data;
    in->size = file->size;
    if (file->has_filename) {
        snprintf(in->name_buf, sizeof in->name_buf, "%s", file->filename);
        sanitize_file_name(in->name_buf);
        in->file_name = in->name_buf;
    }
    char threshold[64], gradcam[16], force[16];
    return apply_options(form_value(form, "threshold", threshold, sizeof threshold),
                         form_value(form, "gradcam", gradcam, sizeof gradcam),
                         form_value(form, "force", force, sizeof force), in);
}

static void client_address(struct MHD_Connection *c, char *out, size_t size)
{
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(out, size, "unknown");
    if (!info || !info->client_addr)
        return;
    socklen_t len = info->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                             : sizeof(struct sockaddr_in);
    getnameinfo(info->client_addr, len, out, (socklen_t)size, NULL, 0, NI_NUMERICHOST);
}

static json_t *audit_json(pn_server *s, struct MHD_Connection *c, const predict_input *in, const pn_prediction *p,
                          const char *label, double latency_ms)
{
    uint8_t digest[PN_SHA256_DIGEST_SIZE];
    char hex[PN_SHA256_HEX_SIZE], client[64];
    pn_sha256(in->bytes, in->size, digest);
    pn_sha256_hex(digest, hex);
    /* A file name is often a patient's name or accession number: kept only on request. */
    int keep_client = s->opt.audit_client_info;
    if (keep_client)
        client_address(c, client, sizeof client);
    const pn_predictor *pr = s->predictor;
    /* DICOM file names often carry patient identifiers: the audit keeps only the hash, even then. */
    int dicom = pn_image_sniff(in->bytes, in->size) == PN_FORMAT_DICOM;
    pn_audit_record rec = {.image_sha256 = hex, .file_name = keep_client && !dicom ? in->file_name : NULL,
                           .image_bytes = (int64_t)in->size,
                           .width = p->width, .height = p->height, .model_id = pr->model_id,
                           .model_version = pr->model_version, .probability = p->probability,
                           .threshold = in->threshold, .label = label, .latency_ms = latency_ms,
                           .client_addr = keep_client ? client : NULL, .out_of_distribution = p->out_of_distribution,
                           .ood_score = p->ood_score};
    int64_t id;
    pn_error err = {0};
    if (pn_audit_log(s->audit, &rec, &id, &err)) {
        serve_metrics_audit_failure(&s->metrics);
        return json_pack("{s:b,s:s}", "logged", 0, "error", err.msg);
    }
    return json_pack("{s:b,s:I}", "logged", 1, "id", (json_int_t)id);
}

static json_t *warnings_json(const pn_predict_result *res, int want_cam)
{
    json_t *w = json_array();
    for (int i = 0; i < res->pred.n_warnings && i < PN_MAX_WARNINGS; i++)
        json_array_append_new(w, json_string(res->pred.warnings[i]));
    if (want_cam && !res->overlay_png)
        json_array_append_new(w, json_string("Grad-CAM is not available for this model"));
    return w;
}

static char *result_text(pn_server *s, struct MHD_Connection *c, const predict_input *in,
                         const pn_predict_result *res, double latency_ms)
{
    const pn_prediction *p = &res->pred;
    /* Out-of-distribution images get no probability (nor map) unless the request sets force=1. */
    int answered = !p->out_of_distribution || in->force;
    int pneumonia = answered && p->probability >= in->threshold;
    const char *label = !answered ? "OUT-OF-DISTRIBUTION" : pneumonia ? "PNEUMONIA" : "NORMAL";
    /* Logged before anything is sent: a response implies a row (or a reported failure). */
    json_t *audit = audit_json(s, c, in, p, label, latency_ms);
    serve_metrics_prediction(&s->metrics, pneumonia);
    json_t *root = json_pack("{s:s,s:f,s:{s:s,s:s},s:f,s:o,s:{s:i,s:i},s:o,s:s,s:b}", "label", label, "threshold",
                             in->threshold, "model", "id", s->predictor->model_id, "version",
                             s->predictor->model_version, "latency_ms", latency_ms, "warnings",
                             warnings_json(res, in->want_cam), "image", "width", p->width, "height", p->height,
                             "audit", audit, "disclaimer", DISCLAIMER, "out_of_distribution", p->out_of_distribution);
    if (root) {
        json_object_set_new(root, "ood_score", p->ood_score >= 0 ? json_real(p->ood_score) : json_null());
        if (p->out_of_distribution)
            json_object_set_new(root, "ood_reason", json_string(p->ood_reason));
        if (answered)
            json_object_set_new(root, "probability", json_real(p->probability));
        /* three-class models: P(NORMAL), P(BACTERIAL), P(VIRAL); BACTERIAL + VIRAL == probability */
        if (answered && p->n_classes == 3)
            json_object_set_new(root, "classes", json_pack("{s:f,s:f,s:f}", "NORMAL", (double)p->class_prob[0],
                                                           "BACTERIAL", (double)p->class_prob[1], "VIRAL",
                                                           (double)p->class_prob[2]));
    }
    if (root && answered && res->overlay_png) {
        char *b64 = serve_base64_encode(res->overlay_png, res->overlay_png_size);
        json_object_set_new(root, "gradcam_png", b64 ? json_string(b64) : json_null());
        free(b64);
    }
    if (root && answered && res->heatmap_png) {
        char *b64 = serve_base64_encode(res->heatmap_png, res->heatmap_png_size);
        json_object_set_new(root, "gradcam_heatmap_png", b64 ? json_string(b64) : json_null());
        free(b64);
    }
    char *text = root ? json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
    json_decref(root);
    return text;
}

static unsigned status_for(pn_status st)
{
    switch (st) {
    case PN_EFORMAT:
    case PN_EUNSUPPORTED:
    case PN_ELIMIT:
    case PN_EINVAL:
        return MHD_HTTP_BAD_REQUEST;
    default:
        return MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
}

/* A prediction between submission and answer; lives in request.predict. */
struct predict_state {
    predict_input in;
    multipart_form *form;   /* the parsed upload in points into; NULL for raw bodies */
    job job;
    struct MHD_Connection *conn;
    double submitted;       /* monotonic seconds */
    double latency_ms;      /* set by the slot when done */
    int rejected;           /* the queue was full: answer 503 */
    pn_error reject_err;
    char message[256];      /* a refusal's text, when it needs numbers */
};

void serve_predict_state_free(predict_state *ps)
{
    if (!ps)
        return;
    free(ps->job.result.overlay_png);
    free(ps->job.result.heatmap_png);
    free(ps->form);
    free(ps);
}

/* On the slot's thread: the connection was suspended until now. */
static void prediction_done(job *j)
{
    predict_state *ps = j->owner;
    ps->latency_ms = (pn_clock_s() - ps->submitted) * 1e3;
    MHD_resume_connection(ps->conn);
}

/* Suspends the connection and queues the prediction; the access handler is
 * called again once the slot has run it (or the queue refused it). */
static enum MHD_Result submit_prediction(pn_server *s, struct MHD_Connection *c, request *r, predict_state *ps)
{
    ps->conn = c;
    ps->job = (job){.bytes = ps->in.bytes, .size = ps->in.size, .want_cam = ps->in.want_cam,
                    .on_done = prediction_done, .owner = ps};
    ps->submitted = pn_clock_s();
    r->predict = ps;
    MHD_suspend_connection(c);
    if (serve_workers_submit(&s->workers, &ps->job, &ps->reject_err)) {
        ps->rejected = 1;
        MHD_resume_connection(c);
    }
    return MHD_YES;
}

static enum MHD_Result answer_prediction(pn_server *s, struct MHD_Connection *c, request *r)
{
    predict_state *ps = r->predict;
    job *j = &ps->job;
    if (ps->rejected)
        return serve_send_error(s, c, r, MHD_HTTP_SERVICE_UNAVAILABLE, ps->reject_err.msg);
    if (j->status)
        return serve_send_error(s, c, r, status_for(j->status), j->err.msg[0] ? j->err.msg : pn_status_name(j->status));
    return serve_send_json_text(s, c, r, MHD_HTTP_OK, result_text(s, c, &ps->in, &j->result, ps->latency_ms));
}

/* The cost of decoding, from the image header alone: refused before any
 * pixel is decoded when over the budget. */
static unsigned check_decode_budget(pn_server *s, predict_state *ps, const char **bad, pn_error *err)
{
    pn_image_info info;
    if (pn_image_probe(ps->in.bytes, ps->in.size, "upload", &info, err)) {
        *bad = err->msg;
        return MHD_HTTP_BAD_REQUEST;
    }
    uint64_t pixels = (uint64_t)info.w * (uint64_t)info.h;
    if (pixels <= s->opt.max_pixels)
        return 0;
    snprintf(ps->message, sizeof ps->message,
             "the %s image is %dx%d (%d-bit, %d channel%s): %llu pixels, over this server's decode budget of "
             "%llu pixels (pneumo serve --max-pixels)", info.format, info.w, info.h, info.bit_depth, info.channels,
             info.channels == 1 ? "" : "s", (unsigned long long)pixels, (unsigned long long)s->opt.max_pixels);
    *bad = ps->message;
    return MHD_HTTP_CONTENT_TOO_LARGE;
}

/* Reads the options and the upload; returns an error status (message in
 * *bad) or 0 when ps->in is ready to predict. */
static unsigned read_input(pn_server *s, struct MHD_Connection *c, request *r, predict_state *ps,
                           const char **bad, pn_error *err)
{
    predict_input *in = &ps->in;
    *in = (predict_input){.bytes = r->body, .size = r->len, .threshold = s->predictor->default_threshold};
    *bad = apply_options(MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "threshold"),
                         MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "gradcam"),
                         MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "force"), in);
    const char *type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (!*bad && type && type_is(type, "multipart/form-data")) {
        /* Large: holds one part table; lives only for this request. */
        if (!(ps->form = malloc(sizeof *ps->form))) {
            *bad = "out of memory";
            return MHD_HTTP_INTERNAL_SERVER_ERROR;
        }
        *bad = read_form(r, type, ps->form, in, err);
    }
    if (*bad)
        return MHD_HTTP_BAD_REQUEST;
    if (in->size == 0) {
        *bad = "empty upload: send the image as the body or as multipart field 'file'";
        return MHD_HTTP_BAD_REQUEST;
    }
    if (!sniff_image(in->bytes, in->size)) {
        *bad = "the upload is not a JPEG, PNG or DICOM image";
        return MHD_HTTP_UNSUPPORTED_MEDIA_TYPE;
    }
    return check_decode_budget(s, ps, bad, err);
}

enum MHD_Result serve_handle_predict(pn_server *s, struct MHD_Connection *c, request *r)
{
    if (r->predict)
        return answer_prediction(s, c, r);
    if (!r->admitted)
        return serve_send_error(s, c, r, MHD_HTTP_SERVICE_UNAVAILABLE, "server is shutting down");
    predict_state *ps = calloc(1, sizeof *ps);
    if (!ps)
        return serve_send_error(s, c, r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    const char *bad = NULL;
    pn_error err = {0};
    unsigned status = read_input(s, c, r, ps, &bad, &err);
    if (!status)
        return submit_prediction(s, c, r, ps);
    enum MHD_Result ok = serve_send_error(s, c, r, status, bad);
    serve_predict_state_free(ps);
    return ok;
}
