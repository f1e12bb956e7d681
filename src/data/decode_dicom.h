/* The DICOM decoder (decode_dicom.cc, DCMTK behind a C function). */
#ifndef PNEUMO_DATA_DECODE_DICOM_H
#define PNEUMO_DATA_DECODE_DICOM_H

#include <stddef.h>
#include <stdint.h>

#include "pneumo/data.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Decodes a DICOM file held in memory (data: the complete file, name: for
 * messages) to one 8-bit gray plane, as documented in decode_dicom.cc and
 * docs/input-formats.md. Acquisition warnings go to out->notes.
 * PN_EFORMAT for corrupt, truncated or pixel-less files, PN_ELIMIT above
 * PN_IMAGE_MAX_PIXELS, PN_EUNSUPPORTED for transfer syntaxes without a codec. */
pn_status pn_decode_dicom(const uint8_t *data, size_t size, const char *name, pn_image *out,
                          pn_error *err);

/* Reads the header of a DICOM file held in memory: Rows, Columns, Bits
 * Stored and Samples per Pixel, with the decoder's refusals of the header
 * (no pixel data, zero or over-limit size, unsupported transfer syntax);
 * no pixel is rendered and the pixel data's length is not checked. */
pn_status pn_probe_dicom(const uint8_t *data, size_t size, const char *name, pn_image_info *info,
                         pn_error *err);

#ifdef __cplusplus
}
#endif

#endif
