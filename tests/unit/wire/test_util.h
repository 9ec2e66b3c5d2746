// Helpers shared by the wire unit tests.
#pragma once

#include <string>
#include <string_view>

#include "wire/http.h"

namespace pc::wire::test {

// Parses a complete request head, its target, and analyzes it; returns the first error.
inline Error analyze(std::string_view text, MessageInfo* info = nullptr, Limits lim = {}) {
  RequestHead head;
  ParseResult r = parse_request_head(text, lim, head);
  if (r.status == Status::error) return r.error;
  if (r.status != Status::complete) return Error::none;
  Target target;
  if (Error e = parse_target(head.method, head.target, target); e != Error::none) return e;
  MessageInfo local;
  return analyze_request(head, target, info != nullptr ? *info : local);
}

}  // namespace pc::wire::test
