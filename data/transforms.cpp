// Transforms (see transforms.h). Geometry is written once per pixel type (uint8 and float32
// images keep their type through crops, flips and resizes); resizing goes through OpenCV,
// one channel plane at a time, without copying the planes.
#include "data/transforms.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "core/error.h"
#include "core/philox.h"

namespace qilin {
namespace {

constexpr float kInv255 = 1.0f / 255.0f;

struct Chw {
  int64_t c, h, w;
};

Chw dims_of(const Tensor& image, const char* op) {
  QILIN_CHECK(image.dim() == 3, op, ": expected an image [C, H, W], got ", image.str());
  QILIN_CHECK(image.dtype() == DType::kUInt8 || image.dtype() == DType::kFloat32, op,
              ": expected uint8 or float32 pixels, got ", image.str());
  return {image.size(0), image.size(1), image.size(2)};
}

// out[c, y, x] = in[c, y + top, x + left] (mirrored along x when `mirror`), zero outside
// the input: one routine for crops with padding, centre crops and flips.
template <typename T>
void shifted_copy(const T* in, T* out, Chw src, int64_t out_h, int64_t out_w, int64_t top, int64_t left,
                  bool mirror) {
  for (int64_t c = 0; c < src.c; ++c) {
    const T* plane = in + c * src.h * src.w;
    T* dst = out + c * out_h * out_w;
    for (int64_t y = 0; y < out_h; ++y) {
      const int64_t sy = y + top;
      T* row = dst + y * out_w;
      if (sy < 0 || sy >= src.h) {
        std::fill(row, row + out_w, T(0));
        continue;
      }
      const T* srow = plane + sy * src.w;
      for (int64_t x = 0; x < out_w; ++x) {
        const int64_t sx = (mirror ? out_w - 1 - x : x) + left;
        row[x] = (sx >= 0 && sx < src.w) ? srow[sx] : T(0);
      }
    }
  }
}

Tensor shifted(const Tensor& image, Chw src, int64_t out_h, int64_t out_w, int64_t top, int64_t left,
               bool mirror) {
  Tensor out = Tensor::empty({src.c, out_h, out_w}, image.dtype());
  if (image.dtype() == DType::kUInt8) {
    shifted_copy(image.data<uint8_t>(), out.data<uint8_t>(), src, out_h, out_w, top, left, mirror);
  } else {
    shifted_copy(image.data<float>(), out.data<float>(), src, out_h, out_w, top, left, mirror);
  }
  return out;
}

// Bilinear resize of the window rows [top, top + h) x cols [left, left + w) of every plane.
Tensor resize_window(const Tensor& image, Chw src, int64_t top, int64_t left, int64_t h, int64_t w,
                     int64_t out_h, int64_t out_w) {
  QILIN_CHECK(out_h >= 1 && out_w >= 1 && h >= 1 && w >= 1, "resize: ", h, "x", w, " -> ", out_h, "x", out_w);
  const bool u8 = image.dtype() == DType::kUInt8;
  const int type = u8 ? CV_8UC1 : CV_32FC1;
  const size_t elem = u8 ? 1 : 4;
  Tensor out = Tensor::empty({src.c, out_h, out_w}, image.dtype());
  const auto* in_bytes = static_cast<const uint8_t*>(image.raw_data());
  auto* out_bytes = static_cast<uint8_t*>(out.raw_data());
  for (int64_t c = 0; c < src.c; ++c) {
    // cv::Mat over our memory (no copy); the const_cast is for the Mat type only: `plane` is
    // read, never written.
    cv::Mat plane(static_cast<int>(src.h), static_cast<int>(src.w), type,
                  const_cast<uint8_t*>(in_bytes + c * src.h * src.w * elem));
    cv::Mat window = plane(cv::Rect(static_cast<int>(left), static_cast<int>(top), static_cast<int>(w),
                                    static_cast<int>(h)));
    cv::Mat dst(static_cast<int>(out_h), static_cast<int>(out_w), type, out_bytes + c * out_h * out_w * elem);
    if (h == out_h && w == out_w) {
      window.copyTo(dst);
    } else {
      cv::resize(window, dst, dst.size(), 0, 0, cv::INTER_LINEAR);
    }
  }
  return out;
}

// Python's round(): half to even (the default FP rounding mode).
int64_t round_half_even(double v) { return static_cast<int64_t>(std::nearbyint(v)); }

}  // namespace

// ---- SampleRng ----

SampleRng::SampleRng(uint64_t key, uint64_t epoch, uint64_t index)
    : key_(key), epoch_(static_cast<uint32_t>(epoch)), index_(index) {}

uint32_t SampleRng::bits() {
  if (lane_ == 4) {
    philox::Block counter{{block_++, epoch_, static_cast<uint32_t>(index_), static_cast<uint32_t>(index_ >> 32)}};
    const philox::Block b =
        philox::philox4x32_10(counter, static_cast<uint32_t>(key_), static_cast<uint32_t>(key_ >> 32));
    std::memcpy(lanes_, b.v, sizeof(lanes_));
    lane_ = 0;
  }
  return lanes_[lane_++];
}

float SampleRng::uniform() { return philox::to_unit(bits()); }

double SampleRng::uniform_double() {
  const uint64_t hi = bits(), lo = bits();
  return static_cast<double>(((hi << 32) | lo) >> 11) * 0x1p-53;
}

int64_t SampleRng::integer(int64_t n) {
  QILIN_CHECK(n >= 1, "SampleRng::integer: n = ", n);
  const uint64_t hi = bits(), lo = bits();
  const uint64_t r = (hi << 32) | lo;
  return static_cast<int64_t>((static_cast<unsigned __int128>(r) * static_cast<uint64_t>(n)) >> 64);
}

double SampleRng::normal() {
  constexpr double kTwoPi = 6.283185307179586476925286766559;
  const double u1 = 1.0 - uniform_double();  // (0, 1]: log() never sees 0
  const double u2 = uniform_double();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(kTwoPi * u2);
}

double SampleRng::gamma(double shape) {
  QILIN_CHECK(shape > 0.0, "SampleRng::gamma: shape = ", shape);
  if (shape < 1.0) {
    // Gamma(a) = Gamma(a + 1) * U^(1/a) (Marsaglia & Tsang 2000, §6).
    const double g = gamma(shape + 1.0);
    const double u = 1.0 - uniform_double();
    return g * std::pow(u, 1.0 / shape);
  }
  // Marsaglia & Tsang, "A simple method for generating gamma variables", ACM TOMS 2000.
  const double d = shape - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
  for (;;) {
    double x, v;
    do {
      x = normal();
      v = 1.0 + c * x;
    } while (v <= 0.0);
    v = v * v * v;
    const double u = uniform_double();
    if (u < 1.0 - 0.0331 * x * x * x * x) return d * v;
    if (std::log(u) < 0.5 * x * x + d * (1.0 - v + std::log(v))) return d * v;
  }
}

double SampleRng::beta(double a, double b) {
  const double x = gamma(a), y = gamma(b);
  // Both can underflow to 0 for tiny shapes: then the mass sits at the ends, P(1) = a/(a+b).
  if (x + y == 0.0) return uniform_double() < a / (a + b) ? 1.0 : 0.0;
  return x / (x + y);
}

// ---- per-image transforms ----

Tensor ToFloat::operator()(const Tensor& image, SampleRng&) const {
  const Chw d = dims_of(image, "ToFloat");
  if (image.dtype() == DType::kFloat32) return image;
  Tensor out = Tensor::empty({d.c, d.h, d.w});
  const uint8_t* in = image.data<uint8_t>();
  float* o = out.data<float>();
  for (int64_t i = 0; i < out.numel(); ++i) o[i] = static_cast<float>(in[i]) * kInv255;
  return out;
}

Tensor Normalize::operator()(const Tensor& image, SampleRng&) const {
  const Chw d = dims_of(image, "Normalize");
  QILIN_CHECK(!mean.empty() && mean.size() == std.size() &&
                  (mean.size() == 1 || static_cast<int64_t>(mean.size()) == d.c),
              "Normalize: ", mean.size(), " means and ", std.size(), " stds for an image of ", d.c,
              " channels (expected 1 or ", d.c, " of each)");
  Tensor out = Tensor::empty({d.c, d.h, d.w});
  float* o = out.data<float>();
  const int64_t plane = d.h * d.w;
  for (int64_t c = 0; c < d.c; ++c) {
    const size_t k = mean.size() == 1 ? 0 : static_cast<size_t>(c);
    QILIN_CHECK(std[k] > 0.0f, "Normalize: std[", k, "] = ", std[k], " must be > 0");
    const float m = mean[k], inv_s = 1.0f / std[k];
    float* oc = o + c * plane;
    if (image.dtype() == DType::kUInt8) {
      const uint8_t* in = image.data<uint8_t>() + c * plane;
      for (int64_t i = 0; i < plane; ++i) oc[i] = (static_cast<float>(in[i]) * kInv255 - m) * inv_s;
    } else {
      const float* in = image.data<float>() + c * plane;
      for (int64_t i = 0; i < plane; ++i) oc[i] = (in[i] - m) * inv_s;
    }
  }
  return out;
}

Tensor RandomCrop::operator()(const Tensor& image, SampleRng& rng) const {
  const Chw d = dims_of(image, "RandomCrop");
  const int64_t out_h = height > 0 ? height : d.h, out_w = width > 0 ? width : d.w;
  QILIN_CHECK(padding >= 0 && d.h + 2 * padding >= out_h && d.w + 2 * padding >= out_w, "RandomCrop: a ", out_h,
              "x", out_w, " crop of a ", d.h, "x", d.w, " image padded by ", padding);
  const int64_t top = rng.integer(d.h + 2 * padding - out_h + 1);
  const int64_t left = rng.integer(d.w + 2 * padding - out_w + 1);
  return shifted(image, d, out_h, out_w, top - padding, left - padding, false);
}

Tensor HorizontalFlip::operator()(const Tensor& image, SampleRng& rng) const {
  const Chw d = dims_of(image, "HorizontalFlip");
  if (!(rng.uniform() < p)) return image;
  return shifted(image, d, d.h, d.w, 0, 0, true);
}

Tensor Resize::operator()(const Tensor& image, SampleRng&) const {
  const Chw d = dims_of(image, "Resize");
  int64_t out_h = height, out_w = width;
  if (mode == Mode::kShorterSide) {
    // torchvision _compute_resized_output_size: the long side is int(size * long / short).
    QILIN_CHECK(height >= 1, "Resize: shorter side ", height);
    if (d.w <= d.h) {
      out_w = height;
      out_h = static_cast<int64_t>(static_cast<double>(height) * d.h / d.w);
    } else {
      out_h = height;
      out_w = static_cast<int64_t>(static_cast<double>(height) * d.w / d.h);
    }
  }
  QILIN_CHECK(out_h >= 1 && out_w >= 1, "Resize: to ", out_h, "x", out_w);
  return resize_window(image, d, 0, 0, d.h, d.w, out_h, out_w);
}

Tensor RandomResizedCrop::operator()(const Tensor& image, SampleRng& rng) const {
  const Chw d = dims_of(image, "RandomResizedCrop");
  QILIN_CHECK(height >= 1 && width >= 1 && scale_min > 0 && scale_min <= scale_max && ratio_min > 0 &&
                  ratio_min <= ratio_max,
              "RandomResizedCrop: size ", height, "x", width, ", scale [", scale_min, ", ", scale_max, "], ratio [",
              ratio_min, ", ", ratio_max, "]");
  // torchvision transforms.RandomResizedCrop.get_params.
  constexpr int kTries = 10;
  const double area = static_cast<double>(d.h * d.w);
  const double log_r0 = std::log(ratio_min), log_r1 = std::log(ratio_max);
  int64_t top = -1, left = 0, h = 0, w = 0;
  for (int t = 0; t < kTries && top < 0; ++t) {
    const double target_area = area * (scale_min + (scale_max - scale_min) * rng.uniform_double());
    const double aspect = std::exp(log_r0 + (log_r1 - log_r0) * rng.uniform_double());
    w = round_half_even(std::sqrt(target_area * aspect));
    h = round_half_even(std::sqrt(target_area / aspect));
    if (w > 0 && w <= d.w && h > 0 && h <= d.h) {
      top = rng.integer(d.h - h + 1);
      left = rng.integer(d.w - w + 1);
    }
  }
  if (top < 0) {  // the central crop, clamped to the ratio range
    const double in_ratio = static_cast<double>(d.w) / static_cast<double>(d.h);
    if (in_ratio < ratio_min) {
      w = d.w;
      h = round_half_even(static_cast<double>(w) / ratio_min);
    } else if (in_ratio > ratio_max) {
      h = d.h;
      w = round_half_even(static_cast<double>(h) * ratio_max);
    } else {
      w = d.w;
      h = d.h;
    }
    top = (d.h - h) / 2;
    left = (d.w - w) / 2;
  }
  return resize_window(image, d, top, left, h, w, height, width);
}

Tensor CenterCrop::operator()(const Tensor& image, SampleRng&) const {
  const Chw d = dims_of(image, "CenterCrop");
  QILIN_CHECK(height >= 1 && width >= 1, "CenterCrop: size ", height, "x", width);
  // torchvision F.center_crop: pad a too-small image ((crop - size) // 2 before), then crop
  // at round((size - crop) / 2).
  const int64_t pad_top = height > d.h ? (height - d.h) / 2 : 0;
  const int64_t pad_left = width > d.w ? (width - d.w) / 2 : 0;
  const int64_t padded_h = std::max(d.h, height), padded_w = std::max(d.w, width);
  const int64_t top = round_half_even(static_cast<double>(padded_h - height) / 2.0);
  const int64_t left = round_half_even(static_cast<double>(padded_w - width) / 2.0);
  return shifted(image, d, height, width, top - pad_top, left - pad_left, false);
}

Tensor Compose::operator()(const Tensor& image, SampleRng& rng) const {
  Tensor x = image;
  for (const Transform& t : steps) x = std::visit([&](const auto& step) { return step(x, rng); }, t);
  return x;
}

Compose train_transform(const TransformOptions& o) {
  Compose c;
  if (o.random_resized_crop) {
    const int64_t side = o.resize > 0 ? o.resize : o.center_crop;
    QILIN_CHECK(side > 0, "train_transform: random_resized_crop needs an output size (resize or center_crop)");
    c.steps.push_back(RandomResizedCrop{side, side});
  } else if (o.resize > 0) {
    c.steps.push_back(Resize::square(o.resize));
  }
  if (o.random_crop_padding > 0) c.steps.push_back(RandomCrop{0, 0, o.random_crop_padding});
  if (o.hflip) c.steps.push_back(HorizontalFlip{0.5f});
  if (o.mean.empty()) {
    c.steps.push_back(ToFloat{});
  } else {
    c.steps.push_back(Normalize{o.mean, o.std});
  }
  return c;
}

Compose eval_transform(const TransformOptions& o) {
  Compose c;
  if (o.resize > 0) c.steps.push_back(Resize::square(o.resize));
  if (o.center_crop > 0) c.steps.push_back(CenterCrop{o.center_crop, o.center_crop});
  if (o.mean.empty()) {
    c.steps.push_back(ToFloat{});
  } else {
    c.steps.push_back(Normalize{o.mean, o.std});
  }
  return c;
}

// ---- mixup / cutmix (timm/data/mixup.py) ----

MixResult cutmix_box(int64_t height, int64_t width, double lam, SampleRng& rng) {
  // timm rand_bbox (margin 0) and cutmix_bbox_and_lam(correct_lam=True).
  const double ratio = std::sqrt(std::max(0.0, 1.0 - lam));
  const int64_t cut_h = static_cast<int64_t>(static_cast<double>(height) * ratio);
  const int64_t cut_w = static_cast<int64_t>(static_cast<double>(width) * ratio);
  const int64_t cy = rng.integer(height), cx = rng.integer(width);
  MixResult r;
  r.cutmix = true;
  r.box_top = std::clamp<int64_t>(cy - cut_h / 2, 0, height);
  r.box_bottom = std::clamp<int64_t>(cy + cut_h / 2, 0, height);
  r.box_left = std::clamp<int64_t>(cx - cut_w / 2, 0, width);
  r.box_right = std::clamp<int64_t>(cx + cut_w / 2, 0, width);
  const double box_area = static_cast<double>((r.box_bottom - r.box_top) * (r.box_right - r.box_left));
  r.lam = 1.0 - box_area / static_cast<double>(height * width);
  return r;
}

Tensor mix_batch(Tensor& images, const Tensor& labels, int64_t num_classes, const MixOptions& o,
                 SampleRng& rng, MixResult* result) {
  QILIN_CHECK(images.dim() == 4 && images.dtype() == DType::kFloat32, "mix_batch: images must be float32 [B, C, H, W], got ",
              images.str());
  const int64_t b = images.size(0), h = images.size(2), w = images.size(3);
  const int64_t chw = images.size(1) * h * w;
  QILIN_CHECK(labels.dim() == 1 && labels.dtype() == DType::kInt64 && labels.size(0) == b,
              "mix_batch: labels must be int64 [", b, "], got ", labels.str());
  QILIN_CHECK(num_classes >= 1, "mix_batch: num_classes = ", num_classes);
  QILIN_CHECK(o.mixup_alpha >= 0 && o.cutmix_alpha >= 0 && o.label_smoothing >= 0 && o.label_smoothing < 1,
              "mix_batch: mixup_alpha ", o.mixup_alpha, ", cutmix_alpha ", o.cutmix_alpha, ", label_smoothing ",
              o.label_smoothing);

  // timm Mixup._params_per_batch: one draw for `prob`, one for the switch when both are on,
  // then lam ~ Beta(alpha, alpha).
  MixResult r;
  if (o.enabled() && rng.uniform_double() < o.prob) {
    bool use_cutmix = o.mixup_alpha <= 0.0;
    if (o.mixup_alpha > 0.0 && o.cutmix_alpha > 0.0) use_cutmix = rng.uniform_double() < o.switch_prob;
    const double alpha = use_cutmix ? o.cutmix_alpha : o.mixup_alpha;
    r.lam = rng.beta(alpha, alpha);
    if (r.lam != 1.0 && use_cutmix) r = cutmix_box(h, w, r.lam, rng);
  }

  float* x = images.data<float>();
  if (r.lam != 1.0) {
    // Row i mixes with row b - 1 - i (x.flip(0)): handle the pair together, in place.
    const float lam = static_cast<float>(r.lam), one_minus = static_cast<float>(1.0 - r.lam);
    for (int64_t i = 0; i < b / 2; ++i) {
      float* xi = x + i * chw;
      float* xj = x + (b - 1 - i) * chw;
      if (r.cutmix) {
        for (int64_t c = 0; c < images.size(1); ++c) {
          for (int64_t y = r.box_top; y < r.box_bottom; ++y) {
            const int64_t off = (c * h + y) * w;
            std::swap_ranges(xi + off + r.box_left, xi + off + r.box_right, xj + off + r.box_left);
          }
        }
      } else {
        for (int64_t k = 0; k < chw; ++k) {
          const float a = xi[k], bv = xj[k];
          xi[k] = a * lam + bv * one_minus;
          xj[k] = bv * lam + a * one_minus;
        }
      }
    }
  }

  // timm mixup_target: lam * one_hot(y) + (1 - lam) * one_hot(y.flip(0)), both smoothed.
  const double off = o.label_smoothing / static_cast<double>(num_classes);
  const double on = 1.0 - o.label_smoothing + off;
  Tensor targets = Tensor::empty({b, num_classes});
  float* t = targets.data<float>();
  const int64_t* y = labels.data<int64_t>();
  for (int64_t i = 0; i < b; ++i) {
    const int64_t y1 = y[i], y2 = y[b - 1 - i];
    QILIN_CHECK(y1 >= 0 && y1 < num_classes, "mix_batch: label ", y1, " of row ", i, " outside [0, ", num_classes, ")");
    for (int64_t k = 0; k < num_classes; ++k) {
      const double p1 = k == y1 ? on : off, p2 = k == y2 ? on : off;
      t[i * num_classes + k] = static_cast<float>(r.lam * p1 + (1.0 - r.lam) * p2);
    }
  }
  if (result != nullptr) *result = r;
  return targets;
}

}  // namespace qilin
