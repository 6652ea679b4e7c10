// safetensors read/write (DESIGN.md §5). The rules follow the reference implementation
// (huggingface/safetensors, safetensors/src/tensor.rs): the header is a JSON object padded
// with spaces to a multiple of 8 bytes; data_offsets are relative to the data block; the
// tensors' byte ranges, sorted, tile the data block exactly (no gaps, no overlap, nothing
// after the last one). Everything read from a file is validated before it is trusted: a
// corrupt file is an Error naming the file and the problem, never a crash.
//
// Holds no tensor math; data is written and read as raw little-endian bytes (qilin runs on
// little-endian hosts only, checked below).
#include "core/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"

namespace qilin {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors I/O writes host bytes: it assumes a little-endian host");

constexpr char kMetadataKey[] = "__metadata__";
constexpr size_t kHeaderAlignment = 8;  // the reference writer pads the header to 8 bytes
// The reference reader refuses headers above 100 MB (MAX_HEADER_SIZE); so do we, so that a
// corrupt length cannot make us allocate gigabytes.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

[[noreturn]] void fail(const std::string& path, const std::string& problem) {
  throw Error(str_cat("safetensors file ", path, ": ", problem));
}

std::string errno_str() { return std::strerror(errno); }

// A JSON value for an error message, cut short: a corrupt header can hold megabytes.
std::string brief(const nlohmann::json& v) {
  constexpr size_t kMaxChars = 80;
  std::string text = v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (text.size() > kMaxChars) text = text.substr(0, kMaxChars) + "...";
  return text;
}

bool dtype_from_name(const std::string& name, DType* out) {
  for (DType t : {DType::kFloat32, DType::kInt32, DType::kInt64, DType::kUInt8}) {
    if (name == dtype_name(t)) {
      *out = t;
      return true;
    }
  }
  return false;
}

// ---- writing ----

// Writes all of [data, data + n) to fd; false with errno set on failure.
bool write_all(int fd, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// The directory holding `path`, to fsync after the rename so the new name is durable.
std::string parent_dir(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// ---- reading ----

struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin, end;
};

uint64_t as_u64(const std::string& path, const std::string& name, const char* field,
                const nlohmann::json& v) {
  if (!v.is_number_unsigned()) {
    fail(path, str_cat("tensor '", name, "': ", field, " must hold non-negative integers, got ",
                       brief(v)));
  }
  return v.get<uint64_t>();
}

Entry parse_entry(const std::string& path, const std::string& name, const nlohmann::json& info) {
  if (!info.is_object()) fail(path, str_cat("tensor '", name, "': expected a JSON object, got ", brief(info)));
  for (const char* field : {"dtype", "shape", "data_offsets"}) {
    if (!info.contains(field)) fail(path, str_cat("tensor '", name, "': missing field '", field, "'"));
  }
  Entry e;
  e.name = name;
  const auto& dtype = info["dtype"];
  if (!dtype.is_string()) fail(path, str_cat("tensor '", name, "': dtype must be a string, got ", brief(dtype)));
  if (!dtype_from_name(dtype.get<std::string>(), &e.dtype)) {
    fail(path, str_cat("tensor '", name, "': unsupported dtype '", dtype.get<std::string>(),
                       "' (qilin reads F32, I32, I64, U8)"));
  }
  const auto& shape = info["shape"];
  if (!shape.is_array()) fail(path, str_cat("tensor '", name, "': shape must be an array, got ", brief(shape)));
  // numel and its byte size, guarded against overflow: a corrupt shape must not wrap around
  // to a size that happens to match the offsets.
  bool has_zero_dim = false;
  for (const auto& d : shape) {
    uint64_t size = as_u64(path, name, "shape", d);
    if (size > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      fail(path, str_cat("tensor '", name, "': shape ", brief(shape), " is too large"));
    }
    e.shape.push_back(static_cast<int64_t>(size));
    has_zero_dim = has_zero_dim || size == 0;
  }
  // The bound is int64 and zero dims are skipped, not short-circuited: Tensor computes numel
  // and strides as int64 products, so [2^62, 2^62, 0] (0 bytes) must be refused as well.
  const uint64_t elem = dtype_size(e.dtype);
  uint64_t nbytes = elem;
  for (int64_t size : e.shape) {
    if (size == 0) continue;
    if (nbytes > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / static_cast<uint64_t>(size)) {
      fail(path, str_cat("tensor '", name, "': shape ", brief(shape), " is too large"));
    }
    nbytes *= static_cast<uint64_t>(size);
  }
  if (has_zero_dim) nbytes = 0;
  const auto& offsets = info["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2) {
    fail(path, str_cat("tensor '", name, "': data_offsets must be [begin, end], got ", brief(offsets)));
  }
  e.begin = as_u64(path, name, "data_offsets", offsets[0]);
  e.end = as_u64(path, name, "data_offsets", offsets[1]);
  if (e.end < e.begin) {
    fail(path, str_cat("tensor '", name, "': data_offsets [", e.begin, ", ", e.end, "] end before they begin"));
  }
  if (e.end - e.begin != nbytes) {
    fail(path, str_cat("tensor '", name, "': ", dtype_name(e.dtype), shape_str(e.shape), " needs ",
                       nbytes, " bytes but data_offsets [", e.begin, ", ", e.end, "] span ",
                       e.end - e.begin));
  }
  return e;
}

// RAII FILE* for reading.
struct File {
  std::FILE* f = nullptr;
  ~File() {
    if (f) std::fclose(f);
  }
};

}  // namespace

Tensor SafetensorsContents::find(const std::string& name) const {
  for (const auto& [n, t] : tensors)
    if (n == name) return t;
  return Tensor();
}

void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata) {
  // Build the header; tensors are laid out in the order given.
  nlohmann::json header = nlohmann::json::object();
  std::vector<Tensor> cpu_tensors;
  cpu_tensors.reserve(tensors.size());
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (name == kMetadataKey) fail(path, str_cat("cannot write a tensor named '", kMetadataKey, "' (reserved)"));
    if (!t.defined()) fail(path, str_cat("cannot write tensor '", name, "': it is undefined"));
    if (header.contains(name)) fail(path, str_cat("cannot write two tensors named '", name, "'"));
    Tensor c = t.device().is_cpu() ? t : t.to(Device::cpu());
    const uint64_t nbytes = c.nbytes();
    header[name] = {{"dtype", dtype_name(c.dtype())},
                    {"shape", c.shape()},
                    {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    cpu_tensors.push_back(std::move(c));
  }
  if (!metadata.empty()) header[kMetadataKey] = metadata;
  std::string header_text;
  try {
    header_text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    fail(path, str_cat("cannot encode the header (names and metadata must be UTF-8): ", e.what()));
  }
  header_text.resize((header_text.size() + kHeaderAlignment - 1) / kHeaderAlignment * kHeaderAlignment, ' ');
  const uint64_t header_len = header_text.size();  // little-endian host: these are its bytes

  // Write to a temporary file beside the target, fsync it, then rename over the target: a
  // reader (or a crash) sees the old file or the new one, never a half-written one.
  const std::string tmp = str_cat(path, ".tmp.", ::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail(path, str_cat("cannot create temporary file ", tmp, ": ", errno_str()));
  auto abandon = [&](const std::string& what) {
    std::string err = errno_str();
    ::close(fd);
    ::unlink(tmp.c_str());
    fail(path, str_cat(what, ": ", err));
  };
  if (!write_all(fd, &header_len, sizeof(header_len)) ||
      !write_all(fd, header_text.data(), header_text.size())) {
    abandon("write failed");
  }
  for (const Tensor& t : cpu_tensors) {
    if (t.nbytes() > 0 && !write_all(fd, t.raw_data(), t.nbytes())) abandon("write failed");
  }
  if (::fsync(fd) != 0) abandon("fsync failed");
  if (::close(fd) != 0) {
    std::string err = errno_str();
    ::unlink(tmp.c_str());
    fail(path, str_cat("close failed: ", err));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    std::string err = errno_str();
    ::unlink(tmp.c_str());
    fail(path, str_cat("cannot rename ", tmp, " into place: ", err));
  }
  // Make the rename itself durable; failure here loses nothing already written.
  int dir_fd = ::open(parent_dir(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
}

SafetensorsContents load_safetensors(const std::string& path) {
  File file;
  file.f = std::fopen(path.c_str(), "rb");
  if (!file.f) fail(path, str_cat("cannot open: ", errno_str()));
  struct stat st;
  if (::fstat(::fileno(file.f), &st) != 0) fail(path, str_cat("cannot stat: ", errno_str()));
  if (!S_ISREG(st.st_mode)) fail(path, "not a regular file");
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);

  uint64_t header_len = 0;
  if (file_size < sizeof(header_len)) {
    fail(path, str_cat("file is ", file_size, " bytes, shorter than the 8-byte header length"));
  }
  if (std::fread(&header_len, sizeof(header_len), 1, file.f) != 1) fail(path, "cannot read the header length");
  if (header_len > kMaxHeaderBytes) {
    fail(path, str_cat("header length ", header_len, " is absurd (limit ", kMaxHeaderBytes,
                       " bytes): not a safetensors file or corrupt"));
  }
  if (header_len > file_size - sizeof(header_len)) {
    fail(path, str_cat("header length ", header_len, " exceeds the ", file_size - sizeof(header_len),
                       " bytes after it: truncated file"));
  }
  std::string header_text(header_len, '\0');
  if (header_len > 0 && std::fread(header_text.data(), 1, header_len, file.f) != header_len) {
    fail(path, "cannot read the header");
  }
  const uint64_t data_size = file_size - sizeof(header_len) - header_len;

  // Parse, remembering top-level keys to catch duplicates (nlohmann keeps the last silently).
  std::set<std::string> seen;
  std::string duplicate;
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(
        header_text,
        [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
          if (depth == 1 && event == nlohmann::json::parse_event_t::key) {
            const std::string key = parsed.get<std::string>();
            if (!seen.insert(key).second && duplicate.empty()) duplicate = key;
          }
          return true;
        });
  } catch (const nlohmann::json::exception& e) {
    fail(path, str_cat("header is not valid JSON: ", e.what()));
  }
  if (!header.is_object()) fail(path, str_cat("header must be a JSON object, got ", header.type_name()));
  if (!duplicate.empty()) fail(path, str_cat("header names '", duplicate, "' twice"));

  SafetensorsContents out;
  std::vector<Entry> entries;
  for (const auto& [key, value] : header.items()) {
    if (key == kMetadataKey) {
      if (!value.is_object()) fail(path, str_cat(kMetadataKey, " must be an object, got ", brief(value)));
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string()) {
          fail(path, str_cat(kMetadataKey, " value of '", mk, "' must be a string, got ", brief(mv)));
        }
        out.metadata[mk] = mv.get<std::string>();
      }
      continue;
    }
    entries.push_back(parse_entry(path, key, value));
  }

  // The byte ranges, in offset order, must tile [0, data_size) exactly.
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t expected_begin = 0;
  const Entry* prev = nullptr;
  for (const Entry& e : entries) {
    if (e.end > data_size) {
      fail(path, str_cat("tensor '", e.name, "': data_offsets [", e.begin, ", ", e.end,
                         "] run past the ", data_size, "-byte data block (truncated file?)"));
    }
    if (e.begin < expected_begin) {
      fail(path, str_cat("tensor '", e.name, "': data_offsets [", e.begin, ", ", e.end,
                         "] overlap those of '", prev->name, "'"));
    }
    if (e.begin > expected_begin) {
      fail(path, str_cat("tensor '", e.name, "': data_offsets begin at ", e.begin, " leaving a gap after ",
                         prev ? "'" + prev->name + "'" : std::string("the header"), " (ends at ",
                         expected_begin, "): offsets must be contiguous"));
    }
    expected_begin = e.end;
    prev = &e;
  }
  if (expected_begin != data_size) {
    fail(path, str_cat("the tensors cover ", expected_begin, " bytes of the ", data_size,
                       "-byte data block: trailing bytes"));
  }

  // Contiguous ranges in offset order: read them sequentially straight into each tensor.
  out.tensors.reserve(entries.size());
  for (const Entry& e : entries) {
    Tensor t = Tensor::empty(e.shape, e.dtype);
    const size_t nbytes = e.end - e.begin;
    if (nbytes > 0 && std::fread(t.raw_data(), 1, nbytes, file.f) != nbytes) {
      fail(path, str_cat("tensor '", e.name, "': cannot read its ", nbytes, " bytes"));
    }
    out.tensors.emplace_back(e.name, std::move(t));
  }
  return out;
}

}  // namespace qilin
