#pragma once
// Files that readers may open at any moment are written whole or not at all.

#include <filesystem>
#include <string>

namespace eo {

// Writes `text` to a temporary name beside `file` and renames it into place (creating the
// folder); throws std::runtime_error naming the file when it cannot be written.
void write_atomically(const std::filesystem::path& file, const std::string& text);

// Content hash of a file, read in pieces (a paper-size checkpoint is ~3 GB).
std::string file_hash(const std::filesystem::path& file);

}  // namespace eo
