#!/usr/bin/env bash
# Installs what chilld needs to build and test on Debian/Ubuntu: the C libraries
# (libmicrohttpd, jansson, libuv, libcurl, Check), promtool for the metrics test,
# python3-venv for the tritonclient/perf_analyzer tests, libb64-0d, which the
# stock perf_analyzer binary links, and clang, whose libFuzzer `make fuzz` uses.
# Idempotent: it asks apt only for the packages that are missing, and does
# nothing when all are there.
set -euo pipefail

packages=(
  build-essential pkg-config
  libmicrohttpd-dev libjansson-dev libuv1-dev libcurl4-openssl-dev
  check libsubunit-dev
  prometheus
  python3 python3-venv curl
  libb64-0d
  clang
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all build and test dependencies are present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# --no-install-recommends keeps the prometheus server's extras out; we only use promtool.
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
