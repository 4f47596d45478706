"""Compares every array of two cubes with zarr-python: same shapes, NaN where the other
has NaN, values within a tolerance. Prints CUBES MATCH and the largest difference.

    /usr/bin/python3 compare_cubes.py A.zarr B.zarr TOLERANCE
"""
import sys

import numpy as np
import zarr


def arrays(group, prefix=""):
    for name, item in group.items():
        if isinstance(item, zarr.Array):
            yield prefix + name, item
        else:
            yield from arrays(item, prefix + name + "/")


a, b, tol = zarr.open_group(sys.argv[1], mode="r"), zarr.open_group(sys.argv[2], mode="r"), float(sys.argv[3])
worst, compared = 0.0, 0
for name, x in arrays(a):
    y = b[name]
    x, y = x[...], y[...]
    if x.shape != y.shape:
        sys.exit(f"{name}: shape {x.shape} against {y.shape}")
    if x.dtype.kind != "f":
        if not np.array_equal(x, y):
            sys.exit(f"{name}: differs")
        continue
    if not np.array_equal(np.isnan(x), np.isnan(y)):
        sys.exit(f"{name}: NaN in different places")
    ok = ~np.isnan(x)
    compared += int(ok.sum())
    if ok.any():
        worst = max(worst, float(np.abs(x[ok].astype(np.float64) - y[ok]).max()))
if compared == 0:
    sys.exit("no values compared")
print(f"largest difference {worst:.3g} over {compared} values")
if worst > tol:
    sys.exit(f"largest difference {worst} above {tol}")
print("CUBES MATCH")
