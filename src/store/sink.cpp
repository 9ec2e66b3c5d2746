#include "store/sink.h"

namespace pc::store {

StoreSink::StoreSink(WriterOptions options)
    : path_(options.store.path), writer_(std::move(options)) {}

void StoreSink::write(const telemetry::Batch& batch) {
  if (batch && !batch->empty()) writer_.submit(*batch);
}

telemetry::SinkStats StoreSink::stats() const {
  const Stats s = writer_.stats();
  telemetry::SinkStats out;
  out.name = "log_store";
  out.written = s.written;
  out.dropped = s.dropped;
  out.queued = s.queued;
  out.connected = s.healthy;
  out.detail = s.healthy || s.last_error.empty() ? path_.string() : s.last_error;
  return out;
}

}  // namespace pc::store
