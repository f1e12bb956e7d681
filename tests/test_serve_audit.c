/* Audit log: schema, rows, reopening, and the CSV export (RFC 4180 quoting, --since). */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pneumo/audit.h"
#include "testutil.h"

static char *db_path(const char *name)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", pn_test_tmpdir(), name);
    unlink(path);
    return path;
}

static pn_audit_record record(const char *file_name, double p)
{
    return (pn_audit_record){.image_sha256 = "ab12", .file_name = file_name, .image_bytes = 1234,
                             .width = 224, .height = 200, .model_id = "m1", .model_version = "v1",
                             .probability = p, .threshold = 0.5, .label = p >= 0.5 ? "PNEUMONIA" : "NORMAL",
                             .latency_ms = 12.5, .client_addr = "127.0.0.1", .ood_score = -1};
}

static char *export_csv(const char *path, const char *since, pn_status *st, pn_error *err)
{
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    *st = pn_audit_export_csv(path, since, f, err);
    fclose(f);
    return text;
}

static void test_rows_and_schema(void **state)
{
    const char *path = db_path("rows.db");
    pn_audit *a;
    pn_error err = {0};
    assert_int_equal(pn_audit_open(path, &a, &err), PN_OK);
    int64_t id1 = 0, id2 = 0;
    pn_audit_record r = record("x.jpeg", 0.9);
    assert_int_equal(pn_audit_log(a, &r, &id1, &err), PN_OK);
    r = record(NULL, 0.1);
    assert_int_equal(pn_audit_log(a, &r, &id2, &err), PN_OK);
    assert_true(id2 > id1 && id1 > 0);
    pn_audit_close(a);
    /* Reopening keeps the rows and the single schema_version row. */
    assert_int_equal(pn_audit_open(path, &a, &err), PN_OK);
    int64_t id3 = 0;
    assert_int_equal(pn_audit_log(a, &r, &id3, &err), PN_OK);
    assert_true(id3 > id2);
    pn_audit_close(a);

    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT (SELECT count(*) FROM predictions), (SELECT group_concat(version)"
                                            " FROM schema_version), (SELECT file_name IS NULL FROM predictions"
                                            " WHERE id = ?), (SELECT journal_mode FROM pragma_journal_mode)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(st, 1, id2);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 3);
    assert_string_equal((const char *)sqlite3_column_text(st, 1), "3");
    assert_int_equal(sqlite3_column_int(st, 2), 1);
    assert_string_equal((const char *)sqlite3_column_text(st, 3), "wal");
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void test_csv_quoting(void **state)
{
    const char *path = db_path("csv.db");
    pn_audit *a;
    pn_error err = {0};
    assert_int_equal(pn_audit_open(path, &a, &err), PN_OK);
    pn_audit_record r = record("scan, \"left\"\nview.png", 0.75);
    assert_int_equal(pn_audit_log(a, &r, NULL, &err), PN_OK);
    r = record(NULL, 0.25);
    assert_int_equal(pn_audit_log(a, &r, NULL, &err), PN_OK);
    pn_audit_close(a);

    pn_status st;
    char *csv = export_csv(path, NULL, &st, &err);
    assert_int_equal(st, PN_OK);
    const char *header = "id,time_utc,image_sha256,file_name,image_bytes,width,height,model_id,model_version,"
                         "probability,threshold,label,latency_ms,client_addr,client_info,out_of_distribution,ood_score\r\n";
    assert_memory_equal(csv, header, strlen(header));
    const char *row1 = csv + strlen(header);
    assert_memory_equal(row1, "1,", 2);
    /* Quoted field, doubled quotes, embedded newline kept. */
    assert_non_null(strstr(row1, ",ab12,\"scan, \"\"left\"\"\nview.png\",1234,224,200,m1,v1,0.75,0.5,PNEUMONIA,"
                                 "12.5,127.0.0.1,1,0,\r\n2,"));
    /* NULL file name is an empty field. */
    assert_non_null(strstr(row1, ",ab12,,1234,224,200,m1,v1,0.25,0.5,NORMAL,12.5,127.0.0.1,1,0,\r\n"));
    free(csv);
}

static void test_since_filter(void **state)
{
    const char *path = db_path("since.db");
    pn_audit *a;
    pn_error err = {0};
    assert_int_equal(pn_audit_open(path, &a, &err), PN_OK);
    pn_audit_record r = record("old.jpeg", 0.6);
    assert_int_equal(pn_audit_log(a, &r, NULL, &err), PN_OK);
    pn_audit_close(a);
    /* Back-date the first row: exports compare stored times as text. */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "UPDATE predictions SET time_utc = '2020-01-02T03:04:05.678Z'", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(pn_audit_open(path, &a, &err), PN_OK);
    r = record("new.jpeg", 0.6);
    assert_int_equal(pn_audit_log(a, &r, NULL, &err), PN_OK);
    pn_audit_close(a);

    static const struct {
        const char *since;
        int has_old, has_new;
    } cases[] = {{"2020-01-02", 1, 1},          {"2020-01-02T03:04", 1, 1}, {"2020-01-02T03:04:05.678Z", 1, 1},
                 {"2020-01-02T03:04:05.679", 0, 1}, {"2020-01-03", 0, 1},     {"2999-01-01T00:00:00Z", 0, 0}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        pn_status st;
        char *csv = export_csv(path, cases[i].since, &st, &err);
        assert_int_equal(st, PN_OK);
        assert_int_equal(strstr(csv, "old.jpeg") != NULL, cases[i].has_old);
        assert_int_equal(strstr(csv, "new.jpeg") != NULL, cases[i].has_new);
        free(csv);
    }
    static const char *const bad[] = {"yesterday", "2020-1-2", "2020-01-02T3", "2020-01-02T03:04:05.6789", ""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        pn_status st;
        free(export_csv(path, bad[i], &st, &err));
        assert_int_equal(st, PN_EINVAL);
        assert_non_null(strstr(err.msg, "--since"));
    }
}

/* A version 1 log (before the out-of-distribution gate) gains the gate's
 * columns on open, its rows keep their values, and new rows record the gate. */
static void test_migrate_v1(void **state)
{
    (void)state;
    const char *path = db_path("v1-gate.db");
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE schema_version(version INTEGER NOT NULL);"
                                  "INSERT INTO schema_version VALUES(1);"
                                  "CREATE TABLE predictions(id INTEGER PRIMARY KEY, time_utc TEXT NOT NULL,"
                                  " image_sha256 TEXT NOT NULL, file_name TEXT NULL, image_bytes INTEGER NOT NULL,"
                                  " width INTEGER, height INTEGER, model_id TEXT, model_version TEXT,"
                                  " probability REAL NOT NULL, threshold REAL NOT NULL, label TEXT NOT NULL,"
                                  " latency_ms REAL, client_addr TEXT);"
                                  "INSERT INTO predictions VALUES(1,'2026-01-01T00:00:00.000Z','aa',NULL,1,1,1,"
                                  "'m','v',0.5,0.5,'PNEUMONIA',1,'x');",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    pn_audit *a;
    pn_error err = {0};
    assert_int_equal(pn_audit_open(path, &a, &err), PN_OK);
    pn_audit_record r = record("x.png", 0.9);
    r.label = "OUT-OF-DISTRIBUTION";
    r.out_of_distribution = 1;
    r.ood_score = 3.5;
    assert_int_equal(pn_audit_log(a, &r, NULL, &err), PN_OK);
    pn_audit_close(a);
    pn_status st;
    char *csv = export_csv(path, NULL, &st, &err);
    assert_int_equal(st, PN_OK);
    assert_non_null(strstr(csv, ",PNEUMONIA,1,x,1,0,\r\n2,"));
    assert_non_null(strstr(csv, ",OUT-OF-DISTRIBUTION,12.5,127.0.0.1,1,1,3.5\r\n"));
    free(csv);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT group_concat(version) FROM schema_version", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(q, 0), "3");
    sqlite3_finalize(q);
    sqlite3_close(db);
}

static void test_missing_database(void **state)
{
    pn_status st;
    pn_error err = {0};
    free(export_csv(db_path("absent.db"), NULL, &st, &err));
    assert_int_equal(st, PN_EIO);
    assert_non_null(strstr(err.msg, "absent.db"));
    pn_audit *a = NULL;
    assert_int_not_equal(pn_audit_open("/nonexistent-dir/x.db", &a, &err), PN_OK);
    assert_null(a);
    assert_non_null(strstr(err.msg, "/nonexistent-dir/x.db"));
}

/* Each formula-starting character gets the OWASP treatment; others do not. */
static void test_csv_formula_injection(void **state)
{
    const char *path = db_path("inject.db");
    static const struct {
        const char *name, *cell;
    } cases[] = {
        {"=HYPERLINK(\"http://evil.example\",\"x\")", "\"'=HYPERLINK(\"\"http://evil.example\"\",\"\"x\"\")\""},
        {"+1+cmd|' /C calc'!A0", "\"'+1+cmd|' /C calc'!A0\""},
        {"-2+3", "\"'-2+3\""},
        {"@SUM(1+1)", "\"'@SUM(1+1)\""},
        {"\tTAB", "\"'\tTAB\""},
        {"\rCR", "\"'\rCR\""},
        {"plain.jpeg", "plain.jpeg"},
        {"a=b.jpeg", "a=b.jpeg"},
        {"'quoted.jpeg", "'quoted.jpeg"},
    };
    enum { N = sizeof cases / sizeof *cases };
    pn_audit *a;
    pn_error err = {0};
    assert_int_equal(pn_audit_open(path, &a, &err), PN_OK);
    for (int i = 0; i < N; i++) {
        pn_audit_record r = record(cases[i].name, 0.5);
        assert_int_equal(pn_audit_log(a, &r, NULL, &err), PN_OK);
    }
    pn_audit_close(a);
    pn_status st;
    char *csv = export_csv(path, NULL, &st, &err);
    assert_int_equal(st, PN_OK);
    for (int i = 0; i < N; i++) {
        char want[256];
        snprintf(want, sizeof want, ",ab12,%s,1234,", cases[i].cell);
        if (!strstr(csv, want))
            fail_msg("case %d: %s not in:\n%s", i, want, csv);
    }
    free(csv);
}

static int64_t rows_in(const char *path)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM predictions", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

static void exec_sql(const char *path, const char *sql)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg);
    sqlite3_close(db);
}

static void test_prune(void **state)
{
    const char *path = db_path("prune.db");
    pn_audit *a;
    pn_error err = {0};
    assert_int_equal(pn_audit_open(path, &a, &err), PN_OK);
    pn_audit_record r = record("old-patient-name.jpeg", 0.9);
    for (int i = 0; i < 5; i++)
        assert_int_equal(pn_audit_log(a, &r, NULL, &err), PN_OK);
    pn_audit_close(a);
    /* Rows 1-3 from long ago, 4 from 10 days ago, 5 now. */
    exec_sql(path, "UPDATE predictions SET time_utc = '2020-01-01T00:00:00.000Z' WHERE id <= 3;"
                   "UPDATE predictions SET time_utc = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-10 days') WHERE id = 4;");
    int64_t deleted = -1;
    assert_int_equal(pn_audit_prune(path, 30, &deleted, &err), PN_OK);
    assert_int_equal(deleted, 3);
    assert_int_equal(rows_in(path), 2);
    assert_int_equal(pn_audit_prune(path, 5, &deleted, &err), PN_OK);
    assert_int_equal(deleted, 1);
    assert_int_equal(rows_in(path), 1);
    assert_int_equal(pn_audit_prune(path, 0, &deleted, &err), PN_EINVAL);
    /* VACUUM ran: the deleted names are gone from the file's bytes. */
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char bytes[1 << 20];
    size_t n = fread(bytes, 1, sizeof bytes, f);
    fclose(f);
    size_t hits = 0;
    for (size_t i = 0; i + 21 <= n; i++)
        hits += !memcmp(bytes + i, "old-patient-name.jpeg", 21);
    assert_int_equal(hits, 1); /* the one row kept */
}

/* A schema 1 file (as pneumo wrote it before client_info) stays readable:
 * exported as it is, then migrated on open with a message. */
static void test_migration_from_schema_1(void **state)
{
    const char *path = db_path("v1.db");
    exec_sql(path,
             "CREATE TABLE schema_version(version INTEGER NOT NULL); INSERT INTO schema_version VALUES(1);"
             "CREATE TABLE predictions(id INTEGER PRIMARY KEY, time_utc TEXT NOT NULL, image_sha256 TEXT NOT NULL,"
             " file_name TEXT NULL, image_bytes INTEGER NOT NULL, width INTEGER, height INTEGER, model_id TEXT,"
             " model_version TEXT, probability REAL NOT NULL, threshold REAL NOT NULL, label TEXT NOT NULL,"
             " latency_ms REAL, client_addr TEXT);"
             "CREATE INDEX predictions_time ON predictions(time_utc);"
             "INSERT INTO predictions VALUES(1,'2024-05-01T10:00:00.000Z','cd34','jane-doe.png',99,10,20,'m0','v0',"
             " 0.8,0.5,'PNEUMONIA',3.5,'10.0.0.7');"
             "INSERT INTO predictions VALUES(2,'2024-05-01T11:00:00.000Z','ef56',NULL,98,10,20,'m0','v0',"
             " 0.2,0.5,'NORMAL',3.5,NULL);");
    pn_status st;
    pn_error err = {0};
    char *csv = export_csv(path, NULL, &st, &err);
    assert_int_equal(st, PN_OK);
    assert_non_null(strstr(csv, ",cd34,jane-doe.png,99,10,20,m0,v0,0.8,0.5,PNEUMONIA,3.5,10.0.0.7,,,\r\n"));
    free(csv);

    pn_audit *a;
    assert_int_equal(pn_audit_open(path, &a, &err), PN_OK);
    const char *note = pn_audit_migration(a);
    assert_non_null(note);
    assert_non_null(strstr(note, "schema 1 -> 2"));
    assert_non_null(strstr(note, "1 of the 2 existing rows"));
    pn_audit_record r = record(NULL, 0.4);
    r.client_addr = NULL;
    assert_int_equal(pn_audit_log(a, &r, NULL, &err), PN_OK);
    pn_audit_close(a);
    csv = export_csv(path, NULL, &st, &err);
    assert_int_equal(st, PN_OK);
    assert_non_null(strstr(csv, ",cd34,jane-doe.png,99,10,20,m0,v0,0.8,0.5,PNEUMONIA,3.5,10.0.0.7,1,0,\r\n"));
    assert_non_null(strstr(csv, ",ef56,,98,10,20,m0,v0,0.2,0.5,NORMAL,3.5,,0,0,\r\n"));
    assert_non_null(strstr(csv, ",ab12,,1234,224,200,m1,v1,0.4,0.5,NORMAL,12.5,,0,0,\r\n"));
    free(csv);
    /* Opening again migrates nothing. */
    assert_int_equal(pn_audit_open(path, &a, &err), PN_OK);
    assert_null(pn_audit_migration(a));
    pn_audit_close(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows_and_schema),
        cmocka_unit_test(test_csv_quoting),
        cmocka_unit_test(test_since_filter),
        cmocka_unit_test(test_migrate_v1),
        cmocka_unit_test(test_missing_database),
        cmocka_unit_test(test_csv_formula_injection),
        cmocka_unit_test(test_prune),
        cmocka_unit_test(test_migration_from_schema_1),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
