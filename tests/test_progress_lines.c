/* Progress written to a file (not a terminal) comes as whole lines at a
 * bounded rate: a tight loop of updates gives the first line and the final
 * one, never a carriage return or two reports run together. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/progress.h"
#include "testutil.h"

static void test_log_lines_bounded(void **state)
{
    char path[512];
    snprintf(path, sizeof path, "%s/progress.log", pn_test_tmpdir());
    fflush(stderr);
    int saved = dup(2);
    FILE *log = fopen(path, "w");
    assert_non_null(log);
    dup2(fileno(log), 2);
    cli_progress p;
    cli_progress_init(&p);
    int tty = p.tty;
    for (int i = 1; i <= 100000; i++)
        cli_progress_update(&p, 0, "%d/100000 images", i);
    cli_progress_update(&p, 1, "100000 images evaluated, 0 unreadable");
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    fclose(log);
    assert_false(tty);

    FILE *f = fopen(path, "r");
    char line[256];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        n++;
        assert_null(strchr(line, '\r'));
        assert_int_equal(line[strlen(line) - 1], '\n');
        char *first = strstr(line, "images");
        assert_non_null(first);
        assert_null(strstr(first + 1, "images"));
    }
    fclose(f);
    /* 100000 updates in far less than CLI_PROGRESS_LOG_PERIOD_S: the first and the final line. */
    assert_true(n >= 2 && n <= 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_log_lines_bounded)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
