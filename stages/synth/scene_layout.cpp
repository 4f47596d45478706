// The scenes layout: the world as real data is published (Sentinel-2 L2A and Sentinel-1
// RTC scenes per date with STAC ItemCollections, the global coherence dataset's tiles,
// WorldCover tiles), for the pipeline to composite.

#include <chrono>

#include "stages/ingest/stac.hpp"
#include "stages/synth/writer.hpp"

namespace eo::synth {

std::vector<std::string> Writer::scene_dates(int season, int n) const {
  using namespace std::chrono;
  const year_month_day start = season == 0 ? year{synth_.year - 1} / December / 1
                                           : year{synth_.year} / month{static_cast<unsigned>(3 * season)} / 1;
  const year_month_day end = season == 0 ? year{synth_.year} / March / 1
                                          : year{synth_.year} / month{static_cast<unsigned>(3 * season + 3)} / 1;
  const int days = static_cast<int>((sys_days{end} - sys_days{start}).count());
  std::vector<std::string> dates;
  for (int k = 0; k < n; ++k) {
    const year_month_day d{sys_days{start} + std::chrono::days{(2 * k + 1) * days / (2 * n)}};
    dates.push_back(fmt::format("{:04d}-{:02d}-{:02d}", static_cast<int>(d.year()), static_cast<unsigned>(d.month()),
                                static_cast<unsigned>(d.day())));
  }
  return dates;
}

nlohmann::json Writer::item(const std::string& id, const std::string& collection, const std::string& datetime, const LonLatBox& box,
                    nlohmann::json properties, nlohmann::json assets, const std::string& publisher_url) {
  properties["datetime"] = datetime.empty() ? nlohmann::json() : nlohmann::json(datetime);
  const nlohmann::json ring = {{box.lon0, box.lat0}, {box.lon1, box.lat0}, {box.lon1, box.lat1}, {box.lon0, box.lat1}, {box.lon0, box.lat0}};
  return {{"type", "Feature"},
          {"stac_version", "1.0.0"},
          {"id", id},
          {"collection", collection},
          {"bbox", {box.lon0, box.lat0, box.lon1, box.lat1}},
          {"geometry", {{"type", "Polygon"}, {"coordinates", {ring}}}},
          {"properties", std::move(properties)},
          {"assets", std::move(assets)},
          {"links", {{{"rel", "collection"}, {"href", publisher_url + "/collections/" + collection}}}}};
}

void Writer::s2_scenes() {
  const double px = kS2PixelM * scale_;
  mgrs_tiles(Modality::s2rgb, px, [&](const GroundTile& t) {
    const auto& [zone, tile, gt, n, ground, where, covered] = t;
    const OGRSpatialReference srs = epsg(zone.epsg());
    const int ns = (n + 1) / 2;  // SCL pixels per side
    const double gt20[6] = {gt[0], 2 * px, 0, gt[3], 0, -2 * px};
    const LonLatBox box = lonlat_bounds(zone, {gt[0], gt[3] - n * px, gt[0] + n * px, gt[3]});
    for (int season = 0; season < kSeasons; ++season) {
      const auto dates = scene_dates(season, synth_.s2_scenes);
      for (int k = 0; k < static_cast<int>(dates.size()); ++k) {
        const std::string id = fmt::format("S2B_{}_{}_0_L2A", tile, compact(dates[static_cast<std::size_t>(k)]));
        if (left_out(Modality::s2rgb, id)) continue;
        const auto layer = static_cast<std::uint32_t>(100 + 16 * season + k);
        std::vector<std::uint8_t> scl(static_cast<std::size_t>(ns) * ns, 0);
        // The acquisition's gain and haze vary over 10-20 km: drawn per SCL pixel.
        std::vector<float> gain(scl.size(), 1.0f), haze(scl.size(), 0.0f);
        parallel_rows(ns, [&](int r) {
          for (int c = 0; c < ns; ++c) {
            const std::size_t i = static_cast<std::size_t>(std::min(2 * r, n - 1)) * n + std::min(2 * c, n - 1);
            if (!covered[i]) continue;  // 0: no data
            const LonLat p = where[i];
            if (const double e = synth_.acquisition_effects; e > 0) {
              gain[static_cast<std::size_t>(r) * ns + c] = static_cast<float>(1 + 0.6 * e * world_.acquisition(p, 12000, layer));
              haze[static_cast<std::size_t>(r) * ns + c] = static_cast<float>(40 * e * (world_.acquisition(p, 20000, layer + 500) + 0.5));
            }
            const int field = static_cast<int>(layer);
            std::uint8_t cls = ground[i].cover == Cover::water ? 6 : ground[i].cover == Cover::bare || ground[i].cover == Cover::built ? 5 : 4;
            // a shadow falls ~1 km from its cloud, away from the sun
            if (world_.cloud({p.lon + 0.012, p.lat + 0.008}, field, synth_.cloud_fraction)) cls = 3;
            if (world_.cloud(p, field + 1000, synth_.cloud_fraction / 3)) cls = 10;  // thin cirrus
            if (world_.cloud(p, field, synth_.cloud_fraction)) cls = world_.cloud(p, field, synth_.cloud_fraction / 2) ? 9 : 8;
            scl[static_cast<std::size_t>(r) * ns + c] = cls;
          }
        });
        std::vector<std::vector<std::uint16_t>> bands(3, std::vector<std::uint16_t>(ground.size(), 0));
        parallel_rows(n, [&](int r) {
          for (int c = 0; c < n; ++c) {
            const std::size_t i = static_cast<std::size_t>(r) * n + c;
            const std::size_t at = static_cast<std::size_t>(r / 2) * ns + c / 2;
            const std::uint8_t cls = scl[at];
            if (cls == 0) continue;
            const double u = hash_unit(synth_.seed, static_cast<std::int64_t>(gt[0] / px) + c, static_cast<std::int64_t>(gt[3] / px) - r, layer);
            std::array<double, 3> v{};
            if (cls >= 8) {
              v.fill(650 + 150 * u);  // cloud: bright in every band
            } else {
              const auto rgb = s2_sample(ground[i], season, u);
              for (int b = 0; b < 3; ++b)
                v[static_cast<std::size_t>(b)] = std::clamp(gain[at] * rgb[static_cast<std::size_t>(b)] + haze[at], 1.0f, 255.0f);
              if (cls == 3) for (auto& x : v) x *= 0.35;  // under a cloud's shadow
              if (cls == 10) for (auto& x : v) x = 0.6 * x + 140;
            }
            // reflectance v / 1000, as DN of processing baseline >= 04.00
            for (int b = 0; b < 3; ++b)
              bands[static_cast<std::size_t>(b)][i] = static_cast<std::uint16_t>(std::lround(10 * v[static_cast<std::size_t>(b)]) + 1000);
          }
        });
        const auto folder = dir_ / "sentinel-2-l2a" / id;
        static const char* kAssets[3][3] = {{"red", "B04", "Red (band 4) - 10m"}, {"green", "B03", "Green (band 3) - 10m"},
                                            {"blue", "B02", "Blue (band 2) - 10m"}};
        nlohmann::json assets = nlohmann::json::object();
        for (int b = 0; b < 3; ++b) {
          Raster out(n, n, 1, GDT_UInt16, gt, srs);
          out.write_band(1, bands[static_cast<std::size_t>(b)], GDT_UInt16);
          out.ds().GetRasterBand(1)->SetNoDataValue(0);
          const auto path = folder / fmt::format("{}.tif", kAssets[b][1]);
          out.save("COG", path, {"COMPRESS=DEFLATE", "LEVEL=1", "BLOCKSIZE=512", "PREDICTOR=YES", "OVERVIEWS=NONE", "NUM_THREADS=ALL_CPUS"});
          count(path, Modality::s2rgb);
          assets[kAssets[b][0]] = {{"href", href(path)}, {"type", "image/tiff; application=geotiff; profile=cloud-optimized"},
                                   {"title", kAssets[b][2]}, {"eo:bands", {{{"name", kAssets[b][1]}, {"common_name", kAssets[b][0]}}}},
                                   {"gsd", px}, {"proj:shape", {n, n}}, {"proj:transform", {px, 0.0, gt[0], 0.0, -px, gt[3]}},
                                   {"raster:bands", {{{"nodata", 0}, {"data_type", "uint16"}, {"bits_per_sample", 15},
                                                      {"spatial_resolution", px}, {"scale", 0.0001}, {"offset", -0.1}}}},
                                   {"roles", {"data", "reflectance"}}};
        }
        Raster mask(ns, ns, 1, GDT_Byte, gt20, srs);
        mask.write_band(1, scl, GDT_Byte);
        mask.ds().GetRasterBand(1)->SetNoDataValue(0);
        const auto scl_path = folder / "SCL.tif";
        mask.save("COG", scl_path, {"COMPRESS=DEFLATE", "LEVEL=1", "BLOCKSIZE=512"});
        assets["scl"] = {{"href", href(scl_path)}, {"type", "image/tiff; application=geotiff; profile=cloud-optimized"},
                         {"title", "Scene classification map (SCL)"}, {"proj:shape", {ns, ns}},
                         {"proj:transform", {2 * px, 0.0, gt[0], 0.0, -2 * px, gt[3]}},
                         {"raster:bands", {{{"nodata", 0}, {"data_type", "uint8"}, {"spatial_resolution", 2 * px}}}},
                         {"roles", {"data"}}};
        std::size_t cloudy = 0, seen = 0;
        for (std::uint8_t c : scl) cloudy += c >= 8, seen += c != 0;
        items_["sentinel-2-l2a"].push_back(item(
            id, "sentinel-2-l2a", dates[static_cast<std::size_t>(k)] + "T18:59:21.024000Z", box,
            {{"platform", "sentinel-2b"}, {"constellation", "sentinel-2"}, {"instruments", {"msi"}},
             {"eo:cloud_cover", seen ? 100.0 * static_cast<double>(cloudy) / static_cast<double>(seen) : 0.0},
             {"proj:epsg", zone.epsg()}, {"mgrs:utm_zone", zone.number}, {"s2:processing_baseline", "05.09"},
             {"s2:product_type", "S2MSI2A"}, {"earthsearch:boa_offset_applied", false}},
            std::move(assets), "https://earth-search.aws.element84.com/v1"));
      }
    }
    progress_(fmt::format("sentinel-2-l2a tile {}: {} scenes ({} px)", tile, kSeasons * synth_.s2_scenes, n));
  });
}

void Writer::s1_scenes() {
  const double px = kS2PixelM * scale_;
  mgrs_tiles(Modality::s1amp, px, [&](const GroundTile& t) {
    const auto& [zone, tile, gt, n, ground, where, covered] = t;
    const OGRSpatialReference srs = epsg(zone.epsg());
    const LonLatBox box = lonlat_bounds(zone, {gt[0], gt[3] - n * px, gt[0] + n * px, gt[3]});
    for (int season = 0; season < kSeasons; ++season) {
      const auto dates = scene_dates(season, synth_.s1_scenes);
      for (int k = 0; k < static_cast<int>(dates.size()); ++k) {
        const std::string day = compact(dates[static_cast<std::size_t>(k)]);
        const std::string id = fmt::format("S1A_IW_GRDH_1SDV_{}T015813_{}T015838_{}_rtc", day, day, tile);
        if (left_out(Modality::s1amp, id)) continue;
        const auto layer = static_cast<std::uint32_t>(600 + 16 * season + k);
        std::vector<std::vector<float>> pols(2, std::vector<float>(ground.size(), -32768.0f));
        // Calibration and incidence angle vary over tens of km: drawn per 4 x 4 pixels.
        const int nb = (n + 3) / 4;
        std::vector<float> shift(static_cast<std::size_t>(nb) * nb, 0.0f);
        if (const double e = synth_.acquisition_effects; e > 0)
          parallel_rows(nb, [&](int r) {
            for (int c = 0; c < nb; ++c)
              shift[static_cast<std::size_t>(r) * nb + c] = static_cast<float>(
                  5 * e * world_.acquisition(where[static_cast<std::size_t>(std::min(4 * r, n - 1)) * n + std::min(4 * c, n - 1)], 25000, layer));
          });
        parallel_rows(n, [&](int r) {
          for (int c = 0; c < n; ++c) {
            const std::size_t i = static_cast<std::size_t>(r) * n + c;
            if (!covered[i]) continue;
            std::array<double, 8> u;
            for (int q = 0; q < 8; ++q)
              u[static_cast<std::size_t>(q)] = hash_unit(synth_.seed, static_cast<std::int64_t>(gt[0] / px) + c,
                                                         static_cast<std::int64_t>(gt[3] / px) - r, layer * 8 + static_cast<std::uint32_t>(q));
            const auto db = s1_sample_db(ground[i], season, u);
            for (int p = 0; p < 2; ++p) {
              // 7 bits of mantissa (0.4%) are plenty under speckle, and compress
              const double power = std::pow(10.0, (db[static_cast<std::size_t>(p)] + shift[static_cast<std::size_t>(r / 4) * nb + c / 4]) / 10);
              pols[static_cast<std::size_t>(p)][i] = std::bit_cast<float>(std::bit_cast<std::uint32_t>(static_cast<float>(power)) & 0xffff0000u);
            }
          }
        });
        const auto folder = dir_ / "sentinel-1-rtc" / id / "measurement";
        nlohmann::json assets = nlohmann::json::object();
        for (int p = 0; p < 2; ++p) {
          const char* pol = p == 0 ? "vv" : "vh";
          Raster out(n, n, 1, GDT_Float32, gt, srs);
          out.write_band(1, pols[static_cast<std::size_t>(p)], GDT_Float32);
          out.ds().GetRasterBand(1)->SetNoDataValue(-32768);
          const auto path = folder / fmt::format("iw-{}.rtc.tiff", pol);
          out.save("COG", path, {"COMPRESS=DEFLATE", "LEVEL=1", "BLOCKSIZE=512", "PREDICTOR=YES", "OVERVIEWS=NONE", "NUM_THREADS=ALL_CPUS"});
          count(path, Modality::s1amp);
          assets[pol] = {{"href", href(path)}, {"type", "image/tiff; application=geotiff; profile=cloud-optimized"},
                         {"title", p == 0 ? "VV: vertical transmit, vertical receive" : "VH: vertical transmit, horizontal receive"},
                         {"raster:bands", {{{"nodata", -32768}, {"data_type", "float32"}, {"spatial_resolution", px}}}},
                         {"roles", {"data"}}};
        }
        items_["sentinel-1-rtc"].push_back(item(
            id, "sentinel-1-rtc", dates[static_cast<std::size_t>(k)] + "T01:58:13.481829Z", box,
            {{"platform", "SENTINEL-1A"}, {"constellation", "Sentinel-1"}, {"sar:polarizations", {"VV", "VH"}},
             {"sar:product_type", "GRD"}, {"sar:instrument_mode", "IW"}, {"sat:orbit_state", "ascending"},
             {"proj:epsg", zone.epsg()}, {"proj:shape", {n, n}}, {"proj:transform", {px, 0.0, gt[0], 0.0, -px, gt[3]}}},
            std::move(assets), "https://planetarycomputer.microsoft.com/api/stac/v1"));
      }
    }
    progress_(fmt::format("sentinel-1-rtc tile {}: {} scenes ({} px)", tile, kSeasons * synth_.s1_scenes, n));
  });
}

void Writer::coherence_tiles() {
  static const char* kSeasonWord[kSeasons] = {"winter", "spring", "summer", "fall"};
  const double px = kCohPixelDeg;
  const int n = static_cast<int>(std::lround(1.0 / px));
  const OGRSpatialReference srs = epsg(4326);
  geographic_tiles(1.0, [&](double lon, double lat) {
    const std::string tile = fmt::format("{}{:02d}{}{:03d}", lat + 1 < 0 ? 'S' : 'N', static_cast<int>(std::abs(lat + 1)),
                                         lon < 0 ? 'W' : 'E', static_cast<int>(std::abs(lon)));
    if (left_out(Modality::s1coh, "COH_" + tile)) return;
    const double gt[6] = {lon, px, 0, lat + 1.0, 0, -px};
    for (int season = 0; season < kSeasons; ++season) {
      std::vector<std::uint8_t> raw(static_cast<std::size_t>(n) * n, 0);
      parallel_rows(n, [&](int r) {
        for (int c = 0; c < n; ++c) {
          const LonLat p{gt[0] + (c + 0.5) * px, gt[3] - (r + 0.5) * px};
          if (!in_extent(p)) continue;
          double value = 0;
          for (int i = 0; i < 3; ++i)
            for (int j = 0; j < 3; ++j)
              value += coherence_mean(world_.at({gt[0] + (c + (i + 0.5) / 3) * px, gt[3] - (r + (j + 0.5) / 3) * px}), season) / 9;
          if (const double k = synth_.acquisition_effects; k > 0)
            value *= 1 - 0.6 * k * (world_.acquisition(p, 30000, 12 + static_cast<std::uint32_t>(season)) + 0.5);
          value += (hash_unit(synth_.seed, static_cast<std::int64_t>(r) * n + c, static_cast<std::int64_t>(lon * 1000 + lat), 400 + season) - 0.5) * 0.08;
          raw[static_cast<std::size_t>(r) * n + c] = static_cast<std::uint8_t>(std::clamp(std::lround(value * 100), 1L, 100L));
        }
      });
      Raster out(n, n, 1, GDT_Byte, gt, srs);
      out.write_band(1, raw, GDT_Byte);
      out.ds().GetRasterBand(1)->SetNoDataValue(0);
      const auto path = dir_ / "global-coherence" / tile / fmt::format("{}_{}_vv_COH12.tif", tile, kSeasonWord[season]);
      out.save("GTiff", path, {"TILED=YES", "COMPRESS=DEFLATE", "ZLEVEL=1"});
      if (auto rec = global_coherence_record(path, Modality::s1coh)) {
        rec->time = season_interval(synth_.year, season);
        rec->path = catalogued(path);
        catalog_.add(std::move(*rec));
      }
      count(path, Modality::s1coh);
    }
    progress_(fmt::format("global-coherence tile {}", tile));
  });
}

void Writer::worldcover_tiles() {
  const double px = kCoverPixelDeg * scale_;
  const int n = static_cast<int>(std::lround(3.0 / px));
  const OGRSpatialReference srs = epsg(4326);
  geographic_tiles(3.0, [&](double lon, double lat) {
    const std::string tile = fmt::format("{}{:02d}{}{:03d}", lat < 0 ? 'S' : 'N', static_cast<int>(std::abs(lat)),
                                         lon < 0 ? 'W' : 'E', static_cast<int>(std::abs(lon)));
    const double gt[6] = {lon, px, 0, lat + 3.0, 0, -px};
    std::vector<std::uint8_t> values(static_cast<std::size_t>(n) * n, 0);
    parallel_rows(n, [&](int r) {
      for (int c = 0; c < n; ++c) {
        const LonLat p{gt[0] + (c + 0.5) * px, gt[3] - (r + 0.5) * px};
        if (in_extent(p)) values[static_cast<std::size_t>(r) * n + c] = static_cast<std::uint8_t>(world_.at(p).cover);
      }
    });
    Raster out(n, n, 1, GDT_Byte, gt, srs);
    out.write_band(1, values, GDT_Byte);
    out.ds().GetRasterBand(1)->SetNoDataValue(0);
    const std::string id = fmt::format("ESA_WorldCover_10m_{}_v200_{}", synth_.year, tile);
    const auto path = dir_ / "esa-worldcover" / fmt::format("{}_Map.tif", id);
    out.save("COG", path, {"COMPRESS=DEFLATE", "LEVEL=1", "BLOCKSIZE=512"});
    count(path, Modality::worldcover);
    items_["esa-worldcover"].push_back(item(
        id, "esa-worldcover", "", {lon, lat, lon + 3, lat + 3},
        {{"start_datetime", fmt::format("{}-01-01T00:00:00Z", synth_.year)},
         {"end_datetime", fmt::format("{}-12-31T23:59:59Z", synth_.year)}, {"proj:epsg", 4326},
         {"esa_worldcover:product_tile", tile}, {"esa_worldcover:product_version", "2.0.0"}},
        {{"map", {{"href", href(path)}, {"type", "image/tiff; application=geotiff; profile=cloud-optimized"},
                  {"title", "Land Cover Classes"}, {"roles", {"data"}}}}},
        "https://planetarycomputer.microsoft.com/api/stac/v1"));
    progress_(fmt::format("esa-worldcover tile {}", tile));
  });
}

void Writer::write_item_collections() {
  for (auto& [collection, features] : items_) {
    const auto file = dir_ / "stac" / (collection + ".json");
    std::filesystem::create_directories(file.parent_path());
    write_atomically(file, nlohmann::json{{"type", "FeatureCollection"}, {"features", features}, {"links", nlohmann::json::array()}}.dump(1) + "\n");
    const StacReport report = read_stac(file);
    if (!report.problems.empty()) throw StageError("synth", report.problems.front());
    for (const SourceRecord& r : report.records) catalog_.add(r);
  }
}
}  // namespace eo::synth
