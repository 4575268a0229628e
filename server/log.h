/* Structured log lines on stderr, one event per line in logfmt:
 *   ts=2026-01-02T03:04:05.678Z level=info event=listening addr=127.0.0.1 port=8000
 * The event names what happened; the rest are key=value pairs the caller
 * formats. Lines below the configured level are dropped. Thread-safe: each
 * line goes out in one write. */
#ifndef CHILL_SERVER_LOG_H
#define CHILL_SERVER_LOG_H

typedef enum chill_log_level {
    CHILL_LOG_DEBUG = 0,
    CHILL_LOG_INFO,
    CHILL_LOG_WARN,
    CHILL_LOG_ERROR,
} chill_log_level;

void chill_log_set_level(chill_log_level level);
/* 0 on success; names: debug, info, warn, error. */
int chill_log_level_parse(const char *name, chill_log_level *level);

void chill_log(chill_log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
