// Data sets, the validation split, transforms, mixup/cutmix and the threaded loader. Tiny
// IDX, CIFAR-10 and image fixtures are written to a temp dir by each test (OpenCV writes
// the PNG/JPEG files); the real Fashion-MNIST is read when the Debian package is installed.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "data/datasets.h"
#include "data/loader.h"
#include "data/transforms.h"

namespace qilin {
namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<unsigned char>;

// ---- fixtures ----

void put_u32_be(Bytes& b, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) b.push_back(static_cast<unsigned char>(v >> shift));
}
Bytes idx_bytes(const std::vector<uint32_t>& dims, const Bytes& payload) {
  Bytes b = {0, 0, 0x08, static_cast<unsigned char>(dims.size())};
  for (uint32_t d : dims) put_u32_be(b, d);
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}
Bytes pattern(size_t n, size_t mul = 37) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<unsigned char>((i * mul + 11) % 256);
  return b;
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "qilin_data_XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  const std::string& dir() const { return dir_; }
  std::string write(const std::string& name, const Bytes& bytes) const {
    fs::create_directories(fs::path(path(name)).parent_path());
    std::ofstream f(path(name), std::ios::binary);
    f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    return path(name);
  }
  std::string write_gz(const std::string& name, const Bytes& bytes) const {
    gzFile f = gzopen(path(name).c_str(), "wb");
    EXPECT_NE(f, nullptr);
    EXPECT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
    gzclose(f);
    return path(name);
  }

 private:
  std::string dir_;
};

// Expects `fn` to throw a qilin::Error whose message contains every needle.
template <typename Fn>
void expect_error(Fn fn, const std::vector<std::string>& needles) {
  try {
    fn();
    ADD_FAILURE() << "no error thrown; expected one containing '" << needles.front() << "'";
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const std::string& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "'" << n << "' not in: " << msg;
  }
}

// An MNIST-layout split (train or t10k) of n images h x w with labels i % 10.
void write_mnist_split(const TempDir& t, const std::string& prefix, uint32_t n, uint32_t h, uint32_t w, bool gz) {
  Bytes labels(n);
  for (uint32_t i = 0; i < n; ++i) labels[i] = static_cast<unsigned char>(i % 10);
  const Bytes images = idx_bytes({n, h, w}, pattern(size_t{n} * h * w));
  const Bytes label_file = idx_bytes({n}, labels);
  if (gz) {
    t.write_gz(prefix + "-images-idx3-ubyte.gz", images);
    t.write_gz(prefix + "-labels-idx1-ubyte.gz", label_file);
  } else {
    t.write(prefix + "-images-idx3-ubyte", images);
    t.write(prefix + "-labels-idx1-ubyte", label_file);
  }
}

std::vector<uint8_t> u8(const Tensor& t) {
  const uint8_t* p = t.data<uint8_t>();
  return std::vector<uint8_t>(p, p + t.numel());
}

Tensor image_f32(int64_t c, int64_t h, int64_t w, const std::vector<float>& v) {
  return Tensor::from_vector(v, {c, h, w});
}

// ---- IDX: MNIST and Fashion-MNIST ----

TEST(MnistDataset, ReadsPlainAndGzippedIdxAsUint8ChwViews) {
  TempDir t;
  write_mnist_split(t, "train", 12, 3, 4, /*gz=*/false);
  write_mnist_split(t, "t10k", 5, 3, 4, /*gz=*/true);
  auto train = mnist(DataSplit::kTrain, t.dir());
  auto test = mnist(DataSplit::kTest, t.dir());
  EXPECT_EQ(train->size(), 12);
  EXPECT_EQ(test->size(), 5);
  EXPECT_EQ(train->num_classes(), 10);
  EXPECT_EQ(train->image_shape(), (Shape{1, 3, 4}));
  const Bytes pixels = pattern(12 * 12);
  for (int64_t i : {0, 7, 11}) {
    Example ex = train->get(i);
    EXPECT_EQ(ex.image.shape(), (Shape{1, 3, 4}));
    EXPECT_EQ(ex.image.dtype(), DType::kUInt8);
    EXPECT_EQ(ex.label, i % 10);
    EXPECT_EQ(train->label(i), i % 10);
    EXPECT_EQ(u8(ex.image), std::vector<uint8_t>(pixels.begin() + i * 12, pixels.begin() + (i + 1) * 12));
  }
  const Bytes test_pixels = pattern(5 * 12);
  EXPECT_EQ(u8(test->get(4).image), std::vector<uint8_t>(test_pixels.begin() + 48, test_pixels.end()));
  expect_error([&] { train->get(12); }, {"index 12"});
}

TEST(MnistDataset, MissingFileNamesFileAndDirectory) {
  TempDir t;
  expect_error([&] { mnist(DataSplit::kTrain, t.dir()); },
               {t.path("train-images-idx3-ubyte.gz"), t.path("train-images-idx3-ubyte"), "missing"});
}

TEST(FashionMnistDataset, MissingFileInOtherDirNamesFileAndDebianPackage) {
  TempDir t;
  expect_error([&] { fashion_mnist(DataSplit::kTest, t.dir()); },
               {t.path("t10k-images-idx3-ubyte.gz"), "dataset-fashion-mnist", FashionMnist::kDefaultDir});
}

TEST(MnistDataset, TruncatedMismatchedOrOutOfRangeFilesNameTheFile) {
  TempDir t;
  write_mnist_split(t, "train", 4, 2, 2, false);
  // Truncated images: the header claims 4 images, 3 follow.
  t.write("train-images-idx3-ubyte", idx_bytes({4, 2, 2}, pattern(12)));
  expect_error([&] { mnist(DataSplit::kTrain, t.dir()); }, {t.path("train-images-idx3-ubyte"), "truncated"});
  // Counts disagree.
  t.write("train-images-idx3-ubyte", idx_bytes({3, 2, 2}, pattern(12)));
  expect_error([&] { mnist(DataSplit::kTrain, t.dir()); },
               {t.path("train-images-idx3-ubyte"), t.path("train-labels-idx1-ubyte"), "3 images", "4 labels"});
  // A label of 10.
  t.write("train-images-idx3-ubyte", idx_bytes({4, 2, 2}, pattern(16)));
  t.write("train-labels-idx1-ubyte", idx_bytes({4}, {1, 2, 10, 3}));
  expect_error([&] { mnist(DataSplit::kTrain, t.dir()); },
               {t.path("train-labels-idx1-ubyte"), "label 2 is 10", "[0, 10)"});
}

TEST(FashionMnistDataset, RealDataSetHasItsKnownSizesAndLabels) {
  const std::string dir = FashionMnist::kDefaultDir;
  if (!fs::exists(dir + "/train-images-idx3-ubyte.gz")) {
    GTEST_SKIP() << "Fashion-MNIST not installed at " << dir << " (Debian package dataset-fashion-mnist)";
  }
  auto train = fashion_mnist(DataSplit::kTrain);
  auto test = fashion_mnist(DataSplit::kTest);
  EXPECT_EQ(train->size(), 60000);
  EXPECT_EQ(test->size(), 10000);
  EXPECT_EQ(train->image_shape(), (Shape{1, 28, 28}));
  // Known first labels (Xiao et al.'s files): train[0] and test[0] are ankle boots (9).
  EXPECT_EQ(train->label(0), 9);
  EXPECT_EQ(test->label(0), 9);
  std::vector<int64_t> per_class(10, 0);
  for (int64_t i = 0; i < train->size(); ++i) ++per_class[static_cast<size_t>(train->label(i))];
  for (int64_t c : per_class) EXPECT_EQ(c, 6000);  // the training set is balanced
}

// ---- CIFAR-10 ----

// Records of 1 label byte + 3072 pixel bytes; pixel k of record r is (k * 7 + r) % 256.
Bytes cifar_records(const std::vector<unsigned char>& labels) {
  Bytes b;
  for (size_t r = 0; r < labels.size(); ++r) {
    b.push_back(labels[r]);
    for (size_t k = 0; k < 3072; ++k) b.push_back(static_cast<unsigned char>((k * 7 + r) % 256));
  }
  return b;
}

TEST(Cifar10Dataset, ReadsBinaryBatchesInOrderAsRgbPlanes) {
  TempDir t;
  for (int i = 1; i <= 5; ++i) t.write("data_batch_" + std::to_string(i) + ".bin", cifar_records({static_cast<unsigned char>(i), 0}));
  t.write("test_batch.bin", cifar_records({3, 9, 4}));
  auto train = cifar10(DataSplit::kTrain, t.dir());
  auto test = cifar10(DataSplit::kTest, t.dir());
  ASSERT_EQ(train->size(), 10);
  ASSERT_EQ(test->size(), 3);
  EXPECT_EQ(train->image_shape(), (Shape{3, 32, 32}));
  EXPECT_EQ(train->label(0), 1);
  EXPECT_EQ(train->label(2), 2);  // batch 2's first record
  EXPECT_EQ(train->label(8), 5);
  EXPECT_EQ(test->label(1), 9);
  Example ex = test->get(2);  // record 2 of test_batch.bin
  const std::vector<uint8_t> px = u8(ex.image);
  // Channel 0 (R) is the record's first 1024 bytes, row-major; B starts at byte 2048.
  EXPECT_EQ(px[0], (0 * 7 + 2) % 256);
  EXPECT_EQ(px[33], (33 * 7 + 2) % 256);      // R, row 1, column 1
  EXPECT_EQ(px[2048 + 5], ((2048 + 5) * 7 + 2) % 256);  // B, row 0, column 5
}

TEST(Cifar10Dataset, BadSizeBadLabelOrMissingFileNamesTheFile) {
  TempDir t;
  Bytes one = cifar_records({1});
  one.pop_back();  // 3072 bytes: not a whole record
  t.write("test_batch.bin", one);
  expect_error([&] { cifar10(DataSplit::kTest, t.dir()); }, {t.path("test_batch.bin"), "3072 bytes", "3073-byte records"});
  t.write("test_batch.bin", cifar_records({2, 10}));
  expect_error([&] { cifar10(DataSplit::kTest, t.dir()); }, {t.path("test_batch.bin"), "record 1 has label 10"});
  expect_error([&] { cifar10(DataSplit::kTrain, t.dir()); }, {t.path("data_batch_1.bin"), "is missing", "test_batch.bin"});
}

// ---- image folders ----

// A uint8 BGR image of one colour.
void write_image(const std::string& path, int h, int w, cv::Scalar bgr) {
  fs::create_directories(fs::path(path).parent_path());
  cv::Mat m(h, w, CV_8UC3, bgr);
  ASSERT_TRUE(cv::imwrite(path, m)) << path;
}

TEST(ImageFolderDataset, ClassesAreSortedFoldersAndImagesDecodeToRgbChw) {
  TempDir t;
  write_image(t.path("zebra/b.png"), 2, 3, cv::Scalar(255, 0, 0));    // blue
  write_image(t.path("zebra/a.png"), 4, 5, cv::Scalar(0, 0, 255));    // red
  write_image(t.path("ant/x.jpg"), 8, 8, cv::Scalar(60, 120, 180));   // JPEG: lossy
  t.write("ant/notes.txt", {'h', 'i'});                               // not an image: skipped
  ImageFolderDataset ds(t.dir());
  ASSERT_EQ(ds.classes(), (std::vector<std::string>{"ant", "zebra"}));
  ASSERT_EQ(ds.size(), 3);
  EXPECT_EQ(ds.label(0), 0);
  EXPECT_EQ(ds.label(1), 1);
  EXPECT_EQ(ds.path(1), t.path("zebra/a.png"));  // sorted by name within the class
  Example red = ds.get(1);
  ASSERT_EQ(red.image.shape(), (Shape{3, 4, 5}));
  const std::vector<uint8_t> px = u8(red.image);
  EXPECT_EQ(px[0], 255);   // R plane
  EXPECT_EQ(px[20], 0);    // G plane
  EXPECT_EQ(px[40], 0);    // B plane
  Example blue = ds.get(2);
  EXPECT_EQ(u8(blue.image)[2 * 6], 255);  // B plane of a 2x3 image
  Example jpg = ds.get(0);
  ASSERT_EQ(jpg.image.shape(), (Shape{3, 8, 8}));
  // A flat JPEG decodes within a couple of levels of its colour (R, G, B = 180, 120, 60).
  const std::vector<uint8_t> jp = u8(jpg.image);
  EXPECT_NEAR(jp[0], 180, 3);
  EXPECT_NEAR(jp[64], 120, 3);
  EXPECT_NEAR(jp[128], 60, 3);
}

TEST(ImageFolderDataset, GrayscaleOptionGivesOneChannel) {
  TempDir t;
  write_image(t.path("a/x.png"), 3, 2, cv::Scalar(100, 100, 100));
  ImageFolderDataset ds(t.dir(), ImageFolderOptions{/*grayscale=*/true});
  EXPECT_EQ(ds.image_shape()[0], 1);
  Example ex = ds.get(0);
  ASSERT_EQ(ex.image.shape(), (Shape{1, 3, 2}));
  for (uint8_t v : u8(ex.image)) EXPECT_EQ(v, 100);  // grey in, the same grey out
}

TEST(ImageFolderDataset, MissingRootEmptyClassAndCorruptImageAreErrorsNamingThePath) {
  TempDir t;
  expect_error([&] { ImageFolderDataset(t.path("nope")); }, {t.path("nope"), "does not exist"});
  expect_error([&] { ImageFolderDataset{t.dir()}; }, {t.dir(), "no class sub-folders"});
  fs::create_directories(t.path("empty"));
  write_image(t.path("full/a.png"), 2, 2, cv::Scalar(1, 2, 3));
  expect_error([&] { ImageFolderDataset{t.dir()}; }, {t.path("empty"), "holds no image files"});
  fs::remove(t.path("empty"));
  t.write("full/broken.png", {0x89, 'P', 'N', 'G', 1, 2, 3});
  ImageFolderDataset ds(t.dir());
  ASSERT_EQ(ds.size(), 2);
  EXPECT_EQ(ds.path(1), t.path("full/broken.png"));
  expect_error([&] { ds.get(1); }, {t.path("full/broken.png"), "cannot decode"});
}

// ---- synthetic ----

TEST(SyntheticDataset, ExamplesAreAFunctionOfSeedAndIndex) {
  SyntheticOptions o;
  o.size = 50;
  o.channels = 2;
  o.height = 3;
  o.width = 4;
  o.num_classes = 5;
  o.seed = 7;
  SyntheticDataset a(o), b(o);
  o.seed = 8;
  SyntheticDataset c(o);
  int differ = 0;
  std::set<int64_t> labels;
  for (int64_t i = 0; i < 50; ++i) {
    Example x = a.get(i), y = b.get(i);
    ASSERT_EQ(x.image.shape(), (Shape{2, 3, 4}));
    EXPECT_EQ(x.image.to_vector(), y.image.to_vector());
    EXPECT_EQ(x.label, y.label);
    EXPECT_EQ(a.label(i), x.label);
    labels.insert(x.label);
    differ += c.get(i).image.to_vector() != x.image.to_vector();
  }
  EXPECT_EQ(differ, 50);
  EXPECT_EQ(labels.size(), 5u);  // 50 draws of 5 classes: all appear (P(miss) < 1e-4)
  // The class pattern: pixels k with k % 5 == label carry +2 on unit noise, so their mean
  // over many examples is ~2 while the others' is ~0.
  double on = 0, off = 0;
  int64_t n_on = 0, n_off = 0;
  for (int64_t i = 0; i < 50; ++i) {
    Example x = a.get(i);
    std::vector<float> v = x.image.to_vector();
    for (size_t k = 0; k < v.size(); ++k) {
      if (static_cast<int64_t>(k) % 5 == x.label) { on += v[k]; ++n_on; } else { off += v[k]; ++n_off; }
    }
  }
  EXPECT_NEAR(on / n_on, 2.0, 0.5);   // ~250 samples of N(2, 1): 4+ sigma margin
  EXPECT_NEAR(off / n_off, 0.0, 0.25);
}

// ---- the validation split ----

TEST(TrainValSplit, IsDeterministicDisjointAndCoversTheSet) {
  TrainValSplit a = split_train_val(1000, 100);
  TrainValSplit b = split_train_val(1000, 100);
  EXPECT_EQ(a.val, b.val);
  EXPECT_EQ(a.train, b.train);
  ASSERT_EQ(a.val.size(), 100u);
  ASSERT_EQ(a.train.size(), 900u);
  std::set<int64_t> all(a.val.begin(), a.val.end());
  for (int64_t i : a.train) EXPECT_TRUE(all.insert(i).second) << i << " in both";
  EXPECT_EQ(all.size(), 1000u);
  EXPECT_EQ(*all.begin(), 0);
  EXPECT_EQ(*all.rbegin(), 999);
  // Not the first 100 images: a shuffled choice.
  EXPECT_NE(std::set<int64_t>(a.val.begin(), a.val.end()), std::set<int64_t>(all.begin(), std::next(all.begin(), 100)));
  // Another split seed gives another split; train_limit keeps a prefix of the train part.
  EXPECT_NE(split_train_val(1000, 100, 1).val, a.val);
  TrainValSplit limited = split_train_val(1000, 100, kDefaultSplitSeed, 50);
  EXPECT_EQ(limited.val, a.val);
  EXPECT_EQ(limited.train, std::vector<int64_t>(a.train.begin(), a.train.begin() + 50));
  expect_error([] { split_train_val(100, 100); }, {"val_size = 100", "[0, 100)"});
}

TEST(TrainValSplit, SubsetViewsReadTheChosenExamples) {
  SyntheticOptions o;
  o.size = 40;
  auto base = std::make_shared<SyntheticDataset>(o);
  TrainValDatasets s = split_train_val(base, 10);
  EXPECT_EQ(s.train->size(), 30);
  EXPECT_EQ(s.val->size(), 10);
  const int64_t k = s.val->indices()[3];
  EXPECT_EQ(s.val->get(3).image.to_vector(), base->get(k).image.to_vector());
  EXPECT_EQ(s.val->label(3), base->label(k));
}

// ---- SampleRng ----

TEST(SampleRng, StreamsDependOnKeyEpochAndIndexOnly) {
  SampleRng a(1, 2, 3), b(1, 2, 3), c(1, 3, 2), d(2, 2, 3);
  std::vector<uint32_t> va, vb, vc, vd;
  for (int i = 0; i < 9; ++i) {
    va.push_back(a.bits());
    vb.push_back(b.bits());
    vc.push_back(c.bits());
    vd.push_back(d.bits());
  }
  EXPECT_EQ(va, vb);
  EXPECT_NE(va, vc);
  EXPECT_NE(va, vd);
}

TEST(SampleRng, IntegerUniformBetaAndGammaHaveTheirMoments) {
  SampleRng rng(42, 0, 0);
  constexpr int kN = 20000;
  std::vector<int> counts(6, 0);
  double beta_sum = 0, beta_sq = 0, gamma_small = 0, gamma_big = 0;
  for (int i = 0; i < kN; ++i) {
    const int64_t k = rng.integer(6);
    ASSERT_TRUE(k >= 0 && k < 6);
    ++counts[static_cast<size_t>(k)];
    const double x = rng.beta(0.4, 0.4);
    ASSERT_TRUE(x >= 0.0 && x <= 1.0);
    beta_sum += x;
    beta_sq += x * x;
    gamma_small += rng.gamma(0.5);
    gamma_big += rng.gamma(3.0);
  }
  for (int c : counts) EXPECT_NEAR(c, kN / 6.0, 200);  // sd ~53: ~4 sigma
  // Beta(0.4, 0.4): mean 1/2, variance ab / ((a+b)^2 (a+b+1)) = 0.16 / (0.64 * 1.8) = 0.1389.
  EXPECT_NEAR(beta_sum / kN, 0.5, 0.01);                      // sd of the mean 0.0026
  EXPECT_NEAR(beta_sq / kN - 0.25, 0.1389, 0.01);
  EXPECT_NEAR(gamma_small / kN, 0.5, 0.03);                   // var 0.5: sd of the mean 0.005
  EXPECT_NEAR(gamma_big / kN, 3.0, 0.06);                     // var 3: sd of the mean 0.012
}

// ---- per-image transforms (hand-computed expectations) ----

TEST(Transforms, ToFloatScalesUint8By255AndPassesFloatThrough) {
  SampleRng rng(0, 0, 0);
  Tensor img = Tensor::empty({1, 1, 3}, DType::kUInt8);
  img.data<uint8_t>()[0] = 0;
  img.data<uint8_t>()[1] = 255;
  img.data<uint8_t>()[2] = 51;
  Tensor f = ToFloat{}(img, rng);
  EXPECT_EQ(f.dtype(), DType::kFloat32);
  std::vector<float> v = f.to_vector();
  EXPECT_FLOAT_EQ(v[0], 0.0f);
  EXPECT_FLOAT_EQ(v[1], 1.0f);
  EXPECT_FLOAT_EQ(v[2], 0.2f);
  Tensor g = image_f32(1, 1, 2, {3.0f, -1.0f});
  EXPECT_EQ(ToFloat{}(g, rng).to_vector(), g.to_vector());
}

TEST(Transforms, NormalizeUsesEachChannelsMeanAndStd) {
  SampleRng rng(0, 0, 0);
  Tensor x = image_f32(2, 1, 2, {1.0f, 0.0f, 3.0f, -1.0f});
  Tensor y = Normalize{{0.5f, 1.0f}, {0.25f, 2.0f}}(x, rng);
  // (1 - .5) / .25 = 2, (0 - .5) / .25 = -2, (3 - 1) / 2 = 1, (-1 - 1) / 2 = -1; float
  // rounding of (x - m) * (1/s): exact here (powers of two).
  EXPECT_EQ(y.to_vector(), (std::vector<float>{2.0f, -2.0f, 1.0f, -1.0f}));
  // uint8 input: ÷255 first. 255 -> 1, (1 - 0.2860) / 0.3530 = 2.022663.
  Tensor p = Tensor::empty({1, 1, 1}, DType::kUInt8);
  p.data<uint8_t>()[0] = 255;
  EXPECT_NEAR((Normalize{{0.2860f}, {0.3530f}}(p, rng).item()), (1.0 - 0.2860) / 0.3530, 1e-6);
  expect_error([&] { Normalize{{0.1f, 0.2f, 0.3f}, {1, 1, 1}}(x, rng); }, {"Normalize", "2 channels"});
}

TEST(Transforms, RandomCropPadsWithZerosAndTakesTheDrawnOffset) {
  // 1x3x3 image 1..9, padding 1: the padded image is 5x5, the crop 3x3 at (top, left) in
  // [0, 2]^2 drawn as integer(3), integer(3) from the sample's stream.
  Tensor img = image_f32(1, 3, 3, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  std::set<std::pair<int64_t, int64_t>> seen;
  for (uint64_t i = 0; i < 200; ++i) {
    SampleRng rng(5, 0, i), replay(5, 0, i);
    Tensor out = RandomCrop{0, 0, 1}(img, rng);
    const int64_t top = replay.integer(3), left = replay.integer(3);
    seen.insert({top, left});
    std::vector<float> expected;
    for (int64_t y = 0; y < 3; ++y) {
      for (int64_t x = 0; x < 3; ++x) {
        const int64_t sy = y + top - 1, sx = x + left - 1;
        expected.push_back(sy >= 0 && sy < 3 && sx >= 0 && sx < 3 ? static_cast<float>(sy * 3 + sx + 1) : 0.0f);
      }
    }
    ASSERT_EQ(out.to_vector(), expected) << "offset " << top << "," << left;
  }
  EXPECT_EQ(seen.size(), 9u);  // every offset occurs
  // The top-left offset, written out: rows/cols -1..1 of the image.
  // (0 0 0 / 0 1 2 / 0 4 5) is what offset (0, 0) gives.
  for (uint64_t i = 0;; ++i) {
    SampleRng probe(5, 0, i);
    if (probe.integer(3) == 0 && probe.integer(3) == 0) {
      SampleRng rng(5, 0, i);
      EXPECT_EQ((RandomCrop{0, 0, 1}(img, rng).to_vector()), (std::vector<float>{0, 0, 0, 0, 1, 2, 0, 4, 5}));
      break;
    }
  }
  // uint8 stays uint8; a crop bigger than the padded image is an error.
  SampleRng rng(0, 0, 0);
  Tensor b = Tensor::zeros({1, 3, 3}, DType::kUInt8);
  EXPECT_EQ((RandomCrop{2, 2, 0}(b, rng).dtype()), DType::kUInt8);
  expect_error([&] { RandomCrop{6, 6, 1}(img, rng); }, {"RandomCrop", "6x6"});
}

TEST(Transforms, HorizontalFlipMirrorsWithProbabilityP) {
  Tensor img = image_f32(2, 2, 3, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
  SampleRng rng(0, 0, 0);
  EXPECT_EQ(HorizontalFlip{1.0f}(img, rng).to_vector(), (std::vector<float>{3, 2, 1, 6, 5, 4, 9, 8, 7, 12, 11, 10}));
  EXPECT_EQ(HorizontalFlip{0.0f}(img, rng).to_vector(), img.to_vector());
  int flipped = 0;
  for (uint64_t i = 0; i < 2000; ++i) {
    SampleRng r(1, 0, i);
    flipped += HorizontalFlip{0.5f}(img, r).to_vector()[0] == 3.0f;
  }
  EXPECT_NEAR(flipped, 1000, 100);  // binomial sd 22: ~4.5 sigma
}

// Bilinear with half-pixel centres and edge clamping (OpenCV INTER_LINEAR), in double.
std::vector<double> bilinear_reference(const std::vector<float>& in, int64_t h, int64_t w, int64_t oh, int64_t ow) {
  std::vector<double> out;
  auto coord = [](int64_t d, int64_t n_in, int64_t n_out, int64_t& i0, double& f) {
    double s = (d + 0.5) * static_cast<double>(n_in) / static_cast<double>(n_out) - 0.5;
    if (s < 0) s = 0;
    i0 = static_cast<int64_t>(std::floor(s));
    f = s - i0;
    if (i0 >= n_in - 1) {
      i0 = n_in - 1;
      f = 0;
    }
  };
  for (int64_t y = 0; y < oh; ++y) {
    int64_t y0;
    double fy;
    coord(y, h, oh, y0, fy);
    const int64_t y1 = std::min(y0 + 1, h - 1);
    for (int64_t x = 0; x < ow; ++x) {
      int64_t x0;
      double fx;
      coord(x, w, ow, x0, fx);
      const int64_t x1 = std::min(x0 + 1, w - 1);
      auto at = [&](int64_t yy, int64_t xx) { return static_cast<double>(in[static_cast<size_t>(yy * w + xx)]); };
      out.push_back((1 - fy) * ((1 - fx) * at(y0, x0) + fx * at(y0, x1)) + fy * ((1 - fx) * at(y1, x0) + fx * at(y1, x1)));
    }
  }
  return out;
}

void expect_near_all(const std::vector<float>& a, const std::vector<double>& e, double tol) {
  ASSERT_EQ(a.size(), e.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], e[i], tol) << "element " << i;
}

TEST(Transforms, ResizeIsBilinearWithHalfPixelCentres) {
  SampleRng rng(0, 0, 0);
  // 2x2 -> 4x4: source coordinates (d + .5) / 2 - .5 = -.25 (clamped to 0), .25, .75, 1.25
  // (clamped to the last pixel): weights along each axis 0, .25, .75, 1.
  Tensor img = image_f32(1, 2, 2, {0, 1, 2, 3});
  const std::vector<double> f = {0, 0.25, 0.75, 1};
  std::vector<double> expected;
  for (double fy : f)
    for (double fx : f) expected.push_back(2 * fy + fx);
  // float32 coefficients in OpenCV: 1e-6 absolute on values <= 3.
  expect_near_all(Resize::square(4)(img, rng).to_vector(), expected, 1e-6);
  // A non-integer downscale, two channels, against the double reference.
  std::vector<float> v(2 * 5 * 7);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>((i * 13) % 17);
  Tensor big = image_f32(2, 5, 7, v);
  Tensor small = Resize{3, 4}(big, rng);
  ASSERT_EQ(small.shape(), (Shape{2, 3, 4}));
  std::vector<double> e0 = bilinear_reference(std::vector<float>(v.begin(), v.begin() + 35), 5, 7, 3, 4);
  std::vector<double> e1 = bilinear_reference(std::vector<float>(v.begin() + 35, v.end()), 5, 7, 3, 4);
  e0.insert(e0.end(), e1.begin(), e1.end());
  expect_near_all(small.to_vector(), e0, 1e-4);  // float32 weights on values up to 16
  // The shorter side: 4x8 -> 2x4 (torchvision int(2 * 8 / 4)).
  EXPECT_EQ(Resize::shorter_side(2)(Tensor::zeros({1, 4, 8}), rng).shape(), (Shape{1, 2, 4}));
  EXPECT_EQ(Resize::shorter_side(3)(Tensor::zeros({3, 10, 5}), rng).shape(), (Shape{3, 6, 3}));
  // uint8 stays uint8.
  EXPECT_EQ(Resize::square(3)(Tensor::zeros({1, 2, 2}, DType::kUInt8), rng).dtype(), DType::kUInt8);
}

TEST(Transforms, CenterCropRoundsHalfToEvenAndPadsSmallImages) {
  SampleRng rng(0, 0, 0);
  std::vector<float> v(25);
  for (size_t i = 0; i < 25; ++i) v[i] = static_cast<float>(i);
  // 5x5 -> 3x3: top = left = round(1) = 1.
  EXPECT_EQ((CenterCrop{3, 3}(image_f32(1, 5, 5, v), rng).to_vector()),
            (std::vector<float>{6, 7, 8, 11, 12, 13, 16, 17, 18}));
  // 4x4 -> 3x3: round(0.5) = 0 (Python's round), so the top-left 3x3.
  std::vector<float> w(v.begin(), v.begin() + 16);
  EXPECT_EQ((CenterCrop{3, 3}(image_f32(1, 4, 4, w), rng).to_vector()), (std::vector<float>{0, 1, 2, 4, 5, 6, 8, 9, 10}));
  // 2x2 -> 4x3: padded by (4-2)//2 = 1 above and (3-2)//2 = 0 on the left.
  EXPECT_EQ((CenterCrop{4, 3}(image_f32(1, 2, 2, {1, 2, 3, 4}), rng).to_vector()),
            (std::vector<float>{0, 0, 0, 1, 2, 0, 3, 4, 0, 0, 0, 0}));
}

TEST(Transforms, RandomResizedCropFallsBackToTheRatioClampedCentre) {
  // 4x8 image, scale (1, 1), ratio (1, 1): every try asks for a 6x6 crop (round(sqrt(32))),
  // which does not fit in 4 rows; the fallback (ratio 2 > 1) is h = 4, w = 4 at left 2,
  // resized to 4x4 unchanged: columns 2..5.
  std::vector<float> v(32);
  for (size_t i = 0; i < 32; ++i) v[i] = static_cast<float>(i);
  SampleRng rng(3, 0, 0);
  Tensor out = RandomResizedCrop{4, 4, 1.0, 1.0, 1.0, 1.0}(image_f32(1, 4, 8, v), rng);
  std::vector<float> expected;
  for (int y = 0; y < 4; ++y)
    for (int x = 2; x < 6; ++x) expected.push_back(static_cast<float>(y * 8 + x));
  EXPECT_EQ(out.to_vector(), expected);
  // A square image with scale and ratio fixed at 1 is taken whole: a plain resize.
  std::vector<float> sq(16);
  for (size_t i = 0; i < 16; ++i) sq[i] = static_cast<float>(i % 5);
  SampleRng r1(3, 0, 1), r2(3, 0, 1);
  EXPECT_EQ((RandomResizedCrop{2, 2, 1.0, 1.0, 1.0, 1.0}(image_f32(1, 4, 4, sq), r1).to_vector()),
            Resize::square(2)(image_f32(1, 4, 4, sq), r2).to_vector());
  // Default parameters: the output size always, the crop varying with the sample.
  std::set<std::vector<float>> outs;
  for (uint64_t i = 0; i < 20; ++i) {
    SampleRng r(9, 0, i);
    Tensor o = RandomResizedCrop{3, 3}(image_f32(1, 4, 8, v), r);
    ASSERT_EQ(o.shape(), (Shape{1, 3, 3}));
    outs.insert(o.to_vector());
  }
  EXPECT_GT(outs.size(), 10u);
}

TEST(Transforms, ComposeAppliesStepsInOrderWithOneStream) {
  Tensor img = Tensor::empty({1, 2, 2}, DType::kUInt8);
  for (int i = 0; i < 4; ++i) img.data<uint8_t>()[i] = static_cast<uint8_t>(51 * i);
  Compose c{{HorizontalFlip{1.0f}, Normalize{{0.0f}, {0.2f}}}};
  SampleRng rng(0, 0, 0);
  // Flip (51, 0 / 153, 102), then ÷255 and ÷0.2: (1, 0, 3, 2).
  expect_near_all(c(img, rng).to_vector(), {1, 0, 3, 2}, 1e-6);
  TransformOptions o;
  o.mean = {0.5f};
  o.std = {0.5f};
  o.random_crop_padding = 2;
  o.hflip = true;
  EXPECT_EQ(train_transform(o).steps.size(), 3u);
  EXPECT_EQ(eval_transform(o).steps.size(), 1u);  // no augmentation at evaluation
}

// ---- mixup / cutmix ----

TEST(Mixing, CutmixBoxIsTimmsRandBbox) {
  // lam 0.75 on 8x8: cut = int(8 * sqrt(.25)) = 4, box = centre ± 2 clipped.
  for (uint64_t i = 0; i < 50; ++i) {
    SampleRng rng(4, 0, i), replay(4, 0, i);
    MixResult r = cutmix_box(8, 8, 0.75, rng);
    const int64_t cy = replay.integer(8), cx = replay.integer(8);
    EXPECT_EQ(r.box_top, std::max<int64_t>(cy - 2, 0));
    EXPECT_EQ(r.box_bottom, std::min<int64_t>(cy + 2, 8));
    EXPECT_EQ(r.box_left, std::max<int64_t>(cx - 2, 0));
    EXPECT_EQ(r.box_right, std::min<int64_t>(cx + 2, 8));
    EXPECT_DOUBLE_EQ(r.lam, 1.0 - (r.box_bottom - r.box_top) * (r.box_right - r.box_left) / 64.0);
  }
}

Tensor batch_images(int64_t b, int64_t c, int64_t h, int64_t w) {
  std::vector<float> v(static_cast<size_t>(b * c * h * w));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i % 97) * 0.1f;
  return Tensor::from_vector(v, {b, c, h, w});
}

TEST(Mixing, MixupBlendsEachRowWithItsMirrorAndTargetsSumToOne) {
  const int64_t b = 5, c = 2, h = 3, w = 3, k = 4;
  Tensor images = batch_images(b, c, h, w);
  const std::vector<float> before = images.to_vector();
  Tensor labels = Tensor::from_vector_i64({0, 1, 2, 3, 1}, {b});
  MixOptions o;
  o.mixup_alpha = 0.8;
  o.label_smoothing = 0.1;
  SampleRng rng(11, 0, 0);
  MixResult r;
  Tensor t = mix_batch(images, labels, k, o, rng, &r);
  ASSERT_FALSE(r.cutmix);
  ASSERT_GT(r.lam, 0.0);
  ASSERT_LT(r.lam, 1.0);
  const std::vector<float> after = images.to_vector();
  const int64_t chw = c * h * w;
  for (int64_t i = 0; i < b; ++i) {
    for (int64_t j = 0; j < chw; ++j) {
      const double e = r.lam * before[i * chw + j] + (1 - r.lam) * before[(b - 1 - i) * chw + j];
      ASSERT_NEAR(after[i * chw + j], e, 1e-5);
    }
  }
  const std::vector<float> tv = t.to_vector();
  const std::vector<int64_t> y = {0, 1, 2, 3, 1};
  for (int64_t i = 0; i < b; ++i) {
    double sum = 0;
    for (int64_t j = 0; j < k; ++j) {
      const double p1 = j == y[i] ? 0.9 + 0.025 : 0.025, p2 = j == y[b - 1 - i] ? 0.925 : 0.025;
      EXPECT_NEAR(tv[i * k + j], r.lam * p1 + (1 - r.lam) * p2, 1e-6);
      sum += tv[i * k + j];
    }
    EXPECT_NEAR(sum, 1.0, 1e-6);  // float32 rounding of 4 terms
  }
}

TEST(Mixing, CutmixPastesTheMirrorsBoxAndWeighsLabelsByArea) {
  const int64_t b = 4, c = 2, h = 8, w = 8, k = 3;
  Tensor labels = Tensor::from_vector_i64({0, 1, 2, 2}, {b});
  MixOptions o;
  o.cutmix_alpha = 1.0;
  bool checked = false;
  for (uint64_t s = 0; s < 20 && !checked; ++s) {
    Tensor images = batch_images(b, c, h, w);
    const std::vector<float> before = images.to_vector();
    SampleRng rng(s, 0, 0);
    MixResult r;
    Tensor t = mix_batch(images, labels, k, o, rng, &r);
    ASSERT_TRUE(r.cutmix || r.lam == 1.0);
    if (r.box_bottom == r.box_top || r.box_right == r.box_left) continue;  // an empty box: try another
    const std::vector<float> after = images.to_vector();
    for (int64_t i = 0; i < b; ++i) {
      for (int64_t ch = 0; ch < c; ++ch) {
        for (int64_t y = 0; y < h; ++y) {
          for (int64_t x = 0; x < w; ++x) {
            const bool in = y >= r.box_top && y < r.box_bottom && x >= r.box_left && x < r.box_right;
            const int64_t src = in ? b - 1 - i : i;
            ASSERT_EQ(after[((i * c + ch) * h + y) * w + x], before[((src * c + ch) * h + y) * w + x]);
          }
        }
      }
    }
    const double area = static_cast<double>((r.box_bottom - r.box_top) * (r.box_right - r.box_left));
    EXPECT_DOUBLE_EQ(r.lam, 1.0 - area / 64.0);
    const std::vector<float> tv = t.to_vector();
    // Row 0 (label 0) mixed with row 3 (label 2): lam on class 0, 1 - lam on class 2.
    EXPECT_NEAR(tv[0], r.lam, 1e-6);
    EXPECT_NEAR(tv[1], 0.0, 1e-7);
    EXPECT_NEAR(tv[2], 1.0 - r.lam, 1e-6);
    for (int64_t i = 0; i < b; ++i) EXPECT_NEAR(tv[i * k] + tv[i * k + 1] + tv[i * k + 2], 1.0, 1e-6);
    checked = true;
  }
  EXPECT_TRUE(checked);
}

TEST(Mixing, OffByDefaultGivesOneHotTargetsAndUntouchedImages) {
  Tensor images = batch_images(3, 1, 2, 2);
  const std::vector<float> before = images.to_vector();
  SampleRng rng(0, 0, 0);
  Tensor t = mix_batch(images, Tensor::from_vector_i64({2, 0, 1}, {3}), 3, MixOptions{}, rng);
  EXPECT_EQ(images.to_vector(), before);
  EXPECT_EQ(t.to_vector(), (std::vector<float>{0, 0, 1, 1, 0, 0, 0, 1, 0}));
}

// ---- the loader ----

std::shared_ptr<SyntheticDataset> synthetic(int64_t n, int64_t side = 6, int64_t classes = 5) {
  SyntheticOptions o;
  o.size = n;
  o.height = o.width = side;
  o.num_classes = classes;
  o.seed = 3;
  return std::make_shared<SyntheticDataset>(o);
}

LoaderOptions augmenting(int64_t workers, int64_t batch = 8) {
  LoaderOptions o;
  o.batch_size = batch;
  o.workers = workers;
  o.prefetch = 3;
  o.seed = 17;
  o.transform = Compose{{RandomCrop{0, 0, 2}, HorizontalFlip{0.5f}, Normalize{{0.1f}, {0.9f}}}};
  o.mix.mixup_alpha = 0.4;
  o.mix.cutmix_alpha = 1.0;
  return o;
}

std::vector<Batch> whole_epoch(DataLoader& loader, int64_t epoch, int64_t first = 0) {
  std::vector<Batch> out;
  loader.start(epoch, first);
  while (std::optional<Batch> b = loader.next()) out.push_back(std::move(*b));
  return out;
}

void expect_same_batches(const std::vector<Batch>& a, const std::vector<Batch>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].index, b[i].index);
    EXPECT_EQ(a[i].sample_indices, b[i].sample_indices);
    EXPECT_EQ(a[i].images.to_vector(), b[i].images.to_vector()) << "batch " << i;
    ASSERT_EQ(a[i].labels.numel(), b[i].labels.numel());
    for (int64_t j = 0; j < a[i].labels.numel(); ++j)
      EXPECT_EQ(a[i].labels.data<int64_t>()[j], b[i].labels.data<int64_t>()[j]);
    ASSERT_EQ(a[i].soft_targets.defined(), b[i].soft_targets.defined());
    if (a[i].soft_targets.defined()) {
      EXPECT_EQ(a[i].soft_targets.to_vector(), b[i].soft_targets.to_vector());
    }
  }
}

TEST(DataLoader, OutputIsIdenticalForZeroOneAndFourWorkers) {
  auto ds = synthetic(100);
  DataLoader l0(ds, augmenting(0)), l1(ds, augmenting(1)), l4(ds, augmenting(4));
  for (int64_t epoch : {0, 1}) {
    std::vector<Batch> a = whole_epoch(l0, epoch), b = whole_epoch(l1, epoch), c = whole_epoch(l4, epoch);
    ASSERT_EQ(a.size(), 12u);  // 100 / 8, drop_last
    expect_same_batches(a, b);
    expect_same_batches(a, c);
    EXPECT_EQ(a[0].images.shape(), (Shape{8, 1, 6, 6}));
    EXPECT_EQ(a[0].soft_targets.shape(), (Shape{8, 5}));
  }
}

TEST(DataLoader, ShufflesDifferentlyPerEpochAndTheSameForTheSameSeed) {
  auto ds = synthetic(64);
  DataLoader a(ds, augmenting(2)), b(ds, augmenting(0));
  const std::vector<int64_t> e0 = a.epoch_order(0), e1 = a.epoch_order(1);
  EXPECT_NE(e0, e1);
  EXPECT_EQ(e0, b.epoch_order(0));
  EXPECT_EQ(std::set<int64_t>(e0.begin(), e0.end()).size(), 64u);  // a permutation
  LoaderOptions other = augmenting(0);
  other.seed = 18;
  EXPECT_NE(DataLoader(ds, other).epoch_order(0), e0);
  // The batches follow the order, and augmentation differs between epochs.
  std::vector<Batch> first = whole_epoch(a, 0), second = whole_epoch(a, 1);
  EXPECT_EQ(first[1].sample_indices, std::vector<int64_t>(e0.begin() + 8, e0.begin() + 16));
  EXPECT_NE(first[0].images.to_vector(), second[0].images.to_vector());
}

TEST(DataLoader, ResumingAtEpochAndBatchContinuesTheUninterruptedSequence) {
  auto ds = synthetic(80);
  DataLoader full(ds, augmenting(2));
  std::vector<Batch> uninterrupted = whole_epoch(full, 3);
  // A "restarted" loader that starts at batch 4 of epoch 3.
  DataLoader resumed(ds, augmenting(3));
  std::vector<Batch> rest = whole_epoch(resumed, 3, 4);
  expect_same_batches(std::vector<Batch>(uninterrupted.begin() + 4, uninterrupted.end()), rest);
  // Random access gives the same batch too, and start() may abandon an epoch midway.
  expect_same_batches({full.batch(3, 7)}, {uninterrupted[7]});
  full.start(3);
  ASSERT_TRUE(full.next().has_value());
  expect_same_batches(whole_epoch(full, 3), uninterrupted);
}

TEST(DataLoader, DropLastAndTheEvaluationLoadersPartialBatch) {
  auto ds = synthetic(10);
  LoaderOptions o = augmenting(2, 4);
  DataLoader dropping(ds, o);
  EXPECT_EQ(dropping.batches_per_epoch(), 2);
  EXPECT_EQ(whole_epoch(dropping, 0).size(), 2u);
  DataLoader eval(ds, LoaderOptions::evaluation(4, Compose{{Normalize{{0.0f}, {1.0f}}}}, 2));
  EXPECT_EQ(eval.batches_per_epoch(), 3);
  std::vector<Batch> batches = whole_epoch(eval, 5);
  ASSERT_EQ(batches.size(), 3u);
  EXPECT_EQ(batches[2].labels.numel(), 2);
  EXPECT_EQ(batches[2].images.shape(), (Shape{2, 1, 6, 6}));
  EXPECT_FALSE(batches[0].soft_targets.defined());
  // In order, unaugmented: batch rows are the data set's examples as they are.
  std::vector<int64_t> order;
  for (const Batch& b : batches) order.insert(order.end(), b.sample_indices.begin(), b.sample_indices.end());
  EXPECT_EQ(order, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  const std::vector<float> last = batches[2].images.to_vector();
  EXPECT_EQ(std::vector<float>(last.begin(), last.begin() + 36), ds->get(8).image.to_vector());
  EXPECT_EQ(batches[2].labels.data<int64_t>()[1], ds->label(9));
}

// Fails on one index, as a corrupt file would.
class FailingDataset : public Dataset {
 public:
  FailingDataset(DatasetPtr base, int64_t bad) : base_(std::move(base)), bad_(bad) {}
  int64_t size() const override { return base_->size(); }
  int64_t num_classes() const override { return base_->num_classes(); }
  Example get(int64_t i) const override {
    if (i == bad_) throw Error("image file /data/broken_17.png: cannot decode");
    return base_->get(i);
  }
  Shape image_shape() const override { return base_->image_shape(); }
  std::string name() const override { return "failing set"; }

 private:
  DatasetPtr base_;
  int64_t bad_;
};

TEST(DataLoader, WorkerExceptionsReachTheConsumerNamingFileAndSample) {
  auto ds = std::make_shared<FailingDataset>(synthetic(40), 17);
  for (int64_t workers : {0, 2}) {
    LoaderOptions o = augmenting(workers, 4);
    o.shuffle = false;  // sample 17 is in batch 4
    DataLoader loader(ds, o);
    loader.start(0);
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(loader.next().has_value());
    expect_error([&] { loader.next(); }, {"/data/broken_17.png", "sample 17", "failing set", "batch 4 of epoch 0"});
    // The loader goes on after the bad batch; the destructor then joins with work pending.
    ASSERT_TRUE(loader.next().has_value());
  }
}

TEST(DataLoader, ImagesOfDifferentSizesNeedAResize) {
  TempDir t;
  write_image(t.path("a/1.png"), 4, 4, cv::Scalar(0, 0, 0));
  write_image(t.path("a/2.png"), 5, 4, cv::Scalar(0, 0, 0));
  auto ds = std::make_shared<ImageFolderDataset>(t.dir());
  LoaderOptions o = LoaderOptions::evaluation(2, Compose{}, 0);
  DataLoader plain(ds, o);
  plain.start(0);
  expect_error([&] { plain.next(); }, {"[3, 5, 4]", "[3, 4, 4]", "Resize", "sample 1"});
  o.transform = Compose{{Resize::square(3), Normalize{{0.5f}, {0.5f}}}};
  DataLoader resized(ds, o);
  resized.start(0);
  std::optional<Batch> b = resized.next();
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->images.shape(), (Shape{2, 3, 3, 3}));
  for (float v : b->images.to_vector()) EXPECT_FLOAT_EQ(v, -1.0f);  // black: (0 - .5) / .5
}

TEST(DataLoader, DestructorJoinsWorkersMidEpoch) {
  auto ds = synthetic(400);
  for (int rep = 0; rep < 5; ++rep) {
    DataLoader loader(ds, augmenting(3));
    loader.start(0);
    ASSERT_TRUE(loader.next().has_value());
  }  // each destructor stops 3 workers with batches in flight; a hang or crash fails the test
  SUCCEED();
}

}  // namespace
}  // namespace qilin
