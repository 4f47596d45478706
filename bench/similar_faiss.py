"""The same searches as bench_similar, the way a Python user would do them: the cube's
fused embeddings read with zarr-python into numpy (the window of each zone that holds
chips), normalised, searched exactly with faiss.IndexFlatIP and approximately with the
same index_factory string and nprobe as ours (python3-faiss from Debian). Searches are
timed alone: reading, normalising and adding the vectors are not in them.

usage: /usr/bin/python3 similar_faiss.py CUBE QUERIES.json K FACTORY NPROBE OURS_EXACT.json
Prints one JSON object.
"""
import json
import resource
import sys
import time

import faiss
import numpy as np
import zarr


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(cube, queries_file, k, factory, nprobe, ours_file):
    k, nprobe = int(k), int(nprobe)
    t0 = time.perf_counter()
    root = zarr.open_group(cube, mode="r")
    ids, blocks = [], []
    for zone in sorted(root.group_keys()):
        g = root[zone]
        status = g["status"][:]
        rows, cols = np.nonzero(status == 1)
        if rows.size == 0:
            continue
        r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        window = g["fused"][r0:r1, c0:c1]
        keep = status[r0:r1, c0:c1] == 1
        blocks.append(window[keep].astype(np.float32))
        ids += ["%s_%04d_%04d" % (zone, r + r0, c + c0) for r, c in zip(*np.nonzero(keep))]
    x = np.concatenate(blocks)
    del blocks
    faiss.normalize_L2(x)
    load_seconds = time.perf_counter() - t0
    where = {chip: i for i, chip in enumerate(ids)}
    q = x[[where[c] for c in json.load(open(queries_file))]].copy()

    flat = faiss.IndexFlatIP(x.shape[1])
    flat.add(x)
    t0 = time.perf_counter()
    _, exact = flat.search(q, k)
    exact_seconds = time.perf_counter() - t0
    # One query at a time, as clicks come (FAISS spreads one query over no threads).
    t0 = time.perf_counter()
    for i in range(len(q)):
        flat.search(q[i:i + 1], k)
    single_seconds = time.perf_counter() - t0
    del flat

    ours = json.load(open(ours_file))
    agree = np.mean([len(set(ours[i]) & {ids[j] for j in exact[i]}) / k for i in range(len(q))])

    t0 = time.perf_counter()
    index = faiss.index_factory(x.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        nlist = faiss.extract_index_ivf(index).nlist
        rng = np.random.default_rng(0)
        sample = x[rng.choice(len(x), size=min(len(x), 40 * nlist), replace=False)]
        index.train(sample)
    index.add(x)
    build_seconds = time.perf_counter() - t0
    if nprobe > 0:
        faiss.extract_index_ivf(index).nprobe = nprobe
    t0 = time.perf_counter()
    _, approx = index.search(q, k)
    search_seconds = time.perf_counter() - t0
    recall = np.mean([len(set(approx[i]) & set(exact[i])) / k for i in range(len(q))])
    print(json.dumps({
        "chips": len(ids), "dim": int(x.shape[1]), "queries": len(q), "k": k,
        "load_seconds": load_seconds,
        "exact_seconds": exact_seconds, "exact_queries_per_second": len(q) / exact_seconds,
        "exact_single_queries_per_second": len(q) / single_seconds,
        "exact_agrees_with_ours": float(agree),
        "index_factory": factory, "index_nprobe": nprobe, "index_build_seconds": build_seconds,
        "index_queries_per_second": len(q) / search_seconds, "index_recall_at_k": float(recall),
        "peak_rss_mib": peak_rss_mib(), "faiss_threads": faiss.omp_get_max_threads()}))


if __name__ == "__main__":
    main(*sys.argv[1:])
