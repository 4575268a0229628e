/* The process metrics that every Prometheus client library exports under the
 * same names (process_cpu_seconds_total, process_open_fds, process_max_fds,
 * process_virtual_memory_bytes, process_resident_memory_bytes,
 * process_start_time_seconds), so that dashboards and alerts written for any
 * exporter read chilld unchanged; and chill_heap_used_bytes, malloc's own
 * count of the bytes it has handed out and not had back, which tells a leak
 * (it grows) from fragmentation (only resident memory grows).
 * chill_metrics_init() declares them. */
#ifndef CHILL_SERVER_PROCESS_H
#define CHILL_SERVER_PROCESS_H

/* Reads /proc/self and malloc's count into those families (before /metrics renders). */
void chill_process_metrics_sample(void);

#endif
