/* logfmt lines on stderr: a timestamp, the level, the event, then the
 * caller's key=value pairs, written with one write() so lines from different
 * threads never interleave. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static const char *level_names[] = {"debug", "info", "warn", "error"};
static volatile int min_level = CHILL_LOG_INFO;

void chill_log_set_level(chill_log_level level) { min_level = level; }

int chill_log_level_parse(const char *name, chill_log_level *level) {
    for (int i = 0; i <= CHILL_LOG_ERROR; i++)
        if (name != NULL && strcasecmp(name, level_names[i]) == 0) {
            *level = (chill_log_level)i;
            return 0;
        }
    return -1;
}

void chill_log(chill_log_level level, const char *event, const char *fmt, ...) {
    if ((int)level < min_level)
        return;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s event=%s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, level_names[level], event);
    if (fmt != NULL && fmt[0] != '\0' && n < (int)sizeof line - 2) {
        line[n++] = ' ';
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(line + n, sizeof line - n, fmt, ap);
        va_end(ap);
        n = m < 0 ? n : (n + m < (int)sizeof line - 1 ? n + m : (int)sizeof line - 2);
    }
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}
