// Image transforms: typed structs applied to one image [C, H, W] (uint8 or float32) with a
// per-sample random stream, composed by Compose; and the batch-level mixup / cutmix.
//
// Determinism: a transform draws only from the SampleRng it is given. The loader makes one
// per sample from (seed, epoch, index), so an image's augmentation depends on nothing else
// (not on the worker that builds it, nor on the batch it lands in).
//
// Conventions follow torchvision: uint8 pixels become float in [0, 1] (÷255) before
// Normalize; padding is zeros in the image's own value range, before normalisation.
// Resize and RandomResizedCrop are bilinear (cv::resize INTER_LINEAR, half-pixel centres,
// no antialiasing). No transform writes its input (it may return it unchanged).
//
// Not here: data sets (data/datasets.h), batching and threads (data/loader.h).
#pragma once

#include <cstdint>
#include <variant>
#include <vector>

#include "core/tensor.h"

namespace qilin {

// Per-sample random numbers: Philox4x32-10 (core/random.h's generator) keyed by `key`, with
// the 128-bit counter {block, epoch, index_lo, index_hi}: the streams of different
// (epoch, index) pairs never overlap, and each is reproducible alone.
class SampleRng {
 public:
  SampleRng(uint64_t key, uint64_t epoch, uint64_t index);
  uint32_t bits();
  float uniform();                     // [0, 1), 24 random bits
  double uniform_double();             // [0, 1), 53 random bits
  int64_t integer(int64_t n);          // uniform in [0, n), n >= 1 (Lemire multiply-shift)
  double normal();                     // standard normal (Box-Muller)
  double gamma(double shape);          // Gamma(shape, 1), shape > 0 (Marsaglia-Tsang 2000)
  double beta(double a, double b);     // Beta(a, b) = X / (X + Y), X ~ G(a), Y ~ G(b)

 private:
  uint64_t key_;
  uint32_t epoch_;
  uint64_t index_;
  uint32_t block_ = 0;
  uint32_t lanes_[4] = {0, 0, 0, 0};
  int lane_ = 4;  // next unused lane of lanes_; 4: draw a new block
};

// uint8 -> float32 in [0, 1] (x / 255); float32 passes through unchanged.
struct ToFloat {
  Tensor operator()(const Tensor& image, SampleRng& rng) const;
};

// (x - mean[c]) / std[c] per channel, after ToFloat for uint8 input. One value in mean/std
// applies to every channel; otherwise one per channel (checked).
struct Normalize {
  std::vector<float> mean;
  std::vector<float> std;
  Tensor operator()(const Tensor& image, SampleRng& rng) const;
};

// torchvision RandomCrop(size, padding): zero-pad every side by `padding`, then take a
// height x width window at a uniform offset (top from integer(H + 2p - height + 1), then
// left likewise). height/width 0 mean the input's own size.
struct RandomCrop {
  int64_t height = 0, width = 0;
  int64_t padding = 0;
  Tensor operator()(const Tensor& image, SampleRng& rng) const;
};

// Mirrors along W when uniform() < p (one draw, even when p is 0 or 1).
struct HorizontalFlip {
  float p = 0.5f;
  Tensor operator()(const Tensor& image, SampleRng& rng) const;
};

// Bilinear resize. kExact: to height x width. kShorterSide: the shorter side becomes
// `height` and the other keeps the aspect ratio, int(size * long / short) as torchvision.
struct Resize {
  enum class Mode { kExact, kShorterSide };
  int64_t height = 0, width = 0;
  Mode mode = Mode::kExact;
  static Resize square(int64_t side) { return {side, side, Mode::kExact}; }
  static Resize shorter_side(int64_t side) { return {side, 0, Mode::kShorterSide}; }
  Tensor operator()(const Tensor& image, SampleRng& rng) const;
};

// torchvision RandomResizedCrop.get_params: up to 10 tries of area fraction
// uniform(scale) and log-uniform aspect ratio in `ratio`, w = round(sqrt(area * r)), h =
// round(sqrt(area / r)), top and left uniform; else the centre crop clamped to the ratio
// range. The crop is resized (bilinear) to height x width.
struct RandomResizedCrop {
  int64_t height = 0, width = 0;
  double scale_min = 0.08, scale_max = 1.0;
  double ratio_min = 3.0 / 4.0, ratio_max = 4.0 / 3.0;
  Tensor operator()(const Tensor& image, SampleRng& rng) const;
};

// torchvision CenterCrop: top = round((H - height) / 2) (round half to even), left
// likewise; an image smaller than the crop is zero-padded first ((height - H) / 2 above).
struct CenterCrop {
  int64_t height = 0, width = 0;
  Tensor operator()(const Tensor& image, SampleRng& rng) const;
};

using Transform =
    std::variant<ToFloat, Normalize, RandomCrop, HorizontalFlip, Resize, RandomResizedCrop, CenterCrop>;

// The steps in order. An empty Compose returns the image as it is.
struct Compose {
  std::vector<Transform> steps;
  Tensor operator()(const Tensor& image, SampleRng& rng) const;
  bool empty() const { return steps.empty(); }
};

// The usual pipelines from the data.transforms settings (train/config.h's
// TransformsSection carries the same fields).
struct TransformOptions {
  std::vector<float> mean, std;     // empty: no normalisation (only ÷255 for uint8)
  int64_t random_crop_padding = 0;  // 0: no random crop
  bool hflip = false;
  int64_t resize = 0;               // square side; 0: keep the image's size
  bool random_resized_crop = false; // to `resize` (or center_crop) square, torchvision defaults
  int64_t center_crop = 0;          // evaluation centre crop side; 0: none
};
// train: [RandomResizedCrop(side) | Resize(resize)] -> [RandomCrop(pad)] -> [HorizontalFlip]
//        -> ToFloat -> [Normalize]
// eval:  [Resize(resize)] -> [CenterCrop(center_crop)] -> ToFloat -> [Normalize]
Compose train_transform(const TransformOptions& options);
Compose eval_transform(const TransformOptions& options);

// ---- batch-level mixing (timm's Mixup, mode "batch") ----

// Off unless an alpha is > 0. With both on, each batch is cutmix with probability
// switch_prob, else mixup. lam ~ Beta(alpha, alpha); mixup: x = lam x + (1 - lam) x.flip(0);
// cutmix: the box of timm's rand_bbox from x.flip(0) pasted in, lam corrected to the kept
// area. Targets: lam * smooth(y) + (1 - lam) * smooth(y.flip(0)), smooth(y) = one-hot with
// label_smoothing (off = smoothing / classes, on = 1 - smoothing + off).
struct MixOptions {
  double mixup_alpha = 0.0;
  double cutmix_alpha = 0.0;
  double switch_prob = 0.5;
  double prob = 1.0;            // chance a batch is mixed at all
  double label_smoothing = 0.0;
  bool enabled() const { return mixup_alpha > 0.0 || cutmix_alpha > 0.0; }
};

struct MixResult {
  double lam = 1.0;        // the weight of the unflipped batch (after the cutmix correction)
  bool cutmix = false;
  int64_t box_top = 0, box_bottom = 0, box_left = 0, box_right = 0;  // cutmix: rows/cols [top, bottom) x [left, right)
};

// timm's rand_bbox for an H x W image and lam: cut = int(side * sqrt(1 - lam)), centre
// uniform over the image, box = centre ± cut / 2 clipped to the image.
MixResult cutmix_box(int64_t height, int64_t width, double lam, SampleRng& rng);

// Mixes `images` (float [B, C, H, W], in place) and returns the soft targets float
// [B, num_classes] for `labels` (int64 [B]); every row sums to 1. Draws from `rng` only.
Tensor mix_batch(Tensor& images, const Tensor& labels, int64_t num_classes,
                 const MixOptions& options, SampleRng& rng, MixResult* result = nullptr);

}  // namespace qilin
