/* Parser for the Darknet-like architecture text (docs/cfg.md): a list of
 * [sections], each a list of key = value pairs. */
#ifndef PNEUMO_NN_CFG_H
#define PNEUMO_NN_CFG_H

#include "pneumo/error.h"

#define PN_CFG_MAX_KEYS 24

typedef struct pn_cfg_kv {
    char *key, *value;
    int used; /* set when read, to report unknown keys */
} pn_cfg_kv;

typedef struct pn_cfg_section {
    char kind[32];
    int line;
    pn_cfg_kv kv[PN_CFG_MAX_KEYS];
    int n_kv;
} pn_cfg_section;

typedef struct pn_cfg {
    pn_cfg_section *sections;
    int n_sections;
} pn_cfg;

pn_status pn_cfg_parse(const char *text, pn_cfg *out, pn_error *err);
void pn_cfg_free(pn_cfg *cfg);

/* Lookups mark the key used; def is returned when the key is absent. */
const char *pn_cfg_str(const pn_cfg_section *s, const char *key, const char *def);
pn_status pn_cfg_int(const pn_cfg_section *s, const char *key, int def, int *out, pn_error *err);
pn_status pn_cfg_float(const pn_cfg_section *s, const char *key, float def, float *out,
                       pn_error *err);
/* Fails naming the first key that no lookup read (a typo in the cfg). */
pn_status pn_cfg_check_unused(const pn_cfg_section *s, pn_error *err);

#endif
