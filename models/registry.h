// The model registry: ModelSpec.arch -> a constructed, initialised model. Archs:
//   vit       timm VisionTransformer (models/vit.h)
//   resnet18  torchvision resnet18 (ImageNet stem, 64/128/256/512 x 2/2/2/2)
//   resnet34  torchvision resnet34 (ImageNet stem, 64/128/256/512 x 3/4/6/3)
//   resnet20  CIFAR ResNet-20 (3x3 stem, 16/32/64 x 3/3/3), torchvision names
//   regnety   timm-style RegNetY (24/56/152 x 1/2/4, group width 8, SE 0.25)
//   mlp       Flatten + Linear/ReLU (hidden 256/128)
// Empty spec.widths / depths / hidden take the arch's default above. Every model's forward
// maps images [B, in_chans, img_size, img_size] to logits [B, num_classes].
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/random.h"
#include "layers/factory.h"
#include "layers/module.h"
#include "models/model_spec.h"

namespace qilin {

// Builds spec.arch; every activation, softmax, Linear and Conv2d comes from `factory`, every
// initial weight from `init_gen`. An unknown arch is an Error listing the valid names.
std::shared_ptr<Layer> create_model(const ModelSpec& spec, LayerFactory& factory,
                                    Generator& init_gen);
// With the native layers.
std::shared_ptr<Layer> create_model(const ModelSpec& spec, Generator& init_gen);

// The valid arch names, in the order above.
const std::vector<std::string>& model_arch_names();

// ---- BatchNorm folding (quant.fold_bn, DESIGN.md §4.3) ----
// Which convolution feeds which BatchNorm2d, as (conv path, bn path) in named_modules()
// order, from each model's naming scheme: ResNet conv1/bn1 (stem and blocks), conv2/bn2,
// downsample.0/downsample.1; RegNetY every ConvNormAct's conv/bn (stem, conv1-3,
// downsample; the SE convs have no BN). Models without BatchNorm (vit, mlp): none.
std::vector<std::pair<std::string, std::string>> conv_bn_pairs(const Layer& model);
// Folds every pair with Conv2d::fold_batch_norm (running statistics: eval-mode BN) and
// returns how many. An Error, before anything changes, names a BatchNorm2d no pair covers,
// a pair whose modules are not a Conv2d and a BatchNorm2d, a BN already folded, and a
// quantized conv whose weights are frozen (fold before freeze_weights).
int64_t fold_batch_norms(Layer& model);

}  // namespace qilin
