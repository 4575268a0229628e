/* Shared-memory regions (server/shm.c through server/regions.h): the HTTP
 * routes of Triton's system and CUDA shared-memory extensions, range checks,
 * views that outlive an unregister, and an object truncated under a copy
 * (SIGBUS), which must fail the copy and leave the process alive. Each test
 * makes its own POSIX shm object and removes it. */
#include <check.h>
#include <fcntl.h>
#include <jansson.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "regions.h"

#define OBJ_BYTES 65536

static char key[64];
static int obj_fd = -1;
static unsigned char *obj;

static void setup(void) {
    snprintf(key, sizeof key, "/chill-test-regions.%ld", (long)getpid());
    obj_fd = shm_open(key, O_RDWR | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(obj_fd, 0);
    ck_assert_int_eq(ftruncate(obj_fd, OBJ_BYTES), 0);
    obj = mmap(NULL, OBJ_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, obj_fd, 0);
    ck_assert_ptr_ne(obj, MAP_FAILED);
    for (int i = 0; i < OBJ_BYTES; i++)
        obj[i] = (unsigned char)(i * 7 + 3);
    chill_regions_configure(1, 1);
}

static void teardown(void) {
    chill_regions_shutdown();
    munmap(obj, OBJ_BYTES);
    close(obj_fd);
    shm_unlink(key);
}

/* Calls the route and returns the status; *body gets the response (freed by the caller). */
static int call(const char *method, const char *path, const char *body, char **out) {
    char *resp = NULL;
    int status = chill_regions_http(method, path, body, body ? strlen(body) : 0, &resp);
    ck_assert_ptr_nonnull(resp);
    json_t *j = json_loads(resp, 0, NULL);
    ck_assert_msg(j != NULL, "response is not JSON: %s", resp);
    json_decref(j);
    if (out)
        *out = resp;
    else
        free(resp);
    return status;
}

static int reg(const char *name, uint64_t offset, uint64_t size, char **out) {
    char path[256], body[256];
    snprintf(path, sizeof path, "/v2/systemsharedmemory/region/%s/register", name);
    snprintf(body, sizeof body, "{\"key\":\"%s\",\"offset\":%llu,\"byte_size\":%llu}", key,
             (unsigned long long)offset, (unsigned long long)size);
    return call("POST", path, body, out);
}

static void assert_error_mentions(char *resp, const char *word) {
    json_t *j = json_loads(resp, 0, NULL);
    const char *msg = json_string_value(json_object_get(j, "error"));
    ck_assert_msg(msg && strstr(msg, word), "error \"%s\" should mention \"%s\"", msg ? msg : "(none)", word);
    json_decref(j);
    free(resp);
}

START_TEST(register_read_write_unregister) {
    ck_assert_int_eq(reg("r1", 4096, 8192, NULL), 200);
    chill_region_view v;
    char err[512];
    ck_assert_int_eq(chill_region_acquire("r1", 100, 256, &v, err, sizeof err), 0);
    ck_assert_int_eq(v.on_device, 0);
    ck_assert_uint_eq(v.size, 256);
    unsigned char buf[256];
    ck_assert_int_eq(chill_region_read(&v, buf, sizeof buf, err, sizeof err), 0);
    ck_assert_mem_eq(buf, obj + 4096 + 100, sizeof buf);
    memset(buf, 0xab, sizeof buf);
    ck_assert_int_eq(chill_region_write(&v, buf, sizeof buf, err, sizeof err), 0);
    ck_assert_int_eq(obj[4096 + 100], 0xab);
    ck_assert_int_eq(obj[4096 + 99], (unsigned char)((4096 + 99) * 7 + 3));
    ck_assert_int_ne(chill_region_read(&v, buf, 257, err, sizeof err), 0); /* more than the view */
    chill_region_release(&v);
    char *status;
    ck_assert_int_eq(call("GET", "/v2/systemsharedmemory/status", NULL, &status), 200);
    json_t *j = json_loads(status, 0, NULL);
    ck_assert_int_eq(json_array_size(j), 1);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(j, 0), "key")), key);
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(j, 0), "byte_size")), 8192);
    json_decref(j);
    free(status);
    ck_assert_int_eq(call("GET", "/v2/systemsharedmemory/region/r1/status", NULL, NULL), 200);
    ck_assert_int_eq(call("POST", "/v2/systemsharedmemory/region/r1/unregister", "", NULL), 200);
    ck_assert_int_ne(chill_region_acquire("r1", 0, 1, &v, err, sizeof err), 0);
    ck_assert_ptr_nonnull(strstr(err, "not registered"));
}
END_TEST

START_TEST(ranges_are_checked) {
    ck_assert_int_eq(reg("r2", 0, 1024, NULL), 200);
    chill_region_view v;
    char err[512];
    ck_assert_int_eq(chill_region_acquire("r2", 0, 1024, &v, err, sizeof err), 0);
    chill_region_release(&v);
    ck_assert_int_ne(chill_region_acquire("r2", 1, 1024, &v, err, sizeof err), 0);
    ck_assert_ptr_nonnull(strstr(err, "outside region r2"));
    ck_assert_int_ne(chill_region_acquire("r2", 1025, 0, &v, err, sizeof err), 0);
    ck_assert_int_ne(chill_region_acquire("r2", UINT64_MAX, 2, &v, err, sizeof err), 0); /* overflow */
    ck_assert_int_ne(chill_region_acquire("r2", 2, UINT64_MAX, &v, err, sizeof err), 0);
    ck_assert_ptr_null(v.region);
    char *resp;
    ck_assert_int_eq(reg("big", 0, OBJ_BYTES + 1, &resp), 400); /* larger than the object */
    assert_error_mentions(resp, "does not fit");
    ck_assert_int_eq(reg("off", OBJ_BYTES - 10, 11, &resp), 400);
    assert_error_mentions(resp, "does not fit");
}
END_TEST

START_TEST(bad_requests_name_the_problem) {
    char *resp;
    ck_assert_int_eq(reg("dup", 0, 64, NULL), 200);
    ck_assert_int_eq(reg("dup", 0, 64, &resp), 400);
    assert_error_mentions(resp, "already registered");
    ck_assert_int_eq(call("POST", "/v2/systemsharedmemory/region/x/register", "{\"key\":\"/chill-no-such-object\",\"byte_size\":8}", &resp), 400);
    assert_error_mentions(resp, "cannot open");
    ck_assert_int_eq(call("POST", "/v2/systemsharedmemory/region/x/register", "{\"key\":\"/k\"}", &resp), 400);
    assert_error_mentions(resp, "byte_size");
    ck_assert_int_eq(call("POST", "/v2/systemsharedmemory/region/x/register", "{\"key\":\"/k\",\"byte_size\":8,\"offset\":-1}", &resp), 400);
    assert_error_mentions(resp, "offset");
    ck_assert_int_eq(call("POST", "/v2/systemsharedmemory/region/x/register", "not json", &resp), 400);
    assert_error_mentions(resp, "JSON");
    ck_assert_int_eq(call("POST", "/v2/systemsharedmemory/region/nope/unregister", "", &resp), 404);
    assert_error_mentions(resp, "nope");
    ck_assert_int_eq(call("GET", "/v2/systemsharedmemory/region/nope/status", NULL, &resp), 404);
    assert_error_mentions(resp, "nope");
    ck_assert_int_eq(call("GET", "/v2/systemsharedmemory/region/dup/register", NULL, &resp), 405);
    assert_error_mentions(resp, "POST");
    ck_assert_int_eq(call("POST", "/v2/systemsharedmemory/frobnicate", "", &resp), 404);
    assert_error_mentions(resp, "no such endpoint");
    ck_assert_int_eq(call("POST", "/v2/cudasharedmemory/region/c/register",
                          "{\"raw_handle\":{\"b64\":\"AAAA\"},\"device_id\":0,\"byte_size\":64}", &resp), 400);
    assert_error_mentions(resp, "cudaIpcMemHandle");
    ck_assert_int_eq(call("GET", "/v2/cudasharedmemory/status", NULL, &resp), 200);
    ck_assert_str_eq(resp, "[]");
    free(resp);
}
END_TEST

/* A handle base64-encoded as libb64 does (perf_analyzer's client): a line
 * break after 72 characters and one at the end. It decodes to its 64 bytes:
 * the registration gets past the handle to the device (which this test
 * machine, without a GPU, does not have). */
START_TEST(a_handle_in_broken_lines_decodes) {
    char *resp;
    const char *body = "{\"raw_handle\":{\"b64\":\"" /* 64 bytes 0x00..0x3f */
                       "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1\\n"
                       "Njc4OTo7PD0+Pw==\\n\"},\"device_id\":0,\"byte_size\":64}";
    ck_assert_int_eq(call("POST", "/v2/cudasharedmemory/region/c/register", body, &resp), 400);
    ck_assert_msg(strstr(resp, "cudaIpcMemHandle") == NULL, "the handle was refused: %s", resp);
    assert_error_mentions(resp, "device");
    ck_assert_int_eq(call("GET", "/v2/cudasharedmemory/status", NULL, &resp), 200);
    ck_assert_str_eq(resp, "[]");
    free(resp);
}
END_TEST

START_TEST(registration_off_in_config) {
    chill_regions_configure(0, 0);
    char *resp;
    ck_assert_int_eq(reg("off", 0, 64, &resp), 403);
    assert_error_mentions(resp, "shared_memory.system");
    chill_region_view v;
    char err[512];
    ck_assert_int_ne(chill_region_acquire("off", 0, 1, &v, err, sizeof err), 0);
}
END_TEST

START_TEST(unregister_while_in_use_keeps_the_view) {
    ck_assert_int_eq(reg("busy", 0, 4096, NULL), 200);
    chill_region_view v;
    char err[512];
    ck_assert_int_eq(chill_region_acquire("busy", 0, 4096, &v, err, sizeof err), 0);
    ck_assert_int_eq(call("POST", "/v2/systemsharedmemory/unregister", "", NULL), 200); /* all */
    char *status;
    ck_assert_int_eq(call("GET", "/v2/systemsharedmemory/status", NULL, &status), 200);
    ck_assert_str_eq(status, "[]");
    free(status);
    unsigned char buf[4096];
    ck_assert_int_eq(chill_region_read(&v, buf, sizeof buf, err, sizeof err), 0);
    ck_assert_mem_eq(buf, obj, sizeof buf);
    ck_assert_int_eq(reg("busy", 0, 64, NULL), 200); /* the name is free again */
    chill_region_release(&v);
    ck_assert_int_eq(chill_region_acquire("busy", 0, 64, &v, err, sizeof err), 0);
    chill_region_release(&v);
}
END_TEST

/* Clients fill a region through a mapping. The first write to a page the
 * object had not allocated yet updates its ctime, yet leaves the pinned
 * pages the object's own: that is not a change. write(2) is counted as one. */
START_TEST(writes_through_a_mapping_leave_it_unchanged) {
    ck_assert_int_eq(ftruncate(obj_fd, 2 * OBJ_BYTES), 0);
    ck_assert_int_eq(reg("fill", OBJ_BYTES, OBJ_BYTES, NULL), 200);
    chill_region_view v;
    char err[512];
    ck_assert_int_eq(chill_region_acquire("fill", 0, OBJ_BYTES, &v, err, sizeof err), 0);
    struct stat before, after;
    ck_assert_int_eq(fstat(obj_fd, &before), 0);
    usleep(20000);
    unsigned char *fresh = mmap(NULL, OBJ_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, obj_fd, OBJ_BYTES);
    ck_assert_ptr_ne(fresh, MAP_FAILED);
    memset(fresh, 7, OBJ_BYTES);
    munmap(fresh, OBJ_BYTES);
    ck_assert_int_eq(fstat(obj_fd, &after), 0);
    ck_assert(before.st_ctim.tv_sec != after.st_ctim.tv_sec || before.st_ctim.tv_nsec != after.st_ctim.tv_nsec);
    ck_assert_int_eq(chill_region_unchanged(&v, err, sizeof err), 0);
    ck_assert_int_eq(pwrite(obj_fd, "x", 1, OBJ_BYTES), 1);
    ck_assert_int_ne(chill_region_unchanged(&v, err, sizeof err), 0);
    ck_assert_ptr_nonnull(strstr(err, "write()"));
    chill_region_release(&v);
}
END_TEST

/* Two registrations of one object share its watch: a truncation and regrow
 * marks the one made before it, not one made after (whose pinned pages are
 * the regrown object's). */
START_TEST(a_registration_after_a_truncation_starts_clean) {
    ck_assert_int_eq(reg("before", 0, OBJ_BYTES, NULL), 200);
    chill_region_view before, after;
    char err[512];
    ck_assert_int_eq(chill_region_acquire("before", 0, OBJ_BYTES, &before, err, sizeof err), 0);
    ck_assert_int_eq(chill_region_unchanged(&before, err, sizeof err), 0);
    ck_assert_int_eq(ftruncate(obj_fd, 0), 0);
    ck_assert_int_eq(ftruncate(obj_fd, OBJ_BYTES), 0);
    ck_assert_int_eq(reg("after", 0, OBJ_BYTES, NULL), 200);
    ck_assert_int_eq(chill_region_acquire("after", 0, OBJ_BYTES, &after, err, sizeof err), 0);
    ck_assert_int_eq(chill_region_unchanged(&after, err, sizeof err), 0);
    ck_assert_int_ne(chill_region_unchanged(&before, err, sizeof err), 0);
    ck_assert_int_eq(chill_region_unchanged(&after, err, sizeof err), 0);
    chill_region_release(&before);
    chill_region_release(&after);
}
END_TEST

/* Clients register a region per tensor, so a busy chilld holds hundreds;
 * each must still be usable in place (one inotify instance for all, not one
 * each: a user may have only 128 instances). */
START_TEST(hundreds_of_regions_are_all_watched) {
    char name[32], err[512];
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof name, "many%d", i);
        ck_assert_int_eq(reg(name, 0, 4096, NULL), 200);
        chill_region_view v;
        ck_assert_int_eq(chill_region_acquire(name, 0, 4096, &v, err, sizeof err), 0);
        ck_assert_msg(chill_region_unchanged(&v, err, sizeof err) == 0, "region %d: %s", i, err);
        chill_region_release(&v);
    }
}
END_TEST

/* The inotify watches this process holds (/proc/self/fdinfo of its inotify
 * descriptors, a line per watch). */
static int inotify_watches(void) {
    int n = 0;
    for (int fd = 0; fd < 1024; fd++) {
        char path[64], link[64] = "", line[256];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        if (readlink(path, link, sizeof link - 1) < 0 || strcmp(link, "anon_inode:inotify") != 0)
            continue;
        snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
        FILE *f = fopen(path, "r");
        ck_assert_ptr_nonnull(f);
        while (fgets(line, sizeof line, f))
            n += strncmp(line, "inotify wd:", 11) == 0;
        fclose(f);
    }
    return n;
}

/* A watch holds its object's inode, so an object that its owner unlinks
 * stays allocated while watched: the last region on an object, once
 * unregistered and released, removes the watch. */
START_TEST(the_last_region_on_an_object_removes_its_watch) {
    int before = inotify_watches();
    ck_assert_int_eq(reg("w1", 0, 4096, NULL), 200);
    ck_assert_int_eq(reg("w2", 4096, 4096, NULL), 200);
    ck_assert_int_eq(inotify_watches(), before + 1); /* one object, one watch */
    chill_region_view v;
    char err[512];
    ck_assert_int_eq(chill_region_acquire("w2", 0, 4096, &v, err, sizeof err), 0);
    ck_assert_int_eq(call("POST", "/v2/systemsharedmemory/region/w1/unregister", "", NULL), 200);
    ck_assert_int_eq(call("POST", "/v2/systemsharedmemory/region/w2/unregister", "", NULL), 200);
    ck_assert_int_eq(inotify_watches(), before + 1); /* w2's view still uses it */
    chill_region_release(&v);
    ck_assert_int_eq(inotify_watches(), before);
}
END_TEST

/* Bytes malloc has handed out and not had back. */
static size_t heap_in_use(void) {
    struct mallinfo2 m = mallinfo2();
    return m.uordblks + m.hblkhd;
}

/* The kernel numbers inotify watches ever upward, so a table of watches
 * indexed by that number grew with every registration ever made. A client
 * that registers and unregisters over and over must not grow chilld's heap:
 * after 1000 rounds, 3000 more hold no more memory. (Under a sanitizer, whose
 * allocator malloc's count does not see, this checks only that rounds work.) */
START_TEST(registering_over_and_over_holds_no_more_memory) {
    size_t warm = 0;
    for (int i = 0; i < 4000; i++) {
        ck_assert_int_eq(reg("again", 0, 4096, NULL), 200);
        ck_assert_int_eq(call("POST", "/v2/systemsharedmemory/region/again/unregister", "", NULL), 200);
        if (i == 999)
            warm = heap_in_use();
    }
    ck_assert_msg(heap_in_use() <= warm, "the heap grew by %zu bytes over 3000 registrations",
                  heap_in_use() - warm);
}
END_TEST

START_TEST(truncated_object_fails_the_copy) {
    ck_assert_int_eq(reg("trunc", 0, OBJ_BYTES, NULL), 200);
    chill_region_view v;
    char err[512];
    ck_assert_int_eq(chill_region_acquire("trunc", 0, OBJ_BYTES, &v, err, sizeof err), 0);
    ck_assert_int_eq(chill_region_unchanged(&v, err, sizeof err), 0);
    ck_assert_int_eq(ftruncate(obj_fd, 0), 0);
    static unsigned char buf[OBJ_BYTES];
    ck_assert_int_ne(chill_region_read(&v, buf, sizeof buf, err, sizeof err), 0);
    ck_assert_ptr_nonnull(strstr(err, "truncated"));
    ck_assert_int_ne(chill_region_write(&v, buf, sizeof buf, err, sizeof err), 0);
    ck_assert_int_eq(ftruncate(obj_fd, OBJ_BYTES), 0); /* restored: copies work again */
    ck_assert_int_eq(chill_region_read(&v, buf, sizeof buf, err, sizeof err), 0);
    /* What GPU-direct use checks: the object was resized since it was
     * registered, even if back to its size, so the pinned pages are stale;
     * and it stays so. */
    err[0] = '\0';
    ck_assert_int_ne(chill_region_unchanged(&v, err, sizeof err), 0);
    ck_assert_ptr_nonnull(strstr(err, "truncated"));
    ck_assert_int_eq(chill_region_direct(&v), 0);
    ck_assert_int_ne(chill_region_unchanged(&v, err, sizeof err), 0);
    chill_region_release(&v);
}
END_TEST

Suite *chill_test_suite(void) {
    Suite *s = suite_create("regions");
    TCase *t = tcase_create("system");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, register_read_write_unregister);
    tcase_add_test(t, ranges_are_checked);
    tcase_add_test(t, bad_requests_name_the_problem);
    tcase_add_test(t, a_handle_in_broken_lines_decodes);
    tcase_add_test(t, registration_off_in_config);
    tcase_add_test(t, unregister_while_in_use_keeps_the_view);
    tcase_add_test(t, writes_through_a_mapping_leave_it_unchanged);
    tcase_add_test(t, a_registration_after_a_truncation_starts_clean);
    tcase_add_test(t, hundreds_of_regions_are_all_watched);
    tcase_add_test(t, the_last_region_on_an_object_removes_its_watch);
    tcase_add_test(t, registering_over_and_over_holds_no_more_memory);
    tcase_add_test(t, truncated_object_fails_the_copy);
    suite_add_tcase(s, t);
    return s;
}
