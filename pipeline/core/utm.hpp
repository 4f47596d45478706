#pragma once
// Transverse Mercator on WGS 84 as UTM uses it, after Karney (2011), "Transverse Mercator
// with an accuracy of a few nanometers" (Krüger series to n^6). Our own implementation
// so that planning needs no projection library and is thread-safe; the tests check it
// against PROJ.

namespace eo {

struct LonLat {
  double lon = 0;  // degrees
  double lat = 0;  // degrees
};

struct EastNorth {
  double e = 0;  // metres
  double n = 0;  // metres
};

// Central meridian of UTM zone 1..60, degrees.
double utm_central_meridian(int zone);

// Forward and inverse projection for a zone and hemisphere. Longitude may lie outside
// the zone's band (the series stay accurate to well below a millimetre within ~10
// degrees of the central meridian, which is all the planner uses).
EastNorth utm_forward(int zone, bool south, LonLat p);
LonLat utm_inverse(int zone, bool south, EastNorth p);

}  // namespace eo
