"""Two few-shot sweeps side by side (results.csv of `eo-pipeline fewshot`, e.g. before and
after a change of the tree settings): the best model's mean test R² over seeds per target,
features and N in each, how far they moved, and issue 7's comparison at N = 250 (the
better of fused and concat against the band statistics, each modality against its own
bands). Writes the comparison as JSON.

    /usr/bin/python3 bench/compare_fewshot.py OLD/results.csv NEW/results.csv OUT.json
"""
import csv
import json
import sys
from collections import defaultdict


def best_means(path):
    """{(target, features, n): (best mean R², its model)} and each fit's R² by key."""
    runs = defaultdict(list)
    fits = {}
    with open(path) as f:
        for row in csv.DictReader(f):
            runs[(row["target"], row["features"], row["model"], row["n"])].append(float(row["r2"]))
            fits[(row["target"], row["features"], row["model"], row["n"], row["seed"])] = float(row["r2"])
    best = {}
    for (target, features, model, n), r2 in runs.items():
        mean = sum(r2) / len(r2)
        key = (target, features, n)
        if key not in best or mean > best[key][0]:
            best[key] = (mean, model)
    return best, fits


def main():
    old_best, old_fits = best_means(sys.argv[1])
    new_best, new_fits = best_means(sys.argv[2])
    shared = sorted(set(old_best) & set(new_best))
    moves = [abs(new_best[k][0] - old_best[k][0]) for k in shared]
    fit_moves = {m: [abs(new_fits[k] - old_fits[k]) for k in old_fits if k in new_fits and k[2] == m]
                 for m in ("ridge", "gbt", "rf")}
    targets = sorted({k[0] for k in shared})
    claim = {}
    for t in targets:
        def at(best, f, n="250"):
            return best.get((t, f, n), (float("nan"), ""))[0]
        claim[t] = {
            "old": {"embeddings": max(at(old_best, "fused"), at(old_best, "concat")), "bands": at(old_best, "bands"),
                    "fused_250_over_all": at(old_best, "fused") / at(old_best, "fused", "all")},
            "new": {"embeddings": max(at(new_best, "fused"), at(new_best, "concat")), "bands": at(new_best, "bands"),
                    "fused_250_over_all": at(new_best, "fused") / at(new_best, "fused", "all")},
            "own_bands_250": {m: {"old": [at(old_best, m), at(old_best, "bands_" + m)],
                                  "new": [at(new_best, m), at(new_best, "bands_" + m)]}
                              for m in ("s2rgb", "s1amp", "s1coh")},
        }
    out = {
        "old": sys.argv[1], "new": sys.argv[2], "best_model_means": len(shared),
        "best_mean_r2_moved": {"max": max(moves), "mean": sum(moves) / len(moves)},
        "fits_r2_moved": {m: {"max": max(v), "mean": sum(v) / len(v)} for m, v in fit_moves.items() if v},
        "best_model_changed": sum(1 for k in shared if old_best[k][1] != new_best[k][1]),
        "claim_at_250": claim,
    }
    json.dump(out, open(sys.argv[3], "w"), indent=2)
    print(f"best-model mean R² moved by up to {out['best_mean_r2_moved']['max']:.3f} "
          f"({out['best_mean_r2_moved']['mean']:.4f} on average) over {len(shared)} target/features/N")
    for m, v in out["fits_r2_moved"].items():
        print(f"  {m}: single fits moved by up to {v['max']:.3f} ({v['mean']:.4f} on average)")
    print("target            embeddings@250 old/new   bands@250 old/new   fused 250/all old/new")
    for t, c in claim.items():
        print(f"{t:16s}  {c['old']['embeddings']:.3f} / {c['new']['embeddings']:.3f}        "
              f"{c['old']['bands']:.3f} / {c['new']['bands']:.3f}       "
              f"{100 * c['old']['fused_250_over_all']:.0f}% / {100 * c['new']['fused_250_over_all']:.0f}%")
    for t, c in claim.items():
        print(t, " ".join(f"{m} {v['old'][0]:.3f}/{v['old'][1]:.3f} -> {v['new'][0]:.3f}/{v['new'][1]:.3f}"
                          for m, v in c["own_bands_250"].items()))


if __name__ == "__main__":
    main()
