// `eo-pipeline catalog`: describes real inputs as catalog records, so that real data
// enters the pipeline the way the synthetic world does:
//   --stac FILE      STAC ItemCollections (a saved search), Items or static catalogs
//   DIR --layout global-coherence   the seasonal coherence dataset's tiles by their names
//   DIR --modality M                any folder of rasters GDAL reads

#include <algorithm>
#include <fmt/format.h>
#include <iostream>
#include <regex>
#include <spdlog/spdlog.h>

#include "pipeline/commands/commands.hpp"
#include "pipeline/core/files.hpp"
#include "pipeline/core/log.hpp"
#include "stages/ingest/catalog.hpp"
#include "stages/ingest/stac.hpp"

namespace eo {

namespace {

struct Counts {
  int added = 0, skipped = 0, errors = 0, items = 0;
};

std::vector<std::filesystem::path> files_under(const std::string& dir, const std::string& pattern) {
  std::vector<std::filesystem::path> files;
  const std::regex re(pattern.empty() ? ".*" : pattern);
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (e.is_regular_file() && std::regex_search(name, re) && !name.ends_with(".aux.xml") && !name.ends_with(".ovr"))
      files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

void add_stac(const CatalogOptions& opts, Catalog& catalog, Counts& n) {
  const auto mappings = opts.collections.empty() ? std::vector<CollectionMapping>{} : load_collection_mappings(opts.collections);
  if (opts.stac.empty()) return;
  // All files at once: a scene that two of them publish is catalogued once.
  const StacReport r = read_stac(std::vector<std::filesystem::path>(opts.stac.begin(), opts.stac.end()), mappings);
  for (const std::string& p : r.problems) spdlog::warn("left out {}", p);
  for (const std::string& d : r.duplicates) spdlog::info("left out {}", d);
  for (const SourceRecord& rec : r.records) catalog.add(rec);
  n.added += static_cast<int>(r.records.size());
  n.errors += static_cast<int>(r.problems.size());
  n.items += r.items;
  spdlog::info("{}: {} items, {} used, {} the same as another, {} assets catalogued", fmt::join(opts.stac, ", "), r.items,
               r.used, r.duplicates.size(), r.records.size());
}

void add_global_coherence(const CatalogOptions& opts, Catalog& catalog, Counts& n) {
  const std::vector<Modality> modalities = opts.modality.empty() ? std::vector<Modality>{Modality::s1amp, Modality::s1coh}
                                                                 : std::vector<Modality>{parse_modality(opts.modality)};
  for (const auto& file : files_under(opts.dir, opts.pattern)) {
    bool used = false;
    for (Modality m : modalities)
      if (auto r = global_coherence_record(file, m, opts.coherence)) {
        catalog.add(std::move(*r));
        ++n.added;
        used = true;
      }
    if (!used) {
      ++n.skipped;
      spdlog::debug("{}: not a tile the dataset names as {} or AMP", file.string(), opts.coherence);
    }
  }
}

void add_files(const CatalogOptions& opts, Catalog& catalog, Counts& n) {
  if (opts.modality.empty()) throw CLI::ValidationError("--modality", "say what the rasters of DIR are");
  const Modality modality = parse_modality(opts.modality);
  const std::regex season_in_name("(DJF|MAM|JJA|SON)");
  for (const auto& file : files_under(opts.dir, opts.pattern)) {
    const std::string name = file.filename().string();
    int season = opts.season;
    std::smatch m;
    if (season < 0) season = std::regex_search(name, m, season_in_name) ? std::string("DJFMAMJJASON").find(m[1].str()) / 3 : 0;
    const std::string path = opts.variable.empty() ? std::filesystem::absolute(file).string()
                                                   : fmt::format("NETCDF:\"{}\":{}", std::filesystem::absolute(file).string(), opts.variable);
    try {
      catalog.add(describe_raster(path, modality, season, opts.time, opts.bands));
      ++n.added;
      spdlog::debug("{}: {} season {}", path, opts.modality, season);
    } catch (const std::exception& e) {
      // Not every file in a folder is a raster; say which were left out and why.
      ++(std::string(e.what()).find("cannot open as a raster") != std::string::npos ? n.skipped : n.errors);
      spdlog::warn("left out {}", e.what());
    }
  }
}

}  // namespace

int run_catalog(const CatalogOptions& opts) {
  setup_logging(0, opts.quiet ? LogLevel::warn : opts.verbose ? LogLevel::debug : LogLevel::info);
  if (opts.dir.empty() && opts.stac.empty()) throw CLI::ValidationError("catalog", "give a DIR to scan or --stac FILE");
  for (const std::string& stac : opts.stac) refuse_output_over_input(opts.out, stac, "--stac");
  if (!opts.collections.empty()) refuse_output_over_input(opts.out, opts.collections, "--collections");
  Catalog catalog;
  if (opts.append && std::filesystem::exists(opts.out)) {
    // Named: a range-for over Catalog::load(...).records() would read a destroyed catalog.
    const Catalog existing = Catalog::load(opts.out);
    for (const SourceRecord& r : existing.records()) catalog.add(r);
  }
  Counts n;
  try {
    add_stac(opts, catalog, n);
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return kExitUsage;
  }
  if (!opts.dir.empty()) (opts.layout == FolderLayout::global_coherence ? add_global_coherence : add_files)(opts, catalog, n);
  if (n.added == 0 && n.items == 0 && n.errors == 0 && opts.append && opts.dir.empty() && std::filesystem::exists(opts.out)) {
    // The nightly `catalog --append ... && run`: a day without new scenes is a normal day.
    std::cout << fmt::format("catalog {}: no new items in {}; unchanged, {} records\n", opts.out, fmt::join(opts.stac, ", "),
                             catalog.records().size());
    return kExitOk;
  }
  if (n.added == 0) {
    spdlog::error("nothing could be catalogued from {}", opts.dir.empty() ? fmt::format("{}", fmt::join(opts.stac, ", ")) : opts.dir);
    return kExitUsage;
  }
  catalog.save(opts.out);
  std::cout << fmt::format("catalog {}: {} records added ({} files not used, {} problems); {} records\n", opts.out, n.added,
                           n.skipped, n.errors, catalog.records().size());
  return n.errors > 0 ? kExitTilesFailed : kExitOk;
}

}  // namespace eo
