#!/usr/bin/env bash
# Benchmark: start-up against the number of past runs (issue 17). Journals of 1, 100 and
# 1,000 past runs of 64 ranks over 5,000 tiles, uncompacted (as before) and compacted (as
# runs leave them now): files a start opens and the journal's reading time from a cold
# page cache (bench_journal), and `eo-pipeline status` end to end from a cold cache.
# Writes bench/results/journal_startup.json. Run as root (dropping the page cache) after
# scripts/build.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
exe=./build/pipeline/eo-pipeline
out=bench/results/journal_startup.json
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
./build/bench/bench_journal "$tmp" 64 5000 ${RUNS:-1 100 1000} > "$tmp/read.json"
for case_dir in "$tmp"/*/; do
  sync; echo 3 > /proc/sys/vm/drop_caches
  /usr/bin/time -f '%e' -o "$case_dir/status.time" "$exe" status -q --json --output "$case_dir" > /dev/null
done
python3 - "$tmp" "$out" <<'PY'
import json, os, sys
tmp, out = sys.argv[1], sys.argv[2]
result = json.load(open(f"{tmp}/read.json"))
result["benchmark"] = "journal start-up against past runs (bench/journal_startup.sh)"
for c in result["cases"]:
    name = f"{c['past_runs']}-{'compacted' if c['journal'] == 'compacted' else 'files'}"
    c["status_cold_s"] = float(open(f"{tmp}/{name}/status.time").read())
json.dump(result, open(out, "w"), indent=2)
for c in result["cases"]:
    print(f"{c['past_runs']:>5} runs {c['journal']:>26}: {c['files_in_journal']:>6} files, "
          f"{c['files_opened_per_start_all_ranks']:>8} opens per start, read {c['read_cold_s']:.3f} s cold, "
          f"status {c['status_cold_s']:.2f} s cold")
PY
/usr/bin/python3 bench/provenance.py "$out" bash bench/journal_startup.sh "$@"
