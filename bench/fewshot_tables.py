"""Two `eo-pipeline fewshot` outputs' tables side by side, before and after a change of the
model (the experiments in docs/decisions.md; the README's tables of one run are
bench/readme_tables.py's): the best model's mean test R² per target, features and N (after);
each modality against its own band statistics at N = 250 (after, before in brackets); the
better of fused and concat against the pooled band statistics at 250 with the spread over
seeds; and the probe's mean R² of each modality's band means and spreads.

    /usr/bin/python3 bench/fewshot_tables.py BEFORE/fewshot AFTER/fewshot
"""
import csv
import os
import statistics as st
import sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_fewshot import best_means, better_of_fused_and_concat, chooser  # noqa: E402  the best model's mean R² per target, features, N

before, after = sys.argv[1], sys.argv[2]
ON = "validation" if chooser(before + '/results.csv') == chooser(after + '/results.csv') == "validation" else "test"
print(f"(the best model, and the better of fused and concat, chosen on the {ON} stripes)")


def load(d):
    return best_means(d + '/results.csv', ON)


def best(run, t, f, n):
    return run[0][(t, f, n)][0]


def best_spread(run, t, f, n):
    """The best model's mean and its population standard deviation over seeds."""
    model = run[0][(t, f, n)][1]
    r2 = [v for (t2, f2, m, n2, seed), v in run[1].items() if (t2, f2, m, n2) == (t, f, model, n)]
    return st.mean(r2), st.pstdev(r2)


def probe(d):
    out = defaultdict(lambda: defaultdict(list))
    for r in csv.DictReader(open(d + '/probe.csv')):
        out[r['modality']][r['statistic']].append(float(r['r2']))
    return out


B, A = load(before), load(after)
T = ['tree', 'cropland', 'built_up', 'water', 'tree_cover_pct']
name = {'tree': 'tree', 'cropland': 'cropland', 'built_up': 'built-up', 'water': 'water', 'tree_cover_pct': 'tree-cover %'}
print('| target | features | N = 25 | 50 | 100 | 250 | 500 | all |\n|---|---|---|---|---|---|---|---|')
for t in T:
    for f in ['s2rgb', 's1amp', 's1coh', 'fused', 'concat', 'bands']:
        print(f'| {t} | {f} | ' + ' | '.join(f'{best(A, t, f, n):.2f}' for n in ['25', '50', '100', '250', '500', 'all']) + ' |')
print('\nEACH MODALITY\n| target | s2rgb: embedding / bands | s1amp | s1coh |\n|---|---|---|---|')
for t in T:
    cells = []
    for m in ['s2rgb', 's1amp', 's1coh']:
        e, b, e0 = best(A, t, m, '250'), best(A, t, 'bands_' + m, '250'), best(B, t, m, '250')
        cells.append((f'**{e:.3f}** / {b:.3f}' if e >= b else f'{e:.3f} / **{b:.3f}**') + f' ({e0:.3f})')
    print(f'| {name[t]} | ' + ' | '.join(cells) + ' |')
print('\nCLAIM\n| target | embeddings | band statistics | 250 against all, fused / concat |\n|---|---|---|---|')
for t in T:
    fe, fs = best_spread(A, t, 'fused', '250'); ce, cs = best_spread(A, t, 'concat', '250')
    e, s = (fe, fs) if A[0][(t, 'fused', '250')][2] >= A[0][(t, 'concat', '250')][2] else (ce, cs)
    b, bs = best_spread(A, t, 'bands', '250')
    e0 = better_of_fused_and_concat(B[0], t)
    ratio = lambda f: 100 * best(A, t, f, '250') / best(A, t, f, 'all')
    emb = f'**{e:.3f}** ± {s:.3f}' if e >= b else f'{e:.3f} ± {s:.3f}'
    bands = f'**{b:.3f}** ± {bs:.3f}' if b > e else f'{b:.3f} ± {bs:.3f}'
    print(f'| {name[t]} | {emb} ({e0:.3f}) | {bands} | {ratio("fused"):.0f}% / {ratio("concat"):.0f}% |')
print('\nPROBE\n| embedding | band means, before → after | lowest mean | spreads |\n|---|---|---|---|')
PB, PA = probe(before), probe(after)
for m in ['s2rgb', 's1amp', 's1coh']:
    print(f"| {m} | {st.mean(PB[m]['mean']):.3f} → {st.mean(PA[m]['mean']):.3f} | {min(PB[m]['mean']):.3f} → {min(PA[m]['mean']):.3f} | {st.mean(PB[m]['sd']):.3f} → {st.mean(PA[m]['sd']):.3f} |")
