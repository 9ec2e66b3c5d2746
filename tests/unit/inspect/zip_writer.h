// A tiny writer of stored (uncompressed) zip archives for the tests, optionally flagged as
// encrypted (traditional PKWARE encryption with a random 12-byte header: nothing decrypts).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pc::inspect::testing {

inline std::uint32_t crc32(std::string_view data) {
  static const auto table = [] {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  std::uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : data) c = table[(c ^ b) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

class ZipWriter {
 public:
  void add(std::string name, std::string data, bool encrypted = false) {
    entries_.push_back({std::move(name), std::move(data), encrypted});
  }

  std::string finish() const {
    std::string out, central;
    for (const auto& e : entries_) {
      std::string payload = e.data;
      std::uint16_t flags = 0;
      if (e.encrypted) {
        flags = 1;
        payload = std::string("\x13\x57\x9b\xdf\x24\x68\xac\xe0\x35\x79\xbd\x42", 12) + payload;
        for (std::size_t i = 12; i < payload.size(); ++i)
          payload[i] = static_cast<char>(payload[i] ^ 0x5a);
      }
      const std::uint32_t offset = static_cast<std::uint32_t>(out.size());
      const std::uint32_t crc = crc32(e.data);
      put32(out, 0x04034b50);
      put16(out, 20);  // version needed
      put16(out, flags);
      put16(out, 0);     // stored
      put16(out, 0);     // time
      put16(out, 0x21);  // date 1980-01-01
      put32(out, crc);
      put32(out, static_cast<std::uint32_t>(payload.size()));
      put32(out, static_cast<std::uint32_t>(e.data.size()));
      put16(out, static_cast<std::uint16_t>(e.name.size()));
      put16(out, 0);
      out += e.name;
      out += payload;

      put32(central, 0x02014b50);
      put16(central, 20);  // made by
      put16(central, 20);  // needed
      put16(central, flags);
      put16(central, 0);
      put16(central, 0);
      put16(central, 0x21);
      put32(central, crc);
      put32(central, static_cast<std::uint32_t>(payload.size()));
      put32(central, static_cast<std::uint32_t>(e.data.size()));
      put16(central, static_cast<std::uint16_t>(e.name.size()));
      put16(central, 0);  // extra
      put16(central, 0);  // comment
      put16(central, 0);  // disk
      put16(central, 0);  // internal attributes
      put32(central, 0);  // external attributes
      put32(central, offset);
      central += e.name;
    }
    const std::uint32_t cd_offset = static_cast<std::uint32_t>(out.size());
    out += central;
    put32(out, 0x06054b50);
    put16(out, 0);
    put16(out, 0);
    put16(out, static_cast<std::uint16_t>(entries_.size()));
    put16(out, static_cast<std::uint16_t>(entries_.size()));
    put32(out, static_cast<std::uint32_t>(central.size()));
    put32(out, cd_offset);
    put16(out, 0);
    return out;
  }

  // An archive holding one stored file.
  static std::string single(std::string name, std::string data, bool encrypted = false) {
    ZipWriter z;
    z.add(std::move(name), std::move(data), encrypted);
    return z.finish();
  }

 private:
  struct Entry {
    std::string name, data;
    bool encrypted;
  };
  static void put16(std::string& s, std::uint16_t v) {
    s.push_back(static_cast<char>(v & 0xFF));
    s.push_back(static_cast<char>(v >> 8));
  }
  static void put32(std::string& s, std::uint32_t v) {
    put16(s, static_cast<std::uint16_t>(v & 0xFFFF));
    put16(s, static_cast<std::uint16_t>(v >> 16));
  }
  std::vector<Entry> entries_;
};

// The EICAR test file (68 bytes).
inline const std::string kEicar =
    R"(X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*)";

}  // namespace pc::inspect::testing
