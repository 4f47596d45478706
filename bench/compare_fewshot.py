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


def chooser(path):
    """What a results.csv can choose its best model on: "validation", or "test" for sweeps
    from before the validation stripes were scored."""
    with open(path) as f:
        return "validation" if "validation_r2" in next(csv.reader(f)) else "test"


def best_means(path, chosen_on="validation"):
    """{(target, features, n): (the best model's mean test R², that model, its mean R² on
    the stripes it was chosen on)} and each fit's
    test R² by key. The best model has the best mean R² on the validation stripes
    (`chosen_on="test"`: on the test stripes, as before the sweep scored the validation
    stripes, which flatters the choice; results.csv without a validation_r2 column can
    only be read that way)."""
    runs = defaultdict(lambda: ([], []))
    fits = {}
    with open(path) as f:
        for row in csv.DictReader(f):
            test, chooser = runs[(row["target"], row["features"], row["model"], row["n"])]
            test.append(float(row["r2"]))
            chooser.append(float(row["validation_r2" if chosen_on == "validation" else "r2"]))
            fits[(row["target"], row["features"], row["model"], row["n"], row["seed"])] = float(row["r2"])
    best, chosen_by = {}, {}
    for (target, features, model, n), (test, chooser) in runs.items():
        key, score = (target, features, n), sum(chooser) / len(chooser)
        if key not in best or score > chosen_by[key]:
            best[key], chosen_by[key] = (sum(test) / len(test), model, score), score
    return best, fits


def better_of_fused_and_concat(best, target, n="250"):
    """The mean test R² of fused or concat, whichever scored better where the model was chosen."""
    return max((best.get((target, f, n), (float("nan"), "", float("-inf"))) for f in ("fused", "concat")),
               key=lambda v: v[2])[0]


def main():
    on = "validation" if chooser(sys.argv[1]) == chooser(sys.argv[2]) == "validation" else "test"
    print(f"the best model chosen on the {on} stripes")
    old_best, old_fits = best_means(sys.argv[1], on)
    new_best, new_fits = best_means(sys.argv[2], on)
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
            "old": {"embeddings": better_of_fused_and_concat(old_best, t), "bands": at(old_best, "bands"),
                    "fused_250_over_all": at(old_best, "fused") / at(old_best, "fused", "all")},
            "new": {"embeddings": better_of_fused_and_concat(new_best, t), "bands": at(new_best, "bands"),
                    "fused_250_over_all": at(new_best, "fused") / at(new_best, "fused", "all")},
            "own_bands_250": {m: {"old": [at(old_best, m), at(old_best, "bands_" + m)],
                                  "new": [at(new_best, m), at(new_best, "bands_" + m)]}
                              for m in ("s2rgb", "s1amp", "s1coh")},
        }
    out = {
        "old": sys.argv[1], "new": sys.argv[2], "best_model_chosen_on": on, "best_model_means": len(shared),
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
