// Does the data loader keep the trainer fed? (issue 3). Three measurements on Fashion-MNIST
// (the quick-start's data, batch 128), each a median over --batches batches:
//   1. the loader alone: images/s delivered to a consumer that does nothing, for each
//      pipeline (plain: /255 + normalise; augmented: + random crop pad 4 + flip; mixed:
//      + mixup/cutmix) and worker count;
//   2. the quick-start ViT's training step on one fixed batch (no loader): the rate to keep up
//      with;
//   3. the same step fed by the loader: if the loader keeps up, 3 ≈ 2.
// Also an image folder of JPEGs (--jpeg N: N 96x96 images written to a temp dir) through
// decode + random-resized-crop to 64: the decode-bound case.
//
//   bench_loader [--batches 40] [--jpeg 2000]
#include <omp.h>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/ops/loss.h"
#include "core/random.h"
#include "data/datasets.h"
#include "data/loader.h"
#include "data/transforms.h"
#include "models/registry.h"
#include "train/optim.h"

namespace {

using namespace qilin;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Median seconds per batch of `batches` batches from `loader` (after 3 warm-up batches),
// handing each to `consume`.
template <typename Fn>
double per_batch(DataLoader& loader, int64_t batches, Fn&& consume) {
  loader.start(0);
  for (int i = 0; i < 3; ++i) consume(*loader.next());
  std::vector<double> s;
  for (int64_t i = 0; i < batches; ++i) {
    const auto t0 = Clock::now();
    std::optional<Batch> b = loader.next();
    if (!b) break;
    consume(*b);
    s.push_back(seconds_since(t0));
  }
  return median(s);
}

LoaderOptions options(int64_t workers, const Compose& transform, bool mix) {
  LoaderOptions o;
  o.batch_size = 128;
  o.workers = workers;
  o.prefetch = 4;
  o.seed = 0;
  o.transform = transform;
  if (mix) {
    o.mix.mixup_alpha = 0.8;
    o.mix.cutmix_alpha = 1.0;
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t batches = 40, jpeg = 2000;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--batches" && i + 1 < argc) batches = std::stoll(argv[++i]);
    else if (a == "--jpeg" && i + 1 < argc) jpeg = std::stoll(argv[++i]);
    else {
      std::fprintf(stderr, "usage: bench_loader [--batches N] [--jpeg N]\n");
      return 2;
    }
  }
  try {
    auto train = fashion_mnist(DataSplit::kTrain);
    TransformOptions plain;
    plain.mean = {0.2860f};
    plain.std = {0.3530f};
    TransformOptions augmented = plain;
    augmented.random_crop_padding = 4;
    augmented.hflip = true;
    std::printf("Fashion-MNIST, batch 128, %d OpenMP threads, medians of %lld batches\n", omp_get_max_threads(),
                static_cast<long long>(batches));
    std::printf("%-34s %8s %12s %12s\n", "loader alone", "workers", "ms/batch", "images/s");
    struct Pipeline {
      const char* name;
      Compose transform;
      bool mix;
    };
    const std::vector<Pipeline> pipelines{{"plain (/255, normalise)", train_transform(plain), false},
                                          {"augmented (crop pad 4, flip)", train_transform(augmented), false},
                                          {"augmented + mixup/cutmix", train_transform(augmented), true}};
    for (const Pipeline& p : pipelines) {
      for (int64_t workers : {0, 1, 2}) {
        DataLoader loader(train, options(workers, p.transform, p.mix));
        const double s = per_batch(loader, batches, [](const Batch&) {});
        std::printf("%-34s %8lld %12.2f %12.0f\n", p.name, static_cast<long long>(workers), 1e3 * s, 128 / s);
      }
    }

    // The quick-start ViT's step: on a fixed batch, then fed by the loader.
    ModelSpec spec;
    spec.arch = "vit";
    Generator init_gen(0);
    auto model = create_model(spec, init_gen);
    model->train();
    AdamW opt({ParamGroup{model->named_parameters(), 0.05f}}, AdamWOptions{});
    const auto step = [&](const Batch& b) {
      opt.zero_grad();
      Tensor loss = cross_entropy(model->forward(b.images), b.labels);
      loss.backward();
      opt.step();
    };
    DataLoader fixed_loader(train, options(0, train_transform(augmented), false));
    const Batch fixed = fixed_loader.batch(0, 0);
    for (int i = 0; i < 3; ++i) step(fixed);
    std::vector<double> s;
    for (int64_t i = 0; i < batches; ++i) {
      const auto t0 = Clock::now();
      step(fixed);
      s.push_back(seconds_since(t0));
    }
    const double alone = median(s);
    std::printf("\n%-34s %8s %12s %12s %10s\n", "ViT training step (quick-start)", "workers", "ms/step", "images/s",
                "vs fixed");
    std::printf("%-34s %8s %12.2f %12.0f %10s\n", "fixed batch, no loader", "-", 1e3 * alone, 128 / alone, "1.00x");
    for (int64_t workers : {0, 1, 2}) {
      DataLoader loader(train, options(workers, train_transform(augmented), false));
      const double fed = per_batch(loader, batches, step);
      std::printf("%-34s %8lld %12.2f %12.0f %9.2fx\n", "fed by the loader (augmented)", static_cast<long long>(workers),
                  1e3 * fed, 128 / fed, fed / alone);
    }

    if (jpeg > 0) {
      const std::filesystem::path dir = std::filesystem::temp_directory_path() / "qilin_bench_loader_jpeg";
      std::filesystem::remove_all(dir);
      cv::RNG rng(1);
      for (int64_t i = 0; i < jpeg; ++i) {
        const std::filesystem::path cls = dir / ("class" + std::to_string(i % 10));
        std::filesystem::create_directories(cls);
        cv::Mat m(96, 96, CV_8UC3);
        rng.fill(m, cv::RNG::UNIFORM, 0, 255);
        cv::imwrite((cls / (std::to_string(i) + ".jpg")).string(), m);
      }
      auto folder = std::make_shared<ImageFolderDataset>(dir.string());
      TransformOptions rrc;
      rrc.resize = 64;
      rrc.random_resized_crop = true;
      rrc.hflip = true;
      rrc.mean = {0.485f, 0.456f, 0.406f};
      rrc.std = {0.229f, 0.224f, 0.225f};
      std::printf("\n%-34s %8s %12s %12s\n", "JPEG 96x96 -> RRC 64 (decode)", "workers", "ms/batch", "images/s");
      for (int64_t workers : {0, 1, 2}) {
        DataLoader loader(folder, options(workers, train_transform(rrc), false));
        const double sec = per_batch(loader, std::min<int64_t>(batches, jpeg / 128 - 4), [](const Batch&) {});
        std::printf("%-34s %8lld %12.2f %12.0f\n", "image folder", static_cast<long long>(workers), 1e3 * sec, 128 / sec);
      }
      std::filesystem::remove_all(dir);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_loader: %s\n", e.what());
    return 1;
  }
  return 0;
}
