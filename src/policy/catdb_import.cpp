// Importers for category and reputation databases. Files are mapped (mmap) and split into
// lines with memchr: no per-line allocation, no iostreams. Every problem is reported as
// "file:line: message" and the line skipped.
#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <system_error>

#include "policy/catdb.h"

namespace pc::policy {

namespace {

class MappedFile {
 public:
  // False (with *error set) when the file cannot be read.
  bool open(const std::filesystem::path& file, std::string* error) {
    // O_NONBLOCK: a FIFO (or device) in a database folder must not hang the import; it is
    // then refused below as not a regular file.
    int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
      *error = std::strerror(errno);
      return false;
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      *error = S_ISDIR(st.st_mode) ? "is a directory" : "not a regular file";
      ::close(fd);
      return false;
    }
    size_ = static_cast<std::size_t>(st.st_size);
    if (size_ != 0) {
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
      if (p == MAP_FAILED) {
        *error = std::strerror(errno);
        ::close(fd);
        return false;
      }
      ::madvise(p, size_, MADV_SEQUENTIAL);
      data_ = static_cast<const char*>(p);
    }
    ::close(fd);
    return true;
  }
  ~MappedFile() {
    if (data_) ::munmap(const_cast<char*>(data_), size_);
  }
  std::string_view text() const { return {data_ ? data_ : "", size_}; }

 private:
  const char* data_ = nullptr;
  std::size_t size_ = 0;
};

// Calls f(line, number) for every line, without its line terminator.
template <class F>
void for_each_line(std::string_view text, F&& f) {
  std::size_t number = 0;
  const char* p = text.data();
  const char* end = p + text.size();
  while (p < end) {
    const char* nl =
        static_cast<const char*>(std::memchr(p, '\n', static_cast<std::size_t>(end - p)));
    const char* stop = nl ? nl : end;
    f(std::string_view(p, static_cast<std::size_t>(stop - p)), ++number);
    p = stop + 1;
  }
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

// The line without a '#' comment, trimmed.
std::string_view content(std::string_view line) {
  if (auto hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
  return trim(line);
}

// Quoted into error messages, at most 80 bytes, control bytes replaced.
std::string shown(std::string_view s) {
  std::string r;
  r.reserve(std::min<std::size_t>(s.size(), 80) + 5);
  r += '"';
  for (std::size_t i = 0; i < s.size() && i < 80; ++i)
    r += (static_cast<unsigned char>(s[i]) < 0x20 || s[i] == 0x7f) ? '?' : s[i];
  if (s.size() > 80) r += "...";
  r += '"';
  return r;
}

void report(std::vector<std::string>& errors, const std::filesystem::path& file, std::size_t line,
            std::string_view message) {
  std::string e = file.string();
  if (line != 0) {
    e += ':';
    e += std::to_string(line);
  }
  e += ": ";
  e += message;
  errors.push_back(std::move(e));
}

bool open_or_report(MappedFile& f, const std::filesystem::path& file,
                    std::vector<std::string>& errors) {
  std::string why;
  if (f.open(file, &why)) return true;
  report(errors, file, 0, "cannot read: " + why);
  return false;
}

void domain_error(std::vector<std::string>& errors, const std::filesystem::path& file,
                  std::size_t line, std::string_view domain) {
  report(errors, file, line,
         is_public_suffix(domain) ? "refused: " + shown(domain) + " is a public suffix"
                                  : "not a domain: " + shown(domain));
}

void import_domains(CategoryDb::Builder& b, std::uint16_t source, std::uint16_t category,
                    const std::filesystem::path& file, std::vector<std::string>& errors) {
  MappedFile f;
  if (!open_or_report(f, file, errors)) return;
  for_each_line(f.text(), [&](std::string_view line, std::size_t number) {
    std::string_view d = content(line);
    if (d.empty()) return;
    if (!b.add_domain(d, category, source)) domain_error(errors, file, number, d);
  });
}

void import_urls(CategoryDb::Builder& b, std::uint16_t source, std::uint16_t category,
                 const std::filesystem::path& file, std::vector<std::string>& errors) {
  MappedFile f;
  if (!open_or_report(f, file, errors)) return;
  for_each_line(f.text(), [&](std::string_view line, std::size_t number) {
    std::string_view u = trim(line);  // '#' may be part of a URL: only whole-line comments
    if (u.empty() || u.front() == '#') return;
    if (!b.add_url(u, category, source)) report(errors, file, number, "not a URL: " + shown(u));
  });
}

void import_expressions(CategoryDb::Builder& b, std::uint16_t source, std::uint16_t category,
                        const std::filesystem::path& file, std::vector<std::string>& errors) {
  MappedFile f;
  if (!open_or_report(f, file, errors)) return;
  std::string why;
  for_each_line(f.text(), [&](std::string_view line, std::size_t number) {
    std::string_view e = trim(line);  // '#' is legal in an expression
    if (e.empty() || e.starts_with("# ") || e == "#") return;
    why.clear();
    if (!b.add_expression(e, category, source, &why))
      report(errors, file, number, "bad expression: " + why);
  });
}

bool is_ip_address(std::string_view s) {
  char buf[64];
  if (s.empty() || s.size() >= sizeof buf) return false;
  std::memcpy(buf, s.data(), s.size());
  buf[s.size()] = '\0';
  unsigned char addr[16];
  return ::inet_pton(AF_INET, buf, addr) == 1 || ::inet_pton(AF_INET6, buf, addr) == 1;
}

bool is_local_name(std::string_view n) {
  static constexpr std::string_view kNames[] = {
      "localhost",     "localhost.localdomain", "local",        "broadcasthost",
      "ip6-localhost", "ip6-loopback",          "ip6-localnet", "ip6-mcastprefix",
      "ip6-allnodes",  "ip6-allrouters",        "ip6-allhosts", "0.0.0.0"};
  for (auto k : kNames)
    if (n.size() == k.size() && std::equal(n.begin(), n.end(), k.begin(), [](char a, char c) {
          return (a >= 'A' && a <= 'Z' ? a + 32 : a) == c;
        }))
      return true;
  return false;
}

// Splits one CSV record (no embedded line breaks) into fields; quoted fields are unquoted
// ("" is a quote) into storage. Returns the number of fields, or -1 on a malformed quote.
int split_csv(std::string_view line, std::string_view* fields, int max_fields,
              std::string* storage) {
  storage->clear();
  storage->reserve(line.size());  // views into storage stay valid: it never grows below
  int n = 0;
  std::size_t i = 0;
  while (true) {
    if (n == max_fields) return n;
    if (i < line.size() && line[i] == '"') {
      std::size_t start = storage->size();
      ++i;
      bool closed = false;
      while (i < line.size()) {
        if (line[i] == '"') {
          if (i + 1 < line.size() && line[i + 1] == '"') {
            storage->push_back('"');
            i += 2;
            continue;
          }
          closed = true;
          ++i;
          break;
        }
        storage->push_back(line[i++]);
      }
      if (!closed || (i < line.size() && line[i] != ',')) return -1;
      fields[n++] = std::string_view(storage->data() + start, storage->size() - start);
    } else {
      std::size_t comma = line.find(',', i);
      std::size_t stop = comma == std::string_view::npos ? line.size() : comma;
      fields[n++] = line.substr(i, stop - i);
      i = stop;
    }
    if (i >= line.size()) return n;
    ++i;  // the comma
  }
}

}  // namespace

void import_domain_list(CategoryDb::Builder& b, std::uint16_t source, std::uint16_t category,
                        const std::filesystem::path& file, std::vector<std::string>& errors) {
  import_domains(b, source, category, file, errors);
}

void import_url_list(CategoryDb::Builder& b, std::uint16_t source, std::uint16_t category,
                     const std::filesystem::path& file, std::vector<std::string>& errors) {
  import_urls(b, source, category, file, errors);
}

void import_squidguard_dir(CategoryDb::Builder& b, std::uint16_t source,
                           const std::filesystem::path& dir, std::vector<std::string>& errors) {
  std::error_code ec;
  std::vector<std::filesystem::path> folders;
  std::filesystem::directory_iterator it(dir, ec), end;
  if (ec) {
    report(errors, dir, 0, "cannot read directory: " + ec.message());
    return;
  }
  for (; it != end; it.increment(ec)) {
    if (ec) break;
    const auto name = it->path().filename().string();
    if (name.empty() || name.front() == '.') continue;
    if (it->is_directory(ec)) folders.push_back(it->path());  // follows symlinks (aliases)
  }
  if (ec) report(errors, dir, 0, "cannot read directory: " + ec.message());
  std::sort(folders.begin(), folders.end());
  for (const auto& folder : folders) {
    const std::uint16_t category = b.category(folder.filename().string());
    bool any = false;
    if (std::filesystem::exists(folder / "domains", ec)) {
      import_domains(b, source, category, folder / "domains", errors);
      any = true;
    }
    if (std::filesystem::exists(folder / "urls", ec)) {
      import_urls(b, source, category, folder / "urls", errors);
      any = true;
    }
    if (std::filesystem::exists(folder / "expressions", ec)) {
      import_expressions(b, source, category, folder / "expressions", errors);
      any = true;
    }
    if (!any) report(errors, folder, 0, "no domains, urls or expressions file");
  }
}

void import_hosts_file(CategoryDb::Builder& b, std::uint16_t source, std::uint16_t category,
                       const std::filesystem::path& file, std::vector<std::string>& errors) {
  MappedFile f;
  if (!open_or_report(f, file, errors)) return;
  for_each_line(f.text(), [&](std::string_view line, std::size_t number) {
    std::string_view rest = content(line);
    if (rest.empty()) return;
    auto next = [&rest]() {
      std::size_t sp = rest.find_first_of(" \t");
      std::string_view tok = rest.substr(0, sp);
      rest = sp == std::string_view::npos ? std::string_view() : trim(rest.substr(sp));
      return tok;
    };
    std::string_view address = next();
    if (!is_ip_address(address)) {
      report(errors, file, number, "expected an address before the names: " + shown(address));
      return;
    }
    if (rest.empty()) {
      report(errors, file, number, "no names after the address");
      return;
    }
    while (!rest.empty()) {
      std::string_view name = next();
      if (is_local_name(name)) continue;
      if (!b.add_domain(name, category, source)) domain_error(errors, file, number, name);
    }
  });
}

void import_urlhaus_csv(CategoryDb::Builder& b, std::uint16_t source,
                        const std::filesystem::path& file, std::vector<std::string>& errors) {
  // Category ids are Reputation values: the levels used here must get their own ids (a fresh
  // builder, or one whose first categories are the levels in enum order).
  for (Reputation r : {Reputation::dangerous, Reputation::highly_suspicious}) {
    if (b.category(to_string(r)) != static_cast<std::uint16_t>(r)) {
      report(errors, file, 0,
             "the database's categories must be the reputation levels (use a builder of its "
             "own for reputation)");
      return;
    }
  }
  MappedFile f;
  if (!open_or_report(f, file, errors)) return;
  std::string storage;
  std::string_view fields[9];
  for_each_line(f.text(), [&](std::string_view line, std::size_t number) {
    line = trim(line);
    if (line.empty() || line.front() == '#') return;
    int n = split_csv(line, fields, 9, &storage);
    if (n < 0) {
      report(errors, file, number, "malformed quoted field");
      return;
    }
    if (n >= 1 && fields[0] == "id") return;  // header
    if (n < 4) {
      report(errors, file, number, "expected id,dateadded,url,url_status,...");
      return;
    }
    Reputation level;
    if (fields[3] == "online")
      level = Reputation::dangerous;
    else if (fields[3] == "offline")
      level = Reputation::highly_suspicious;
    else {
      report(errors, file, number, "unknown url_status " + shown(fields[3]));
      return;
    }
    if (!b.add_url(fields[2], static_cast<std::uint16_t>(level), source))
      report(errors, file, number, "not a URL: " + shown(fields[2]));
  });
}

}  // namespace pc::policy
