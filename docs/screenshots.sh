#!/usr/bin/env bash
# The README's pictures of `eo-pipeline serve`, taken on the demo's cube (run the demo
# first) by the browser test's own script (tests/python/browse_explorer.py, headless
# chromium): a click at -121.53, 37.62 with its similar chips, then 10 chips labelled by
# the demo world's tree cover (5 of 50% or more, 5 of none) and Train. Writes
# docs/images/explorer_click.png and explorer_map.png.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
port=${PORT:-8799}
./build/pipeline/eo-pipeline serve --output out/demo --port "$port" > "$work/serve.log" 2>&1 &
serve=$!
trap 'kill $serve 2>/dev/null; wait $serve 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do grep -q "serving" "$work/serve.log" && break; sleep 0.2; done
/usr/bin/python3 - "http://127.0.0.1:$port" out/demo/world/labels "$work/plan.json" <<'PY'
import glob, json, sys, urllib.request
from osgeo import gdal
sys.path.insert(0, "bench")
from trees200 import cover_at  # the tree cover at a point, as the benches read it
url, labels, plan_file = sys.argv[1:]
get = lambda path: json.load(urllib.request.urlopen(url + path))
rasters = [gdal.Open(f) for f in sorted(glob.glob(labels + "/*.tif"))]
cover = lambda lon, lat: cover_at(rasters, lon, lat)
chip = get("/api/chip?lon=-121.53&lat=37.62")
item = next(o["id"] for m in chip["made_from"].values() for s in m["seasons"] for o in s["observations"])
hits = [h["id"] for h in get(f"/api/similar?id={chip['id']}&k=10")["hits"]]
lon0, lat0, lon1, lat1 = get("/api/cube")["bbox"]
positives, negatives, seen = [], [], set()
for i in range(40):
    for j in range(40):
        lon, lat = lon0 + (i + 0.5) * (lon1 - lon0) / 40, lat0 + (j + 0.5) * (lat1 - lat0) / 40
        try:
            c = get(f"/api/chip?lon={lon}&lat={lat}")
        except Exception:
            continue
        if c["status"] != "embedded" or c["id"] in seen:
            continue
        seen.add(c["id"])
        v = cover(*c["lonlat"])
        if v is not None and v >= 50 and len(positives) < 5 and i % 3 == 0:
            positives.append(c["lonlat"])
        if v == 0 and len(negatives) < 5 and j % 3 == 0:
            negatives.append(c["lonlat"])
lon, lat = chip["lonlat"]
polygon = [[lon + 0.2, lat - 0.02], [lon + 0.26, lat - 0.02], [lon + 0.26, lat + 0.02], [lon + 0.2, lat + 0.02]]
json.dump({"inspect": {"lonlat": chip["lonlat"], "id": chip["id"], "item": item, "similar": hits},
           "positives": positives, "negatives": negatives, "class": "trees", "polygon": polygon}, open(plan_file, "w"))
PY
/usr/bin/python3 tests/python/browse_explorer.py "http://127.0.0.1:$port/" "$work/plan.json" "$work"
cp "$work/explorer_click.png" "$work/explorer_map.png" docs/images/
echo "docs/images/explorer_click.png, docs/images/explorer_map.png"
