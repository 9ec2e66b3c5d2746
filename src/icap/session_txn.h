// The state of one ICAP transaction, shared by the files that implement icap::Session.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "icap/session.h"

namespace pc::icap {

inline constexpr std::string_view kCrlf = "\r\n";
inline constexpr std::string_view kLastChunk = "0\r\n\r\n";

struct Session::Txn : txn::Exchange {
  wire::IcapRequestHead head;
  wire::EncapsulatedHeads heads;
  std::optional<wire::IcapChunkedDecoder> body;  // the encapsulated body (or preview) to read
  IsTag tag;                                     // ISTag of the pinned snapshot
  bool keep = true;                              // the connection may carry another message
  std::uint64_t in_start = 0;                    // Session::consumed() when the message began
};

}  // namespace pc::icap
