#!/usr/bin/env bash
# The demo: set up, build, and run the main job on the embedded demo config.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
exe=./build/pipeline/eo-pipeline
# Until the embedding run exists, the main job is the data path and pretraining: plan
# the demo area, synthesise its world, warp and chip it into HDF5 chip stores on two
# ranks, and pretrain the nano model on them on two ranks.
$exe plan --ranks 2 "$@"
$exe synth "$@"
mpirun -np 2 $exe prepare "$@"
mpirun -np 2 $exe pretrain "$@"
