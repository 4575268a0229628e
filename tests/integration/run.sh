#!/usr/bin/env bash
# Runs every integration test: tests/integration/test_*.sh with bash and
# test_*.py with the venv's python (tests/integration/venv.sh makes it once
# under $BUILD/venv). Each test starts its own chilld from $BUILD/bin/chilld
# on a free loopback port (lib.py; the .sh tests start their own) and is
# bounded in time. A test that exits 77 was skipped (it says why). Ends with
# the summary line "N passed, N failed, N skipped" and exits non-zero when
# any test failed.
#
# Environment: BUILD (build folder, default build), CHILLD_TEST_BACKEND
# (cpu or cuda; default cpu), CHILLD_TEST_GPUS ("0,1"), CHILLD_TEST_GPU_SLOTS
# (devices.gpu_slots), CHILLD_TEST_TIMEOUT (seconds per test file, default
# 240), CHILLD_TEST_ONLY (a substring: run only the matching files).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
export BUILD=${BUILD:-build}
export CHILLD_TEST_BACKEND=${CHILLD_TEST_BACKEND:-cpu}
per_test=${CHILLD_TEST_TIMEOUT:-240}
case "$BUILD" in *asan* | *tsan*) per_test=$((per_test * 3)) ;; esac

if [ ! -x "$BUILD/bin/chilld" ]; then
  echo "integration: $BUILD/bin/chilld is missing; build it first (make BUILD=$BUILD)"
  echo "0 passed, 1 failed"
  exit 1
fi

# The venv when it has what the tests need; else a python3 that has it (an
# offline GPU machine whose python3 is itself a venv: a venv made from it
# does not see its packages).
venv_python=$(bash "$here/venv.sh")
python=""
for p in "$venv_python" python3; do
  if "$p" -c 'import numpy, pytest' 2>/dev/null; then python=$p; break; fi
done
[ -n "$python" ] || echo "integration: neither $venv_python nor python3 has numpy and pytest (no network for venv.sh?); Python tests are skipped"

passed=0 failed=0 skipped=0 failures=()
for t in "$here"/test_*.sh "$here"/test_*.py; do
  [ -e "$t" ] || continue
  name=$(basename "$t")
  [ -n "${CHILLD_TEST_ONLY:-}" ] && [[ "$name" != *"$CHILLD_TEST_ONLY"* ]] && continue
  case "$name" in
    *.sh) cmd=(bash "$t") ;;
    *.py) if [ -z "$python" ]; then skipped=$((skipped + 1)); echo "== $name: skipped (no Python test environment)"; continue; fi
          cmd=("$python" "$t") ;;
  esac
  echo "== $name"
  start=$(date +%s)
  timeout -k 10 "$per_test" "${cmd[@]}"
  rc=$?
  secs=$(( $(date +%s) - start ))
  if [ $rc -eq 0 ]; then
    passed=$((passed + 1)); echo "== $name: passed (${secs}s)"
  elif [ $rc -eq 77 ]; then
    skipped=$((skipped + 1)); echo "== $name: skipped (${secs}s)"
  else
    [ $rc -eq 124 ] && echo "== $name: timed out after ${per_test}s"
    failed=$((failed + 1)); failures+=("$name"); echo "== $name: FAILED (exit $rc, ${secs}s)"
  fi
done

[ ${#failures[@]} -gt 0 ] && echo "failed: ${failures[*]}"
echo "$passed passed, $failed failed, $skipped skipped"
[ $failed -eq 0 ]
