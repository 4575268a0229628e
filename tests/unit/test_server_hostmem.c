/* Host memory for request tensors (server/hostmem.c) without a GPU: buffers
 * are 256-byte aligned as the binary tensor path and the 2D copies expect,
 * of any size, and freeing NULL is harmless. Pinning is
 * off, so register says no and copies stay correct, only slower. The pinned
 * cache runs under make test-gpu, through the daemon's suite on CUDA. */
#include <check.h>
#include <stdint.h>
#include <string.h>

#include "hostmem.h"

START_TEST(aligned_any_size) {
    chill_hostmem_init(0, 1 << 20);
    size_t sizes[] = {0, 1, 255, 4096, 4097, (size_t)3 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *p = chill_hostmem_alloc(sizes[i]);
        ck_assert_ptr_nonnull(p);
        ck_assert_int_eq((uintptr_t)p % 256, 0);
        memset(p, 0xa5, sizes[i]);
        chill_hostmem_free(p);
    }
    chill_hostmem_free(NULL);
    ck_assert_ptr_null(chill_hostmem_alloc(SIZE_MAX - 16));
    chill_hostmem_shutdown();
}
END_TEST

START_TEST(register_is_off_without_a_gpu) {
    chill_hostmem_init(0, 1 << 20);
    static char buf[8192];
    ck_assert_int_eq(chill_hostmem_register(buf, sizeof buf), 0);
}
END_TEST

Suite *chill_test_suite(void) {
    Suite *s = suite_create("server_hostmem");
    TCase *tc = tcase_create("hostmem");
    tcase_add_test(tc, aligned_any_size);
    tcase_add_test(tc, register_is_off_without_a_gpu);
    suite_add_tcase(s, tc);
    return s;
}
