"""Compares two outputs of the demo made by two builds (a change that must not change
behaviour), each stage's product by an independent reader:
- the synthetic world: the catalog line for line, every raster's pixels and georeferencing
  through GDAL (file bytes differ by creation metadata);
- the normalisation statistics as JSON;
- the chip stores: every dataset and attribute (less the fingerprint, which hashes input
  paths) through h5py;
- the checkpoints: what their sidecars record of the model and its training (shape,
  modalities, config hash, statistics, step); not their weights, which differ between
  any two pretraining runs of one build (threaded reductions);
- the cube (made from the same checkpoint: copy the before output's pretrain/ into the
  after output before its `run`): chunks byte for byte, metadata as JSON less the creation
  time and the checkpoint's path.
A stage an output lacks is skipped, and said. Exit code 1 when anything differs.

    /usr/bin/python3 bench/compare_outputs.py BEFORE_OUTPUT AFTER_OUTPUT
"""
import json
import os
import sys

import h5py
import numpy as np
from osgeo import gdal

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
    if os.listdir(os.path.join(after, "cubes")) != [name]:
        print(f"cube: the after output has no {name}: its `run` used another checkpoint (copy pretrain/ over first)")
        return ["cube"]
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


def compare_world(before, after):
    wb, wa = os.path.join(before, "world"), os.path.join(after, "world")
    differ = [] if open(os.path.join(wb, "catalog.jsonl")).read() == open(os.path.join(wa, "catalog.jsonl")).read() \
        else ["catalog.jsonl"]
    fb, fa = files(wb), files(wa)
    rasters = sorted(k for k in fb if k.endswith((".tif", ".nc")))
    assert set(rasters) == {k for k in fa if k.endswith((".tif", ".nc"))}, "not the same rasters"
    gdal.UseExceptions()
    for key in rasters:
        db, da = gdal.Open(fb[key]), gdal.Open(fa[key])
        same = db.GetGeoTransform() == da.GetGeoTransform() and db.GetProjection() == da.GetProjection() \
            and db.RasterCount == da.RasterCount
        for b in range(1, db.RasterCount + 1):
            same = same and np.array_equal(db.GetRasterBand(b).ReadAsArray(), da.GetRasterBand(b).ReadAsArray(),
                                           equal_nan=True)
        if not same:
            differ.append(key)
    print(f"world: catalog and {len(rasters)} rasters compared; differing: {differ}")
    return differ


def compare_json(before, after, name):
    same = json.load(open(os.path.join(before, name))) == json.load(open(os.path.join(after, name)))
    print(f"{name}: {'equal' if same else 'DIFFERS'}")
    return [] if same else [name]


def compare_checkpoints(before, after):
    folder = os.path.join("pretrain", "checkpoints")
    sidecars = sorted(n for n in os.listdir(os.path.join(before, folder)) if n.startswith("step-") and n.endswith(".json"))
    differ = []
    for name in sidecars:
        sb, sa = (json.load(open(os.path.join(out, folder, name))) for out in (before, after))
        settings = ("model", "modalities", "config_hash", "normalisation", "step")
        if [sb[k] for k in settings] != [sa[k] for k in settings]:
            differ.append(name)
    print(f"checkpoints: {len(sidecars)} sidecars compared (weights not); differing: {differ}")
    return differ


def has(output, *parts):
    return os.path.exists(os.path.join(output, *parts))


before, after = sys.argv[1], sys.argv[2]
checks = [("world", lambda: compare_world(before, after), ("world", "catalog.jsonl")),
          ("normalisation", lambda: compare_json(before, after, "normalisation.json"), ("normalisation.json",)),
          ("chip stores", lambda: compare_chip_stores(before, after), ("chips",)),
          ("checkpoints", lambda: compare_checkpoints(before, after), ("pretrain", "checkpoints")),
          ("cube", lambda: compare_cubes(before, after), ("cubes",))]
differ = []
for name, compare, needs in checks:
    if has(before, *needs) and has(after, *needs):
        differ += compare()
    else:
        print(f"{name}: not in both outputs, not compared")
sys.exit(1 if differ else 0)
