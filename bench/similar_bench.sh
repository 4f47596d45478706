#!/usr/bin/env bash
# Benchmark: `similar` at scale (issue 18). For each embedding size (DIMS, default 64 and
# 768), a synthetic float32 cube of CHIPS chips (default 1,000,000; clustered vectors),
# QUERIES chips of it as queries (default 256):
#   - our exact search, BATCH queries a pass over the cube (default 64), and its peak memory;
#   - `serve`'s exact search over the vectors held in memory: all queries at once, and one
#     at a time (a click each);
#   - our FAISS index (auto: IVF~sqrt(n),SQ8): build time, size, queries/s, recall@K
#     against our exact hits;
#   - python3-faiss doing the same from numpy, as a Python user would (similar_faiss.py):
#     load, exact (IndexFlatIP), the same index factory and nprobe.
# Writes bench/results/similar.json. Run after scripts/build.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
bench=./build/bench/bench_similar
out=bench/results/similar.json
work=bench/work/similar
chips=${CHIPS:-1000000}
queries=${QUERIES:-256}
batch=${BATCH:-64}
k=${K:-10}
threads=$(nproc)
# The same threads on both sides, and no BLAS threads beneath them: our exact search runs
# `threads` tiles at once, each through single-threaded BLAS; FAISS runs `threads` OpenMP
# threads. Left to themselves, OpenBLAS's own threads multiply under both and fight for
# the cores (the comparison before 2026-12-07 let them).
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=$threads
mkdir -p "$work"
results=()
for dim in ${DIMS:-64 768}; do
  cube="$work/cube_$dim.zarr"
  make=$("$bench" make "$cube" "$dim" "$chips" "$threads")
  echo "$make"
  "$bench" queries "$cube" "$queries" "$work/queries.json" > /dev/null
  exact=$("$bench" exact "$cube" "$work/queries.json" "$k" "$batch" "$threads" "$work/exact_$dim.json")
  echo "$exact"
  memory=$("$bench" memory "$cube" "$work/queries.json" "$k" "$threads" "$work/exact_$dim.json")
  echo "$memory"
  index=$("$bench" index "$cube" auto 0 "$threads" "$work/queries.json" "$k" "$work/exact_$dim.json" "$work/index_$dim.json")
  echo "$index"
  factory=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["factory"])' "$index")
  nprobe=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["nprobe"])' "$index")
  python=$(/usr/bin/python3 bench/similar_faiss.py "$cube" "$work/queries.json" "$k" "$factory" "$nprobe" "$work/exact_$dim.json")
  echo "$python"
  cube_mib=$(du -sm "$cube" | cut -f1)
  results+=("{\"dim\": $dim, \"cube_mib\": $cube_mib, \"make\": $make, \"ours_exact\": $exact, \"ours_in_memory\": $memory, \"ours_index\": $index, \"python_faiss\": $python}")
  rm -rf "$cube"
done
python3 - "$out" "${results[@]}" <<'PY'
import json, sys
cases = [json.loads(r) for r in sys.argv[2:]]
import os
json.dump({"benchmark": "similar at scale (bench/similar_bench.sh)",
           "threads": {"ours_exact_tiles_at_once": int(os.environ["OMP_NUM_THREADS"]), "faiss_omp": int(os.environ["OMP_NUM_THREADS"]),
                       "openblas_per_thread": int(os.environ["OPENBLAS_NUM_THREADS"])},
           "cases": cases}, open(sys.argv[1], "w"), indent=2)
for c in cases:
    e, i, p, m = c["ours_exact"], c["ours_index"], c["python_faiss"], c["ours_in_memory"]
    print(f"dim {c['dim']}: one query at a time (median): exact from disk {e['single_median_ms']:.0f} ms, index "
          f"{i['single_median_ms']:.2f} ms, in memory {m['single_median_ms']:.1f} ms")
    print(f"dim {c['dim']}: in memory ({m['bytes'] / 2**20:.0f} MiB, read in {m['load_seconds']:.1f} s): ours "
          f"{m['batch_queries_per_second']:.0f} q/s all at once, {m['single_queries_per_second']:.0f} q/s one at a time "
          f"(median {m['single_median_ms']:.1f} ms), recall {m['batch_recall_at_k']:.3f}; FAISS IndexFlatIP "
          f"{p['exact_queries_per_second']:.0f} q/s all at once, {p['exact_single_queries_per_second']:.0f} one at a time; "
          f"index nprobe sweep: " + ", ".join(f"{s['nprobe']}: {s['queries_per_second']:.0f} q/s {s['recall_at_k']:.3f}"
                                              for s in i.get("nprobe_sweep", [])))
    print(f"dim {c['dim']}: {c['make']['chips']} chips, cube {c['cube_mib']} MiB | exact: ours {e['queries_per_second']:.1f} q/s "
          f"(peak {e['peak_rss_mib']:.0f} MiB), numpy+faiss {p['exact_queries_per_second']:.1f} q/s after a "
          f"{p['load_seconds']:.1f} s load (peak {p['peak_rss_mib']:.0f} MiB), same top-{e.get('k', 10)}: "
          f"{p['exact_agrees_with_ours']:.3f} | index {i['factory']} nprobe {i['nprobe']}: ours built in "
          f"{i['build_seconds']:.1f} s, {i['bytes'] / 2**20:.0f} MiB, {i['queries_per_second']:.0f} q/s, recall@{i['k']} "
          f"{i['recall_at_k']:.3f}; faiss from numpy built in {p['index_build_seconds']:.1f} s, "
          f"{p['index_queries_per_second']:.0f} q/s, recall {p['index_recall_at_k']:.3f}")
PY
/usr/bin/python3 bench/provenance.py "$out" bash bench/similar_bench.sh "$@"
