#!/usr/bin/env bash
# Benchmark: where the data path's time goes, per modality, on one core (bench_data_path):
# the first TILES (default 3) tiles of the demo's plan warped and composited as `run` and
# `prepare` do, beside the sources' decoding alone and the copy bandwidth, in one run.
# DEMO=DIR: an output where the demo's synth ran (default bench/work/demo_steps, which
# bench/demo_bench.sh leaves). Writes bench/results/data_path.json.
set -euo pipefail
cd "$(dirname "$0")/.."
demo=${DEMO:-bench/work/demo_steps}
[ -f "$demo/prepare/config.yaml" ] || { echo "no demo in $demo (run bench/demo_bench.sh first)" >&2; exit 2; }
./build/bench/bench_data_path "$demo/prepare/config.yaml" bench/results/data_path.json --tiles "${TILES:-3}"
/usr/bin/python3 bench/provenance.py bench/results/data_path.json bash bench/data_path.sh "$@"
