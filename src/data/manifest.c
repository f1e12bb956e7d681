/* CSV manifests: any labelled collection as rows of path, label and, when
 * given, patient_id and split (docs/datasets.md). libcsv parses (strict RFC
 * 4180 quoting); the file is fed to it line by line so that every message can
 * name the line its row starts on. Rows become samples through the same list
 * as a folder scan, so hashing and patient groups are the scan's. */
#define _GNU_SOURCE /* strcasecmp, getline */
#include <csv.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "data/internal.h"

enum { COL_PATH, COL_LABEL, COL_PATIENT, COL_SPLIT, N_COLS };
static const char *const col_names[N_COLS] = {"path", "label", "patient_id", "split"};
enum { MAX_PATIENT = 255 };

/* A listed file: device and inode find one file under two spellings. */
typedef struct file_key {
    dev_t dev;
    ino_t ino;
    long line;
    size_t index;
} file_key;

typedef struct row_reader {
    const char *csv;         /* the manifest, for messages */
    char *dir;               /* its folder, joined to relative paths (NULL: none) */
    long line;               /* line being fed to the parser, 1-based */
    long row_line;           /* line the current row's first field ended on */
    long last_end;           /* line the last complete row ended on */
    int header_done, n_fields;
    int col[N_COLS];         /* field index of each known column, -1 when absent */
    int field;               /* fields seen in the current row */
    int any_value;           /* the current row has a non-empty field */
    char *cell[N_COLS];      /* the current row's known cells */
    pn_sample_list list;
    file_key *keys;          /* [keys_cap] each sample's file and line */
    size_t keys_cap;
    pn_status st;
    pn_error *err;
} row_reader;

static void clear_cells(row_reader *r)
{
    for (int c = 0; c < N_COLS; c++) {
        free(r->cell[c]);
        r->cell[c] = NULL;
    }
    r->field = 0;
    r->any_value = 0;
}

/* A header cell: records which known column it is. */
static void header_field(row_reader *r, const char *name)
{
    for (int c = 0; c < N_COLS; c++) {
        if (strcasecmp(name, col_names[c]))
            continue;
        if (r->col[c] >= 0)
            r->st = pn_fail(r->err, PN_EFORMAT, "%s: line %ld: column '%s' appears twice in the header",
                            r->csv, r->row_line, col_names[c]);
        r->col[c] = r->field;
    }
}

static void on_field(void *data, size_t len, void *user)
{
    row_reader *r = user;
    if (r->st)
        return;
    if (r->field == 0)
        r->row_line = r->line;
    const char *text = data ? data : "";
    if (strlen(text) != len) {
        r->st = pn_fail(r->err, PN_EFORMAT, "%s: line %ld: a field holds a NUL byte", r->csv, r->row_line);
        return;
    }
    r->any_value |= len > 0;
    if (!r->header_done)
        header_field(r, text);
    for (int c = 0; r->header_done && c < N_COLS; c++)
        if (r->col[c] == r->field && !(r->cell[c] = strdup(text)))
            r->st = pn_fail(r->err, PN_ENOMEM, "out of memory reading %s", r->csv);
    r->field++;
}

/* label cell -> PN_CLASS_* and PN_SUBTYPE_* (or PN_SUBTYPE_FROM_NAME); -1 if unknown. */
static int parse_label(const char *name, int *subtype)
{
    static const struct { const char *name; int label, subtype; } labels[] = {
        {"NORMAL", PN_CLASS_NORMAL, PN_SUBTYPE_NORMAL},
        {"PNEUMONIA", PN_CLASS_PNEUMONIA, PN_SUBTYPE_FROM_NAME},
        {"BACTERIAL", PN_CLASS_PNEUMONIA, PN_SUBTYPE_BACTERIA},
        {"BACTERIA", PN_CLASS_PNEUMONIA, PN_SUBTYPE_BACTERIA},
        {"VIRAL", PN_CLASS_PNEUMONIA, PN_SUBTYPE_VIRUS},
        {"VIRUS", PN_CLASS_PNEUMONIA, PN_SUBTYPE_VIRUS},
    };
    for (size_t i = 0; i < sizeof labels / sizeof *labels; i++)
        if (!strcasecmp(name, labels[i].name)) {
            *subtype = labels[i].subtype;
            return labels[i].label;
        }
    return -1;
}

/* split cell -> "train", "val" or "test"; NULL if it is none of them. */
static const char *parse_split(const char *name)
{
    static const char *const splits[] = {"train", "val", "test"};
    for (int i = 0; i < 3; i++)
        if (!strcasecmp(name, splits[i]))
            return splits[i];
    return NULL;
}

static pn_status grow_keys(row_reader *r)
{
    if (r->list.n < r->keys_cap)
        return PN_OK;
    size_t cap = 2 * r->keys_cap + 1024;
    file_key *keys = realloc(r->keys, cap * sizeof *keys);
    if (!keys)
        return pn_fail(r->err, PN_ENOMEM, "out of memory reading %s", r->csv);
    r->keys = keys;
    r->keys_cap = cap;
    return PN_OK;
}

/* The checks of one data row that need no file system. */
static pn_status check_row(row_reader *r, int *label, int *subtype, const char **split)
{
    const char *path = r->cell[COL_PATH], *patient = r->cell[COL_PATIENT];
    if (r->field != r->n_fields)
        return pn_fail(r->err, PN_EFORMAT, "%s: line %ld: %d fields, the header has %d", r->csv, r->row_line,
                       r->field, r->n_fields);
    if (!*path)
        return pn_fail(r->err, PN_EFORMAT, "%s: line %ld: empty path", r->csv, r->row_line);
    if (strpbrk(path, "\"\r\n"))
        return pn_fail(r->err, PN_EFORMAT, "%s: line %ld: a path with a double quote or a line break is not "
                       "supported", r->csv, r->row_line);
    if ((*label = parse_label(r->cell[COL_LABEL], subtype)) < 0)
        return pn_fail(r->err, PN_EFORMAT, "%s: line %ld: unknown label '%.40s' (expected NORMAL, PNEUMONIA, "
                       "BACTERIAL or VIRAL)", r->csv, r->row_line, r->cell[COL_LABEL]);
    if (patient && (strlen(patient) > MAX_PATIENT || strpbrk(patient, ",\"\r\n")))
        return pn_fail(r->err, PN_EFORMAT, "%s: line %ld: patient_id longer than %d bytes or holding a comma, "
                       "quote or line break", r->csv, r->row_line, MAX_PATIENT);
    *split = r->col[COL_SPLIT] < 0 ? "" : parse_split(r->cell[COL_SPLIT]);
    if (!*split)
        return pn_fail(r->err, PN_EFORMAT, "%s: line %ld: unknown split '%.40s' (expected train, val or test)",
                       r->csv, r->row_line, r->cell[COL_SPLIT]);
    return PN_OK;
}

static pn_status add_row(row_reader *r)
{
    int label = 0, subtype = 0;
    const char *split = "";
    pn_status st = check_row(r, &label, &subtype, &split);
    if (st)
        return st;
    const char *rel = r->cell[COL_PATH], *patient = r->cell[COL_PATIENT];
    char *path = NULL;
    if (rel[0] == '/' || !r->dir)
        path = strdup(rel);
    else if (asprintf(&path, "%s/%s", r->dir, rel) < 0)
        path = NULL;
    if (!path)
        return pn_fail(r->err, PN_ENOMEM, "out of memory reading %s", r->csv);
    struct stat sb;
    if (stat(path, &sb) != 0)
        st = pn_fail(r->err, PN_EIO, "%s: line %ld: %s: %s", r->csv, r->row_line, path, strerror(errno));
    else if (!S_ISREG(sb.st_mode))
        st = pn_fail(r->err, PN_EFORMAT, "%s: line %ld: %s is not a regular file", r->csv, r->row_line, path);
    if (!st)
        st = grow_keys(r);
    if (!st)
        st = pn_sample_list_add(&r->list, path, split, label, subtype, patient && *patient ? patient : NULL,
                                &sb, r->err);
    if (!st)
        r->keys[r->list.n - 1] = (file_key){sb.st_dev, sb.st_ino, r->row_line, r->list.n - 1};
    free(path);
    return st;
}

static pn_status finish_header(row_reader *r)
{
    r->header_done = 1;
    r->n_fields = r->field;
    for (int c = COL_PATH; c <= COL_LABEL; c++)
        if (r->col[c] < 0)
            return pn_fail(r->err, PN_EFORMAT, "%s: line %ld: the header row names no '%s' column (expected "
                           "path,label[,patient_id][,split])", r->csv, r->row_line, col_names[c]);
    return PN_OK;
}

static void on_row(int terminator, void *user)
{
    row_reader *r = user;
    (void)terminator;
    if (!r->st && r->field > 0 && !r->header_done)
        r->st = finish_header(r);
    else if (!r->st && r->any_value)
        r->st = add_row(r);
    r->last_end = r->line;
    clear_cells(r);
}

static int by_file(const void *a, const void *b)
{
    const file_key *x = a, *y = b;
    if (x->dev != y->dev)
        return x->dev < y->dev ? -1 : 1;
    if (x->ino != y->ino)
        return x->ino < y->ino ? -1 : 1;
    return (x->line > y->line) - (x->line < y->line);
}

/* A file listed twice, under any spelling. */
static pn_status check_duplicates(row_reader *r)
{
    file_key *k = r->keys;
    qsort(k, r->list.n, sizeof *k, by_file);
    for (size_t i = 1; i < r->list.n; i++)
        if (k[i].dev == k[i - 1].dev && k[i].ino == k[i - 1].ino)
            return pn_fail(r->err, PN_EFORMAT, "%s: line %ld: %s is already listed on line %ld", r->csv,
                           k[i].line, r->list.s[k[i].index].path, k[i - 1].line);
    return PN_OK;
}

/* Feeds the manifest to the parser one line at a time. */
static pn_status parse_lines(row_reader *r, FILE *f, struct csv_parser *p)
{
    char *buf = NULL;
    size_t cap = 0;
    ssize_t len;
    while (!r->st && (len = getline(&buf, &cap, f)) > 0) {
        r->line++;
        const char *s = buf;
        if (r->line == 1 && len >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3))
            s += 3, len -= 3; /* UTF-8 byte-order mark */
        if (csv_parse(p, s, (size_t)len, on_field, on_row, r) != (size_t)len && !r->st)
            r->st = csv_error(p) == CSV_EPARSE
                        ? pn_fail(r->err, PN_EFORMAT, "%s: line %ld: malformed CSV quoting (a quote inside an "
                                  "unquoted field, or text after a closing quote)", r->csv, r->line)
                        : pn_fail(r->err, PN_ENOMEM, "%s: line %ld: %s", r->csv, r->line, csv_strerror(csv_error(p)));
    }
    free(buf);
    if (!r->st && ferror(f))
        r->st = pn_fail(r->err, PN_EIO, "%s: read error", r->csv);
    if (!r->st && csv_fini(p, on_field, on_row, r) && !r->st)
        r->st = pn_fail(r->err, PN_EFORMAT, "%s: line %ld: a quoted field is not closed before the end of the file",
                        r->csv, r->last_end + 1);
    return r->st;
}

/* The manifest's folder, or NULL when it has none (a bare file name). */
static pn_status manifest_dir(const char *csv, char **dir, pn_error *err)
{
    const char *slash = strrchr(csv, '/');
    *dir = NULL;
    if (!slash)
        return PN_OK;
    *dir = slash == csv ? strdup("/") : strndup(csv, (size_t)(slash - csv));
    return *dir ? PN_OK : pn_fail(err, PN_ENOMEM, "out of memory");
}

pn_status pn_manifest_read(const char *csv_path, pn_dataset *ds, pn_error *err)
{
    memset(ds, 0, sizeof *ds);
    row_reader r = {.csv = csv_path, .err = err, .col = {-1, -1, -1, -1}};
    struct csv_parser p;
    FILE *f = NULL;
    int parser = 0;
    pn_status st = manifest_dir(csv_path, &r.dir, err);
    if (!st && !(f = fopen(csv_path, "rb")))
        st = pn_fail(err, PN_EIO, "%s: cannot open: %s", csv_path, strerror(errno));
    if (!st) {
        parser = csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) == 0;
        st = parser ? PN_OK : pn_fail(err, PN_ENOMEM, "out of memory");
    }
    if (!st)
        st = parse_lines(&r, f, &p);
    if (!st && !r.header_done)
        st = pn_fail(err, PN_EFORMAT, "%s: empty manifest (expected a header row path,label[,patient_id][,split])",
                     csv_path);
    if (!st && r.list.n == 0)
        st = pn_fail(err, PN_EINVAL, "%s: no images listed", csv_path);
    if (!st)
        st = check_duplicates(&r);
    if (!st)
        st = pn_dataset_finish(&r.list, csv_path, ds, err);
    if (parser)
        csv_free(&p);
    if (f)
        fclose(f);
    clear_cells(&r);
    pn_sample_list_free(&r.list);
    free(r.keys);
    free(r.dir);
    return st;
}
