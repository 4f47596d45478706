#!/usr/bin/env bash
# The GPU side of issue 17, in one call of a few minutes on a machine with an NVIDIA GPU
# and PyTorch: builds the model stage on its own against PyTorch's (CUDA) LibTorch, then
# measures the paper preset's forward pass in bf16 (chips/s, fraction of the bf16 matrix
# product), its agreement with the CPU float32 embeddings, a training step, and the
# PyTorch mirror of the same encoder eager and with torch.compile. Without a GPU it
# builds against Debian's LibTorch and measures the tiny preset on the CPU (a check of
# the script, not a GPU number). Writes bench/results/gpu_<device>.json.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$here/../..
python=${PYTHON:-python3}
$python -c "import torch" 2>/dev/null || {
  echo "bench/gpu/run.sh: $python cannot import torch; set PYTHON to an interpreter with PyTorch" \
       "(Debian's: PYTHON=/usr/bin/python3 with python3-torch)" >&2
  exit 2
}
prefix=$($python -c "import torch; print(torch.utils.cmake_prefix_path)" 2>/dev/null || true)
device=cpu preset=${PRESET:-tiny} batch=${BATCH:-4}
if $python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  device=cuda preset=${PRESET:-paper} batch=${BATCH:-64}
fi
build=${BUILD:-$here/build}
mkdir -p "$build"
log=$build/build.log
cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release ${prefix:+-DCMAKE_PREFIX_PATH="$prefix"} > "$log" 2>&1 \
  || { cat "$log"; exit 1; }
cmake --build "$build" -j "$(nproc)" >> "$log" 2>&1 || { tail -50 "$log"; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$build/bench_gpu" --device "$device" --preset "$preset" --batch "$batch" --dir "$work" > "$work/cpp.json"
$python "$here/mirror_bench.py" "$work" "$device" "$batch" > "$work/mirror.json"
mkdir -p "$root/bench/results"
$python - "$work" "$root/bench/results/gpu_$device.json" <<'PY'
import json, sys
work, out = sys.argv[1], sys.argv[2]
result = {"benchmark": "bench/gpu/run.sh", "cpp": json.load(open(f"{work}/cpp.json")),
          "pytorch_mirror": json.load(open(f"{work}/mirror.json"))}
json.dump(result, open(out, "w"), indent=2)
print(json.dumps(result, indent=2))
PY
$python "$root/bench/provenance.py" "$root/bench/results/gpu_$device.json" ${PYTHON:+PYTHON=$PYTHON} bash bench/gpu/run.sh "$@"
