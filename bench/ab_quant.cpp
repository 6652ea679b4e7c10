// A/B of the quant kernels in one process (scripts/ab_quant.sh builds it): the working tree's
// kernels (qilin::kernels::cpu) against kernels/cpu/quant.cpp at another revision, compiled
// into namespace qilin::kernels::cpu_old and linked beside them. Both see the same machine
// within a few milliseconds: each round times a block of calls of one, then of the other
// (which goes first alternates), and the printed figure is the median over the rounds of
// old time / new time, so > 1 means the working tree is faster. Also the new kernel's time per
// 16 floats (one AVX-512 vector).
//
//   ab_quant [--threads 1] [--sizes 4096,131072] [--rows 1] [--rounds 31]
//
// --rows R splits each size into R rows with parameters per row (per channel); every row
// gets the same parameters, so the work is the per-tensor work plus the per-row set-up.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/ops/quant.h"
#include "core/qfp8.h"
#include "core/tensor.h"
#include "kernels/cpu/quant.h"
#include "quant_old.h"  // REV's kernels/cpu/quant.h in namespace cpu_old (scripts/ab_quant.sh)


namespace {

namespace kc = qilin::kernels::cpu;
namespace ko = qilin::kernels::cpu_old;
using qilin::QuantChannel;

struct Options {
  int threads = 1;
  std::vector<int64_t> sizes = {4096, 131072};
  int64_t rows = 1;
  int rounds = 31;
};

double now_ns() {
  return std::chrono::duration<double, std::nano>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct Format {
  const char* name;
  qilin::QuantSpec spec;
};

std::vector<Format> formats() {
  auto spec = [](qilin::QuantFormat f, qilin::Qfp8Layout layout) {
    qilin::QuantSpec s;
    s.format = f;
    s.layout = layout;
    s.bias = qilin::BiasMode::kAmax;
    s.granularity = qilin::Granularity::kPerTensor;
    return s;
  };
  return {{"qfp8 e3m4", spec(qilin::QuantFormat::kQfp8, qilin::kQfp8E3M4)},
          {"qfp8 e5m2", spec(qilin::QuantFormat::kQfp8, qilin::kQfp8E5M2)},
          {"int8", spec(qilin::QuantFormat::kInt8, qilin::kQfp8E3M4)},
          {"fp8_e4m3", spec(qilin::QuantFormat::kFp8E4M3, qilin::kQfp8E3M4)},
          {"fp8_e5m2", spec(qilin::QuantFormat::kFp8E5M2, qilin::kQfp8E3M4)}};
}

void run(const Options& opt, int64_t n) {
  const int64_t rows = std::max<int64_t>(1, std::min(opt.rows, n));
  const int64_t inner = n / rows;
  n = rows * inner;
  std::vector<float> x(n), y(n), dy(n), dx(n);
  std::vector<uint8_t> codes(n);
  std::mt19937 gen(1);
  std::normal_distribution<float> normal;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = normal(gen);
    dy[i] = normal(gen);
  }
  const qilin::Tensor xt = qilin::Tensor::from_vector(x, {1, n});
  // Blocks of about 2 ms, at least one call.
  const int calls = static_cast<int>(std::max<int64_t>(1, 2'000'000 / std::max<int64_t>(1, n / 2)));
  std::printf("%lld floats (%lld rows of %lld), %d thread(s), %d calls per block, %d rounds:\n",
              static_cast<long long>(n), static_cast<long long>(rows), static_cast<long long>(inner),
              opt.threads, calls, opt.rounds);
  for (const Format& f : formats()) {
    const QuantChannel c = qilin::choose_params(f.spec, xt, "x").channel(0);
    const std::vector<QuantChannel> params(static_cast<size_t>(rows), c);
    const QuantChannel* p = params.data();
    const int64_t np = rows;
    kc::quant_encode_packed(p, np, x.data(), codes.data(), rows, inner);
    std::printf("  %-10s", f.name);
    const char* names[] = {"forward", "backward", "encode", "decode"};
    for (int op = 0; op < 4; ++op) {
      auto call = [&](bool fresh) {
        switch (op) {
          case 0:
            fresh ? kc::fake_quant_forward(p, np, x.data(), y.data(), rows, inner)
                  : ko::fake_quant_forward(p, np, x.data(), y.data(), rows, inner);
            break;
          case 1:
            fresh ? kc::fake_quant_backward(p, np, x.data(), dy.data(), dx.data(), rows, inner, false)
                  : ko::fake_quant_backward(p, np, x.data(), dy.data(), dx.data(), rows, inner, false);
            break;
          case 2:
            fresh ? kc::quant_encode_packed(p, np, x.data(), codes.data(), rows, inner)
                  : ko::quant_encode_packed(p, np, x.data(), codes.data(), rows, inner);
            break;
          default:
            fresh ? kc::quant_decode_packed(p, np, codes.data(), y.data(), rows, inner)
                  : ko::quant_decode_packed(p, np, codes.data(), y.data(), rows, inner);
        }
      };
      auto block = [&](bool fresh) {
        call(fresh);  // warm
        const double t0 = now_ns();
        for (int k = 0; k < calls; ++k) call(fresh);
        return (now_ns() - t0) / calls;
      };
      std::vector<double> ratio, fresh_ns;
      for (int round = 0; round < opt.rounds; ++round) {
        double old_ns, new_ns;
        if (round % 2) {
          old_ns = block(false);
          new_ns = block(true);
        } else {
          new_ns = block(true);
          old_ns = block(false);
        }
        ratio.push_back(old_ns / new_ns);
        fresh_ns.push_back(new_ns);
      }
      std::sort(ratio.begin(), ratio.end());
      std::sort(fresh_ns.begin(), fresh_ns.end());
      std::printf("  %s %.3f (%.2f ns/16)", names[op], ratio[ratio.size() / 2],
                  fresh_ns[fresh_ns.size() / 2] / (static_cast<double>(n) / 16));
    }
    std::printf("\n");
  }
}

std::vector<int64_t> parse_sizes(const std::string& list) {
  std::vector<int64_t> out;
  std::stringstream in(list);
  std::string item;
  while (std::getline(in, item, ',')) {
    const int64_t n = std::stoll(item);
    if (n < 16) throw std::invalid_argument(item);  // at least one vector
    out.push_back(n);
  }
  if (out.empty()) throw std::invalid_argument(list);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "ab_quant: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    try {
      if (a == "--threads") opt.threads = std::max(1, std::stoi(next()));
      else if (a == "--sizes") opt.sizes = parse_sizes(next());
      else if (a == "--rows") opt.rows = std::max<int64_t>(1, std::stoll(next()));
      else if (a == "--rounds") opt.rounds = std::max(1, std::stoi(next()));
      else throw std::invalid_argument(a);
    } catch (const std::exception&) {
      std::fprintf(stderr,
                   "usage: ab_quant [--threads 1] [--sizes 4096,131072] [--rows 1] [--rounds 31]\n");
      return 2;
    }
  }
  omp_set_num_threads(opt.threads);
  for (int64_t n : opt.sizes) run(opt, n);
  return 0;
}
