#include <gtest/gtest.h>

#include <cstdint>

#include "core/tensor.h"
#include "tests/testing.h"

namespace qilin {

TEST(Tensor, StorageIs64ByteAligned) {
  for (int64_t n : {1, 3, 17, 1000}) {
    Tensor t = Tensor::empty({n});
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw_data()) % 64, 0u) << n;
  }
}

TEST(Tensor, FactoriesFillValues) {
  Tensor z = Tensor::zeros({2, 3});
  Tensor o = Tensor::ones({2, 3});
  Tensor f = Tensor::full({4}, 2.5f);
  for (float v : z.to_vector()) EXPECT_EQ(v, 0.0f);
  for (float v : o.to_vector()) EXPECT_EQ(v, 1.0f);
  for (float v : f.to_vector()) EXPECT_EQ(v, 2.5f);
  EXPECT_EQ(z.numel(), 6);
  EXPECT_EQ(z.dim(), 2);
  EXPECT_EQ(z.size(-1), 3);
  EXPECT_EQ(Tensor::scalar(3.0f).item(), 3.0f);
  Tensor i = Tensor::from_vector_i64({1, 2, 3}, {3});
  EXPECT_EQ(i.dtype(), DType::kInt64);
  EXPECT_EQ(i.data<int64_t>()[2], 3);
}

TEST(Tensor, ReshapeIsAViewOfTheSameStorage) {
  Tensor t = Tensor::arange(12);
  Tensor v = t.reshape({3, -1});
  EXPECT_EQ(v.shape(), (Shape{3, 4}));
  v.data<float>()[5] = 100.0f;
  EXPECT_EQ(t.data<float>()[5], 100.0f);
  EXPECT_THROW(t.reshape({5, -1}), Error);
  EXPECT_THROW(t.reshape({-1, -1}), Error);
}

TEST(Tensor, ViewRowsSharesStorageAndOffsets) {
  Tensor t = Tensor::arange(12).reshape({4, 3});
  Tensor rows = t.view_rows(1, 3);
  EXPECT_EQ(rows.shape(), (Shape{2, 3}));
  EXPECT_EQ(rows.to_vector(), (std::vector<float>{3, 4, 5, 6, 7, 8}));
  EXPECT_THROW(t.view_rows(2, 5), Error);
}

TEST(Tensor, CloneCopiesDetachShares) {
  Tensor t = Tensor::arange(4);
  Tensor c = t.clone();
  Tensor d = t.detach();
  t.data<float>()[0] = 9.0f;
  EXPECT_EQ(c.data<float>()[0], 0.0f);
  EXPECT_EQ(d.data<float>()[0], 9.0f);
}

TEST(Tensor, WrongDtypeAccessNamesBothTypes) {
  Tensor t = Tensor::zeros({2}, DType::kInt32);
  try {
    t.data<float>();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("int32[2]"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("F32"), std::string::npos) << e.what();
  }
}

TEST(Tensor, NonCpuDeviceIsAClearError) {
  EXPECT_THROW(Tensor::empty({2}, DType::kFloat32, Device::cuda(0)), Error);
  EXPECT_THROW(Tensor::zeros({2}).to(Device::cuda(0)), Error);
}

}  // namespace qilin
