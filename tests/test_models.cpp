// Models: names and parameter counts equal to PyTorch's, forward shapes, gradients by
// finite differences on tiny configs, every parameter reached by backward, the factory sees
// every swappable layer, determinism from the seed.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/ops/elementwise.h"
#include "core/ops/reduce.h"
#include "core/random.h"
#include "layers/factory.h"
#include "layers/init.h"
#include "layers/norm.h"
#include "layers/quant.h"
#include "layers/sequential.h"
#include "models/registry.h"
#include "models/vit.h"
#include "tests/testing.h"

namespace qilin {
namespace {

std::vector<std::string> names_of(const NamedTensors& entries) {
  std::vector<std::string> out;
  for (const auto& e : entries) out.push_back(e.first);
  return out;
}

ModelSpec spec_for(const std::string& arch) {
  ModelSpec s;
  s.arch = arch;
  if (arch == "resnet18" || arch == "resnet34") {
    s.in_chans = 3;  // torchvision's stem takes RGB
    s.img_size = 32;
  }
  return s;
}

std::shared_ptr<Layer> make(const ModelSpec& spec, uint64_t seed = 0) {
  Generator gen(seed);
  return create_model(spec, gen);
}

Tensor images_for(const ModelSpec& s, int64_t batch, uint32_t seed = 7) {
  return testing::uniform({batch, s.in_chans, s.img_size, s.img_size}, seed);
}

// L = sum(logits * w), w fixed: every logit gets a distinct upstream gradient.
Tensor weighted_sum(const Tensor& logits) {
  return sum(logits * testing::uniform(logits.shape(), 99, 0.5f, 1.5f));
}

}  // namespace

// ---- names and counts against PyTorch ----

// Expected counts from torch 1.13 / torchvision 0.14 (/usr/bin/python3):
//   import torchvision, sys; sys.path.insert(0, "tests/parity")
//   from torch_reference import VisionTransformer, ResNet20   # timm-style ViT, CIFAR ResNet-20
//   count = lambda m: (sum(p.numel() for p in m.parameters()), len(m.state_dict()))
//   count(VisionTransformer())                               -> (205066, 56)
//   count(ResNet20())                                        -> (272186, 128)
//   count(torchvision.models.resnet18(num_classes=10))       -> (11181642, 122)
//   count(torchvision.models.resnet34(num_classes=10))       -> (21289802, 218)
//   count(nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128),
//                       nn.ReLU(), nn.Linear(128, 10)))      -> (235146, 6)
// regnety: timm is not installed; a stock-torch replica of timm 0.6 regnet.RegNet with
// Y blocks (ConvNormAct conv/bn, Bottleneck conv1/conv2/se(fc1,fc2)/conv3/downsample,
// se_channels = round(in_chs * 0.25), groups = width // 8, stem 32 stride 2, head.fc) for
// widths 24/56/152, depths 1/2/4, 1 input channel, 10 classes -> (295774, 180).
TEST(Models, ParameterAndStateCountsEqualPyTorch) {
  struct Expect {
    const char* arch;
    int64_t params;
    size_t entries;
  };
  for (const Expect& e : {Expect{"vit", 205066, 56}, Expect{"resnet20", 272186, 128},
                          Expect{"resnet18", 11181642, 122}, Expect{"resnet34", 21289802, 218},
                          Expect{"regnety", 295774, 180}, Expect{"mlp", 235146, 6}}) {
    auto model = make(spec_for(e.arch));
    EXPECT_EQ(model->num_parameters(), e.params) << e.arch;
    EXPECT_EQ(model->state_dict().size(), e.entries) << e.arch;
  }
}

// list(torchvision.models.resnet18(num_classes=10).state_dict())
TEST(Models, Resnet18StateDictKeysEqualTorchvision) {
  const std::vector<std::string> expected{
    "conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
    "bn1.num_batches_tracked", "layer1.0.conv1.weight", "layer1.0.bn1.weight",
    "layer1.0.bn1.bias", "layer1.0.bn1.running_mean", "layer1.0.bn1.running_var",
    "layer1.0.bn1.num_batches_tracked", "layer1.0.conv2.weight", "layer1.0.bn2.weight",
    "layer1.0.bn2.bias", "layer1.0.bn2.running_mean", "layer1.0.bn2.running_var",
    "layer1.0.bn2.num_batches_tracked", "layer1.1.conv1.weight", "layer1.1.bn1.weight",
    "layer1.1.bn1.bias", "layer1.1.bn1.running_mean", "layer1.1.bn1.running_var",
    "layer1.1.bn1.num_batches_tracked", "layer1.1.conv2.weight", "layer1.1.bn2.weight",
    "layer1.1.bn2.bias", "layer1.1.bn2.running_mean", "layer1.1.bn2.running_var",
    "layer1.1.bn2.num_batches_tracked", "layer2.0.conv1.weight", "layer2.0.bn1.weight",
    "layer2.0.bn1.bias", "layer2.0.bn1.running_mean", "layer2.0.bn1.running_var",
    "layer2.0.bn1.num_batches_tracked", "layer2.0.conv2.weight", "layer2.0.bn2.weight",
    "layer2.0.bn2.bias", "layer2.0.bn2.running_mean", "layer2.0.bn2.running_var",
    "layer2.0.bn2.num_batches_tracked", "layer2.0.downsample.0.weight",
    "layer2.0.downsample.1.weight", "layer2.0.downsample.1.bias",
    "layer2.0.downsample.1.running_mean", "layer2.0.downsample.1.running_var",
    "layer2.0.downsample.1.num_batches_tracked", "layer2.1.conv1.weight", "layer2.1.bn1.weight",
    "layer2.1.bn1.bias", "layer2.1.bn1.running_mean", "layer2.1.bn1.running_var",
    "layer2.1.bn1.num_batches_tracked", "layer2.1.conv2.weight", "layer2.1.bn2.weight",
    "layer2.1.bn2.bias", "layer2.1.bn2.running_mean", "layer2.1.bn2.running_var",
    "layer2.1.bn2.num_batches_tracked", "layer3.0.conv1.weight", "layer3.0.bn1.weight",
    "layer3.0.bn1.bias", "layer3.0.bn1.running_mean", "layer3.0.bn1.running_var",
    "layer3.0.bn1.num_batches_tracked", "layer3.0.conv2.weight", "layer3.0.bn2.weight",
    "layer3.0.bn2.bias", "layer3.0.bn2.running_mean", "layer3.0.bn2.running_var",
    "layer3.0.bn2.num_batches_tracked", "layer3.0.downsample.0.weight",
    "layer3.0.downsample.1.weight", "layer3.0.downsample.1.bias",
    "layer3.0.downsample.1.running_mean", "layer3.0.downsample.1.running_var",
    "layer3.0.downsample.1.num_batches_tracked", "layer3.1.conv1.weight", "layer3.1.bn1.weight",
    "layer3.1.bn1.bias", "layer3.1.bn1.running_mean", "layer3.1.bn1.running_var",
    "layer3.1.bn1.num_batches_tracked", "layer3.1.conv2.weight", "layer3.1.bn2.weight",
    "layer3.1.bn2.bias", "layer3.1.bn2.running_mean", "layer3.1.bn2.running_var",
    "layer3.1.bn2.num_batches_tracked", "layer4.0.conv1.weight", "layer4.0.bn1.weight",
    "layer4.0.bn1.bias", "layer4.0.bn1.running_mean", "layer4.0.bn1.running_var",
    "layer4.0.bn1.num_batches_tracked", "layer4.0.conv2.weight", "layer4.0.bn2.weight",
    "layer4.0.bn2.bias", "layer4.0.bn2.running_mean", "layer4.0.bn2.running_var",
    "layer4.0.bn2.num_batches_tracked", "layer4.0.downsample.0.weight",
    "layer4.0.downsample.1.weight", "layer4.0.downsample.1.bias",
    "layer4.0.downsample.1.running_mean", "layer4.0.downsample.1.running_var",
    "layer4.0.downsample.1.num_batches_tracked", "layer4.1.conv1.weight", "layer4.1.bn1.weight",
    "layer4.1.bn1.bias", "layer4.1.bn1.running_mean", "layer4.1.bn1.running_var",
    "layer4.1.bn1.num_batches_tracked", "layer4.1.conv2.weight", "layer4.1.bn2.weight",
    "layer4.1.bn2.bias", "layer4.1.bn2.running_mean", "layer4.1.bn2.running_var",
    "layer4.1.bn2.num_batches_tracked", "fc.weight", "fc.bias"
  };
  EXPECT_EQ(names_of(make(spec_for("resnet18"))->state_dict()), expected);
}

// timm names, in PyTorch's order (own parameters before patch_embed's); from
// list(VisionTransformer(depth=1).state_dict()) of tests/parity/torch_reference.py.
TEST(Models, VitStateDictKeysEqualTimm) {
  ModelSpec s = spec_for("vit");
  s.depth = 1;
  const std::vector<std::string> expected{
      "cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias",
      "blocks.0.norm1.weight", "blocks.0.norm1.bias", "blocks.0.attn.qkv.weight",
      "blocks.0.attn.qkv.bias", "blocks.0.attn.proj.weight", "blocks.0.attn.proj.bias",
      "blocks.0.norm2.weight", "blocks.0.norm2.bias", "blocks.0.mlp.fc1.weight",
      "blocks.0.mlp.fc1.bias", "blocks.0.mlp.fc2.weight", "blocks.0.mlp.fc2.bias",
      "norm.weight", "norm.bias", "head.weight", "head.bias"};
  auto model = make(s);
  EXPECT_EQ(names_of(model->state_dict()), expected);
  EXPECT_EQ(model->find_tensor("pos_embed").shape(), (Shape{1, 50, 64}));
  EXPECT_EQ(model->find_tensor("cls_token").shape(), (Shape{1, 1, 64}));
  EXPECT_EQ(model->find_tensor("patch_embed.proj.weight").shape(), (Shape{64, 1, 4, 4}));
  EXPECT_EQ(model->find_tensor("blocks.0.attn.qkv.weight").shape(), (Shape{192, 64}));
  EXPECT_EQ(model->find_tensor("blocks.0.mlp.fc1.weight").shape(), (Shape{256, 64}));
}

// Named like torch_reference.py's ResNet20 (torchvision's scheme) and the regnet replica.
TEST(Models, Resnet20AndRegnetyUseTheirReferenceNames) {
  auto r20 = make(spec_for("resnet20"));
  for (const char* name : {"conv1.weight", "bn1.running_var", "layer1.2.conv2.weight",
                           "layer2.0.downsample.0.weight", "layer2.0.downsample.1.num_batches_tracked",
                           "layer3.0.downsample.1.weight", "fc.weight", "fc.bias"})
    EXPECT_TRUE(r20->find_tensor(name).defined()) << name;
  EXPECT_FALSE(r20->find_tensor("layer1.0.downsample.0.weight").defined());
  EXPECT_FALSE(r20->find_tensor("conv1.bias").defined());
  EXPECT_EQ(r20->find_tensor("layer2.0.downsample.0.weight").shape(), (Shape{32, 16, 1, 1}));
  auto reg = make(spec_for("regnety"));
  for (const char* name : {"stem.conv.weight", "stem.bn.weight", "s1.b1.conv1.conv.weight",
                           "s1.b1.conv2.bn.running_mean", "s1.b1.se.fc1.weight", "s1.b1.se.fc2.bias",
                           "s1.b1.conv3.conv.weight", "s1.b1.downsample.conv.weight",
                           "s3.b4.conv3.bn.weight", "head.fc.weight"})
    EXPECT_TRUE(reg->find_tensor(name).defined()) << name;
  EXPECT_FALSE(reg->find_tensor("s2.b2.downsample.conv.weight").defined());
  // conv2 grouped by group width 8: 56 channels -> 7 groups of 8 inputs each.
  EXPECT_EQ(reg->find_tensor("s2.b1.conv2.conv.weight").shape(), (Shape{56, 8, 3, 3}));
  // SE reduces to round(block input * 0.25): s2.b1 input 24 -> 6, s2.b2 input 56 -> 14.
  EXPECT_EQ(reg->find_tensor("s2.b1.se.fc1.weight").shape(), (Shape{6, 56, 1, 1}));
  EXPECT_EQ(reg->find_tensor("s2.b2.se.fc1.weight").shape(), (Shape{14, 56, 1, 1}));
  auto mlp = make(spec_for("mlp"));
  EXPECT_EQ(names_of(mlp->state_dict()),
            (std::vector<std::string>{"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias",
                                      "fc3.weight", "fc3.bias"}));
}

TEST(Models, UnknownArchListsTheValidNames) {
  ModelSpec s;
  s.arch = "vgg";
  try {
    make(s);
    FAIL() << "an unknown arch was built";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("'vgg'"), std::string::npos) << msg;
    for (const auto& name : model_arch_names()) EXPECT_NE(msg.find(name), std::string::npos) << msg;
  }
}

TEST(Models, BadSizesAreErrorsNamingTheField) {
  ModelSpec s;
  s.patch_size = 5;  // 28 is not a multiple
  EXPECT_THROW(make(s), Error);
  s = ModelSpec();
  s.num_heads = 3;  // 64 is not a multiple
  EXPECT_THROW(make(s), Error);
  s = spec_for("regnety");
  s.group_width = 5;  // 24 is not a multiple
  EXPECT_THROW(make(s), Error);
  s = spec_for("resnet20");
  s.depths = {3, 3};  // three widths
  EXPECT_THROW(make(s), Error);
}

// ---- forward ----

TEST(Models, ForwardMapsImagesToLogits) {
  // resnet34 differs from resnet18 only in block counts: counted above, not run.
  for (const char* arch : {"vit", "resnet20", "resnet18", "regnety", "mlp"}) {
    ModelSpec s = spec_for(arch);
    s.num_classes = 7;
    auto model = make(s);
    Tensor logits = model->forward(images_for(s, 2));
    EXPECT_EQ(logits.shape(), (Shape{2, 7})) << arch;
    for (float v : logits.to_vector()) ASSERT_TRUE(std::isfinite(v)) << arch;
  }
  ModelSpec s = spec_for("vit");
  EXPECT_THROW(make(s)->forward(testing::uniform({2, 1, 32, 32}, 1)), Error);
}

TEST(Models, SameSeedSameWeightsOtherSeedOtherWeights) {
  for (const char* arch : {"vit", "resnet20", "regnety", "mlp"}) {
    NamedTensors a = make(spec_for(arch), 5)->state_dict(), b = make(spec_for(arch), 5)->state_dict(),
                 c = make(spec_for(arch), 6)->state_dict();
    bool all_equal = true, some_differ = false;
    for (size_t i = 0; i < a.size(); ++i) {
      if (a[i].second.dtype() != DType::kFloat32) continue;
      all_equal = all_equal && a[i].second.to_vector() == b[i].second.to_vector();
      some_differ = some_differ || a[i].second.to_vector() != c[i].second.to_vector();
    }
    EXPECT_TRUE(all_equal) << arch;
    EXPECT_TRUE(some_differ) << arch;
  }
}

// Init statistics: the documented distributions, checked loosely on large tensors.
TEST(Models, InitFollowsTimmAndTorchvision) {
  auto std_of = [](const Tensor& t) {
    double s = 0, sq = 0;
    for (float v : t.to_vector()) {
      s += v;
      sq += static_cast<double>(v) * v;
    }
    const double n = static_cast<double>(t.numel());
    return std::sqrt(sq / n - (s / n) * (s / n));
  };
  auto vit = make(spec_for("vit"));
  EXPECT_NEAR(std_of(vit->find_tensor("blocks.0.mlp.fc1.weight")), 0.02, 0.002);
  EXPECT_NEAR(std_of(vit->find_tensor("pos_embed")), 0.02, 0.003);
  for (float v : vit->find_tensor("blocks.0.attn.qkv.bias").to_vector()) EXPECT_EQ(v, 0.0f);
  for (float v : vit->find_tensor("cls_token").to_vector()) EXPECT_LT(std::fabs(v), 1e-5f);
  for (float v : vit->find_tensor("norm.weight").to_vector()) EXPECT_EQ(v, 1.0f);
  auto r20 = make(spec_for("resnet20"));
  // kaiming_normal fan_out: std sqrt(2 / (64 * 9)).
  EXPECT_NEAR(std_of(r20->find_tensor("layer3.1.conv1.weight")), std::sqrt(2.0 / 576), 0.004);
  const float bound = 1.0f / std::sqrt(64.0f);  // fc: U(-1/sqrt(64), 1/sqrt(64))
  for (float v : r20->find_tensor("fc.weight").to_vector()) EXPECT_LE(std::fabs(v), bound);
  auto reg = make(spec_for("regnety"));
  for (float v : reg->find_tensor("s3.b2.conv3.bn.weight").to_vector()) EXPECT_EQ(v, 0.0f);
  EXPECT_NEAR(std_of(reg->find_tensor("head.fc.weight")), 0.01, 0.002);
}

// ---- backward ----

TEST(Models, BackwardReachesEveryParameter) {
  for (const char* arch : {"vit", "resnet20", "resnet18", "regnety", "mlp"}) {
    ModelSpec s = spec_for(arch);
    auto model = make(s);
    weighted_sum(model->forward(images_for(s, 2))).backward();
    for (auto& [name, p] : model->named_parameters()) {
      Tensor g = p.grad();
      ASSERT_TRUE(g.defined()) << arch << " " << name;
      EXPECT_EQ(g.shape(), p.shape()) << arch << " " << name;
      for (float v : g.to_vector()) ASSERT_TRUE(std::isfinite(v)) << arch << " " << name;
    }
  }
}

namespace {

// Swaps every activation for SiLU: smooth, so finite differences never straddle a ReLU
// kink (with ~100 units per channel, some unit lies within eps of 0 for most seeds). The
// ReLU's own gradient is tested in tests/ops/test_unary.cpp.
class SmoothFactory : public LayerFactory {
 public:
  std::shared_ptr<Layer> activation(ActivationKind kind, const std::string& path) override {
    return LayerFactory::activation(ActivationKind::kSiLU, path);
  }
};

// Finite differences on every parameter tensor of a tiny model (6 elements of each) (in float32, as testing.h's
// check_gradients: the tolerances there are stated for O(1) values, hence the O(1) weights).
void check_model_gradients(const ModelSpec& s, int64_t batch, float weight_std, bool smooth) {
  SmoothFactory smooth_factory;
  LayerFactory native;
  Generator init(3);
  auto model = create_model(s, smooth ? smooth_factory : native, init);
  Generator gen(4);
  for (auto& [name, p] : model->named_parameters()) fill_normal(p, gen, 0.0f, weight_std);
  Tensor images = images_for(s, batch, 8);
  std::vector<Tensor> params = model->parameters();
  testing::GradCheckOptions options;
  options.max_elements_per_input = 6;  // every parameter tensor, 6 elements of each
  testing::check_gradients([&](const std::vector<Tensor>&) { return model->forward(images); },
                           params, options, s.arch);
}

}  // namespace

TEST(Models, TinyVitBackwardMatchesFiniteDifferences) {
  ModelSpec s;
  s.arch = "vit";
  s.img_size = 8;
  s.patch_size = 4;
  s.embed_dim = 8;
  s.depth = 1;
  s.num_heads = 2;
  s.mlp_ratio = 2.0f;
  s.num_classes = 3;
  check_model_gradients(s, 2, 0.4f, /*smooth=*/false);  // GELU is smooth
}

TEST(Models, TinyResnet20BackwardMatchesFiniteDifferences) {
  // Training-mode BatchNorm: the batch statistics are part of the function.
  ModelSpec s;
  s.arch = "resnet20";
  s.img_size = 6;
  s.widths = {2, 3, 4};
  s.depths = {1, 1, 1};
  s.num_classes = 3;
  check_model_gradients(s, 3, 0.5f, /*smooth=*/true);
}

TEST(Models, TinyRegnetyBackwardMatchesFiniteDifferences) {
  // Grouped conv2, SE gate (a broadcast product) and downsample shortcuts.
  ModelSpec s;
  s.arch = "regnety";
  s.img_size = 8;
  s.stem_width = 4;
  s.widths = {4, 8};
  s.depths = {2, 1};
  s.group_width = 2;
  s.num_classes = 3;
  check_model_gradients(s, 3, 0.5f, /*smooth=*/true);
}

// ---- modes ----

TEST(Models, EvalModeUsesRunningStatsAndTrainModeUpdatesThem) {
  ModelSpec s = spec_for("resnet20");
  auto model = make(s);
  Tensor x = images_for(s, 2);
  model->forward(x);
  Tensor counter = model->find_tensor("layer2.1.bn1.num_batches_tracked");
  EXPECT_EQ(counter.data<int64_t>()[0], 1);
  model->eval();
  const std::vector<float> mean = model->find_tensor("bn1.running_mean").to_vector();
  Tensor a = model->forward(x), b = model->forward(x);
  EXPECT_EQ(a.to_vector(), b.to_vector());
  EXPECT_EQ(model->find_tensor("bn1.running_mean").to_vector(), mean);
  EXPECT_EQ(counter.data<int64_t>()[0], 1);
}

TEST(Models, VitDropoutActsOnlyInTraining) {
  ModelSpec s = spec_for("vit");
  s.depth = 1;
  s.drop_rate = 0.2f;
  s.attn_drop_rate = 0.2f;
  auto model = make(s);
  Tensor x = images_for(s, 2);
  EXPECT_NE(model->forward(x).to_vector(), model->forward(x).to_vector());
  model->eval();
  EXPECT_EQ(model->forward(x).to_vector(), model->forward(x).to_vector());
}

// ---- the factory ----

namespace {

// Records each request and wraps native activations to count their calls.
class RecordingFactory : public LayerFactory {
 public:
  std::map<std::string, std::string> made;  // path -> what
  int activation_calls = 0;

  class CountingActivation : public Layer {
   public:
    CountingActivation(std::shared_ptr<Layer> inner, int* calls) : inner_(std::move(inner)), calls_(calls) {}
    Tensor forward(const Tensor& x) override {
      ++*calls_;
      return inner_->forward(x);
    }
    std::string describe() const override { return "counting " + inner_->describe(); }

   private:
    std::shared_ptr<Layer> inner_;
    int* calls_;
  };

  std::shared_ptr<Layer> activation(ActivationKind kind, const std::string& path) override {
    made[path] = activation_name(kind);
    return std::make_shared<CountingActivation>(LayerFactory::activation(kind, path), &activation_calls);
  }
  std::shared_ptr<Layer> softmax(const std::string& path) override {
    made[path] = "softmax";
    return LayerFactory::softmax(path);
  }
  std::shared_ptr<Layer> linear(int64_t in, int64_t out, bool bias, const std::string& path) override {
    made[path] = "linear";
    return LayerFactory::linear(in, out, bias, path);
  }
  std::shared_ptr<Layer> conv2d(const Conv2dSpec& spec, const std::string& path) override {
    made[path] = "conv2d";
    return LayerFactory::conv2d(spec, path);
  }
};

}  // namespace

TEST(Models, EverySwappableLayerComesFromTheFactoryAtItsOwnPath) {
  for (const char* arch : {"vit", "resnet20", "regnety", "mlp"}) {
    RecordingFactory factory;
    Generator gen(0);
    ModelSpec s = spec_for(arch);
    auto model = create_model(s, factory, gen);
    std::set<std::string> swappable;
    for (auto& [name, m] : model->named_modules()) {
      const std::string d = m->describe();
      if (d.rfind("Linear(", 0) == 0 || d.rfind("Conv2d(", 0) == 0 || d.rfind("Softmax", 0) == 0 ||
          d.rfind("counting ", 0) == 0)
        swappable.insert(name);
      if (d.rfind("counting ", 0) == 0) continue;
      for (const char* native : {"ReLU", "GELU(erf)", "GELU(tanh)", "Sigmoid", "Tanh", "SiLU"})
        EXPECT_NE(d, native) << arch << ": " << name << " bypassed the factory";
    }
    std::set<std::string> recorded;
    for (auto& [path, what] : factory.made) recorded.insert(path);
    EXPECT_EQ(recorded, swappable) << arch;
    model->forward(images_for(s, 2));
    EXPECT_GT(factory.activation_calls, 0) << arch;
  }
  RecordingFactory factory;
  Generator gen(0);
  auto vit = create_model(spec_for("vit"), factory, gen);
  EXPECT_EQ(factory.made["blocks.0.mlp.act"], "GELU(erf)");
  EXPECT_EQ(factory.made["blocks.3.attn.softmax"], "softmax");
  EXPECT_EQ(factory.made["blocks.2.attn.qkv"], "linear");
  EXPECT_EQ(factory.made["patch_embed.proj"], "conv2d");
  EXPECT_EQ(factory.made["head"], "linear");
  factory.activation_calls = 0;
  vit->forward(images_for(spec_for("vit"), 2));
  EXPECT_EQ(factory.activation_calls, 4);  // one GELU per block
  RecordingFactory rf;
  auto reg = create_model(spec_for("regnety"), rf, gen);
  EXPECT_EQ(rf.made["s1.b1.se.gate"], "Sigmoid");
  EXPECT_EQ(rf.made["s1.b1.se.fc1"], "conv2d");
  EXPECT_EQ(rf.made["head.fc"], "linear");
}

TEST(Models, DescribeNamesEveryLayerImplementation) {
  auto model = make(spec_for("vit"));
  std::map<std::string, std::string> by_name;
  for (auto& [name, m] : model->named_modules()) by_name[name] = m->describe();
  EXPECT_EQ(by_name["blocks.0.mlp.act"], "GELU(erf)");
  EXPECT_EQ(by_name["blocks.0.mlp.fc1"], "Linear(64 -> 256, bias)");
  EXPECT_EQ(by_name["blocks.0.norm1"], "LayerNorm(64, eps 1e-06)");
  EXPECT_EQ(by_name["blocks.0.attn"], "MultiHeadSelfAttention(64, 4 heads of 16)");
  EXPECT_EQ(by_name["patch_embed.proj"], "Conv2d(1 -> 64, 4x4, stride 4, pad 0, groups 1, bias)");
}

// ---- BatchNorm folding (quant.fold_bn, DESIGN.md §4.3) ----

namespace {

// Every BN's gamma, beta and running statistics non-trivial (init leaves them 1, 0, 0, 1, and
// regnety's conv3.bn gamma 0), so the fold changes every conv it touches. Returns the count.
int64_t randomize_batch_norms(Layer& model, uint32_t seed) {
  NoGradGuard no_grad;
  int64_t n = 0;
  for (auto& [path, m] : model.named_modules()) {
    auto* bn = dynamic_cast<BatchNorm2d*>(m);
    if (bn == nullptr) continue;
    const int64_t c = bn->num_features();
    const uint32_t s = seed + 4 * static_cast<uint32_t>(n++);
    Tensor(bn->weight()).copy_(testing::uniform({c}, s, 0.5f, 1.5f));
    Tensor(bn->bias()).copy_(testing::uniform({c}, s + 1, -0.2f, 0.2f));
    Tensor(bn->running_mean()).copy_(testing::uniform({c}, s + 2, -0.3f, 0.3f));
    Tensor(bn->running_var()).copy_(testing::uniform({c}, s + 3, 0.5f, 2.0f));
  }
  return n;
}

}  // namespace

TEST(Models, FoldingBatchNormKeepsTheEvalLogits) {
  for (const char* arch : {"resnet20", "regnety"}) {
    const ModelSpec spec = spec_for(arch);
    auto model = make(spec);
    const int64_t norms = randomize_batch_norms(*model, 300);
    model->eval();
    const Tensor images = images_for(spec, 4);
    const Tensor before = model->forward(images);
    const size_t state_before = model->state_dict().size();

    EXPECT_EQ(static_cast<int64_t>(conv_bn_pairs(*model).size()), norms) << arch;
    EXPECT_EQ(fold_batch_norms(*model), norms) << arch;
    for (auto& [path, m] : model->named_modules()) {
      if (auto* bn = dynamic_cast<BatchNorm2d*>(m)) {
        EXPECT_TRUE(bn->folded()) << arch << " " << path;
      }
    }
    // Each BN's five tensors leave the state dict; each conv (none had a bias) gains one.
    const NamedTensors state = model->state_dict();
    EXPECT_EQ(state.size(), state_before - 4 * static_cast<size_t>(norms)) << arch;
    for (const auto& [name, t] : state) {
      EXPECT_EQ(name.find("running_"), std::string::npos) << name;
      EXPECT_EQ(name.find("num_batches_tracked"), std::string::npos) << name;
    }
    for (const auto& [conv, bn] : conv_bn_pairs(*model))
      EXPECT_TRUE(model->find_tensor(conv + ".bias").defined()) << conv;

    // The same function in float32: ~20 conv/BN pairs deep, each fold rounds W' and b'
    // (6e-8 relative) and reorders the scale against the conv sums. Measured worst: 1e-6 at
    // |logit| = 3.4 (resnet20), 4e-8 at 0.12 (regnety); atol 1e-5 plus 1e-5 relative.
    testing::expect_close(model->forward(images), before, 1e-5, 1e-5, arch);
  }
}

TEST(Models, ConvBnPairsFollowTheReferenceNames) {
  auto resnet = make(spec_for("resnet20"));
  const auto pairs = conv_bn_pairs(*resnet);
  ASSERT_EQ(pairs.size(), 21u);  // stem + 9 blocks x 2 + 2 downsamples
  using Pair = std::pair<std::string, std::string>;
  EXPECT_EQ(pairs.front(), Pair("conv1", "bn1"));
  EXPECT_NE(std::find(pairs.begin(), pairs.end(), Pair("layer1.2.conv2", "layer1.2.bn2")), pairs.end());
  EXPECT_NE(std::find(pairs.begin(), pairs.end(), Pair("layer2.0.downsample.0", "layer2.0.downsample.1")),
            pairs.end());
  auto regnet = make(spec_for("regnety"));
  const auto rpairs = conv_bn_pairs(*regnet);
  EXPECT_EQ(rpairs.front(), Pair("stem.conv", "stem.bn"));
  EXPECT_NE(std::find(rpairs.begin(), rpairs.end(), Pair("s1.b1.conv2.conv", "s1.b1.conv2.bn")), rpairs.end());
  EXPECT_NE(std::find(rpairs.begin(), rpairs.end(), Pair("s3.b1.downsample.conv", "s3.b1.downsample.bn")),
            rpairs.end());
  for (const auto& [conv, bn] : rpairs) EXPECT_EQ(conv.find(".se."), std::string::npos) << conv;
  // No BatchNorm, nothing to fold.
  for (const char* arch : {"vit", "mlp"}) {
    auto model = make(spec_for(arch));
    EXPECT_TRUE(conv_bn_pairs(*model).empty()) << arch;
    EXPECT_EQ(fold_batch_norms(*model), 0) << arch;
  }
}

TEST(Models, AnUnpairedOrFrozenFoldIsAnErrorNamingTheLayer) {
  // A BatchNorm2d no model scheme pairs with a conv.
  Sequential seq;
  seq.push_back(std::make_shared<BatchNorm2d>(3));
  try {
    fold_batch_norms(seq);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no convolution is declared to feed the BatchNorm2d at 0"),
              std::string::npos) << e.what();
  }
  // Folding twice, and folding a quantized conv after its weights were frozen (their
  // quantization parameters would belong to the unfolded weights).
  auto resnet = make(spec_for("resnet20"));
  fold_batch_norms(*resnet);
  EXPECT_THROW(fold_batch_norms(*resnet), Error);
  LayerFactory native;
  QuantLayerFactory quant(native, QuantLayerOptions{});
  Generator gen(0);
  auto quantized = create_model(spec_for("resnet20"), quant, gen);
  freeze_weights(*quantized);
  try {
    fold_batch_norms(*quantized);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("conv1: its quantized weight is frozen already"), std::string::npos)
        << e.what();
  }
  for (auto& [path, m] : quantized->named_modules()) {
    if (auto* bn = dynamic_cast<BatchNorm2d*>(m)) {
      EXPECT_FALSE(bn->folded()) << path;  // nothing changed
    }
  }
}

}  // namespace qilin
