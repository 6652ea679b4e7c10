#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "layers/linear.h"
#include "layers/norm.h"
#include "layers/sequential.h"
#include "train/train_utils.h"
#include "tests/testing.h"

namespace qilin {

TEST(ClipGradNorm, ScalesAllGradientsByTheTotalNorm) {
  Tensor a = Tensor::zeros({2}).set_requires_grad(), b = Tensor::zeros({1}).set_requires_grad();
  Tensor c = Tensor::zeros({3}).set_requires_grad();  // no gradient: skipped
  a.set_grad(Tensor::from_vector({3.0f, 0.0f}, {2}));
  b.set_grad(Tensor::from_vector({4.0f}, {1}));
  double total = clip_grad_norm({a, b, c}, 1.0);
  EXPECT_DOUBLE_EQ(total, 5.0);
  // torch: clip_coef = max_norm / (total_norm + 1e-6)
  const double coef = 1.0 / (5.0 + 1e-6);
  testing::expect_close(a.grad(), std::vector<double>{3 * coef, 0}, 0, 1e-7, "a");
  testing::expect_close(b.grad(), std::vector<double>{4 * coef}, 0, 1e-7, "b");
  EXPECT_FALSE(c.grad().defined());
}

TEST(ClipGradNorm, LeavesSmallGradientsAlone) {
  Tensor a = Tensor::zeros({2}).set_requires_grad();
  a.set_grad(Tensor::from_vector({0.3f, 0.4f}, {2}));
  EXPECT_NEAR(clip_grad_norm({a}, 1.0), 0.5, 1e-7);
  EXPECT_EQ(a.grad().to_vector(), (std::vector<float>{0.3f, 0.4f}));
  EXPECT_THROW(clip_grad_norm({a}, 0.0), Error);
}

TEST(ModelEma, FollowsTheDecayFormulaAndCopiesBuffers) {
  auto model = std::make_shared<Linear>(2, 1, true);
  model->find_tensor("weight").detach().copy_(Tensor::from_vector({1.0f, 2.0f}, {1, 2}));
  model->find_tensor("bias").detach().fill_(0.0f);
  ModelEma ema(*model, 0.9);
  model->find_tensor("weight").detach().copy_(Tensor::from_vector({3.0f, 4.0f}, {1, 2}));
  ema.update(*model);
  auto state = ema.state_dict();
  ASSERT_EQ(state[0].first, "ema.weight");
  // 0.9 * [1, 2] + 0.1 * [3, 4]
  testing::expect_close(state[0].second, std::vector<double>{1.2, 2.2}, 1e-6, 0, "ema.weight");

  // swap_into twice restores the model.
  ema.swap_into(*model);
  testing::expect_close(model->find_tensor("weight"), std::vector<double>{1.2, 2.2}, 1e-6, 0, "swapped");
  ema.swap_into(*model);
  testing::expect_close(model->find_tensor("weight"), std::vector<double>{3, 4}, 0, 0, "restored");

  ModelEma other(*model, 0.9);
  other.load_state_dict(ema.state_dict());
  EXPECT_EQ(other.state_dict()[0].second.to_vector(), ema.state_dict()[0].second.to_vector());
  EXPECT_THROW(other.load_state_dict({}), Error);
  EXPECT_THROW(ModelEma(*model, 1.0), Error);
}

TEST(ModelEma, CopiesBatchNormBuffers) {
  auto bn = std::make_shared<BatchNorm2d>(2);
  ModelEma ema(*bn, 0.5);
  bn->find_tensor("running_mean").detach().fill_(7.0f);
  ema.update(*bn);
  for (auto& [name, t] : ema.state_dict())
    if (name == "ema.running_mean") EXPECT_EQ(t.to_vector(), (std::vector<float>{7.0f, 7.0f}));
}

}  // namespace qilin

#include <csignal>

#include "models/registry.h"
#include "train/run_support.h"

namespace qilin {

TEST(RunSupport, SignalsOnlyRequestAStop) {
  clear_stop_request();
  install_stop_handlers();
  EXPECT_FALSE(stop_requested());
  std::raise(SIGINT);  // handled: sets the flag, the process goes on
  EXPECT_TRUE(stop_requested());
  clear_stop_request();
  install_stop_handlers();
  std::raise(SIGTERM);
  EXPECT_TRUE(stop_requested());
  clear_stop_request();
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
}

TEST(RunSupport, LayerImplementationsListEveryLeafByItsDottedName) {
  ModelSpec spec;  // the default ViT
  Generator gen(0);
  auto model = create_model(spec, gen);
  auto impls = layer_implementations(*model);
  std::map<std::string, std::string> by_name(impls.begin(), impls.end());
  EXPECT_EQ(by_name.count("blocks.0.mlp.act"), 1u);
  EXPECT_NE(by_name["blocks.0.mlp.act"].find("GELU"), std::string::npos) << by_name["blocks.0.mlp.act"];
  EXPECT_NE(by_name["blocks.3.attn.qkv"].find("Linear(64 -> 192"), std::string::npos)
      << by_name["blocks.3.attn.qkv"];
  EXPECT_EQ(by_name.count("blocks.0.attn"), 0u);  // has children: not a leaf
}

}  // namespace qilin
