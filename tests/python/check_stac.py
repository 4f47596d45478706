"""Checks the STAC an eo-pipeline cube carries (<cube>/stac/) against the STAC 1.0 core
JSON schemas and the STAC Embedding extension's schema (kept in tests/data/schemas, see
SOURCES.md), resolves every link and asset href, and checks that what the documents say
agrees with the cube itself, read with zarr-python, and with GDAL's projections.

usage: /usr/bin/python3 check_stac.py CUBE
Prints "STAC OK <items>" or exits 1 naming the first problem.
"""
import json
import os
import re
import sys
from urllib.parse import unquote, urlparse

import jsonschema
import numpy as np
import xarray as xr
import zarr

import lonlat

SCHEMAS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "schemas")
EMB = "https://stac-extensions.github.io/embeddings/v0.0.1/schema.json"
ITEM_ASSETS = "https://stac-extensions.github.io/item-assets/v1.0.0/schema.json"
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00)$")


def fail(msg):
    print("STAC MISMATCH:", msg)
    sys.exit(1)


def load_schemas():
    store = {}
    for root, _, files in os.walk(SCHEMAS):
        for f in files:
            if f.endswith(".json"):
                schema = json.load(open(os.path.join(root, f)))
                if "$id" in schema:  # the geoemb convention's schema has none (read_geoemb.py uses it)
                    store[schema["$id"].rstrip("#")] = schema
    meta = jsonschema.Draft7Validator.META_SCHEMA
    store[meta["$id"].rstrip("#")] = meta
    return store


def validator(store, schema_id):
    schema = store[schema_id]
    resolver = jsonschema.RefResolver(schema_id, schema, store=store)
    return jsonschema.Draft7Validator(schema, resolver=resolver, format_checker=jsonschema.FormatChecker())


def validate(v, doc, what):
    errors = sorted(v.iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        fail(f"{what} is not valid against {v.schema['$id']}: {e.message} at {list(e.absolute_path)}")


def local(href, base):
    """The local path an href names, or None for a URL or URN."""
    if href.startswith("/"):
        fail(f"href {href} is a bare absolute path: relative inside the cube, a file:// URI outside it")
    if href.startswith("file://"):
        return unquote(urlparse(href).path)
    if "://" in href or href.startswith("urn:"):
        return None
    return os.path.normpath(os.path.join(base, href))


def check_times(props, what):
    for key in ("datetime", "start_datetime", "end_datetime", "processing:datetime"):
        value = props.get(key)
        if value is not None and not RFC3339.match(value):
            fail(f"{what}: {key} {value!r} is not an RFC 3339 UTC time")


def main(cube):
    stac = os.path.join(cube, "stac")
    store = load_schemas()
    core_item = validator(store, "https://schemas.stacspec.org/v1.0.0/item-spec/json-schema/item.json")
    core_collection = validator(store, "https://schemas.stacspec.org/v1.0.0/collection-spec/json-schema/collection.json")
    emb = validator(store, EMB)

    collection_file = os.path.join(stac, "collection.json")
    collection = json.load(open(collection_file))
    validate(core_collection, collection, collection_file)
    validate(emb, collection, collection_file)
    if EMB not in collection["stac_extensions"]:
        fail("the collection does not declare the embedding extension")
    if "item_assets" in collection and ITEM_ASSETS not in collection["stac_extensions"]:
        fail("the collection has item_assets but does not declare the item-assets extension")

    root = zarr.open_group(cube, mode="r")
    attrs = root.attrs.asdict()
    layout = attrs["layout"]
    dtype = layout["dtype"]

    # The collection says what the cube's own metadata says.
    if collection["emb:type"] != "chip" or collection["emb:dimensions"] != layout["dim"]:
        fail(f"emb:type/emb:dimensions {collection['emb:type']}/{collection['emb:dimensions']}, cube dim {layout['dim']}")
    if collection["data_type"] != dtype or collection["gsd"] != layout["pixel_size_m"]:
        fail(f"data_type/gsd {collection['data_type']}/{collection['gsd']}, cube {dtype}/{layout['pixel_size_m']}")
    chip = layout["chip_pixels"]
    if collection["emb:chip_layout"]["chip_size"] != [chip, chip] or collection["emb:chip_layout"]["stride"] != [chip, chip]:
        fail(f"emb:chip_layout {collection['emb:chip_layout']} against chips of {chip} px")

    rels = {}
    for l in collection["links"]:
        rels.setdefault(l["rel"], []).append(l)
        path = local(l["href"], stac)
        if path is not None and not os.path.exists(path):
            fail(f"collection link {l['rel']} {l['href']} resolves to {path}, which does not exist")
    for rel in ("emb:model", "emb:source-data", "root"):
        if rel not in rels:
            fail(f"the collection has no {rel} link")
    model = local(rels["emb:model"][0]["href"], stac)

    items_expected = {}
    opened, group_shapes = {}, {}
    zones = sorted(k for k in root.group_keys())
    for zone in zones:
        group = root[zone]
        g = group.attrs.asdict()
        # The geoemb: convention on the group agrees with the STAC.
        for key, value in (("geoemb:dimensions", collection["emb:dimensions"]), ("geoemb:data_type", dtype),
                           ("geoemb:gsd", collection["gsd"]), ("geoemb:chip_layout", collection["emb:chip_layout"])):
            if g.get(key) != value:
                fail(f"{zone}: {key} {g.get(key)!r}, the STAC says {value!r}")
        if local(g["geoemb:model"], stac) != model:
            fail(f"{zone}: geoemb:model {g['geoemb:model']} is not the collection's emb:model {model}")
        if group["fused"].shape[2] != collection["emb:dimensions"] or str(group["fused"].dtype) != dtype:
            fail(f"{zone}/fused is {group['fused'].shape} {group['fused'].dtype}")
        group_shapes[zone] = {name: tuple(a.shape) for name, a in group.arrays()}
        status = group["status"][:]
        for r in range(0, status.shape[0], 16):
            for c in range(0, status.shape[1], 16):
                window = status[r:r + 16, c:c + 16]
                if (window == 1).any():
                    items_expected[f"{zone}_T{r // 16:03d}_T{c // 16:03d}"] = (zone, r // 16, c // 16, window, g)

    item_links = {os.path.normpath(os.path.join(stac, l["href"])) for l in rels.get("item", [])}
    files = sorted(os.listdir(os.path.join(stac, "items")))
    if {f[:-5] for f in files} != set(items_expected):
        fail(f"items {sorted(f[:-5] for f in files)[:5]}... but tiles with embeddings {sorted(items_expected)[:5]}...")
    times = []
    for f in files:
        path = os.path.join(stac, "items", f)
        if path not in item_links:
            fail(f"{path} is not linked from the collection")
        item = json.load(open(path))
        validate(core_item, item, path)
        validate(emb, item, path)
        props = item["properties"]
        check_times(props, path)
        zone, trow, tcol, window, g = items_expected[item["id"]]
        base = os.path.dirname(path)
        for l in item["links"]:
            p = local(l["href"], base)
            if p is not None and not os.path.exists(p):
                fail(f"{path}: link {l['rel']} {l['href']} resolves to {p}, which does not exist")
        for key, a in item["assets"].items():
            p = local(a["href"], base)
            if p is None or not os.path.exists(p):
                fail(f"{path}: asset {key} {a['href']} does not resolve to a file")
        if not any(l["rel"] == "emb:source-data" for l in item["links"]):
            fail(f"{path}: no emb:source-data link")
        emb_href = local(item["assets"]["embeddings"]["href"], base)
        if emb_href != os.path.normpath(os.path.join(cube, zone)):
            fail(f"{path}: the embeddings asset names {emb_href}, not the zone group")
        if emb_href not in opened:  # what a user does with it: xarray opens the group
            opened[emb_href] = xr.open_zarr(emb_href, consolidated=False)
        ds = opened[emb_href]
        if ds["fused"].dims != ("y", "x", "dim") or ds["fused"].shape != group_shapes[zone]["fused"]:
            fail(f"{path}: xarray opens the embeddings asset's fused as {ds['fused'].dims} {ds['fused'].shape}")
        # An asset's proj:shape and proj:transform are those of what it holds.
        for key, a in item["assets"].items():
            if "proj:shape" not in a:
                continue
            array = "fused" if key == "embeddings" else key
            if tuple(a["proj:shape"]) != group_shapes[zone][array][:2]:
                fail(f"{path}: asset {key} has proj:shape {a['proj:shape']}, its array {group_shapes[zone][array]}")
            if not np.allclose(a["proj:transform"], g["spatial:transform"]):
                fail(f"{path}: asset {key} has proj:transform {a['proj:transform']}, its group {g['spatial:transform']}")
        counts = props["eo-pipeline:chips"]
        if counts["embedded"] != int((window == 1).sum()) or counts["no_data"] != int((window == 2).sum()):
            fail(f"{path}: chip counts {counts}, the status chunk has {int((window == 1).sum())} embedded")
        if props["proj:code"] != g["proj:code"]:
            fail(f"{path}: proj:code {props['proj:code']}, the zone group's {g['proj:code']}")
        t = g["spatial:transform"]
        want = [t[0], 0.0, t[2] + tcol * 16 * t[0], 0.0, t[4], t[5] + trow * 16 * t[4]]
        if not np.allclose(props["proj:transform"], want):
            fail(f"{path}: proj:transform {props['proj:transform']}, the group's transform gives {want}")
        if (dtype == "int8") != ("emb:quantization" in props):
            fail(f"{path}: emb:quantization present for a {dtype} cube: {'emb:quantization' in props}")
        # The tile's corners, projected by GDAL, lie in the item's bbox.
        to_lonlat = lonlat.to_lonlat(props["proj:code"])
        x0, y1 = want[2], want[5]
        x1, y0 = x0 + 16 * t[0], y1 + 16 * t[4]
        lon0, lat0, lon1, lat1 = item["bbox"]
        for x, y in ((x0, y0), (x0, y1), (x1, y0), (x1, y1)):
            lon, lat, _ = to_lonlat.TransformPoint(x, y)
            if not (lon0 - 1e-7 <= lon <= lon1 + 1e-7 and lat0 - 1e-7 <= lat <= lat1 + 1e-7):
                fail(f"{path}: corner {lon:.6f},{lat:.6f} of the tile outside the bbox {item['bbox']}")
        times.append((props.get("start_datetime") or props["datetime"], props.get("end_datetime") or props["datetime"]))

    interval = collection["extent"]["temporal"]["interval"][0]
    if times and (interval[0] != min(t[0] for t in times) or interval[1] != max(t[1] for t in times)):
        fail(f"the collection's interval {interval} is not its items' {min(t[0] for t in times)} .. {max(t[1] for t in times)}")
    print("STAC OK", len(files))


if __name__ == "__main__":
    main(sys.argv[1])
