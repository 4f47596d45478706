#!/usr/bin/env bash
# The demo's main job, step by step, on a built tree (scripts/demo.sh sets up and builds
# first): plan the area, synthesise its world, warp and chip it into chip stores and
# pretrain the nano model on them (two ranks each), then embed every chip into the Zarr
# cube on two ranks and say where it is. Arguments go to every step (a config, --output).
# With EO_STEP_TIMES=FILE, each step's wall-clock seconds are appended to FILE as
# "step seconds" lines (bench/demo_bench.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
exe=./build/pipeline/eo-pipeline
source scripts/step_times.sh
step plan $exe plan --ranks 2 "$@"
step synth $exe synth "$@"
step prepare mpirun -np 2 $exe prepare "$@"
step pretrain mpirun -np 2 $exe pretrain "$@"
step run mpirun -np 2 --bind-to none $exe run "$@"
step status $exe status "$@"
