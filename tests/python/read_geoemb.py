"""A reader of the Zarr `geoemb:` convention (geo-embeddings/embeddings-zarr-convention),
written from the convention's text alone, not from eo-pipeline's code: it finds the
groups that register the convention, validates their attributes against the
convention's schema (tests/data/schemas/geoemb-v1), locates a place through the `proj:`
and `spatial:` attributes with GDAL's projections, and reads the embedding there,
dequantised as `geoemb:quantization` says. It then compares what it read with what the
pipeline says it wrote.

usage: /usr/bin/python3 read_geoemb.py EXPECTED.json   (check_cube.py's format)
Prints "GEOEMB OK <values compared>" or exits 1 naming the first problem.

What the convention cannot say: which arrays of a group are embeddings (this reader takes
those with the spatial dimensions and one more of length geoemb:dimensions), and, when
the quantization scale is an array, which of them it scales: the convention names one
scale array per group, so with an array scale only one embedding array is decodable
and this reader compares only the array that scale belongs to by its name's stem.
"""
import json
import math
import os
import sys

import jsonschema
import numpy as np
import xarray as xr
import zarr

import lonlat

UUID = "61c12cc5-0e28-4056-999a-480cf3fb7e4c"
SCHEMA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "schemas", "geoemb-v1", "schema.json")


def fail(msg):
    print("GEOEMB MISMATCH:", msg)
    sys.exit(1)


def geoemb_groups(store):
    """Paths of the groups whose attributes register the convention."""
    root = zarr.open_group(store, mode="r")
    found = []

    def walk(group, path):
        conventions = group.attrs.get("zarr_conventions", [])
        if any(c.get("uuid") == UUID or c.get("name") == "geoemb:" for c in conventions):
            found.append(path)
        for name, sub in group.groups():
            walk(sub, f"{path}/{name}".lstrip("/"))

    walk(root, "")
    return found


def main(expected_file):
    expected = json.load(open(expected_file))
    store = expected["cube"]
    schema = json.load(open(SCHEMA))
    check = jsonschema.Draft202012Validator(schema)
    groups = geoemb_groups(store)
    if not groups:
        fail(f"{store}: no group registers the geoemb: convention")
    readers = {}
    for path in groups:
        attrs = zarr.open_group(store, mode="r", path=path).attrs.asdict()
        doc = {"zarr_format": 2, "node_type": "group", "attributes": attrs}
        errors = list(check.iter_errors(doc))
        if errors:
            fail(f"{store}/{path}: {errors[0].message[:300]}")
        ds = xr.open_zarr(store, group=path, consolidated=True)
        dim = attrs["geoemb:dimensions"]
        spatial = attrs["spatial:dimensions"]
        arrays = [n for n, v in ds.data_vars.items()
                  if len(v.dims) == len(spatial) + 1 and list(v.dims[:len(spatial)]) == spatial
                  and v.shape[-1] == dim]
        if not arrays:
            fail(f"{store}/{path}: no array with dimensions {spatial} and one of length {dim}")
        for n in arrays:
            stored = str(zarr.open_array(store, mode="r", path=f"{path}/{n}").dtype)
            if stored != attrs["geoemb:data_type"]:
                fail(f"{path}/{n} is stored as {stored}, geoemb:data_type says {attrs['geoemb:data_type']}")
        scale = None
        q = attrs.get("geoemb:quantization")
        if q is not None:
            s = q["scale"]
            if s["type"] == "scalar":
                scale = ("scalar", s["scale"], s.get("offset", 0.0))
            else:
                scale = ("array", ds[s["array_name"]].values)
                stem = s["array_name"].rsplit("_", 1)[0]
                arrays = [n for n in arrays if n == stem]
                if not arrays:
                    fail(f"{path}: the scale array {s['array_name']} belongs to no embedding array")
        readers[path] = dict(ds=ds, attrs=attrs, arrays=arrays, scale=scale, to_crs=lonlat.from_lonlat(attrs["proj:code"]))

    dtype = expected["dtype"]
    compared = 0
    for chip in expected["chips"]:
        r = readers.get(chip["zone"])
        if r is None:
            fail(f"zone group {chip['zone']} does not register the geoemb: convention")
        lon0, lat0, lon1, lat1 = chip["lonlat_bounds"]
        x, y, _ = r["to_crs"].TransformPoint((lon0 + lon1) / 2, (lat0 + lat1) / 2)
        a, b, c, d, e, f = r["attrs"]["spatial:transform"]
        col, row = math.floor((x - c) / a), math.floor((y - f) / e)
        if not (0 <= row < r["attrs"]["spatial:shape"][0] and 0 <= col < r["attrs"]["spatial:shape"][1]):
            fail(f"chip {chip} lies outside {chip['zone']}'s spatial:shape")
        for name in r["arrays"]:
            raw = r["ds"][name].values[row, col].astype(np.float64)
            if r["scale"] is not None and r["scale"][0] == "array":
                s = float(r["scale"][1][row, col])
                got = None if not math.isfinite(s) else raw * s
            elif r["scale"] is not None:
                got = raw * r["scale"][1] + r["scale"][2]
            else:
                got = None if np.isnan(raw).all() else raw
            want = chip["values"].get(name)
            if (got is None) != (want is None):
                fail(f"{chip['zone']} row {row} col {col} {name}: read {'nothing' if got is None else 'a value'}, "
                     f"written {'nothing' if want is None else 'a value'}")
            if want is None:
                continue
            want = np.asarray(want, dtype=np.float64)
            tol = {"float32": 0.0, "float16": np.abs(want).max() * 1e-3 + 1e-7}.get(dtype, np.abs(want).max() / 254 * 1.0001 + 1e-7)
            if not np.all(np.abs(got - want) <= tol):
                fail(f"{chip['zone']} row {row} col {col} {name}: read {got[:3]}, written {want[:3]} (tolerance {tol})")
            compared += 1
    if compared == 0:
        fail("no embedding compared")
    print("GEOEMB OK", compared, "arrays:", sorted({n for r in readers.values() for n in r["arrays"]}))


if __name__ == "__main__":
    main(sys.argv[1])
