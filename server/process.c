/* Process metrics from /proc/self: CPU time, memory, descriptors, start time;
 * and from malloc, the heap in use. Linux and glibc only, as chilld is; a
 * value /proc does not give (not mounted) is left as it was, so the families
 * stay present and a scrape never fails for them.
 *
 * Under a sanitizer (make asan, tsan, fuzz) malloc is the sanitizer's, and
 * glibc's mallinfo2 would read arenas that were never set up; the heap in use
 * is then the sanitizer's own count, which its runtime defines (the weak
 * reference below is NULL in a build without one). */
#include <dirent.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "metrics.h"
#include "process.h"

size_t __sanitizer_get_current_allocated_bytes(void) __attribute__((weak));

static double seconds(clockid_t clock) {
    struct timespec t;
    clock_gettime(clock, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* /proc/self/stat: utime and stime (fields 14 and 15, clock ticks), starttime
 * (22, ticks since boot), vsize (23, bytes) and rss (24, pages). Fields are
 * counted from the ')' that ends the command name, which may hold spaces. */
static void sample_stat(void) {
    char text[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    if (f == NULL)
        return;
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    const char *p = strrchr(text, ')');
    unsigned long long utime, stime, start, vsize;
    long long rss;
    if (p == NULL || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d"
                                   " %llu %llu %lld", &utime, &stime, &start, &vsize, &rss) != 5)
        return;
    double ticks = (double)sysconf(_SC_CLK_TCK);
    chill_metric_set(chill_m.process_cpu_seconds, (double)(utime + stime) / ticks);
    chill_metric_set(chill_m.process_virtual_bytes, (double)vsize);
    chill_metric_set(chill_m.process_resident_bytes, (double)rss * (double)sysconf(_SC_PAGESIZE));
    double since_start = seconds(CLOCK_BOOTTIME) - (double)start / ticks;
    chill_metric_set(chill_m.process_start_time, seconds(CLOCK_REALTIME) - since_start);
}

/* The entries of /proc/self/fd, less the one this listing opens. */
static void sample_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return;
    int n = 0;
    for (const struct dirent *e; (e = readdir(d)) != NULL;)
        n += e->d_name[0] != '.';
    closedir(d);
    chill_metric_set(chill_m.process_open_fds, n - 1);
}

static size_t heap_used(void) {
    if (__sanitizer_get_current_allocated_bytes != NULL)
        return __sanitizer_get_current_allocated_bytes();
    struct mallinfo2 heap = mallinfo2();
    return heap.uordblks + heap.hblkhd;
}

void chill_process_metrics_sample(void) {
    sample_stat();
    sample_fds();
    chill_metric_set(chill_m.heap_used_bytes, (double)heap_used());
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0)
        chill_metric_set(chill_m.process_max_fds, lim.rlim_cur == RLIM_INFINITY ? -1.0 : (double)lim.rlim_cur);
}
