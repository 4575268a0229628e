/* The process metrics that every Prometheus client library exports under the
 * same names (process_cpu_seconds_total, process_open_fds, process_max_fds,
 * process_virtual_memory_bytes, process_resident_memory_bytes,
 * process_start_time_seconds), so that dashboards and alerts written for any
 * exporter read chilld unchanged. chill_metrics_init() declares them. */
#ifndef CHILL_SERVER_PROCESS_H
#define CHILL_SERVER_PROCESS_H

/* Reads /proc/self into chill_m's process families (before /metrics renders). */
void chill_process_metrics_sample(void);

#endif
