#!/usr/bin/env bash
# Benchmark of the data path on the demo world: warp + chip throughput per rank against
# gdalwarp doing the same warps in the same run (bench_prepare), and the peak memory of
# each rank of `mpirun -np 2 eo-pipeline prepare`. Writes bench/results/prepare.json.
# Run after scripts/build.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
work=bench/work
rm -rf "$work/prepare" && mkdir -p "$work" bench/results
# One product per season (synth.layout: products): warp against gdalwarp, the same warps.
sed -e "s|^output: .*|output: $work/demo|" -e "s|^  layout: scenes.*|  layout: products|" configs/demo.yaml > "$work/demo.yaml"
[ -f "$work/demo/world/catalog.jsonl" ] || ./build/pipeline/eo-pipeline synth "$work/demo.yaml" -q
./build/bench/bench_prepare "$work/demo.yaml" "$work/throughput.json" > /dev/null
rm -rf "$work/demo/chips" "$work/demo/journal" "$work/demo/normalisation.json" "$work/demo/prepare"
/usr/bin/time -f '%e' -o "$work/prepare.time" mpirun -np 2 ./build/pipeline/eo-pipeline prepare "$work/demo.yaml" -q > /dev/null
python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
t = json.load(open(f"{work}/throughput.json"))
p = json.load(open(f"{work}/demo/prepare/report.json"))
result = {
    "benchmark": "data path on the demo world (40 m chips, products at 4x native pixel size)",
    "warp_chip_vs_gdalwarp": t,
    "prepare_mpirun_np2": {
        "wall_s": float(open(f"{work}/prepare.time").read().split()[0]),
        "chips": p["chips_written"], "tiles": p["tiles"],
        "peak_rss_mib_per_rank": p["peak_rss_mib_per_rank"],
    },
}
json.dump(result, open("bench/results/prepare.json", "w"), indent=2)
print(json.dumps({"ratio": t["ratio"], "ratio_without_gdalwarp_startup": t["ratio_without_gdalwarp_startup"],
                  "ours_megasamples_per_s": t["ours"]["megasamples_per_s"],
                  "gdalwarp_megasamples_per_s": t["gdalwarp"]["megasamples_per_s"],
                  **result["prepare_mpirun_np2"]}, indent=2))
PY
/usr/bin/python3 bench/provenance.py "bench/results/prepare.json" bash bench/prepare_bench.sh "$@"
