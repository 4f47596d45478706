#include "stages/chipstore/chipstore.hpp"

#include <hdf5.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fmt/format.h>
#include <memory>
#include <stdexcept>

#include "pipeline/core/error.hpp"
#include "pipeline/core/files.hpp"

namespace eo {
namespace {

// Owns an HDF5 identifier and closes it with the right function.
class H5 {
 public:
  H5() = default;
  H5(hid_t id, herr_t (*close)(hid_t), const std::string& what) : id_(id), close_(close) {
    if (id < 0) throw StageError("chipstore", "HDF5: " + what);
  }
  H5(H5&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = -1; }
  H5& operator=(H5&& o) noexcept {
    reset();
    id_ = o.id_;
    close_ = o.close_;
    o.id_ = -1;
    return *this;
  }
  ~H5() { reset(); }
  void reset() {
    if (id_ >= 0 && close_) close_(id_);
    id_ = -1;
  }
  hid_t get() const { return id_; }

 private:
  hid_t id_ = -1;
  herr_t (*close_)(hid_t) = nullptr;
};

void check(herr_t rc, const std::string& what) {
  if (rc < 0) throw StageError("chipstore", "HDF5: " + what);
}

void write_string_attribute(hid_t obj, const std::string& name, const std::string& value) {
  H5 type(H5Tcopy(H5T_C_S1), H5Tclose, "string type");
  check(H5Tset_size(type.get(), std::max<std::size_t>(1, value.size())), "string size");
  H5 space(H5Screate(H5S_SCALAR), H5Sclose, "scalar space");
  H5 attr(H5Acreate2(obj, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose, "attribute " + name);
  check(H5Awrite(attr.get(), type.get(), value.c_str()), "attribute " + name);
}

std::string read_string_attribute(hid_t obj, const std::string& name) {
  if (H5Aexists(obj, name.c_str()) <= 0) return "";
  H5 attr(H5Aopen(obj, name.c_str(), H5P_DEFAULT), H5Aclose, "attribute " + name);
  H5 type(H5Aget_type(attr.get()), H5Tclose, "attribute type");
  std::string value(H5Tget_size(type.get()), '\0');
  check(H5Aread(attr.get(), type.get(), value.data()), "attribute " + name);
  while (!value.empty() && value.back() == '\0') value.pop_back();
  return value;
}

// `per_chip`: chunked one chip per chunk (a loader reads chips one by one), and
// compressed (shuffle + deflate) when `compress`.
H5 create_dataset(hid_t where, const std::string& name, hid_t type, const std::vector<hsize_t>& dims, bool per_chip,
                  bool compress = false) {
  H5 space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose, "space of " + name);
  H5 props(H5Pcreate(H5P_DATASET_CREATE), H5Pclose, "properties of " + name);
  // No creation times in the file: the same chips give the same bytes, so a resumed
  // run can be compared with a clean one file for file.
  check(H5Pset_obj_track_times(props.get(), false), "times of " + name);
  if (per_chip && dims[0] > 0) {
    std::vector<hsize_t> chunk = dims;
    chunk[0] = 1;
    check(H5Pset_chunk(props.get(), static_cast<int>(chunk.size()), chunk.data()), "chunking of " + name);
    if (compress) {
      check(H5Pset_shuffle(props.get()), "shuffle of " + name);
      // Level 1: the chips of a 10 m tile (float32, shuffled) compress to 64-69% at level
      // 1 as at level 4, and level 1 writes them 1.1-1.4x faster (docs/decisions.md).
      check(H5Pset_deflate(props.get(), 1), "deflate of " + name);
    }
  }
  return H5(H5Dcreate2(where, name.c_str(), type, space.get(), H5P_DEFAULT, props.get(), H5P_DEFAULT), H5Dclose,
            "dataset " + name);
}

// Writes rows [first, first + count) of a dataset whose row has `row_values` elements.
void write_rows(hid_t dataset, hid_t mem_type, hsize_t first, hsize_t count, const void* data) {
  H5 file_space(H5Dget_space(dataset), H5Sclose, "dataset space");
  const int rank = H5Sget_simple_extent_ndims(file_space.get());
  std::vector<hsize_t> dims(static_cast<std::size_t>(rank)), start(static_cast<std::size_t>(rank), 0);
  H5Sget_simple_extent_dims(file_space.get(), dims.data(), nullptr);
  start[0] = first;
  dims[0] = count;
  check(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, dims.data(), nullptr), "selection");
  H5 mem_space(H5Screate_simple(rank, dims.data(), nullptr), H5Sclose, "memory space");
  check(H5Dwrite(dataset, mem_type, mem_space.get(), file_space.get(), H5P_DEFAULT, data), "write");
}

// Reads rows [first, first + count) of a dataset into `data`.
void read_rows(hid_t dataset, hid_t mem_type, hsize_t first, hsize_t count, void* data, const std::string& what) {
  if (count == 0) return;
  H5 file_space(H5Dget_space(dataset), H5Sclose, "space of " + what);
  const int rank = H5Sget_simple_extent_ndims(file_space.get());
  std::vector<hsize_t> dims(static_cast<std::size_t>(rank)), start(static_cast<std::size_t>(rank), 0);
  H5Sget_simple_extent_dims(file_space.get(), dims.data(), nullptr);
  start[0] = first;
  dims[0] = count;
  check(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, dims.data(), nullptr), "selection of " + what);
  H5 mem_space(H5Screate_simple(rank, dims.data(), nullptr), H5Sclose, "memory space of " + what);
  check(H5Dread(dataset, mem_type, mem_space.get(), file_space.get(), H5P_DEFAULT, data), "read of " + what);
}

}  // namespace

struct ChipStoreWriter::Impl {
  // First, so destroyed last: the HDF5 handles below are closed before an unpublished
  // temporary is removed.
  std::unique_ptr<PendingFile> pending;  // its file() is the chip store's name
  ChipStoreInfo info;
  H5 h5;
  std::map<Modality, std::pair<H5, H5>> datasets;  // data, valid
  std::map<Modality, H5> clear;                     // [n, seasons]
  H5 ids, rows, cols, status;
  hsize_t written = 0;
};

ChipStoreWriter::ChipStoreWriter(std::filesystem::path file, ChipStoreInfo store) : impl_(std::make_unique<Impl>()) {
  Impl& d = *impl_;
  d.pending = std::make_unique<PendingFile>(std::move(file));
  d.info = std::move(store);
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // errors come back as codes, reported with the file name
  const std::filesystem::path& tmp = d.pending->temporary();
  d.h5 = H5(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose, "cannot create " + tmp.string());
  const auto n = static_cast<hsize_t>(d.info.chips);
  H5 id_type(H5Tcopy(H5T_C_S1), H5Tclose, "id type");
  check(H5Tset_size(id_type.get(), 13), "id type");
  d.ids = create_dataset(d.h5.get(), "chip_id", id_type.get(), {n}, false);
  d.rows = create_dataset(d.h5.get(), "chip_row", H5T_STD_I32LE, {n}, false);
  d.cols = create_dataset(d.h5.get(), "chip_col", H5T_STD_I32LE, {n}, false);
  d.status = create_dataset(d.h5.get(), "status", H5T_STD_U8LE, {n}, false);
  for (Modality m : d.info.modalities) {
    const ModalityInfo& mi = info(m);
    H5 group_props(H5Pcreate(H5P_GROUP_CREATE), H5Pclose, "group properties");
    check(H5Pset_obj_track_times(group_props.get(), false), "group times");
    H5 group(H5Gcreate2(d.h5.get(), mi.name, H5P_DEFAULT, group_props.get(), H5P_DEFAULT), H5Gclose, std::string("group ") + mi.name);
    const auto c = static_cast<hsize_t>(mi.channels()), s = static_cast<hsize_t>(d.info.size);
    H5 data = create_dataset(group.get(), "data", mi.integer ? H5T_STD_U8LE : H5T_IEEE_F32LE, {n, c, s, s}, true,
                             d.info.compress);
    H5 valid = create_dataset(group.get(), "valid", H5T_IEEE_F32LE, {n, c}, false);
    std::string names = "[";
    for (int ch = 0; ch < mi.channels(); ++ch) names += fmt::format("{}\"{}\"", ch ? "," : "", mi.channel_name(ch));
    write_string_attribute(group.get(), "channels", names + "]");
    d.datasets.emplace(m, std::make_pair(std::move(data), std::move(valid)));
    d.clear.emplace(m, create_dataset(group.get(), "clear", H5T_IEEE_F32LE, {n, static_cast<hsize_t>(mi.seasons)}, false));
  }
  write_string_attribute(d.h5.get(), "tile", d.info.tile.str());
  write_string_attribute(d.h5.get(), "epsg", std::to_string(d.info.tile.zone.epsg()));
  write_string_attribute(d.h5.get(), "pixel_size", fmt::format("{}", d.info.pixel));
  write_string_attribute(d.h5.get(), "chip_pixels", std::to_string(d.info.size));
  for (const auto& [k, v] : d.info.attributes) write_string_attribute(d.h5.get(), k, v);
}

ChipStoreWriter::~ChipStoreWriter() = default;

void ChipStoreWriter::append(const ChipBatch& batch, const std::vector<bool>& has_data) {
  Impl& d = *impl_;
  const auto k = static_cast<hsize_t>(batch.chips.size());
  if (k == 0) return;
  if (d.written + k > static_cast<hsize_t>(d.info.chips))
    throw StageError("chipstore", fmt::format("chip store {}: more chips than the {} planned", d.pending->file().string(), d.info.chips));
  std::vector<char> ids(k * 13);
  std::vector<std::int32_t> rows(k), cols(k);
  std::vector<std::uint8_t> status(k);
  for (hsize_t i = 0; i < k; ++i) {
    const std::string id = batch.chips[i].str();
    std::copy(id.begin(), id.end(), ids.begin() + static_cast<std::ptrdiff_t>(i * 13));
    rows[i] = batch.chips[i].row;
    cols[i] = batch.chips[i].col;
    status[i] = has_data[i] ? 1 : 2;
  }
  H5 id_type(H5Tcopy(H5T_C_S1), H5Tclose, "id type");
  check(H5Tset_size(id_type.get(), 13), "id type");
  write_rows(d.ids.get(), id_type.get(), d.written, k, ids.data());
  write_rows(d.rows.get(), H5T_NATIVE_INT32, d.written, k, rows.data());
  write_rows(d.cols.get(), H5T_NATIVE_INT32, d.written, k, cols.data());
  write_rows(d.status.get(), H5T_NATIVE_UINT8, d.written, k, status.data());
  for (const ModalityChips& mc : batch.modalities) {
    auto it = d.datasets.find(mc.modality);
    if (it == d.datasets.end()) continue;
    if (info(mc.modality).integer) {
      std::vector<std::uint8_t> bytes(mc.values.size());
      for (std::size_t i = 0; i < bytes.size(); ++i)
        bytes[i] = std::isnan(mc.values[i]) ? 0 : static_cast<std::uint8_t>(std::clamp(std::lround(mc.values[i]), 1L, 255L));
      write_rows(it->second.first.get(), H5T_NATIVE_UINT8, d.written, k, bytes.data());
    } else {
      write_rows(it->second.first.get(), H5T_NATIVE_FLOAT, d.written, k, mc.values.data());
    }
    write_rows(it->second.second.get(), H5T_NATIVE_FLOAT, d.written, k, mc.valid.data());
    if (mc.clear.size() == k * static_cast<std::size_t>(info(mc.modality).seasons))
      write_rows(d.clear.at(mc.modality).get(), H5T_NATIVE_FLOAT, d.written, k, mc.clear.data());
    if (d.written == 0) {
      // The tile's inputs: the same for every row, recorded once.
      H5 group(H5Gopen2(d.h5.get(), info(mc.modality).name, H5P_DEFAULT), H5Gclose, "group");
      write_string_attribute(group.get(), "observations", observations_json(mc.observations));
    }
  }
  d.written += k;
}

void ChipStoreWriter::commit() {
  Impl& d = *impl_;
  if (d.written != static_cast<hsize_t>(d.info.chips))
    throw StageError("chipstore", fmt::format("chip store {}: {} chips written of {}", d.pending->file().string(), d.written, d.info.chips));
  d.datasets.clear();
  d.clear.clear();
  d.ids.reset(); d.rows.reset(); d.cols.reset(); d.status.reset();
  d.h5.reset();
  d.pending->publish();
}


struct ChipStoreReader::Impl {
  std::filesystem::path file;
  H5 h5;
  ChipStoreInfo info;
  std::vector<ChipId> chips;
  std::vector<std::uint8_t> status;
  struct Stored {
    Modality modality;
    H5 data, valid, clear;  // clear: absent in stores from before composites
    bool rounded = false;   // a float modality kept as integers (S2 before composites)
    std::vector<std::vector<ObservationInfo>> observations;
  };
  std::vector<Stored> modalities;
};

ChipStoreReader::ChipStoreReader(const std::filesystem::path& file) : impl_(std::make_unique<Impl>()) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  Impl& d = *impl_;
  d.file = file;
  const std::string name = file.string();
  d.h5 = H5(H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose, "cannot open " + name);
  const hid_t h5 = d.h5.get();
  ChipStoreInfo& store = d.info;
  store.tile = parse_tile_id(read_string_attribute(h5, "tile"));
  store.size = std::stoi(read_string_attribute(h5, "chip_pixels"));
  store.pixel = std::stod(read_string_attribute(h5, "pixel_size"));
  for (const char* key : {"fingerprint", "config_hash", "normalisation", "software"})
    store.attributes[key] = read_string_attribute(h5, key);
  H5 ids(H5Dopen2(h5, "chip_id", H5P_DEFAULT), H5Dclose, "chip_id of " + name);
  H5 space(H5Dget_space(ids.get()), H5Sclose, "space");
  hsize_t n = 0;
  H5Sget_simple_extent_dims(space.get(), &n, nullptr);
  store.chips = static_cast<int>(n);
  std::vector<char> raw(n * 13 + 1);
  H5 id_type(H5Tcopy(H5T_C_S1), H5Tclose, "id type");
  check(H5Tset_size(id_type.get(), 13), "id type");
  if (n) check(H5Dread(ids.get(), id_type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, raw.data()), "chip_id of " + name);
  for (hsize_t i = 0; i < n; ++i) d.chips.push_back(parse_chip_id(std::string(raw.data() + i * 13, 13)));
  d.status.resize(n);
  H5 status(H5Dopen2(h5, "status", H5P_DEFAULT), H5Dclose, "status of " + name);
  if (n) check(H5Dread(status.get(), H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, d.status.data()), "status of " + name);
  for (Modality m : kImageModalities) {
    const std::string group_name = eo::info(m).name;
    if (H5Lexists(h5, group_name.c_str(), H5P_DEFAULT) <= 0) continue;
    store.modalities.push_back(m);
    Impl::Stored stored{m, {}, {}, {}, false, {}};
    stored.data = H5(H5Dopen2(h5, (group_name + "/data").c_str(), H5P_DEFAULT), H5Dclose, group_name + "/data of " + name);
    stored.valid = H5(H5Dopen2(h5, (group_name + "/valid").c_str(), H5P_DEFAULT), H5Dclose, group_name + "/valid of " + name);
    H5 type(H5Dget_type(stored.data.get()), H5Tclose, "type");
    stored.rounded = !eo::info(m).integer && H5Tget_class(type.get()) == H5T_INTEGER;
    if (H5Lexists(h5, (group_name + "/clear").c_str(), H5P_DEFAULT) > 0) {
      stored.clear = H5(H5Dopen2(h5, (group_name + "/clear").c_str(), H5P_DEFAULT), H5Dclose, group_name + "/clear of " + name);
      H5 group(H5Gopen2(h5, group_name.c_str(), H5P_DEFAULT), H5Gclose, "group");
      if (H5Aexists(group.get(), "observations") > 0)
        stored.observations = observations_from_json(read_string_attribute(group.get(), "observations"));
    }
    d.modalities.push_back(std::move(stored));
  }
}

ChipStoreReader::~ChipStoreReader() = default;

const ChipStoreInfo& ChipStoreReader::info() const { return impl_->info; }
const std::vector<ChipId>& ChipStoreReader::chips() const { return impl_->chips; }
const std::vector<std::uint8_t>& ChipStoreReader::status() const { return impl_->status; }

bool ChipStoreReader::exact(Modality m) const {
  for (const auto& s : impl_->modalities)
    if (s.modality == m) return !s.rounded && s.clear.get() >= 0;
  return false;
}

ChipBatch ChipStoreReader::read(std::size_t first, std::size_t count) const {
  const Impl& d = *impl_;
  if (first + count > d.chips.size())
    throw std::out_of_range(fmt::format("{}: chips {}..{} of {}", d.file.string(), first, first + count, d.chips.size()));
  ChipBatch batch;
  batch.tile = d.info.tile;
  batch.size = d.info.size;
  batch.chips.assign(d.chips.begin() + static_cast<std::ptrdiff_t>(first), d.chips.begin() + static_cast<std::ptrdiff_t>(first + count));
  const std::string name = d.file.string();
  for (const Impl::Stored& s : d.modalities) {
    const ModalityInfo& mi = eo::info(s.modality);
    ModalityChips mc{s.modality, mi.channels(), {}, {}, {}, s.observations};
    mc.values.resize(count * batch.chip_values(mc));
    mc.valid.resize(count * static_cast<std::size_t>(mc.channels));
    read_rows(s.data.get(), H5T_NATIVE_FLOAT, first, count, mc.values.data(), fmt::format("{}/data of {}", mi.name, name));
    read_rows(s.valid.get(), H5T_NATIVE_FLOAT, first, count, mc.valid.data(), fmt::format("{}/valid of {}", mi.name, name));
    if (s.clear.get() >= 0) {
      mc.clear.resize(count * static_cast<std::size_t>(mi.seasons));
      read_rows(s.clear.get(), H5T_NATIVE_FLOAT, first, count, mc.clear.data(), fmt::format("{}/clear of {}", mi.name, name));
    }
    if (mi.integer)
      for (float& v : mc.values)
        if (v == 0) v = std::nanf("");
    batch.modalities.push_back(std::move(mc));
  }
  return batch;
}

StoredTile read_chip_store(const std::filesystem::path& file) {
  const ChipStoreReader reader(file);
  ChipBatch all = reader.read(0, reader.chips().size());
  return {reader.info(), std::move(all.chips), reader.status(), std::move(all.modalities)};
}

}  // namespace eo
