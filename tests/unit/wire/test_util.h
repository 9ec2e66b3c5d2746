// Helpers shared by the wire unit tests.
#pragma once

#include <string>
#include <string_view>

#include "wire/http.h"

namespace pc::wire::test {

// Parses a complete request head, its target, and analyzes it; returns the first error.
// The views in *info point into *head, which the caller keeps alive when it reads them.
inline Error analyze(std::string_view text, MessageInfo* info = nullptr,
                     RequestHead* keep = nullptr) {
  RequestHead local_head;
  RequestHead& head = keep != nullptr ? *keep : local_head;
  ParseResult r = parse_request_head(text, Limits{}, head);
  if (r.status == Status::error) return r.error;
  if (r.status != Status::complete) return Error::none;
  Target target;
  if (Error e = parse_target(head.method, head.target, target); e != Error::none) return e;
  MessageInfo local;
  return analyze_request(head, target, info != nullptr ? *info : local);
}

}  // namespace pc::wire::test
