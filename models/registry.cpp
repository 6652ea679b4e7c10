#include "models/registry.h"

#include <set>

#include "layers/conv.h"
#include "layers/norm.h"
#include "layers/quant.h"
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

// ---- BatchNorm folding ----

namespace {

// "layer1.0.bn1" -> {"layer1.0", "bn1"}; "bn1" -> {"", "bn1"}.
std::pair<std::string, std::string> split_last(const std::string& path) {
  const size_t dot = path.rfind('.');
  if (dot == std::string::npos) return {"", path};
  return {path.substr(0, dot), path.substr(dot + 1)};
}

// The conv that feeds the BN at `bn_path` under the model's naming scheme (models/resnet.h,
// models/regnety.h), or "" if the scheme has none there.
std::string feeding_conv(const Layer& model, const std::string& bn_path) {
  const auto [parent, leaf] = split_last(bn_path);
  std::string conv_leaf;
  if (dynamic_cast<const ResNet*>(&model) != nullptr) {
    if (leaf == "bn1") conv_leaf = "conv1";
    else if (leaf == "bn2") conv_leaf = "conv2";
    else if (leaf == "1" && split_last(parent).second == "downsample") conv_leaf = "0";
  } else if (dynamic_cast<const RegNet*>(&model) != nullptr) {
    if (leaf == "bn") conv_leaf = "conv";  // ConvNormAct
  }
  if (conv_leaf.empty()) return "";
  return parent.empty() ? conv_leaf : parent + "." + conv_leaf;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> conv_bn_pairs(const Layer& model) {
  std::vector<std::pair<std::string, std::string>> pairs;
  for (const auto& [path, m] : model.named_modules()) {
    if (dynamic_cast<const BatchNorm2d*>(m) == nullptr) continue;
    std::string conv = feeding_conv(model, path);
    if (!conv.empty()) pairs.emplace_back(std::move(conv), path);
  }
  return pairs;
}

int64_t fold_batch_norms(Layer& model) {
  struct Fold {
    Conv2d* conv;
    BatchNorm2d* bn;
  };
  std::vector<Fold> folds;
  std::set<std::string> paired;
  for (const auto& [conv_path, bn_path] : conv_bn_pairs(model)) {
    auto* conv = dynamic_cast<Conv2d*>(model.find_module(conv_path));
    auto* bn = dynamic_cast<BatchNorm2d*>(model.find_module(bn_path));
    QILIN_CHECK(conv != nullptr && bn != nullptr, "fold_batch_norms: ", model.describe(), ": pair ",
                conv_path, " / ", bn_path, " is not a Conv2d and a BatchNorm2d");
    QILIN_CHECK(!bn->folded(), "fold_batch_norms: ", bn_path, " is already folded");
    QILIN_CHECK(conv->spec().out_channels == bn->num_features(), "fold_batch_norms: ", conv_path,
                " has ", conv->spec().out_channels, " output channels, ", bn_path, " ",
                bn->num_features());
    // A frozen quantized weight keeps the parameters of the unfolded weight.
    const auto* quant = dynamic_cast<const QuantLayer*>(conv);
    QILIN_CHECK(quant == nullptr || !quant->weights_frozen(), "fold_batch_norms: ", conv_path,
                ": its quantized weight is frozen already; fold before freeze_weights");
    folds.push_back({conv, bn});
    paired.insert(bn_path);
  }
  for (const auto& [path, m] : model.named_modules()) {
    const auto* bn = dynamic_cast<const BatchNorm2d*>(m);
    QILIN_CHECK(bn == nullptr || bn->folded() || paired.count(path), "fold_batch_norms: ",
                model.describe(), ": no convolution is declared to feed the BatchNorm2d at ",
                path, ", so it cannot be folded (models/registry.h conv_bn_pairs)");
  }
  for (Fold& f : folds) f.conv->fold_batch_norm(*f.bn);
  return static_cast<int64_t>(folds.size());
}

}  // namespace qilin
