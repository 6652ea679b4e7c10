// Interpolation tables (DESIGN.md §4.1, PAPER.md §1): the functions, their tables built in
// double and stored as float32, the baselines behind the same interface, and the error
// metrics. Evaluation of one value is core/interp_view.h (the scalar reference); whole
// tensors go through kernels/cpu/interp.h (vectorized) from core/ops/interp.h (autograd).
//
//   InterpTable t = InterpTable::build({InterpFn::kGelu, InterpMethod::kUniform, 4096});
//   float y = interp_eval(t.view(), x);               // one value
//   InterpError e = interp_error(t, 1000000);         // L_inf, RMS against the exact f
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/interp_view.h"

namespace qilin {

// The functions a table can replace. kExp is the exp inside Softmax (config key `softmax`).
enum class InterpFn : uint8_t { kExp, kSigmoid, kTanh, kGelu, kSilu };
// uniform: Algorithm 1; binary_search: the same pieces, O(log P) search; nonuniform:
// PAPER.md §4.5; igelu: I-BERT's polynomial (GELU only, no table); native: the exact function.
enum class InterpMethod : uint8_t { kUniform, kBinarySearch, kNonuniform, kIgelu, kNative };
enum class InterpOutside : uint8_t { kAsymptote, kExtrapolate };
enum class InterpGrad : uint8_t { kSlope, kTable };

const char* to_string(InterpFn fn);          // "exp", "sigmoid", "tanh", "gelu", "silu"
const char* to_string(InterpMethod method);  // "uniform", "binary_search", ...
const char* to_string(InterpOutside outside);
const char* to_string(InterpGrad grad);
// Parse the names above; an unknown name is a qilin::Error listing the valid ones.
InterpFn parse_interp_fn(const std::string& name);
InterpMethod parse_interp_method(const std::string& name);
InterpOutside parse_interp_outside(const std::string& name);
InterpGrad parse_interp_grad(const std::string& name);

// The exact function and its derivative in double (gelu in its erf form:
// x / 2 (1 + erf(x / sqrt 2)); silu x sigmoid(x)).
double interp_fn_exact(InterpFn fn, double x);
double interp_fn_derivative(InterpFn fn, double x);

// A domain [a, a + 2^m). m == kUnset: not given (InterpSpec: the function's default domain).
struct InterpDomain {
  static constexpr int32_t kUnset = -2147483647 - 1;
  double a = 0.0;
  int32_t m = kUnset;
  bool is_set() const { return m != kUnset; }
  double lo() const { return a; }
  double hi() const;  // a + 2^m
};
// The paper's domains: exp [-16, 0], sigmoid [-8, 8], tanh [-4, 4], gelu [-5, 3], silu
// [-16, 16].
InterpDomain default_domain(InterpFn fn);
// [lo, hi] as a domain: hi - lo must be a power of two 2^m with -24 <= m <= 24 and lo, hi
// float32-exact; else a qilin::Error naming `what` (e.g. "interp.functions.gelu.domain").
InterpDomain make_domain(double lo, double hi, const std::string& what);

struct InterpSpec {
  InterpFn fn = InterpFn::kGelu;
  InterpMethod method = InterpMethod::kUniform;
  int64_t pieces = 4096;   // a power of two 2^1 .. 2^16 (uniform, binary_search); nonuniform:
                           // the total over its segments (segments x 2^k)
  InterpDomain domain;     // not set: the function's default domain
  InterpOutside outside = InterpOutside::kAsymptote;
  InterpGrad grad = InterpGrad::kSlope;
  int32_t nonuniform_segments = 0;  // nonuniform: sub-intervals; 0: the default (PAPER.md §4.5)
};

// One function's table (or, for igelu / native, no table: view() is not used). Immutable
// once built; share it (tables of the same spec are cached by InterpTable::get).
class InterpTable {
 public:
  // Builds the table: breakpoints x_i in double, k_i and b_i of each chord in double
  // (PAPER.md §1), stored as float32; the outside lines per spec.outside. For grad: table,
  // also the derivative table (the same kind and pieces, interpolating f'). Invalid specs
  // (pieces not a power of two or out of range, igelu for another function, a bad domain)
  // are a qilin::Error naming the value.
  static std::shared_ptr<const InterpTable> build(const InterpSpec& spec);
  // build() with a process-wide cache keyed by the spec.
  static std::shared_ptr<const InterpTable> get(const InterpSpec& spec);

  const InterpSpec& spec() const { return spec_; }
  bool has_table() const;  // false for igelu and native
  InterpTableView view() const;             // requires has_table()
  InterpTableView derivative_view() const;  // requires spec.grad == kTable
  int64_t pieces() const;
  int64_t table_bytes() const;  // the (k, b) pairs, plus breakpoints / segments
  // e.g. "interp uniform gelu 4096 pieces [-5, 3] grad slope" (summary.json, DESIGN.md §5).
  std::string describe() const;

  // Scalar evaluation of this spec's method (tables through interp_eval; igelu; native in
  // float32 like the native kernels). For tests, the error tables and plots.
  float eval(float x) const;
  float derivative(float x) const;  // the backward's dy/dx for spec.grad

 private:
  InterpSpec spec_;
  std::vector<float> kb_, breaks_, dkb_, dbreaks_;
  std::vector<float> k_;  // kb_'s slopes alone, for the CPU backward (InterpTableView::k)
  std::vector<InterpSegment> segments_, dsegments_;
  InterpTableView view_{}, dview_{};
};

// I-BERT's i-GELU in float32 (Kim et al. 2021): L(x) = sign(x) [a (min(|x|, -b) + b)^2 + 1]
// with a = -0.2888, b = -1.769, igelu(x) = x / 2 (1 + L(x / sqrt 2)); and its derivative.
float igelu(float x);
float igelu_derivative(float x);

// Fitting error of a spec's forward against the exact function over `samples` points
// spread uniformly over the domain (x_j = lo + (j + 0.5) (hi - lo) / samples, rounded to
// float32), in double: L_inf = max |fit - f|, RMS = sqrt(mean (fit - f)^2) (DESIGN.md §4.1).
struct InterpError {
  double linf = 0.0, rms = 0.0;
  double argmax = 0.0;  // the x of the largest error
};
InterpError interp_error(const InterpTable& table, int64_t samples = 1000000);

}  // namespace qilin
