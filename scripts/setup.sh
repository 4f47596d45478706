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
  # `serve`'s HTTP server (and the tests' client), the map library its page loads from
  # this machine, and the headless browser its tests drive the page in
  libcpp-httplib-dev libjs-leaflet chromium chromium-driver python3-selenium
  # AOI polygons checked for validity (holes inside their ring, no self-intersection)
  libgeos-dev
  # similarity search: exact through BLAS (cblas.h), approximate through FAISS
  libfaiss-dev libblas-dev
  # pictures: cairo, with pango for text in a real font
  libcairo2-dev libpango1.0-dev fonts-dejavu-core
  # stages/ingest/tiff_blocks decodes GeoTIFF blocks itself (libtiff for the layout)
  libtiff-dev libdeflate-dev
  # remote inputs over http(s) and S3 (stages/ingest/remote): the libcurl GDAL links
  libcurl4-gnutls-dev
  # LibTorch runs matrix products on the reference BLAS (~20x slower) without it; the
  # OpenMP build is the one eo-pipeline links to (stages/model/CMakeLists.txt)
  libopenblas0-pthread libopenblas0-openmp
  # real readers and services the tests use
  python3 python3-zarr python3-xarray python3-netcdf4 python3-gdal python3-numpy python3-h5py hdf5-tools python3-jsonschema
  python3-torch python3-faiss
  slurm-wlm munge
  # an HTTPS server speaking HTTP/2 for the remote reader's tests, and its certificate
  nginx openssl
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

# Real rasters written by other tools, for the tests of the data path: the Landsat 7
# scene (SIRGAS 2000 / UTM 25S) and NetCDF samples that Debian ships in r-cran-stars.
# Only the package's data files are unpacked, into data/real/stars; R is not installed.
root=$(cd "$(dirname "$0")/.." && pwd)
stars="$root/data/real/stars"
if [ ! -f "$stars/tif/L7_ETMs.tif" ]; then
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download -o APT::Sandbox::User=root r-cran-stars >/dev/null)
  dpkg -x "$tmp"/r-cran-stars_*.deb "$tmp/x"
  mkdir -p "$stars"
  cp -r "$tmp/x/usr/lib/R/site-library/stars/tif" "$tmp/x/usr/lib/R/site-library/stars/nc" "$stars/"
  rm -rf "$tmp"
  echo "setup.sh: real sample rasters unpacked into $stars"
fi
