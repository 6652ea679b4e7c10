#include "models/registry.h"

#include "models/mlp.h"
#include "models/regnety.h"
#include "models/resnet.h"
#include "models/vit.h"

namespace qilin {
namespace {

template <typename T>
std::vector<T> or_default(const std::vector<T>& given, std::vector<T> fallback) {
  return given.empty() ? std::move(fallback) : given;
}

ResNetSpec resnet_spec(const ModelSpec& s, ResNetStem stem, std::vector<int64_t> widths,
                       std::vector<int64_t> depths) {
  ResNetSpec r;
  r.stem = stem;
  r.widths = or_default(s.widths, std::move(widths));
  r.depths = or_default(s.depths, std::move(depths));
  r.in_chans = s.in_chans;
  r.num_classes = s.num_classes;
  r.bn_momentum = s.bn_momentum;
  r.bn_eps = s.bn_eps;
  return r;
}

}  // namespace

const std::vector<std::string>& model_arch_names() {
  static const std::vector<std::string> names{"vit", "resnet18", "resnet34", "resnet20", "regnety", "mlp"};
  return names;
}

std::shared_ptr<Layer> create_model(const ModelSpec& spec, LayerFactory& factory,
                                    Generator& init_gen) {
  const std::string& a = spec.arch;
  if (a == "vit") return std::make_shared<VisionTransformer>(spec, factory, init_gen);
  if (a == "resnet18")
    return std::make_shared<ResNet>(resnet_spec(spec, ResNetStem::kImageNet, {64, 128, 256, 512}, {2, 2, 2, 2}),
                                    factory, init_gen);
  if (a == "resnet34")
    return std::make_shared<ResNet>(resnet_spec(spec, ResNetStem::kImageNet, {64, 128, 256, 512}, {3, 4, 6, 3}),
                                    factory, init_gen);
  if (a == "resnet20")
    return std::make_shared<ResNet>(resnet_spec(spec, ResNetStem::kCifar, {16, 32, 64}, {3, 3, 3}),
                                    factory, init_gen);
  if (a == "regnety") {
    RegNetSpec r;
    r.in_chans = spec.in_chans;
    r.num_classes = spec.num_classes;
    r.stem_width = spec.stem_width;
    r.widths = or_default(spec.widths, r.widths);
    r.depths = or_default(spec.depths, r.depths);
    r.group_width = spec.group_width;
    r.bottle_ratio = spec.bottle_ratio;
    r.se_ratio = spec.se_ratio;
    r.bn_momentum = spec.bn_momentum;
    r.bn_eps = spec.bn_eps;
    return std::make_shared<RegNet>(r, factory, init_gen);
  }
  if (a == "mlp") {
    QILIN_CHECK(spec.in_chans > 0 && spec.img_size > 0, "mlp: in_chans ", spec.in_chans,
                " and img_size ", spec.img_size, " must be positive");
    return std::make_shared<MlpClassifier>(spec.in_chans * spec.img_size * spec.img_size,
                                 or_default(spec.hidden, {256, 128}), spec.num_classes, factory,
                                 init_gen);
  }
  std::string valid;
  for (const auto& n : model_arch_names()) valid += (valid.empty() ? "" : ", ") + n;
  throw Error(str_cat("model.arch = '", a, "': unknown architecture; valid: ", valid));
}

std::shared_ptr<Layer> create_model(const ModelSpec& spec, Generator& init_gen) {
  LayerFactory native;
  return create_model(spec, native, init_gen);
}

}  // namespace qilin
