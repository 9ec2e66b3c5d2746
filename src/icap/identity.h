// Who an ICAP client says the end user is: the values of X-Authenticated-User,
// X-Authenticated-Groups and their configurable alternatives, decoded and reduced to the bare
// names the policy matches (docs/icap.md). Pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

namespace pc::icap {

// A user or group as a name and, when the form carries one, its domain.
struct Principal {
  std::string name;
  std::string domain;
  // "DOMAIN\name" or just "name", for logs.
  std::string display() const { return domain.empty() ? name : domain + "\\" + name; }
};

// The field value as text: base64-decoded when `enc` says so (automatic: when the value is
// valid base64 of printable UTF-8). Null when it cannot be used: base64 required but invalid,
// or the text holds control characters or is longer than 1024 bytes.
std::optional<std::string> decode_identity(std::string_view value, config::UserEncoding enc);

// One principal in any of these forms: "name", "DOMAIN\name", "name@realm",
// "WinNT://DOMAIN/name" (any scheme but LDAP: "NTLM://", "Local://"...), "LDAP://host/DN" or a
// bare DN ("cn=Alice,ou=Staff,dc=corp,dc=example": the first RDN's value, the dc= parts as
// the domain). Empty name when nothing usable remains.
Principal parse_principal(std::string_view text);

// A comma-separated list of principals (groups). The commas inside a DN do not split it: an
// element that looks like an RDN ("attr=value") continues the DN before it.
std::vector<Principal> parse_principals(std::string_view text);

}  // namespace pc::icap
