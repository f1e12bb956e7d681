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
    char *migration;   /* what opening changed, or NULL */
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
    " client_info INTEGER NOT NULL DEFAULT 0,"
    " out_of_distribution INTEGER NOT NULL DEFAULT 0, ood_score REAL NULL);"
    "CREATE INDEX IF NOT EXISTS predictions_time ON predictions(time_utc);";

/* Schema 1 -> 2: client_info says whether a row holds the client's file name
 * or address; schema 1 kept them for every row. */
static const char *const migrate_1_to_2_sql =
    "ALTER TABLE predictions ADD COLUMN client_info INTEGER NOT NULL DEFAULT 0;"
    "UPDATE predictions SET client_info = 1 WHERE file_name IS NOT NULL OR client_addr IS NOT NULL;"
    "UPDATE schema_version SET version = 2;";

static const char *const insert_sql =
    "INSERT INTO predictions(time_utc, image_sha256, file_name, image_bytes, width, height,"
    " model_id, model_version, probability, threshold, label, latency_ms, client_addr, client_info,"
    " out_of_distribution, ood_score)"
    " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";

/* Schema 2 -> 3: the out-of-distribution gate's verdict and score (rows
 * before it: 0 and NULL, the gate did not exist). */
static const char *const migrate_2_to_3_sql =
    "ALTER TABLE predictions ADD COLUMN out_of_distribution INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE predictions ADD COLUMN ood_score REAL NULL;"
    "UPDATE schema_version SET version = 3;";

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

static int64_t count_rows(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int64_t n = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

/* Inside init_schema's transaction: brings a schema 1 database to 2 and
 * describes the change in a->migration. Returns 0 on an SQL failure. */
static int migrate(pn_audit *a, int *version)
{
    char msg[1024] = "";
    if (*version == 1) {
        if (sqlite3_exec(a->db, migrate_1_to_2_sql, NULL, NULL, NULL) != SQLITE_OK)
            return 0;
        int64_t rows = count_rows(a->db, "SELECT count(*) FROM predictions");
        int64_t with_client = count_rows(a->db, "SELECT count(*) FROM predictions WHERE client_info = 1");
        snprintf(msg, sizeof msg,
                 "%s: audit log schema 1 -> 2: added column client_info (1 = the row holds the client's file name or "
                 "address). %lld of the %lld existing rows hold them, as schema 1 recorded them by default; new rows "
                 "hold them only with --audit-client-info. `pneumo audit prune --older-than DAYS` removes old rows. ",
                 a->path, (long long)with_client, (long long)rows);
        *version = 2;
    }
    if (*version == 2) {
        if (sqlite3_exec(a->db, migrate_2_to_3_sql, NULL, NULL, NULL) != SQLITE_OK)
            return 0;
        size_t len = strlen(msg);
        snprintf(msg + len, sizeof msg - len,
                 "%s: audit log schema 2 -> 3: added columns out_of_distribution and ood_score (the "
                 "out-of-distribution gate's verdict; 0 and empty for earlier rows).", a->path);
        *version = 3;
    }
    if (msg[0] && !(a->migration = strdup(msg)))
        return 0;
    return 1;
}

/* The version row is written once, in the same transaction as the tables, so
 * a database is either fully initialised or untouched; a migration is one
 * transaction too. */
static pn_status init_schema(pn_audit *a, pn_error *err)
{
    sqlite3 *db = a->db;
    const char *path = a->path;
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return sql_fail(err, db, path, "cannot lock for initialisation");
    /* An existing predictions table keeps its columns: read the version first. */
    int ok = sqlite3_exec(db, "CREATE TABLE IF NOT EXISTS schema_version(version INTEGER NOT NULL)", NULL, NULL,
                          NULL) == SQLITE_OK;
    sqlite3_stmt *st = NULL;
    int version = -1;
    if (ok && sqlite3_prepare_v2(db, "SELECT max(version) FROM schema_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (ok && version > 0)
        ok = migrate(a, &version);
    if (ok)
        ok = sqlite3_exec(db, schema_sql, NULL, NULL, NULL) == SQLITE_OK;
    if (ok && version < 0) {
        char sql[96];
        snprintf(sql, sizeof sql, "INSERT INTO schema_version(version) VALUES(%d)", PN_AUDIT_SCHEMA_VERSION);
        ok = sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK;
        version = PN_AUDIT_SCHEMA_VERSION;
    }
    if (!ok) {
        pn_status st_fail = sql_fail(err, db, path, "cannot create or migrate the tables");
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
        st = init_schema(a, err);
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
    sqlite3_bind_int(st, 14, r->file_name || r->client_addr);
    sqlite3_bind_int(st, 15, r->out_of_distribution);
    if (r->ood_score >= 0)
        sqlite3_bind_double(st, 16, r->ood_score);
    else
        sqlite3_bind_null(st, 16);
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
    free(a->migration);
    free(a->path);
    free(a);
}

const char *pn_audit_migration(const pn_audit *a)
{
    return a->migration;
}

pn_status pn_audit_prune(const char *path, int days, int64_t *deleted, pn_error *err)
{
    if (days < 1)
        return pn_fail(err, PN_EINVAL, "--older-than %d: expected a number of days >= 1", days);
    time_t cutoff_s = time(NULL) - (time_t)days * 86400;
    struct tm tm;
    gmtime_r(&cutoff_s, &tm);
    char cutoff[40];
    strftime(cutoff, sizeof cutoff, "%Y-%m-%dT%H:%M:%S.000Z", &tm);
    pn_audit *a;
    pn_status st = pn_audit_open(path, &a, err);
    if (st)
        return st;
    sqlite3_stmt *del = NULL;
    pthread_mutex_lock(&a->lock);
    if (sqlite3_prepare_v2(a->db, "DELETE FROM predictions WHERE time_utc < ?", -1, &del, NULL) != SQLITE_OK) {
        st = sql_fail(err, a->db, path, "cannot prepare the deletion");
    } else {
        sqlite3_bind_text(del, 1, cutoff, -1, SQLITE_STATIC);
        if (sqlite3_step(del) != SQLITE_DONE)
            st = sql_fail(err, a->db, path, "deletion failed");
        else if (deleted)
            *deleted = sqlite3_changes64(a->db);
    }
    sqlite3_finalize(del);
    /* Deleted rows stay in free pages until the file is rebuilt. */
    if (!st && sqlite3_exec(a->db, "VACUUM", NULL, NULL, NULL) != SQLITE_OK)
        st = sql_fail(err, a->db, path, "rows deleted, but VACUUM failed (is a server holding it busy?)");
    pthread_mutex_unlock(&a->lock);
    pn_audit_close(a);
    return st;
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

/* RFC 4180; text that a spreadsheet would run as a formula is neutralised
 * as OWASP recommends: quoted, with a leading single quote. */
static void csv_field(FILE *out, const char *s, int is_text)
{
    if (!s)
        return;
    int formula = is_text && s[0] && strchr("=+-@\t\r", s[0]);
    if (!formula && !strpbrk(s, ",\"\r\n")) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    if (formula)
        fputc('\'', out);
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
            csv_field(out, (const char *)sqlite3_column_text(st, i), type == SQLITE_TEXT || type == SQLITE_BLOB);
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
    /* Read-only: an older schema is read as it is, not migrated; missing columns read as NULL. */
    int64_t version = count_rows(db, "SELECT max(version) FROM schema_version");
    char sql[640];
    snprintf(sql, sizeof sql,
             "SELECT id, time_utc, image_sha256, file_name, image_bytes, width, height, model_id, model_version,"
             " probability, threshold, label, latency_ms, client_addr, %s AS client_info,"
             " %s AS out_of_distribution, %s AS ood_score"
             " FROM predictions WHERE time_utc >= ? ORDER BY id", version < 2 ? "NULL" : "client_info",
             version < 3 ? "NULL" : "out_of_distribution", version < 3 ? "NULL" : "ood_score");
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
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
