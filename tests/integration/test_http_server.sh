#!/usr/bin/env bash
# chilld as a program, with curl: --check-config explains a valid file and
# refuses a wrong one naming the field, --help, a port already taken is a
# clean exit 1, failures count in the statistics extension and in /metrics,
# the device gauges are there, and SIGINT drains to exit 0 (a request past its
# timeout is test_overload.py's: a 1 us timeout here raced a lone request that
# starts within 1 us). Every wait is bounded; only 127.0.0.1 is used.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
BUILD=${BUILD:-build}
chilld="$BUILD/bin/chilld"
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$tmp"; }
trap cleanup EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
slow=1; case "$BUILD" in *asan*) slow=3 ;; esac

# --check-config and --help
out=$("$chilld" --check-config config/chilld.json 2>&1) || fail "--check-config config/chilld.json exited $?: $out"
grep -q 'listen.port = 8000' <<<"$out" || fail "--check-config does not explain listen.port: $out"
grep -q 'presets.sw-4096' <<<"$out" || fail "--check-config does not list the presets: $out"
echo '{"batching": {"max_queue_delay_us": -5}}' > "$tmp/bad.json"
out=$("$chilld" --check-config "$tmp/bad.json" 2>&1); rc=$?
[ $rc -eq 2 ] || fail "--check-config of a wrong file exited $rc, expected 2"
grep -q 'batching.max_queue_delay_us' <<<"$out" || fail "the refusal does not name the field: $out"
out=$("$chilld" --help 2>&1) || fail "--help exited $?"
grep -q -- '--check-config' <<<"$out" || fail "--help does not list --check-config: $out"
out=$("$chilld" --port 99999 2>&1); rc=$?
[ $rc -eq 2 ] && grep -q 'listen.port' <<<"$out" || fail "--port 99999: exit $rc, $out"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
"$chilld" --config config/chilld.json --backend cpu --port "$port" 2>"$tmp/chilld.log" &
pid=$!; pids+=("$pid")
for _ in $(seq 1 $((100 * slow))); do
  curl -sf -m 2 "$url/v2/health/ready" >/dev/null && break
  sleep 0.1
done
curl -sf -m 2 "$url/v2/health/ready" >/dev/null || { fail "chilld not ready: $(cat "$tmp/chilld.log")"; exit 1; }

# a second chilld on the same port exits 1 and says why
out=$(timeout $((10 * slow)) "$chilld" --config config/chilld.json --backend cpu --port "$port" 2>&1); rc=$?
[ $rc -eq 1 ] && grep -q 'cannot listen' <<<"$out" || fail "second chilld on a taken port: exit $rc, $out"

# 64 values: q, k, v of [1,1,4,16]
data=$(python3 -c 'print(",".join(str((i % 7) / 7) for i in range(64)))')
tensor() { echo "{\"name\":\"$1\",\"shape\":[1,1,4,16],\"datatype\":\"FP32\",\"data\":[$data]}"; }
req() { echo "{\"parameters\":{$1},\"inputs\":[$(tensor q),$(tensor k),$(tensor v)]}"; }
infer() { curl -s -m $((30 * slow)) -o "$tmp/resp" -w '%{http_code}' -H 'Content-Type: application/json' \
  -d "$2" "$url/v2/models/$1/infer"; }

code=$(infer causal "$(req '"return_lse":true')")
[ "$code" = 200 ] || fail "a valid request: $code $(cat "$tmp/resp")"
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); o={x["name"]:x for x in r["outputs"]};
assert o["out"]["shape"]==[1,1,4,16] and len(o["out"]["data"])==64 and o["lse"]["shape"]==[1,1,4], r' "$tmp/resp" ||
  fail "the response lacks out or lse"

before=$(curl -s -m 5 "$url/v2/models/causal/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["model_stats"][0]["inference_stats"]["fail"]["count"])')
code=$(infer causal "$(req '"sm_scale":"big"')")
[ "$code" = 400 ] && grep -q 'sm_scale' "$tmp/resp" || fail "sm_scale \"big\": $code $(cat "$tmp/resp")"
after=$(curl -s -m 5 "$url/v2/models/causal/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["model_stats"][0]["inference_stats"]["fail"]["count"])')
[ "$after" -eq $((before + 1)) ] || fail "the statistics fail count went from $before to $after after a 400"

metrics=$(curl -s -m 5 "$url/metrics")
for want in 'chill_device_healthy{device="cpu"} 1' 'chill_requests_queued{device="cpu"} 0' \
            'chill_requests_total{model="causal",mask="causal",code="400"} 1' \
            'chill_tokens_total{model="causal",mask="causal",dtype="FP32",kind="query"} 4'; do
  grep -qF "$want" <<<"$metrics" || fail "/metrics lacks: $want"
done

# SIGINT drains and exits 0
kill -INT "$pid"
for _ in $(seq 1 $((100 * slow))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$pid" 2>/dev/null; then fail "chilld still runs 10 s after SIGINT"; else
  wait "$pid"; rc=$?; [ $rc -eq 0 ] || fail "chilld exited $rc after SIGINT: $(tail -5 "$tmp/chilld.log")"; fi
grep -q 'event=stopped signal=SIGINT' "$tmp/chilld.log" || fail "no stopped event in the log"

[ $fails -eq 0 ] && echo "test_http_server: all checks passed"
[ $fails -eq 0 ]
