#!/usr/bin/env bash
# bench-server: chilld's HTTP infer path under load. Small requests (B1 H8
# T256 D64 fp16, causal; BENCH_SHAPE/BENCH_DTYPE/BENCH_MASK change them) at
# concurrency 1, 16 and 64, with batching off and on: requests/s, p50 and p99
# latency. Then the bare libchill call on the same inputs (bench/bare_call.py,
# ctypes) and the per-request overhead over it at concurrency 1, with
# perf_analyzer its split of the mean request into client, network and server
# stages.
#
# Load generator: the stock perf_analyzer when one runs ($BUILD/venv/bin or
# PATH), else chillctl bench (C, libcurl), else bench/server_load.py's Python
# client; BENCH_DRIVER=perf_analyzer|chillctl|python forces one, and
# BENCH_DRIVER=perf_analyzer:system|perf_analyzer:cuda has perf_analyzer pass
# the tensors in shared memory of that kind (the HTTP body is then the JSON
# header alone). Nothing is installed here, so it works offline on a GPU
# machine with what is present.
# The backend is chosen by chilld (CUDA when a GPU is visible);
# BENCH_BACKEND=cpu|cuda forces it. Results go to
# bench/results/server-<cpu|gpu>[-<system|cuda>shm]-<date>.md with machine, date and command
# (BENCH_RESULTS_DIR elsewhere). BENCH_SECONDS, BENCH_CONCURRENCY ("1 16 64")
# shorten a trial run; BENCH_HTTP_THREADS (8) sets chilld's listen.threads and
# BENCH_CONNECTION_MEMORY its listen.connection_memory_bytes (default: chilld's);
# BENCH_SKIP_COLOCATED=1 leaves out bench/colocated.sh.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
BUILD=${BUILD:-build}
shape=${BENCH_SHAPE:-1,8,256,64}
dtype=${BENCH_DTYPE:-FP16}
mask=${BENCH_MASK:-causal}
seconds=${BENCH_SECONDS:-5}
backend=${BENCH_BACKEND:-auto}
concurrencies=(${BENCH_CONCURRENCY:-1 16 64})
http_threads=${BENCH_HTTP_THREADS:-8}
conn_memory=${BENCH_CONNECTION_MEMORY:+, \"connection_memory_bytes\": $BENCH_CONNECTION_MEMORY}
chilld="$BUILD/bin/chilld"
[ -x "$chilld" ] || { echo "bench-server: $chilld is missing; run make first" >&2; exit 1; }
results_dir=${BENCH_RESULTS_DIR:-bench/results}
mkdir -p "$results_dir"  # before the runs, so that a bad path fails at once

python=""
for p in "$BUILD/venv/bin/python" python3; do
  if command -v "$p" >/dev/null && "$p" -c 'import numpy' 2>/dev/null; then python=$p; break; fi
done
[ -n "$python" ] || { echo "bench-server: needs a python3 with numpy ($BUILD/venv from tests/integration/venv.sh, or the system's)" >&2; exit 1; }

driver=${BENCH_DRIVER:-}
if [ -z "$driver" ]; then
  if BUILD=$BUILD "$python" -c 'import sys; sys.path.insert(0, "bench"); import server_load; sys.exit(server_load.find_perf_analyzer() is None)'; then
    driver=perf_analyzer
  elif [ -x "$BUILD/bin/chillctl" ]; then
    driver=chillctl
  else
    driver=python
  fi
fi

device=cpu
if [ "$backend" = cuda ] || { [ "$backend" = auto ] && command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; }; then
  device=cuda
fi
label=$([ "$device" = cuda ] && echo gpu || echo cpu)
tensors="binary tensors over HTTP/1.1 keep-alive"
file_label=$label
case $driver in
  *:system | *:cuda)
    file_label=$label-${driver#*:}shm
    tensors="tensors in ${driver#*:} shared memory registered by the client, the JSON header over HTTP/1.1 keep-alive";;
esac

tmp=$(mktemp -d)
pid=""
cleanup() {
  [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && { timeout 30 tail --pid="$pid" -f /dev/null || kill -KILL "$pid"; }
  rm -rf "$tmp"
}
trap cleanup EXIT

port=$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

start_chilld() { # $1: batching true|false
  cat > "$tmp/chilld.json" <<EOF
{"listen": {"address": "127.0.0.1", "port": $port, "threads": $http_threads$conn_memory},
 "devices": {"backend": "$backend"},
 "batching": {"enabled": $1, "max_queue_delay_us": 200, "max_queue_requests": 4096},
 "log": {"level": "warn"}}
EOF
  "$chilld" --config "$tmp/chilld.json" 2>"$tmp/chilld-$1.log" &
  pid=$!
  for _ in $(seq 200); do
    curl -fs "http://127.0.0.1:$port/v2/health/ready" >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "bench-server: chilld did not start:" >&2; cat "$tmp/chilld-$1.log" >&2; exit 1
}

stop_chilld() {
  kill -TERM "$pid"; wait "$pid" || { echo "bench-server: chilld exited with $? on SIGTERM" >&2; exit 1; }
  pid=""
}

load() { # $1: concurrency; prints one JSON line with rps, p50_us, p99_us, errors
  BUILD=$BUILD "$python" bench/server_load.py --url "127.0.0.1:$port" --model "$mask" --shape "$shape" \
    --dtype "$dtype" --concurrency "$1" --seconds "$seconds" --driver "$driver"
}

field() { "$python" -c "import json,sys; print('%.1f' % json.loads(sys.argv[1])['$2'])" "$1"; }
stages() { # perf_analyzer's split of the mean request, as "Client Send 62, ..."; empty for the other drivers
  "$python" -c "import json,sys; print(', '.join('%s %.0f' % kv for kv in json.loads(sys.argv[1]).get('stages_us', {}).items()))" "$1"
}

rows=()
stages_at_1=""
declare -A p50_at_1 rps_at
for batching in false true; do
  start_chilld $batching
  for c in "${concurrencies[@]}"; do
    r=$(load "$c")
    errors=$(field "$r" errors)
    [ "${errors%.*}" = 0 ] || { echo "bench-server: $errors errors at concurrency $c: $r" >&2; exit 1; }
    rows+=("| $([ $batching = true ] && echo on || echo off) | $c | $(field "$r" rps) | $(field "$r" p50_us) | $(field "$r" p99_us) |")
    echo "batching $batching, concurrency $c: $r"
    [ "$c" = 1 ] && p50_at_1[$batching]=$(field "$r" p50_us)
    [ "$c" = 1 ] && [ $batching = false ] && stages_at_1=$(stages "$r")
    rps_at[$batching,$c]=$(field "$r" rps)
  done
  stop_chilld
done

bare=$("$python" bench/bare_call.py --lib "$BUILD/lib/libchill.so" --shape "$shape" --dtype "$dtype" \
       --mask "$mask" --device "$device" --seconds "$seconds")
echo "bare libchill call: $bare"
bare_p50=$(field "$bare" p50_us)
overhead() { "$python" -c "print('%.1f' % ($1 - $bare_p50))"; }
cmax=${concurrencies[-1]}
floors=$("$python" bench/floors.py --shape "$shape" --dtype "$dtype" --device "$device" --seconds 2 \
         --concurrency "$cmax")
echo "floors: $floors"
loopback=$(field "$floors" loopback_p50_us)
loopback_rps=$(field "$floors" loopback_rps)

date_utc=$(date -u +%Y-%m-%d)
out="$results_dir/server-$file_label-$date_utc.md"
machine="$(uname -m), $(nproc) cores, $(awk -F: '/model name/ {sub(/^ /, "", $2); print $2; exit}' /proc/cpuinfo)"
[ "$device" = cuda ] && machine="$machine; GPU $(nvidia-smi --query-gpu=name --format=csv,noheader | head -n1)"
{
  echo "# bench-server, $label backend, $date_utc"
  echo
  echo "- machine: $machine"
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "- command: \`make bench-server BUILD=$BUILD\` (bench/server.sh; BENCH_SECONDS=$seconds${BENCH_DRIVER:+, BENCH_DRIVER=$BENCH_DRIVER})"
  echo "- request: $mask, shape [B,H,T,D] = [$shape], $dtype, $tensors"
  echo "- load generator: $driver; chilld backend: $device (config backend \"$backend\"), $http_threads HTTP threads, connection memory ${BENCH_CONNECTION_MEMORY:-the default}"
  echo
  echo "| batching | concurrency | requests/s | p50 µs | p99 µs |"
  echo "|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "Bare libchill call on the same inputs (bench/bare_call.py, ctypes, device $device): p50 $bare_p50 µs."
  if [ -n "${p50_at_1[false]:-}" ]; then
    echo "Per-request overhead at concurrency 1 (server p50 − bare p50): batching off $(overhead "${p50_at_1[false]}") µs,"
    echo "batching on $(overhead "${p50_at_1[true]}") µs."
  fi
  if [ -n "$stages_at_1" ]; then
    echo "Where the mean request's time goes at concurrency 1, batching off (perf_analyzer's split, µs; the server's"
    echo "parts are chilld's statistics, Network+Server Send/Recv the rest of the client's HTTP time): $stages_at_1."
  fi
  echo
  [ "$file_label" = "$label" ] || echo "(These floors are the binary HTTP path's: this run's tensors did not cross TCP.)"
  echo "Floors under that overhead, same run (bench/floors.py): a TCP round trip over 127.0.0.1 carrying the"
  echo "request's input bytes one way and its output bytes back (plain sockets, no HTTP) takes $loopback µs."
  echo "On $cmax such connections at once (a process each, Python's own work included) the loopback carries"
  echo "$loopback_rps round trips a second: about the most requests/s any server on this host answers over TCP"
  echo "at concurrency $cmax, batching or not."
  if [ "$device" = cuda ]; then
    pcie=$(field "$floors" pcie_p50_us)
    pcie64=$(field "$floors" pcie64_per_request_us)
    echo "Copying the same bytes to the GPU and back from pinned memory takes $pcie µs, so a GPU fed one request at"
    echo "a time through host memory cannot pass $("$python" -c "print('%.0f' % (1e6 / $pcie))") requests/s; copying 64 requests' bytes at once"
    echo "takes $pcie64 µs per request, a bound of $("$python" -c "print('%.0f' % (1e6 / $pcie64))") requests/s with batches of 64."
  fi
  echo
  echo "Targets (they apply to the GPU backend): batching on at concurrency $cmax gives" \
       "$("$python" -c "print('%.2f' % (${rps_at[true,$cmax]} / ${rps_at[false,$cmax]}))")× the requests/s" \
       "of batching off (target ≥ 5×)$([ -z "${p50_at_1[false]:-}" ] || echo "; overhead at concurrency 1 with" \
       "batching off $(overhead "${p50_at_1[false]}") µs (target < 150 µs)")."
} > "$out"
echo "bench-server: wrote $out"
cat "$out"
[ -n "${BENCH_SKIP_COLOCATED:-}" ] || BUILD=$BUILD bash bench/colocated.sh  # the shared-memory and native-socket paths
