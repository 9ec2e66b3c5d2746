// The log store as a sink of the access-log writer: each batch is copied into the store's
// bounded queue (store::Writer) and written to SQLite on the store's own thread, so a slow or
// full disk never holds up the writer, let alone a worker.
#pragma once

#include <filesystem>

#include "store/writer.h"
#include "telemetry/sink.h"

namespace pc::store {

class StoreSink final : public telemetry::LogSink {
 public:
  explicit StoreSink(WriterOptions options);
  void write(const telemetry::Batch& batch) override;
  // "log_store": written and dropped (queue full, store unavailable or full, write errors);
  // connected while the store is healthy, else the detail is its last error.
  telemetry::SinkStats stats() const override;

 private:
  std::filesystem::path path_;
  Writer writer_;
};

}  // namespace pc::store
