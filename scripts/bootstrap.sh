#!/usr/bin/env bash
# Installs the Debian 12 packages Portcullis needs to build, test and run.
# Idempotent: only packages that are missing are installed.
#   scripts/bootstrap.sh          build + test dependencies
#   scripts/bootstrap.sh bench    also the peers the benchmark compares against
set -euo pipefail

build_pkgs=(
  build-essential cmake ninja-build ccache pkg-config git
  libboost1.81-dev libssl-dev libc-ares-dev libtomlplusplus-dev libfmt-dev
  libcli11-dev libgtest-dev libgmock-dev libbenchmark-dev libpsl-dev publicsuffix libre2-dev
  clang libclang-rt-14-dev clang-format openssl
  libclamav-dev libyara-dev libmagic-dev libsqlite3-dev libgoogle-perftools-dev
)
test_pkgs=(curl wget python3 ca-certificates procps iproute2 tzdata squid c-icap clamav-testfiles
           rsyslog rsyslog-openssl)
# libc-icap-mod-virus-scan: c-icap's virus_scan + clamav_mod (bench/scan.sh). It pulls in
# clamav-freshclam, whose service is not started here (see policy-rc.d below).
bench_pkgs=(nginx-light squid tinyproxy wrk c-icap libc-icap-mod-virus-scan)

want=("${build_pkgs[@]}" "${test_pkgs[@]}")
if [[ "${1:-}" == "bench" ]]; then want+=("${bench_pkgs[@]}"); fi

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "bootstrap: installing ${missing[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
# Package services (nginx, squid, c-icap, tinyproxy, clamav-freshclam, rsyslog) must not start
# system instances we do not use.
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
