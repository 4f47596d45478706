"""Compares two outputs of the demo made by two builds (a change that must not change
behaviour): the cube's chunks byte for byte, its metadata as JSON less creation times and
paths, and every dataset and attribute of the chip stores (less the fingerprint, which
hashes input paths).

    /usr/bin/python3 bench/compare_outputs.py BEFORE_OUTPUT AFTER_OUTPUT
"""
import json
import os
import sys

import h5py
import numpy as np

B, A = sys.argv[1], sys.argv[2]


def files(root):
    out = {}
    for d, _, fs in os.walk(root):
        for f in fs:
            p = os.path.join(d, f)
            out[os.path.relpath(p, root)] = p
    return out
# the cube: every chunk and metadata file, byte for byte (creation time aside)
cb = [c for c in os.listdir(B + "/cubes")][0]; ca = [c for c in os.listdir(A + "/cubes")][0]
assert cb == ca, (cb, ca)
fb, fa = files(B + "/cubes/" + cb), files(A + "/cubes/" + ca)
assert set(fb) == set(fa), set(fb) ^ set(fa)
chunks = same = 0; differ = []
for k in sorted(fb):
    name = os.path.basename(k)
    if name.startswith("."):  # metadata: compare as JSON less the creation time

        jb, ja = json.load(open(fb[k])), json.load(open(fa[k]))
        def strip(j):
            if isinstance(j, dict): return {x: strip(y) for x, y in j.items() if x not in ("created", "checkpoint")}
            if isinstance(j, list): return [strip(y) for y in j]
            return j
        if strip(jb) != strip(ja): differ.append(k)
        continue
    chunks += 1
    if open(fb[k], "rb").read() == open(fa[k], "rb").read(): same += 1
    else: differ.append(k)
print(f"cube {cb}: {chunks} chunks, {same} bit-identical; metadata or chunks differing: {differ}")
# chip stores: every dataset and attribute
sb, sa = sorted(os.listdir(B + "/chips")), sorted(os.listdir(A + "/chips"))
assert sb == sa, (sb, sa)
n = 0; bad = []
for s in sb:
    with h5py.File(B + "/chips/" + s) as hb, h5py.File(A + "/chips/" + s) as ha:
        names = []
        hb.visit(names.append)
        for name in names:
            ob, oa = hb[name], ha[name]
            if isinstance(ob, h5py.Dataset):
                n += 1
                if not np.array_equal(ob[()], oa[()], equal_nan=ob.dtype.kind == "f"): bad.append(s + ":" + name)
        ab = {k: v for k, v in hb.attrs.items() if k != "fingerprint"}; aa = {k: v for k, v in ha.attrs.items() if k != "fingerprint"}
        if {k: str(v) for k, v in ab.items()} != {k: str(v) for k, v in aa.items()}: bad.append(s + ": attributes")
print(f"chip stores: {len(sb)} files, {n} datasets compared; differing: {bad}")
sys.exit(1 if differ or bad else 0)
