#!/usr/bin/env bash
# Several GPUs: chilld's requests/s with one GPU and with every GPU, in the
# same run, for large requests (B1 H16 T4096 D128 fp16, causal; BENCH_SHAPE
# changes it) over the native Unix socket at BENCH_PER_GPU clients per GPU,
# so what is compared is the devices, not the HTTP copies. The target is
# >= 0.9 * N times the one-GPU rate. Results go to
# bench/results/multi-gpu-<date>.md (BENCH_RESULTS_DIR elsewhere).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
shape=${BENCH_SHAPE:-1,16,4096,128}
seconds=${BENCH_SECONDS:-10}
per_gpu=${BENCH_PER_GPU:-4}
n=$(nvidia-smi -L 2>/dev/null | grep -c GPU || true)
[ "$n" -ge 2 ] || { echo "multi_gpu: needs two or more GPUs (found ${n:-0})"; exit 0; }
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT

# requests/s of chilld serving the GPUs listed in $1 ("0" or "0,1,...")
rate() {
  local port=$((20000 + RANDOM % 20000)) clients=$(( per_gpu * $(tr ',' '\n' <<< "$1" | wc -l) ))
  printf '{"devices": {"backend": "cuda", "gpus": [%s]}, "unix_socket": {"path": "%s/s.sock"}}\n' "$1" "$tmp" > "$tmp/c.json"
  "$BUILD/bin/chilld" --config "$tmp/c.json" --port "$port" > "$tmp/chilld.log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do [ -S "$tmp/s.sock" ] && break; sleep 0.1; done
  "$BUILD/bin/chillctl" bench --transport uds --socket "$tmp/s.sock" --random "$shape" --mask causal \
      --concurrency "$clients" --duration "$seconds" --json 2>/dev/null | tail -n 1 > "$tmp/r.json"
  kill -TERM "$pid"; wait "$pid" || true
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["errors"] == 0, d; print(d["rps"])' "$tmp/r.json"
}

all=$(seq -s, 0 $((n - 1)))
one=$(rate 0)
many=$(rate "$all")
scaling=$(python3 -c "print(f'{$many / $one:.2f}')")
out="${BENCH_RESULTS_DIR:-bench/results}/multi-gpu-$(date -u +%F).md"
mkdir -p "$(dirname "$out")"
{
  echo "# chilld on 1 and on $n GPUs, $(date -u '+%F %H:%M UTC')"
  echo
  echo "- machine: $(nvidia-smi --query-gpu=name --format=csv,noheader | head -n1) x $n, $(nproc) cores"
  echo "- command: \`BUILD=$BUILD bash bench/multi_gpu.sh\` (BENCH_SECONDS=$seconds, BENCH_PER_GPU=$per_gpu)"
  echo "- request: causal, [B,H,T,D] = [$shape], FP16, native Unix socket, $per_gpu clients per GPU"
  echo
  echo "| GPUs | requests/s |"
  echo "|---|---|"
  echo "| 1 | $one |"
  echo "| $n | $many |"
  echo
  echo "Scaling: ${scaling}x on $n GPUs (target >= $(python3 -c "print(0.9 * $n)")x)."
} > "$out"
cat "$out"
