/* multipart/form-data (RFC 7578) parsing of a fully received request body. */
#ifndef PNEUMO_SERVE_MULTIPART_H
#define PNEUMO_SERVE_MULTIPART_H

#include <stddef.h>

#include "pneumo/error.h"

#define MULTIPART_MAX_PARTS 16
#define MULTIPART_MAX_NAME 256

typedef struct multipart_part {
    char name[MULTIPART_MAX_NAME];
    char filename[MULTIPART_MAX_NAME]; /* "" when the part is not a file */
    int has_filename;
    const unsigned char *data;         /* points into the body */
    size_t size;
} multipart_part;

typedef struct multipart_form {
    multipart_part parts[MULTIPART_MAX_PARTS];
    int n_parts;
} multipart_form;

/* Extracts the boundary parameter of a multipart/form-data Content-Type. */
pn_status serve_multipart_boundary(const char *content_type, char *out, size_t size, pn_error *err);
/* Splits body into parts. Errors are PN_EFORMAT (malformed) or PN_ELIMIT. */
pn_status serve_multipart_parse(const unsigned char *body, size_t len, const char *boundary, multipart_form *form,
                          pn_error *err);
/* The first part with that name, or NULL. */
const multipart_part *serve_multipart_find(const multipart_form *form, const char *name);

#endif
