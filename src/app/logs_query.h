// `portcullis logs query`: searches the local log store (docs/log-store.md).
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "config/config.h"
#include "store/writer.h"

namespace pc::app {

struct LogsQueryArgs {
  std::string config;
  std::string from, to;  // RFC 3339, a date, "now" or relative ("-1h"); empty: unbounded
  std::string client, user, host, url, category, decision;
  std::optional<std::string> threat;  // "": any threat
  std::size_t limit = 100;            // 0: every matching record
  std::string page_token;
  std::string format = "table";  // table | csv | json
};

// Prints the matching records on standard output, newest first; when more remain, the
// option for the next page on standard error. 0 on success, 1 when the store cannot be
// read, 2 on bad arguments or configuration.
int logs_query(const LogsQueryArgs& a);

// The store settings of a configuration, as the gateway runs them.
store::WriterOptions log_store_options(const config::Config& c);

}  // namespace pc::app
