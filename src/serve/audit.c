/* SQLite audit log of served predictions (see include/pneumo/audit.h). */
#include "pneumo/audit.h"

#include <ctype.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct pn_audit {
    sqlite3 *db;
    sqlite3_stmt *insert;
    pthread_mutex_t lock;
    char *path;
};

/* Long enough to outlast a checkpoint or an export holding a read lock. */
#define AUDIT_BUSY_TIMEOUT_MS 10000

static const char *const schema_sql =
    "CREATE TABLE IF NOT EXISTS schema_version(version INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS predictions("
    " id INTEGER PRIMARY KEY,"
    " time_utc TEXT NOT NULL,"
    " image_sha256 TEXT NOT NULL,"
    " file_name TEXT NULL,"
    " image_bytes INTEGER NOT NULL,"
    " width INTEGER, height INTEGER,"
    " model_id TEXT, model_version TEXT,"
    " probability REAL NOT NULL, threshold REAL NOT NULL, label TEXT NOT NULL,"
    " latency_ms REAL, client_addr TEXT,"
    " out_of_distribution INTEGER NOT NULL DEFAULT 0, ood_score REAL NULL);"
    "CREATE INDEX IF NOT EXISTS predictions_time ON predictions(time_utc);";

static const char *const insert_sql =
    "INSERT INTO predictions(time_utc, image_sha256, file_name, image_bytes, width, height,"
    " model_id, model_version, probability, threshold, label, latency_ms, client_addr,"
    " out_of_distribution, ood_score)"
    " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";

/* Version 1 logs gain the out-of-distribution gate's columns (rows before it: 0 and NULL). */
static const char *const migrate_v1_sql =
    "ALTER TABLE predictions ADD COLUMN out_of_distribution INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE predictions ADD COLUMN ood_score REAL NULL;"
    "UPDATE schema_version SET version = 2;";

void pn_audit_time_now(char *buf, size_t size)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, size, "%s.%03dZ", base, (int)(ts.tv_nsec / 1000000));
}

static pn_status sql_fail(pn_error *err, sqlite3 *db, const char *path, const char *what)
{
    return pn_fail(err, PN_EIO, "%s: audit log %s: %s", path, what, db ? sqlite3_errmsg(db) : "out of memory");
}

/* The version row is written once, in the same transaction as the tables, so
 * a database is either fully initialised or untouched. */
static pn_status init_schema(sqlite3 *db, const char *path, pn_error *err)
{
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return sql_fail(err, db, path, "cannot lock for initialisation");
    int ok = sqlite3_exec(db, schema_sql, NULL, NULL, NULL) == SQLITE_OK;
    sqlite3_stmt *st = NULL;
    int version = -1;
    if (ok && sqlite3_prepare_v2(db, "SELECT max(version) FROM schema_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (ok && version < 0) {
        char sql[96];
        snprintf(sql, sizeof sql, "INSERT INTO schema_version(version) VALUES(%d)", PN_AUDIT_SCHEMA_VERSION);
        ok = sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK;
        version = PN_AUDIT_SCHEMA_VERSION;
    }
    if (ok && version == 1) {
        ok = sqlite3_exec(db, migrate_v1_sql, NULL, NULL, NULL) == SQLITE_OK;
        version = 2;
    }
    if (!ok) {
        pn_status st_fail = sql_fail(err, db, path, "cannot create tables");
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return st_fail;
    }
    if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        return sql_fail(err, db, path, "cannot commit the schema");
    if (version != PN_AUDIT_SCHEMA_VERSION)
        return pn_fail(err, PN_EUNSUPPORTED, "%s: audit log schema version %d, this build writes %d", path,
                       version, PN_AUDIT_SCHEMA_VERSION);
    return PN_OK;
}

static pn_status configure(sqlite3 *db, const char *path, pn_error *err)
{
    sqlite3_busy_timeout(db, AUDIT_BUSY_TIMEOUT_MS);
    /* WAL lets exports read while the server writes; synchronous=FULL makes a
     * row durable (not only crash-safe for the process) once logged. */
    sqlite3_stmt *st = NULL;
    int wal = 0;
    if (sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        wal = !strcmp((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    if (!wal)
        return sql_fail(err, db, path, "cannot enable WAL mode");
    if (sqlite3_exec(db, "PRAGMA synchronous=FULL", NULL, NULL, NULL) != SQLITE_OK)
        return sql_fail(err, db, path, "cannot set synchronous mode");
    return PN_OK;
}

pn_status pn_audit_open(const char *path, pn_audit **out, pn_error *err)
{
    *out = NULL;
    pn_audit *a = calloc(1, sizeof *a);
    if (!a || !(a->path = strdup(path))) {
        free(a);
        return pn_fail(err, PN_ENOMEM, "%s: out of memory opening the audit log", path);
    }
    pthread_mutex_init(&a->lock, NULL);
    pn_status st = PN_OK;
    if (sqlite3_open_v2(path, &a->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
        st = sql_fail(err, a->db, path, "cannot open");
    if (!st)
        st = configure(a->db, path, err);
    if (!st)
        st = init_schema(a->db, path, err);
    if (!st && sqlite3_prepare_v2(a->db, insert_sql, -1, &a->insert, NULL) != SQLITE_OK)
        st = sql_fail(err, a->db, path, "cannot prepare the insert");
    if (st) {
        pn_audit_close(a);
        return st;
    }
    *out = a;
    return PN_OK;
}

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

pn_status pn_audit_log(pn_audit *a, const pn_audit_record *r, int64_t *id, pn_error *err)
{
    char now[40];
    pn_audit_time_now(now, sizeof now);
    pthread_mutex_lock(&a->lock);
    sqlite3_stmt *st = a->insert;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    bind_text_or_null(st, 1, now);
    bind_text_or_null(st, 2, r->image_sha256);
    bind_text_or_null(st, 3, r->file_name);
    sqlite3_bind_int64(st, 4, r->image_bytes);
    sqlite3_bind_int(st, 5, r->width);
    sqlite3_bind_int(st, 6, r->height);
    bind_text_or_null(st, 7, r->model_id);
    bind_text_or_null(st, 8, r->model_version);
    sqlite3_bind_double(st, 9, r->probability);
    sqlite3_bind_double(st, 10, r->threshold);
    bind_text_or_null(st, 11, r->label);
    sqlite3_bind_double(st, 12, r->latency_ms);
    bind_text_or_null(st, 13, r->client_addr);
    sqlite3_bind_int(st, 14, r->out_of_distribution);
    if (r->ood_score >= 0)
        sqlite3_bind_double(st, 15, r->ood_score);
    else
        sqlite3_bind_null(st, 15);
    pn_status result = PN_OK;
    if (sqlite3_step(st) != SQLITE_DONE)
        result = sql_fail(err, a->db, a->path, "insert failed");
    else if (id)
        *id = sqlite3_last_insert_rowid(a->db);
    sqlite3_reset(st);
    pthread_mutex_unlock(&a->lock);
    return result;
}

void pn_audit_close(pn_audit *a)
{
    if (!a)
        return;
    sqlite3_finalize(a->insert);
    if (a->db) {
        /* Fold the WAL into the main file so the log is one self-contained file at rest. */
        sqlite3_wal_checkpoint_v2(a->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
        sqlite3_close(a->db);
    }
    pthread_mutex_destroy(&a->lock);
    free(a->path);
    free(a);
}

/* ------------------------------------------------------------------ export */

/* Accepts YYYY-MM-DD optionally followed by THH:MM[:SS[.fff]] and an optional
 * Z, and returns it without the Z: rows compare as strings, and a prefix of
 * the stored format sorts before every row of that date or minute. */
static int normalize_since(const char *s, char *out, size_t size)
{
    static const char *const pattern = "dddd-dd-ddTdd:dd:dd.ddd";
    size_t n = strlen(s);
    if (n && s[n - 1] == 'Z')
        n--;
    if (n >= size || n > strlen(pattern))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char p = pattern[i];
        if (p == 'd' ? !isdigit((unsigned char)s[i]) : s[i] != p && !(p == 'T' && s[i] == ' '))
            return 0;
    }
    /* Complete fields only: a date, a minute, a second, or milliseconds. */
    if (n != 10 && n != 16 && n != 19 && n != 23)
        return 0;
    memcpy(out, s, n);
    out[n] = '\0';
    if (n > 10)
        out[10] = 'T';
    return 1;
}

static void csv_field(FILE *out, const char *s)
{
    if (!s)
        return;
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

static void csv_row(FILE *out, sqlite3_stmt *st)
{
    int n = sqlite3_column_count(st);
    for (int i = 0; i < n; i++) {
        if (i)
            fputc(',', out);
        int type = sqlite3_column_type(st, i);
        if (type == SQLITE_FLOAT) {
            fprintf(out, "%.9g", sqlite3_column_double(st, i));
        } else if (type != SQLITE_NULL) {
            csv_field(out, (const char *)sqlite3_column_text(st, i));
        }
    }
    fputs("\r\n", out);
}

pn_status pn_audit_export_csv(const char *path, const char *since, FILE *out, pn_error *err)
{
    char since_norm[32] = "";
    if (since && !normalize_since(since, since_norm, sizeof since_norm))
        return pn_fail(err, PN_EINVAL, "--since '%s': expected YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS[.mmm]][Z]", since);
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        pn_status st = sql_fail(err, db, path, "cannot open");
        sqlite3_close(db);
        return st;
    }
    sqlite3_busy_timeout(db, AUDIT_BUSY_TIMEOUT_MS);
    sqlite3_stmt *st = NULL;
    pn_status result = PN_OK;
    if (sqlite3_prepare_v2(db,
                           "SELECT id, time_utc, image_sha256, file_name, image_bytes, width, height, model_id,"
                           " model_version, probability, threshold, label, latency_ms, client_addr,"
                           " out_of_distribution, ood_score FROM predictions WHERE time_utc >= ? ORDER BY id",
                           -1, &st, NULL) != SQLITE_OK) {
        result = sql_fail(err, db, path, "cannot read predictions");
    } else {
        sqlite3_bind_text(st, 1, since_norm, -1, SQLITE_STATIC);
        for (int i = 0; i < sqlite3_column_count(st); i++) {
            fputs(i ? "," : "", out);
            fputs(sqlite3_column_name(st, i), out);
        }
        fputs("\r\n", out);
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
            csv_row(out, st);
        if (rc != SQLITE_DONE)
            result = sql_fail(err, db, path, "read failed");
        else if (ferror(out))
            result = pn_fail(err, PN_EIO, "%s: writing the CSV export failed", path);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return result;
}
