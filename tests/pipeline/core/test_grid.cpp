// The chip grid against PROJ (through GDAL), which computes the same UTM maths
// independently of ours.

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "pipeline/core/grid.hpp"
#include "support/gdal_oracle.hpp"

namespace eo {
namespace {

using test::ProjTransform;

TEST(Utm, ForwardAndInverseMatchProj) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> dlon(-3.5, 3.5), lat(-80.0, 84.0);
  for (int zone_number : {1, 10, 23, 33, 60}) {
    for (bool south : {false, true}) {
      const Zone zone{zone_number, south};
      const ProjTransform to_utm(4326, zone.epsg()), to_lonlat(zone.epsg(), 4326);
      for (int i = 0; i < 200; ++i) {
        const double la = south ? -std::abs(lat(rng)) : std::abs(lat(rng));
        const LonLat p{zone.central_meridian() + dlon(rng), std::clamp(la, -80.0, 84.0)};
        double x = p.lon, y = p.lat;
        to_utm(x, y);
        const EastNorth ours = utm_forward(zone.number, zone.south, p);
        EXPECT_NEAR(ours.e, x, 1e-4) << zone.name() << " " << p.lon << "," << p.lat;
        EXPECT_NEAR(ours.n, y, 1e-4) << zone.name() << " " << p.lon << "," << p.lat;
        double lon = x, la2 = y;
        to_lonlat(lon, la2);
        const LonLat back = utm_inverse(zone.number, zone.south, {x, y});
        EXPECT_NEAR(back.lon, std::remainder(lon - zone.central_meridian(), 360.0) + zone.central_meridian(), 1e-9);
        EXPECT_NEAR(back.lat, la2, 1e-9);
      }
    }
  }
}

TEST(Grid, ChipCornersMatchProj) {
  for (const ChipId chip : {ChipId{{33, false}, 412, 107}, ChipId{{23, true}, 800, 60}, ChipId{{60, false}, 600, 180},
                            ChipId{{1, true}, 2000, 120}}) {
    const ProjTransform to_lonlat(chip.zone.epsg(), 4326);
    const Box b = chip.bounds();
    const auto ring = footprint_lonlat(chip.zone, b, 1);
    ASSERT_EQ(ring.size(), 5u);
    const double xs[4] = {b.e0, b.e1, b.e1, b.e0}, ys[4] = {b.n0, b.n0, b.n1, b.n1};
    for (int k = 0; k < 4; ++k) {
      double lon = xs[k], lat = ys[k];
      to_lonlat(lon, lat);
      EXPECT_NEAR(std::remainder(ring[k].lon - lon, 360.0), 0.0, 1e-9) << chip.str() << " corner " << k;
      EXPECT_NEAR(ring[k].lat, lat, 1e-9) << chip.str() << " corner " << k;
    }
  }
}

TEST(Grid, EveryChipIs4480MetresSquareInItsZone) {
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> zone(1, 60), row(10, 2000), col(40, 180);
  for (int i = 0; i < 300; ++i) {
    const ChipId chip{{zone(rng), i % 2 == 1}, row(rng), col(rng)};
    // Out through PROJ to lon/lat and back: the corners must come back 4480 m apart.
    const ProjTransform to_lonlat(chip.zone.epsg(), 4326), to_utm(4326, chip.zone.epsg());
    const auto ring = footprint_lonlat(chip.zone, chip.bounds(), 1);
    std::vector<EastNorth> corners;
    for (int k = 0; k < 4; ++k) {
      double x = ring[k].lon, y = ring[k].lat;
      to_utm(x, y);
      corners.push_back({x, y});
    }
    EXPECT_NEAR(corners[1].e - corners[0].e, 4480.0, 1e-3) << chip.str();
    EXPECT_NEAR(corners[2].n - corners[1].n, 4480.0, 1e-3) << chip.str();
    EXPECT_NEAR(corners[2].e - corners[3].e, 4480.0, 1e-3) << chip.str();
    EXPECT_NEAR(corners[3].n - corners[0].n, 4480.0, 1e-3) << chip.str();
    EXPECT_NEAR(corners[0].e, chip.bounds().e0, 1e-3) << chip.str();
    EXPECT_NEAR(corners[0].n, chip.bounds().n0, 1e-3) << chip.str();
  }
}

TEST(Grid, IdFootprintIdRoundTrip) {
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> zone(1, 60), row(0, 2090), col(37, 186);
  for (int i = 0; i < 2000; ++i) {
    const ChipId chip{{zone(rng), i % 3 == 0}, row(rng), col(rng)};
    EXPECT_EQ(parse_chip_id(chip.str()), chip);
    // centre -> lon/lat (PROJ) -> zone CRS (ours) -> chip
    const EastNorth c = chip.centre();
    double lon = c.e, lat = c.n;
    ProjTransform(chip.zone.epsg(), 4326)(lon, lat);
    EXPECT_EQ(chip_at(chip.zone, utm_forward(chip.zone.number, chip.zone.south, {lon, lat})), chip) << chip.str();
    // each corner nudged inward stays in the chip
    const Box b = chip.bounds();
    EXPECT_EQ(chip_at(chip.zone, {b.e0 + 0.01, b.n0 + 0.01}), chip);
    EXPECT_EQ(chip_at(chip.zone, {b.e1 - 0.01, b.n1 - 0.01}), chip);
    const TileId tile = tile_of(chip);
    EXPECT_EQ(parse_tile_id(tile.str()), tile);
    EXPECT_EQ(tile.chip(index_in_tile(chip)), chip);
    const Box tb = tile.bounds();
    EXPECT_TRUE(b.e0 >= tb.e0 && b.e1 <= tb.e1 && b.n0 >= tb.n0 && b.n1 <= tb.n1) << chip.str();
  }
}

TEST(Grid, DesignExampleIds) {
  const ChipId chip = parse_chip_id("33N_0412_0107");
  EXPECT_EQ(chip.zone.number, 33);
  EXPECT_FALSE(chip.zone.south);
  EXPECT_EQ(chip.zone.epsg(), 32633);
  EXPECT_EQ(tile_of(chip).str(), "33N_T025_T006");
  EXPECT_EQ(chip.bounds().e0, 107 * 4480.0);
  EXPECT_EQ(chip.bounds().n1, kOriginNorth - 412 * 4480.0);
}

TEST(Grid, BadIdsAreRefusedByName) {
  auto message = [](auto parse, const std::string& text) {
    try {
      parse(text);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  for (const char* bad : {"33X_0412_0107", "61N_0412_0107", "33N_04120107", "33N_0412_01x7", ""})
    EXPECT_NE(message(parse_chip_id, bad).find(std::string("'") + bad + "' is not a chip id"), std::string::npos)
        << message(parse_chip_id, bad);
  for (const char* bad : {"33X_T025_T006", "00N_T025_T006", "33N_T025_006", "33N_T025_T0x6", "33N_0412_0107"})
    EXPECT_NE(message(parse_tile_id, bad).find(std::string("'") + bad + "' is not a tile id"), std::string::npos)
        << message(parse_tile_id, bad);
}

TEST(Grid, SouthernHemisphereChip) {
  // Brasilia: zone 23 south, EPSG:32723, northing with the 10,000 km false northing.
  const LonLat p{-47.88, -15.79};
  const Zone zone{zone_of_longitude(p.lon), p.lat < 0};
  EXPECT_EQ(zone.epsg(), 32723);
  double x = p.lon, y = p.lat;
  ProjTransform(4326, 32723)(x, y);
  const ChipId chip = chip_at(zone, {x, y});
  EXPECT_EQ(chip.str().substr(0, 3), "23S");
  const Box b = chip.bounds();
  EXPECT_TRUE(x >= b.e0 && x < b.e1 && y >= b.n0 && y < b.n1);
  EXPECT_GT(b.n0, 8'000'000.0);  // south of the equator, within the false northing
  auto footprint = test::proj_footprint(chip);
  OGRPoint pt(p.lon, p.lat);
  EXPECT_TRUE(footprint->Contains(&pt));
}

TEST(Grid, ZoneOfLongitude) {
  EXPECT_EQ(zone_of_longitude(-180.0), 1);
  EXPECT_EQ(zone_of_longitude(-174.0001), 1);
  EXPECT_EQ(zone_of_longitude(-174.0), 2);
  EXPECT_EQ(zone_of_longitude(179.999), 60);
  EXPECT_EQ(zone_of_longitude(180.0), 1);  // wraps
  EXPECT_EQ(zone_of_longitude(15.0), 33);
}

}  // namespace
}  // namespace eo
