/* Audit log of served predictions: one SQLite row per successful prediction.
 * A row holds the SHA-256, size and dimensions of the upload, the result, the
 * model id and version, threshold, latency and time; the client's file name
 * and address only when the caller passes them (pneumo serve does so only
 * with --audit-client-info), and then the row's client_info column is 1.
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

#define PN_AUDIT_SCHEMA_VERSION 3

typedef struct pn_audit pn_audit;

typedef struct pn_audit_record {
    const char *image_sha256;  /* 64 lowercase hex digits */
    const char *file_name;     /* as the client named the upload; NULL when unknown or not kept */
    int64_t image_bytes;
    int width, height;
    const char *model_id, *model_version;
    double probability, threshold;
    const char *label;         /* "PNEUMONIA", "NORMAL" or "OUT-OF-DISTRIBUTION" */
    double latency_ms;
    const char *client_addr;   /* NULL when not kept */
    int out_of_distribution;   /* the gate refused the image (the probability is kept for the audit) */
    double ood_score;          /* the gate's score, < 0 when the model has no gate statistics */
} pn_audit_record;

/* Opens (creating if needed) the audit database at path, migrating an older
 * schema in one transaction (see pn_audit_migration). */
pn_status pn_audit_open(const char *path, pn_audit **out, pn_error *err);
/* What opening changed in an existing database, for the operator to read;
 * NULL when nothing was migrated. Valid until pn_audit_close. */
const char *pn_audit_migration(const pn_audit *a);
/* Deletes the rows older than days (by time_utc), then VACUUMs so the
 * deleted data leaves the file. *deleted (may be NULL) receives the count. */
pn_status pn_audit_prune(const char *path, int days, int64_t *deleted, pn_error *err);
/* Appends one row stamped with the current UTC time (ISO-8601, milliseconds)
 * and commits it before returning; *id (may be NULL) receives its row id. */
pn_status pn_audit_log(pn_audit *a, const pn_audit_record *r, int64_t *id, pn_error *err);
/* Checkpoints the WAL and closes. NULL is ignored. */
void pn_audit_close(pn_audit *a);

/* Writes every row with time_utc >= since (NULL = all; a date "2024-05-01" or
 * a time "2024-05-01T12:00:00[.000][Z]") as RFC 4180 CSV with a header line,
 * oldest first. A text cell starting with = + - @ tab or CR is written
 * quoted with a leading ' so spreadsheets do not run it as a formula
 * (OWASP CSV injection). The database is opened read-only; a schema 1
 * database is exported as it is, with an empty client_info column. */
pn_status pn_audit_export_csv(const char *path, const char *since, FILE *out, pn_error *err);

/* Formats the current UTC time as "2024-05-01T12:34:56.789Z" (buf >= 25 bytes). */
void pn_audit_time_now(char *buf, size_t size);

#endif
