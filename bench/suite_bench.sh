#!/usr/bin/env bash
# The test suite's time from a clean clone, as the README's second command runs it:
# clones this repository's HEAD into a fresh folder, runs `bash scripts/test.sh` there
# and writes bench/results/suite.json (wall-clock of the whole command and of ctest alone,
# the tests run and passed). Commit first: the clone has only what is committed. Run on
# an otherwise idle machine; it builds from nothing (two jobs).
set -euo pipefail
cd "$(dirname "$0")/.."
clone=$(mktemp -d)/eo-pipeline
trap 'rm -rf "$(dirname "$clone")"' EXIT
git clone -q . "$clone"
log=bench/work/suite.log
mkdir -p bench/work bench/results
start=$(date +%s.%N)
status=0
(cd "$clone" && bash scripts/test.sh) > "$log" 2>&1 || status=$?
end=$(date +%s.%N)
/usr/bin/python3 - "$log" "$start" "$end" "$status" "$(git rev-parse --short HEAD)" <<'PY'
import json, re, sys
log, start, end, status, head = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
text = open(log).read()
summary = re.search(r"(\d+)% tests passed, (\d+) tests failed out of (\d+)", text)
ctest = re.search(r"Total Test time \(real\) = +([\d.]+) sec", text)
if not summary or not ctest:
    sys.exit(f"no ctest summary in {log} (exit {status})")
total, failed = int(summary.group(3)), int(summary.group(2))
r = {"benchmark": "the test suite from a clean clone (bash scripts/test.sh)", "clone_of": head,
     "seconds": round(end - start, 1), "ctest_seconds": float(ctest.group(1)), "tests": total,
     "passed": total - failed, "exit_code": status}
json.dump(r, open("bench/results/suite.json", "w"), indent=2)
print(json.dumps(r, indent=2))
PY
/usr/bin/python3 bench/provenance.py bench/results/suite.json bash bench/suite_bench.sh "$@"
