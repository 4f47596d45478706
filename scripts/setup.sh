#!/usr/bin/env bash
# Installs every dependency of eo-pipeline from Debian 12 packages. Idempotent: run it
# as root on a fresh machine as often as you like; apt-get skips what is there already.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "setup.sh: run as root (it installs Debian packages with apt-get)" >&2
  exit 2
fi

packages=(
  # build
  build-essential cmake ninja-build pkg-config git
  # libraries the project links
  libtorch-dev libgdal-dev gdal-bin libproj-dev proj-bin libhdf5-dev
  libopenmpi-dev openmpi-bin xtensor-dev libfmt-dev libgtest-dev libgmock-dev
  libyaml-cpp-dev libcli11-dev nlohmann-json3-dev libblosc-dev libspdlog-dev
  libxgboost-dev
  # LibTorch runs matrix products on the reference BLAS (~20x slower) without it
  libopenblas0-pthread
  # real readers and services the tests use
  python3 python3-zarr python3-xarray python3-gdal python3-numpy
  slurm-wlm munge
  # process tools the tests use (pkill, time -v)
  procps time
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup.sh: installing ${#missing[@]} packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends "${missing[@]}"
else
  echo "setup.sh: all ${#packages[@]} packages already installed"
fi
