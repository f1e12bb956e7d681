/* The display (VOI) window of a grayscale DICOM image, as docs/input-formats.md
 * documents it (PS3.3 C.11.2, C.7.5.1.1.2, C.11.6):
 *   1. the first item of the VOI LUT Sequence;
 *   2. else the first Window Center/Width pair (with the file's VOI LUT
 *      Function, LINEAR or SIGMOID);
 *   3. else the minimum-maximum of the first frame's values (after the
 *      modality transform), leaving out pixels whose stored value is the
 *      Pixel Padding Value or within the Pixel Padding Range Limit, as the
 *      standard asks of "display applications determining the dynamic range".
 * A VOI LUT or window DCMTK cannot use (an empty LUT, a width below 1)
 * passes to the next source, with a warning. DCMTK renders; this file only
 * chooses. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <new>

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcelem.h>
#include <dcmtk/dcmimgle/dipixel.h>

#include "data/dicom_internal.h"

/* Stored-value layout of the pixel data and its padding range. */
typedef struct padding {
    int lo, hi;                      /* padded stored values: lo..hi inclusive */
    Uint16 alloc, stored, high_bit;
    int is_signed;
} padding;

/* A US or SS value of tag (as the file's Pixel Representation says); 0 when absent or empty. */
static int get_us_or_ss(DcmDataset *ds, const DcmTagKey &tag, int is_signed, int *value)
{
    Uint16 u;
    Sint16 s;
    if (ds->findAndGetUint16(tag, u).good())
        *value = is_signed ? (int)(Sint16)u : (int)u;
    else if (ds->findAndGetSint16(tag, s).good())
        *value = is_signed ? (int)s : (int)(Uint16)s;
    else
        return 0;
    return 1;
}

static Uint16 get_u16(DcmDataset *ds, const DcmTagKey &tag)
{
    Uint16 v = 0;
    return ds->findAndGetUint16(tag, v).good() ? v : 0;
}

/* The file's padding range, for layouts this code reads (Bits Allocated 8 or 16). */
static int read_padding(DcmDataset *ds, padding *p)
{
    p->alloc = get_u16(ds, DCM_BitsAllocated);
    p->stored = get_u16(ds, DCM_BitsStored);
    p->high_bit = get_u16(ds, DCM_HighBit);
    p->is_signed = get_u16(ds, DCM_PixelRepresentation) == 1;
    int value, limit;
    if ((p->alloc != 8 && p->alloc != 16) || p->stored == 0 || p->stored > p->alloc ||
        p->high_bit + 1 < p->stored || p->high_bit >= p->alloc ||
        !get_us_or_ss(ds, DCM_PixelPaddingValue, p->is_signed, &value))
        return 0;
    if (!get_us_or_ss(ds, DCM_PixelPaddingRangeLimit, p->is_signed, &limit))
        limit = value;
    p->lo = value < limit ? value : limit;
    p->hi = value < limit ? limit : value;
    return 1;
}

/* The stored value of raw sample v: Bits Stored bits ending at High Bit, sign-extended if signed. */
static int stored_value(const padding *p, unsigned v)
{
    v = (v >> (p->high_bit + 1 - p->stored)) & ((1u << p->stored) - 1);
    if (p->is_signed && (v >> (p->stored - 1)) & 1)
        return (int)v - (1 << p->stored);
    return (int)v;
}

/* pad[i] = 1 where pixel i of the first frame has a padding value; the count of such pixels. */
static size_t mark_padding(DcmDataset *ds, const padding *p, size_t n, uint8_t *pad)
{
    DcmElement *pixels = NULL;
    Uint32 frame_size = 0, start = 0;
    if (ds->findAndGetElement(DCM_PixelData, pixels).bad() ||
        pixels->getUncompressedFrameSize(ds, frame_size).bad() || frame_size < n * (p->alloc / 8))
        return 0;
    uint8_t *raw = (uint8_t *)malloc(frame_size + 1); /* [frame_size] the first frame, host byte order */
    OFString colour;
    size_t found = 0;
    if (raw && pixels->getUncompressedFrame(ds, 0, start, raw, frame_size + 1, colour).good()) {
        for (size_t i = 0; i < n; i++) {
            unsigned v = p->alloc == 8 ? raw[i] : ((const Uint16 *)raw)[i];
            int s = stored_value(p, v);
            pad[i] = s >= p->lo && s <= p->hi;
            found += pad[i];
        }
    }
    free(raw);
    return found;
}

/* Minimum and maximum of the modality values v[i] where pad[i] is 0. */
template <typename T>
static int minmax_unpadded(const void *data, const uint8_t *pad, size_t n, double *lo, double *hi)
{
    const T *v = (const T *)data;
    int any = 0;
    for (size_t i = 0; i < n; i++) {
        if (pad[i])
            continue;
        double x = (double)v[i];
        *lo = any && *lo < x ? *lo : x;
        *hi = any && *hi > x ? *hi : x;
        any = 1;
    }
    return any;
}

static int minmax_by_type(const DiPixel *inter, const uint8_t *pad, size_t n, double *lo, double *hi)
{
    const void *d = inter->getData();
    switch (inter->getRepresentation()) {
    case EPR_Uint8: return minmax_unpadded<Uint8>(d, pad, n, lo, hi);
    case EPR_Sint8: return minmax_unpadded<Sint8>(d, pad, n, lo, hi);
    case EPR_Uint16: return minmax_unpadded<Uint16>(d, pad, n, lo, hi);
    case EPR_Sint16: return minmax_unpadded<Sint16>(d, pad, n, lo, hi);
    case EPR_Uint32: return minmax_unpadded<Uint32>(d, pad, n, lo, hi);
    case EPR_Sint32: return minmax_unpadded<Sint32>(d, pad, n, lo, hi);
    }
    return 0;
}

/* The min-max window over the pixels that are not padding, with DCMTK's
 * own min-max formula (center (min + max + 1) / 2, width max - min + 1).
 * 0 when the file declares no padding, no pixel has it, or every pixel has it. */
static int unpadded_minmax_window(DicomImage &di, DcmDataset *ds)
{
    padding p;
    const DiPixel *inter = di.getInterData();
    size_t n = (size_t)di.getWidth() * di.getHeight();
    if (!inter || !read_padding(ds, &p) || inter->getCount() < n)
        return 0;
    uint8_t *pad = (uint8_t *)calloc(n ? n : 1, 1); /* [n] 1 = padding pixel */
    double lo = 0, hi = 0;
    int ok = pad && mark_padding(ds, &p, n, pad) > 0 && minmax_by_type(inter, pad, n, &lo, &hi);
    free(pad);
    return ok && di.setWindow((lo + hi + 1) / 2, hi - lo + 1);
}

/* A warning when Presentation LUT Shape and Photometric Interpretation
 * disagree (PS3.3 C.8.11.7 asks IDENTITY with MONOCHROME2, INVERSE with
 * MONOCHROME1); DCMTK, like the standard's definition of the shape, follows
 * the shape. */
static void shape_note(DcmDataset *ds, pn_image *img)
{
    OFString shape, photometric;
    ds->findAndGetOFString(DCM_PresentationLUTShape, shape);
    ds->findAndGetOFString(DCM_PhotometricInterpretation, photometric);
    if (shape == "INVERSE" && photometric == "MONOCHROME2")
        pn_dicom_note(img, "DICOM Presentation LUT Shape INVERSE with MONOCHROME2: shown inverted, as the "
                           "shape asks; check that bone is white");
    else if (shape == "IDENTITY" && photometric == "MONOCHROME1")
        pn_dicom_note(img, "DICOM Presentation LUT Shape IDENTITY with MONOCHROME1: shown without inversion, "
                           "as the shape asks; check that bone is white");
}

int pn_dicom_set_window(DicomImage &di, DcmDataset *ds, pn_image *img)
{
    if (!di.isMonochrome())
        return 1;
    di.hideAllOverlays();
    shape_note(ds, img);
    if (di.getVoiLutCount() > 0) {
        if (di.setVoiLut(0))
            return 1;
        pn_dicom_note(img, "DICOM VOI LUT Sequence unusable (empty or malformed): the next window source was used");
    }
    if (di.getWindowCount() > 0) {
        if (di.setWindow(0))
            return 1;
        pn_dicom_note(img, "DICOM Window Center/Width unusable (width below 1): the min-max window was used");
    }
    /* VOI LUT Function qualifies the file's windows only. */
    di.setVoiLutFunction(EFV_Linear);
    return unpadded_minmax_window(di, ds) || di.setMinMaxWindow(0);
}
