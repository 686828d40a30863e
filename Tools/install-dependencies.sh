#!/usr/bin/env bash
# Installs the Debian packages Chorus needs, skipping those already present.
# Used by Tools/setup.sh (the README's first command) and by .ci/run, so the list lives here only.
set -euo pipefail

packages=(
  iproute2          # network namespaces for the multi-host tests (Tools/netns-hosts.sh)
  gcc g++           # the C API's example and tests (C11 and C++17 against include/chorus.h)
  pkg-config        # the C API's chorus.pc
  python3-numpy     # the Python binding's tests and training-loop example
  openmpi-bin       # mpirun launching chorus across the namespace hosts (a multi-host test)
  libfabric-dev     # headers for the libfabric (OFI) transport; the library itself is loaded with dlopen
  libfabric-bin     # fi_info, to see which libfabric providers a host offers
  libibverbs-dev librdmacm-dev  # headers for the verbs transport (loaded with dlopen; no device needed to build)
)

missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-dependencies: all packages present (${packages[*]})"
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "install-dependencies: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
