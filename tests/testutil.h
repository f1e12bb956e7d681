/* Helpers shared by the cmocka tests. */
#ifndef PNEUMO_TESTUTIL_H
#define PNEUMO_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

/* Exit code CTest treats as "skipped" (SKIP_RETURN_CODE). */
#define PN_TEST_SKIP 77

/* Source tree root (PNEUMO_SOURCE_DIR from CTest, else the compile-time path). */
const char *pn_test_source_dir(void);
/* ../shared next to the source tree, or NULL when absent. */
const char *pn_test_shared_dir(void);
/* Returns the shared dir, or prints why and skips the calling cmocka test. */
const char *pn_test_require_shared(const char *what);
/* A fresh temporary directory (removed by the OS's tmp cleaning, not by us). */
const char *pn_test_tmpdir(void);
/* 1 when built with sanitizers (slow tests shrink their work). */
int pn_test_sanitized(void);

#endif
