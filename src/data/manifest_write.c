/* Writing a dataset as a CSV manifest (`pneumo data convert`): one row per
 * sample with the label, patient id and split a folder scan found, so that
 * pn_manifest_read gives the same dataset back. */
#define _GNU_SOURCE
#include <csv.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/internal.h"

/* One field and its separator: as it is when RFC 4180 (and libcsv's trimming
 * of unquoted spaces) needs no quotes, else quoted by libcsv. */
static int write_field(FILE *f, const char *s, int last)
{
    size_t n = strlen(s);
    int plain = !strpbrk(s, ",\"\r\n") && !(n && strchr(" \t", s[0])) && !(n && strchr(" \t", s[n - 1]));
    int failed = plain ? fputs(s, f) < 0 : csv_fwrite(f, s, n) != 0;
    return failed || fputc(last ? '\n' : ',', f) == EOF;
}

static const char *label_name(const pn_sample *s)
{
    if (s->label == PN_CLASS_NORMAL)
        return "NORMAL";
    return s->subtype == PN_SUBTYPE_BACTERIA ? "BACTERIAL" : s->subtype == PN_SUBTYPE_VIRUS ? "VIRAL" : "PNEUMONIA";
}

/* Resolves sample folders (each realpath'd once in a row) and writes paths
 * relative to the manifest's folder when they lie inside it. */
typedef struct path_writer {
    char base[PATH_MAX];          /* the manifest's folder, resolved */
    char last_dir[PATH_MAX];      /* the previous sample's folder as given ... */
    char last_real[PATH_MAX];     /* ... and resolved */
    char out[2 * PATH_MAX + 2];
} path_writer;

/* The folder part of path ("." without one, "/" for a file at the root). */
static void dir_of(const char *path, char *out, size_t size)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(out, size, ".");
    else
        snprintf(out, size, "%.*s", slash == path ? 1 : (int)(slash - path), path);
}

static pn_status resolve_dir(const char *path, char *real, pn_error *err)
{
    char dir[PATH_MAX];
    dir_of(path, dir, sizeof dir);
    if (!realpath(dir, real))
        return pn_fail(err, PN_EIO, "%s: %s", dir, strerror(errno));
    return PN_OK;
}

/* The path to write for sample path p, in w->out. */
static pn_status manifest_path(path_writer *w, const char *p, pn_error *err)
{
    char dir[PATH_MAX];
    dir_of(p, dir, sizeof dir);
    if (strcmp(w->last_dir, dir) || !w->last_real[0]) {
        pn_status st = resolve_dir(p, w->last_real, err);
        if (st)
            return st;
        snprintf(w->last_dir, sizeof w->last_dir, "%s", dir);
    }
    const char *slash = strrchr(p, '/');
    snprintf(w->out, sizeof w->out, "%s/%s", strcmp(w->last_real, "/") ? w->last_real : "", slash ? slash + 1 : p);
    size_t blen = strlen(w->base);
    if (!strcmp(w->base, "/"))
        memmove(w->out, w->out + 1, strlen(w->out));
    else if (!strncmp(w->out, w->base, blen) && w->out[blen] == '/')
        memmove(w->out, w->out + blen + 1, strlen(w->out + blen + 1) + 1);
    return PN_OK;
}

static pn_status write_rows(FILE *f, const char *name, const pn_dataset *ds, path_writer *w, int with_split,
                            pn_error *err)
{
    int failed = fputs(with_split ? "path,label,patient_id,split\n" : "path,label,patient_id\n", f) < 0;
    for (size_t i = 0; !failed && i < ds->n; i++) {
        const pn_sample *s = &ds->samples[i];
        pn_status st = manifest_path(w, s->path, err);
        if (st)
            return st;
        failed = write_field(f, w->out, 0) || write_field(f, label_name(s), 0) ||
                 write_field(f, s->patient_known ? s->patient : "", !with_split) ||
                 (with_split && write_field(f, s->split, 1));
    }
    return failed ? pn_fail(err, PN_EIO, "%s: write error: %s", name, strerror(errno)) : PN_OK;
}

pn_status pn_manifest_write(const pn_dataset *ds, const char *csv_path, pn_error *err)
{
    path_writer *w = calloc(1, sizeof *w);
    if (!w)
        return pn_fail(err, PN_ENOMEM, "out of memory");
    pn_status st = resolve_dir(csv_path, w->base, err);
    int with_split = 0;
    for (size_t i = 0; i < ds->n; i++)
        with_split |= ds->samples[i].split[0] != '\0';
    char tmp[PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", csv_path, (long)getpid());
    FILE *f = st ? NULL : fopen(tmp, "wb");
    if (!st && !f)
        st = pn_fail(err, PN_EIO, "%s: cannot create: %s", tmp, strerror(errno));
    if (!st)
        st = write_rows(f, tmp, ds, w, with_split, err);
    if (f && (fflush(f) || fsync(fileno(f))) && !st)
        st = pn_fail(err, PN_EIO, "%s: write error: %s", tmp, strerror(errno));
    if (f && fclose(f) && !st)
        st = pn_fail(err, PN_EIO, "%s: write error", tmp);
    if (!st && rename(tmp, csv_path))
        st = pn_fail(err, PN_EIO, "%s: cannot write: %s", csv_path, strerror(errno));
    if (st && f)
        unlink(tmp);
    free(w);
    return st;
}
