/* The error convention: pn_fail and pn_error_prefix return the failing status
 * whether or not the caller passed an error record, so `return
 * pn_error_prefix(err, st, ...)` can never report success on failure. */
#include <string.h>

#include "pneumo/error.h"
#include "testutil.h"

static void test_fail_without_record(void **state)
{
    assert_int_equal(pn_fail(NULL, PN_EIO, "no record %d", 1), PN_EIO);
}

static void test_fail_fills_record(void **state)
{
    pn_error err = {0};
    assert_int_equal(pn_fail(&err, PN_EFORMAT, "line %d", 7), PN_EFORMAT);
    assert_int_equal(err.code, PN_EFORMAT);
    assert_string_equal(err.msg, "line 7");
}

static void test_prefix_without_record_keeps_status(void **state)
{
    /* The former bug: with err == NULL the prefix helper returned PN_OK. */
    for (pn_status st = PN_EINVAL; st <= PN_EINTERNAL; st++)
        assert_int_equal(pn_error_prefix(NULL, st, "%s: ", "file.jpg"), st);
}

static void test_prefix_prepends_and_keeps_status(void **state)
{
    pn_error err = {0};
    pn_status st = pn_fail(&err, PN_ELIMIT, "too many pixels");
    assert_int_equal(pn_error_prefix(&err, st, "%s: ", "x.png"), PN_ELIMIT);
    assert_int_equal(err.code, PN_ELIMIT);
    assert_string_equal(err.msg, "x.png: too many pixels");
}

static void test_prefix_status_wins_over_stale_record(void **state)
{
    /* A record whose code was never set (callee wrote no error) still yields
     * the status the caller passes, and the record is made consistent with it. */
    pn_error err = {0};
    assert_int_equal(pn_error_prefix(&err, PN_EDNNL, "layer %s: ", "c1"), PN_EDNNL);
    assert_int_equal(err.code, PN_EDNNL);
    assert_string_equal(err.msg, "layer c1: ");
}

static void test_prefix_truncates_long_messages(void **state)
{
    pn_error err = {0};
    char big[2 * PN_ERROR_MSG_MAX];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    pn_fail(&err, PN_EINVAL, "%s", big);
    assert_int_equal(pn_error_prefix(&err, PN_EINVAL, "%s", big), PN_EINVAL);
    assert_int_equal(strlen(err.msg), PN_ERROR_MSG_MAX - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fail_without_record),
        cmocka_unit_test(test_fail_fills_record),
        cmocka_unit_test(test_prefix_without_record_keeps_status),
        cmocka_unit_test(test_prefix_prepends_and_keeps_status),
        cmocka_unit_test(test_prefix_status_wins_over_stale_record),
        cmocka_unit_test(test_prefix_truncates_long_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
