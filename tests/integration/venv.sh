#!/usr/bin/env bash
# Creates the Python environment the integration tests and bench-server use:
# $BUILD/venv with tritonclient[http] (the stock Triton client), numpy (the
# float64 reference), pytest, requests and PyYAML (to parse deploy/), and the
# stock perf_analyzer load generator as $BUILD/venv/bin/perf_analyzer.
#
# The perf-analyzer package on PyPI is an empty 0.1.0 release here, so the binary
# comes from the last tritonclient wheel that bundled it (2.41.0). It links
# libcudart.so.12 (from the nvidia-cuda-runtime-cu12 wheel; no GPU needed) and
# libb64.so.0d (Debian libb64-0d, in deploy/install-deps.sh); a small wrapper
# points the loader at the former.
#
# Made once and reused: with the marker file present nothing is done. The venv
# sees the system's packages, so without network access (pip fails) the tests
# still use what the machine has (numpy, pytest, ...) and skip what needs a
# missing package, saying so. Prints the venv's python on stdout.
set -uo pipefail

build=${BUILD:-build}
venv="$build/venv"
marker="$venv/.chilld-deps-ok"
packages=(numpy requests pytest pyyaml "tritonclient[http]" nvidia-cuda-runtime-cu12)
pa_wheel_version=2.41.0
pip_offline_fast=(--retries 1 --timeout 20)  # offline, fail in seconds, not minutes

install_perf_analyzer() {
  local tmp
  tmp=$(mktemp -d) || return 1
  "$venv/bin/python" -m pip download -q "${pip_offline_fast[@]}" --no-deps --only-binary=:all: \
      --platform manylinux1_x86_64 -d "$tmp" "tritonclient==$pa_wheel_version" >&2 &&
  "$venv/bin/python" - "$tmp" "$venv/libexec" <<'PY' &&
import glob, os, sys, zipfile
wheel = glob.glob(os.path.join(sys.argv[1], "tritonclient-*.whl"))[0]
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith("/bin/perf_analyzer"))
    os.makedirs(sys.argv[2], exist_ok=True)
    dst = os.path.join(sys.argv[2], "perf_analyzer")
    with z.open(name) as src, open(dst, "wb") as out:
        out.write(src.read())
    os.chmod(dst, 0o755)
PY
  cat > "$venv/bin/perf_analyzer" <<'SH'
#!/bin/sh
here=$(cd "$(dirname "$0")/.." && pwd)
cudart=$(ls -d "$here"/lib/python3*/site-packages/nvidia/cuda_runtime/lib 2>/dev/null | head -n1)
LD_LIBRARY_PATH="$cudart${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "$here/libexec/perf_analyzer" "$@"
SH
  chmod +x "$venv/bin/perf_analyzer"
  rm -rf "$tmp"
}

if [ ! -f "$marker" ]; then
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv --system-site-packages "$venv" >&2 || { echo "venv.sh: python3 -m venv $venv failed (is python3-venv installed?)" >&2; exit 1; }
  fi
  if "$venv/bin/python" -m pip install -q "${pip_offline_fast[@]}" --disable-pip-version-check "${packages[@]}" >&2 &&
     install_perf_analyzer; then
    touch "$marker"
  else
    echo "venv.sh: could not install every package into $venv; tests needing a missing one are skipped" >&2
  fi
fi
echo "$venv/bin/python"
