/* The medical disclaimer, one string for the CLI, the API, the model card and
 * the reports. */
#ifndef PNEUMO_DISCLAIMER_H
#define PNEUMO_DISCLAIMER_H

#define PN_DISCLAIMER                                                                              \
    "Research and screening-assist tool, not a diagnostic device: every result must be reviewed " \
    "by a qualified clinician."

#endif
