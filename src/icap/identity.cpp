#include "icap/identity.h"

#include <cctype>

#include "base/strings.h"

namespace pc::icap {
namespace {

constexpr std::size_t kMaxIdentity = 1024;

// Printable UTF-8: no C0/C1 controls or DEL, well-formed sequences.
bool printable_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if (c < 0x20 || c == 0x7f) return false;
      ++i;
      continue;
    }
    // n continuation bytes follow a lead byte
    std::size_t n = c > 0xf4 ? 0 : c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : c >= 0xc2 ? 1 : 0;
    if (n == 0 || i + n >= s.size()) return false;
    std::uint32_t cp = c & (0x3f >> n);
    for (std::size_t k = 1; k <= n; ++k) {
      auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3f);
    }
    if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0x80 && cp < 0xa0))
      return false;
    i += n + 1;
  }
  return true;
}

bool looks_like_rdn(std::string_view s) {
  auto eq = s.find('=');
  if (eq == 0 || eq == std::string_view::npos) return false;
  for (char c : s.substr(0, eq))
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-')) return false;
  return true;
}

// "cn=Alice Smith,ou=Staff,dc=corp,dc=example" -> {"Alice Smith", "corp.example"}
Principal from_dn(std::string_view dn) {
  Principal p;
  bool first = true;
  base::for_each_list_item(dn, [&](std::string_view rdn) {
    auto eq = rdn.find('=');
    if (eq == std::string_view::npos) return;
    auto attr = base::trim(rdn.substr(0, eq));
    auto value = base::trim(rdn.substr(eq + 1));
    if (first) {
      p.name = std::string(value);
      first = false;
    } else if (base::iequals(attr, "dc") && !value.empty()) {
      if (!p.domain.empty()) p.domain += '.';
      p.domain.append(value);
    }
  });
  return p;
}

}  // namespace

std::optional<std::string> decode_identity(std::string_view value, config::UserEncoding enc) {
  value = base::trim(value);
  std::string decoded;
  if (enc != config::UserEncoding::plain && base::base64_decode(value, decoded) &&
      !decoded.empty() && printable_utf8(decoded)) {
    value = decoded;
  } else if (enc == config::UserEncoding::base64) {
    return std::nullopt;
  }
  if (value.size() > kMaxIdentity || !printable_utf8(value)) return std::nullopt;
  return std::string(value);
}

Principal parse_principal(std::string_view text) {
  text = base::trim(text);
  Principal p;
  if (auto sep = text.find("://"); sep != std::string_view::npos && sep > 0) {
    auto scheme = text.substr(0, sep);
    auto rest = text.substr(sep + 3);
    if (base::iequals(scheme, "ldap") || base::iequals(scheme, "ldaps")) {
      auto slash = rest.find('/');
      return from_dn(slash == std::string_view::npos ? rest : rest.substr(slash + 1));
    }
    auto slash = rest.rfind('/');
    if (slash != std::string_view::npos) {
      p.domain = std::string(rest.substr(0, slash));
      auto inner = p.domain.find('/');  // "WinNT://DOMAIN/host/user": the domain comes first
      if (inner != std::string::npos) p.domain.resize(inner);
      p.name = std::string(rest.substr(slash + 1));
    } else {
      p.name = std::string(rest);
    }
    return p;
  }
  if (auto bs = text.find('\\'); bs != std::string_view::npos) {
    p.domain = std::string(text.substr(0, bs));
    p.name = std::string(text.substr(bs + 1));
    return p;
  }
  if (looks_like_rdn(text)) return from_dn(text);
  if (auto at = text.rfind('@'); at != std::string_view::npos && at > 0) {
    p.name = std::string(text.substr(0, at));
    p.domain = std::string(text.substr(at + 1));
    return p;
  }
  p.name = std::string(text);
  return p;
}

std::vector<Principal> parse_principals(std::string_view text) {
  std::vector<std::string> items;
  base::for_each_list_item(text, [&](std::string_view item) {
    // An RDN continues the DN before it ("LDAP://h/cn=A,ou=B" was split at its commas).
    if (!items.empty() && looks_like_rdn(item) && items.back().find('=') != std::string::npos &&
        item.find("://") == std::string_view::npos) {
      items.back() += ',';
      items.back().append(item);
      return;
    }
    items.emplace_back(item);
  });
  std::vector<Principal> out;
  for (const auto& i : items) {
    auto p = parse_principal(i);
    if (!p.name.empty()) out.push_back(std::move(p));
  }
  return out;
}

}  // namespace pc::icap
