#!/usr/bin/env bash
# The demo: set up, build, and run the main job on the embedded demo config.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
exe=./build/pipeline/eo-pipeline
# The main job on the embedded demo: plan the area, synthesise its world, warp and chip
# it into chip stores and pretrain the nano model on them (two ranks each), then embed
# every chip into the Zarr cube on two ranks and say where it is.
$exe plan --ranks 2 "$@"
$exe synth "$@"
mpirun -np 2 $exe prepare "$@"
mpirun -np 2 $exe pretrain "$@"
mpirun -np 2 --bind-to none $exe run "$@"
$exe status "$@"
