// IDX files (the MNIST / Fashion-MNIST format, http://yann.lecun.com/exdb/mnist/): a
// big-endian header (magic 0x0000 <type> <ndims>, then ndims u32 sizes) followed by the
// raw data. Reads plain or gzipped files (gzip magic 1f 8b). Only the unsigned-byte type
// (0x08) these data sets use is supported.
//
// Not here: splitting, normalisation, batching (data/ datasets and the loader do that).
#pragma once

#include <string>

#include "core/tensor.h"

namespace qilin {

// uint8 [N, rows, cols] from an IDX3 unsigned-byte file (magic 0x00000803).
Tensor load_idx_images(const std::string& path);
// int64 [N] from an IDX1 unsigned-byte file (magic 0x00000801).
Tensor load_idx_labels(const std::string& path);

struct ImagesAndLabels {
  Tensor images;  // uint8 [N, rows, cols]
  Tensor labels;  // int64 [N], each in [0, n_classes)
};

enum class DataSplit { kTrain, kTest };

// Fashion-MNIST (Xiao et al. 2017, arXiv:1708.07747) as the Debian package
// dataset-fashion-mnist installs it: 60000 train and 10000 test 28x28 images, 10 classes.
struct FashionMnist {
  static constexpr const char* kDefaultDir = "/usr/share/datasets/fashion-mnist";
  static constexpr int64_t kClasses = 10;
  std::string dir = kDefaultDir;

  std::string images_path(DataSplit split) const;  // <dir>/{train,t10k}-images-idx3-ubyte.gz
  std::string labels_path(DataSplit split) const;  // <dir>/{train,t10k}-labels-idx1-ubyte.gz
  // Loads one split; errors name the file: a missing file (with the Debian package to
  // install when `dir` is the default), a corrupt one, images and labels that disagree in
  // count, a label outside [0, 10).
  ImagesAndLabels load(DataSplit split) const;
};

}  // namespace qilin
