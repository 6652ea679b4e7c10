// Data sets: a Dataset is a random-access list of (image, label) examples. get() is
// thread-safe (the loader's workers call it concurrently) and pure: the same index gives the
// same example every time.
//
//   fashion_mnist(split), mnist(split, dir)   IDX files, gzipped or not (data/idx.h)
//   cifar10(split, dir)                        CIFAR-10 binary batches
//   ImageFolderDataset(root)                   <root>/<class>/<image>, decoded by OpenCV
//   SyntheticDataset(options)                  images drawn from (seed, index)
//   Subset(dataset, indices)                   a view, e.g. the train/validation split
//
// Errors at this boundary (a missing, truncated or corrupt file; an undecodable image) are
// qilin::Error naming the file and what was expected; for the default Fashion-MNIST
// directory they also name the Debian package that provides it.
//
// Not here: augmentation (data/transforms.h), batching and threads (data/loader.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "data/idx.h"

namespace qilin {

struct Example {
  // uint8 (raw pixels, 0..255) or float32, [C, H, W]. May share storage with the data set:
  // treat it as read-only (every transform writes a new tensor).
  Tensor image;
  int64_t label = 0;  // in [0, num_classes)
};

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  virtual int64_t num_classes() const = 0;
  // Example `index` in [0, size()). Thread-safe.
  virtual Example get(int64_t index) const = 0;
  // [C, H, W] of every image; H and W are 0 when they vary (an image folder).
  virtual Shape image_shape() const = 0;
  // For messages: "Fashion-MNIST train (/usr/share/datasets/fashion-mnist)".
  virtual std::string name() const = 0;
  // The label alone, without decoding the image where the data set can avoid it.
  virtual int64_t label(int64_t index) const { return get(index).label; }
};

using DatasetPtr = std::shared_ptr<const Dataset>;

// In-memory images: uint8 or float32 [N, H, W] (one channel) or [N, C, H, W], with int64
// labels [N] in [0, num_classes) (checked). get() returns a view, no copy.
class TensorDataset : public Dataset {
 public:
  TensorDataset(Tensor images, Tensor labels, int64_t num_classes, std::string name);
  int64_t size() const override { return size_; }
  int64_t num_classes() const override { return num_classes_; }
  Example get(int64_t index) const override;
  Shape image_shape() const override { return image_shape_; }
  std::string name() const override { return name_; }
  int64_t label(int64_t index) const override;

  const Tensor& images() const { return images_; }
  const Tensor& labels() const { return labels_; }

 private:
  Tensor images_, labels_;
  int64_t size_ = 0, num_classes_ = 0;
  Shape image_shape_;
  std::string name_;
};

// Fashion-MNIST (Xiao et al. 2017): 60000 train / 10000 test 28x28 grey images, 10 classes,
// from <dir>/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] (the .gz is tried first).
// The default dir is where Debian's dataset-fashion-mnist installs them.
std::shared_ptr<TensorDataset> fashion_mnist(DataSplit split,
                                             const std::string& dir = FashionMnist::kDefaultDir);
// MNIST (LeCun et al. 1998): the same file names and format; no default location.
std::shared_ptr<TensorDataset> mnist(DataSplit split, const std::string& dir);

// CIFAR-10 binary version (https://www.cs.toronto.edu/~kriz/cifar.html): train =
// data_batch_1.bin .. data_batch_5.bin, test = test_batch.bin, in `dir`; each record is
// 1 label byte then 3072 pixel bytes (1024 R, 1024 G, 1024 B, rows of 32). Images uint8
// [3, 32, 32]. A file whose size is not a whole number of records, or a label >= 10, is an
// error naming it.
constexpr int64_t kCifar10Classes = 10;
std::shared_ptr<TensorDataset> cifar10(DataSplit split, const std::string& dir);
// One batch file: images uint8 [N, 3, 32, 32], labels int64 [N] (what a fuzz target feeds).
ImagesAndLabels load_cifar10_batch(const std::string& file);

// torchvision's ImageFolder layout: <root>/<class name>/<file>. Class index = position of
// the sub-folder name in byte-wise sorted order; files sorted by name within a class; only
// image extensions (jpg, jpeg, png, bmp, ppm, pgm, tif, tiff, webp; any case) are taken. A
// missing root, no class folders or a class folder without images is an error naming it.
// Images decode on get() (cv::imread): uint8 [3, H, W] RGB, or [1, H, W] with grayscale.
struct ImageFolderOptions {
  bool grayscale = false;
};
class ImageFolderDataset : public Dataset {
 public:
  explicit ImageFolderDataset(const std::string& root, ImageFolderOptions options = {});
  int64_t size() const override { return static_cast<int64_t>(files_.size()); }
  int64_t num_classes() const override { return static_cast<int64_t>(classes_.size()); }
  Example get(int64_t index) const override;  // an unreadable image: Error naming the file
  Shape image_shape() const override { return {options_.grayscale ? 1 : 3, 0, 0}; }
  std::string name() const override { return "image folder " + root_; }
  int64_t label(int64_t index) const override;

  const std::vector<std::string>& classes() const { return classes_; }
  const std::string& path(int64_t index) const;

 private:
  std::string root_;
  ImageFolderOptions options_;
  std::vector<std::string> classes_;
  std::vector<std::string> files_;
  std::vector<int64_t> labels_;
};

// Learnable noise: example i has label uniform in [0, classes) and image float [C, H, W] of
// unit Gaussian noise plus `pattern_brightness` on every pixel whose flat index is the
// label modulo the class count. Everything is a function of (seed, i) alone.
struct SyntheticOptions {
  int64_t size = 1024;
  int64_t channels = 1, height = 28, width = 28;
  int64_t num_classes = 10;
  uint64_t seed = 0;
  float pattern_brightness = 2.0f;
};
class SyntheticDataset : public Dataset {
 public:
  explicit SyntheticDataset(SyntheticOptions options);
  int64_t size() const override { return options_.size; }
  int64_t num_classes() const override { return options_.num_classes; }
  Example get(int64_t index) const override;
  Shape image_shape() const override { return {options_.channels, options_.height, options_.width}; }
  std::string name() const override;
  int64_t label(int64_t index) const override;

 private:
  SyntheticOptions options_;
};

// Examples indices[0], indices[1], ... of `base` (a view; each index checked on entry).
class Subset : public Dataset {
 public:
  Subset(DatasetPtr base, std::vector<int64_t> indices);
  int64_t size() const override { return static_cast<int64_t>(indices_.size()); }
  int64_t num_classes() const override { return base_->num_classes(); }
  Example get(int64_t index) const override;
  Shape image_shape() const override { return base_->image_shape(); }
  std::string name() const override;
  int64_t label(int64_t index) const override;

  const std::vector<int64_t>& indices() const { return indices_; }
  const DatasetPtr& base() const { return base_; }

 private:
  DatasetPtr base_;
  std::vector<int64_t> indices_;
};

// ---- the validation split (DESIGN.md §5: seeded, the same every run) ----

// The split's permutation comes from this fixed seed, not the run's seed, so every run
// (every seed of a sweep) validates on the same images. Pass another split_seed only to
// ask for a different split on purpose.
constexpr uint64_t kDefaultSplitSeed = 0x53504c4954ull;  // "SPLIT"

struct TrainValSplit {
  std::vector<int64_t> train;  // indices into the training set, disjoint from val
  std::vector<int64_t> val;
};

// perm = randperm(n) from Generator(split_seed); val = perm[0, val_size), train =
// perm[val_size, n) — or perm[val_size, val_size + train_limit) when train_limit > 0.
// val_size must be in [0, n).
TrainValSplit split_train_val(int64_t n, int64_t val_size = 5000,
                              uint64_t split_seed = kDefaultSplitSeed, int64_t train_limit = 0);

struct TrainValDatasets {
  std::shared_ptr<Subset> train, val;
};
TrainValDatasets split_train_val(const DatasetPtr& train_set, int64_t val_size = 5000,
                                 uint64_t split_seed = kDefaultSplitSeed, int64_t train_limit = 0);

}  // namespace qilin
