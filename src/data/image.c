/* Format sniffing, file reading and the format-independent parts of decoding. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/decode_dicom.h"
#include "data/internal.h"

#define MAX_FILE_BYTES (1024u * 1024u * 1024u)

/* Formats we recognise only to say clearly that they are not supported. */
static const char *other_format(const uint8_t *d, size_t n)
{
    if (n >= 4 && !memcmp(d, "GIF8", 4))
        return "GIF";
    if (n >= 2 && !memcmp(d, "BM", 2))
        return "BMP";
    if (n >= 4 && (!memcmp(d, "II*\0", 4) || !memcmp(d, "MM\0*", 4)))
        return "TIFF";
    if (n >= 12 && !memcmp(d, "RIFF", 4) && !memcmp(d + 8, "WEBP", 4))
        return "WebP";
    if (n >= 12 && !memcmp(d, "\0\0\0\x0cjP  ", 8))
        return "JPEG 2000";
    if (n >= 12 && !memcmp(d + 4, "ftyp", 4))
        return "HEIF/AVIF";
    return NULL;
}

static int is_jpeg(const uint8_t *d, size_t n)
{
    return n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF;
}

static int is_png(const uint8_t *d, size_t n)
{
    return n >= 8 && !memcmp(d, "\x89PNG\r\n\x1a\n", 8);
}

int pn_dicom_bare_dataset(const uint8_t *d, size_t n)
{
    if (n < 8)
        return 0;
    unsigned group_le = d[0] | d[1] << 8, elem_le = d[2] | d[3] << 8;
    unsigned group_be = d[0] << 8 | d[1], elem_be = d[2] << 8 | d[3];
    if (group_le == 0x0002 || (group_le == 0x0008 && elem_le < 0x0100))
        return 1;
    return group_be == 0x0008 && elem_be < 0x0100;
}

/* Part 10 ("DICM" after the preamble), or a bare data set. */
static int is_dicom(const uint8_t *d, size_t n)
{
    return (n >= 132 && !memcmp(d + 128, "DICM", 4)) || pn_dicom_bare_dataset(d, n);
}

pn_image_format pn_image_sniff(const void *data, size_t size)
{
    const uint8_t *d = data;
    if (!d)
        return PN_FORMAT_UNKNOWN;
    return is_jpeg(d, size) ? PN_FORMAT_JPEG
           : is_png(d, size) ? PN_FORMAT_PNG
           : is_dicom(d, size) ? PN_FORMAT_DICOM
                               : PN_FORMAT_UNKNOWN;
}

/* The error for bytes no decoder claims: a named unsupported format, or an unknown signature. */
static pn_status unknown_format(const uint8_t *d, size_t size, const char *name, pn_error *err)
{
    const char *other = other_format(d, size);
    if (other)
        return pn_fail(err, PN_EUNSUPPORTED, "%s: %s images are not supported (use JPEG, PNG or DICOM)",
                       name, other);
    return pn_fail(err, PN_EFORMAT, "%s: not a JPEG, PNG or DICOM image (unknown file signature)", name);
}

pn_status pn_image_decode_memory(const void *data, size_t size, const char *name, int min_w,
                                 int min_h, pn_image *out, pn_error *err)
{
    const uint8_t *d = data;
    memset(out, 0, sizeof *out);
    if (!name)
        name = "<memory>";
    if (!d || size == 0)
        return pn_fail(err, PN_EFORMAT, "%s: empty file", name);
    switch (pn_image_sniff(d, size)) {
    case PN_FORMAT_JPEG: return pn_decode_jpeg(d, size, name, min_w, min_h, out, err);
    case PN_FORMAT_PNG: return pn_decode_png(d, size, name, min_w, min_h, out, err);
    case PN_FORMAT_DICOM: return pn_decode_dicom(d, size, name, out, err);
    case PN_FORMAT_UNKNOWN: break;
    }
    return unknown_format(d, size, name, err);
}

pn_status pn_read_file(const char *path, uint8_t **data, size_t *size, pn_error *err)
{
    *data = NULL;
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return pn_fail(err, PN_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return pn_fail(err, PN_EIO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > MAX_FILE_BYTES) {
        fclose(f);
        return pn_fail(err, PN_ELIMIT, "%s: file too large (%lld bytes)", path,
                       (long long)st.st_size);
    }
    size_t n = (size_t)st.st_size;
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) {
        fclose(f);
        return pn_fail(err, PN_ENOMEM, "%s: out of memory reading %zu bytes", path, n);
    }
    size_t got = fread(buf, 1, n, f);
    int failed = ferror(f);
    fclose(f);
    if (failed || got != n) {
        free(buf);
        return pn_fail(err, PN_EIO, "%s: read error", path);
    }
    *data = buf;
    *size = n;
    return PN_OK;
}

pn_status pn_image_probe(const void *data, size_t size, const char *name, pn_image_info *info,
                         pn_error *err)
{
    const uint8_t *d = data;
    memset(info, 0, sizeof *info);
    if (!name)
        name = "<memory>";
    if (!d || size == 0)
        return pn_fail(err, PN_EFORMAT, "%s: empty file", name);
    switch (pn_image_sniff(d, size)) {
    case PN_FORMAT_JPEG: return pn_probe_jpeg(d, size, name, info, err);
    case PN_FORMAT_PNG: return pn_probe_png(d, size, name, info, err);
    case PN_FORMAT_DICOM: return pn_probe_dicom(d, size, name, info, err);
    case PN_FORMAT_UNKNOWN: break;
    }
    return unknown_format(d, size, name, err);
}

pn_status pn_image_decode_file(const char *path, int min_w, int min_h, pn_image *out,
                               pn_error *err)
{
    uint8_t *data;
    size_t size;
    memset(out, 0, sizeof *out);
    pn_status st = pn_read_file(path, &data, &size, err);
    if (st)
        return st;
    st = pn_image_decode_memory(data, size, path, min_w, min_h, out, err);
    free(data);
    return st;
}

void pn_image_free(pn_image *img)
{
    if (!img)
        return;
    free(img->pixels);
    img->pixels = NULL;
    img->w = img->h = 0;
}

/* A pixel counts as coloured when two channels differ by more than this;
 * JPEG chroma noise on gray pictures stays well below it. */
#define COLOR_DIFF 12
/* ...and a picture is colour when more than 1/200 of its pixels are. */
#define COLOR_FRACTION_DENOM 200

int pn_rgb_to_gray(const uint8_t *rgb, size_t n_pixels, uint8_t *gray)
{
    return pn_is_color(pn_rgb_to_gray_count(rgb, n_pixels, gray), n_pixels);
}

int pn_is_color(size_t colored, size_t n_pixels)
{
    return colored * COLOR_FRACTION_DENOM > n_pixels;
}

size_t pn_rgb_to_gray_count(const uint8_t *rgb, size_t n_pixels, uint8_t *gray)
{
    size_t colored = 0;
    for (size_t i = 0; i < n_pixels; i++) {
        int r = rgb[3 * i], g = rgb[3 * i + 1], b = rgb[3 * i + 2];
        /* BT.601 luma in 16.16 fixed point: 0.299 R + 0.587 G + 0.114 B. */
        gray[i] = (uint8_t)((19595 * r + 38470 * g + 7471 * b + 32768) >> 16);
        int d1 = abs(r - g), d2 = abs(g - b), d3 = abs(r - b);
        colored += (d1 > COLOR_DIFF || d2 > COLOR_DIFF || d3 > COLOR_DIFF);
    }
    return colored;
}

static uint32_t read_u16(const uint8_t *p, int big_endian)
{
    return big_endian ? (uint32_t)p[0] << 8 | p[1] : (uint32_t)p[1] << 8 | p[0];
}

static uint32_t read_u32(const uint8_t *p, int big_endian)
{
    return big_endian ? read_u16(p, 1) << 16 | read_u16(p + 2, 1)
                      : read_u16(p + 2, 0) << 16 | read_u16(p, 0);
}

int pn_exif_orientation(const uint8_t *app1, size_t size)
{
    if (size < 14 || memcmp(app1, "Exif\0\0", 6))
        return 1;
    const uint8_t *tiff = app1 + 6;
    size_t n = size - 6;
    int be;
    if (!memcmp(tiff, "MM\0*", 4))
        be = 1;
    else if (!memcmp(tiff, "II*\0", 4))
        be = 0;
    else
        return 1;
    uint32_t ifd = read_u32(tiff + 4, be);
    if (ifd > n || n - ifd < 2)
        return 1;
    uint32_t count = read_u16(tiff + ifd, be);
    for (uint32_t i = 0; i < count; i++) {
        size_t e = ifd + 2 + (size_t)i * 12;
        if (e + 12 > n)
            break;
        if (read_u16(tiff + e, be) == 0x0112 && read_u16(tiff + e + 2, be) == 3) {
            uint32_t o = read_u16(tiff + e + 8, be);
            return o >= 1 && o <= 8 ? (int)o : 1;
        }
    }
    return 1;
}

pn_status pn_image_orient(pn_image *img, int o, pn_error *err)
{
    img->orientation = o;
    if (o <= 1 || o > 8)
        return PN_OK;
    int W = img->w, H = img->h;
    int swap = o >= 5;
    int ow = swap ? H : W, oh = swap ? W : H;
    uint8_t *dst = malloc((size_t)W * H);
    if (!dst)
        return pn_fail(err, PN_ENOMEM, "out of memory orienting a %dx%d image", W, H);
    for (int y = 0; y < oh; y++) {
        for (int x = 0; x < ow; x++) {
            int sx, sy;
            switch (o) {
            case 2: sx = W - 1 - x; sy = y; break;
            case 3: sx = W - 1 - x; sy = H - 1 - y; break;
            case 4: sx = x; sy = H - 1 - y; break;
            case 5: sx = y; sy = x; break;
            case 6: sx = y; sy = H - 1 - x; break;
            case 7: sx = W - 1 - y; sy = H - 1 - x; break;
            default: sx = W - 1 - y; sy = x; break; /* 8 */
            }
            dst[(size_t)y * ow + x] = img->pixels[(size_t)sy * W + sx];
        }
    }
    free(img->pixels);
    img->pixels = dst;
    if (ow != W) { /* orientations 5-8 swap the axes */
        int t = img->src_w;
        img->src_w = img->src_h;
        img->src_h = t;
    }
    img->w = ow;
    img->h = oh;
    return PN_OK;
}
