#!/usr/bin/python3
"""Compares two folders of chip stores (HDF5) with h5py: the same tiles, and in each the
same datasets with the same values and the same attributes, but those named with
--ignore-attr (the input fingerprint, which names the inputs' paths). Exit 0 when equal;
prints each difference and exits 1 otherwise."""

import argparse
import os
import sys

import h5py
import numpy as np


def main():
    p = argparse.ArgumentParser()
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--ignore-attr", action="append", default=[])
    args = p.parse_args()
    tiles_a = sorted(f for f in os.listdir(args.a) if f.endswith(".h5"))
    tiles_b = sorted(f for f in os.listdir(args.b) if f.endswith(".h5"))
    if tiles_a != tiles_b or not tiles_a:
        print("tiles differ: %s against %s" % (tiles_a, tiles_b))
        return 1
    bad = []

    def attrs(x, y, where):
        keys = (set(x.attrs) | set(y.attrs)) - set(args.ignore_attr)
        for k in sorted(keys):
            if k not in x.attrs or k not in y.attrs or not np.array_equal(np.asarray(x.attrs[k]), np.asarray(y.attrs[k])):
                bad.append("%s: attribute %s" % (where, k))

    def walk(x, y, where):
        attrs(x, y, where)
        if set(x) != set(y):
            bad.append("%s: members %s against %s" % (where, sorted(x), sorted(y)))
            return
        for k in x:
            if isinstance(x[k], h5py.Dataset):
                u, v = x[k][()], y[k][()]
                if u.dtype != v.dtype or not np.array_equal(u, v, equal_nan=u.dtype.kind == "f"):
                    bad.append("%s/%s: values" % (where, k))
                attrs(x[k], y[k], "%s/%s" % (where, k))
            else:
                walk(x[k], y[k], "%s/%s" % (where, k))

    for t in tiles_a:
        with h5py.File(os.path.join(args.a, t), "r") as x, h5py.File(os.path.join(args.b, t), "r") as y:
            walk(x, y, t)
    for b in bad:
        print(b)
    print("%d tiles compared, %d differences" % (len(tiles_a), len(bad)))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
