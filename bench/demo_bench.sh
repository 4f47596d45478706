#!/usr/bin/env bash
# The demo's time by step: `bench/demo_bench.sh [CONFIG [OUT]]` runs scripts/demo_steps.sh
# on CONFIG (default configs/demo.yaml) into a fresh output folder OUT (default
# bench/work/demo_steps), then `fewshot` on its cube. Writes
# bench/results/demo.json with the date, commit, machine (cores, CPU, a float32 matrix
# product's GFLOP/s through numpy as a yardstick of its speed) and the command.
# Keeps the fewshot's files in bench/results/embeddings/demo/. Run after scripts/build.sh,
# on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:-configs/demo.yaml}
out=${2:-bench/work/demo_steps}
rm -rf "$out"
mkdir -p "$out" bench/results
times=$out/step_times.txt
EO_STEP_TIMES=$times bash scripts/demo_steps.sh "$config" --output "$out"
source scripts/step_times.sh
EO_STEP_TIMES=$times step fewshot ./build/pipeline/eo-pipeline fewshot "$config" --output "$out" -q
/usr/bin/python3 - "$config" "$out" "$times" <<'PY'
import json, sys, time
import numpy as np
config, out, times = sys.argv[1:4]
steps = {l.split()[0]: float(l.split()[1]) for l in open(times)}
a = np.random.default_rng(0).standard_normal((2048, 2048), dtype=np.float32)
a @ a
t = time.perf_counter(); a @ a; a @ a; a @ a
gflops = 3 * 2 * 2048 ** 3 / (time.perf_counter() - t) / 1e9
report = json.load(open(f'{out}/pretrain/report.json'))
result = {
    'benchmark': f"the demo's main job from nothing (scripts/demo_steps.sh {config}), then its fewshot, "
                 'wall-clock seconds per step',
    'machine': {'numpy_float32_matmul_gflops': round(gflops, 1)},  # the rest: bench/provenance.py
    'seconds': {k: round(v, 1) for k, v in steps.items()},
    'main_job_seconds': round(sum(v for k, v in steps.items() if k != 'fewshot'), 1),
    'pretrain_seconds_per_step': round(report['seconds'] / report['steps'], 2),
    'pretrain_steps': report['steps'],
}
json.dump(result, open('bench/results/demo.json', 'w'), indent=2)
print(json.dumps(result, indent=2))
PY
/usr/bin/python3 bench/provenance.py "bench/results/demo.json" bash bench/demo_bench.sh "$@"
# What the README's few-shot tables are made of (bench/readme_tables.py): this run's sweep,
# probes and pretraining losses, stamped like the timings.
kept=bench/results/embeddings/demo
mkdir -p "$kept"
cp "$out/fewshot/results.csv" "$out/fewshot/probe.csv" "$out/fewshot/probe_components.csv" "$out/fewshot/summary.json" \
  "$out/pretrain/loss.csv" "$kept/"
echo '{"benchmark": "the demo from nothing, then its fewshot: the sweep (results.csv), the probe (probe.csv, probe_components.csv), the pretraining losses (loss.csv)"}' > "$kept/run.json"
/usr/bin/python3 bench/provenance.py "$kept/run.json" bash bench/demo_bench.sh "$@"
