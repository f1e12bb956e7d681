/* Files of the web page, embedded at build time by cmake/embed_assets.cmake. */
#ifndef PNEUMO_SERVE_WEB_ASSETS_H
#define PNEUMO_SERVE_WEB_ASSETS_H
#include <stddef.h>

typedef struct pn_web_asset {
    const char *path; /* "/index.html" */
    const char *mime;
    const unsigned char *data;
    size_t size;
} pn_web_asset;

/* Terminated by an entry whose path is NULL. */
extern const pn_web_asset pn_web_assets[];
#endif
