#!/usr/bin/python3
"""Per-date scenes as their publishers lay them out, and the composite computed without
eo-pipeline: gdalwarp for the resampling, numpy for the reduction.

  scenes.py make DIR LANDSAT_TIF
      Writes Sentinel-2 L2A scenes (one uint16 COG per band, a 20 m SCL with clouds,
      cloud shadow, cirrus and no data in it), Sentinel-1 RTC scenes (VV and VH COGs in
      linear power), and STAC ItemCollections describing them as Earth Search v1 and
      Planetary Computer publish them. The pixels are those of a real Landsat 7 scene
      (r-cran-stars), changed from date to date.

  scenes.py arrive STAC.json LON LAT OUT.json
      A new Sentinel-2 scene arriving: the first item of STAC.json covering (LON, LAT),
      cut to 4 km around that point, one day later, written beside it as a new item
      (its own COGs) in an ItemCollection of its own.

  scenes.py check DIR OURS.f32 ARGS.json
      Composites the scenes onto the window the arguments describe (gdalwarp with the
      very same arguments), S2 as numpy.nanmedian of the clear observations (SCL masked
      at 20 m, as published), S1 as the mean in linear power in dB, and compares with
      our composite. Prints the largest differences; exits 1 when they exceed float
      tolerance or no-data differs.
"""
import json
import os
import subprocess
import sys

import numpy as np
from osgeo import gdal

gdal.UseExceptions()

EPSG = 32610
X0, Y0 = 760000.0, 4100000.0  # upper left, UTM 10N: the demo's Central Valley, by 120 W
SIZE = 300                     # 10 m pixels: a 3 km scene
S2_DATES = ["2023-06-04T18:59:21.024000Z", "2023-06-19T18:59:19.024000Z",
            "2023-07-09T18:59:21.024000Z", "2023-07-24T18:59:19.024000Z", "2023-08-13T18:59:21.024000Z"]
S1_DATES = ["2023-06-06T01:58:13.481829Z", "2023-06-18T01:58:14.112346Z", "2023-06-30T01:58:14.756121Z"]
CLEAR = [2, 4, 5, 6, 7, 11]


def cog(path, array, gt, nodata, epsg=EPSG):
    """A cloud-optimised GeoTIFF of one band, as the publishers write them."""
    mem = gdal.GetDriverByName("MEM").Create("", array.shape[1], array.shape[0], 1,
                                             gdal.GDT_UInt16 if array.dtype == np.uint16 else
                                             gdal.GDT_Byte if array.dtype == np.uint8 else gdal.GDT_Float32)
    mem.SetGeoTransform(gt)
    srs = gdal.osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    mem.SetProjection(srs.ExportToWkt())
    mem.GetRasterBand(1).WriteArray(array)
    if nodata is not None:
        mem.GetRasterBand(1).SetNoDataValue(nodata)
    gdal.GetDriverByName("COG").CreateCopy(path, mem, options=["COMPRESS=DEFLATE", "BLOCKSIZE=256"])


def landsat(tif):
    """Bands 3, 2, 1 (red, green, blue) of the Landsat 7 scene, 300 x 300, as 0..1."""
    ds = gdal.Open(tif)
    bands = [ds.GetRasterBand(b).ReadAsArray()[:SIZE, :SIZE].astype("float64") for b in (3, 2, 1)]
    return [b / 255.0 for b in bands]


def blobs(rng, n, radius):
    yy, xx = np.mgrid[0:SIZE // 2, 0:SIZE // 2]
    mask = np.zeros((SIZE // 2, SIZE // 2), bool)
    for _ in range(n):
        cy, cx = rng.integers(0, SIZE // 2, 2)
        mask |= (yy - cy) ** 2 + (xx - cx) ** 2 < radius ** 2
    return mask


def bbox_of(gt, w, h, epsg=EPSG):
    srs = gdal.osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    wgs = gdal.osr.SpatialReference()
    wgs.ImportFromEPSG(4326)
    wgs.SetAxisMappingStrategy(gdal.osr.OAMS_TRADITIONAL_GIS_ORDER)
    srs.SetAxisMappingStrategy(gdal.osr.OAMS_TRADITIONAL_GIS_ORDER)
    ct = gdal.osr.CoordinateTransformation(srs, wgs)
    pts = [ct.TransformPoint(gt[0] + i * gt[1], gt[3] + j * gt[5]) for i in (0, w) for j in (0, h)]
    lons, lats = [p[0] for p in pts], [p[1] for p in pts]
    return [min(lons), min(lats), max(lons), max(lats)]


def polygon(b):
    return {"type": "Polygon", "coordinates": [[[b[0], b[1]], [b[2], b[1]], [b[2], b[3]], [b[0], b[3]], [b[0], b[1]]]]}


def make(out, tif):
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(11)
    rgb = landsat(tif)
    gt10 = (X0, 10.0, 0.0, Y0, 0.0, -10.0)
    gt20 = (X0, 20.0, 0.0, Y0, 0.0, -20.0)
    es, pc = [], []
    for k, when in enumerate(S2_DATES):
        day = when[:10].replace("-", "")
        es_id = f"S2B_10SGF_{day}_0_L2A"
        pc_id = f"S2B_MSIL2A_{day}T185919_R013_T10SGF_{day}T221834"
        folder = os.path.join(out, "s2", es_id)
        os.makedirs(folder, exist_ok=True)
        scl = np.full((SIZE // 2, SIZE // 2), 4, np.uint8)          # vegetation
        scl[rng.random(scl.shape) < 0.2] = 5                         # bare soil
        scl[blobs(rng, 2, 12)] = 9                                   # cloud, high probability
        scl[blobs(rng, 2, 8)] = 8                                    # cloud, medium probability
        scl[blobs(rng, 1, 10)] = 3                                   # cloud shadow
        scl[blobs(rng, 1, 6)] = 10                                   # thin cirrus
        if k == 1:
            scl[:, :20] = 0                                          # the swath's edge: no data
        cloudy = np.isin(np.kron(scl, np.ones((2, 2), np.uint8)), [0, 1, 3, 8, 9, 10])
        hrefs = {}
        for b, name in enumerate(["B04", "B03", "B02"]):
            refl = np.clip(rgb[b] * (0.9 + 0.05 * k) + 0.01 * k, 0, 1)
            dn = np.round(refl * 10000 + 1000).astype(np.uint16)    # baseline 05.09: DN = 10000 R + 1000
            dn[cloudy] = 30000 + 100 * k                             # what must never be used: very bright
            dn[np.kron(scl, np.ones((2, 2), np.uint8)) == 0] = 0     # no data is 0
            cog(os.path.join(folder, f"{name}.tif"), dn, gt10, 0)
            hrefs[name] = f"s2/{es_id}/{name}.tif"
        cog(os.path.join(folder, "SCL.tif"), scl, gt20, 0)
        hrefs["SCL"] = f"s2/{es_id}/SCL.tif"
        bbox = bbox_of(gt10, SIZE, SIZE)
        base_props = {"datetime": when, "platform": "sentinel-2b", "constellation": "sentinel-2",
                      "instruments": ["msi"], "eo:cloud_cover": float(np.mean(scl >= 8) * 100),
                      "proj:epsg": EPSG, "mgrs:utm_zone": 10, "mgrs:latitude_band": "S", "mgrs:grid_square": "GF",
                      "s2:processing_baseline": "05.09", "s2:product_type": "S2MSI2A"}
        def band(common, res, offset=-0.1):
            return {"nodata": 0, "data_type": "uint16", "bits_per_sample": 15, "spatial_resolution": res,
                    "scale": 0.0001, "offset": offset}
        es_props = dict(base_props, **{"earthsearch:boa_offset_applied": False,
                                       "earthsearch:s3_path": f"s3://sentinel-cogs/sentinel-s2-l2a-cogs/10/S/GF/2023/{int(day[4:6])}/{es_id}"})
        es_assets = {}
        for key, name, common in [("red", "B04", "red"), ("green", "B03", "green"), ("blue", "B02", "blue")]:
            es_assets[key] = {"href": hrefs[name], "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                              "title": f"{common.capitalize()} (band {name[1:].lstrip('0')}) - 10m",
                              "eo:bands": [{"name": name, "common_name": common}],
                              "gsd": 10, "proj:shape": [SIZE, SIZE], "proj:transform": list(gt10[1:3]) + [X0, 0.0, -10.0, Y0],
                              "raster:bands": [band(common, 10)], "roles": ["data", "reflectance"]}
        es_assets["scl"] = {"href": hrefs["SCL"], "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                            "title": "Scene classification map (SCL)", "proj:shape": [SIZE // 2, SIZE // 2],
                            "raster:bands": [{"nodata": 0, "data_type": "uint8", "spatial_resolution": 20}],
                            "roles": ["data"]}
        es.append({"type": "Feature", "stac_version": "1.0.0", "id": es_id, "collection": "sentinel-2-l2a",
                   "stac_extensions": ["https://stac-extensions.github.io/eo/v1.1.0/schema.json",
                                       "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
                                       "https://stac-extensions.github.io/raster/v1.1.0/schema.json"],
                   "bbox": bbox, "geometry": polygon(bbox), "properties": es_props, "assets": es_assets,
                   "links": [{"rel": "collection", "href": "https://earth-search.aws.element84.com/v1/collections/sentinel-2-l2a"}]})
        pc_assets = {}
        for name, common in [("B04", "red"), ("B03", "green"), ("B02", "blue")]:
            pc_assets[name] = {"href": hrefs[name], "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                               "title": f"Band {name[1:].lstrip('0')} - {common.capitalize()} - 10m", "gsd": 10.0,
                               "eo:bands": [{"name": name, "common_name": common, "description": f"Band {name[1:].lstrip('0')} - {common}"}],
                               "proj:shape": [SIZE, SIZE], "proj:bbox": [X0, Y0 - SIZE * 10, X0 + SIZE * 10, Y0],
                               "proj:transform": [10.0, 0.0, X0, 0.0, -10.0, Y0], "roles": ["data"]}
        pc_assets["SCL"] = {"href": hrefs["SCL"], "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                            "title": "Scene classfication map (SCL)", "gsd": 20.0, "proj:shape": [SIZE // 2, SIZE // 2],
                            "proj:transform": [20.0, 0.0, X0, 0.0, -20.0, Y0], "roles": ["data"]}
        pc.append({"type": "Feature", "stac_version": "1.0.0", "id": pc_id, "collection": "sentinel-2-l2a",
                   "bbox": bbox, "geometry": polygon(bbox),
                   "properties": dict(base_props, **{"s2:mgrs_tile": "10SGF", "sat:orbit_state": "descending",
                                                     "sat:relative_orbit": 13}),
                   "assets": pc_assets,
                   "links": [{"rel": "collection", "href": "https://planetarycomputer.microsoft.com/api/stac/v1/collections/sentinel-2-l2a"}]})
    # Sentinel-1 RTC: gamma0 in linear power, float32, -32768 where the swath does not reach.
    rtc = []
    for k, when in enumerate(S1_DATES):
        stamp = when[:19].replace("-", "").replace(":", "")
        rid = f"S1A_IW_GRDH_1SDV_{stamp}_{stamp[:9]}{int(stamp[9:]) + 25:06d}_04{8000 + k}_05C{k}A1_rtc"
        folder = os.path.join(out, "s1", rid, "measurement")
        os.makedirs(folder, exist_ok=True)
        assets = {}
        for p, pol in enumerate(["vv", "vh"]):
            db = -8 - 7 * p - 6 * rgb[1] + rng.normal(0, 1.5, (SIZE, SIZE))
            lin = (10 ** (db / 10)).astype(np.float32)
            if k == 2:
                lin[:40, :] = -32768
            cog(os.path.join(folder, f"iw-{pol}.rtc.tiff"), lin, gt10, -32768)
            assets[pol] = {"href": f"s1/{rid}/measurement/iw-{pol}.rtc.tiff",
                           "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                           "title": f"{pol.upper()}: vertical transmit, {'vertical' if pol == 'vv' else 'horizontal'} receive",
                           "description": "Terrain-corrected gamma naught values of signal transmitted with vertical polarization.",
                           "raster:bands": [{"nodata": -32768, "data_type": "float32", "spatial_resolution": 10.0}],
                           "roles": ["data"]}
        bbox = bbox_of(gt10, SIZE, SIZE)
        rtc.append({"type": "Feature", "stac_version": "1.0.0", "id": rid, "collection": "sentinel-1-rtc",
                    "bbox": bbox, "geometry": polygon(bbox),
                    "properties": {"datetime": when, "platform": "SENTINEL-1A", "constellation": "Sentinel-1",
                                   "sar:polarizations": ["VV", "VH"], "sar:product_type": "GRD",
                                   "sar:instrument_mode": "IW", "sat:orbit_state": "ascending",
                                   "sat:relative_orbit": 35, "proj:epsg": EPSG,
                                   "proj:shape": [SIZE, SIZE], "proj:transform": [10.0, 0.0, X0, 0.0, -10.0, Y0],
                                   "s1:processing_level": "1", "s1:product_timeliness": "Fast-24h"},
                    "assets": assets,
                    "links": [{"rel": "collection", "href": "https://planetarycomputer.microsoft.com/api/stac/v1/collections/sentinel-1-rtc"}]})
    for name, features in [("earth-search-s2.json", es), ("planetary-computer-s2.json", pc), ("planetary-computer-s1.json", rtc)]:
        with open(os.path.join(out, name), "w") as f:
            json.dump({"type": "FeatureCollection", "features": features, "links": []}, f, indent=1)


def warp(path, args, out):
    subprocess.run(["gdalwarp", "-q", "-overwrite"] + args + [path, out], check=True)
    return gdal.Open(out).ReadAsArray().astype("float64")


def masked_reflectance(folder, name, scratch):
    """One band of one scene as reflectance, NaN where no data or where SCL is not clear."""
    band = gdal.Open(os.path.join(folder, f"{name}.tif"))
    dn = band.ReadAsArray().astype("float64")
    gt = band.GetGeoTransform()
    w, h = band.RasterXSize, band.RasterYSize
    scl = gdal.Warp("", os.path.join(folder, "SCL.tif"), format="MEM", outputBounds=(gt[0], gt[3] + h * gt[5], gt[0] + w * gt[1], gt[3]),
                    width=w, height=h, resampleAlg="near").ReadAsArray()
    refl = dn * 0.0001 - 0.1
    refl[(dn == 0) | ~np.isin(scl, CLEAR)] = np.nan
    drv = gdal.GetDriverByName("GTiff")
    out = drv.Create(scratch, w, h, 1, gdal.GDT_Float32)
    out.SetGeoTransform(gt)
    out.SetProjection(band.GetProjection())
    out.GetRasterBand(1).SetNoDataValue(float("nan"))
    out.GetRasterBand(1).WriteArray(refl.astype("float32"))
    out = None
    return scratch


def check(folder, ours_file, args_file):
    spec = json.load(open(args_file))
    args, w, h = spec["args"], spec["width"], spec["height"]
    ours = np.fromfile(ours_file, dtype="<f4").reshape(-1, h, w)
    scratch = os.path.join(folder, "check")
    os.makedirs(scratch, exist_ok=True)
    if spec["modality"] == "s2rgb":
        scenes = sorted(d for d in os.listdir(os.path.join(folder, "s2")))
        stack = np.full((len(scenes), 3, h, w), np.nan)
        for i, scene in enumerate(scenes):
            for b, name in enumerate(["B04", "B03", "B02"]):
                src = masked_reflectance(os.path.join(folder, "s2", scene), name, os.path.join(scratch, f"{scene}_{name}.tif"))
                stack[i, b] = warp(src, args, os.path.join(scratch, "w.tif"))
        with np.errstate(all="ignore"):
            theirs = np.nanmedian(stack, axis=0)
        counts = (~np.isnan(stack[:, 0])).sum(axis=0)
    else:
        scenes = sorted(d for d in os.listdir(os.path.join(folder, "s1")))
        stack = np.full((len(scenes), 2, h, w), np.nan)
        for i, scene in enumerate(scenes):
            for p, pol in enumerate(["vv", "vh"]):
                stack[i, p] = warp(os.path.join(folder, "s1", scene, "measurement", f"iw-{pol}.rtc.tiff"), args,
                                   os.path.join(scratch, "w.tif"))
        with np.errstate(all="ignore"):
            theirs = 10 * np.log10(np.nanmean(stack, axis=0))
        counts = (~np.isnan(stack[:, 0])).sum(axis=0)
    season = spec["season"]
    nb = theirs.shape[0]
    mine = ours[season * nb:(season + 1) * nb]
    same_nan = np.array_equal(np.isnan(mine), np.isnan(theirs))
    both = ~np.isnan(mine) & ~np.isnan(theirs)
    diff = np.abs(mine[both] - theirs[both])
    scale = np.maximum(np.abs(theirs[both]), 1e-3)
    worst = float(np.max(diff / scale)) if diff.size else 0.0
    if worst >= 1e-5:
        bad = np.argwhere(both & (np.abs(mine - theirs) / np.maximum(np.abs(theirs), 1e-3) >= 1e-5))
        print("differ at", len(bad), "pixels, first", bad[:3].tolist(), [(float(mine[tuple(i)]), float(theirs[tuple(i)])) for i in bad[:3]],
              file=sys.stderr)
    clear = np.fromfile(spec["clear"], dtype="<u2").reshape(-1, h, w)[season] if spec.get("clear") else None
    counts_equal = clear is None or np.array_equal(clear, counts)
    print(json.dumps({"pixels": int(both.sum()), "nan_equal": bool(same_nan), "worst_relative": worst,
                      "nan_ours": int(np.isnan(mine).sum()), "nan_theirs": int(np.isnan(theirs).sum()),
                      "max_value": float(np.nanmax(mine)), "counts_equal": bool(counts_equal),
                      "mean_clear": float(counts.mean())}))
    return 0 if same_nan and worst < 1e-5 and both.sum() > 0 and counts_equal else 1


def arrive(stac, lon, lat, out):
    import copy
    import datetime
    folder = os.path.dirname(os.path.abspath(stac))
    items = json.load(open(stac))["features"]
    item = next(i for i in items if i["bbox"][0] < lon < i["bbox"][2] and i["bbox"][1] < lat < i["bbox"][3])
    epsg = item["properties"]["proj:epsg"]
    wgs = gdal.osr.SpatialReference()
    wgs.ImportFromEPSG(4326)
    utm = gdal.osr.SpatialReference()
    utm.ImportFromEPSG(epsg)
    for s in (wgs, utm):
        s.SetAxisMappingStrategy(gdal.osr.OAMS_TRADITIONAL_GIS_ORDER)
    e, n, _ = gdal.osr.CoordinateTransformation(wgs, utm).TransformPoint(lon, lat)
    when = datetime.datetime.fromisoformat(item["properties"]["datetime"].replace("Z", "+00:00")) + datetime.timedelta(days=1)
    new = copy.deepcopy(item)
    new["id"] = item["id"].replace(item["properties"]["datetime"][:10].replace("-", ""), when.strftime("%Y%m%d"))
    new["properties"]["datetime"] = when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    for key, asset in new["assets"].items():
        src = os.path.join(folder, asset["href"])
        dst = os.path.join(os.path.dirname(os.path.dirname(src)), new["id"], os.path.basename(src))
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        gdal.Translate(dst, src, projWin=[e - 2000, n + 2000, e + 2000, n - 2000], format="COG")
        asset["href"] = os.path.relpath(dst, os.path.dirname(os.path.abspath(out)))
        ds = gdal.Open(dst)
        gt = ds.GetGeoTransform()
        asset["proj:shape"] = [ds.RasterYSize, ds.RasterXSize]
        asset["proj:transform"] = [gt[1], 0.0, gt[0], 0.0, gt[5], gt[3]]
    ds = gdal.Open(dst)
    gt = ds.GetGeoTransform()
    new["bbox"] = bbox_of(gt, ds.RasterXSize, ds.RasterYSize, epsg)
    new["geometry"] = polygon(new["bbox"])
    json.dump({"type": "FeatureCollection", "features": [new]}, open(out, "w"), indent=1)
    print(new["id"], json.dumps(new["bbox"]))


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "arrive":
        arrive(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), sys.argv[5])
    else:
        sys.exit(check(sys.argv[2], sys.argv[3], sys.argv[4]))
