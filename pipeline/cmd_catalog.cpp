// `eo-pipeline catalog DIR`: describes a folder of real rasters (any format and CRS GDAL
// reads) as catalog records, so that real data enters the pipeline the way the
// synthetic world does.

#include <algorithm>
#include <fmt/format.h>
#include <iostream>
#include <regex>
#include <spdlog/spdlog.h>

#include "pipeline/commands.hpp"
#include "pipeline/core/log.hpp"
#include "stages/ingest/catalog.hpp"

namespace eo {

void add_catalog_command(CLI::App& app, CatalogOptions& opts) {
  auto* cmd = app.add_subcommand("catalog", "describe a folder of rasters (GeoTIFF, COG, NetCDF, HDF5, VRT, ...) as a catalog");
  cmd->add_option("DIR", opts.dir, "folder to scan (recursively)")->required()->check(CLI::ExistingDirectory);
  cmd->add_option("--modality", opts.modality, "what the rasters are")
      ->required()->check(CLI::IsMember({"s2rgb", "s1amp", "s1coh", "worldcover", "treecover"}));
  cmd->add_option("--out", opts.out, "catalog file to write (JSON lines)")->required();
  cmd->add_option("--season", opts.season, "season of every raster: 0 DJF, 1 MAM, 2 JJA, 3 SON (default: from the "
                                           "file name, DJF/MAM/JJA/SON)")->check(CLI::Range(0, 3));
  cmd->add_option("--bands", opts.bands, "source bands for the modality's bands, e.g. 3,2,1 for RGB of a Landsat stack")
      ->delimiter(',');
  cmd->add_option("--variable", opts.variable, "NetCDF/HDF5 variable (subdataset) to use");
  cmd->add_option("--time", opts.time, "ISO 8601 time or interval of the rasters");
  cmd->add_option("--pattern", opts.pattern, "only files whose name matches this regular expression");
  cmd->add_flag("--append", opts.append, "add to an existing catalog instead of replacing it");
  auto* q = cmd->add_flag("-q,--quiet", opts.quiet, "log warnings and errors only");
  auto* v = cmd->add_flag("-v,--verbose", opts.verbose, "log every file considered");
  q->excludes(v);
}

int run_catalog(const CatalogOptions& opts) {
  setup_logging(0, opts.quiet ? "warn" : opts.verbose ? "debug" : "info");
  const Modality modality = parse_modality(opts.modality);
  Catalog catalog;
  if (opts.append && std::filesystem::exists(opts.out))
    for (const SourceRecord& r : Catalog::load(opts.out).records()) catalog.add(r);
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::recursive_directory_iterator(opts.dir))
    if (e.is_regular_file()) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  const std::regex pattern(opts.pattern.empty() ? ".*" : opts.pattern);
  const std::regex season_in_name("(DJF|MAM|JJA|SON)");
  int added = 0, skipped = 0, errors = 0;
  for (const auto& file : files) {
    const std::string name = file.filename().string();
    if (!std::regex_search(name, pattern) || name.ends_with(".aux.xml") || name.ends_with(".ovr")) continue;
    int season = opts.season;
    std::smatch m;
    if (season < 0) season = std::regex_search(name, m, season_in_name) ? std::string("DJFMAMJJASON").find(m[1].str()) / 3 : 0;
    const std::string path = opts.variable.empty() ? std::filesystem::absolute(file).string()
                                                   : fmt::format("NETCDF:\"{}\":{}", std::filesystem::absolute(file).string(), opts.variable);
    try {
      catalog.add(describe_raster(path, modality, season, opts.time, opts.bands));
      ++added;
      spdlog::debug("{}: {} season {}", path, opts.modality, season);
    } catch (const std::exception& e) {
      // Not every file in a folder is a raster; say which were left out and why.
      ++(std::string(e.what()).find("cannot open as a raster") != std::string::npos ? skipped : errors);
      spdlog::warn("left out {}", e.what());
    }
  }
  if (added == 0) {
    spdlog::error("no raster in {} could be catalogued", opts.dir);
    return kExitUsage;
  }
  catalog.save(opts.out);
  std::cout << fmt::format("catalog {}: {} rasters added ({} files not rasters, {} unusable); {} records\n", opts.out, added,
                           skipped, errors, catalog.records().size());
  return errors > 0 ? kExitTilesFailed : kExitOk;
}

}  // namespace eo
