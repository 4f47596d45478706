#!/usr/bin/env bash
# Peak memory of a rank compositing a season of 1, 10 and 30 scenes: the synthetic world
# published as scenes (synth.layout: scenes) over one tile, with N Sentinel-2 and N
# Sentinel-1 scenes per season, then `eo-pipeline prepare` on one rank; its report gives
# the peak resident memory and the time. Writes bench/results/composite_memory.json.
# Run after scripts/build.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
work=bench/work/composite
rm -rf "$work" && mkdir -p "$work" bench/results
for n in 1 10 30; do
  cat > "$work/n$n.yaml" <<YAML
name: composite-$n
output: $work/n$n
grid:
  pixel_size: 40
aois:
  - name: one-tile
    wkt: POLYGON((-120.95 37.00, -120.75 37.00, -120.75 37.15, -120.95 37.15, -120.95 37.00))
synth:
  seed: 7
  resolution_scale: 4
  layout: scenes
  s2_scenes: $n
  s1_scenes: $n
  missing_fraction: 0
  acquisition_effects: 1
YAML
  ./build/pipeline/eo-pipeline plan "$work/n$n.yaml" -q > /dev/null
  ./build/pipeline/eo-pipeline synth "$work/n$n.yaml" -q > /dev/null
  /usr/bin/time -f '%e %M' -o "$work/n$n.time" ./build/pipeline/eo-pipeline prepare "$work/n$n.yaml" -q > /dev/null
  du -sm "$work/n$n/world" | cut -f1 > "$work/n$n.world_mib"
  rm -rf "$work/n$n/world/sentinel-"*  # the scenes are big; the report stays
done
python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
rows = []
for n in (1, 10, 30):
    report = json.load(open(f"{work}/n{n}/prepare/report.json"))
    wall, max_kib = open(f"{work}/n{n}.time").read().split()
    rows.append({"scenes_per_season": n, "chips": report["chips_written"], "tiles": report["done"],
                 "world_mib": int(open(f"{work}/n{n}.world_mib").read()),
                 "peak_rss_mib": report["peak_rss_mib_per_rank"][0],
                 "max_rss_mib_by_time": round(int(max_kib) / 1024, 1), "wall_s": float(wall)})
result = {"benchmark": "peak memory of one rank compositing N Sentinel-2 and N Sentinel-1 scenes per season "
                       "over one tile at 40 m (warp.memory_mb 256: the strip budget)",
          "runs": rows}
json.dump(result, open("bench/results/composite_memory.json", "w"), indent=2)
print(json.dumps(result, indent=2))
PY
/usr/bin/python3 bench/provenance.py "bench/results/composite_memory.json" bash bench/composite_memory.sh "$@"
