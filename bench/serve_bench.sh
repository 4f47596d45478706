#!/usr/bin/env bash
# Benchmark: `eo-pipeline serve` on the demo's cube (issue 30), over HTTP on this machine:
# PCA tiles rendered and cached, a click (the chip, its similar chips), a heat tile, and
# Train on 200 tree-cover labels to the map's tiles (bench/bench_serve.cpp says how).
# Run after the demo (scripts/demo.sh). Writes bench/results/serve.json.
set -euo pipefail
cd "$(dirname "$0")/.."
cube=${CUBE:-out/demo/cube.zarr}
labels=${LABELS_DIR:-out/demo/world/labels}
work=bench/work/serve
out=bench/results/serve.json
mkdir -p "$work"
./build/bench/bench_serve "$cube" "$labels" "$work" "${LABELS:-200}" > "$work/serve.json"
python3 - "$work/serve.json" "$out" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
json.dump(r, open(sys.argv[2], "w"), indent=2)
t = r["pca_tiles"]
print(f"{r['embedded_chips']} chips, opened in {r['open_seconds']:.2f} s | PCA tile rendered (median/max ms): "
      + ", ".join(f"z{z} {t[z]['rendered']['median_ms']:.1f}/{t[z]['rendered']['max_ms']:.1f}" for z in t)
      + " | cached: " + ", ".join(f"z{z} {t[z]['cached']['median_ms']:.2f}/{t[z]['cached']['max_ms']:.2f}" for z in t)
      + f" | click to similar {r['click_to_similar']['median_ms']:.1f}/{r['click_to_similar']['max_ms']:.1f} ms"
      + f" | train on {r['train']['labels']} labels {r['train']['fit']['median_ms']:.0f} ms, with the map's tiles "
      + f"{r['train']['fit_and_map_tiles']['median_ms']:.0f} ms; held out {r['train']['held_out']}")
PY
/usr/bin/python3 bench/provenance.py "$out" bash bench/serve_bench.sh "$@"
