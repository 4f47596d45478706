"""A reader of the Zarr `geoemb:` convention (geo-embeddings/embeddings-zarr-convention),
written from the convention's text alone, not from eo-pipeline's code: it finds the
groups that register the convention, validates their attributes against the
convention's schema (tests/data/schemas/geoemb-v1) and the `spatial:` and `proj:`
attributes against what those conventions publish, locates a place through the `proj:`
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
import re
import sys

import jsonschema
import numpy as np
import xarray as xr
import zarr

import lonlat

UUID = "61c12cc5-0e28-4056-999a-480cf3fb7e4c"

# The registrations the spatial (v1) and geo-proj (v1) conventions publish, as their
# READMEs give them (github.com/zarr-conventions/spatial, and zarr-conventions/geo-proj,
# which zarr-experimental/geo-proj moved to: its schema's URLs moved with it).
# Their schemas are not kept in tests/data: no licence was found for them
# (tests/data/schemas/SOURCES.md); what the schemas require is checked by hand below.
SPATIAL = {"schema_url": "https://raw.githubusercontent.com/zarr-conventions/spatial/refs/tags/v1/schema.json",
           "spec_url": "https://github.com/zarr-conventions/spatial/blob/v1/README.md",
           "uuid": "689b58e2-cf7b-45e0-9fff-9cfc0883d6b4", "name": "spatial",
           "description": "Spatial coordinate information"}
PROJ = {"schema_url": "https://raw.githubusercontent.com/zarr-conventions/geo-proj/refs/tags/v1/schema.json",
        "spec_url": "https://github.com/zarr-conventions/geo-proj/blob/v1/README.md",
        "uuid": "f17cb550-5864-4468-aeb7-f3180cfb622f", "name": "proj:",
        "description": "Coordinate reference system information for geospatial data"}
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


def check_spatial_and_proj(where, attrs):
    """The spatial: and proj: attributes as the two conventions define them."""
    conventions = {c.get("uuid"): c for c in attrs.get("zarr_conventions", [])}
    for published in (SPATIAL, PROJ):
        got = conventions.get(published["uuid"])
        if got is None:
            fail(f"{where}: zarr_conventions does not register {published['name']} ({published['uuid']})")
        for key, value in got.items():
            if published.get(key) != value:
                fail(f"{where}: the {published['name']} registration's {key} is {value!r}, published as {published.get(key)!r}")
    dims = attrs.get("spatial:dimensions")
    if not (isinstance(dims, list) and len(dims) in (2, 3) and all(isinstance(d, str) for d in dims)):
        fail(f"{where}: spatial:dimensions {dims!r} is not 2 or 3 names")
    numbers = lambda v: isinstance(v, list) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
    t = attrs.get("spatial:transform")
    if t is not None and not (numbers(t) and len(t) in (6, 9)):
        fail(f"{where}: spatial:transform {t!r} is not 6 (or 9) numbers")
    shape = attrs.get("spatial:shape")
    if shape is not None and not (isinstance(shape, list) and len(shape) == len(dims)
                                  and all(isinstance(n, int) and n >= 1 for n in shape)):
        fail(f"{where}: spatial:shape {shape!r} is not a positive whole number per spatial dimension")
    bbox = attrs.get("spatial:bbox")
    if bbox is not None and not (numbers(bbox) and len(bbox) == 2 * len(dims)):
        fail(f"{where}: spatial:bbox {bbox!r} is not 2 numbers per spatial dimension")
    if attrs.get("spatial:registration", "pixel") not in ("node", "pixel"):
        fail(f"{where}: spatial:registration {attrs['spatial:registration']!r} is neither node nor pixel")
    crs = [k for k in ("proj:code", "proj:wkt2", "proj:projjson") if k in attrs]
    if len(crs) != 1:
        fail(f"{where}: one of proj:code, proj:wkt2, proj:projjson, not {crs}")
    if "proj:code" in attrs and not re.fullmatch(r"[A-Z]+:[0-9]+", str(attrs["proj:code"])):
        fail(f"{where}: proj:code {attrs['proj:code']!r} is not AUTHORITY:CODE")


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
        check_spatial_and_proj(f"{store}/{path}", attrs)
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
