"""Reads an eo-pipeline cube with the real readers (zarr-python, xarray, GDAL's
multidimensional API) and checks it against what the pipeline says it wrote, and makes
GeoTIFFs of its arrays with GDAL as the README says and checks them too.

usage: /usr/bin/python3 check_cube.py EXPECTED.json

EXPECTED.json: {"cube": path, "dtype": "float32"|"float16"|"int8", "dim": D,
  "arrays": [names], "chips": [{"zone", "row", "col", "status", "values": {name: [D] or
  null}, "lonlat_bounds": [lon0, lat0, lon1, lat1]}]}. Exits 1 naming the first mismatch.
"""
import json
import os
import shutil
import sys
import tempfile
import warnings

import numpy as np
import xarray as xr
import zarr
from osgeo import gdal, osr

import lonlat

gdal.UseExceptions()
warnings.simplefilter("error")  # a reader's warning (e.g. no consolidated metadata) is a failure


def fail(msg):
    print("CUBE MISMATCH:", msg)
    sys.exit(1)


def close(got, want, dtype, what):
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if dtype == "float32":
        tol = 0.0
    elif dtype == "float16":
        tol = np.abs(want).max() * 1e-3 + 1e-7
    else:  # int8 with a per-chip scale: half a step
        tol = np.abs(want).max() / 127 / 2 * 1.0001 + 1e-7
    if got.shape != want.shape or not np.all(np.abs(got - want) <= tol):
        fail(f"{what}: got {got[:4]}..., want {want[:4]}... (tolerance {tol})")


def mine_of(attrs):
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(attrs["epsg"])
    return srs


def main():
    with open(sys.argv[1]) as f:
        exp = json.load(f)
    path, dtype, dim = exp["cube"], exp["dtype"], exp["dim"]
    root = zarr.open_group(path, mode="r")
    gdal_root = gdal.OpenEx(path, gdal.OF_MULTIDIM_RASTER).GetRootGroup()
    zones = sorted({c["zone"] for c in exp["chips"]})
    datasets = {z: xr.open_zarr(path, group=z) for z in zones}
    checked = 0
    for z in zones:
        ds = datasets[z]
        attrs = root[z].attrs
        # The CRS: our WKT is the EPSG definition.
        mine, epsg = osr.SpatialReference(), osr.SpatialReference()
        mine.ImportFromWkt(attrs["crs_wkt"])
        epsg.ImportFromEPSG(attrs["epsg"])
        if not mine.IsSame(epsg):
            fail(f"{z}: crs_wkt is not EPSG:{attrs['epsg']}")
        g = gdal_root.OpenGroup(z)
        for name in exp["arrays"] + ["status"]:
            if ds[name].dims[:2] != ("y", "x"):
                fail(f"{z}/{name}: dims {ds[name].dims}")
            srs = g.OpenMDArray(name).GetSpatialRef()
            if srs is None or not srs.IsSame(epsg):
                fail(f"{z}/{name}: GDAL sees no or another CRS")
        to_lonlat = lonlat.to_lonlat(epsg)
        for c in [c for c in exp["chips"] if c["zone"] == z]:
            r, col = c["row"], c["col"]
            where = f"{z} chip row {r} col {col}"
            # Status: raw 0..3 in zarr and GDAL; xarray decodes the fill value 0 as NaN.
            raw = int(root[z]["status"][r, col])
            if raw != c["status"]:
                fail(f"{where}: zarr status {raw}, want {c['status']}")
            xs = float(ds.status.values[r, col])
            if (c["status"] == 0 and not np.isnan(xs)) or (c["status"] != 0 and xs != c["status"]):
                fail(f"{where}: xarray status {xs}, want {c['status']}")
            gs = int(g.OpenMDArray("status").ReadAsArray(array_start_idx=[r, col], count=[1, 1])[0, 0])
            if gs != c["status"]:
                fail(f"{where}: GDAL status {gs}")
            # The coordinates put the chip where the grid says: its centre, taken to
            # lon/lat by GDAL, lies in the chip's footprint.
            x, y = float(ds.x.values[col]), float(ds.y.values[r])
            lon, lat, _ = to_lonlat.TransformPoint(x, y)
            b = c["lonlat_bounds"]
            if not (b[0] <= lon <= b[2] and b[1] <= lat <= b[3]):
                fail(f"{where}: centre ({x}, {y}) -> ({lon}, {lat}) outside the chip's footprint {b}")
            if ds.sel(x=x, y=y).status.size != 1:
                fail(f"{where}: selecting by coordinates")
            for name, want in c["values"].items():
                arr = root[z][name]
                got_z = arr[r, col, :].astype(np.float64)
                got_x = ds[name].values[r, col, :].astype(np.float64)
                got_g = g.OpenMDArray(name).ReadAsArray(array_start_idx=[r, col, 0], count=[1, 1, dim])[0, 0].astype(np.float64)
                if dtype == "int8":
                    scale = float(root[z][name + "_scale"][r, col])
                    none = np.all(arr[r, col, :] == -128)
                    got_z = np.full(dim, np.nan) if none else got_z * scale
                    got_x = got_x * scale  # xarray masks -128 as NaN
                    got_g = np.full(dim, np.nan) if none else got_g * scale
                for reader, got in (("zarr", got_z), ("xarray", got_x), ("GDAL", got_g)):
                    if want is None:
                        if not np.all(np.isnan(got)):
                            fail(f"{where} {name} ({reader}): values where there should be none")
                    else:
                        close(got, want, dtype, f"{where} {name} ({reader})")
                checked += 1
    # GeoTIFFs as the README says to make them (GDAL 3.6's classic raster view of a 3-D
    # array takes its last two dimensions, x and dim, as the raster): the 2-D status array
    # through gdal_translate, a 3-D array through gdalmdimtranslate with the embedding
    # dimension moved first (a band per dimension). Each is the zarr array, on the grid.
    tmp = tempfile.mkdtemp()
    for z in zones:
        t = root[z].attrs["spatial:transform"]
        want_gt = (t[2], t[0], t[1], t[5], t[3], t[4])
        status_tif = os.path.join(tmp, f"{z}_status.tif")
        gdal.Translate(status_tif, f'ZARR:"{path}/{z}":/status')
        name = exp["arrays"][0]
        emb_tif = os.path.join(tmp, f"{z}_{name}.tif")
        gdal.MultiDimTranslate(emb_tif, f"{path}/{z}", arraySpecs=[f"name={name},transpose=[2,0,1]"])
        for tif, want in ((status_tif, root[z]["status"][:]), (emb_tif, np.moveaxis(root[z][name][:], 2, 0))):
            ds = gdal.Open(tif)
            if not np.allclose(ds.GetGeoTransform(), want_gt):
                fail(f"{tif}: geotransform {ds.GetGeoTransform()}, the group's spatial:transform gives {want_gt}")
            got = ds.ReadAsArray()
            if got.shape != want.shape or not np.array_equal(got, want, equal_nan=np.issubdtype(want.dtype, np.floating)):
                fail(f"{tif}: {got.shape} values are not the zarr array's {want.shape}")
            if not osr.SpatialReference(wkt=ds.GetProjection()).IsSame(mine_of(root[z].attrs)):
                fail(f"{tif}: not in the zone's CRS")
    shutil.rmtree(tmp)
    print(f"CUBE OK: {len(exp['chips'])} chips, {checked} embeddings read back by zarr, xarray and GDAL")


main()
