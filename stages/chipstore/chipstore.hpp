#pragma once
// chipstore: one HDF5 file per tile holding its chips, the input of pretraining.
//
//   /chip_id [n] (13-char strings), /chip_row, /chip_col [n] int32, /status [n] uint8
//   (1 data, 2 no data), and per modality a group /<modality> with
//   data [n, C, H, W] (uint8 for class maps with 0 = no data, else float32 with NaN),
//   chunked one chip per chunk and compressed (unless prepare.compression: none), and
//   valid [n, C] (valid-pixel fractions).
//   Root attributes: tile, epsg, pixel_size, chip_pixels, fingerprint, config_hash,
//   normalisation (JSON), software. Written to a temporary name and renamed.

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "pipeline/core/chip_batch.hpp"

namespace eo {

struct ChipStoreInfo {
  TileId tile;
  int chips = 0;       // planned chips of the tile, the length of every dataset
  int size = 0;        // chip side, pixels
  double pixel = 10;   // metres
  std::vector<Modality> modalities;
  std::map<std::string, std::string> attributes;  // fingerprint, config_hash, normalisation, ...
  // Values compressed (shuffle + deflate): 1.6 times smaller on the demo, and 7 times
  // slower to read (82 against 571 M samples/s by h5py) for re-embedding and pretraining.
  bool compress = true;
};

class ChipStoreWriter {
 public:
  ChipStoreWriter(std::filesystem::path file, ChipStoreInfo info);
  ~ChipStoreWriter();  // without commit(): the temporary file is removed
  ChipStoreWriter(const ChipStoreWriter&) = delete;
  ChipStoreWriter& operator=(const ChipStoreWriter&) = delete;

  // Appends the batch's chips; `has_data[k]` marks chip k as data (else no data).
  void append(const ChipBatch& batch, const std::vector<bool>& has_data);
  // Closes the file, flushes it to disk and renames it into place.
  void commit();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A tile's store, read a few chips at a time (a 10 m tile's values are ~5 GB): what
// `run` embeds when it re-embeds from chip stores.
class ChipStoreReader {
 public:
  explicit ChipStoreReader(const std::filesystem::path& file);  // throws naming the file
  ~ChipStoreReader();
  ChipStoreReader(const ChipStoreReader&) = delete;
  ChipStoreReader& operator=(const ChipStoreReader&) = delete;

  const ChipStoreInfo& info() const;
  const std::vector<ChipId>& chips() const;
  const std::vector<std::uint8_t>& status() const;
  // Whether the modality is stored as the chip stage made it: with its clear counts, and
  // not rounded (stores from before composites kept S2 as uint8, without clear counts).
  bool exact(Modality m) const;
  // Chips [first, first + count) as the chip stage made them: values as float32 (NaN =
  // no data), valid fractions, clear counts and observations.
  ChipBatch read(std::size_t first, std::size_t count) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The whole store of a tile, read back (tests, pretraining).
struct StoredTile {
  ChipStoreInfo info;
  std::vector<ChipId> chips;
  std::vector<std::uint8_t> status;
  std::vector<ModalityChips> modalities;  // values as float32, NaN = no data
};
StoredTile read_chip_store(const std::filesystem::path& file);

}  // namespace eo
