#!/usr/bin/env bash
# Benchmark: "a tree-cover map from 200 labels" on the demo (README, `similar`'s section),
# from a seed: bench/trees200.py draws the labels (bench/data/trees200.geojson, committed),
# `fewshot --labels` is timed on them, and its map is scored against `gdalwarp -r average`
# of the world's tree cover. Run after the demo. Writes bench/results/trees200.json.
set -euo pipefail
cd "$(dirname "$0")/.."
exe=./build/pipeline/eo-pipeline
seed=${SEED:-200}
labels=bench/data/trees200.geojson
made=$(/usr/bin/python3 bench/trees200.py labels out/demo/cube.zarr out/demo/world/labels 200 "$seed" "$labels")
mkdir -p bench/work
start=$(date +%s.%N)
$exe fewshot --labels "$labels" --label-property tree_cover > bench/work/trees200.log 2>&1 || { cat bench/work/trees200.log; exit 1; }
seconds=$(python3 -c "import sys; print(float(sys.argv[2]) - float(sys.argv[1]))" "$start" "$(date +%s.%N)")
scores=$(/usr/bin/python3 bench/trees200.py score out/demo/world/labels out/demo/fewshot/labels-trees200)
python3 - bench/results/trees200.json "$made" "$seconds" "$scores" out/demo/fewshot/labels-trees200/summary.json <<'PY'
import json, sys
out, made, seconds, scores, summary = sys.argv[1:]
s = json.load(open(summary))
best = s["targets"]["tree_cover"]
# The features and model that did best on the validation chips; their test R².
top = max(((f, v["r2_all"], v["model_all"], v["validation_r2_all"]) for f, v in best.items()), key=lambda x: x[3])
r = {"benchmark": "a tree-cover map from 200 labels (bench/trees200.sh): "
                  "eo-pipeline fewshot --labels bench/data/trees200.geojson --label-property tree_cover",
     "labels": json.loads(made), "fewshot_seconds": float(seconds), "split": s["split"],
     "best_with_all_training_chips_chosen_on_validation": {"features": top[0], "model": top[2], "test_r2": top[1],
                                                          "validation_r2": top[3]},
     "map_test_scores": s.get("map_test_scores"), "map_against_gdalwarp_average": json.loads(scores)}
json.dump(r, open(out, "w"), indent=2)
print(json.dumps(r, indent=2))
PY
/usr/bin/python3 bench/provenance.py "bench/results/trees200.json" bash bench/trees200.sh "$@"
