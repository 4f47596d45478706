#!/usr/bin/env bash
# The demo: set up, build, and run the main job on the embedded demo config.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Until the embedding run exists, the main job is the plan of the demo area and its
# split across two ranks.
./build/pipeline/eo-pipeline plan --ranks 2 "$@"
