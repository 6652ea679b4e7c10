// Fake-quant kernels against a plain copy (issue 5, Must show 4: quantize / dequantize at
// >= 80% of copy bandwidth): forward y = fake_quant(x) against memcpy, the STE backward
// dx = dy * [|x| <= max] against dx = x * dy, both over parallel_for with the same chunks
// and threads, per tensor and per channel, on a 256x1024 weight and a 5,000,000-float
// activation, for qfp8 e3m4 / e4m3, int8 and fp8_e4m3; the packed quantize (encode, 4 bytes
// in, 1 out) against a narrowing copy that moves the same bytes (each float's top byte), and
// the dequantize (decode, 1 in, 4 out) against a widening copy (each byte converted to float);
// those two print their own ratio to memcpy. Plus the per-call cost of choosing a dynamic
// activation's parameters (amax + β) with choose_params, next to the scalar
// choose_quant_params it replaces.
//
//   bench_quant [--reps 21] [--warmup 2] [--threads 2] [--format text|csv]
//
// Each row is the median of `reps` timed calls after `warmup` untimed ones, each kernel timed
// round-robin with its copy baseline; ratio = kernel GB/s / that copy's GB/s. GB/s counts the
// bytes each kernel must move: forward 8 per element (read x, write y), backward 12 (read x
// and dy, write dx), encode and decode 5, amax 4. Run pinned and quiet for the record:
//   taskset -c 0,1 env OMP_PROC_BIND=true OMP_WAIT_POLICY=passive bench_quant --threads 2
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/ops/quant.h"
#include "core/qfp8.h"
#include "core/tensor.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/quant.h"

namespace {

namespace kc = qilin::kernels::cpu;
using qilin::QuantChannel;
using qilin::QuantFormat;
using qilin::QuantParams;
using qilin::QuantSpec;

struct Options {
  int reps = 21;
  int warmup = 2;
  int threads = 2;
  bool csv = false;
};

// Medians of each function's timed calls, taken round-robin (one call of each per round,
// after `warmup` untimed rounds) so the kernels and their copy baseline see the same
// machine: on a shared 2-core box a burst of other work then shifts both, not one.
std::vector<double> median_seconds(const Options& opt, const std::vector<std::function<void()>>& fns) {
  // At least `warmup` rounds and 50 ms: the first kernel timed after the set-up's scalar
  // code ran 5-7% slower than the same kernel timed later when warmed up by round count only
  // (the clock's AVX-512 transition, we think); with 50 ms the order no longer shows.
  const auto warm_until = std::chrono::steady_clock::now() + std::chrono::milliseconds(50);
  for (int r = 0; r < opt.warmup || std::chrono::steady_clock::now() < warm_until; ++r)
    for (const auto& fn : fns) fn();
  std::vector<std::vector<double>> t(fns.size());
  for (int r = 0; r < opt.reps; ++r) {
    for (size_t k = 0; k < fns.size(); ++k) {
      const auto start = std::chrono::steady_clock::now();
      fns[k]();
      t[k].push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
  }
  std::vector<double> medians;
  for (std::vector<double>& v : t) {
    std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
    medians.push_back(v[v.size() / 2]);
  }
  return medians;
}

// The baselines: the same parallel_for chunks as the kernels, the loops the compiler
// vectorizes itself.
void copy_forward(const float* x, float* y, int64_t n) {
  kc::parallel_for(n, 1, [&](int64_t b, int64_t e) {
    std::memcpy(y + b, x + b, static_cast<size_t>(e - b) * sizeof(float));
  });
}
void multiply_backward(const float* x, const float* dy, float* dx, int64_t n) {
  kc::parallel_for(n, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) dx[i] = x[i] * dy[i];
  });
}

// The packed kernels' baselines: the same bytes moved with no arithmetic beyond the narrowing
// or widening itself (the compiler vectorizes both: shift + vpmovdb; vpmovzxbd + vcvtdq2ps).
// The narrowing copy prefetches its input 2 KiB ahead, as encode does: that took it from
// 0.88-0.95 of memcpy to 0.98-1.06 on 20 MB, so encode is measured against the faster copy.
void narrow_rows(const uint32_t* __restrict bits, uint8_t* __restrict codes, int64_t b, int64_t e) {
  constexpr int64_t kAhead = 512, kBlock = 64;  // floats
  int64_t i = b;
  for (; i + kBlock + kAhead <= e; i += kBlock) {
    for (int64_t line = 0; line < kBlock; line += 16) __builtin_prefetch(bits + i + kAhead + line);
    for (int64_t j = i; j < i + kBlock; ++j) codes[j] = static_cast<uint8_t>(bits[j] >> 24);
  }
  for (; i < e; ++i) codes[i] = static_cast<uint8_t>(bits[i] >> 24);
}
void narrow_copy(const float* x, uint8_t* codes, int64_t n) {
  const auto* bits = reinterpret_cast<const uint32_t*>(x);  // the bench's own arrays
  kc::parallel_for(n, 1, [&](int64_t b, int64_t e) { narrow_rows(bits, codes, b, e); });
}
void widen_copy(const uint8_t* codes, float* y, int64_t n) {
  kc::parallel_for(n, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) y[i] = static_cast<float>(codes[i]);
  });
}

struct Format {
  const char* name;
  QuantSpec spec;
};

QuantSpec spec_of(QuantFormat f, qilin::Qfp8Layout layout, qilin::Granularity g) {
  QuantSpec s;
  s.format = f;
  s.layout = layout;
  s.bias = qilin::BiasMode::kAmax;
  s.granularity = g;
  return s;
}

// copy_bytes: what the copy it is compared with moved (default: the same bytes).
void print_row(const Options& opt, const std::string& tensor, const char* granularity, const char* format,
               const char* op, double seconds, double bytes, double copy_seconds, double copy_bytes = 0) {
  const double gbs = bytes / seconds * 1e-9;
  const double copy_gbs = (copy_bytes > 0 ? copy_bytes : bytes) / copy_seconds * 1e-9;
  if (opt.csv) {
    std::printf("%s,%s,%s,%s,%.4f,%.2f,%.2f,%.3f\n", tensor.c_str(), granularity, format, op, seconds * 1e3,
                gbs, copy_gbs, gbs / copy_gbs);
  } else {
    std::printf("%-16s %-12s %-10s %-9s %9.4f %8.2f %8.2f %7.2f\n", tensor.c_str(), granularity, format, op,
                seconds * 1e3, gbs, copy_gbs, gbs / copy_gbs);
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_quant: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--reps") opt.reps = std::max(1, std::stoi(next()));
    else if (a == "--warmup") opt.warmup = std::max(0, std::stoi(next()));
    else if (a == "--threads") opt.threads = std::max(1, std::stoi(next()));
    else if (a == "--format") opt.csv = next() == "csv";
    else {
      std::fprintf(stderr,
                   "usage: bench_quant [--reps 21] [--warmup 2] [--threads 2] [--format text|csv]\n");
      return a == "--help" ? 0 : 2;
    }
  }
  omp_set_num_threads(opt.threads);

  struct Case {
    std::string name;
    int64_t channels, inner;
    qilin::Granularity granularity;
  };
  const std::vector<Case> cases = {{"weight 256x1024", 256, 1024, qilin::Granularity::kPerChannel},
                                   {"weight 256x1024", 256, 1024, qilin::Granularity::kPerTensor},
                                   {"act 5000000", 1, 5000000, qilin::Granularity::kPerTensor}};
  const std::vector<std::pair<const char*, std::pair<QuantFormat, qilin::Qfp8Layout>>> formats = {
      {"qfp8_e3m4", {QuantFormat::kQfp8, qilin::kQfp8E3M4}},
      {"qfp8_e4m3", {QuantFormat::kQfp8, qilin::kQfp8E4M3}},
      {"int8", {QuantFormat::kInt8, qilin::kQfp8E3M4}},
      {"fp8_e4m3", {QuantFormat::kFp8E4M3, qilin::kQfp8E3M4}}};

  if (opt.csv) std::printf("tensor,granularity,format,op,ms,gb_per_s,copy_gb_per_s,ratio\n");
  else
    std::printf("%-16s %-12s %-10s %-9s %9s %8s %8s %7s\n", "tensor", "granularity", "format", "op", "ms",
                "GB/s", "copyGB/s", "ratio");
  for (const Case& c : cases) {
    const int64_t n = c.channels * c.inner;
    std::vector<float> x(n), y(n), dy(n), dx(n);
    std::vector<uint8_t> codes(n);
    std::mt19937 gen(1);
    std::normal_distribution<float> dist(0.0f, 1.0f);
    for (int64_t i = 0; i < n; ++i) {
      x[i] = dist(gen) * (1.0f + static_cast<float>(i / c.inner % 7));  // rows of different range
      dy[i] = dist(gen);
    }
    // Every kernel, baseline and choose_params reads the tensor's own storage.
    qilin::Tensor xt = qilin::Tensor::from_vector(x, {c.channels, c.inner});
    const float* xp = xt.data<float>();
    const char* gran = c.granularity == qilin::Granularity::kPerChannel ? "per_channel" : "per_tensor";
    // Each kernel is timed round-robin with its own copy baseline (same arrays, so the same
    // cache state); the copy rows print the first pairing's copy.
    auto copy_fwd = [&] { copy_forward(xp, y.data(), n); };
    auto copy_bwd = [&] { multiply_backward(xp, dy.data(), dx.data(), n); };
    bool first = true;
    for (const auto& [fname, f] : formats) {
      const QuantParams p = qilin::choose_params(spec_of(f.first, f.second, c.granularity), xt, "x");
      std::vector<QuantChannel> entries;
      for (int64_t i = 0; i < p.size(); ++i) entries.push_back(p.channel(i));
      const int64_t np = p.size();
      const std::vector<double> fwd = median_seconds(opt, {copy_fwd, [&] {
        kc::fake_quant_forward(entries.data(), np, xp, y.data(), c.channels, c.inner);
      }});
      const std::vector<double> bwd = median_seconds(opt, {copy_bwd, [&] {
        kc::fake_quant_backward(entries.data(), np, xp, dy.data(), dx.data(), c.channels, c.inner, false);
      }});
      if (first) {
        print_row(opt, c.name, gran, "copy", "forward", fwd[0], 8.0 * n, fwd[0]);
        print_row(opt, c.name, gran, "copy", "backward", bwd[0], 12.0 * n, bwd[0]);
        first = false;
      }
      print_row(opt, c.name, gran, fname, "forward", fwd[1], 8.0 * n, fwd[0]);
      print_row(opt, c.name, gran, fname, "backward", bwd[1], 12.0 * n, bwd[0]);
      // Quantize to packed codes (4 bytes in, 1 out) against the narrowing copy, dequantize
      // (1 in, 4 out) against the widening copy; those two against memcpy.
      const std::vector<double> pack = median_seconds(
          opt, {copy_fwd, [&] { narrow_copy(xp, codes.data(), n); },
                [&] { kc::quant_encode_packed(entries.data(), np, xp, codes.data(), c.channels, c.inner); },
                [&] { widen_copy(codes.data(), y.data(), n); },
                [&] { kc::quant_decode_packed(entries.data(), np, codes.data(), y.data(), c.channels, c.inner); }});
      print_row(opt, c.name, gran, fname, "narrow", pack[1], 5.0 * n, pack[0], 8.0 * n);
      print_row(opt, c.name, gran, fname, "encode", pack[2], 5.0 * n, pack[1]);
      print_row(opt, c.name, gran, fname, "widen", pack[3], 5.0 * n, pack[0], 8.0 * n);
      print_row(opt, c.name, gran, fname, "decode", pack[4], 5.0 * n, pack[3]);
    }
    // Dynamic activation parameters: amax + β per call (vector kernel), against the scalar
    // scan of choose_quant_params. GB/s counts reading x once; copy GB/s is the copy's.
    if (c.granularity == qilin::Granularity::kPerTensor) {
      const QuantSpec s = spec_of(QuantFormat::kQfp8, qilin::kQfp8E3M4, c.granularity);
      const std::vector<double> t = median_seconds(
          opt, {copy_fwd, [&] { qilin::choose_params(s, xt, "x"); },
                [&] { qilin::choose_quant_params(s, xp, c.channels, c.inner, "x"); }});
      print_row(opt, c.name, gran, "qfp8_e3m4", "params", t[1], 4.0 * n, t[0] / 2);
      print_row(opt, c.name, gran, "qfp8_e3m4", "params_sc", t[2], 4.0 * n, t[0] / 2);
    }
  }
  return 0;
}
