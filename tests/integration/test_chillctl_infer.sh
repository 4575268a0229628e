#!/usr/bin/env bash
# chillctl against a real chilld: health and models; infer --check over
# http, shm and uds for every mask and dtype (the local CPU kernel must agree
# within the numerics bound); outputs written to .npy and .safetensors and
# read back as inputs; bench over each transport with no errors; and the
# failures: an unreachable server, an unknown model, bad options, each a
# non-zero exit with a message naming the problem.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "$root" && cd "${BUILD:-build}" && pwd)
ctl="$build/bin/chillctl"
tmp=$(mktemp -d /tmp/chillctl-test.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
sock="$tmp/chilld.sock"
cat > "$tmp/chilld.json" <<JSON
{"listen": {"address": "127.0.0.1", "port": $port, "threads": 2},
 "devices": {"backend": "${CHILLD_TEST_BACKEND:-cpu}"},
 "unix_socket": {"path": "$sock"}, "log": {"level": "warn"}}
JSON
"$build/bin/chilld" --config "$tmp/chilld.json" > "$tmp/chilld.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$tmp"' EXIT
url="http://127.0.0.1:$port"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
for _ in $(seq 100); do "$ctl" health --url "$url" > /dev/null 2>&1 && break; sleep 0.1; done

expect_ok() { local out; out=$("$@" 2>&1) || { fail "$* -> $out"; return; }; printf '%s\n' "$out"; }
expect_fail() { # expect_fail WORD CMD...: a non-zero exit whose output names WORD
  local word=$1 out; shift
  if out=$("$@" 2>&1); then fail "$* succeeded; expected a failure naming $word"; return; fi
  [[ "$out" == *"$word"* ]] || fail "$*: the error does not name $word: $out"
}

expect_ok "$ctl" health --url "$url" | grep -q "live and ready" || fail "health"
expect_ok "$ctl" health --transport uds --socket "$sock" > /dev/null
models=$(expect_ok "$ctl" models --url "$url")
for m in full causal sliding_window chunkwise prefix_lm; do
  grep -q "^$m " <<< "$models" || fail "models lacks $m"
done

for t in http shm uds; do
  for spec in causal "sliding_window(16,4)" "chunkwise(32,1)" "prefix_lm(10)" full; do
    for dt in fp32 fp16 bf16; do
      out=$(expect_ok "$ctl" infer --url "$url" --socket "$sock" --transport "$t" --random 2,4,70,32 --heads-kv 2 \
            --seq-k 90 --mask "$spec" --dtype "$dt" --lse --check --seed 3)
      [ "$(grep -c ': ok$' <<< "$out")" = 2 ] || fail "infer --check $t $spec $dt: $out"
    done
  done
done

# Files: out to .npy, everything to .safetensors, then those as inputs.
expect_ok "$ctl" infer --url "$url" --random 1,2,40,16 --mask causal -o "$tmp/out.npy" > /dev/null
python3 - "$tmp/out.npy" <<'PY' || fail "out.npy is not a [1,2,40,16] float16 .npy"
import sys
b = open(sys.argv[1], "rb").read()
assert b[:6] == b"\x93NUMPY" and b"'<f2'" in b[:128] and b"(1, 2, 40, 16)" in b[:128], b[:128]
assert len(b) - (10 + b[8] + 256 * b[9]) == 1 * 2 * 40 * 16 * 2
PY
expect_ok "$ctl" infer --url "$url" --random 1,2,40,16 --mask causal --lse -o "$tmp/both.safetensors" > /dev/null
expect_ok "$ctl" infer --url "$url" --q "$tmp/out.npy" --k "$tmp/out.npy" --v "$tmp/out.npy" --mask causal --check \
  | grep -q ": ok$" || fail "infer from .npy inputs"
expect_fail "no tensor named" "$ctl" infer --url "$url" --inputs "$tmp/both.safetensors" --mask causal

for t in http shm uds; do
  out=$("$ctl" bench --url "$url" --socket "$sock" --transport "$t" --random 1,2,64,32 --count 40 \
        --concurrency 2 --json 2>/dev/null)
  python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["requests"]==40 and d["errors"]==0 and d["p99_us"]>=d["p50_us"]>0, d' \
    "$out" || fail "bench $t: $out"
done

out=$("$ctl" bench --socket "$sock" --transport uds --random 1,2,64,32 --count 30 --paired --json 2>/dev/null)
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["errors"]==0 and d["bare_p50_us"]>0 and d["overhead_p50_us"]>-d["bare_p50_us"], d' \
  "$out" || fail "bench --paired: $out"
expect_fail "paired" "$ctl" bench --transport local --paired --random 1,1,16,16

expect_fail "Couldn't connect" "$ctl" health --url "http://127.0.0.1:1"
expect_fail "nope.sock" "$ctl" infer --transport uds --socket "$tmp/nope.sock" --random 1,1,16,16
expect_fail "no-such-model" "$ctl" infer --url "$url" --random 1,1,16,16 --model no-such-model
expect_fail "head_dim" "$ctl" infer --url "$url" --random 1,1,16,8
expect_fail "B,H,T,D" "$ctl" infer --url "$url" --random 1,2,3
expect_fail "transport" "$ctl" bench --transport carrier-pigeon --random 1,1,16,16
kill -0 $pid || fail "chilld died"
kill -TERM $pid
wait $pid
rc=$?
[ $rc -eq 0 ] || fail "chilld exited with $rc on SIGTERM (sanitizer report or failed drain; see its log)"

if [ $fails -ne 0 ]; then echo "$fails failure(s); chilld log:"; tail -20 "$tmp/chilld.log"; exit 1; fi
echo "chillctl: all checks passed"
