// torchvision-style ResNet (models/resnet.h).
#include "models/resnet.h"

#include "core/ops/elementwise.h"
#include "core/ops/shape.h"
#include "layers/init.h"
#include "layers/norm.h"
#include "layers/pooling.h"
#include "layers/sequential.h"

namespace qilin {
namespace {

Conv2dSpec conv_spec(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding) {
  Conv2dSpec c;
  c.in_channels = in;
  c.out_channels = out;
  c.kernel = kernel;
  c.stride = stride;
  c.padding = padding;
  c.bias = false;
  return c;
}

// torchvision.models.resnet.BasicBlock: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut).
// One ReLU module used twice, as torchvision does.
class BasicBlock : public Layer {
 public:
  BasicBlock(int64_t in, int64_t width, int64_t stride, const ResNetSpec& s, LayerFactory& f,
             const std::string& path) {
    conv1 = register_module("conv1", f.conv2d(conv_spec(in, width, 3, stride, 1), join_path(path, "conv1")));
    bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(width, s.bn_eps, s.bn_momentum));
    relu = register_module("relu", f.activation(ActivationKind::kReLU, join_path(path, "relu")));
    conv2 = register_module("conv2", f.conv2d(conv_spec(width, width, 3, 1, 1), join_path(path, "conv2")));
    bn2 = register_module("bn2", std::make_shared<BatchNorm2d>(width, s.bn_eps, s.bn_momentum));
    if (stride != 1 || in != width) {
      auto down = std::make_shared<Sequential>();
      down->push_back(f.conv2d(conv_spec(in, width, 1, stride, 0), join_path(path, "downsample.0")));
      down->push_back(std::make_shared<BatchNorm2d>(width, s.bn_eps, s.bn_momentum));
      downsample = register_module("downsample", down);
    }
  }
  Tensor forward(const Tensor& x) override {
    Tensor out = relu->forward(bn1->forward(conv1->forward(x)));
    out = bn2->forward(conv2->forward(out));
    return relu->forward(out + (downsample ? downsample->forward(x) : x));
  }
  std::string describe() const override { return "BasicBlock"; }
  std::shared_ptr<Layer> conv1, bn1, relu, conv2, bn2;
  std::shared_ptr<Sequential> downsample;  // null for an identity shortcut
};

}  // namespace

ResNet::ResNet(const ResNetSpec& spec, LayerFactory& factory, Generator& init_gen) : spec_(spec) {
  QILIN_CHECK(!spec.widths.empty() && spec.widths.size() == spec.depths.size(),
              "resnet: widths (", spec.widths.size(), " stages) and depths (", spec.depths.size(),
              " stages) must be non-empty and of equal length");
  for (size_t i = 0; i < spec.widths.size(); ++i)
    QILIN_CHECK(spec.widths[i] > 0 && spec.depths[i] > 0, "resnet: stage ", i + 1, " width ",
                spec.widths[i], " depth ", spec.depths[i], " must be positive");
  QILIN_CHECK(spec.in_chans > 0 && spec.num_classes > 0, "resnet: in_chans ", spec.in_chans,
              " and num_classes ", spec.num_classes, " must be positive");

  const bool imagenet = spec.stem == ResNetStem::kImageNet;
  const int64_t stem_width = spec.widths[0];
  conv1_ = register_module("conv1", factory.conv2d(imagenet ? conv_spec(spec.in_chans, stem_width, 7, 2, 3)
                                                            : conv_spec(spec.in_chans, stem_width, 3, 1, 1),
                                                   "conv1"));
  bn1_ = register_module("bn1", std::make_shared<BatchNorm2d>(stem_width, spec.bn_eps, spec.bn_momentum));
  relu_ = register_module("relu", factory.activation(ActivationKind::kReLU, "relu"));
  if (imagenet) maxpool_ = register_module("maxpool", std::make_shared<MaxPool2d>(3, 2, 1));
  int64_t in = stem_width;
  for (size_t s = 0; s < spec.widths.size(); ++s) {
    const std::string name = str_cat("layer", s + 1);
    auto stage = std::make_shared<Sequential>();
    for (int64_t b = 0; b < spec.depths[s]; ++b) {
      const int64_t stride = (s > 0 && b == 0) ? 2 : 1;
      stage->push_back(std::make_shared<BasicBlock>(in, spec.widths[s], stride, spec, factory,
                                                    str_cat(name, ".", b)));
      in = spec.widths[s];
    }
    stages_.push_back(register_module(name, stage));
  }
  avgpool_ = register_module("avgpool", std::make_shared<AdaptiveAvgPool2d>(1, 1));
  fc_ = register_module("fc", factory.linear(in, spec.num_classes, true, "fc"));

  // torchvision ResNet.__init__: every Conv2d kaiming_normal_(fan_out, relu); BN weight 1,
  // bias 0 (their construction values); fc keeps nn.Linear's default init.
  for (auto& [name, m] : named_modules()) {
    if (m == fc_.get()) continue;
    Tensor w = m->find_tensor("weight");
    if (w.defined() && w.dim() == 4) init_kaiming_normal_fan_out(*m, init_gen);
  }
  init_torch_default(*fc_, init_gen);
}

Tensor ResNet::forward(const Tensor& images) {
  QILIN_CHECK(images.dim() == 4 && images.size(1) == spec_.in_chans, "resnet: images must be [B, ",
              spec_.in_chans, ", H, W], got ", shape_str(images.shape()));
  Tensor x = relu_->forward(bn1_->forward(conv1_->forward(images)));
  if (maxpool_) x = maxpool_->forward(x);
  for (auto& stage : stages_) x = stage->forward(x);
  return fc_->forward(flatten(avgpool_->forward(x), 1));
}

std::string ResNet::describe() const {
  std::string widths, depths;
  for (size_t i = 0; i < spec_.widths.size(); ++i) {
    widths += (i ? "/" : "") + std::to_string(spec_.widths[i]);
    depths += (i ? "/" : "") + std::to_string(spec_.depths[i]);
  }
  return str_cat("ResNet(", spec_.stem == ResNetStem::kImageNet ? "imagenet" : "cifar",
                 " stem, widths ", widths, ", blocks ", depths, ", BasicBlock, classes ",
                 spec_.num_classes, ")");
}

}  // namespace qilin
