#!/usr/bin/env bash
# Configures and builds eo-pipeline (Release) in ./build with two jobs.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "${EO_BUILD_JOBS:-2}"
