#!/usr/bin/env bash
# `make fuzz`: runs each libFuzzer target in $BUILD/fuzz (tests/fuzz/fuzz_*.c)
# from the seeds of tests/fuzz/seeds.py plus what earlier runs kept in
# $BUILD/fuzz/corpus/<target>/. A run is FUZZ_RUNS inputs (default 200000)
# from FUZZ_SEED (default 1), so that a fresh build of the same tree (CI's)
# runs the same inputs; FUZZ_SECONDS instead bounds each target by time, for
# longer hunts, whose corpus later runs start from. A crash,
# a sanitizer report, a leak, or a parser's contract broken (the target aborts
# with what it found) fails the run; libFuzzer leaves the input as
# $BUILD/fuzz/crash-* (or leak-*, timeout-*), and `$BUILD/fuzz/<target> FILE`
# replays it.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build/fuzz}
dir=$BUILD/fuzz
runs=${FUZZ_RUNS:-200000}
limit=(-runs="$runs")
[ -n "${FUZZ_SECONDS:-}" ] && limit=(-max_total_time="$FUZZ_SECONDS")

seeds=$dir/seeds
rm -rf "$seeds"
python3 tests/fuzz/seeds.py "$seeds"
status=0
for bin in "$dir"/fuzz_*; do
  [ -x "$bin" ] || continue
  name=$(basename "$bin")
  corpus=$dir/corpus/$name
  mkdir -p "$corpus"
  echo "== $name (${limit[*]}, seed ${FUZZ_SEED:-1})"
  if "$bin" -seed="${FUZZ_SEED:-1}" "${limit[@]}" -use_value_profile=1 -max_len=4096 -timeout=10 -print_final_stats=1 \
       -artifact_prefix="$dir/" "$corpus" "$seeds/$name" > "$dir/$name.log" 2>&1; then
    grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "$dir/$name.log" | tr '\n' ' '
    echo "files in corpus: $(ls "$corpus" | wc -l)"
    echo "== $name: passed"
  else
    tail -n 40 "$dir/$name.log"
    echo "== $name: FAILED (the input is in $dir/crash-*, leak-* or timeout-*; replay: $bin FILE)"
    status=1
  fi
done
exit $status
