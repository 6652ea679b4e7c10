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

#include <memory>
#include <string>
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

}  // namespace qilin
