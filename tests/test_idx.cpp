// IDX reader: small plain and gzipped files written here, every kind of corrupt file (each an
// Error naming the file and what was expected), the Fashion-MNIST loader's checks, and the
// real data set when the Debian package is installed.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <fstream>
#include <string>
#include <vector>

#include "data/idx.h"

namespace qilin {
namespace {

namespace fs = std::filesystem;

using Bytes = std::vector<unsigned char>;

void put_u32_be(Bytes& b, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) b.push_back(static_cast<unsigned char>(v >> shift));
}

// An IDX unsigned-byte file: magic 00 00 08 <ndims>, big-endian dims, then the payload.
Bytes idx_bytes(const std::vector<uint32_t>& dims, const Bytes& payload) {
  Bytes b = {0, 0, 0x08, static_cast<unsigned char>(dims.size())};
  for (uint32_t d : dims) put_u32_be(b, d);
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}

// Deterministic pixel/label bytes covering 0..255.
Bytes pattern(size_t n) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<unsigned char>((i * 37 + 11) % 256);
  return b;
}

class IdxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "qilin_idx_XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  std::string write_plain(const std::string& name, const Bytes& bytes) const {
    std::ofstream f(path(name), std::ios::binary);
    f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    return path(name);
  }
  std::string write_gz(const std::string& name, const Bytes& bytes) const {
    gzFile f = gzopen(path(name).c_str(), "wb");
    EXPECT_NE(f, nullptr);
    if (!bytes.empty()) {
      EXPECT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
    }
    gzclose(f);
    return path(name);
  }
  Bytes read_file(const std::string& p) const {
    std::ifstream f(p, std::ios::binary);
    return Bytes(std::istreambuf_iterator<char>(f), {});
  }

  std::string dir_;
};

// Expects `fn` to throw an Error naming `file` and containing `needle`.
template <typename Fn>
void expect_error(Fn fn, const std::string& file, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "no error for " << file << " (expected: " << needle << ")";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(file), std::string::npos) << "message does not name the file: " << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << "expected '" << needle << "' in: " << msg;
  }
}

void expect_images(const Tensor& t, int64_t n, int64_t rows, int64_t cols, const Bytes& payload) {
  ASSERT_EQ(t.dtype(), DType::kUInt8);
  ASSERT_EQ(t.shape(), (Shape{n, rows, cols}));
  for (int64_t i = 0; i < t.numel(); ++i) ASSERT_EQ(t.data<uint8_t>()[i], payload[static_cast<size_t>(i)]) << i;
}

TEST_F(IdxTest, ReadsPlainAndGzippedImages) {
  const Bytes payload = pattern(3 * 4 * 5);
  const Bytes file = idx_bytes({3, 4, 5}, payload);
  expect_images(load_idx_images(write_plain("img", file)), 3, 4, 5, payload);
  expect_images(load_idx_images(write_gz("img.gz", file)), 3, 4, 5, payload);
}

TEST_F(IdxTest, ReadsPlainAndGzippedLabelsAsInt64) {
  const Bytes payload = pattern(300);  // values across 0..255: widened, never sign-extended
  const Bytes file = idx_bytes({300}, payload);
  for (const std::string& p : {write_plain("lab", file), write_gz("lab.gz", file)}) {
    Tensor t = load_idx_labels(p);
    ASSERT_EQ(t.dtype(), DType::kInt64);
    ASSERT_EQ(t.shape(), (Shape{300}));
    for (int64_t i = 0; i < 300; ++i) ASSERT_EQ(t.data<int64_t>()[i], payload[static_cast<size_t>(i)]) << p << " " << i;
  }
}

TEST_F(IdxTest, ReadsAFileWithZeroItems) {
  EXPECT_EQ(load_idx_images(write_plain("img", idx_bytes({0, 28, 28}, {}))).shape(), (Shape{0, 28, 28}));
  EXPECT_EQ(load_idx_labels(write_gz("lab.gz", idx_bytes({0}, {}))).shape(), (Shape{0}));
}

TEST_F(IdxTest, MissingFileIsAnError) {
  expect_error([&] { load_idx_images(path("absent.gz")); }, path("absent.gz"), "cannot open");
}

TEST_F(IdxTest, BadMagicNumberIsAnError) {
  // A labels file where images are expected, and the reverse: the message says what it found.
  const std::string labels = write_gz("lab.gz", idx_bytes({2}, {1, 2}));
  expect_error([&] { load_idx_images(labels); }, labels, "bad magic number 0x00000801");
  expect_error([&] { load_idx_images(labels); }, labels, "expected 0x00000803");
  const std::string images = write_plain("img", idx_bytes({1, 2, 2}, pattern(4)));
  expect_error([&] { load_idx_labels(images); }, images, "bad magic number 0x00000803");
  // Not IDX at all (a PNG signature), and an IDX file of another element type (float, 0x0d).
  const std::string png = write_plain("x.png", {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a});
  expect_error([&] { load_idx_images(png); }, png, "bad magic number 0x89504e47");
  const std::string floats = write_plain("f", {0, 0, 0x0d, 3, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0});
  expect_error([&] { load_idx_images(floats); }, floats, "type 0x0d");
}

TEST_F(IdxTest, TruncatedFilesAreErrors) {
  const Bytes file = idx_bytes({3, 4, 5}, pattern(60));
  Bytes cut(file.begin(), file.end() - 7);
  const std::string plain = write_plain("img", cut);
  expect_error([&] { load_idx_images(plain); }, plain, "truncated: header says 3 images of 4x5 (60 bytes) but only 53");
  const std::string gz = write_gz("img.gz", cut);
  expect_error([&] { load_idx_images(gz); }, gz, "truncated");
  // Header cut inside the magic number and inside the dims.
  const std::string tiny = write_plain("tiny", {0, 0, 8});
  expect_error([&] { load_idx_images(tiny); }, tiny, "truncated");
  const std::string half = write_gz("half.gz", Bytes(file.begin(), file.begin() + 9));
  expect_error([&] { load_idx_images(half); }, half, "truncated: header ends before its 3 dimension sizes");
  const std::string labels = write_plain("lab", idx_bytes({10}, pattern(9)));
  expect_error([&] { load_idx_labels(labels); }, labels, "10 labels");
}

TEST_F(IdxTest, CutOrCorruptGzipStreamIsAnError) {
  const Bytes file = idx_bytes({50, 28, 28}, pattern(50 * 28 * 28));
  const Bytes gz = read_file(write_gz("full.gz", file));
  ASSERT_GT(gz.size(), 100u);
  const std::string cut = write_plain("cut.gz", Bytes(gz.begin(), gz.begin() + static_cast<int64_t>(gz.size() / 2)));
  expect_error([&] { load_idx_images(cut); }, cut, "truncated");
  Bytes flipped = gz;
  for (size_t i = 20; i < 40; ++i) flipped[i] ^= 0x5a;  // inside the deflate stream
  const std::string bad = write_plain("bad.gz", flipped);
  expect_error([&] { load_idx_images(bad); }, bad, "corrupt gzip data");
}

TEST_F(IdxTest, TrailingDataIsAnError) {
  Bytes file = idx_bytes({2}, {1, 2});
  file.push_back(3);
  const std::string p = write_gz("lab.gz", file);
  expect_error([&] { load_idx_labels(p); }, p, "data continues after the 2 labels");
}

TEST_F(IdxTest, ImplausibleHeaderIsRejectedBeforeAllocating) {
  // 4e9 images of 65536 x 65536: would be 2^64 bytes and more.
  Bytes file = {0, 0, 8, 3};
  for (uint32_t d : {4000000000u, 65536u, 65536u}) put_u32_be(file, d);
  const std::string gz = write_gz("huge.gz", file);
  expect_error([&] { load_idx_images(gz); }, gz, "implausible");
  const std::string plain = write_plain("zero_rows", idx_bytes({5, 0, 3}, {}));
  expect_error([&] { load_idx_images(plain); }, plain, "0x3 pixels");
}

// Four Fashion-MNIST-named files in the test's directory.
void write_fashion_files(const IdxTest& t, const std::function<std::string(const std::string&, const Bytes&)>& write,
                         uint32_t n_images, uint32_t n_labels, const Bytes& labels) {
  for (const char* split : {"train", "t10k"}) {
    write(std::string(split) + "-images-idx3-ubyte.gz", idx_bytes({n_images, 28, 28}, pattern(n_images * 28 * 28)));
    write(std::string(split) + "-labels-idx1-ubyte.gz", idx_bytes({n_labels}, labels));
  }
}

TEST_F(IdxTest, FashionMnistLoadsASplitFromItsDirectory) {
  write_fashion_files(*this, [&](const std::string& n, const Bytes& b) { return write_gz(n, b); }, 4, 4, {0, 9, 3, 3});
  FashionMnist fm;
  fm.dir = dir_;
  EXPECT_EQ(fm.images_path(DataSplit::kTest), path("t10k-images-idx3-ubyte.gz"));
  ImagesAndLabels d = fm.load(DataSplit::kTrain);
  EXPECT_EQ(d.images.shape(), (Shape{4, 28, 28}));
  EXPECT_EQ(d.labels.data<int64_t>()[1], 9);
}

TEST_F(IdxTest, FashionMnistCountMismatchNamesBothFiles) {
  write_fashion_files(*this, [&](const std::string& n, const Bytes& b) { return write_gz(n, b); }, 4, 3, {0, 1, 2});
  FashionMnist fm;
  fm.dir = dir_;
  expect_error([&] { fm.load(DataSplit::kTrain); }, path("train-images-idx3-ubyte.gz"), "holds 4 images but");
  expect_error([&] { fm.load(DataSplit::kTrain); }, path("train-labels-idx1-ubyte.gz"), "holds 3 labels");
}

TEST_F(IdxTest, FashionMnistRejectsLabelsOutsideTenClasses) {
  write_fashion_files(*this, [&](const std::string& n, const Bytes& b) { return write_gz(n, b); }, 2, 2, {0, 10});
  FashionMnist fm;
  fm.dir = dir_;
  expect_error([&] { fm.load(DataSplit::kTest); }, path("t10k-labels-idx1-ubyte.gz"), "label 1 is 10");
}

TEST_F(IdxTest, FashionMnistMissingFileSaysWhereTheDataComesFrom) {
  FashionMnist fm;
  fm.dir = dir_;
  expect_error([&] { fm.load(DataSplit::kTrain); }, path("train-images-idx3-ubyte.gz"), "dataset-fashion-mnist");
  if (!fs::exists(FashionMnist::kDefaultDir)) {
    expect_error([&] { FashionMnist{}.load(DataSplit::kTrain); }, FashionMnist::kDefaultDir,
                 "comes from the Debian package dataset-fashion-mnist");
  }
}

TEST(FashionMnistReal, TrainSetHas60000ImagesOf28x28InTenBalancedClasses) {
  if (!fs::exists(FashionMnist::kDefaultDir)) {
    GTEST_SKIP() << FashionMnist::kDefaultDir << " is absent (install the Debian package "
                 << "dataset-fashion-mnist): real-data check not run";
  }
  ImagesAndLabels train = FashionMnist{}.load(DataSplit::kTrain);
  EXPECT_EQ(train.images.shape(), (Shape{60000, 28, 28}));
  EXPECT_EQ(train.labels.shape(), (Shape{60000}));
  // Fashion-MNIST's train set has exactly 6000 images per class (Xiao et al. 2017, Table 1).
  std::vector<int64_t> counts(10, 0);
  for (int64_t i = 0; i < 60000; ++i) {
    const int64_t label = train.labels.data<int64_t>()[i];
    ASSERT_TRUE(label >= 0 && label < 10) << "label " << i << " is " << label;
    ++counts[static_cast<size_t>(label)];
  }
  for (int c = 0; c < 10; ++c) EXPECT_EQ(counts[static_cast<size_t>(c)], 6000) << "class " << c;
  ImagesAndLabels test = FashionMnist{}.load(DataSplit::kTest);
  EXPECT_EQ(test.images.shape(), (Shape{10000, 28, 28}));
}

}  // namespace
}  // namespace qilin
