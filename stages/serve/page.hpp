#pragma once
// The explorer's page (stages/serve/web), compiled into the executable.

#include <string>
#include <vector>

namespace eo {

struct PageFile {
  std::string path, mime, content;
};
const std::vector<PageFile>& page_files();

}  // namespace eo
