// timm-style RegNetY (models/regnety.h).
#include "models/regnety.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "core/ops/elementwise.h"
#include "core/ops/pool.h"
#include "core/ops/shape.h"
#include "layers/init.h"
#include "layers/norm.h"

namespace qilin {
namespace {

// timm ConvNormAct: conv (no bias), BN, optional ReLU.
class ConvNormAct : public Layer {
 public:
  ConvNormAct(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t groups, bool act,
              const RegNetSpec& s, LayerFactory& f, Generator& gen, const std::string& path) {
    Conv2dSpec c;
    c.in_channels = in;
    c.out_channels = out;
    c.kernel = kernel;
    c.stride = stride;
    c.padding = kernel / 2;  // timm's symmetric "same"-style padding for odd kernels
    c.groups = groups;
    c.bias = false;
    conv = register_module("conv", f.conv2d(c, join_path(path, "conv")));
    init_kaiming_normal_fan_out(*conv, gen, groups);  // timm: fan_out //= groups
    bn = register_module("bn", std::make_shared<BatchNorm2d>(out, s.bn_eps, s.bn_momentum));
    if (act) this->act = register_module("act", f.activation(ActivationKind::kReLU, join_path(path, "act")));
  }
  Tensor forward(const Tensor& x) override {
    Tensor y = bn->forward(conv->forward(x));
    return act ? act->forward(y) : y;
  }
  std::string describe() const override { return "ConvNormAct"; }
  std::shared_ptr<Layer> conv, act;
  std::shared_ptr<BatchNorm2d> bn;
};

// timm SEModule: x * sigmoid(fc2(relu(fc1(mean_hw(x))))).
class SqueezeExcite : public Layer {
 public:
  SqueezeExcite(int64_t channels, int64_t reduced, LayerFactory& f, Generator& gen,
                const std::string& path) {
    Conv2dSpec c1;
    c1.in_channels = channels;
    c1.out_channels = reduced;
    Conv2dSpec c2 = c1;
    std::swap(c2.in_channels, c2.out_channels);
    fc1 = register_module("fc1", f.conv2d(c1, join_path(path, "fc1")));
    act = register_module("act", f.activation(ActivationKind::kReLU, join_path(path, "act")));
    fc2 = register_module("fc2", f.conv2d(c2, join_path(path, "fc2")));
    gate = register_module("gate", f.activation(ActivationKind::kSigmoid, join_path(path, "gate")));
    init_kaiming_normal_fan_out(*fc1, gen);  // timm _init_weights: every Conv2d, bias zero
    init_kaiming_normal_fan_out(*fc2, gen);
  }
  Tensor forward(const Tensor& x) override {
    Tensor s = adaptive_avg_pool2d(x, 1, 1);  // [B, C, 1, 1]
    s = fc2->forward(act->forward(fc1->forward(s)));
    return x * gate->forward(s);  // broadcast over H, W
  }
  std::string describe() const override { return "SqueezeExcite"; }
  std::shared_ptr<Layer> fc1, act, fc2, gate;
};

// timm regnet.Bottleneck.
class Bottleneck : public Layer {
 public:
  Bottleneck(int64_t in, int64_t out, int64_t stride, const RegNetSpec& s, LayerFactory& f,
             Generator& gen, const std::string& path) {
    // timm: bottleneck_chs = int(round(out_chs * bottle_ratio)); groups = bottleneck_chs // group_width
    const auto mid = static_cast<int64_t>(std::lround(static_cast<double>(out) * s.bottle_ratio));
    QILIN_CHECK(mid % s.group_width == 0, "regnety: ", path, ": bottleneck width ", mid,
                " is not a multiple of group_width ", s.group_width);
    groups_ = mid / s.group_width;
    conv1 = register_module("conv1", std::make_shared<ConvNormAct>(in, mid, 1, 1, 1, true, s, f, gen, join_path(path, "conv1")));
    conv2 = register_module("conv2", std::make_shared<ConvNormAct>(mid, mid, 3, stride, groups_, true, s, f, gen, join_path(path, "conv2")));
    if (s.se_ratio > 0.0f) {
      // timm: se_channels = int(round(in_chs * se_ratio)), applied on the bottleneck width.
      const auto reduced = std::max<int64_t>(1, std::lround(static_cast<double>(in) * s.se_ratio));
      se = register_module("se", std::make_shared<SqueezeExcite>(mid, reduced, f, gen, join_path(path, "se")));
    }
    conv3 = register_module("conv3", std::make_shared<ConvNormAct>(mid, out, 1, 1, 1, false, s, f, gen, join_path(path, "conv3")));
    act3 = register_module("act3", f.activation(ActivationKind::kReLU, join_path(path, "act3")));
    if (in != out || stride != 1)
      downsample = register_module("downsample", std::make_shared<ConvNormAct>(in, out, 1, stride, 1, false, s, f, gen, join_path(path, "downsample")));
    Tensor(conv3->bn->weight()).fill_(0.0f);  // timm Bottleneck.zero_init_last
  }
  Tensor forward(const Tensor& x) override {
    Tensor y = conv2->forward(conv1->forward(x));
    if (se) y = se->forward(y);
    y = conv3->forward(y);
    return act3->forward(y + (downsample ? downsample->forward(x) : x));
  }
  std::string describe() const override { return str_cat("Bottleneck(groups ", groups_, ")"); }
  std::shared_ptr<ConvNormAct> conv1, conv2, conv3, downsample;
  std::shared_ptr<Layer> se, act3;

 private:
  int64_t groups_ = 1;
};

// timm RegStage: blocks b1..bN, the first with the stage's stride.
class RegStage : public Layer {
 public:
  Tensor forward(const Tensor& x) override {
    Tensor y = x;
    for (auto& b : blocks) y = b->forward(y);
    return y;
  }
  std::string describe() const override { return "RegStage"; }
  std::vector<std::shared_ptr<Bottleneck>> blocks;
};

// timm ClassifierHead: global average pool (flattened), fc.
class ClassifierHead : public Layer {
 public:
  ClassifierHead(int64_t in, int64_t classes, LayerFactory& f, Generator& gen) {
    fc = register_module("fc", f.linear(in, classes, true, "head.fc"));
    fill_normal(own_param(*fc, "weight"), gen, 0.0f, 0.01f);  // timm: Linear N(0, .01), bias 0
    own_param(*fc, "bias").fill_(0.0f);
  }
  Tensor forward(const Tensor& x) override {
    return fc->forward(flatten(adaptive_avg_pool2d(x, 1, 1), 1));
  }
  std::string describe() const override { return "ClassifierHead(avg)"; }
  std::shared_ptr<Layer> fc;
};

}  // namespace

RegNet::RegNet(const RegNetSpec& spec, LayerFactory& factory, Generator& init_gen) : spec_(spec) {
  QILIN_CHECK(!spec.widths.empty() && spec.widths.size() == spec.depths.size(),
              "regnety: widths (", spec.widths.size(), " stages) and depths (", spec.depths.size(),
              " stages) must be non-empty and of equal length");
  for (size_t i = 0; i < spec.widths.size(); ++i)
    QILIN_CHECK(spec.widths[i] > 0 && spec.depths[i] > 0, "regnety: stage ", i + 1, " width ",
                spec.widths[i], " depth ", spec.depths[i], " must be positive");
  QILIN_CHECK(spec.group_width > 0 && spec.stem_width > 0 && spec.bottle_ratio > 0.0f &&
                  spec.se_ratio >= 0.0f && spec.in_chans > 0 && spec.num_classes > 0,
              "regnety: group_width ", spec.group_width, ", stem_width ", spec.stem_width,
              ", bottle_ratio ", spec.bottle_ratio, ", se_ratio ", spec.se_ratio, ", in_chans ",
              spec.in_chans, ", num_classes ", spec.num_classes, " out of range");

  // Weights are initialised as each layer is built (timm regnet._init_weights and
  // Bottleneck.zero_init_last), in module order.
  stem_ = register_module("stem", std::make_shared<ConvNormAct>(spec.in_chans, spec.stem_width, 3, 2, 1,
                                                              true, spec, factory, init_gen, "stem"));
  int64_t in = spec.stem_width;
  for (size_t i = 0; i < spec.widths.size(); ++i) {
    const std::string name = str_cat("s", i + 1);
    auto stage = std::make_shared<RegStage>();
    for (int64_t j = 0; j < spec.depths[i]; ++j) {
      auto block = std::make_shared<Bottleneck>(in, spec.widths[i], j == 0 ? 2 : 1, spec, factory,
                                                init_gen, str_cat(name, ".b", j + 1));
      stage->blocks.push_back(stage->register_module(str_cat("b", j + 1), block));
      in = spec.widths[i];
    }
    stages_.push_back(register_module(name, stage));
  }
  head_ = register_module("head", std::make_shared<ClassifierHead>(in, spec.num_classes, factory, init_gen));
}

Tensor RegNet::forward(const Tensor& images) {
  QILIN_CHECK(images.dim() == 4 && images.size(1) == spec_.in_chans, "regnety: images must be [B, ",
              spec_.in_chans, ", H, W], got ", shape_str(images.shape()));
  Tensor x = stem_->forward(images);
  for (auto& stage : stages_) x = stage->forward(x);
  return head_->forward(x);
}

std::string RegNet::describe() const {
  std::string widths, depths;
  for (size_t i = 0; i < spec_.widths.size(); ++i) {
    widths += (i ? "/" : "") + std::to_string(spec_.widths[i]);
    depths += (i ? "/" : "") + std::to_string(spec_.depths[i]);
  }
  return str_cat("RegNetY(stem ", spec_.stem_width, ", widths ", widths, ", depths ", depths,
                 ", group width ", spec_.group_width, ", se_ratio ", spec_.se_ratio,
                 ", classes ", spec_.num_classes, ")");
}

}  // namespace qilin

