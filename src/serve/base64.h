/* Standard base64 (RFC 4648, with padding) for PNGs embedded in JSON. */
#ifndef PNEUMO_SERVE_BASE64_H
#define PNEUMO_SERVE_BASE64_H

#include <stddef.h>

/* Returns a malloc'ed NUL-terminated string, or NULL when out of memory. */
char *serve_base64_encode(const unsigned char *data, size_t len);

#endif
