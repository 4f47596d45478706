"""Compares two outputs of the demo made by two builds (a change that must not change
behaviour): the cube's chunks byte for byte, its metadata as JSON less the creation time
and the checkpoint's path, and every dataset and attribute of the chip stores (less the
fingerprint, which hashes input paths). Exit code 1 when anything differs.

    /usr/bin/python3 bench/compare_outputs.py BEFORE_OUTPUT AFTER_OUTPUT
"""
import json
import os
import sys

import h5py
import numpy as np

PATH_OR_TIME = ("created", "checkpoint")


def files(root):
    out = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            out[os.path.relpath(path, root)] = path
    return out


def without_path_or_time(j):
    if isinstance(j, dict):
        return {k: without_path_or_time(v) for k, v in j.items() if k not in PATH_OR_TIME}
    if isinstance(j, list):
        return [without_path_or_time(v) for v in j]
    return j


def compare_cubes(before, after):
    [name] = os.listdir(os.path.join(before, "cubes"))
    assert os.listdir(os.path.join(after, "cubes")) == [name], "the model's cube is not the same one"
    fb, fa = files(os.path.join(before, "cubes", name)), files(os.path.join(after, "cubes", name))
    assert set(fb) == set(fa), f"files in one cube only: {sorted(set(fb) ^ set(fa))}"
    chunks, differ = 0, []
    for key in sorted(fb):
        if os.path.basename(key).startswith("."):  # Zarr metadata
            same = without_path_or_time(json.load(open(fb[key]))) == without_path_or_time(json.load(open(fa[key])))
        else:
            chunks += 1
            same = open(fb[key], "rb").read() == open(fa[key], "rb").read()
        if not same:
            differ.append(key)
    print(f"cube {name}: {chunks} chunks and {len(fb) - chunks} metadata files compared; differing: {differ}")
    return differ


def compare_chip_stores(before, after):
    stores = sorted(os.listdir(os.path.join(before, "chips")))
    assert sorted(os.listdir(os.path.join(after, "chips"))) == stores, "not the same chip stores"
    datasets, differ = 0, []
    for store in stores:
        with h5py.File(os.path.join(before, "chips", store)) as hb, h5py.File(os.path.join(after, "chips", store)) as ha:
            names = []
            hb.visit(names.append)
            for name in names:
                if isinstance(hb[name], h5py.Dataset):
                    datasets += 1
                    if not np.array_equal(hb[name][()], ha[name][()], equal_nan=hb[name].dtype.kind == "f"):
                        differ.append(f"{store}:{name}")
            attrs = [{k: str(v) for k, v in h.attrs.items() if k != "fingerprint"} for h in (hb, ha)]
            if attrs[0] != attrs[1]:
                differ.append(f"{store}: attributes")
    print(f"chip stores: {len(stores)} files, {datasets} datasets compared; differing: {differ}")
    return differ


before, after = sys.argv[1], sys.argv[2]
sys.exit(1 if compare_cubes(before, after) + compare_chip_stores(before, after) else 0)
