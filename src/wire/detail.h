// Internal helpers shared by the wire codecs (not part of the public interface).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "wire/http.h"

namespace pc::wire::detail {

enum : std::uint8_t {
  kTchar = 1,      // RFC 9110 5.6.2 token character
  kVchar = 2,      // %x21-7E
  kObsText = 4,    // %x80-FF
  kWs = 8,         // SP / HTAB
  kHex = 16,       // HEXDIG
  kHostChar = 32,  // ALPHA / DIGIT / "-" / "." / "_" / "~"
  kQdText = 64,    // qdtext of a quoted-string, RFC 9110 5.6.4
};

constexpr std::array<std::uint8_t, 256> make_char_classes() {
  std::array<std::uint8_t, 256> t{};
  for (int c = 0; c < 256; ++c) {
    std::uint8_t v = 0;
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    const bool digit = c >= '0' && c <= '9';
    if (alpha || digit) v |= kTchar | kHostChar;
    switch (c) {
      case '!':
      case '#':
      case '$':
      case '%':
      case '&':
      case '\'':
      case '*':
      case '+':
      case '-':
      case '.':
      case '^':
      case '_':
      case '`':
      case '|':
      case '~':
        v |= kTchar;
        break;
      default:
        break;
    }
    if (c == '-' || c == '.' || c == '_' || c == '~') v |= kHostChar;
    if (c >= 0x21 && c <= 0x7e) v |= kVchar;
    if (c >= 0x80) v |= kObsText;
    if (c == ' ' || c == '\t') v |= kWs;
    if (digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) v |= kHex;
    if (c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5b) ||
        (c >= 0x5d && c <= 0x7e) || c >= 0x80)
      v |= kQdText;
    t[static_cast<std::size_t>(c)] = v;
  }
  return t;
}

inline constexpr std::array<std::uint8_t, 256> kCharClass = make_char_classes();

inline bool has_class(char c, std::uint8_t cls) {
  return (kCharClass[static_cast<unsigned char>(c)] & cls) != 0;
}
inline bool is_tchar(char c) {
  return has_class(c, kTchar);
}
inline bool is_ws(char c) {
  return c == ' ' || c == '\t';
}
// A byte allowed inside a field value: HTAB, SP, VCHAR, obs-text.
inline bool is_field_byte(char c) {
  return has_class(c, kVchar | kObsText | kWs);
}
inline int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

inline bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!is_tchar(c)) return false;
  return true;
}

inline std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && is_ws(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ws(s.back())) s.remove_suffix(1);
  return s;
}

// Result of scanning one field line.
struct LineScan {
  Status status = Status::incomplete;
  Error error = Error::none;
  // complete: bytes of the line including CRLF; error: offset of the offending byte.
  std::size_t end = 0;
  // complete: the field; an empty name means the line was the empty line ending a section.
  Field field;
};

// Scans one field line (or the empty line) at the front of s: field-name ":" OWS field-value
// OWS CRLF, strictly. The line content (without CRLF) may be at most max_line bytes; a longer
// line is reported as field_too_large as soon as that is certain.
LineScan scan_field_line(std::string_view s, std::size_t max_line);

}  // namespace pc::wire::detail
