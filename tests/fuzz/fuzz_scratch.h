// A private scratch folder for fuzz targets that exercise file readers: made once per process
// (mkdtemp under TMPDIR) and removed when the process exits normally (a crash keeps it).
#pragma once

#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace pc::fuzz {

inline const std::filesystem::path& scratch_dir(const char* prefix) {
  // Never destroyed, so the exit handler can still use it.
  static const std::filesystem::path* dir = [prefix] {
    std::string tmpl = (std::filesystem::temp_directory_path() / prefix).string() + ".XXXXXX";
    if (!::mkdtemp(tmpl.data())) std::abort();
    auto* p = new std::filesystem::path(tmpl);
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(*dir, ec);
    });
    return p;
  }();
  return *dir;
}

}  // namespace pc::fuzz
