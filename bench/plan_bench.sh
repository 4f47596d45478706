#!/usr/bin/env bash
# Benchmark: planning the five paper AOIs (~750K chips at 10 m) with a partition preview.
# Writes wall-clock seconds and peak resident memory of each repetition, and the best, to
# bench/results/plan.json. Run after scripts/build.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
exe=./build/pipeline/eo-pipeline
out=bench/results/plan.json
mkdir -p bench/results
reps=${REPS:-5}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for i in $(seq "$reps"); do
  /usr/bin/time -f '%e %M' -o "$tmp/time.$i" \
    "$exe" plan configs/paper.yaml --quiet --json --ranks 64 --output "$tmp/out" > "$tmp/plan.$i.json"
done
python3 - "$tmp" "$reps" "$out" <<'PY'
import json, sys, platform, os
tmp, reps, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
runs = []
for i in range(1, reps + 1):
    wall, rss_kb = open(f"{tmp}/time.{i}").read().split()
    plan = json.load(open(f"{tmp}/plan.{i}.json"))
    runs.append({"wall_s": float(wall), "peak_rss_mib": int(rss_kb) / 1024, "plan_s": plan["seconds"]})
result = {
    "benchmark": "plan configs/paper.yaml --ranks 64",
    "machine": {"cpus": os.cpu_count(), "processor": platform.processor()},
    "tiles": plan["total"]["tiles"], "chips": plan["total"]["chips"],
    "land_fraction": plan["total"]["land_fraction"],
    "imbalance_64_ranks": plan["partition"]["imbalance"],
    "best_wall_s": min(r["wall_s"] for r in runs),
    "max_peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
    "runs": runs,
}
json.dump(result, open(out, "w"), indent=2)
print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))
PY
/usr/bin/python3 bench/provenance.py "$out" bash bench/plan_bench.sh "$@"
