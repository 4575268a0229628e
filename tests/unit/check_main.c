/* The main of every unit-test binary: each tests/unit/test_*.c defines
 * chill_test_suite() and is linked with this file. CK_FORK stays at Check's
 * default, so a crashing test is reported as an error, not the end of the run. */
#include <check.h>
#include <stdlib.h>

Suite *chill_test_suite(void);

int main(void) {
    SRunner *runner = srunner_create(chill_test_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
