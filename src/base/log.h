// Diagnostic logging to standard error (not the access log). Thread-safe; one write per line.
#pragma once

#include <fmt/format.h>

#include <atomic>
#include <string_view>

namespace pc::log {

enum class Level : int { debug = 0, info = 1, warn = 2, error = 3 };

inline std::atomic<int>& threshold() {
  static std::atomic<int> t{static_cast<int>(Level::info)};
  return t;
}
inline void set_level(std::string_view name) {
  Level l = name == "debug"   ? Level::debug
            : name == "warn"  ? Level::warn
            : name == "error" ? Level::error
                              : Level::info;
  threshold().store(static_cast<int>(l));
}
inline bool enabled(Level l) {
  return static_cast<int>(l) >= threshold().load(std::memory_order_relaxed);
}

void write(Level l, std::string_view msg);  // in log.cpp

template <class... A>
void debug(fmt::format_string<A...> f, A&&... a) {
  if (enabled(Level::debug)) write(Level::debug, fmt::format(f, std::forward<A>(a)...));
}
template <class... A>
void info(fmt::format_string<A...> f, A&&... a) {
  if (enabled(Level::info)) write(Level::info, fmt::format(f, std::forward<A>(a)...));
}
template <class... A>
void warn(fmt::format_string<A...> f, A&&... a) {
  if (enabled(Level::warn)) write(Level::warn, fmt::format(f, std::forward<A>(a)...));
}
template <class... A>
void error(fmt::format_string<A...> f, A&&... a) {
  if (enabled(Level::error)) write(Level::error, fmt::format(f, std::forward<A>(a)...));
}

}  // namespace pc::log
