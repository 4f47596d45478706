#!/usr/bin/env bash
# Benchmark: warp rates per kind of source on one core (bench_warp), beside gdalwarp doing
# the same warp and the machine's copy bandwidth measured in the same run: a source on
# the tile's own grid, one of the neighbouring zone, one in EPSG:4326, and composites of
# 1, 10 and 30 scenes with their peak memory. Sources live in /dev/shm (the rates are of
# the warp, not of a disk). Writes bench/results/warp_rates.json. Run after scripts/build.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=/dev/shm/eo_bench_warp_$$
trap 'rm -rf "$dir"' EXIT
out=bench/results/warp_rates.json
mkdir -p bench/results
: > "$dir.lines"
for c in aligned other-zone geographic composite-1 composite-10 composite-30; do
  ./build/bench/bench_warp "$dir" "$c" > /dev/null  # writes the sources
  /usr/bin/time -f '%M' -o "$dir.rss" ./build/bench/bench_warp "$dir" "$c" > "$dir.line"
  python3 -c "import json,sys; j=json.load(open('$dir.line')); j['peak_rss_mib']=int(open('$dir.rss').read().split()[-1])/1024; print(json.dumps(j))" >> "$dir.lines"
  tail -1 "$dir.lines"
done
python3 - "$dir.lines" "$out" <<'PY'
import json, os, platform, sys
cases = [json.loads(l) for l in open(sys.argv[1])]
result = {"benchmark": "warp rates per source kind, one core (bench/warp_rates.sh)",
          "machine": {"cpus": os.cpu_count(), "processor": platform.processor()},
          "goals_msamples_per_s": {"aligned": 100, "other_crs": 25},
          "cases": {c["case"]: c for c in cases}}
json.dump(result, open(sys.argv[2], "w"), indent=2)
PY
rm -f "$dir.lines" "$dir.line" "$dir.rss"
/usr/bin/python3 bench/provenance.py "$out" bash bench/warp_rates.sh "$@"
