#!/usr/bin/env bash
# The few-shot sweep's speed: bench_trees (xgboost's time per fit on the sweep's shapes by
# fewshot.max_bin, one thread) and, given a finished demo (CONFIG, default the embedded
# demo's), the time of `eo-pipeline fewshot` from its summary.json. With REFERENCE=DIR (a
# fewshot folder of an earlier build), results.csv and results.md must equal that run's.
# Writes bench/results/fewshot.json.
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:-}
mkdir -p bench/results bench/work
./build/bench/bench_trees bench/work/trees.json --repeat 2
out=$(./build/pipeline/eo-pipeline fewshot ${config:+"$config"} --print-config | sed -n 's/^output: *//p')
./build/pipeline/eo-pipeline fewshot ${config:+"$config"} -q > /dev/null
if [ -n "${REFERENCE:-}" ]; then
  cmp "$REFERENCE/results.csv" "$out/fewshot/results.csv"
  cmp "$REFERENCE/results.md" "$out/fewshot/results.md"
fi
python3 - "$out/fewshot" "${REFERENCE:-}" <<'PY'
import json, os, sys
folder, reference = sys.argv[1], sys.argv[2]
summary = json.load(open(os.path.join(folder, "summary.json")))
fits = sum(1 for _ in open(os.path.join(folder, "results.csv"))) - 1
result = {"trees": json.load(open("bench/work/trees.json")), "fewshot_seconds": summary["seconds"],
          "fits": fits, "cores": os.cpu_count(), "results_equal_reference": bool(reference) or None}
json.dump(result, open("bench/results/fewshot.json", "w"), indent=2)
print(json.dumps({"fewshot_seconds": result["fewshot_seconds"], "fits": fits}))
PY
/usr/bin/python3 bench/provenance.py "bench/results/fewshot.json" bash bench/fewshot_bench.sh "$@"
