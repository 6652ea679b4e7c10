// IDX reader (see idx.h). The header is validated before any data is trusted. A plain file's
// data is read straight into the output tensor; a gzipped payload grows a buffer as bytes
// arrive (a corrupt 30-byte .gz must not make us allocate what its header claims), which
// costs one copy.
#include "data/idx.h"

#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "core/error.h"

namespace qilin {
namespace {

constexpr unsigned char kGzipMagic[2] = {0x1f, 0x8b};
constexpr uint8_t kIdxTypeUnsignedByte = 0x08;
constexpr uint32_t kImagesMagic = 0x00000803;  // unsigned byte, 3 dims
constexpr uint32_t kLabelsMagic = 0x00000801;  // unsigned byte, 1 dim
// A header claiming more than this is corrupt, not a data set: refuse it before allocating.
constexpr uint64_t kMaxPayloadBytes = uint64_t{16} << 30;
// gzread takes an unsigned int length: read in chunks well below that.
constexpr size_t kGzChunkBytes = size_t{1} << 30;

[[noreturn]] void fail(const std::string& path, const std::string& problem) {
  throw Error(str_cat("IDX file ", path, ": ", problem));
}

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%08x", v);
  return buf;
}

// Sequential reader over a plain or gzip-compressed file.
class ByteReader {
 public:
  explicit ByteReader(const std::string& path) : path_(path) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) fail(path, str_cat("cannot open: ", std::strerror(errno)));
    struct stat st;
    if (::fstat(::fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
      std::fclose(f);
      fail(path, "not a regular file");
    }
    unsigned char magic[2] = {0, 0};
    const size_t got = std::fread(magic, 1, 2, f);
    gzipped_ = got == 2 && magic[0] == kGzipMagic[0] && magic[1] == kGzipMagic[1];
    if (!gzipped_) {
      plain_ = f;
      plain_size_ = static_cast<uint64_t>(st.st_size);
      std::rewind(plain_);
      return;
    }
    std::fclose(f);
    gz_ = gzopen(path.c_str(), "rb");
    if (!gz_) fail(path, str_cat("cannot open as gzip: ", std::strerror(errno)));
    gzbuffer(gz_, 1 << 17);  // fewer, larger inflate calls than the 8 KB default
  }
  ~ByteReader() {
    if (plain_) std::fclose(plain_);
    if (gz_) gzclose(gz_);
  }
  ByteReader(const ByteReader&) = delete;
  ByteReader& operator=(const ByteReader&) = delete;

  bool gzipped() const { return gzipped_; }
  // Total bytes of an uncompressed file (unknown for gzip: 0).
  uint64_t plain_size() const { return plain_size_; }

  // Reads up to n bytes; returns how many were read (fewer only at end of data).
  size_t read(void* dst, size_t n) {
    if (!gzipped_) {
      const size_t got = std::fread(dst, 1, n, plain_);
      if (got < n && std::ferror(plain_)) fail(path_, str_cat("read error: ", std::strerror(errno)));
      return got;
    }
    size_t total = 0;
    char* p = static_cast<char*>(dst);
    while (total < n) {
      const unsigned chunk = static_cast<unsigned>(std::min(n - total, kGzChunkBytes));
      const int got = gzread(gz_, p + total, chunk);
      if (got < 0) {
        int errnum = 0;
        const char* msg = gzerror(gz_, &errnum);
        std::string why = msg ? msg : "unknown zlib error";
        // zlib prefixes its message with the path, which fail() already gives.
        if (why.rfind(path_ + ": ", 0) == 0) why = why.substr(path_.size() + 2);
        fail(path_, str_cat("corrupt gzip data: ", why));
      }
      if (got == 0) break;
      total += static_cast<size_t>(got);
    }
    return total;
  }

 private:
  std::string path_;
  bool gzipped_ = false;
  std::FILE* plain_ = nullptr;
  gzFile gz_ = nullptr;
  uint64_t plain_size_ = 0;
};

uint32_t big_endian_u32(const unsigned char* b) {
  return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | uint32_t{b[3]};
}

// Reads and checks the header; returns the dims. `what` describes the expected content.
std::vector<int64_t> read_header(ByteReader& in, const std::string& path, uint32_t expected_magic,
                                 const char* what) {
  unsigned char magic_bytes[4];
  if (in.read(magic_bytes, 4) != 4) fail(path, str_cat("truncated: no 4-byte magic number (expected ", what, ")"));
  const uint32_t magic = big_endian_u32(magic_bytes);
  if (magic != expected_magic) {
    std::string found;
    if (magic_bytes[0] == 0 && magic_bytes[1] == 0 && magic_bytes[3] >= 1 && magic_bytes[3] <= 4) {
      found = str_cat(" (an IDX file of type 0x", hex32(magic_bytes[2]).substr(8), " with ",
                      int{magic_bytes[3]}, " dims)");
    }
    fail(path, str_cat("bad magic number ", hex32(magic), found, ": expected ", hex32(expected_magic),
                       ", ", what));
  }
  const int ndims = magic_bytes[3];
  std::vector<unsigned char> dim_bytes(4 * static_cast<size_t>(ndims));
  if (in.read(dim_bytes.data(), dim_bytes.size()) != dim_bytes.size()) {
    fail(path, str_cat("truncated: header ends before its ", ndims, " dimension sizes"));
  }
  std::vector<int64_t> dims;
  for (int d = 0; d < ndims; ++d) dims.push_back(big_endian_u32(&dim_bytes[4 * static_cast<size_t>(d)]));
  return dims;
}

// Checks a payload size the header announces before anything is allocated for it.
void check_payload_size(const ByteReader& in, const std::string& path, uint64_t nbytes,
                        uint64_t header_bytes, const std::string& what) {
  if (nbytes > kMaxPayloadBytes) {
    fail(path, str_cat("header claims ", what, " (", nbytes, " bytes): implausible, corrupt header?"));
  }
  if (!in.gzipped() && in.plain_size() < header_bytes + nbytes) {
    fail(path, str_cat("truncated: header says ", what, " (", nbytes, " bytes) but only ",
                       in.plain_size() - header_bytes, " bytes follow the header"));
  }
}

// Reads exactly `nbytes` of payload into dst, then checks nothing follows.
void read_payload(ByteReader& in, const std::string& path, void* dst, uint64_t nbytes,
                  const std::string& what) {
  const size_t got = in.read(dst, nbytes);
  if (got != nbytes) {
    fail(path, str_cat("truncated: header says ", what, " (", nbytes, " bytes) but only ", got,
                       " bytes follow the header"));
  }
  unsigned char extra;
  if (in.read(&extra, 1) != 0) fail(path, str_cat("data continues after the ", what, " the header announces"));
}

// The payload of a gzipped file, which only the header sizes: the buffer grows as
// decompressed bytes arrive, never to the announced size up front, so a 30-byte corrupt .gz
// cannot make us allocate (and zero) gigabytes. Costs one copy of the payload.
std::vector<uint8_t> read_gz_payload(ByteReader& in, const std::string& path, uint64_t nbytes,
                                     const std::string& what) {
  constexpr uint64_t kFirstStepBytes = uint64_t{1} << 20;
  std::vector<uint8_t> bytes;
  while (bytes.size() < nbytes) {
    const uint64_t have = bytes.size();
    const uint64_t step = std::min(nbytes - have, std::max(kFirstStepBytes, have));  // doubling
    bytes.resize(have + step);
    const size_t got = in.read(bytes.data() + have, step);
    if (got != step) {
      fail(path, str_cat("truncated: header says ", what, " (", nbytes, " bytes) but only ",
                         have + got, " bytes follow the header"));
    }
  }
  unsigned char extra;
  if (in.read(&extra, 1) != 0) fail(path, str_cat("data continues after the ", what, " the header announces"));
  return bytes;
}

bool file_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace

Tensor load_idx_images(const std::string& path) {
  ByteReader in(path);
  const char* what = "IDX3 unsigned-byte images [N, rows, cols]";
  std::vector<int64_t> dims = read_header(in, path, kImagesMagic, what);
  const int64_t n = dims[0], rows = dims[1], cols = dims[2];
  if (rows == 0 || cols == 0) fail(path, str_cat("images of ", rows, "x", cols, " pixels: expected both sizes > 0"));
  // Each dim < 2^32, so rows * cols fits in 64 bits; saturate the product with n.
  const uint64_t per_image = static_cast<uint64_t>(rows) * static_cast<uint64_t>(cols);
  const uint64_t nbytes = static_cast<uint64_t>(n) > kMaxPayloadBytes / per_image
                              ? kMaxPayloadBytes + 1
                              : static_cast<uint64_t>(n) * per_image;
  const std::string desc = str_cat(n, " images of ", rows, "x", cols);
  check_payload_size(in, path, nbytes, 4 + 4 * dims.size(), desc);
  if (in.gzipped()) {
    const std::vector<uint8_t> bytes = read_gz_payload(in, path, nbytes, desc);
    Tensor images = Tensor::empty({n, rows, cols}, DType::kUInt8);
    if (nbytes > 0) std::memcpy(images.raw_data(), bytes.data(), nbytes);
    return images;
  }
  Tensor images = Tensor::empty({n, rows, cols}, DType::kUInt8);
  read_payload(in, path, images.raw_data(), nbytes, desc);
  return images;
}

Tensor load_idx_labels(const std::string& path) {
  ByteReader in(path);
  const char* what = "IDX1 unsigned-byte labels [N]";
  std::vector<int64_t> dims = read_header(in, path, kLabelsMagic, what);
  const int64_t n = dims[0];
  const std::string desc = str_cat(n, " labels");
  check_payload_size(in, path, static_cast<uint64_t>(n), 4 + 4 * dims.size(), desc);
  std::vector<uint8_t> bytes;
  if (in.gzipped()) {
    bytes = read_gz_payload(in, path, static_cast<uint64_t>(n), desc);
  } else {
    bytes.resize(static_cast<size_t>(n));
    read_payload(in, path, bytes.data(), static_cast<uint64_t>(n), desc);
  }
  Tensor labels = Tensor::empty({n}, DType::kInt64);
  int64_t* out = labels.data<int64_t>();
  for (int64_t i = 0; i < n; ++i) out[i] = bytes[static_cast<size_t>(i)];
  return labels;
}

std::string FashionMnist::images_path(DataSplit split) const {
  return dir + (split == DataSplit::kTrain ? "/train-images-idx3-ubyte.gz" : "/t10k-images-idx3-ubyte.gz");
}

std::string FashionMnist::labels_path(DataSplit split) const {
  return dir + (split == DataSplit::kTrain ? "/train-labels-idx1-ubyte.gz" : "/t10k-labels-idx1-ubyte.gz");
}

ImagesAndLabels FashionMnist::load(DataSplit split) const {
  const std::string images_file = images_path(split), labels_file = labels_path(split);
  for (const std::string& file : {images_file, labels_file}) {
    if (file_exists(file)) continue;
    if (dir == kDefaultDir) {
      throw Error(str_cat("Fashion-MNIST file ", file, " is missing: it comes from the Debian package "
                          "dataset-fashion-mnist (apt-get install dataset-fashion-mnist, or run "
                          "scripts/setup.sh)"));
    }
    throw Error(str_cat("Fashion-MNIST file ", file, " is missing: expected the four IDX files of "
                        "Fashion-MNIST in ", dir, " (the Debian package dataset-fashion-mnist "
                        "installs them in ", kDefaultDir, ")"));
  }
  ImagesAndLabels out;
  out.images = load_idx_images(images_file);
  out.labels = load_idx_labels(labels_file);
  if (out.images.size(0) != out.labels.size(0)) {
    throw Error(str_cat("Fashion-MNIST: ", images_file, " holds ", out.images.size(0), " images but ",
                        labels_file, " holds ", out.labels.size(0), " labels"));
  }
  const int64_t* labels = out.labels.data<int64_t>();
  for (int64_t i = 0; i < out.labels.numel(); ++i) {
    if (labels[i] < 0 || labels[i] >= kClasses) {
      throw Error(str_cat("IDX file ", labels_file, ": label ", i, " is ", labels[i],
                          ": Fashion-MNIST labels are in [0, ", kClasses, ")"));
    }
  }
  return out;
}

}  // namespace qilin
