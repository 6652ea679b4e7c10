// One training step (forward, cross-entropy, backward, AdamW) of a model on a fixed random
// batch: qilin's side of bench/compare_step.py.
//
//   bench_step --model vit|resnet20|... [--batch 128] [--steps 20]   median step time
//   bench_step ... --serve     line protocol on stdin (bench/torch_step.py has the same):
//                              step -> ms; peak -> bytes; profile -> table, "end"; info; quit
//
// "peak" is the peak resident memory of one step above the resident memory held once the
// model and optimizer exist (VmHWM after resetting it through /proc/self/clear_refs).
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/ops/loss.h"
#include "core/profiler.h"
#include "core/random.h"
#include "models/registry.h"
#include "train/optim.h"

namespace {

int64_t read_status_bytes(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  const size_t n = std::strlen(key);
  while (std::getline(f, line)) {
    if (line.compare(0, n, key) == 0 && line[n] == ':') return std::stoll(line.substr(n + 1)) * 1024;
  }
  return -1;
}

void clear_peak() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
}

int usage(const char* msg) {
  std::fprintf(stderr,
               "%s\nusage: bench_step --model NAME [--batch N] [--steps N] [--serve]\n", msg);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace qilin;
  std::string model_name = "vit";
  int64_t batch = 128, steps = 20;
  bool serve = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--model" && i + 1 < argc) model_name = argv[++i];
    else if (a == "--batch" && i + 1 < argc) batch = std::stoll(argv[++i]);
    else if (a == "--steps" && i + 1 < argc) steps = std::stoll(argv[++i]);
    else if (a == "--serve") serve = true;
    else return usage(("unknown argument " + a).c_str());
  }
  try {
    ModelSpec spec;
    spec.arch = model_name;
    Generator init_gen(0), data_gen(1);
    auto model = create_model(spec, init_gen);
    model->train();
    AdamWOptions opt_options;
    opt_options.lr = 1e-3f;
    AdamW opt({ParamGroup{model->named_parameters(), 0.05f}}, opt_options);
    Tensor x = rand_normal({batch, spec.in_chans, spec.img_size, spec.img_size}, data_gen);
    Tensor u = rand_uniform({batch}, data_gen, 0.0f, static_cast<float>(spec.num_classes));
    Tensor y = Tensor::empty({batch}, DType::kInt64);
    for (int64_t i = 0; i < batch; ++i) y.data<int64_t>()[i] = static_cast<int64_t>(u.data<float>()[i]);
    const int64_t held = read_status_bytes("VmRSS");

    auto step = [&] {
      opt.zero_grad();
      Tensor loss = cross_entropy(model->forward(x), y);
      loss.backward();
      opt.step();
    };
    auto timed_step = [&] {
      auto t0 = std::chrono::steady_clock::now();
      step();
      return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    };

    if (!serve) {
      for (int i = 0; i < 3; ++i) step();
      std::vector<double> ms;
      for (int64_t i = 0; i < steps; ++i) ms.push_back(timed_step());
      std::sort(ms.begin(), ms.end());
      std::printf("%s batch %lld: median %.2f ms over %lld steps (%d threads)\n", model_name.c_str(),
                  static_cast<long long>(batch), ms[ms.size() / 2], static_cast<long long>(steps),
                  omp_get_max_threads());
      return 0;
    }
    std::string cmd;
    while (std::getline(std::cin, cmd)) {
      if (cmd == "step") {
        std::printf("%.4f\n", timed_step());
      } else if (cmd == "peak") {
        clear_peak();
        step();
        std::printf("%lld\n", static_cast<long long>(read_status_bytes("VmHWM") - held));
      } else if (cmd == "profile") {
        Profiler::reset();
        Profiler::enable(true);
        for (int i = 0; i < 5; ++i) step();
        Profiler::enable(false);
        std::printf("%send\n", Profiler::table().c_str());
      } else if (cmd == "info") {
        std::printf("qilin threads %d params %lld\n", omp_get_max_threads(),
                    static_cast<long long>(model->num_parameters()));
      } else if (cmd == "quit") {
        break;
      } else {
        std::printf("error: unknown command %s\n", cmd.c_str());
      }
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_step: %s\n", e.what());
    return 1;
  }
  return 0;
}
