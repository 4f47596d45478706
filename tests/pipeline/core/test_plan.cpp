// The planner against an independent computation: PROJ footprints and OGR polygon
// intersection, chip by chip.

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <iostream>
#include <set>

#include "pipeline/core/plan.hpp"
#include "support/gdal_oracle.hpp"

namespace eo {
namespace {

std::set<ChipId> planned_chips(const Plan& plan) {
  std::set<ChipId> out;
  for (const TilePlan& t : plan.tiles)
    for (int i = 0; i < kChipsPerTile; ++i)
      if (t.chips.test(static_cast<std::size_t>(i))) out.insert(t.id.chip(i));
  return out;
}

std::unique_ptr<OGRGeometry> ogr_from_wkt(const std::string& wkt) {
  OGRGeometry* g = nullptr;
  const char* text = wkt.c_str();
  if (OGRGeometryFactory::createFromWkt(text, nullptr, &g) != OGRERR_NONE) throw std::runtime_error("bad WKT " + wkt);
  return std::unique_ptr<OGRGeometry>(g);
}

// A concave AOI with a hole, across the border of zones 32 and 33 (12 E).
const char* kBorderAoi =
    "POLYGON((11.2 45.0, 12.9 45.1, 12.6 45.5, 12.05 45.35, 11.95 45.8, 12.8 46.1, 11.3 46.2, 11.2 45.0),"
    "(11.5 45.3, 11.8 45.3, 11.8 45.6, 11.5 45.6, 11.5 45.3))";

TEST(Plan, ChipsAreExactlyThoseOverlappingAoiInsideTheirZone) {
  const Plan plan = make_plan({aoi_from_wkt(kBorderAoi, "border", "test")});
  const std::set<ChipId> ours = planned_chips(plan);
  const auto aoi = ogr_from_wkt(kBorderAoi);
  std::set<ChipId> oracle;
  int marginal = 0;
  for (int zone_number : {32, 33}) {
    const Zone zone{zone_number, false};
    const double cm = zone.central_meridian();
    const auto band = test::lonlat_box(cm - 3, -80, cm + 3, 84);
    const test::ProjTransform to_utm(4326, zone.epsg());
    double e0 = 1e9, n0 = 1e9, e1 = -1e9, n1 = -1e9;
    for (double lon : {11.0, 13.1})
      for (double lat : {44.9, 46.3}) {
        double x = lon, y = lat;
        to_utm(x, y);
        e0 = std::min(e0, x); e1 = std::max(e1, x); n0 = std::min(n0, y); n1 = std::max(n1, y);
      }
    const ChipId lo = chip_at(zone, {e0, n1}), hi = chip_at(zone, {e1, n0});
    for (int row = lo.row - 2; row <= hi.row + 2; ++row)
      for (int col = lo.col - 2; col <= hi.col + 2; ++col) {
        const ChipId chip{zone, row, col};
        const auto fp = test::proj_footprint(chip, 16);
        std::unique_ptr<OGRGeometry> in_zone(fp->Intersection(band.get()));
        const bool in = in_zone && !in_zone->IsEmpty() && in_zone->Intersects(aoi.get());
        if (in) oracle.insert(chip);
        if (in != static_cast<bool>(ours.count(chip))) {
          // Allowed only for a chip that touches the AOI by a sliver of a few metres
          // (the two sides densify curved edges differently).
          std::unique_ptr<OGRGeometry> inter(in_zone->Intersection(aoi.get()));
          const auto* surface = dynamic_cast<const OGRSurface*>(inter.get());
          const double sliver_deg = in ? std::sqrt(surface ? surface->get_Area() : 0.0) : in_zone->Distance(aoi.get());
          EXPECT_LT(sliver_deg, 1e-4) << chip.str() << " ours=" << ours.count(chip) << " oracle=" << in;
          ++marginal;
        }
      }
  }
  EXPECT_GT(oracle.size(), 300u);
  EXPECT_LE(marginal, 2) << "chips where the planner and OGR disagree";
  std::cout << ours.size() << " chips planned, " << oracle.size() << " by OGR, " << marginal << " marginal\n";
  for (const ChipId& c : ours) EXPECT_TRUE(c.zone.number == 32 || c.zone.number == 33) << c.str();
  // both zones contribute, and the hole removes chips
  EXPECT_TRUE(plan.per_zone.count({32, false}) && plan.per_zone.count({33, false}));
  const Zone z32{32, false};
  double x = 11.65, y = 45.45;
  test::ProjTransform(4326, 32632)(x, y);
  EXPECT_EQ(ours.count(chip_at(z32, {x, y})), 0u) << "chip in the middle of the hole";
}

// Every point of the AOI along a zone border is inside some planned chip, and a grid
// that kept chips by their centre alone would leave gaps there.
TEST(Plan, NoGapAtZoneBorder) {
  const Plan plan = make_plan({aoi_from_wkt("POLYGON((10 40, 14 40, 14 60, 10 60, 10 40))", "b", "test")});
  const std::set<ChipId> chips = planned_chips(plan);
  auto covered = [&](double lon, double lat, bool centre_rule) {
    for (int z : {32, 33}) {
      const Zone zone{z, false};
      const ChipId c = chip_at(zone, utm_forward(z, false, {lon, lat}));
      if (!chips.count(c)) continue;
      if (!centre_rule) return true;
      const LonLat centre = utm_inverse(z, false, c.centre());
      if (zone_of_longitude(centre.lon) == z) return true;
    }
    return false;
  };
  int gaps_by_centre = 0, samples = 0;
  for (double lat = 40.01; lat < 60; lat += 0.013)
    for (double lon : {12.0 - 1e-7, 12.0, 12.0 + 1e-7, 11.999, 12.001}) {
      ++samples;
      EXPECT_TRUE(covered(lon, lat, false)) << lon << "," << lat;
      gaps_by_centre += !covered(lon, lat, true);
    }
  EXPECT_GT(samples, 7000);
  EXPECT_GT(gaps_by_centre, 0) << "the centre-only rule should leave slivers (the test would not see a gap)";
  // the overlap: gross counts border chips twice, net does not
  EXPECT_GT(plan.total.gross_km2, plan.total.net_km2);
}

TEST(Plan, AoiEdgeOnZoneBorderAddsNoChipsAcrossIt) {
  // The AOI ends at 120 W, the border of zones 10 and 11: zone 11's chips there overlap
  // the AOI only outside their own band, so none is planned; zone 10's reach across.
  const Plan plan = make_plan({aoi_from_wkt("POLYGON((-121 36.7, -120 36.7, -120 37.4, -121 37.4, -121 36.7))", "a", "t")});
  EXPECT_EQ(plan.per_zone.size(), 1u);
  EXPECT_TRUE(plan.per_zone.count({10, false}));
  EXPECT_LT(plan.total.net_km2, plan.total.gross_km2);
}

TEST(Plan, NoGapAtEquator) {
  const Plan plan = make_plan({aoi_from_wkt("POLYGON((30 -1, 32 -1, 32 1, 30 1, 30 -1))", "eq", "test")});
  const std::set<ChipId> chips = planned_chips(plan);
  EXPECT_TRUE(plan.per_zone.count({36, false}) && plan.per_zone.count({36, true}));
  for (double lon = 30.01; lon < 32; lon += 0.01)
    for (double lat : {-1e-7, 0.0, 1e-7}) {
      bool hit = false;
      for (bool south : {false, true}) {
        const Zone zone{zone_of_longitude(lon), south};
        hit |= chips.count(chip_at(zone, utm_forward(zone.number, south, {lon, lat}))) > 0;
      }
      EXPECT_TRUE(hit) << lon << "," << lat;
    }
}

// GeoJSON files crossing the antimeridian write longitudes past 180 in one part and
// below -180 + x in another; the parts are one area, planned as if written in -180..180.
TEST(Plan, AntimeridianPartsWrittenBeyond180AreWrapped) {
  const std::string beyond = R"({"type":"MultiPolygon","coordinates":[
      [[[177,-17],[181.5,-17],[181.5,-16],[177,-16],[177,-17]]],
      [[[-179.5,-18],[-178,-18],[-178,-17.5],[-179.5,-17.5],[-179.5,-18]]]]})";
  const std::string within = R"({"type":"MultiPolygon","coordinates":[
      [[[177,-17],[180,-17],[180,-16],[177,-16],[177,-17]]],
      [[[-180,-17],[-178.5,-17],[-178.5,-16],[-180,-16],[-180,-17]]],
      [[[-179.5,-18],[-178,-18],[-178,-17.5],[-179.5,-17.5],[-179.5,-18]]]]})";
  const Aoi aoi = aoi_from_geojson(beyond, "fiji", "test");
  EXPECT_LT(aoi.max_lon - aoi.min_lon, 6);
  EXPECT_EQ(planned_chips(make_plan({aoi})), planned_chips(make_plan({aoi_from_geojson(within, "fiji", "test")})));
  // A ring that really winds around the Earth is refused, and the message says so.
  try {
    aoi_from_geojson(R"({"type":"Polygon","coordinates":[[[0,1],[120,1],[240,1],[370,1],[370,2],[0,2],[0,1]]]})", "w", "w.geojson");
    ADD_FAILURE() << "a ring winding around the Earth was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("polygon 1 winds around the Earth"), std::string::npos) << e.what();
  }
}

TEST(Plan, AntimeridianAoiIsSplitAcrossZones60And1) {
  const Plan wrapped = make_plan({aoi_from_wkt("POLYGON((178 64, -178 64, -178 66, 178 66, 178 64))", "am", "test")});
  const Plan unwrapped = make_plan({aoi_from_wkt("POLYGON((178 64, 182 64, 182 66, 178 66, 178 64))", "am", "test")});
  EXPECT_EQ(planned_chips(wrapped), planned_chips(unwrapped));
  EXPECT_TRUE(wrapped.per_zone.count({60, false}));
  EXPECT_TRUE(wrapped.per_zone.count({1, false}));
  EXPECT_EQ(wrapped.per_zone.size(), 2u);
  const std::set<ChipId> chips = planned_chips(wrapped);
  // a zone-60 chip over the antimeridian: its footprint reaches past 180 E
  bool straddles = false;
  for (const ChipId& c : chips) {
    if (c.zone.number != 60) continue;
    const auto fp = footprint_lonlat(c.zone, c.bounds(), 4);
    double lo = 1e9, hi = -1e9;
    for (const LonLat& p : fp) { lo = std::min(lo, p.lon); hi = std::max(hi, p.lon); }
    if (lo < 180 && hi > 180) {
      straddles = true;
      // PROJ agrees on where that chip is
      auto proj = test::proj_footprint(c);
      OGREnvelope env;
      proj->getEnvelope(&env);
      EXPECT_NEAR(env.MinX, lo, 1e-6);
      EXPECT_NEAR(env.MaxX, hi, 1e-6);
    }
  }
  EXPECT_TRUE(straddles);
  for (double lat = 64.01; lat < 66; lat += 0.01)
    for (double lon : {179.9999, -179.9999, 180.0}) {
      bool hit = false;
      for (int z : {60, 1}) hit |= chips.count(chip_at({z, false}, utm_forward(z, false, {lon, lat}))) > 0;
      EXPECT_TRUE(hit) << lon << "," << lat;
    }
}

TEST(Plan, RefusesLatitudesOutsideUtm) {
  for (const char* wkt : {"POLYGON((10 80, 12 80, 12 84.5, 10 84.5, 10 80))",
                          "POLYGON((10 -81, 12 -81, 12 -70, 10 -70, 10 -81))"}) {
    try {
      aoi_from_wkt(wkt, "polar", "polar.wkt");
      FAIL() << wkt;
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("polar.wkt"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("outside the UTM grid"), std::string::npos) << e.what();
    }
  }
  // right up to the edges is fine
  EXPECT_GT(make_plan({aoi_from_wkt("POLYGON((10 83.5, 12 83.5, 12 84, 10 84, 10 83.5))", "n", "t")}).total.chips, 0u);
  EXPECT_GT(make_plan({aoi_from_wkt("POLYGON((10 -80, 12 -80, 12 -79.5, 10 -79.5, 10 -80))", "s", "t")}).total.chips, 0u);
}

// Net area is the part of each chip inside its own zone: checked against OGR's
// intersection of each PROJ footprint with the band, in an equal-area projection.
TEST(Plan, NetAreaRemovesZoneOverlap) {
  const Plan plan = make_plan({aoi_from_wkt("POLYGON((11.5 45, 12.5 45, 12.5 45.5, 11.5 45.5, 11.5 45))", "b", "t")});
  OGRSpatialReference wgs, laea;
  wgs.importFromEPSG(4326);
  wgs.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  laea.importFromProj4("+proj=laea +lat_0=45 +lon_0=12 +datum=WGS84 +units=m");
  std::unique_ptr<OGRCoordinateTransformation> ct(OGRCreateCoordinateTransformation(&wgs, &laea));
  double oracle_km2 = 0;
  for (const ChipId& c : planned_chips(plan)) {
    auto fp = test::proj_footprint(c, 16);
    const double cm = c.zone.central_meridian();
    auto band = test::lonlat_box(cm - 3, 0, cm + 3, 84);
    std::unique_ptr<OGRGeometry> part(fp->Intersection(band.get()));
    part->transform(ct.get());
    oracle_km2 += dynamic_cast<OGRSurface*>(part.get())->get_Area() / 1e6;
  }
  EXPECT_NEAR(plan.total.net_km2, oracle_km2, 0.003 * oracle_km2);
  EXPECT_GT(plan.total.gross_km2 - plan.total.net_km2, 0.01 * plan.total.net_km2);
  // away from borders net and gross agree
  const Plan inner = make_plan({aoi_from_wkt("POLYGON((14 45, 15 45, 15 45.5, 14 45.5, 14 45))", "i", "t")});
  EXPECT_DOUBLE_EQ(inner.total.net_km2, inner.total.gross_km2);
}

TEST(Plan, OverlappingAoisShareChips) {
  const Plan plan = make_plan({aoi_from_wkt("POLYGON((14 45, 15 45, 15 46, 14 46, 14 45))", "a", "t"),
                               aoi_from_wkt("POLYGON((14.5 45, 15.5 45, 15.5 46, 14.5 46, 14.5 45))", "b", "t")});
  EXPECT_LT(plan.total.chips, plan.per_aoi[0].chips + plan.per_aoi[1].chips);
  EXPECT_GT(plan.total.chips, std::max(plan.per_aoi[0].chips, plan.per_aoi[1].chips));
  std::size_t chips = 0;
  for (const TilePlan& t : plan.tiles) chips += static_cast<std::size_t>(t.chip_count());
  EXPECT_EQ(chips, plan.total.chips);
}

TEST(Aoi, GeoJsonAndWktForms) {
  const std::string poly = R"({"type":"Polygon","coordinates":[[[14,45],[15,45],[15,46],[14,46],[14,45]]]})";
  const std::string feature = R"({"type":"Feature","properties":{},"geometry":)" + poly + "}";
  const std::string collection = R"({"type":"FeatureCollection","features":[)" + feature + "]}";
  const auto reference = planned_chips(make_plan({aoi_from_wkt("POLYGON((14 45,15 45,15 46,14 46,14 45))", "a", "t")}));
  for (const std::string& text : {poly, feature, collection})
    EXPECT_EQ(planned_chips(make_plan({aoi_from_geojson(text, "a", "t")})), reference) << text;
  const auto multi = aoi_from_wkt("MULTIPOLYGON(((14 45,15 45,15 46,14 46,14 45)),((20 45,21 45,21 46,20 46,20 45)))", "m", "t");
  EXPECT_EQ(multi.polygons.size(), 2u);
  EXPECT_THROW(aoi_from_wkt("LINESTRING(1 2, 3 4)", "x", "t"), std::runtime_error);
  EXPECT_THROW(aoi_from_wkt("POLYGON((1 2, 3 4)", "x", "t"), std::runtime_error);
  EXPECT_THROW(aoi_from_geojson(R"({"type":"Point","coordinates":[1,2]})", "x", "t"), std::runtime_error);
  EXPECT_THROW(aoi_from_geojson("{not json", "x", "t"), std::runtime_error);
}

TEST(Plan, TileListRoundTrip) {
  const Plan plan = make_plan({aoi_from_wkt(kBorderAoi, "border", "test")});
  const auto file = std::filesystem::temp_directory_path() / "eo_test_tiles.jsonl";
  write_tiles_jsonl(plan, file);
  const auto back = read_tiles_jsonl(file);
  ASSERT_EQ(back.size(), plan.tiles.size());
  for (std::size_t i = 0; i < back.size(); ++i) {
    EXPECT_EQ(back[i].id, plan.tiles[i].id);
    EXPECT_EQ(back[i].chips, plan.tiles[i].chips);
  }
  std::filesystem::remove(file);
}

}  // namespace
}  // namespace eo
