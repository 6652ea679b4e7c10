// qilin_demo: the engine's demo and, until the `train` program exists, the README's main
// command. Trains a small timm-style ViT (28x28 input, patch 4, dim 64, depth 4, 4 heads)
// on Fashion-MNIST with AdamW and a warm-up + cosine LR schedule, printing loss, LR and
// images/s as it goes and the test accuracy at the end.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

#include "core/autograd.h"
#include "core/ops/loss.h"
#include "core/ops/reduce.h"
#include "core/random.h"
#include "data/idx.h"
#include "models/registry.h"
#include "train/lr_schedule.h"
#include "train/optim.h"

namespace qilin {
namespace {

// Fashion-MNIST's training-set mean and standard deviation of pixel / 255.
constexpr float kFashionMean = 0.2860f;
constexpr float kFashionStd = 0.3530f;

struct DemoOptions {
  std::string arch = "vit";
  std::string data_dir = FashionMnist::kDefaultDir;
  int64_t epochs = 1;
  int64_t batch = 128;
  int64_t train_size = 0;  // 0: all 60000
  int64_t max_steps = 0;   // 0: no limit
  float lr = 2e-3f;
  int log_every = 50;
};

void print_help() {
  std::printf(
      "usage: qilin_demo [--arch vit|resnet20|regnety|mlp] [--epochs N] [--batch N]\n"
      "                  [--train-size N] [--max-steps N] [--lr X] [--data DIR]\n"
      "Trains a model on Fashion-MNIST (Debian package dataset-fashion-mnist) and reports\n"
      "the test accuracy. Defaults: vit, 1 epoch, batch 128, lr 2e-3, all 60000 images.\n");
}

// Images [n, 28, 28] uint8 rows `index[begin..end)` -> normalised float [B, 1, 28, 28].
Tensor make_batch(const Tensor& images, const int64_t* index, int64_t count) {
  const int64_t pixels = images.size(1) * images.size(2);
  Tensor x = Tensor::empty({count, 1, images.size(1), images.size(2)});
  const uint8_t* src = images.data<uint8_t>();
  float* dst = x.data<float>();
  for (int64_t b = 0; b < count; ++b) {
    const uint8_t* row = src + index[b] * pixels;
    for (int64_t p = 0; p < pixels; ++p)
      dst[b * pixels + p] = (row[p] / 255.0f - kFashionMean) / kFashionStd;
  }
  return x;
}

Tensor gather_labels(const Tensor& labels, const int64_t* index, int64_t count) {
  Tensor y = Tensor::empty({count}, DType::kInt64);
  for (int64_t b = 0; b < count; ++b) y.data<int64_t>()[b] = labels.data<int64_t>()[index[b]];
  return y;
}

double evaluate(Layer& model, const ImagesAndLabels& test, int64_t batch) {
  NoGradGuard no_grad;
  model.eval();
  const int64_t n = test.images.size(0);
  int64_t correct = 0;
  std::vector<int64_t> index(n);
  for (int64_t i = 0; i < n; ++i) index[i] = i;
  for (int64_t begin = 0; begin < n; begin += batch) {
    const int64_t count = std::min(batch, n - begin);
    Tensor pred = argmax(model.forward(make_batch(test.images, index.data() + begin, count)), 1);
    for (int64_t b = 0; b < count; ++b)
      correct += pred.data<int64_t>()[b] == test.labels.data<int64_t>()[begin + b];
  }
  model.train();
  return static_cast<double>(correct) / n;
}

int run(const DemoOptions& o) {
  FashionMnist data;
  data.dir = o.data_dir;
  ImagesAndLabels train = data.load(DataSplit::kTrain);
  ImagesAndLabels test = data.load(DataSplit::kTest);
  const int64_t n_train = o.train_size > 0 ? std::min(o.train_size, train.images.size(0))
                                           : train.images.size(0);
  const int64_t steps_per_epoch = n_train / o.batch;
  int64_t total_steps = steps_per_epoch * o.epochs;
  if (o.max_steps > 0) total_steps = std::min(total_steps, o.max_steps);

  ModelSpec spec;
  spec.arch = o.arch;
  Generator init_gen(0), shuffle_gen(1);
  auto model = create_model(spec, init_gen);
  model->train();
  AdamWOptions adamw;
  adamw.lr = o.lr;
  AdamW opt({ParamGroup{model->named_parameters(), 0.05f}}, adamw);
  LrSchedule schedule;
  schedule.kind = LrScheduleKind::kCosine;
  schedule.base_lr = o.lr;
  schedule.warmup_steps = std::max<int64_t>(1, total_steps / 10);
  schedule.total_steps = total_steps + 1;
  schedule.min_lr = o.lr * 0.01;
  schedule.validate();

  std::printf("qilin demo: %s (%lld parameters), Fashion-MNIST %lld train / %lld test images, "
              "batch %lld, %lld steps, %d threads\n",
              o.arch.c_str(), static_cast<long long>(model->num_parameters()),
              static_cast<long long>(n_train), static_cast<long long>(test.images.size(0)),
              static_cast<long long>(o.batch), static_cast<long long>(total_steps),
              omp_get_max_threads());
  int64_t step = 0;
  double loss_sum = 0;
  int loss_count = 0;
  auto t_start = std::chrono::steady_clock::now(), t_log = t_start;
  for (int64_t epoch = 0; step < total_steps; ++epoch) {
    Tensor perm = randperm(n_train, shuffle_gen);
    for (int64_t s = 0; s < steps_per_epoch && step < total_steps; ++s, ++step) {
      const int64_t* index = perm.data<int64_t>() + s * o.batch;
      Tensor x = make_batch(train.images, index, o.batch);
      Tensor y = gather_labels(train.labels, index, o.batch);
      opt.set_lr(schedule.lr_at(step));
      opt.zero_grad();
      Tensor loss = cross_entropy(model->forward(x), y, 0.0f);
      loss.backward();
      opt.step();
      const float l = loss.item();
      if (!std::isfinite(l)) {
        std::fprintf(stderr, "qilin_demo: loss is %f at step %lld: stopping\n", l,
                     static_cast<long long>(step));
        return 1;
      }
      loss_sum += l;
      ++loss_count;
      if ((step + 1) % o.log_every == 0 || step + 1 == total_steps) {
        auto now = std::chrono::steady_clock::now();
        double secs = std::chrono::duration<double>(now - t_log).count();
        std::printf("epoch %lld step %5lld/%lld  loss %.4f  lr %.2e  %.0f images/s\n",
                    static_cast<long long>(epoch), static_cast<long long>(step + 1),
                    static_cast<long long>(total_steps), loss_sum / loss_count, opt.lr(),
                    loss_count * o.batch / secs);
        std::fflush(stdout);
        loss_sum = 0;
        loss_count = 0;
        t_log = now;
      }
    }
  }
  double train_secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  double acc = evaluate(*model, test, 500);
  std::printf("test accuracy %.2f%% after %lld steps (%.1f s of training)\n", 100 * acc,
              static_cast<long long>(total_steps), train_secs);
  return 0;
}

}  // namespace
}  // namespace qilin

int main(int argc, char** argv) {
  qilin::DemoOptions o;
  try {
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      auto value = [&]() -> std::string {
        if (i + 1 >= argc) throw qilin::Error(a + ": missing value");
        return argv[++i];
      };
      if (a == "--help" || a == "-h") {
        qilin::print_help();
        return 0;
      } else if (a == "--arch") o.arch = value();
      else if (a == "--data") o.data_dir = value();
      else if (a == "--epochs") o.epochs = std::stoll(value());
      else if (a == "--batch") o.batch = std::stoll(value());
      else if (a == "--train-size") o.train_size = std::stoll(value());
      else if (a == "--max-steps") o.max_steps = std::stoll(value());
      else if (a == "--lr") o.lr = std::stof(value());
      else throw qilin::Error("unknown argument " + a + " (see --help)");
    }
    if (o.epochs < 1 || o.batch < 1 || o.lr <= 0)
      throw qilin::Error("--epochs and --batch must be >= 1 and --lr > 0");
    return qilin::run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qilin_demo: %s\n", e.what());
    return 1;
  }
}
