#!/usr/bin/env bash
# Benchmark: what an eo-pipeline call costs before it does anything (issue 33): `--help`,
# `plan` and `status` of the demo, `prepare --print-config` (which loads the stages module)
# and a `similar` query of the demo's cube, each run RUNS times (default 5): median wall
# time and peak memory (/usr/bin/time's), the shared libraries the executable
# loads, and where `--help`'s time
# goes by library (perf, when it is installed and allowed). With BEFORE=EXE (and
# BEFORE_COMMIT, its commit) the same for another build's executable, in the same run.
# Writes bench/results/startup.json. Run after scripts/build.sh (status reads out/demo
# when the demo has run; it says so when not).
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/results/startup.json
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
runs=${RUNS:-5}
measure() {  # name, command...: one JSON object
  # Wall time to the millisecond here; peak memory from /usr/bin/time, a small C program
  # (a child forked from Python reports Python's memory as its peak).
  python3 - "$runs" "$work/rss" "$@" <<'PY'
import json, statistics, subprocess, sys, time
runs, rss_file, name, command = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
seconds, rss = [], []
for _ in range(runs):
    start = time.perf_counter()
    subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss_file] + command,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds.append(time.perf_counter() - start)
    rss.append(int(open(rss_file).read().split()[-1]) / 1024)
print(json.dumps({"command": name, "runs": runs, "median_seconds": round(statistics.median(seconds), 4),
                  "median_peak_rss_mib": statistics.median(rss)}))
PY
}
profile() {  # exe: one JSON object
  local exe=$1 by_library='null'
  local help plan status module
  help=$(measure "--help" "$exe" --help)
  plan=$(measure "plan (embedded demo)" "$exe" plan --output "$work/plan")
  status=$(measure "status of out/demo" "$exe" status --output out/demo)
  module=$(measure "prepare --print-config" "$exe" prepare --print-config)
  similar=$(measure "similar --lonlat=-121.53,37.62 -k 10 of out/demo" "$exe" similar --lonlat=-121.53,37.62 -k 10 \
            --output out/demo --out "$work/similar")
  if command -v perf > /dev/null && perf record -q -o "$work/perf.data" "$exe" --help > /dev/null 2>&1; then
    by_library=$(perf report -q -i "$work/perf.data" --no-children --sort dso -g none 2>/dev/null | python3 -c '
import json, sys
shares = {}
for line in sys.stdin:
    parts = line.split()
    if len(parts) >= 2 and parts[0].endswith("%"):
        shares[parts[1]] = float(parts[0].rstrip("%"))
print(json.dumps(dict(sorted(shares.items(), key=lambda kv: -kv[1])[:8])))')
  fi
  echo "{\"calls\": [$help, $plan, $status, $module, $similar], \"shared_libraries_loaded\": $(ldd "$exe" | wc -l),
         \"help_time_by_library_percent\": $by_library}"
}
now=$(profile ./build/pipeline/eo-pipeline)
before='null'
[ -n "${BEFORE:-}" ] && before=$(profile "$BEFORE" | python3 -c '
import json, sys
r = json.load(sys.stdin)
r["commit"] = sys.argv[1]
print(json.dumps(r))' "${BEFORE_COMMIT:-?}")
python3 - "$out" "$now" "$before" <<'PY'
import json, sys
out, now, before = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
r = {"benchmark": "start-up cost (bench/startup_bench.sh)", **now}
if before:
    r["before"] = before
json.dump(r, open(out, "w"), indent=2)
for label, p in (("now", r), ("before", before)):
    if p:
        for c in p["calls"]:
            print(f"{label}: {c['command']}: {c['median_seconds']:.2f} s, {c['median_peak_rss_mib']:.0f} MiB")
        print(f"{label}: {p['shared_libraries_loaded']} shared libraries; --help's time by library: "
              f"{p['help_time_by_library_percent']}")
PY
/usr/bin/python3 bench/provenance.py "$out" ${BEFORE:+BEFORE=$BEFORE BEFORE_COMMIT=${BEFORE_COMMIT:-?}} bash bench/startup_bench.sh "$@"
