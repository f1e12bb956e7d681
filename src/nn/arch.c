/* Finding architecture cfg files by name: $PNEUMO_ARCH_DIR, then the installed
 * or checkout data files (pn_data_file: share/pneumo/arch/, models/arch/). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "nn/internal.h"
#include "pneumo/os.h"

static pn_status read_text(const char *path, char **text, pn_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return pn_fail(err, PN_EIO, "%s: %s", path, strerror(errno));
    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        return pn_fail(err, PN_EIO, "%s: cannot seek", path);
    }
    long size = ftell(f);
    rewind(f);
    if (size < 0 || size > (1 << 20)) {
        fclose(f);
        return pn_fail(err, PN_ELIMIT, "%s: not a cfg file (size %ld)", path, size);
    }
    char *buf = malloc((size_t)size + 1);
    if (!buf || fread(buf, 1, (size_t)size, f) != (size_t)size) {
        free(buf);
        fclose(f);
        return pn_fail(err, PN_EIO, "%s: read failed", path);
    }
    buf[size] = '\0';
    fclose(f);
    *text = buf;
    return PN_OK;
}

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

pn_status pn_arch_read(const char *name_or_path, char **text, pn_error *err)
{
    if (strchr(name_or_path, '/') || is_file(name_or_path))
        return read_text(name_or_path, text, err);
    for (const char *c = name_or_path; *c; c++)
        if (!(*c == '-' || *c == '_' || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9')))
            return pn_fail(err, PN_EINVAL, "'%s' is neither a cfg file nor an architecture name", name_or_path);
    char path[4096], rel[256];
    const char *env = getenv("PNEUMO_ARCH_DIR");
    if (env && *env) {
        snprintf(path, sizeof path, "%s/%s.cfg", env, name_or_path);
        if (is_file(path))
            return read_text(path, text, err);
    }
    snprintf(rel, sizeof rel, "arch/%.200s.cfg", name_or_path);
    if (pn_data_file(rel, path, sizeof path))
        return read_text(path, text, err);
    return pn_fail(err, PN_EINVAL, "unknown architecture '%s' (see models/arch/)", name_or_path);
}
