#!/usr/bin/env bash
# Benchmark: the demo's `run` end to end on 2 ranks (issue 17), from its sources and from
# the chip stores `prepare` wrote (`--inputs chip-stores`), the two cubes compared bit for
# bit, and, when BEFORE_EXE names an older build's eo-pipeline, that build's `run` on the
# same world and model in the same session. Writes bench/results/run_data_path.json.
#
#   DEMO=DIR bench/run_data_path.sh   # DIR: an output where synth, prepare and pretrain ran
#                                     # (default: made here with configs/demo.yaml, ~10 min)
set -euo pipefail
cd "$(dirname "$0")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
exe=$PWD/build/pipeline/eo-pipeline
work=bench/work/run_data_path
mkdir -p "$work" bench/results
demo=${DEMO:-$PWD/$work/demo}
sed -e "s|^output: .*|output: $demo|" configs/demo.yaml > "$work/demo.yaml"
if [ ! -d "$demo/pretrain" ]; then
  "$exe" synth "$work/demo.yaml" -q
  mpirun -np 2 "$exe" prepare "$work/demo.yaml" -q > /dev/null
  mpirun -np 2 "$exe" pretrain "$work/demo.yaml" -q > /dev/null
fi
# One `run` into a fresh cube: the journal's run records and the cubes go first.
one_run() {  # NAME EXE [ARGS...]
  local name=$1 bin=$2; shift 2
  rm -rf "$demo/cubes" "$demo/cube.zarr" "$demo"/journal/run-* "$demo/journal/run.snapshot.jsonl"
  mpirun -np 2 "$bin" run "$work/demo.yaml" -q "$@" > /dev/null
  cp "$demo/run/report.json" "$work/$name.json"
  rm -rf "$work/$name.zarr" && cp -r "$(readlink -f "$demo/cube.zarr")" "$work/$name.zarr"
}
# A first run of the session is slower whatever the build (cold caches: 29 against 38-40
# chips/s in alternating runs of two builds), so one unmeasured run goes first.
one_run warm-up "$exe"
if [ -n "${BEFORE_EXE:-}" ]; then one_run before "$BEFORE_EXE"; fi
one_run sources "$exe"
one_run chip_stores "$exe" --inputs chip-stores
/usr/bin/python3 - "$work" "${BEFORE_EXE:-}" <<'PY'
import json, os, sys
work, before_exe = sys.argv[1], sys.argv[2]
def files(root):
    out = {}
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            rel = os.path.relpath(p, root)
            data = open(p, "rb").read()
            if n in (".zattrs", ".zmetadata"):  # the creation time is a fact of the run
                j = json.loads(data)
                j.pop("created", None)
                if "metadata" in j: j["metadata"].get(".zattrs", {}).pop("created", None)
                data = json.dumps(j, sort_keys=True).encode()
            if rel.startswith("stac/items/"):  # so is the time its Item was written
                j = json.loads(data)
                j["properties"].pop("processing:datetime", None)
                data = json.dumps(j, sort_keys=True).encode()
            out[rel] = data
    return out
a, b = files(f"{work}/sources.zarr"), files(f"{work}/chip_stores.zarr")
differ = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
runs = {}
for name in ("before", "sources", "chip_stores"):
    if os.path.exists(f"{work}/{name}.json") and (name != "before" or before_exe):
        r = json.load(open(f"{work}/{name}.json"))
        runs[name] = {k: r[k] for k in ("seconds", "chips_embedded", "chips_per_second", "stage_seconds_all_ranks",
                                        "peak_rss_mib_per_rank")}
        runs[name].update({k: r[k] for k in ("tiles_from_chip_stores", "tiles_from_sources") if k in r})
result = {"benchmark": "the demo's run on 2 ranks, from sources and from chip stores (bench/run_data_path.sh)",
          "runs": runs,
          "cube_files_compared": len(a), "cube_from_chip_stores_identical": not differ, "files_differing": differ[:10]}
if "before" in runs:
    result["chips_per_second_after_over_before"] = runs["sources"]["chips_per_second"] / runs["before"]["chips_per_second"]
result["chip_stores_over_sources"] = runs["chip_stores"]["chips_per_second"] / runs["sources"]["chips_per_second"]
json.dump(result, open("bench/results/run_data_path.json", "w"), indent=2)
print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))
for n, r in runs.items(): print(n, r["chips_per_second"], r["stage_seconds_all_ranks"])
if differ: sys.exit("the cube from chip stores differs from the cube from sources")
PY
/usr/bin/python3 bench/provenance.py "bench/results/run_data_path.json" ${DEMO:+DEMO=$DEMO} ${BEFORE_EXE:+BEFORE_EXE=$BEFORE_EXE} bash bench/run_data_path.sh "$@"
