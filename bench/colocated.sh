#!/usr/bin/env bash
# bench-server, co-located part: chilld's shared-memory and native-socket
# paths against the bare libchill call, and the shm path's copy bandwidth
# against memcpy. Run by bench/server.sh (make bench-server), or alone.
#
# Small requests (B1 H8 T256 D64 fp16, causal; COLOC_SHAPE/COLOC_MASK change
# them) at concurrency 1 with chillctl bench over http (binary tensors), shm
# (system shared memory: JSON over HTTP, tensors in a registered region) and
# uds (the native socket, memfd arena), each request paired with the bare
# libchill call on the same tensors (on the CPU; with a GPU the bare call is
# bench/bare_call.py's on device tensors). Targets: uds < 25 µs, shm < 100 µs
# over the bare call. Batching is off, so no request waits for a batch to fill.
#
# Large requests (B8 H16 T4096 D128 fp16): the bytes an infer moves on the
# shm path (q, k, v read out of the region, out written back, through the
# SIGBUS-guarded copies) timed by bench/colocated.c against memcpy of the same
# bytes in the same run. Target: >= 80% of memcpy.
#
# Results: bench/results/colocated-<cpu|gpu>-<date>.md with machine, date and command.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
BUILD=${BUILD:-build}
shape=${COLOC_SHAPE:-1,8,256,64}
large=${COLOC_LARGE_SHAPE:-8,16,4096,128}
mask=${COLOC_MASK:-causal}
seconds=${COLOC_SECONDS:-1}
rounds=${COLOC_ROUNDS:-8}
ctl="$BUILD/bin/chillctl"
for f in "$BUILD/bin/chilld" "$ctl" "$BUILD/lib/libchilld.a"; do
  [ -e "$f" ] || { echo "colocated: $f is missing; run make first" >&2; exit 1; }
done
cuda_libs=()
if nm "$BUILD/lib/libchill.a" "$BUILD/lib/libchilld.a" 2>/dev/null | grep ' U cuda' >/dev/null; then
  cuda_libs=(-L"${CUDA_HOME:-/usr/local/cuda}/lib64" -lcudart_static -ldl -lstdc++)
fi
${CC:-cc} -D_GNU_SOURCE -Iserver -Ikernels -Imasks -O2 -std=c11 -Wall -Wextra -Werror -pthread bench/colocated.c \
  "$BUILD/lib/libchilld.a" "$BUILD/lib/libchill.a" -ljansson -lm -lrt "${cuda_libs[@]}" -o "$BUILD/bin/colocated_copy"

tmp=$(mktemp -d /tmp/chill-colocated.XXXXXX)
pid=""
cleanup() {
  [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sock="$tmp/chilld.sock"
cat > "$tmp/chilld.json" <<JSON
{"listen": {"address": "127.0.0.1", "port": $port, "threads": 4},
 "batching": {"enabled": false}, "unix_socket": {"path": "$sock"}, "log": {"level": "warn"}}
JSON
"$BUILD/bin/chilld" --config "$tmp/chilld.json" 2>"$tmp/chilld.log" &
pid=$!
for _ in $(seq 200); do "$ctl" health --url "http://127.0.0.1:$port" >/dev/null 2>&1 && break; sleep 0.1; done

field() { python3 -c "import json,sys; print('%.1f' % json.loads(sys.argv[1])['$2'])" "$1"; }
label=$(command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1 && echo gpu || echo cpu)
# Each request is paired with the bare libchill call on the same tensors just
# before it (chillctl bench --paired): the overhead is the median of the
# differences, so load from other work on the machine cancels out. The paths
# take turns, rounds times, and each keeps its best round. A minimal request
# (B1 H1 T16 D16) runs the same way: its overhead is the transport's own round
# trip, with almost no kernel time around it (D16 runs on the CPU kernel on
# either backend, in chilld and in the paired call alike).
# chillctl's paired call runs libchill on the client's host tensors, that is
# on the CPU. With a GPU, the small request's bare call is therefore
# bench/bare_call.py's on device tensors, timed once, and its overhead is the
# request's p50 minus that call's.
declare -A p50 p99 rps bare over
gpu_bare=""
if [ "$label" = gpu ]; then
  python=""
  for p in "$BUILD/venv/bin/python" python3; do
    if command -v "$p" >/dev/null && "$p" -c 'import numpy' 2>/dev/null; then python=$p; break; fi
  done
  [ -n "$python" ] || { echo "colocated: needs a python3 with numpy for the GPU's bare call" >&2; exit 1; }
  gpu_bare=$("$python" bench/bare_call.py --lib "$BUILD/lib/libchill.so" --shape "$shape" --dtype FP16 --mask "$mask" \
             --device cuda --seconds 2)
  echo "bare libchill call on the GPU: $gpu_bare"
fi
for round in $(seq "$rounds"); do
  for t in uds shm http; do
    for size in small tiny; do
      s=$([ $size = small ] && echo "$shape" || echo 1,1,16,16)
      paired=--paired
      [ $size = small ] && [ -n "$gpu_bare" ] && paired=""
      r=$("$ctl" bench --url "http://127.0.0.1:$port" --socket "$sock" --transport "$t" --random "$s" --mask "$mask" \
          --dtype fp16 --concurrency 1 --duration "$seconds" --warmup 20 $paired --json 2>/dev/null)
      [ "$(field "$r" errors)" = 0.0 ] || { echo "colocated: errors over $t: $r" >&2; exit 1; }
      echo "round $round, $t, $size: $r"
      k=$t-$size
      if [ -n "$paired" ]; then
        b=$(field "$r" bare_p50_us); o=$(field "$r" overhead_p50_us)
      else
        b=$(field "$gpu_bare" p50_us); o=$(python3 -c "print('%.1f' % ($(field "$r" p50_us) - $b))")
      fi
      if [ -z "${over[$k]:-}" ] || python3 -c "import sys; sys.exit(not $o < ${over[$k]})"; then
        p50[$k]=$(field "$r" p50_us); p99[$k]=$(field "$r" p99_us); rps[$k]=$(field "$r" rps)
        bare[$k]=$b; over[$k]=$o
      fi
    done
  done
done
copy=$("$BUILD/bin/colocated_copy" "$large" --reps 5 2>/dev/null)
echo "large copy: $copy"

date_utc=$(date -u +%Y-%m-%d)
out="bench/results/colocated-$label-$date_utc.md"
machine="$(uname -m), $(nproc) cores, $(awk -F: '/model name/ {sub(/^ /, "", $2); print $2; exit}' /proc/cpuinfo)"
{
  echo "# Co-located paths (system shm, native socket), $label, $date_utc"
  echo
  echo "- machine: $machine"
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "- command: \`bash bench/colocated.sh\` with BUILD=$BUILD (also run by \`make bench-server\`); $rounds rounds of ${seconds} s per path, best round kept"
  echo "- small request: $mask, [B,H,T,D] = [$shape], FP16, concurrency 1, batching off, one client; $([ -n "$gpu_bare" ] && echo "overhead: p50 minus the p50 of bench/bare_call.py on the GPU" || echo "overhead: median of the differences to the bare call before each request (chillctl bench --paired)")"
  echo "- minimal request: [1,1,16,16], which runs on the CPU kernel on either backend; overhead as with --paired"
  echo "- load average while it ran: $(cut -d' ' -f1-3 /proc/loadavg) (other work shares this machine)"
  echo
  echo "| path | requests/s | p50 µs | p99 µs | bare call p50 µs | overhead µs | minimal request: overhead µs |"
  echo "|---|---|---|---|---|---|---|"
  row() { echo "| $1 | ${rps[$2-small]} | ${p50[$2-small]} | ${p99[$2-small]} | ${bare[$2-small]} | ${over[$2-small]}$3 | ${over[$2-tiny]} |"; }
  row "native Unix socket (memfd arena)" uds " (target < 25)"
  row "system shm (JSON over HTTP)" shm " (target < 100)"
  row "HTTP, binary tensors" http ""
  echo
  echo "Large request [B,H,T,D] = [$large] FP16 ($(python3 -c "import json,sys; print(json.loads(sys.argv[1])['bytes'] >> 20)" "$copy") MiB of q, k, v, out):"
  echo "the shm path's host copies (chill_region_read of q, k, v, chill_region_write of out; bench/colocated.c; the"
  echo "path on the CPU backend, and with a GPU for a region whose object changed) run at"
  echo "$(field "$copy" region_gbps) GB/s against memcpy's $(field "$copy" memcpy_gbps) GB/s in the same run:"
  echo "$(python3 -c "import json,sys; print('%.0f' % (100 * json.loads(sys.argv[1])['ratio']))" "$copy")% of memcpy (target >= 80%)."
  echo
  echo "Regions that chilld stopped using in place during the run (its region_changed warnings; with a GPU a"
  echo "pinned region is used in place until its object is truncated or written with write()): $(grep -c region_changed "$tmp/chilld.log")."
} > "$out"
echo "colocated: wrote $out"
cat "$out"
