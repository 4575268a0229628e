#!/usr/bin/env bash
# Packs what `tests/gpu/run.sh` and `bench/server.sh` need on a GPU machine
# that has neither our -dev packages nor network access (a lent test machine,
# an air-gapped node): chilld, chillctl, libchill and libchillclient built
# here for the target GPU, every shared library they load beyond glibc and
# the C++ runtime, the Python wheels of the Triton HTTP client that such a
# machine's python3 (3.12, with numpy, pytest and aiohttp) lacks, and the
# stock perf_analyzer with its libraries.
#
# The bundle is a folder laid out like a build folder ($BUNDLE/bin, lib, venv)
# whose binaries find their libraries by RUNPATH ($ORIGIN), so nothing is set
# for them; $BUNDLE.tar.xz is the same folder packed. There, after
# `tar -xJf $BUNDLE.tar.xz && source $BUNDLE/env.sh` (which installs the wheels
# under /tmp and points PYTHONPATH at them):
#   BUILD=$BUNDLE bash tests/gpu/run.sh        # what make test-gpu runs
#   BUILD=$BUNDLE bash bench/server.sh         # what make bench-server runs
#
# Environment: BUNDLE (default .devbuild/final), BUILD (where to build,
# default build/gpu), CUDA_GENCODE (default sm_90a, the H100/H200), PYTHON
# (a python3 with pip, to download wheels).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUNDLE=${BUNDLE:-.devbuild/final}
BUILD=${BUILD:-build/gpu}
CUDA_GENCODE=${CUDA_GENCODE:--gencode=arch=compute_90a,code=sm_90a}
PYTHON=${PYTHON:-python3}
pa_version=2.41.0  # the last tritonclient wheel that carried perf_analyzer (venv.sh)
# The Triton HTTP client's own needs; the rest of them the GPU machine has.
wheels=("tritonclient[http]" geventhttpclient gevent greenlet brotli python-rapidjson zope.event zope.interface)
# The machine's own copies of these are newer and shared with python3 there.
system_libs='^(linux-vdso|ld-linux|libc|libm|libdl|librt|libpthread|libresolv|libstdc\+\+|libgcc_s)\.'

command -v patchelf >/dev/null || { echo "bundle: needs patchelf (apt-get install patchelf)" >&2; exit 1; }
make -s -j"$(nproc)" BUILD="$BUILD" CUDA_GENCODE="$CUDA_GENCODE" all
grep -q chill_cuda_forward <(nm -D "$BUILD/lib/libchill.so") ||
    { echo "bundle: $BUILD/lib/libchill.so has no CUDA backend (is nvcc on PATH?)" >&2; exit 1; }

rm -rf "$BUNDLE" && mkdir -p "$BUNDLE"/{bin,lib,venv/bin,venv/libexec,venv/lib,wheels}
cp "$BUILD"/bin/chilld "$BUILD"/bin/chillctl "$BUNDLE/bin/"
cp "$BUILD"/lib/libchill.so "$BUILD"/lib/libchillclient.so "$BUNDLE/lib/"

# copy_deps ELF DIR: every library ELF loads (ldd resolves the whole chain)
# that the GPU machine may lack, into DIR.
copy_deps() {
    ldd "$1" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' | while read -r name path; do
        [[ $name =~ $system_libs ]] || cp -n "$path" "$2/$name"
    done
}
for f in "$BUNDLE"/bin/* "$BUNDLE"/lib/*.so; do copy_deps "$f" "$BUNDLE/lib"; done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pip_target=(--only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64
            --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
            --platform manylinux1_x86_64)
"$PYTHON" -m pip download -q --no-deps "${pip_target[@]}" -d "$BUNDLE/wheels" "${wheels[@]}"
"$PYTHON" -m pip download -q --no-deps "${pip_target[@]}" -d "$tmp" \
    "tritonclient==$pa_version" nvidia-cuda-runtime-cu12
(cd "$tmp" && unzip -q -o -j tritonclient-"$pa_version"-*.whl '*/bin/perf_analyzer' &&
             unzip -q -o -j nvidia_cuda_runtime_cu12-*.whl '*/libcudart.so.12')
cp "$tmp/perf_analyzer" "$BUNDLE/venv/libexec/" && cp "$tmp/libcudart.so.12" "$BUNDLE/venv/lib/"
LD_LIBRARY_PATH="$tmp" copy_deps "$BUNDLE/venv/libexec/perf_analyzer" "$BUNDLE/venv/lib"
cat > "$BUNDLE/venv/bin/perf_analyzer" <<'SH'
#!/bin/sh
exec "$(dirname "$0")/../libexec/perf_analyzer" "$@"
SH
chmod +x "$BUNDLE/venv/bin/perf_analyzer" "$BUNDLE/venv/libexec/perf_analyzer"
# venv.sh's marker: the venv is set up, do not try pip (run.sh then takes python3).
touch "$BUNDLE/venv/.chilld-deps-ok"

strip --strip-debug "$BUNDLE"/bin/chill* "$BUNDLE"/lib/*.so*
patchelf --set-rpath '$ORIGIN/../lib' "$BUNDLE"/bin/chilld "$BUNDLE"/bin/chillctl "$BUNDLE/venv/libexec/perf_analyzer"
for f in "$BUNDLE"/lib/*.so* "$BUNDLE"/venv/lib/*.so*; do patchelf --set-rpath '$ORIGIN' "$f"; done

cat > "$BUNDLE/env.sh" <<'SH'
# source this on the GPU machine: the Triton client's wheels for its python3.
_chill_bundle=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/chill-site "$_chill_bundle"/wheels/*.whl &&
export PYTHONPATH=/tmp/chill-site${PYTHONPATH:+:$PYTHONPATH}
SH
printf 'commit %s\nbuilt %s with %s\n' "$(git describe --always --dirty)" "$(date -u +%FT%TZ)" "$CUDA_GENCODE" \
    > "$BUNDLE/MANIFEST"
tar -C "$(dirname "$BUNDLE")" --sort=name --owner=0 --group=0 --numeric-owner -cf - "$(basename "$BUNDLE")" |
    xz -T0 -6 > "$BUNDLE.tar.xz"
echo "bundle: $BUNDLE ($(du -sh "$BUNDLE" | cut -f1)), $BUNDLE.tar.xz ($(du -h "$BUNDLE.tar.xz" | cut -f1))"
