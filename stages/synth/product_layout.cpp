// The products layout: one ready-made raster per modality, season and place.

#include "stages/synth/writer.hpp"

namespace eo::synth {

void Writer::s2() {
  const double px = kS2PixelM * scale_;
  mgrs_tiles(Modality::s2rgb, px, [&](const GroundTile& t) {
    const auto& [zone, tile, gt, n, ground, where, covered] = t;
    const OGRSpatialReference srs = epsg(zone.epsg());
    const int ie = static_cast<int>(gt[0] / kMgrsSpacing), in = static_cast<int>((gt[3] - kMgrsSize) / kMgrsSpacing);
    for (int season = 0; season < kSeasons; ++season) {
      std::vector<std::vector<std::uint8_t>> bands(3, std::vector<std::uint8_t>(ground.size()));
      parallel_rows(n, [&](int r) {
        for (int c = 0; c < n; ++c) {
          const std::size_t i = static_cast<std::size_t>(r) * n + c;
          if (!covered[i] || world_.cloud(where[i], season, synth_.cloud_fraction)) continue;  // 0: no data
          auto rgb = s2_sample(ground[i], season, hash_unit(synth_.seed, ie * 100000 + c, in * 100000 + r, 200 + season));
          if (const double k = synth_.acquisition_effects; k > 0) {
            // illumination and atmosphere: a gain of 0.7..1.3 and haze of up to 40
            const double gain = 1 + 0.6 * k * world_.acquisition(where[i], 12000, static_cast<std::uint32_t>(season));
            const double haze = 40 * k * (world_.acquisition(where[i], 20000, 4 + static_cast<std::uint32_t>(season)) + 0.5);
            for (auto& v : rgb) v = static_cast<std::uint8_t>(std::clamp(std::lround(gain * v + haze), 1L, 255L));
          }
          for (int b = 0; b < 3; ++b) bands[static_cast<std::size_t>(b)][i] = rgb[static_cast<std::size_t>(b)];
        }
      });
      Raster out(n, n, 3, GDT_Byte, gt, srs);
      for (int b = 0; b < 3; ++b) {
        out.write_band(b + 1, bands[static_cast<std::size_t>(b)], GDT_Byte);
        out.ds().GetRasterBand(b + 1)->SetNoDataValue(0);
        out.ds().GetRasterBand(b + 1)->SetDescription(info(Modality::s2rgb).bands[static_cast<std::size_t>(b)].c_str());
      }
      const auto path = dir_ / "s2rgb" / fmt::format("S2_T{}_{}{}.tif", tile, synth_.year, season_name(season));
      out.save("COG", path, {"COMPRESS=DEFLATE", "LEVEL=1", "BLOCKSIZE=512", "NUM_THREADS=ALL_CPUS"});
      record(path, Modality::s2rgb, season);
    }
    progress_(fmt::format("s2rgb tile {} ({} px)", tile, n));
  });
}

void Writer::s1_amplitude() {
  const double px = kS1PixelDeg * scale_, size = synth_.s1_tile_deg;
  const int n = static_cast<int>(std::lround(size / px));
  const OGRSpatialReference srs = epsg(4326);
  geographic_tiles(size, [&](double lon, double lat) {
    const std::string tile = tile_name(lon, lat);
    if (left_out(Modality::s1amp, "S1_" + tile)) return;
    const double gt[6] = {lon, px, 0, lat + size, 0, -px};
    std::vector<Ground> ground(static_cast<std::size_t>(n) * n);
    std::vector<char> covered(ground.size(), 0);
    parallel_rows(n, [&](int r) {
      for (int c = 0; c < n; ++c) {
        const std::size_t i = static_cast<std::size_t>(r) * n + c;
        const LonLat p{gt[0] + (c + 0.5) * px, gt[3] - (r + 0.5) * px};
        if ((covered[i] = in_extent(p))) ground[i] = world_.at(p);
      }
    });
    for (int season = 0; season < kSeasons; ++season) {
      std::vector<std::vector<float>> bands(2, std::vector<float>(ground.size()));
      parallel_rows(n, [&](int r) {
        const auto gr = static_cast<std::int64_t>(std::lround((gt[3] - (r + 0.5) * px) / px));
        for (int c = 0; c < n; ++c) {
          if (!covered[static_cast<std::size_t>(r) * n + c]) {
            bands[0][static_cast<std::size_t>(r) * n + c] = bands[1][static_cast<std::size_t>(r) * n + c] = std::nanf("");
            continue;
          }
          const auto gc = static_cast<std::int64_t>(std::lround((gt[0] + (c + 0.5) * px) / px));
          std::array<double, 8> u;
          for (int k = 0; k < 8; ++k) u[static_cast<std::size_t>(k)] = hash_unit(synth_.seed, gc, gr, 300 + season * 8 + k);
          auto db = s1_sample_db(ground[static_cast<std::size_t>(r) * n + c], season, u);
          if (const double k = synth_.acquisition_effects; k > 0) {
            // calibration, incidence angle and soil moisture: +-2.5 dB over tens of km
            const double shift = 5 * k * world_.acquisition({gt[0] + (c + 0.5) * px, gt[3] - (r + 0.5) * px}, 25000,
                                                             8 + static_cast<std::uint32_t>(season));
            for (auto& v : db) v = static_cast<float>(v + shift);
          }
          bands[0][static_cast<std::size_t>(r) * n + c] = db[0];
          bands[1][static_cast<std::size_t>(r) * n + c] = db[1];
        }
      });
      Raster out(n, n, 2, GDT_Float32, gt, srs);
      for (int b = 0; b < 2; ++b) {
        out.write_band(b + 1, bands[static_cast<std::size_t>(b)], GDT_Float32);
        out.ds().GetRasterBand(b + 1)->SetNoDataValue(std::nan(""));
        out.ds().GetRasterBand(b + 1)->SetDescription(info(Modality::s1amp).bands[static_cast<std::size_t>(b)].c_str());
        out.ds().GetRasterBand(b + 1)->SetUnitType("dB");
      }
      const auto path = dir_ / "s1amp" / fmt::format("S1_{}_{}{}.tif", tile, synth_.year, season_name(season));
      out.save("GTiff", path, {"TILED=YES", "COMPRESS=DEFLATE", "ZLEVEL=1", "PREDICTOR=3", "NUM_THREADS=ALL_CPUS"});
      record(path, Modality::s1amp, season);
    }
    progress_(fmt::format("s1amp tile {} ({} px)", tile, n));
  });
}

void Writer::coherence() {
  const double px = kCohPixelDeg;
  const int n = static_cast<int>(std::lround(1.0 / px));
  const OGRSpatialReference srs = epsg(4326);
  geographic_tiles(1.0, [&](double lon, double lat) {
    const std::string tile = tile_name(lon, lat);
    if (left_out(Modality::s1coh, "COH_" + tile)) return;
    const double gt[6] = {lon, px, 0, lat + 1.0, 0, -px};
    // a 90 m cell averages the ground under it: 3 x 3 samples
    std::vector<std::array<double, kSeasons>> coh(static_cast<std::size_t>(n) * n);
    parallel_rows(n, [&](int r) {
      for (int c = 0; c < n; ++c) {
        std::array<double, kSeasons> sum{};
        if (!in_extent({gt[0] + (c + 0.5) * px, gt[3] - (r + 0.5) * px})) {
          sum.fill(-1);  // outside the world: no data
          coh[static_cast<std::size_t>(r) * n + c] = sum;
          continue;
        }
        for (int i = 0; i < 3; ++i)
          for (int j = 0; j < 3; ++j) {
            const Ground g = world_.at({gt[0] + (c + (i + 0.5) / 3) * px, gt[3] - (r + (j + 0.5) / 3) * px});
            for (int s = 0; s < kSeasons; ++s) sum[static_cast<std::size_t>(s)] += coherence_mean(g, s) / 9;
          }
        coh[static_cast<std::size_t>(r) * n + c] = sum;
      }
    });
    for (int season = 0; season < kSeasons; ++season) {
      std::vector<std::uint8_t> raw(coh.size());
      for (std::size_t i = 0; i < coh.size(); ++i) {
        const double noise = (hash_unit(synth_.seed, static_cast<std::int64_t>(i), static_cast<std::int64_t>(lon * 1000 + lat), 400 + season) - 0.5) * 0.08;
        double value = coh[i][static_cast<std::size_t>(season)];
        if (const double k = synth_.acquisition_effects; k > 0 && value >= 0) {
          // rain and wind between the two passes: coherence lost, down to 0.4 of it
          const auto r = static_cast<int>(i / static_cast<std::size_t>(n)), c = static_cast<int>(i % static_cast<std::size_t>(n));
          value *= 1 - 0.6 * k * (world_.acquisition({gt[0] + (c + 0.5) * px, gt[3] - (r + 0.5) * px}, 30000,
                                                     12 + static_cast<std::uint32_t>(season)) + 0.5);
        }
        raw[i] = value < 0 ? 255 : static_cast<std::uint8_t>(std::clamp(std::lround((value + noise) / 0.004), 0L, 250L));
      }
      Raster out(n, n, 1, GDT_Byte, gt, srs);
      out.write_band(1, raw, GDT_Byte);
      GDALRasterBand* band = out.ds().GetRasterBand(1);
      band->SetNoDataValue(255);
      band->SetScale(0.004);
      band->SetOffset(0.0);
      band->SetMetadataItem("NETCDF_VARNAME", "coherence");
      band->SetMetadataItem("long_name", fmt::format("Sentinel-1 6-day interferometric coherence, {}", season_name(season)).c_str());
      band->SetMetadataItem("units", "1");
      const auto path = dir_ / "s1coh" / fmt::format("COH_{}_{}{}.nc", tile, synth_.year, season_name(season));
      out.save("netCDF", path, {"FORMAT=NC4", "COMPRESS=DEFLATE", "ZLEVEL=1"});
      record(path, Modality::s1coh, season);
    }
    progress_(fmt::format("s1coh tile {} ({} px)", tile, n));
  });
}

void Writer::labels(const std::vector<Modality>& modalities) {
  const OGRSpatialReference srs = epsg(4326);
  geographic_tiles(1.0, [&](double lon, double lat) {
    const std::string tile = tile_name(lon, lat);
    for (Modality m : modalities) {
      const bool cover = m == Modality::worldcover;
      const double px = (cover ? kCoverPixelDeg : kTreePixelDeg) * scale_;
      const int n = static_cast<int>(std::lround(1.0 / px));
      const double gt[6] = {lon, px, 0, lat + 1.0, 0, -px};
      std::vector<std::uint8_t> values(static_cast<std::size_t>(n) * n);
      parallel_rows(n, [&](int r) {
        for (int c = 0; c < n; ++c) {
          const LonLat p{gt[0] + (c + 0.5) * px, gt[3] - (r + 0.5) * px};
          if (!in_extent(p)) {
            values[static_cast<std::size_t>(r) * n + c] = cover ? 0 : 255;
            continue;
          }
          const Ground g = world_.at(p);
          values[static_cast<std::size_t>(r) * n + c] =
              cover ? static_cast<std::uint8_t>(g.cover) : static_cast<std::uint8_t>(std::lround(g.tree_percent));
        }
      });
      Raster out(n, n, 1, GDT_Byte, gt, srs);
      out.write_band(1, values, GDT_Byte);
      out.ds().GetRasterBand(1)->SetNoDataValue(cover ? 0 : 255);
      const auto path = dir_ / "labels" / fmt::format("{}_{}_{}.tif", info(m).name, tile, synth_.year);
      out.save("GTiff", path, {"TILED=YES", "COMPRESS=DEFLATE", "ZLEVEL=1"});
      record(path, m, 0);
    }
    progress_(fmt::format("labels tile {}", tile));
  });
}
}  // namespace eo::synth
