/* DICOM decoding with DCMTK (dcmdata + dcmimgle), the only C++ in pneumo; the
 * rest of the code sees the C function pn_decode_dicom (data/decode_dicom.h).
 *
 * What a file becomes (docs/input-formats.md says the same for users):
 * - DICOM Part 10 with or without preamble/meta header, any uncompressed
 *   transfer syntax, and the compressed ones DCMTK decodes (JPEG baseline,
 *   extended, lossless; JPEG-LS; RLE). Others (JPEG 2000, ...) are refused
 *   with "unsupported transfer syntax".
 * - Grayscale: modality transform (Rescale Slope/Intercept or Modality LUT),
 *   then the display window dicom_display.cc chooses; MONOCHROME1 is
 *   inverted so bone is white (Presentation LUT Shape, when present, decides).
 *   Overlay planes are not drawn. The result is DCMTK's own 8-bit rendering,
 *   identical to `dcm2pnm --no-overlays` with that window.
 * - ACR-NEMA 2.0 files (no Photometric Interpretation, no Samples per Pixel)
 *   are read as MONOCHROME2 (`dcm2pnm +Ma`).
 * - Colour (RGB, YBR, palette): rendered to RGB, then BT.601 luminance.
 * - Multi-frame: the first frame, with a warning.
 * - What the header says of the acquisition (dicom_acquisition.cc): warnings,
 *   and img->not_chest when it says the image is not a chest radiograph.
 * Only geometry, pixel-module and the three acquisition attributes are read,
 * so no patient attribute can reach a message. DCMTK's own logger is switched
 * off for the same reason. */
#include <dcmtk/config/osconfig.h>

#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcistrmb.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmdata/dccodec.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmdata/dcpixseq.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmimage/diregist.h> /* colour images */
#include <dcmtk/dcmimgle/dcmimage.h>
#include <dcmtk/dcmjpeg/djdecode.h>
#include <dcmtk/dcmjpls/djdecode.h>
#include <dcmtk/oflog/oflog.h>

#include <pthread.h>
#include <string.h>

#include <new>

#include "data/decode_dicom.h"
#include "data/dicom_internal.h"
extern "C" {
#include "data/internal.h"
}

static pthread_once_t codecs_once = PTHREAD_ONCE_INIT;

/* DCMTK keeps its codecs and logger in process-wide tables: set them up once. */
static void register_codecs(void)
{
    OFLog::configure(OFLogger::OFF_LOG_LEVEL);
    DJDecoderRegistration::registerCodecs();
    DJLSDecoderRegistration::registerCodecs();
    DcmRLEDecoderRegistration::registerCodecs();
}

static OFCondition read_stream(DcmObject &obj, const uint8_t *data, size_t size)
{
    DcmInputBufferStream in;
    in.setBuffer(data, (offile_off_t)size);
    in.setEos();
    obj.transferInit();
    OFCondition cond = obj.read(in, EXS_Unknown, EGL_noChange, DCM_MaxReadLength);
    obj.transferEnd();
    return cond;
}

/* A Part 10 file, else a bare data set: one whose own bytes happen to read
 * "DICM" at offset 128 (a Station Name, say) is read again as a data set. */
static pn_status read_file_format(const uint8_t *data, size_t size, const char *name,
                                  DcmFileFormat &ff, pn_error *err)
{
    OFCondition cond = read_stream(ff, data, size);
    if (cond.bad() && pn_dicom_bare_dataset(data, size)) {
        ff.clear();
        OFCondition again = read_stream(*ff.getDataset(), data, size);
        cond = again.good() ? again : cond;
    }
    if (cond.bad())
        return pn_fail(err, PN_EFORMAT, "%s: corrupt or truncated DICOM: %s", name, cond.text());
    return PN_OK;
}

static Uint16 get_u16(DcmDataset *ds, const DcmTagKey &tag)
{
    Uint16 v = 0;
    return ds->findAndGetUint16(tag, v).good() ? v : 0;
}

static long get_frames(DcmDataset *ds)
{
    Sint32 v = 1;
    return ds->findAndGetSint32(DCM_NumberOfFrames, v).good() && v > 1 ? v : 1;
}

/* An ACR-NEMA 2.0 image: no Photometric Interpretation, one sample per
 * pixel (stated or absent). DCMTK reads it as MONOCHROME2. */
static int is_acr_nema(DcmDataset *ds)
{
    OFString photometric;
    ds->findAndGetOFString(DCM_PhotometricInterpretation, photometric);
    return photometric.empty() && get_u16(ds, DCM_SamplesPerPixel) <= 1;
}

static Uint16 samples_per_pixel(DcmDataset *ds)
{
    return is_acr_nema(ds) ? 1 : get_u16(ds, DCM_SamplesPerPixel);
}

/* Refuses, from the header alone, what cannot be an image or one too large. */
static pn_status check_header(DcmDataset *ds, const char *name, pn_error *err)
{
    if (!ds->tagExists(DCM_PixelData))
        return pn_fail(err, PN_EFORMAT, "%s: DICOM file has no pixel data (not an image)", name);
    Uint16 rows = get_u16(ds, DCM_Rows), cols = get_u16(ds, DCM_Columns);
    Uint16 samples = samples_per_pixel(ds), alloc = get_u16(ds, DCM_BitsAllocated);
    if (rows == 0 || cols == 0)
        return pn_fail(err, PN_EFORMAT, "%s: DICOM image has no Rows/Columns", name);
    if ((uint64_t)rows * cols > PN_IMAGE_MAX_PIXELS)
        return pn_fail(err, PN_ELIMIT, "%s: DICOM image is %ux%u, more than the %u pixel limit",
                       name, (unsigned)cols, (unsigned)rows, PN_IMAGE_MAX_PIXELS);
    if (samples != 1 && samples != 3)
        return pn_fail(err, PN_EFORMAT, "%s: DICOM Samples per Pixel %u (expected 1 or 3)", name,
                       (unsigned)samples);
    if (alloc < 1 || alloc > 32)
        return pn_fail(err, PN_EFORMAT, "%s: DICOM Bits Allocated %u is not supported", name,
                       (unsigned)alloc);
    return PN_OK;
}

/* check_header, then that the pixel data holds a whole first frame, before
 * DCMTK allocates. */
static pn_status check_geometry(DcmDataset *ds, const char *name, pn_error *err)
{
    pn_status st = check_header(ds, name, err);
    if (st)
        return st;
    Uint16 rows = get_u16(ds, DCM_Rows), cols = get_u16(ds, DCM_Columns);
    Uint16 samples = samples_per_pixel(ds), alloc = get_u16(ds, DCM_BitsAllocated);
    DcmXfer xfer(ds->getOriginalXfer());
    if (xfer.isEncapsulated())
        return PN_OK; /* the codec checks its own fragments */
    DcmElement *pixels = NULL;
    if (ds->findAndGetElement(DCM_PixelData, pixels).bad() || !pixels)
        return pn_fail(err, PN_EFORMAT, "%s: DICOM pixel data unreadable", name);
    OFString photometric;
    ds->findAndGetOFString(DCM_PhotometricInterpretation, photometric);
    if (photometric.find("_422") != OFString_npos)
        samples = 2; /* Y Y Cb Cr for every two pixels */
    uint64_t need = ((uint64_t)rows * cols * samples * alloc + 7) / 8; /* the first frame */
    if (pixels->getLength() < need)
        return pn_fail(err, PN_EFORMAT,
                       "%s: DICOM pixel data holds %lu bytes, Rows x Columns need %llu", name,
                       (unsigned long)pixels->getLength(), (unsigned long long)need);
    return PN_OK;
}

/* A transfer syntax named in the meta header that DCMTK does not know (e.g.
 * HTJ2K, Deflated Image Frame Compression): its pixel data cannot be read. */
static pn_status check_meta_transfer_syntax(DcmFileFormat &ff, const char *name, pn_error *err)
{
    OFString uid;
    if (ff.getMetaInfo()->findAndGetOFString(DCM_TransferSyntaxUID, uid).bad() || uid.empty() ||
        DcmXfer(uid.c_str()).getXfer() != EXS_Unknown)
        return PN_OK;
    int printable = uid.size() <= 64 && uid.find_first_not_of("0123456789.") == OFString_npos;
    return pn_fail(err, PN_EUNSUPPORTED, "%s: unsupported transfer syntax: %s", name,
                   printable ? uid.c_str() : "(malformed UID)");
}

static pn_status check_transfer_syntax(DcmDataset *ds, const char *name, pn_error *err)
{
    E_TransferSyntax xs = ds->getOriginalXfer();
    DcmXfer xfer(xs);
    if (xs == EXS_Unknown)
        return pn_fail(err, PN_EFORMAT, "%s: DICOM transfer syntax not recognised", name);
    if (xfer.isEncapsulated() && !DcmCodecList::canChangeCoding(xs, EXS_LittleEndianExplicit))
        return pn_fail(err, PN_EUNSUPPORTED, "%s: unsupported transfer syntax: %s (%s)", name,
                       xfer.getXferName(), xfer.getXferID());
    return PN_OK;
}

/* An RLE frame spread over several fragments (PS3.5 A.4.2 asks one per
 * frame; some writers split them): DCMTK 3.6.7's one-frame decoder reads
 * only the first fragment and fills the rest, its whole-image decoder reads
 * them all, so such files are decoded whole. */
static int rle_frames_span_fragments(DcmDataset *ds)
{
    E_TransferSyntax xs = ds->getOriginalXfer();
    DcmElement *e = NULL;
    DcmPixelSequence *seq = NULL;
    if (xs != EXS_RLELossless || ds->findAndGetElement(DCM_PixelData, e).bad() || e->ident() != EVR_PixelData ||
        OFstatic_cast(DcmPixelData *, e)->getEncapsulatedRepresentation(xs, NULL, seq).bad() || !seq)
        return 0;
    return (long)seq->card() - 1 > get_frames(ds); /* item 0 is the offset table */
}

static unsigned long image_flags(DcmDataset *ds)
{
    unsigned long flags = CIF_NeverAccessEmbeddedOverlays;
    if (!rle_frames_span_fragments(ds))
        flags |= CIF_UsePartialAccessToPixelData; /* decode the first frame only */
    if (is_acr_nema(ds))
        flags |= CIF_AcrNemaCompatibility;
    return flags;
}

/* Why DicomImage failed: for compressed pixel data, the codec's own message
 * (a corrupt stream, or a layout the codec does not decode such as 1-bit RLE). */
static pn_status render_error(DcmDataset *ds, const DicomImage &di, const char *name, pn_error *err)
{
    DcmXfer xfer(ds->getOriginalXfer());
    DcmElement *pixels = NULL;
    Uint32 size = 0, start = 0;
    OFString colour;
    OFCondition cond = EC_IllegalCall;
    if (xfer.isEncapsulated() && ds->findAndGetElement(DCM_PixelData, pixels).good() &&
        pixels->getUncompressedFrameSize(ds, size).good() && size <= 4 * PN_IMAGE_MAX_PIXELS) {
        uint8_t *frame = (uint8_t *)malloc((size_t)size + 1); /* [size + 1] one decoded frame */
        cond = frame ? pixels->getUncompressedFrame(ds, 0, start, frame, size + 1, colour) : EC_MemoryExhausted;
        free(frame);
    }
    if (cond.bad() && cond != EC_IllegalCall)
        return pn_fail(err, PN_EFORMAT, "%s: DICOM %s pixel data cannot be decoded (DCMTK: %s)", name,
                       xfer.getXferName(), cond.text());
    return pn_fail(err, PN_EFORMAT, "%s: DICOM image cannot be rendered: %s", name,
                   DicomImage::getString(di.getStatus()));
}

static pn_status render(DcmFileFormat &ff, const char *name, pn_image *out, pn_error *err)
{
    DcmDataset *ds = ff.getDataset();
    DicomImage di(&ff, ds->getOriginalXfer(), image_flags(ds), 0, 1);
    if (di.getStatus() != EIS_Normal)
        return render_error(ds, di, name, err);
    if (!pn_dicom_set_window(di, ds, out))
        return pn_fail(err, PN_EFORMAT, "%s: DICOM display window cannot be set", name);
    unsigned long w = di.getWidth(), h = di.getHeight();
    const uint8_t *rendered = (const uint8_t *)di.getOutputData(8, 0, 0);
    if (!rendered || w == 0 || h == 0 || (uint64_t)w * h > PN_IMAGE_MAX_PIXELS)
        return render_error(ds, di, name, err);
    size_t n = (size_t)w * h;
    out->pixels = (uint8_t *)malloc(n);
    if (!out->pixels)
        return pn_fail(err, PN_ENOMEM, "%s: out of memory for a %lux%lu DICOM image", name, w, h);
    if (di.isMonochrome())
        memcpy(out->pixels, rendered, n);
    else
        out->is_color = pn_rgb_to_gray(rendered, n, out->pixels); /* interleaved RGB */
    out->w = out->src_w = (int)w;
    out->h = out->src_h = (int)h;
    out->orientation = 1;
    return PN_OK;
}

/* The file parsed, with a transfer syntax (in the meta header and the data set) this build decodes. */
static pn_status read_checked(const uint8_t *data, size_t size, const char *name, DcmFileFormat &ff,
                              pn_error *err)
{
    pn_status st = read_file_format(data, size, name, ff, err);
    if (!st)
        st = check_meta_transfer_syntax(ff, name, err);
    if (!st)
        st = check_transfer_syntax(ff.getDataset(), name, err);
    return st;
}

static pn_status decode(const uint8_t *data, size_t size, const char *name, pn_image *out,
                        pn_error *err)
{
    DcmFileFormat ff;
    pn_status st = read_checked(data, size, name, ff, err);
    DcmDataset *ds = ff.getDataset();
    if (!st)
        st = check_geometry(ds, name, err);
    if (!st)
        st = render(ff, name, out, err);
    if (!st)
        pn_dicom_acquisition(ds, get_frames(ds), out);
    return st;
}

static pn_status probe(const uint8_t *data, size_t size, const char *name, pn_image_info *info,
                       pn_error *err)
{
    DcmFileFormat ff;
    pn_status st = read_checked(data, size, name, ff, err);
    DcmDataset *ds = ff.getDataset();
    if (!st)
        st = check_header(ds, name, err);
    if (!st) {
        info->format = "DICOM";
        info->w = get_u16(ds, DCM_Columns);
        info->h = get_u16(ds, DCM_Rows);
        info->bit_depth = get_u16(ds, DCM_BitsStored) ? get_u16(ds, DCM_BitsStored) : get_u16(ds, DCM_BitsAllocated);
        info->channels = get_u16(ds, DCM_SamplesPerPixel);
    }
    return st;
}

extern "C" pn_status pn_probe_dicom(const uint8_t *data, size_t size, const char *name, pn_image_info *info,
                                    pn_error *err)
{
    pthread_once(&codecs_once, register_codecs);
    try {
        return probe(data, size, name, info, err);
    } catch (const std::bad_alloc &) {
        return pn_fail(err, PN_ENOMEM, "%s: out of memory reading a DICOM header", name);
    } catch (...) {
        return pn_fail(err, PN_EINTERNAL, "%s: DICOM decoder failed", name);
    }
}

extern "C" pn_status pn_decode_dicom(const uint8_t *data, size_t size, const char *name,
                                     pn_image *out, pn_error *err)
{
    pthread_once(&codecs_once, register_codecs);
    pn_status st;
    try {
        st = decode(data, size, name, out, err);
    } catch (const std::bad_alloc &) {
        st = pn_fail(err, PN_ENOMEM, "%s: out of memory decoding DICOM", name);
    } catch (...) {
        st = pn_fail(err, PN_EINTERNAL, "%s: DICOM decoder failed", name);
    }
    if (st)
        pn_image_free(out);
    return st;
}
