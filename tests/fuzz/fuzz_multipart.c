/* libFuzzer target: multipart/form-data parsing as POST /api/v1/predict
 * does it. The input is a Content-Type header line, a newline, then the
 * body. Every part found must lie inside the body, in order, and names
 * must be NUL-terminated within their buffers. */
#include "fuzz_util.h"

#include "serve/multipart.h"

static void check_form(const multipart_form *f, const uint8_t *body, size_t len)
{
    if (f->n_parts < 1 || f->n_parts > MULTIPART_MAX_PARTS)
        abort();
    const uint8_t *prev_end = body;
    for (int i = 0; i < f->n_parts; i++) {
        const multipart_part *p = &f->parts[i];
        if (p->data < prev_end || p->data > body + len || p->size > (size_t)(body + len - p->data))
            abort();
        if (!memchr(p->name, 0, sizeof p->name) || !memchr(p->filename, 0, sizeof p->filename))
            abort();
        if (serve_multipart_find(f, p->name) > p)
            abort(); /* the first part with a name is found */
        prev_end = p->data + p->size;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    if (!nl)
        return 0;
    char *type = fuzz_strndup(data, (size_t)(nl - data));
    size_t len = size - (size_t)(nl - data) - 1;
    /* A copy of exactly the body's size, so ASan sees any read past it; no
     * buffer at all for an empty body, as the server passes it. */
    uint8_t *body = len ? malloc(len) : NULL;
    if (!type || (len && !body)) {
        free(type);
        free(body);
        return 0;
    }
    if (len)
        memcpy(body, nl + 1, len);
    char boundary[80];
    pn_error err = {0};
    pn_status st = serve_multipart_boundary(type, boundary, sizeof boundary, &err);
    fuzz_check_error(st, &err);
    if (!st) {
        multipart_form *form = malloc(sizeof *form);
        if (form) {
            st = serve_multipart_parse(body, len, boundary, form, &err);
            fuzz_check_error(st, &err);
            if (!st)
                check_form(form, body, len);
            free(form);
        }
    }
    free(type);
    free(body);
    return 0;
}
