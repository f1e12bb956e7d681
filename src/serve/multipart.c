/* multipart/form-data parser over a buffered body. The body is untrusted:
 * every search is bounded by its length and nothing is copied except the
 * (truncated) names. */
#define _GNU_SOURCE /* memmem */
#include "serve/multipart.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* RFC 2046: 1 to 70 characters. */
#define BOUNDARY_MAX 70

pn_status serve_multipart_boundary(const char *content_type, char *out, size_t size, pn_error *err)
{
    const char *p = content_type;
    while ((p = strchr(p, ';'))) {
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        if (strncasecmp(p, "boundary=", 9))
            continue;
        p += 9;
        size_t n;
        if (*p == '"') {
            p++;
            const char *end = strchr(p, '"');
            if (!end)
                break;
            n = (size_t)(end - p);
        } else {
            n = strcspn(p, "; \t");
        }
        if (n < 1 || n > BOUNDARY_MAX || n >= size)
            break;
        memcpy(out, p, n);
        out[n] = '\0';
        return PN_OK;
    }
    return pn_fail(err, PN_EFORMAT, "multipart/form-data without a valid boundary parameter");
}

/* Copies a Content-Disposition parameter value (quoted or token) into out,
 * truncated to fit; returns 1 if the parameter is present. Backslashes are
 * literal, as browsers send them (WHATWG: quotes in names arrive as %22). */
static int header_param(const char *line, size_t len, const char *key, char *out, size_t size)
{
    size_t klen = strlen(key);
    for (size_t i = 0; i + klen + 1 <= len; i++) {
        /* The key must start a parameter: after ';' and optional spaces. */
        if (line[i] != ';')
            continue;
        size_t j = i + 1;
        while (j < len && (line[j] == ' ' || line[j] == '\t'))
            j++;
        if (j + klen + 1 > len || strncasecmp(line + j, key, klen) || line[j + klen] != '=')
            continue;
        j += klen + 1;
        size_t n = 0;
        int quoted = j < len && line[j] == '"';
        for (j += (size_t)quoted; j < len; j++) {
            char c = line[j];
            if (quoted ? c == '"' : (c == ';' || c == ' ' || c == '\t'))
                break;
            if (n + 1 < size)
                out[n++] = c;
        }
        out[n] = '\0';
        return 1;
    }
    return 0;
}

static pn_status parse_headers(const char *h, size_t len, multipart_part *part, pn_error *err)
{
    if (memchr(h, '\0', len))
        return pn_fail(err, PN_EFORMAT, "NUL byte in a multipart part header");
    int disposition = 0;
    size_t start = 0;
    while (start < len) {
        const char *eol = memmem(h + start, len - start, "\r\n", 2);
        size_t line_len = eol ? (size_t)(eol - (h + start)) : len - start;
        const char *line = h + start;
        if (line_len >= 20 && !strncasecmp(line, "Content-Disposition:", 20)) {
            disposition = 1;
            if (!header_param(line, line_len, "name", part->name, sizeof part->name))
                return pn_fail(err, PN_EFORMAT, "multipart part without a name");
            part->has_filename = header_param(line, line_len, "filename", part->filename, sizeof part->filename);
        }
        start += line_len + 2;
    }
    if (!disposition)
        return pn_fail(err, PN_EFORMAT, "multipart part without Content-Disposition");
    return PN_OK;
}

/* A delimiter counts only when followed by "--" or by optional blanks and
 * CRLF, so data that merely contains "--boundary" as a prefix of something
 * else does not end a part early. */
static const unsigned char *find_delimiter(const unsigned char *p, const unsigned char *end, const char *delim,
                                           size_t dlen)
{
    while ((p = memmem(p, (size_t)(end - p), delim, dlen))) {
        const unsigned char *q = p + dlen;
        if (end - q >= 2 && !memcmp(q, "--", 2))
            return p;
        while (q < end && (*q == ' ' || *q == '\t'))
            q++;
        if (end - q >= 2 && !memcmp(q, "\r\n", 2))
            return p;
        p++;
    }
    return NULL;
}

pn_status serve_multipart_parse(const unsigned char *body, size_t len, const char *boundary, multipart_form *form,
                          pn_error *err)
{
    memset(form, 0, sizeof *form);
    char delim[BOUNDARY_MAX + 5];
    int dlen = snprintf(delim, sizeof delim, "\r\n--%s", boundary);
    if (dlen < 5 || (size_t)dlen >= sizeof delim)
        return pn_fail(err, PN_EFORMAT, "multipart boundary too long");
    /* A request without a body has none to search (body may be NULL). */
    if (len == 0)
        return pn_fail(err, PN_EFORMAT, "multipart body is empty");
    /* The first delimiter may open the body (no preceding CRLF). */
    const unsigned char *p;
    if (len >= (size_t)dlen - 2 && !memcmp(body, delim + 2, (size_t)dlen - 2))
        p = body + dlen - 2;
    else if ((p = memmem(body, len, delim, (size_t)dlen)))
        p += dlen;
    else
        return pn_fail(err, PN_EFORMAT, "multipart body without its boundary");
    const unsigned char *end = body + len;
    for (;;) {
        if (end - p >= 2 && !memcmp(p, "--", 2))
            return form->n_parts ? PN_OK : pn_fail(err, PN_EFORMAT, "multipart body without parts");
        while (p < end && (*p == ' ' || *p == '\t')) /* transport padding */
            p++;
        if (end - p < 2 || memcmp(p, "\r\n", 2))
            return pn_fail(err, PN_EFORMAT, "malformed multipart delimiter line");
        p += 2;
        const unsigned char *hend = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
        if (!hend)
            return pn_fail(err, PN_EFORMAT, "multipart part headers not terminated");
        if (form->n_parts == MULTIPART_MAX_PARTS)
            return pn_fail(err, PN_ELIMIT, "more than %d multipart parts", MULTIPART_MAX_PARTS);
        multipart_part *part = &form->parts[form->n_parts];
        /* Headers end at the CRLF of the last header line, kept for the line splitter. */
        pn_status st = parse_headers((const char *)p, (size_t)(hend - p) + 2, part, err);
        if (st)
            return st;
        const unsigned char *data = hend + 4;
        const unsigned char *next = find_delimiter(data, end, delim, (size_t)dlen);
        if (!next)
            return pn_fail(err, PN_EFORMAT, "multipart part '%s' not terminated by the boundary", part->name);
        part->data = data;
        part->size = (size_t)(next - data);
        form->n_parts++;
        p = next + dlen;
    }
}

const multipart_part *serve_multipart_find(const multipart_form *form, const char *name)
{
    for (int i = 0; i < form->n_parts; i++)
        if (!strcmp(form->parts[i].name, name))
            return &form->parts[i];
    return NULL;
}
