#!/usr/bin/env bash
# Benchmark of the main job, `run`, on the demo world (40 m chips):
#  - efficiency: run's end-to-end chips/s against the model's pure forward chips/s on
#    the same chips in the same benchmark (bench_embed), with a tiny model at 112 px so
#    that, as in production, the model is the bottleneck;
#  - scaling from 1 to 2 ranks;
#  - resident memory after every tile of one rank over a larger area (nano model).
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

# Memory from tile to tile: one rank over a larger area (80 m chips, a world of its own),
# resident memory after every tile. A nano model, trained two steps on the demo area.
config nano "$demo_aoi" nano
mpirun -np 2 $exe prepare "$work/nano.yaml" -q > /dev/null
mpirun -np 2 $exe pretrain "$work/nano.yaml" -q > /dev/null
nano_checkpoint=$(ls "$work"/nano/pretrain/checkpoints/step-*.pt | tail -1)
large_aoi='POLYGON((-121.50 36.20, -119.50 36.20, -119.50 37.70, -121.50 37.70, -121.50 36.20))'
config mem "$large_aoi" nano
sed -i -e "s|^  preset: nano|  preset: nano\n  checkpoint: $nano_checkpoint|" -e "s|^  pixel_size: .*|  pixel_size: 80|" \
       -e "s|^  output: $work/world|  output: $work/mem-world|" -e "s|^  resolution_scale: .*|  resolution_scale: 8|" "$work/mem.yaml"
$exe synth "$work/mem.yaml" -q > /dev/null
$exe run "$work/mem.yaml" -q > /dev/null
# The same with a 32 MB GDAL block cache: what remains when the cache is not filling.
printf 'warp:\n  cache_mb: 32\n' | cat "$work/mem.yaml" - | sed "s|^output: .*|output: $work/mem32|" > "$work/mem32.yaml"
$exe run "$work/mem32.yaml" -q > /dev/null

/usr/bin/python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
load = lambda p: json.load(open(p))
np1, np2 = load(f"{work}/np1/run/report.json"), load(f"{work}/np2/run/report.json")
fwd = load(f"{work}/forward.json")
def memory(name):
    r = load(f"{work}/{name}/run/report.json")
    rss = r["rss_mib_after_each_tile_rank0"]
    return {"tiles": r["tiles"], "chips": r["chips_embedded"], "rss_mib_after_each_tile": rss,
            "peak_rss_mib": r["peak_rss_mib_per_rank"][0],
            "max_rss_mib_first_half": max(rss[:len(rss) // 2]), "max_rss_mib_second_half": max(rss[len(rss) // 2:])}
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
    "memory_run_nano_np1_cache_256mb": memory("mem"),
    "memory_run_nano_np1_cache_32mb": memory("mem32"),
}
json.dump(result, open("bench/results/run.json", "w"), indent=2)
print(json.dumps(result, indent=2))
PY
/usr/bin/python3 bench/provenance.py "bench/results/run.json" bash bench/run_bench.sh "$@"
