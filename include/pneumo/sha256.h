/* SHA-256 (FIPS 180-4): content ids for model files and the audit log. */
#ifndef PNEUMO_SHA256_H
#define PNEUMO_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "pneumo/error.h"

#define PN_SHA256_DIGEST_SIZE 32
#define PN_SHA256_HEX_SIZE 65 /* 64 lowercase hex digits + NUL */

typedef struct pn_sha256_ctx {
    uint32_t state[8];
    uint64_t total_bytes;
    uint8_t block[64];
    size_t block_fill;
} pn_sha256_ctx;

/* Streaming use: init, then update any number of times, then final; init
 * again to reuse the context. */
void pn_sha256_init(pn_sha256_ctx *ctx);
void pn_sha256_update(pn_sha256_ctx *ctx, const void *data, size_t len);
void pn_sha256_final(pn_sha256_ctx *ctx, uint8_t digest[PN_SHA256_DIGEST_SIZE]);

/* One-shot digest of a buffer. */
void pn_sha256(const void *data, size_t len, uint8_t digest[PN_SHA256_DIGEST_SIZE]);
/* Digest of a whole file, read in chunks. */
pn_status pn_sha256_file(const char *path, uint8_t digest[PN_SHA256_DIGEST_SIZE], pn_error *err);
/* Lowercase hex of a digest, NUL-terminated. */
void pn_sha256_hex(const uint8_t digest[PN_SHA256_DIGEST_SIZE], char hex[PN_SHA256_HEX_SIZE]);

#endif
