// One training step (forward, cross-entropy, backward, AdamW) of a model on a fixed random
// batch: qilin's side of bench/compare_step.py.
//
//   bench_step --model vit|resnet20|... [--batch 128] [--steps 20]   median step time
//   bench_step ... --serve     line protocol on stdin (bench/torch_step.py has the same):
//                              step -> ms; peak -> bytes; profile -> table, "end"; info; quit
//   bench_step --config FILE [--set KEY=VALUE ...] [--steps 20] [--vs-fp32] [--profile]
//                              the step as `train --config FILE` runs it (its layers: interp
//                              tables, quantized Linear / Conv2d with dynamic activation
//                              biases; its optimizer, label smoothing and batch size); with
//                              --vs-fp32 against the same config with quant.format none, the
//                              two steps alternating, and the median of the per-pair ratios;
//                              --profile: the per-op profile of 5 more steps of FILE's model
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
#include "train/config.h"
#include "train/optim.h"
#include "train/trainer.h"

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
               "%s\nusage: bench_step --model NAME [--batch N] [--steps N] [--serve]\n"
               "       bench_step --config FILE [--set KEY=VALUE ...] [--steps N] [--vs-fp32] [--profile]\n",
               msg);
  return 2;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// A model, optimizer and fixed batch built as the trainer builds them from a config.
struct ConfiguredStep {
  qilin::ModelFactories factories;
  std::shared_ptr<qilin::Layer> model;
  std::unique_ptr<qilin::Optimizer> optimizer;
  qilin::Tensor x, y;
  float smoothing = 0;

  explicit ConfiguredStep(const qilin::Config& config) : factories(qilin::make_model_factories(config)) {
    using namespace qilin;
    Generator init_gen(static_cast<uint64_t>(config.run.seed)), data_gen(1);
    model = create_model(config.model, factories.model_factory(), init_gen);
    model->train();
    optimizer = make_optimizer(config.optim, *model);
    optimizer->set_lr(static_cast<float>(config.optim.lr));
    smoothing = static_cast<float>(config.optim.label_smoothing);
    const int64_t batch = config.data.batch_size;
    const ModelSpec& spec = config.model;
    x = rand_normal({batch, spec.in_chans, spec.img_size, spec.img_size}, data_gen);
    Tensor u = rand_uniform({batch}, data_gen, 0.0f, static_cast<float>(spec.num_classes));
    y = Tensor::empty({batch}, DType::kInt64);
    for (int64_t i = 0; i < batch; ++i) y.data<int64_t>()[i] = static_cast<int64_t>(u.data<float>()[i]);
  }
  double timed_step() {
    const auto t0 = std::chrono::steady_clock::now();
    optimizer->zero_grad();
    qilin::Tensor loss = qilin::cross_entropy(model->forward(x), y, smoothing);
    loss.backward();
    optimizer->step();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  }
};

int run_config(const std::string& path, const std::vector<std::string>& overrides, int64_t steps, bool vs_fp32,
               bool profile) {
  using namespace qilin;
  const Config config = load_config(path, overrides);
  ConfiguredStep step(config);
  std::unique_ptr<ConfiguredStep> fp32;
  if (vs_fp32) {
    Config plain = config;
    plain.quant.format = QuantFormat::kNone;
    fp32 = std::make_unique<ConfiguredStep>(plain);
  }
  for (int i = 0; i < 3; ++i) {
    step.timed_step();
    if (fp32) fp32->timed_step();
  }
  std::vector<double> ms, fp32_ms, ratios;
  for (int64_t i = 0; i < steps; ++i) {
    // Alternate which goes first, so neither always follows the other's cache footprint.
    double a = 0, b = 0;
    if (fp32 && i % 2) b = fp32->timed_step();
    a = step.timed_step();
    if (fp32 && i % 2 == 0) b = fp32->timed_step();
    ms.push_back(a);
    if (fp32) {
      fp32_ms.push_back(b);
      ratios.push_back(a / b);
    }
  }
  std::printf("%s (%s, batch %lld): median %.2f ms over %lld steps (%d threads)\n", config.run.name.c_str(),
              config.model.arch.c_str(), static_cast<long long>(config.data.batch_size), median(ms),
              static_cast<long long>(steps), omp_get_max_threads());
  if (fp32)
    std::printf("same config, quant.format none: median %.2f ms; ratio (median of %lld pairs) %.3f\n",
                median(fp32_ms), static_cast<long long>(steps), median(ratios));
  if (profile) {
    Profiler::reset();
    Profiler::enable(true);
    for (int i = 0; i < 5; ++i) step.timed_step();
    Profiler::enable(false);
    std::printf("%s", Profiler::table().c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace qilin;
  std::string model_name = "vit";
  int64_t batch = 128, steps = 20;
  bool serve = false, vs_fp32 = false, profile = false;
  std::string config_path;
  std::vector<std::string> overrides;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--model" && i + 1 < argc) model_name = argv[++i];
    else if (a == "--config" && i + 1 < argc) config_path = argv[++i];
    else if (a == "--set" && i + 1 < argc) overrides.push_back(argv[++i]);
    else if (a == "--vs-fp32") vs_fp32 = true;
    else if (a == "--profile") profile = true;
    else if (a == "--batch" && i + 1 < argc) batch = std::stoll(argv[++i]);
    else if (a == "--steps" && i + 1 < argc) steps = std::stoll(argv[++i]);
    else if (a == "--serve") serve = true;
    else return usage(("unknown argument " + a).c_str());
  }
  if (config_path.empty() && (vs_fp32 || profile || !overrides.empty()))
    return usage("--vs-fp32, --profile and --set need --config");
  try {
    if (!config_path.empty()) return run_config(config_path, overrides, steps, vs_fp32, profile);
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
