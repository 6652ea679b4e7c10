// Data sets (see datasets.h). The in-memory ones (IDX, CIFAR-10) read their files once in
// the factory and hand out views; the image folder lists files up front and decodes on
// get(); the synthetic set computes each example from (seed, index).
#include "data/datasets.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "core/error.h"
#include "core/random.h"
#include "data/transforms.h"

namespace qilin {
namespace fs = std::filesystem;
namespace {

constexpr const char* kFashionMnistPackage = "dataset-fashion-mnist";
constexpr int64_t kMnistClasses = 10;

bool is_regular_file(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

const char* split_name(DataSplit split) { return split == DataSplit::kTrain ? "train" : "test"; }

// Labels of a freshly read file must lie in [0, classes): the file is named when not.
void check_labels(const Tensor& labels, int64_t classes, const std::string& file,
                  const std::string& dataset) {
  const int64_t* l = labels.data<int64_t>();
  for (int64_t i = 0; i < labels.numel(); ++i) {
    if (l[i] < 0 || l[i] >= classes) {
      throw Error(str_cat(dataset, " file ", file, ": label ", i, " is ", l[i], ": expected [0, ",
                          classes, ")"));
    }
  }
}

// MNIST-layout IDX pair of one split in `dir`: <stem>.gz preferred, else <stem>.
std::shared_ptr<TensorDataset> load_mnist_layout(DataSplit split, const std::string& dir,
                                                 const std::string& dataset,
                                                 const char* debian_package,
                                                 const std::string& default_dir) {
  const std::string prefix = split == DataSplit::kTrain ? "train" : "t10k";
  auto resolve = [&](const std::string& stem) {
    const std::string base = dir + "/" + prefix + stem;
    if (is_regular_file(base + ".gz")) return base + ".gz";
    if (is_regular_file(base)) return base;
    std::string msg = str_cat(dataset, " file ", base, ".gz (or ", base, ") is missing: expected ",
                              "the four IDX files {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] in ",
                              dir);
    if (debian_package != nullptr) {
      msg += dir == default_dir
                 ? str_cat("; they come from the Debian package ", debian_package, " (apt-get install ",
                           debian_package, ", or run scripts/setup.sh)")
                 : str_cat(" (the Debian package ", debian_package, " installs them in ", default_dir, ")");
    }
    throw Error(msg);
  };
  const std::string images_file = resolve("-images-idx3-ubyte");
  const std::string labels_file = resolve("-labels-idx1-ubyte");
  Tensor images = load_idx_images(images_file);
  Tensor labels = load_idx_labels(labels_file);
  if (images.size(0) != labels.size(0)) {
    throw Error(str_cat(dataset, ": ", images_file, " holds ", images.size(0), " images but ",
                        labels_file, " holds ", labels.size(0), " labels"));
  }
  check_labels(labels, kMnistClasses, labels_file, dataset);
  return std::make_shared<TensorDataset>(images, labels, kMnistClasses,
                                         str_cat(dataset, " ", split_name(split), " (", dir, ")"));
}

bool has_image_extension(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  static const char* const kExtensions[] = {".jpg", ".jpeg", ".png", ".bmp", ".ppm",
                                            ".pgm", ".tif", ".tiff", ".webp"};
  for (const char* e : kExtensions)
    if (ext == e) return true;
  return false;
}

void check_index(int64_t index, int64_t size, const Dataset& d) {
  QILIN_CHECK(index >= 0 && index < size, d.name(), ": index ", index, " out of [0, ", size, ")");
}

}  // namespace

// ---- TensorDataset ----

TensorDataset::TensorDataset(Tensor images, Tensor labels, int64_t num_classes, std::string name)
    : images_(std::move(images)), labels_(std::move(labels)), num_classes_(num_classes),
      name_(std::move(name)) {
  QILIN_CHECK(images_.dim() == 3 || images_.dim() == 4, name_, ": images must be [N, H, W] or [N, C, H, W], got ",
              images_.str());
  QILIN_CHECK(images_.dtype() == DType::kUInt8 || images_.dtype() == DType::kFloat32, name_,
              ": images must be uint8 or float32, got ", images_.str());
  QILIN_CHECK(labels_.dim() == 1 && labels_.dtype() == DType::kInt64 && labels_.size(0) == images_.size(0),
              name_, ": labels must be int64 [", images_.size(0), "], got ", labels_.str());
  QILIN_CHECK(num_classes_ >= 1, name_, ": num_classes = ", num_classes_);
  size_ = images_.size(0);
  image_shape_ = images_.dim() == 3 ? Shape{1, images_.size(1), images_.size(2)}
                                    : Shape{images_.size(1), images_.size(2), images_.size(3)};
  const int64_t* l = labels_.data<int64_t>();
  for (int64_t i = 0; i < size_; ++i) {
    QILIN_CHECK(l[i] >= 0 && l[i] < num_classes_, name_, ": label ", i, " is ", l[i], ", outside [0, ",
                num_classes_, ")");
  }
}

Example TensorDataset::get(int64_t index) const {
  check_index(index, size_, *this);
  const int64_t per_image = shape_numel(image_shape_);
  TensorImpl* src = images_.impl();
  // A view of row `index` (no autograd: data never requires grad).
  Tensor view(std::make_shared<TensorImpl>(src->storage, src->offset + index * per_image,
                                           image_shape_, images_.dtype()));
  return {view, labels_.data<int64_t>()[index]};
}

int64_t TensorDataset::label(int64_t index) const {
  check_index(index, size_, *this);
  return labels_.data<int64_t>()[index];
}

// ---- IDX and CIFAR-10 ----

std::shared_ptr<TensorDataset> fashion_mnist(DataSplit split, const std::string& dir) {
  return load_mnist_layout(split, dir, "Fashion-MNIST", kFashionMnistPackage, FashionMnist::kDefaultDir);
}

std::shared_ptr<TensorDataset> mnist(DataSplit split, const std::string& dir) {
  return load_mnist_layout(split, dir, "MNIST", nullptr, "");
}

ImagesAndLabels load_cifar10_batch(const std::string& file) {
  constexpr int64_t kSide = 32, kChannels = 3, kPixels = kChannels * kSide * kSide;  // 3072
  constexpr int64_t kRecord = 1 + kPixels;                                          // 3073
  std::FILE* f = std::fopen(file.c_str(), "rb");
  if (f == nullptr) {
    throw Error(str_cat("CIFAR-10 file ", file, " cannot be opened (", std::strerror(errno),
                        "): expected a CIFAR-10 binary batch"));
  }
  struct stat st;
  if (::fstat(::fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
    std::fclose(f);
    throw Error(str_cat("CIFAR-10 file ", file, ": not a regular file"));
  }
  const auto bytes = static_cast<int64_t>(st.st_size);
  if (bytes == 0 || bytes % kRecord != 0) {
    std::fclose(f);
    throw Error(str_cat("CIFAR-10 file ", file, ": ", bytes, " bytes is not a whole number of ", kRecord,
                        "-byte records (1 label byte + 3072 pixel bytes; a full batch is ", 10000 * kRecord,
                        " bytes): truncated or not a CIFAR-10 binary batch"));
  }
  std::vector<uint8_t> data(static_cast<size_t>(bytes));
  const size_t got = std::fread(data.data(), 1, data.size(), f);
  std::fclose(f);
  if (got != data.size()) throw Error(str_cat("CIFAR-10 file ", file, ": read error after ", got, " bytes"));
  const int64_t n = bytes / kRecord;
  ImagesAndLabels out;
  out.images = Tensor::empty({n, kChannels, kSide, kSide}, DType::kUInt8);
  out.labels = Tensor::empty({n}, DType::kInt64);
  uint8_t* img = out.images.data<uint8_t>();
  int64_t* lab = out.labels.data<int64_t>();
  for (int64_t r = 0; r < n; ++r) {
    const uint8_t* rec = data.data() + r * kRecord;
    if (rec[0] >= kCifar10Classes) {
      throw Error(str_cat("CIFAR-10 file ", file, ": record ", r, " has label ", int{rec[0]},
                          ": expected [0, 10) (is this the CIFAR-100 binary version?)"));
    }
    lab[r] = rec[0];
    std::memcpy(img + r * kPixels, rec + 1, kPixels);
  }
  return out;
}

std::shared_ptr<TensorDataset> cifar10(DataSplit split, const std::string& dir) {
  std::vector<std::string> files;
  if (split == DataSplit::kTrain) {
    for (int i = 1; i <= 5; ++i) files.push_back(str_cat(dir, "/data_batch_", i, ".bin"));
  } else {
    files.push_back(dir + "/test_batch.bin");
  }
  for (const std::string& file : files) {
    if (is_regular_file(file)) continue;
    throw Error(str_cat("CIFAR-10 file ", file, " is missing: expected the binary version's data_batch_1.bin .. "
                        "data_batch_5.bin and test_batch.bin in ", dir, " (cifar-10-binary.tar.gz from "
                        "https://www.cs.toronto.edu/~kriz/cifar.html)"));
  }
  std::vector<ImagesAndLabels> parts;
  int64_t total = 0;
  for (const std::string& file : files) {
    parts.push_back(load_cifar10_batch(file));
    total += parts.back().labels.size(0);
  }
  ImagesAndLabels all = parts.size() == 1 ? parts[0] : ImagesAndLabels{};
  if (parts.size() > 1) {
    all.images = Tensor::empty({total, 3, 32, 32}, DType::kUInt8);
    all.labels = Tensor::empty({total}, DType::kInt64);
    int64_t row = 0;
    for (const ImagesAndLabels& p : parts) {
      const int64_t n = p.labels.size(0);
      std::memcpy(all.images.data<uint8_t>() + row * 3072, p.images.data<uint8_t>(), static_cast<size_t>(n) * 3072);
      std::memcpy(all.labels.data<int64_t>() + row, p.labels.data<int64_t>(), static_cast<size_t>(n) * sizeof(int64_t));
      row += n;
    }
  }
  return std::make_shared<TensorDataset>(all.images, all.labels, kCifar10Classes,
                                         str_cat("CIFAR-10 ", split_name(split), " (", dir, ")"));
}

// ---- ImageFolderDataset ----

ImageFolderDataset::ImageFolderDataset(const std::string& root, ImageFolderOptions options)
    : root_(root), options_(options) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) {
    throw Error(str_cat("image folder ", root, ": ", fs::exists(root, ec) ? "not a directory" : "does not exist",
                        ": expected one sub-folder of images per class"));
  }
  for (const fs::directory_entry& e : fs::directory_iterator(root, ec)) {
    if (fs::is_directory(e.path(), ec)) classes_.push_back(e.path().filename().string());
  }
  if (ec) throw Error(str_cat("image folder ", root, ": cannot list: ", ec.message()));
  if (classes_.empty()) {
    throw Error(str_cat("image folder ", root, ": no class sub-folders: expected <root>/<class>/<image> "
                        "(JPEG, PNG, ...)"));
  }
  std::sort(classes_.begin(), classes_.end());  // byte order, as torchvision's sorted()
  for (size_t c = 0; c < classes_.size(); ++c) {
    const fs::path dir = fs::path(root) / classes_[c];
    std::vector<std::string> found;
    fs::recursive_directory_iterator it(dir, fs::directory_options::follow_directory_symlink, ec);
    for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (!it->is_directory(ec) && has_image_extension(it->path())) found.push_back(it->path().string());
    }
    if (ec) throw Error(str_cat("image folder ", dir.string(), ": cannot list: ", ec.message()));
    if (found.empty()) {
      throw Error(str_cat("image folder ", root, ": class folder ", dir.string(),
                          " holds no image files (.jpg, .jpeg, .png, .bmp, .ppm, .pgm, .tif, .tiff, .webp)"));
    }
    std::sort(found.begin(), found.end());
    for (std::string& f : found) {
      files_.push_back(std::move(f));
      labels_.push_back(static_cast<int64_t>(c));
    }
  }
}

const std::string& ImageFolderDataset::path(int64_t index) const {
  check_index(index, size(), *this);
  return files_[static_cast<size_t>(index)];
}

int64_t ImageFolderDataset::label(int64_t index) const {
  check_index(index, size(), *this);
  return labels_[static_cast<size_t>(index)];
}

Example ImageFolderDataset::get(int64_t index) const {
  const std::string& file = path(index);
  cv::Mat mat;
  try {
    mat = cv::imread(file, options_.grayscale ? cv::IMREAD_GRAYSCALE : cv::IMREAD_COLOR);
  } catch (const cv::Exception& e) {
    throw Error(str_cat("image file ", file, ": cannot decode: ", e.what()));
  }
  if (mat.empty()) {
    throw Error(str_cat("image file ", file, ": ",
                        is_regular_file(file) ? "cannot decode: not a readable JPEG/PNG/BMP/PPM/TIFF/WebP image "
                                                "(corrupt or truncated?)"
                                              : "cannot open (removed since the folder was listed?)"));
  }
  QILIN_CHECK(mat.depth() == CV_8U, "image file ", file, ": decoded to depth ", mat.depth(), ", expected 8-bit");
  const int64_t channels = mat.channels(), h = mat.rows, w = mat.cols;
  Tensor image = Tensor::empty({channels, h, w}, DType::kUInt8);
  uint8_t* out = image.data<uint8_t>();
  for (int64_t y = 0; y < h; ++y) {
    const uint8_t* row = mat.ptr<uint8_t>(static_cast<int>(y));
    for (int64_t x = 0; x < w; ++x) {
      for (int64_t c = 0; c < channels; ++c) {
        // OpenCV decodes to BGR: channel c of RGB is OpenCV's channel (C - 1 - c).
        out[(c * h + y) * w + x] = row[x * channels + (channels - 1 - c)];
      }
    }
  }
  return {image, labels_[static_cast<size_t>(index)]};
}

// ---- SyntheticDataset ----

namespace {
// Streams of SampleRng(seed ^ kSyntheticKey, part, index): label and pixels of example i.
constexpr uint64_t kSyntheticKey = 0x53594e54ull;  // "SYNT"
}  // namespace

SyntheticDataset::SyntheticDataset(SyntheticOptions options) : options_(options) {
  QILIN_CHECK(options_.size >= 0 && options_.channels >= 1 && options_.height >= 1 && options_.width >= 1 &&
                  options_.num_classes >= 1,
              "synthetic data set: size ", options_.size, ", image ", options_.channels, "x", options_.height,
              "x", options_.width, ", ", options_.num_classes, " classes");
}

std::string SyntheticDataset::name() const {
  return str_cat("synthetic (", options_.size, " images ", options_.channels, "x", options_.height, "x",
                 options_.width, ", seed ", options_.seed, ")");
}

int64_t SyntheticDataset::label(int64_t index) const {
  check_index(index, size(), *this);
  SampleRng rng(options_.seed ^ kSyntheticKey, 0, static_cast<uint64_t>(index));
  return rng.integer(options_.num_classes);
}

Example SyntheticDataset::get(int64_t index) const {
  const int64_t lab = label(index);
  SampleRng rng(options_.seed ^ kSyntheticKey, 1, static_cast<uint64_t>(index));
  Tensor image = Tensor::empty({options_.channels, options_.height, options_.width});
  float* p = image.data<float>();
  const int64_t n = image.numel();
  for (int64_t k = 0; k < n; ++k) p[k] = static_cast<float>(rng.normal());
  for (int64_t k = lab; k < n; k += options_.num_classes) p[k] += options_.pattern_brightness;
  return {image, lab};
}

// ---- Subset and the split ----

Subset::Subset(DatasetPtr base, std::vector<int64_t> indices) : base_(std::move(base)), indices_(std::move(indices)) {
  QILIN_CHECK(base_ != nullptr, "Subset of a null data set");
  const int64_t n = base_->size();
  for (int64_t i : indices_) QILIN_CHECK(i >= 0 && i < n, "Subset of ", base_->name(), ": index ", i, " out of [0, ", n, ")");
}

std::string Subset::name() const { return str_cat(base_->name(), " [", indices_.size(), " of ", base_->size(), "]"); }

Example Subset::get(int64_t index) const {
  check_index(index, size(), *this);
  return base_->get(indices_[static_cast<size_t>(index)]);
}

int64_t Subset::label(int64_t index) const {
  check_index(index, size(), *this);
  return base_->label(indices_[static_cast<size_t>(index)]);
}

TrainValSplit split_train_val(int64_t n, int64_t val_size, uint64_t split_seed, int64_t train_limit) {
  if (val_size < 0 || val_size >= n) {
    throw Error(str_cat("validation split: val_size = ", val_size, " must be in [0, ", n,
                        ") for a training set of ", n, " images"));
  }
  QILIN_CHECK(train_limit >= 0, "split_train_val: train_limit = ", train_limit);
  Generator gen(split_seed);
  Tensor perm = randperm(n, gen);
  const int64_t* p = perm.data<int64_t>();
  const int64_t end = train_limit > 0 ? std::min(n, val_size + train_limit) : n;
  TrainValSplit split;
  split.val.assign(p, p + val_size);
  split.train.assign(p + val_size, p + end);
  return split;
}

TrainValDatasets split_train_val(const DatasetPtr& train_set, int64_t val_size, uint64_t split_seed,
                                 int64_t train_limit) {
  TrainValSplit s = split_train_val(train_set->size(), val_size, split_seed, train_limit);
  return {std::make_shared<Subset>(train_set, std::move(s.train)),
          std::make_shared<Subset>(train_set, std::move(s.val))};
}

}  // namespace qilin
