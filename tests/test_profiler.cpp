#include <gtest/gtest.h>

#include "core/ops/elementwise.h"
#include "core/profiler.h"

namespace qilin {

TEST(Profiler, CountsForwardAndBackwardCallsPerOp) {
  Profiler::reset();
  Profiler::enable(true);
  Tensor x = Tensor::ones({4}).set_requires_grad();
  Tensor y = x * 2.0f + x;
  y.backward(Tensor::ones({4}));
  Profiler::enable(false);
  auto rows = Profiler::snapshot();
  auto find = [&](const std::string& op) {
    for (auto& r : rows)
      if (r.op == op) return r;
    return OpProfile{};
  };
  EXPECT_EQ(find("mul_scalar").forward_calls, 1);
  EXPECT_EQ(find("mul_scalar").backward_calls, 1);
  // y's add only: x's two gradients are summed in place by the engine, not by add.
  EXPECT_EQ(find("add").forward_calls, 1);
  EXPECT_EQ(find("add").backward_calls, 1);
  EXPECT_NE(Profiler::table().find("mul_scalar"), std::string::npos);
  EXPECT_NE(Profiler::csv().find("op,forward_calls"), std::string::npos);
  Profiler::reset();
}

TEST(Profiler, DisabledRecordsNothing) {
  Profiler::reset();
  Tensor x = Tensor::ones({4});
  (void)(x * 2.0f);
  EXPECT_TRUE(Profiler::snapshot().empty());
}

}  // namespace qilin
