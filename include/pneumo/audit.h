/* Audit log of served predictions: one SQLite row per successful prediction.
 *
 * The database is created on first use (WAL mode, with a schema_version
 * table). A pn_audit is safe to share between threads: writes go through one
 * connection guarded by a mutex, with prepared statements and a busy timeout
 * so that readers (pneumo audit export) never make a write fail at once. */
#ifndef PNEUMO_AUDIT_H
#define PNEUMO_AUDIT_H

#include <stdint.h>
#include <stdio.h>

#include "pneumo/error.h"

#define PN_AUDIT_SCHEMA_VERSION 2

typedef struct pn_audit pn_audit;

typedef struct pn_audit_record {
    const char *image_sha256;  /* 64 lowercase hex digits */
    const char *file_name;     /* as the client named the upload; NULL when unknown */
    int64_t image_bytes;
    int width, height;
    const char *model_id, *model_version;
    double probability, threshold;
    const char *label;         /* "PNEUMONIA", "NORMAL" or "OUT-OF-DISTRIBUTION" */
    double latency_ms;
    const char *client_addr;
    int out_of_distribution;   /* the gate refused the image (the probability is kept for the audit) */
    double ood_score;          /* the gate's score, < 0 when the model has no gate statistics */
} pn_audit_record;

/* Opens (creating if needed) the audit database at path. */
pn_status pn_audit_open(const char *path, pn_audit **out, pn_error *err);
/* Appends one row stamped with the current UTC time (ISO-8601, milliseconds)
 * and commits it before returning; *id (may be NULL) receives its row id. */
pn_status pn_audit_log(pn_audit *a, const pn_audit_record *r, int64_t *id, pn_error *err);
/* Checkpoints the WAL and closes. NULL is ignored. */
void pn_audit_close(pn_audit *a);

/* Writes every row with time_utc >= since (NULL = all; a date "2024-05-01" or
 * a time "2024-05-01T12:00:00[.000][Z]") as RFC 4180 CSV with a header line,
 * oldest first. The database is opened read-only. */
pn_status pn_audit_export_csv(const char *path, const char *since, FILE *out, pn_error *err);

/* Formats the current UTC time as "2024-05-01T12:34:56.789Z" (buf >= 25 bytes). */
void pn_audit_time_now(char *buf, size_t size);

#endif
