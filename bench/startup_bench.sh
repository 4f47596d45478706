#!/usr/bin/env bash
# Benchmark: what an eo-pipeline call costs before it does anything (issue 33): `--help`,
# `plan` and `status` of the demo, each run RUNS times (default 5): median wall time and
# peak memory (/usr/bin/time), the shared libraries the executable loads, and where
# `--help`'s time goes by library (perf, when it is installed and allowed).
# Writes bench/results/startup.json. Run after scripts/build.sh (status reads out/demo
# when the demo has run; it says so when not).
set -euo pipefail
cd "$(dirname "$0")/.."
exe=./build/pipeline/eo-pipeline
out=bench/results/startup.json
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
runs=${RUNS:-5}
measure() {  # name, command...: one JSON object
  local name=$1; shift
  for _ in $(seq "$runs"); do
    /usr/bin/time -f "%e %M" -o "$work/t" "$@" > /dev/null 2>&1 || true
    cat "$work/t"
  done | python3 -c '
import json, statistics, sys
rows = [l.split() for l in sys.stdin if l.strip()]
print(json.dumps({"command": sys.argv[1], "runs": len(rows),
                  "median_seconds": statistics.median(float(r[0]) for r in rows),
                  "median_peak_rss_mib": statistics.median(int(r[1]) for r in rows) / 1024}))' "$name"
}
help=$(measure "--help" "$exe" --help)
plan=$(measure "plan (embedded demo)" "$exe" plan --output "$work/plan")
status=$(measure "status of out/demo" "$exe" status --output out/demo)
libs=$(ldd "$exe" | wc -l)
by_library='null'
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
python3 - "$out" "$help" "$plan" "$status" "$libs" "$by_library" <<'PY'
import json, subprocess, sys
out, help_, plan, status, libs, by_library = sys.argv[1:]
run = lambda *a: subprocess.run(list(a), capture_output=True, text=True).stdout.strip()
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
r = {"benchmark": "start-up cost (bench/startup_bench.sh)", "date": run("date", "-u", "+%Y-%m-%dT%H:%M:%SZ"),
     "commit": run("git", "rev-parse", "--short", "HEAD"), "machine": f"{run('nproc')} cores, {cpu}",
     "calls": [json.loads(help_), json.loads(plan), json.loads(status)], "shared_libraries_loaded": int(libs),
     "help_time_by_library_percent": json.loads(by_library)}
json.dump(r, open(out, "w"), indent=2)
for c in r["calls"]:
    print(f"{c['command']}: {c['median_seconds']:.2f} s, {c['median_peak_rss_mib']:.0f} MiB")
print(f"{libs} shared libraries; --help's time by library: {r['help_time_by_library_percent']}")
PY
