/* What a DICOM header says about the acquisition: warnings shown with every
 * prediction, and the reason the out-of-distribution gate refuses a file
 * whose header says it is not a chest radiograph (docs/ood.md).
 *
 * Only Modality, BodyPartExamined and ViewPosition are read (never a patient
 * attribute); the values that reach a message are reduced to the characters
 * of a DICOM code string (A-Z, 0-9, space, underscore). */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <dcmtk/dcmdata/dcdeftag.h>

#include "data/dicom_internal.h"

typedef struct named_code {
    const char *code, *name;
} named_code;

/* Modalities (PS3.3 C.7.3.1.1.1 defined terms, retired ones included) whose
 * images are not projection radiographs of the chest. CR, DX, DR, RG (the
 * radiographs), OT and SC (anything, e.g. a digitised film) are not here. */
static const named_code other_modalities[] = {
    {"CT", "computed tomography"}, {"MR", "magnetic resonance"}, {"US", "ultrasound"},
    {"NM", "nuclear medicine"}, {"PT", "PET"}, {"ST", "SPECT"}, {"MG", "mammography"},
    {"XA", "X-ray angiography"}, {"RF", "fluoroscopy"}, {"DF", "fluoroscopy"}, {"CF", "cinefluorography"},
    {"VF", "videofluorography"}, {"DS", "subtraction angiography"}, {"IO", "intra-oral radiograph"},
    {"PX", "panoramic dental radiograph"}, {"BMD", "bone densitometry"}, {"RTIMAGE", "radiotherapy image"},
    {"RTDOSE", "radiotherapy dose"}, {"SEG", "segmentation"}, {"ES", "endoscopy"}, {"LP", "laparoscopy"},
    {"CS", "cystoscopy"}, {"CP", "colposcopy"}, {"AS", "angioscopy"}, {"XC", "photograph"},
    {"OP", "ophthalmic photograph"}, {"OPT", "ophthalmic tomography"}, {"OCT", "optical coherence tomography"},
    {"IVOCT", "intravascular OCT"}, {"IVUS", "intravascular ultrasound"}, {"EC", "echocardiography"},
    {"DD", "duplex Doppler"}, {"CD", "colour flow Doppler"}, {"FA", "fluorescein angiography"},
    {"FS", "fundoscopy"}, {"GM", "microscopy"}, {"SM", "slide microscopy"}, {"DM", "microscopy"},
    {"TG", "thermography"}, {"DG", "diaphanography"}, {"LS", "laser surface scan"}, {"MA", "MR angiography"},
    {"MS", "MR spectroscopy"}, {"BI", "biomagnetic imaging"}, {"OSS", "optical surface scan"},
    {"DOC", "document"}, {"SR", "structured report"}, {"PR", "presentation state"}, {"KO", "key objects"},
    {"ECG", "electrocardiogram"}, {"HD", "haemodynamic waveform"}, {"EPS", "electrophysiology"},
    {NULL, NULL}};

/* Body parts other than the chest: PS3.16 Annex L defined terms and common
 * spellings, compared with the words of BodyPartExamined. */
static const char *const other_body_parts[] = {
    "ABDOMEN", "ANKLE", "ARM", "BRAIN", "BREAST", "CALCANEUS", "CLAVICLE", "COCCYX", "CSPINE",
    "ELBOW", "EXTREMITY", "FACE", "FEMUR", "FIBULA", "FINGER", "FOOT", "FOREARM", "HAND", "HEAD",
    "HEEL", "HIP", "HUMERUS", "JAW", "KIDNEY", "KNEE", "LEG", "LSPINE", "MANDIBLE", "MAXILLA",
    "NECK", "NOSE", "ORBIT", "PATELLA", "PELVIS", "RADIUS", "SACRUM", "SCAPULA", "SELLA",
    "SHOULDER", "SINUS", "SKULL", "SPINE", "SSPINE", "TIBIA", "TMJ", "TOE", "TSPINE", "ULNA",
    "WHOLEBODY", "WRIST", "ZYGOMA", "BLADDER", "PROSTATE", "UTERUS", "LIVER", "EYE", "EAR",
    "TEETH", "TOOTH", "DENTAL", "FOREFOOT", "HINDFOOT", "THUMB", "LOWEREXTREMITY",
    "UPPEREXTREMITY", "LUMBAR", "CERVICAL", NULL};

/* Words naming the chest in BodyPartExamined (found anywhere in the value). */
static const char *const chest_words[] = {"CHEST", "THORAX", "TORAX", "TORACE", "LUNG", NULL};

static const char *const radiographs[] = {"CR", "DX", "DR", "RG", NULL};
static const char *const frontal_views[] = {"PA", "AP", "POSTERO-ANTERIOR", "ANTERO-POSTERIOR", NULL};

void pn_dicom_note(pn_image *img, const char *text)
{
    if (img->n_notes < PN_IMAGE_MAX_NOTES)
        snprintf(img->notes[img->n_notes++], sizeof img->notes[0], "%s", text);
}

static int is_one_of(const char *value, const char *const *list)
{
    for (; *list; list++)
        if (!strcasecmp(value, *list))
            return 1;
    return 0;
}

/* value reduced to at most 16 upper-case code-string characters. */
static void code_string(const OFString &value, char out[17])
{
    size_t n = 0;
    for (size_t i = 0; i < value.size() && n < 16; i++) {
        int c = toupper((unsigned char)value[i]);
        if (isalnum(c) || c == ' ' || c == '_')
            out[n++] = (char)c;
    }
    out[n] = '\0';
}

static int names_chest(const char *body)
{
    for (const char *const *w = chest_words; *w; w++)
        if (strstr(body, *w))
            return 1;
    return 0;
}

/* Whether a word of body (split at anything but a letter), or all its letters
 * run together ("WHOLE BODY", "L-SPINE"), name another body part. */
static int names_other_part(const char *body)
{
    char word[17], squeezed[17];
    size_t n = 0, m = 0;
    for (const char *p = body;; p++) {
        if (isalpha((unsigned char)*p)) {
            word[n++] = *p;
            squeezed[m++] = *p;
            continue;
        }
        word[n] = '\0';
        if (n && is_one_of(word, other_body_parts))
            return 1;
        n = 0;
        if (!*p)
            break;
    }
    squeezed[m] = '\0';
    return m && is_one_of(squeezed, other_body_parts);
}

static const char *modality_name(const char *modality)
{
    for (const named_code *m = other_modalities; m->code; m++)
        if (!strcmp(modality, m->code))
            return m->name;
    return NULL;
}

void pn_dicom_acquisition(DcmDataset *ds, long frames, pn_image *img)
{
    OFString modality_v, body_v, view_v;
    ds->findAndGetOFString(DCM_Modality, modality_v);
    ds->findAndGetOFString(DCM_BodyPartExamined, body_v);
    ds->findAndGetOFString(DCM_ViewPosition, view_v);
    char modality[17], body[17], view[17], text[160];
    code_string(modality_v, modality);
    code_string(body_v, body);
    code_string(view_v, view);
    if (!is_one_of(modality, radiographs)) {
        snprintf(text, sizeof text, "DICOM Modality is %s, not CR/DX/DR: this may not be a radiograph",
                 modality[0] ? modality : "missing");
        pn_dicom_note(img, text);
    }
    int other_part = body[0] && !names_chest(body) && names_other_part(body);
    if ((body[0] && !names_chest(body)) || (view[0] && !is_one_of(view, frontal_views)))
        pn_dicom_note(img, "DICOM BodyPartExamined/ViewPosition say this is not a frontal chest view");
    if (frames > 1) {
        snprintf(text, sizeof text, "multi-frame DICOM (%ld frames): only the first frame was used", frames);
        pn_dicom_note(img, text);
    }
    const char *name = modality_name(modality);
    if (name)
        snprintf(img->not_chest, sizeof img->not_chest, "DICOM Modality %s (%s) is not a chest radiograph",
                 modality, name);
    else if (other_part)
        snprintf(img->not_chest, sizeof img->not_chest, "DICOM BodyPartExamined %s is not the chest", body);
}
