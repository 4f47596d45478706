"""The labels behind the README's "tree-cover map from 200 labels", made again from a seed:
N embedded chips of the cube drawn at random (Python's random.Random(SEED)), each a point
at the chip's centre labelled with the tree cover (%) there, read with GDAL from the demo
world's tree-cover rasters, as a field campaign would record it. Then, given the map
`fewshot --labels` made, its R² per zone against `gdalwarp -r average` of the same
rasters onto the map's grid (which no label told it).

usage: /usr/bin/python3 trees200.py labels CUBE RASTERS_DIR N SEED OUT.geojson
       /usr/bin/python3 trees200.py score RASTERS_DIR MAP_DIR      (prints JSON)
"""
import glob
import json
import os
import random
import sys
import tempfile

import numpy as np
import zarr
from osgeo import gdal, osr

gdal.UseExceptions()


def lonlat_of(epsg):
    src = osr.SpatialReference()
    src.ImportFromEPSG(epsg)
    dst = osr.SpatialReference()
    dst.ImportFromEPSG(4326)
    dst.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return osr.CoordinateTransformation(src, dst)


def cover_at(rasters, lon, lat):
    for ds in rasters:
        gt = ds.GetGeoTransform()
        col, row = int((lon - gt[0]) // gt[1]), int((lat - gt[3]) // gt[5])
        if 0 <= col < ds.RasterXSize and 0 <= row < ds.RasterYSize:
            v = int(ds.GetRasterBand(1).ReadAsArray(col, row, 1, 1)[0, 0])
            if v <= 100:
                return v
    return None


def labels(cube, rasters_dir, n, seed, out):
    root = zarr.open_group(cube, mode="r")
    chips = []
    for zone in sorted(root.group_keys()):
        g = root[zone]
        a, _, c, _, e, f = g.attrs["spatial:transform"]
        to_lonlat = lonlat_of(int(g.attrs["proj:code"].split(":")[1]))
        for row, col in zip(*np.nonzero(g["status"][:] == 1)):
            lon, lat, _ = to_lonlat.TransformPoint(c + a * (col + 0.5), f + e * (row + 0.5))
            chips.append(("%s_%04d_%04d" % (zone, row, col), lon, lat))
    rasters = [gdal.Open(p) for p in sorted(glob.glob(os.path.join(rasters_dir, "*.tif")))]
    rng = random.Random(int(seed))
    features = []
    for chip, lon, lat in rng.sample(chips, len(chips)):
        if len(features) == int(n):
            break
        v = cover_at(rasters, lon, lat)
        if v is None:
            continue
        features.append({"type": "Feature", "geometry": {"type": "Point", "coordinates": [round(lon, 7), round(lat, 7)]},
                         "properties": {"tree_cover": v, "chip": chip}})
    json.dump({"type": "FeatureCollection", "features": features}, open(out, "w"), indent=1)
    print(json.dumps({"labels": len(features), "embedded_chips": len(chips), "seed": int(seed)}))


def score(rasters_dir, map_dir):
    vrt = os.path.join(tempfile.mkdtemp(), "cover.vrt")
    gdal.BuildVRT(vrt, sorted(glob.glob(os.path.join(rasters_dir, "*.tif"))), srcNodata=255, VRTNodata=255)
    out = {}
    for tif in sorted(glob.glob(os.path.join(map_dir, "predicted_*.tif"))):
        zone = os.path.basename(tif)[len("predicted_"):-len(".tif")]
        ds = gdal.Open(tif)
        predicted = ds.GetRasterBand(1).ReadAsArray().astype(np.float64)
        gt = ds.GetGeoTransform()
        warped = gdal.Warp("", vrt, format="MEM", dstSRS=ds.GetProjection(), resampleAlg="average",
                           outputBounds=(gt[0], gt[3] + gt[5] * ds.RasterYSize, gt[0] + gt[1] * ds.RasterXSize, gt[3]),
                           width=ds.RasterXSize, height=ds.RasterYSize, dstNodata=255)
        truth = warped.GetRasterBand(1).ReadAsArray().astype(np.float64)
        keep = np.isfinite(predicted) & (truth != 255)
        p, t = predicted[keep], truth[keep]
        r2 = 1 - np.sum((t - p) ** 2) / np.sum((t - t.mean()) ** 2)
        out[zone] = {"chips": int(keep.sum()), "r2_against_gdalwarp_average": float(r2)}
    print(json.dumps(out))


if __name__ == "__main__":
    {"labels": labels, "score": score}[sys.argv[1]](*sys.argv[2:])
