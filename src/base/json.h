// Writing JSON text by hand: a string literal with every character JSON requires escaped.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

namespace pc::base {

// Appends s as a JSON string ("..."), escaping quotes, backslashes and control characters.
// Bytes >= 0x80 are copied as they are (the caller passes UTF-8).
inline void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

}  // namespace pc::base
