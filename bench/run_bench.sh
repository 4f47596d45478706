#!/usr/bin/env bash
# Benchmark of the main job, `run`, on the demo world (40 m chips):
#  - efficiency: run's end-to-end chips/s against the model's pure forward chips/s on
#    the same chips in the same benchmark (bench_embed), with a tiny model at 112 px so
#    that, as in production, the model is the bottleneck;
#  - scaling from 1 to 2 ranks;
#  - peak memory per rank on areas of 1, 2 and 6 tiles (nano model).
# Writes bench/results/run.json. Run after scripts/build.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
exe=./build/pipeline/eo-pipeline
work=$(pwd)/bench/work/run
rm -rf "$work" && mkdir -p "$work" bench/results
# config NAME AOI_WKT PRESET: the demo with another area and model, all configs sharing
# one synthetic world, and a model trained for two steps (throughput does not care).
config() {
  sed -e "s|^output: .*|output: $work/$1|" -e "s|    wkt: .*|    wkt: $2|" -e "s|  preset: .*|  preset: $3|" \
      -e "s|^synth:|synth:\n  output: $work/world|" \
      -e '/^pretrain:/,/^[a-z]/{/^pretrain:/d;/^  /d}' configs/demo.yaml > "$work/$1.yaml"
  printf 'pretrain:\n  steps: 2\n  batch: 4\n  checkpoint_every: 1000\n' >> "$work/$1.yaml"
}
demo_aoi=$(sed -n 's/^    wkt: //p' configs/demo.yaml)
small_aoi='POLYGON((-120.45 36.80, -120.05 36.80, -120.05 37.10, -120.45 37.10, -120.45 36.80))'
config tiny "$small_aoi" tiny
$exe synth "$work/tiny.yaml" -q
mpirun -np 2 $exe prepare "$work/tiny.yaml" -q > /dev/null
mpirun -np 2 $exe pretrain "$work/tiny.yaml" -q > /dev/null
checkpoint=$(ls "$work"/tiny/pretrain/checkpoints/step-*.pt | tail -1)
sed -i "s|^  preset: tiny|  preset: tiny\n  checkpoint: $checkpoint|" "$work/tiny.yaml"

$exe run "$work/tiny.yaml" --output "$work/np1" -q > /dev/null
# Unbound: a rank's prefetch thread must be free to use a core its model thread is not on.
mpirun -np 2 --bind-to none $exe run "$work/tiny.yaml" --output "$work/np2" -q > /dev/null
./build/bench/bench_embed "$work/tiny.yaml" "$work/forward.json" --threads 2 > /dev/null

# Memory against the number of tiles (nano, 1 rank, the same model for every area).
config nano "$demo_aoi" nano
mpirun -np 2 $exe prepare "$work/nano.yaml" -q > /dev/null
mpirun -np 2 $exe pretrain "$work/nano.yaml" -q > /dev/null
nano_checkpoint=$(ls "$work"/nano/pretrain/checkpoints/step-*.pt | tail -1)
sed -i "s|^  preset: nano|  preset: nano\n  checkpoint: $nano_checkpoint|" "$work/nano.yaml"
one_tile='POLYGON((-120.60 36.75, -120.50 36.75, -120.50 36.85, -120.60 36.85, -120.60 36.75))'
two_tiles='POLYGON((-120.60 36.75, -119.90 36.75, -119.90 36.85, -120.60 36.85, -120.60 36.75))'
sed "s|    wkt: .*|    wkt: $one_tile|" "$work/nano.yaml" > "$work/mem1.yaml"
sed "s|    wkt: .*|    wkt: $two_tiles|" "$work/nano.yaml" > "$work/mem2.yaml"
# With GDAL's default block cache (warp.cache_mb 256), which fills as sources are read, and
# with a small one, to see what is left when the cache is not filling up.
for area in mem1 mem2 nano; do
  $exe run "$work/$area.yaml" --output "$work/$area-run" -q > /dev/null
  printf 'warp:\n  cache_mb: 32\n' | cat "$work/$area.yaml" - > "$work/$area-c32.yaml"
  $exe run "$work/$area-c32.yaml" --output "$work/$area-c32-run" -q > /dev/null
done

/usr/bin/python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
load = lambda p: json.load(open(p))
np1, np2 = load(f"{work}/np1/run/report.json"), load(f"{work}/np2/run/report.json")
fwd = load(f"{work}/forward.json")
mem = {a: load(f"{work}/{a}-run/run/report.json") for a in ("mem1", "mem2", "nano")}
mem32 = {a: load(f"{work}/{a}-c32-run/run/report.json") for a in ("mem1", "mem2", "nano")}
result = {
    "benchmark": "run on the demo world (40 m chips, 112 px), tiny model, 2 cores",
    "chips": np1["chips_embedded"],
    "pure_forward_chips_per_s_2_threads": fwd["chips_per_second"],
    "run_np1_chips_per_s": np1["chips_per_second"],
    "run_np2_chips_per_s": np2["chips_per_second"],
    "efficiency_np1": np1["chips_per_second"] / fwd["chips_per_second"],
    "efficiency_np2": np2["chips_per_second"] / fwd["chips_per_second"],
    "scaling_np2_over_np1": np2["chips_per_second"] / np1["chips_per_second"],
    "stage_seconds_np1": np1["stage_seconds_all_ranks"],
    "stage_seconds_np2": np2["stage_seconds_all_ranks"],
    "peak_rss_mib_per_rank_np2": np2["peak_rss_mib_per_rank"],
    "peak_rss_mib_by_tiles_nano_np1": {str(r["tiles"]): r["peak_rss_mib_per_rank"][0] for r in mem.values()},
    "peak_rss_mib_by_tiles_nano_np1_cache_32mb": {str(r["tiles"]): r["peak_rss_mib_per_rank"][0] for r in mem32.values()},
}
json.dump(result, open("bench/results/run.json", "w"), indent=2)
print(json.dumps(result, indent=2))
PY
