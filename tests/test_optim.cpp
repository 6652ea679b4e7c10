// Optimizers against PyTorch 1.13 (torch.optim.SGD / AdamW) reference trajectories, against
// a double-precision re-implementation on a parameter large enough to take the parallel
// path, state_dict round trips, and learning-rate schedule values.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <unistd.h>
#include <vector>

#include "core/safetensors.h"
#include "testing.h"
#include "train/lr_schedule.h"
#include "train/optim.h"

namespace qilin {
namespace {

// The reference numbers below were produced with /usr/bin/python3 (torch 1.13.0a0, CPU):
//
//   import torch
//   def init():
//       p1 = torch.tensor([[0.5, -1.25, 2.0], [0.75, -0.1, 1.5]], requires_grad=True)
//       p2 = torch.tensor([-0.3, 0.9, 0.0, -2.5], requires_grad=True)
//       return p1, p2
//   def grads(p, t):  # g = 0.5 * p + c_t, c_t[i] = ((7 i) % 11 - 5) * 0.1 * (t + 1)
//       c = torch.tensor([((7 * i) % 11 - 5) * 0.1 * (t + 1) for i in range(p.numel())],
//                        dtype=torch.float32).reshape(p.shape)
//       return 0.5 * p.detach() + c
//   def run(make, steps=5, lr_change=None):
//       p1, p2 = init(); opt = make(p1, p2)
//       for t in range(steps):
//           if lr_change and t == lr_change[0]:
//               for g in opt.param_groups: g['lr'] = lr_change[1]
//           p1.grad = grads(p1, t)
//           p2.grad = grads(p2, t) if t != 2 else None   # p2 gets no grad at step 2
//           opt.step()
//       return p1.flatten().tolist() + p2.flatten().tolist()
//   cases = {
//    'sgd_plain': lambda a, b: torch.optim.SGD([a, b], lr=0.1),
//    'sgd_momentum': lambda a, b: torch.optim.SGD([a, b], lr=0.1, momentum=0.9),
//    'sgd_dampening': lambda a, b: torch.optim.SGD([a, b], lr=0.1, momentum=0.9, dampening=0.3),
//    'sgd_nesterov_wd': lambda a, b: torch.optim.SGD([a, b], lr=0.05, momentum=0.8,
//                                                    nesterov=True, weight_decay=0.01),
//    'sgd_wd': lambda a, b: torch.optim.SGD([{'params': [a], 'weight_decay': 0.1},
//                                            {'params': [b], 'weight_decay': 0.0}], lr=0.1),
//    'adamw': lambda a, b: torch.optim.AdamW([{'params': [a], 'weight_decay': 0.05},
//                                             {'params': [b], 'weight_decay': 0.0}],
//                                            lr=0.01, betas=(0.9, 0.999), eps=1e-8),
//    'adamw_betas': lambda a, b: torch.optim.AdamW([a, b], lr=0.003, betas=(0.8, 0.95),
//                                                  eps=1e-6, weight_decay=0.1),
//   }
//   for name, make in cases.items():   # lr set to 0.02 before step 3 for these two
//       lr_change = (3, 0.02) if name in ('adamw', 'sgd_momentum') else None
//       print(name, ['%.9g' % v for v in run(make, lr_change=lr_change)])
//
// Tolerance: both sides run the same float32 formulas; they differ only in rounding order
// (FMA contraction, where the scalar lr/betas are rounded), a few ulp per step on O(1)
// values (measured: every value agrees to 1e-7 relative). 2e-6 absolute + 2e-6 relative is
// ~30 ulp, far below the effect of any formula change (e.g. applying weight decay after the
// Adam step moves values by ~1e-4).
constexpr double kAtol = 2e-6, kRtol = 2e-6;

struct Params {
  Tensor p1, p2;
};

Params init_params() {
  Params p;
  p.p1 = Tensor::from_vector({0.5f, -1.25f, 2.0f, 0.75f, -0.1f, 1.5f}, {2, 3});
  p.p2 = Tensor::from_vector({-0.3f, 0.9f, 0.0f, -2.5f}, {4});
  p.p1.set_requires_grad(true);
  p.p2.set_requires_grad(true);
  return p;
}

// g = 0.5 * p + c_t, c_t[i] = ((7 i) % 11 - 5) * 0.1 * (t + 1) rounded to float, as above.
Tensor grad_for(const Tensor& p, int t) {
  Tensor g = Tensor::empty(p.shape());
  const float* pv = p.data<float>();
  float* gv = g.data<float>();
  for (int64_t i = 0; i < p.numel(); ++i) {
    const float c = static_cast<float>(((7 * i) % 11 - 5) * 0.1 * (t + 1));
    gv[i] = 0.5f * pv[i] + c;
  }
  return g;
}

void set_grads(Params& p, int t) {
  p.p1.set_grad(grad_for(p.p1, t));
  if (t == 2) p.p2.zero_grad();  // no gradient: the optimizer must skip p2 at this step
  else p.p2.set_grad(grad_for(p.p2, t));
}

std::vector<double> flat(const Params& p) {
  std::vector<double> out;
  for (float v : p.p1.to_vector()) out.push_back(v);
  for (float v : p.p2.to_vector()) out.push_back(v);
  return out;
}

std::vector<ParamGroup> one_group(Params& p, float weight_decay = 0.0f) {
  return {ParamGroup{{{"p1", p.p1}, {"p2", p.p2}}, weight_decay}};
}

std::vector<ParamGroup> two_groups(Params& p, float wd1, float wd2) {
  return {ParamGroup{{{"p1", p.p1}}, wd1}, ParamGroup{{{"p2", p.p2}}, wd2}};
}

// Runs the reference loop: 5 steps, p2 without a gradient at step 2, lr changed before
// step `lr_change_step` when >= 0.
void run_steps(Optimizer& opt, Params& p, int steps, int lr_change_step = -1, float new_lr = 0) {
  for (int t = 0; t < steps; ++t) {
    if (t == lr_change_step) opt.set_lr(new_lr);
    set_grads(p, t);
    opt.step();
  }
}

// Compares the flattened parameters with a reference trajectory.
void expect_params(const Params& p, const std::vector<double>& expected, const std::string& what) {
  std::vector<double> v = flat(p);
  Tensor all = Tensor::from_vector(std::vector<float>(v.begin(), v.end()), {static_cast<int64_t>(v.size())});
  testing::expect_close(all, expected, kAtol, kRtol, what);
}

TEST(Sgd, PlainMatchesPyTorch) {
  Params p = init_params();
  Sgd opt(one_group(p), {0.1f});
  run_steps(opt, p, 5);
  expect_params(p, {1.08872831, -1.24796116, 1.8282969, -0.121502116, -0.217745677, 1.58177412,
                    0.328766882, 0.503808141, 0.229247496, -2.6093843},
                "sgd plain");
  EXPECT_EQ(opt.steps(), 5);
}

TEST(Sgd, MomentumMatchesPyTorchAcrossAnLrChange) {
  Params p = init_params();
  SgdOptions o;
  o.lr = 0.1f;
  o.momentum = 0.9f;
  Sgd opt(one_group(p), o);
  run_steps(opt, p, 5, 3, 0.02f);
  expect_params(p, {0.998449922, -1.10007703, 1.60057497, -0.164286762, -0.199689999, 1.3998667,
                    0.120640323, 0.576718688, 0.144406095, -2.3641398},
                "sgd momentum");
}

TEST(Sgd, DampeningSkipsTheFirstStepLikePyTorch) {
  Params p = init_params();
  SgdOptions o;
  o.lr = 0.1f;
  o.momentum = 0.9f;
  o.dampening = 0.3f;
  Sgd opt(one_group(p), o);
  run_steps(opt, p, 5);
  expect_params(p, {1.36379743, -1.09582281, 1.48889709, -0.708673716, -0.272759497, 1.44719708,
                    0.577172399, 0.278465301, 0.309228092, -2.40555191},
                "sgd dampening");
}

TEST(Sgd, NesterovWithWeightDecayMatchesPyTorch) {
  Params p = init_params();
  SgdOptions o;
  o.lr = 0.05f;
  o.momentum = 0.8f;
  o.nesterov = true;
  Sgd opt(one_group(p, 0.01f), o);
  run_steps(opt, p, 5);
  expect_params(p, {1.22521055, -1.19481575, 1.69819522, -0.386244416, -0.245042101, 1.54053354,
                    0.446479559, 0.405626565, 0.268471599, -2.54367375},
                "sgd nesterov + weight decay");
}

TEST(Sgd, PerGroupWeightDecayMatchesPyTorch) {
  Params p = init_params();
  Sgd opt(two_groups(p, 0.1f, 0.0f), {0.1f});
  run_steps(opt, p, 5);
  // p2 (no decay) ends exactly where plain SGD leaves it.
  expect_params(p, {1.05958784, -1.1944344, 1.74486244, -0.142207861, -0.211917579, 1.51643765,
                    0.328766882, 0.503808141, 0.229247496, -2.6093843},
                "sgd per-group weight decay");
}

TEST(Sgd, RejectsNesterovWithoutMomentum) {
  Params p = init_params();
  SgdOptions o;
  o.nesterov = true;
  EXPECT_THROW(Sgd(one_group(p), o), Error);
}

TEST(AdamW, MatchesPyTorchWithGroupsSkipsAndLrChange) {
  Params p = init_params();
  AdamWOptions o;
  o.lr = 0.01f;
  AdamW opt(two_groups(p, 0.05f, 0.0f), o);
  run_steps(opt, p, 5, 3, 0.02f);
  expect_params(p, {0.564010739, -1.21375871, 1.93253064, 0.67832607, -0.165530771, 1.48432505,
                    -0.242377818, 0.840439796, 0.0569030195, -2.48886275},
                "adamw");
}

TEST(AdamW, MatchesPyTorchWithOtherBetasAndEps) {
  Params p = init_params();
  AdamWOptions o;
  o.lr = 0.003f;
  o.beta1 = 0.8f;
  o.beta2 = 0.95f;
  o.eps = 1e-6f;
  AdamW opt(one_group(p, 0.1f), o);
  run_steps(opt, p, 5);
  expect_params(p, {0.513775408, -1.24010158, 1.9838568, 0.733817637, -0.114380948, 1.49369717,
                    -0.287835181, 0.886877835, 0.0117000816, -2.49317479},
                "adamw betas");
}

TEST(AdamW, LargeParameterMatchesDoubleReference) {
  // 100k elements: above kMinParallelWork, so the update runs split across threads. The
  // reference is the same formula in double; after 4 steps the float32 result differs by
  // rounding only (~1e-7 relative per step of size lr), far below lr = 1e-2.
  const int64_t n = 100000;
  Tensor p = testing::uniform({n}, 7);
  p.set_requires_grad(true);
  const std::vector<float> p0 = p.to_vector();
  std::vector<double> ref(p0.begin(), p0.end()), m(n, 0), v(n, 0);
  const double lr = 0.01, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.05;
  AdamWOptions o;
  o.lr = 0.01f;
  AdamW opt({ParamGroup{{{"w", p}}, 0.05f}}, o);
  for (int t = 1; t <= 4; ++t) {
    Tensor g = testing::uniform({n}, 100 + t);
    std::vector<float> gv = g.to_vector();
    p.set_grad(g);
    opt.step();
    for (int64_t i = 0; i < n; ++i) {
      ref[i] *= 1 - lr * wd;
      m[i] = b1 * m[i] + (1 - b1) * gv[i];
      v[i] = b2 * v[i] + (1 - b2) * gv[i] * gv[i];
      const double denom = std::sqrt(v[i]) / std::sqrt(1 - std::pow(b2, t)) + eps;
      ref[i] -= lr / (1 - std::pow(b1, t)) * m[i] / denom;
    }
  }
  testing::expect_close(p, ref, 1e-6, 1e-5, "adamw large");
}

TEST(Sgd, LargeParameterMatchesDoubleReference) {
  const int64_t n = 100000;
  Tensor p = testing::uniform({n}, 8);
  p.set_requires_grad(true);
  const std::vector<float> p0 = p.to_vector();
  std::vector<double> ref(p0.begin(), p0.end()), buf(n, 0);
  const double lr = 0.05, mom = 0.9, wd = 1e-3;
  SgdOptions o;
  o.lr = 0.05f;
  o.momentum = 0.9f;
  o.nesterov = true;
  Sgd opt({ParamGroup{{{"w", p}}, 1e-3f}}, o);
  for (int t = 1; t <= 4; ++t) {
    Tensor g = testing::uniform({n}, 200 + t);
    std::vector<float> gv = g.to_vector();
    p.set_grad(g);
    opt.step();
    for (int64_t i = 0; i < n; ++i) {
      const double d_p = gv[i] + wd * ref[i];
      buf[i] = t == 1 ? d_p : mom * buf[i] + d_p;
      ref[i] -= lr * (d_p + mom * buf[i]);
    }
  }
  testing::expect_close(p, ref, 1e-6, 1e-5, "sgd large");
}

TEST(Optimizer, ZeroGradDropsGradients) {
  Params p = init_params();
  Sgd opt(one_group(p), {0.1f});
  set_grads(p, 0);
  opt.zero_grad();
  EXPECT_FALSE(p.p1.grad().defined());
  EXPECT_FALSE(p.p2.grad().defined());
  const std::vector<float> before = p.p1.to_vector();
  opt.step();  // nothing has a gradient: nothing moves
  EXPECT_EQ(p.p1.to_vector(), before);
}

TEST(Optimizer, StepRecordsNoGraph) {
  Params p = init_params();
  AdamW opt(one_group(p), {});
  set_grads(p, 0);
  opt.step();
  EXPECT_TRUE(p.p1.is_leaf());
  EXPECT_TRUE(p.p1.requires_grad());
}

TEST(Optimizer, RejectsDuplicateAndNonFloatParameters) {
  Params p = init_params();
  EXPECT_THROW(Sgd({ParamGroup{{{"a", p.p1}, {"a", p.p2}}, 0}}, {}), Error);
  EXPECT_THROW(Sgd({ParamGroup{{{"a", p.p1}}, 0}, ParamGroup{{{"b", p.p1}}, 0}}, {}), Error);
  EXPECT_THROW(Sgd({ParamGroup{{{"i", Tensor::from_vector_i64({1}, {1})}}, 0}}, {}), Error);
}

// Saves the state (through a real safetensors file), builds a second optimizer on copies of
// the parameters, loads the state, and checks both continue bit-identically.
template <typename MakeOpt>
void check_round_trip(MakeOpt make, const std::string& what) {
  Params a = init_params();
  auto opt_a = make(a);
  run_steps(*opt_a, a, 3);  // includes the step where p2 is skipped
  const std::string path = ::testing::TempDir() + "/qilin_optim_state_" + std::to_string(::getpid()) + ".safetensors";
  save_safetensors(path, opt_a->state_dict());
  NamedTensors loaded = load_safetensors(path).tensors;
  std::remove(path.c_str());

  Params b = init_params();
  b.p1.detach().copy_(a.p1);
  b.p2.detach().copy_(a.p2);
  auto opt_b = make(b);
  opt_b->load_state_dict(loaded);
  EXPECT_EQ(opt_b->steps(), 3) << what;
  EXPECT_EQ(opt_b->lr(), opt_a->lr()) << what;
  for (int t = 3; t < 6; ++t) {
    set_grads(a, t);
    set_grads(b, t);
    opt_a->step();
    opt_b->step();
  }
  EXPECT_EQ(a.p1.to_vector(), b.p1.to_vector()) << what;
  EXPECT_EQ(a.p2.to_vector(), b.p2.to_vector()) << what;
}

TEST(Optimizer, StateDictRoundTripContinuesIdentically) {
  check_round_trip([](Params& p) {
    AdamWOptions o;
    o.lr = 0.01f;
    return std::make_unique<AdamW>(two_groups(p, 0.05f, 0.0f), o);
  }, "adamw");
  check_round_trip([](Params& p) {
    SgdOptions o;
    o.lr = 0.1f;
    o.momentum = 0.9f;
    o.dampening = 0.2f;
    return std::make_unique<Sgd>(one_group(p, 0.01f), o);
  }, "sgd momentum");
}

TEST(Optimizer, StateDictKeepsPerParameterSteps) {
  Params p = init_params();
  AdamW opt(one_group(p), {});
  run_steps(opt, p, 4);  // p2 skipped once
  SafetensorsContents s{opt.state_dict(), {}};
  ASSERT_TRUE(s.find("step").defined());
  EXPECT_EQ(*s.find("step").data<int64_t>(), 4);
  EXPECT_EQ(*s.find("p1.step").data<int64_t>(), 4);
  EXPECT_EQ(*s.find("p2.step").data<int64_t>(), 3);
  ASSERT_TRUE(s.find("p1.exp_avg").defined());
  EXPECT_EQ(s.find("p1.exp_avg_sq").shape(), (Shape{2, 3}));
}

// Runs load_state_dict on a modified state and expects an Error mentioning `needle`.
void expect_load_error(const NamedTensors& state, const std::string& needle) {
  Params p = init_params();
  AdamW opt(one_group(p), {});
  try {
    opt.load_state_dict(state);
    ADD_FAILURE() << "no error for a state that should mention " << needle;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(Optimizer, LoadStateDictNamesMissingMisshapedAndUnexpectedEntries) {
  Params p = init_params();
  AdamW opt(one_group(p), {});
  run_steps(opt, p, 2);
  const NamedTensors good = opt.state_dict();

  NamedTensors missing;
  for (const auto& e : good)
    if (e.first != "p2.exp_avg_sq") missing.push_back(e);
  expect_load_error(missing, "missing entry 'p2.exp_avg_sq'");

  NamedTensors misshaped = good;
  for (auto& e : misshaped)
    if (e.first == "p1.exp_avg") e.second = Tensor::zeros({3, 2});
  expect_load_error(misshaped, "'p1.exp_avg'");

  NamedTensors wrong_dtype = good;
  for (auto& e : wrong_dtype)
    if (e.first == "step") e.second = Tensor::scalar(2.0f);
  expect_load_error(wrong_dtype, "'step'");

  NamedTensors extra = good;
  extra.emplace_back("p3.exp_avg", Tensor::zeros({1}));
  expect_load_error(extra, "unexpected entry 'p3.exp_avg'");

  // An SGD state does not load into AdamW: its buffers are missing.
  Sgd sgd(one_group(p), SgdOptions{0.1f, 0.9f});
  expect_load_error(sgd.state_dict(), "missing entry");
}

// ---- learning-rate schedules ----

TEST(LrSchedule, ConstantIsBaseLr) {
  LrSchedule s;
  s.base_lr = 0.25;
  s.validate();
  EXPECT_FLOAT_EQ(s.lr_at(0), 0.25f);
  EXPECT_FLOAT_EQ(s.lr_at(123456), 0.25f);
}

TEST(LrSchedule, StepMatchesTorchStepLR) {
  // torch.optim.lr_scheduler.StepLR(SGD(lr=0.5), step_size=3, gamma=0.5), lr before each of
  // 10 steps: [0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125, 0.125, 0.125, 0.0625].
  LrSchedule s;
  s.kind = LrScheduleKind::kStep;
  s.base_lr = 0.5;
  s.step_size = 3;
  s.gamma = 0.5;
  s.validate();
  const std::vector<float> expected = {0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125, 0.125, 0.125, 0.0625};
  for (int i = 0; i < 10; ++i) EXPECT_FLOAT_EQ(s.lr_at(i), expected[i]) << "step " << i;
}

TEST(LrSchedule, CosineWithWarmupHitsKnownValues) {
  // base 0.1, warm-up 10 steps from 0.001, 110 steps in all, min 0.001. Values from
  // timm's CosineLRScheduler formula (warmup_prefix=True: the cosine spans steps 10..110):
  // lr(35) = 0.001 + 0.5 * 0.099 * (1 + cos(pi * 25 / 100)).
  LrSchedule s;
  s.kind = LrScheduleKind::kCosine;
  s.base_lr = 0.1;
  s.warmup_steps = 10;
  s.warmup_lr = 0.001;
  s.total_steps = 110;
  s.min_lr = 0.001;
  s.validate();
  const std::vector<std::pair<int, double>> prefix = {
      {0, 0.001}, {5, 0.0505}, {9, 0.0901}, {10, 0.1}, {35, 0.0855017856687341},
      {60, 0.0505}, {109, 0.0010244252618962857}, {110, 0.001}, {500, 0.001}};
  for (auto [step, lr] : prefix) EXPECT_NEAR(s.lr_at(step), lr, 1e-7 * lr) << "step " << step;
  // timm's default (warmup_prefix=False): the cosine runs over all 110 steps and warm-up
  // overrides its first 10.
  s.warmup_prefix = false;
  const std::vector<std::pair<int, double>> no_prefix = {
      {5, 0.0505}, {10, 0.09799490219391763}, {35, 0.0772617204640521},
      {60, 0.04345541550547239}, {109, 0.0010201864550046331}, {110, 0.001}};
  for (auto [step, lr] : no_prefix) EXPECT_NEAR(s.lr_at(step), lr, 1e-7 * lr) << "step " << step;
}

TEST(LrSchedule, CosineIsMonotoneAfterWarmup) {
  LrSchedule s;
  s.kind = LrScheduleKind::kCosine;
  s.base_lr = 1e-3;
  s.warmup_steps = 5;
  s.total_steps = 1000;
  s.min_lr = 1e-5;
  for (int i = 1; i <= 5; ++i) EXPECT_GT(s.lr_at(i), s.lr_at(i - 1));
  for (int i = 6; i <= 1000; ++i) EXPECT_LE(s.lr_at(i), s.lr_at(i - 1)) << "step " << i;
  EXPECT_FLOAT_EQ(s.lr_at(1000), 1e-5f);
}

TEST(LrSchedule, RejectsInconsistentSchedules) {
  LrSchedule s;
  s.kind = LrScheduleKind::kCosine;
  s.warmup_steps = 10;
  s.total_steps = 10;
  EXPECT_THROW(s.validate(), Error);
  LrSchedule step;
  step.kind = LrScheduleKind::kStep;
  step.step_size = 0;
  EXPECT_THROW(step.validate(), Error);
  EXPECT_THROW(LrSchedule{}.lr_at(-1), Error);
}

}  // namespace
}  // namespace qilin
