#pragma once
// STAC in: ItemCollections (as `stac-client search ... --save items.json` writes them),
// single Items, and static catalogs or collections on disk, turned into catalog records,
// one per asset (band) used. The real collections are known by their real asset keys and
// conventions (docs/inputs.md); any other collection is described by a small mapping.

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "stages/ingest/catalog.hpp"

namespace eo {

// How one collection's assets become a modality's bands.
struct CollectionMapping {
  std::string collection;            // the item's "collection"
  std::string publisher;             // for messages: "Earth Search", "Planetary Computer", a mapping file
  Modality modality = Modality::s2rgb;
  std::vector<std::string> assets;   // per band of the modality, the asset key
  std::string mask_asset;            // "": no mask
  std::vector<int> mask_valid;       // classes of the mask that are clear
  // Used when the asset's raster:bands do not say (scale, offset, nodata).
  std::optional<double> scale, offset, nodata;
  Units units = Units::native;
  // Sentinel-2 L2A offset of processing baseline >= 04.00, by the publisher's rule.
  enum class OffsetRule {
    as_published,        // raster:bands, or the defaults above
    earth_search,        // raster:bands' offset unless earthsearch:boa_offset_applied
    planetary_computer,  // -0.1 from s2:processing_baseline 04.00 on
  };
  OffsetRule offset_rule = OffsetRule::as_published;
};

// The collections eo-pipeline knows: sentinel-2-l2a (Earth Search v1 and Planetary
// Computer), sentinel-2-c1-l2a (Earth Search), sentinel-1-rtc (Planetary Computer) and
// esa-worldcover (Planetary Computer).
const std::vector<CollectionMapping>& known_collections();

// Sentinel-2 L2A scene classification (SCL) classes that are clear: everything but no
// data (0), saturated or defective (1), cloud shadow (3), cloud medium (8) and high (9)
// probability and thin cirrus (10).
const std::vector<int>& s2_clear_classes();

// Reads mappings for other collections from a YAML file:
//   collections:
//     - collection: landsat-c2-l2
//       modality: s2rgb
//       bands: {R: red, G: green, B: blue}
//       mask: {asset: qa_pixel, valid: [21824]}
//       scale: 0.0000275
//       offset: -0.2
//       nodata: 0
//       units: native        # or linear_power, amplitude_dn
// Throws std::runtime_error naming the file, line and key of a mistake.
std::vector<CollectionMapping> load_collection_mappings(const std::filesystem::path& file);

struct StacReport {
  std::vector<SourceRecord> records;
  int items = 0;                      // items read
  int used = 0;                       // items that gave records
  std::vector<std::string> problems;  // "FILE: item I: asset A: ..." for each left-out asset or item
  // "FILE: item I: the same product as item J of FILE2 (...), which is kept": one
  // scene published twice (Earth Search and Planetary Computer) is composited once.
  std::vector<std::string> duplicates;
};

// Reads a STAC JSON file (ItemCollection, Item, Catalog or Collection, whose item and
// child links are followed) into records. Mappings given first win over the known ones.
// Throws std::runtime_error naming the file when it is not JSON or not STAC; an item or
// asset that cannot be used is reported in `problems` and left out.
StacReport read_stac(const std::filesystem::path& file, const std::vector<CollectionMapping>& mappings = {});
// Several files as one: a product in two of them is kept once, from the first.
StacReport read_stac(const std::vector<std::filesystem::path>& files, const std::vector<CollectionMapping>& mappings = {});

// A STAC href as GDAL opens it: relative hrefs resolved against `base` (the JSON file's
// folder), file:// stripped, http(s) as /vsicurl/, s3:// as /vsis3/.
std::string gdal_path_of_href(const std::string& href, const std::filesystem::path& base);

// The global seasonal Sentinel-1 coherence and backscatter dataset (Kellndorfer et al.,
// 2022) by its tile names, e.g. N48W090_winter_vv_COH12.tif or N48W090_fall_vh_AMP.tif:
// a record for `modality` (s1coh from the `coherence` metric's VV files, s1amp from the
// VV and VH AMP files), or nothing when the name is not one of them.
std::optional<SourceRecord> global_coherence_record(const std::filesystem::path& file, Modality modality,
                                                    const std::string& coherence = "COH12");

}  // namespace eo
