/* What the DICOM decoder's C++ files share (decode_dicom.cc reads and checks
 * the file, dicom_display.cc chooses the display window, dicom_acquisition.cc
 * reads what the header says about the acquisition). C++ only: DCMTK types. */
#ifndef PNEUMO_DATA_DICOM_INTERNAL_H
#define PNEUMO_DATA_DICOM_INTERNAL_H

#include <dcmtk/config/osconfig.h>

#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmimgle/dcmimage.h>

#include "pneumo/data.h"

/* Adds a warning to img (dropped when img already holds PN_IMAGE_MAX_NOTES). */
void pn_dicom_note(pn_image *img, const char *text);

/* Sets the display window of a grayscale image as docs/input-formats.md
 * says: the first VOI LUT, else the first Window Center/Width, else the
 * min-max of the first frame's values without the pixel padding values; an
 * entry DCMTK cannot use (an empty LUT, a width below 1) passes to the next
 * source with a warning on img. Also warns when Presentation LUT Shape
 * contradicts the Photometric Interpretation. Returns 0 when no window
 * could be set. Colour images are left alone (returns 1). */
int pn_dicom_set_window(DicomImage &di, DcmDataset *ds, pn_image *img);

/* Warnings from Modality, BodyPartExamined, ViewPosition and the number of
 * frames, and img->not_chest when Modality or BodyPartExamined says the image
 * is not a chest radiograph. Reads no other attribute. */
void pn_dicom_acquisition(DcmDataset *ds, long frames, pn_image *img);

#endif
