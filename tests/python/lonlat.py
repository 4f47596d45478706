"""Coordinate transformations between lon/lat (WGS 84, longitude first) and a CRS, by
GDAL's osr; shared by the test readers of the cube (check_cube, check_stac, read_geoemb)."""
from osgeo import osr


def _lonlat():
    wgs = osr.SpatialReference()
    wgs.ImportFromEPSG(4326)
    wgs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return wgs


def _srs(crs):
    if isinstance(crs, osr.SpatialReference):
        return crs
    srs = osr.SpatialReference()
    srs.SetFromUserInput(crs)
    return srs


def to_lonlat(crs):
    """From `crs` (an osr.SpatialReference or any text GDAL reads, e.g. "EPSG:32610")."""
    return osr.CoordinateTransformation(_srs(crs), _lonlat())


def from_lonlat(crs):
    """To `crs`."""
    return osr.CoordinateTransformation(_lonlat(), _srs(crs))
