// CPU kernels for elementwise math and activations: one forward and one fused backward per
// function. Plain functions over dense float arrays of n elements; every one writes (=) its
// output. Backward kernels compute the derivative and multiply by dy in the same pass:
// dx = dy * f'(x), taking x or y (the forward output), whichever is exact and cheaper.
//
// The transcendental ones (exp, log, gelu, gelu_tanh, sigmoid, tanh, silu) are Highway SIMD
// code compiled for AVX2 and AVX-512 and picked at run time. Accuracy against a double
// reference (tests/ops/test_unary.cpp states the measured bounds): a few float32 ulp over
// the whole float range, including the tails where the result is tiny (gelu(-10),
// sigmoid(-50), sech^2(20)); NaN in gives NaN out; +-inf give the function's limits.
#pragma once

#include <cstdint>

namespace qilin::kernels::cpu {

void exp_forward(float* y, const float* x, int64_t n);                      // y = e^x
void exp_backward(float* dx, const float* y, const float* dy, int64_t n);   // dx = dy * y

void log_forward(float* y, const float* x, int64_t n);                      // y = ln x
void log_backward(float* dx, const float* x, const float* dy, int64_t n);   // dx = dy / x

void sqrt_forward(float* y, const float* x, int64_t n);
void sqrt_backward(float* dx, const float* y, const float* dy, int64_t n);  // dx = dy / (2 y)

void pow_forward(float* y, const float* x, float exponent, int64_t n);      // y = x^p
// dx = dy * p * x^(p-1); 0 where p == 0 (as PyTorch).
void pow_backward(float* dx, const float* x, const float* dy, float exponent, int64_t n);

void relu_forward(float* y, const float* x, int64_t n);                     // NaN stays NaN
void relu_backward(float* dx, const float* x, const float* dy, int64_t n);  // dy where x > 0

// gelu(x) = x * Phi(x), Phi the standard normal CDF = (1 + erf(x / sqrt 2)) / 2.
void gelu_forward(float* y, const float* x, int64_t n);
void gelu_backward(float* dx, const float* x, const float* dy, int64_t n);  // Phi + x phi

// The tanh approximation: x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
void gelu_tanh_forward(float* y, const float* x, int64_t n);
void gelu_tanh_backward(float* dx, const float* x, const float* dy, int64_t n);

void sigmoid_forward(float* y, const float* x, int64_t n);
void sigmoid_backward(float* dx, const float* x, const float* dy, int64_t n);

void tanh_forward(float* y, const float* x, int64_t n);
void tanh_backward(float* dx, const float* x, const float* dy, int64_t n);  // sech^2 from x

void silu_forward(float* y, const float* x, int64_t n);                     // x * sigmoid(x)
void silu_backward(float* dx, const float* x, const float* dy, int64_t n);

}  // namespace qilin::kernels::cpu
