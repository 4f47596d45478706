#!/usr/bin/env bash
# Benchmark of the model: forward throughput and GFLOP/s per preset as a fraction of the
# matrix-multiply rate measured in the same run (bench_model, 2 torch threads), and a
# training step of the demo split into data, forward, backward and allreduce time
# (mpirun -np 2 pretrain on the demo chip stores). Writes bench/results/model.json.
# Run after scripts/build.sh and bench/prepare_bench.sh (which leaves the chip stores).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
work=bench/work
mkdir -p bench/results
./build/bench/bench_model "$work/forward.json" --threads 2 > /dev/null
rm -rf "$work/demo/pretrain"
sed '/^pretrain:/,/^[a-z]/{/^pretrain:/d;/^  /d}' "$work/demo.yaml" > "$work/train.yaml"
printf 'pretrain:\n  steps: 40\n  batch: 16\n  checkpoint_every: 1000\n' >> "$work/train.yaml"
mpirun -np 2 ./build/pipeline/eo-pipeline pretrain "$work/train.yaml" -q > /dev/null
python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
forward = json.load(open(f"{work}/forward.json"))
step = json.load(open(f"{work}/demo/pretrain/report.json"))
result = {"forward": forward, "training_step_nano_2_ranks_batch_16": step["seconds_per_step"],
          "training_steps": step["steps"], "training_seconds": step["seconds"]}
json.dump(result, open("bench/results/model.json", "w"), indent=2)
print(json.dumps({p: v["fraction_of_matmul_every_round"] for p, v in forward["presets"].items()}))
print(json.dumps(step["seconds_per_step"]))
PY
/usr/bin/python3 bench/provenance.py "bench/results/model.json" bash bench/model_bench.sh "$@"
