/* libFuzzer target: the CSV manifest reader. Any bytes either fail with a
 * message or give a dataset whose every sample is well-formed and which,
 * written back as a manifest (pn_manifest_write) and read again, gives the
 * same samples. The manifest lies in a folder holding a.png, b.png and
 * sub/c.png, so that rows can name real files; the folder is removed at exit. */
#include "fuzz_util.h"

#include <sys/stat.h>

#include "pneumo/data.h"

static char dir[64];
static const char *const files[] = {"a.png", "b.png", "sub/c.png"};

static void file_path(char *out, size_t size, const char *name) { snprintf(out, size, "%s/%s", dir, name); }

static void remove_folder(void)
{
    char path[128];
    const char *extra[] = {"m.csv", "back.csv"};
    for (int i = 0; i < 3; i++) {
        file_path(path, sizeof path, i < 2 ? extra[i] : files[2]);
        unlink(path);
    }
    for (int i = 0; i < 2; i++) {
        file_path(path, sizeof path, files[i]);
        unlink(path);
    }
    file_path(path, sizeof path, "sub");
    rmdir(path);
    rmdir(dir);
}

static void make_folder(void)
{
    snprintf(dir, sizeof dir, "/tmp/pneumo-fuzz-manifest-XXXXXX");
    if (!mkdtemp(dir))
        abort();
    char path[128];
    file_path(path, sizeof path, "sub");
    mkdir(path, 0755);
    uint8_t px[8 * 8];
    for (int i = 0; i < 3; i++) {
        for (int k = 0; k < 64; k++)
            px[k] = (uint8_t)(k * (i + 1));
        pn_image img = {.w = 8, .h = 8, .pixels = px};
        file_path(path, sizeof path, files[i]);
        if (pn_image_write_png(path, &img, NULL))
            abort();
    }
    atexit(remove_folder);
}

static int well_formed(const pn_sample *s)
{
    int split_ok = !strcmp(s->split, "") || !strcmp(s->split, "train") || !strcmp(s->split, "val") ||
                   !strcmp(s->split, "test");
    int subtype_ok = s->label == PN_CLASS_NORMAL ? s->subtype == PN_SUBTYPE_NORMAL
                                                 : s->subtype >= PN_SUBTYPE_UNKNOWN && s->subtype <= PN_SUBTYPE_VIRUS &&
                                                       s->subtype != PN_SUBTYPE_NORMAL;
    return split_ok && subtype_ok && (s->label == 0 || s->label == 1) && s->path[0] && s->patient[0] &&
           strlen(s->patient) <= 255;
}

static ino_t inode(const char *path)
{
    struct stat st;
    if (stat(path, &st))
        abort(); /* the reader checked that it exists */
    return st.st_ino;
}

/* Everything but the path's spelling (and so the order, which follows the
 * path) survives writing and reading back: samples are matched by file. */
static void round_trip(const pn_dataset *ds)
{
    char back[128];
    file_path(back, sizeof back, "back.csv");
    pn_dataset again;
    pn_error err = {0};
    if (pn_manifest_write(ds, back, &err) || pn_manifest_read(back, &again, &err) || again.n != ds->n ||
        again.n_groups != ds->n_groups)
        abort();
    size_t *match = malloc(ds->n * sizeof *match);
    for (size_t i = 0; match && i < ds->n; i++) {
        const pn_sample *a = &ds->samples[i], *b = NULL;
        for (size_t j = 0; !b && j < again.n; j++)
            if (inode(again.samples[j].path) == inode(a->path))
                b = &again.samples[match[i] = j];
        if (!b || a->label != b->label || a->subtype != b->subtype || a->patient_known != b->patient_known ||
            a->hash != b->hash || strcmp(a->split, b->split) || strcmp(a->patient, b->patient))
            abort();
    }
    for (size_t i = 0; match && i < ds->n; i++)
        for (size_t k = 0; k < ds->n; k++)
            if ((ds->samples[i].group == ds->samples[k].group) !=
                (again.samples[match[i]].group == again.samples[match[k]].group))
                abort();
    free(match);
    pn_dataset_free(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0])
        make_folder();
    char path[128];
    file_path(path, sizeof path, "m.csv");
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f))
        abort();
    pn_dataset ds;
    pn_error err = {0};
    pn_status st = pn_manifest_read(path, &ds, &err);
    fuzz_check_error(st, &err);
    if (st) {
        if (ds.samples || ds.n)
            abort();
        return 0;
    }
    if (ds.n == 0)
        abort();
    for (size_t i = 0; i < ds.n; i++)
        if (!well_formed(&ds.samples[i]))
            abort();
    round_trip(&ds);
    pn_dataset_free(&ds);
    return 0;
}
