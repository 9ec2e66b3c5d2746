// Block, warn and error pages shown to the person behind the browser, in English and Japanese.
// Templates are built into the binary and may be replaced by an administrator's own files.
// Everything substituted into a template is HTML-escaped; URL placeholders meant for links
// accept only http and https URLs. Loaded on the control thread; render() is const and safe
// from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pc::pages {

enum class Kind : std::uint8_t {
  rule_block,            // blocked by a policy rule
  list_block,            // blocked by the organisation's blocked list
  warn,                  // interstitial: "Continue" and "Go back"
  threat,                // a threat was found (names it)
  bad_request,           // the request could not be understood
  dns_failure,           // the name could not be resolved (not found, refused or timeout)
  upstream_unreachable,  // the server could not be reached
  upstream_timeout,      // the server did not answer in time
  gateway_info,          // a request addressed to the gateway itself
  cert_error,            // the server's certificate could not be verified
};
inline constexpr std::size_t kind_count = 10;

enum class Lang : std::uint8_t { en, ja };
inline constexpr std::size_t lang_count = 2;

// What went wrong when resolving a name; selects the wording of dns_failure and its status.
enum class DnsError : std::uint8_t { not_found, refused, timeout };

std::string_view to_string(Kind k);  // "rule_block", ... (the template file name stem)
std::string_view to_string(Lang l);  // "en", "ja" (also the Content-Language value)
std::optional<Kind> kind_from_string(std::string_view s);
std::optional<Lang> lang_from_string(std::string_view s);

// Picks the page language from an Accept-Language field value (RFC 9110 12.5.4): q-values,
// language ranges matched on their primary subtag ("ja", "ja-JP", "en-US"), "*" for any
// language not named, q=0 for "not acceptable". Ties go to the earlier range; nothing
// acceptable (or an empty or malformed field) gives English.
Lang negotiate(std::string_view accept_language);

// The HTTP status of a page: 403 rule_block, list_block, warn, threat; 400 bad_request;
// 502 upstream_unreachable, cert_error and DNS not_found / refused; 504 upstream_timeout and
// DNS timeout; 200 gateway_info.
int status_for(Kind k, DnsError dns = DnsError::not_found);

// The values a page may show. Each is a placeholder of the same name: {{url}}, {{host}}, ...
// Every value is HTML-escaped when substituted. continue_url and back_url are links: anything
// but an absolute http or https URL becomes "#" (continue_url) or the browser's history
// (back_url). Template syntax (see README.md): {{name}} substitutes, {{#name}}...{{/name}}
// keeps its content only when the value is not empty; dns_not_found, dns_refused and
// dns_timeout are conditions for sections only, set from `dns`.
struct Vars {
  std::string url;                     // what was asked for
  std::string host;                    // its host
  std::string category;                // the matched category, if any
  std::string rule;                    // the deciding rule (or "blocked list")
  std::string reason;                  // a short explanation from the caller
  std::string user;                    // user name, else the client address
  std::string time;                    // when (see format_time)
  std::string request_id;              // the transaction's ID
  std::string gateway;                 // the gateway's name
  std::string threat;                  // threat name (threat pages)
  std::string continue_url;            // warn: where "Continue" goes (carries the warn token)
  std::string back_url;                // warn: where "Go back" goes (e.g. the Referer), optional
  DnsError dns = DnsError::not_found;  // dns_failure: which failure
  int status = 0;                      // {{status}}; 0: status_for(kind, dns)
};

// "2026-11-29 16:34:25 UTC".
std::string format_time(std::chrono::system_clock::time_point t);

// HTML-escapes & < > " '.
std::string html_escape(std::string_view s);

// A set of templates, one per kind and language. Immutable once built.
class Templates {
 public:
  // The templates compiled into the binary (src/pages/templates/). Never null.
  static std::shared_ptr<const Templates> builtin();

  // Reads "<kind>.<lang>.html" files (e.g. "rule_block.ja.html") from dir; every kind and
  // language without a file there keeps its built-in template. An empty dir gives the built-in
  // set. Errors (each naming its file): dir missing or unreadable, an unreadable or oversized
  // file, an .html file whose name is not a known kind and language, an unknown placeholder,
  // an unbalanced section or unterminated "{{". On any error returns null and lists them all.
  static std::shared_ptr<const Templates> load(const std::filesystem::path& dir,
                                               std::vector<std::string>& errors);

  // The HTML document for a page. Total: every kind and language has a template.
  std::string render(Kind k, Lang l, const Vars& v) const;

  // Where the template of a kind and language came from: the file, or "built-in".
  std::string source(Kind k, Lang l) const;

  ~Templates();

  struct Impl;

 private:
  Templates();
  std::unique_ptr<Impl> impl_;
};

}  // namespace pc::pages
