// DataLoader (see loader.h). Workers claim batch numbers in order from a shared counter and
// build whole batches; batch b goes to ring slot b % prefetch, which is free because batch
// b - prefetch was consumed before b could be claimed. start() bumps a generation number so
// that batches of an abandoned epoch, still being built, are dropped when they finish.
#include "data/loader.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "core/random.h"

namespace qilin {
namespace {

// Keys that separate the loader's random streams (Philox keys: seed ^ stream); the same
// shuffle stream the trainer has used, so orders stay as they were.
constexpr uint64_t kShuffleStream = 0x5348554646ull;  // "SHUFF"
constexpr uint64_t kAugmentStream = 0x4155474dull;    // "AUGM"
constexpr uint64_t kMixStream = 0x4d49585550ull;      // "MIXUP"
constexpr uint64_t kEpochMix = 0x9E3779B97F4A7C15ull; // 2^64 / golden ratio: spreads epochs over the key

}  // namespace

LoaderOptions LoaderOptions::evaluation(int64_t batch_size, Compose transform, int64_t workers) {
  LoaderOptions o;
  o.batch_size = batch_size;
  o.shuffle = false;
  o.drop_last = false;
  o.workers = workers;
  o.transform = std::move(transform);
  return o;
}

DataLoader::DataLoader(DatasetPtr dataset, LoaderOptions options)
    : dataset_(std::move(dataset)), options_(std::move(options)) {
  QILIN_CHECK(dataset_ != nullptr, "DataLoader: null data set");
  QILIN_CHECK(options_.batch_size >= 1, "DataLoader: batch_size = ", options_.batch_size, " must be >= 1");
  QILIN_CHECK(options_.workers >= 0, "DataLoader: workers = ", options_.workers, " must be >= 0");
  QILIN_CHECK(options_.prefetch >= 1, "DataLoader: prefetch = ", options_.prefetch, " must be >= 1");
  slots_.resize(static_cast<size_t>(options_.prefetch));
  for (int64_t i = 0; i < options_.workers; ++i) threads_.emplace_back([this] { worker_loop(); });
}

DataLoader::~DataLoader() { stop_workers(); }

void DataLoader::stop_workers() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stopping_ = true;
    live_generation_.store(~uint64_t{0});
  }
  work_cv_.notify_all();
  ready_cv_.notify_all();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
}

int64_t DataLoader::batches_per_epoch() const {
  const int64_t n = dataset_->size(), b = options_.batch_size;
  return options_.drop_last ? n / b : (n + b - 1) / b;
}

std::vector<int64_t> DataLoader::epoch_order(int64_t epoch) const {
  const int64_t n = dataset_->size();
  std::vector<int64_t> order(static_cast<size_t>(n));
  if (!options_.shuffle) {
    for (int64_t i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;
    return order;
  }
  // Depends on (seed, epoch) only: a resumed run gets the same order.
  Generator g(options_.seed ^ kShuffleStream ^ (static_cast<uint64_t>(epoch) * kEpochMix));
  Tensor perm = randperm(n, g);
  std::memcpy(order.data(), perm.data<int64_t>(), order.size() * sizeof(int64_t));
  return order;
}

Batch DataLoader::build(int64_t epoch, int64_t index, const std::vector<int64_t>& order,
                        const std::atomic<uint64_t>* live, uint64_t generation) const {
  const int64_t n = static_cast<int64_t>(order.size());
  const int64_t begin = index * options_.batch_size;
  QILIN_CHECK(index >= 0 && begin < n, "DataLoader: batch ", index, " of ", dataset_->name(), " with ", n,
              " samples and batch size ", options_.batch_size);
  const int64_t count = std::min(options_.batch_size, n - begin);
  const int64_t classes = dataset_->num_classes();
  Batch b;
  b.epoch = epoch;
  b.index = index;
  b.sample_indices.assign(order.begin() + begin, order.begin() + begin + count);
  b.labels = Tensor::empty({count}, DType::kInt64);
  int64_t* labels = b.labels.data<int64_t>();
  Shape sample_shape;
  int64_t sample_numel = 0;
  for (int64_t i = 0; i < count; ++i) {
    const int64_t si = b.sample_indices[static_cast<size_t>(i)];
    if (live != nullptr && live->load(std::memory_order_relaxed) != generation) throw Abandoned{};
    try {
      Example ex = dataset_->get(si);
      SampleRng rng(options_.seed ^ kAugmentStream, static_cast<uint64_t>(epoch), static_cast<uint64_t>(si));
      Tensor img = options_.transform(ex.image, rng);
      if (img.dtype() == DType::kUInt8) img = ToFloat{}(img, rng);  // batches are float
      QILIN_CHECK(img.dim() == 3 && img.dtype() == DType::kFloat32, "expected a float image [C, H, W], got ",
                  img.str());
      if (i == 0) {
        sample_shape = img.shape();
        sample_numel = img.numel();
        b.images = Tensor::empty({count, sample_shape[0], sample_shape[1], sample_shape[2]});
      } else if (img.shape() != sample_shape) {
        throw Error(str_cat("image of ", shape_str(img.shape()), " after the transforms, but the batch's first is ",
                            shape_str(sample_shape), ": images of different sizes need a Resize or crop"));
      }
      std::memcpy(b.images.data<float>() + i * sample_numel, img.data<float>(), sample_numel * sizeof(float));
      QILIN_CHECK(ex.label >= 0 && ex.label < classes, "label ", ex.label, " outside [0, ", classes, ")");
      labels[i] = ex.label;
    } catch (const std::exception& e) {
      throw Error(str_cat(e.what(), " (data loader: sample ", si, " of ", dataset_->name(), ", batch ", index,
                          " of epoch ", epoch, ")"));
    }
  }
  if (options_.mix.enabled()) {
    SampleRng rng(options_.seed ^ kMixStream, static_cast<uint64_t>(epoch), static_cast<uint64_t>(index));
    b.soft_targets = mix_batch(b.images, b.labels, classes, options_.mix, rng);
  }
  return b;
}

Batch DataLoader::batch(int64_t epoch, int64_t index) const { return build(epoch, index, epoch_order(epoch)); }

void DataLoader::start(int64_t epoch, int64_t first_batch) {
  const int64_t end = batches_per_epoch();
  QILIN_CHECK(epoch >= 0 && first_batch >= 0 && first_batch <= end, "DataLoader::start: epoch ", epoch, ", batch ",
              first_batch, " of ", end);
  auto order = std::make_shared<const std::vector<int64_t>>(epoch_order(epoch));
  {
    std::lock_guard<std::mutex> lk(mu_);
    ++generation_;
    live_generation_.store(generation_);
    epoch_ = epoch;
    order_ = std::move(order);
    next_to_claim_ = next_to_consume_ = first_batch;
    end_batch_ = end;
    for (Slot& s : slots_) s = Slot{};
    started_ = true;
  }
  work_cv_.notify_all();
}

std::optional<Batch> DataLoader::next() {
  std::unique_lock<std::mutex> lk(mu_);
  QILIN_CHECK(started_, "DataLoader::next: call start(epoch) first");
  if (next_to_consume_ >= end_batch_) return std::nullopt;
  const int64_t b = next_to_consume_;
  if (threads_.empty()) {
    ++next_to_consume_;
    auto order = order_;
    const int64_t epoch = epoch_;
    lk.unlock();
    return build(epoch, b, *order);
  }
  Slot& slot = slots_[static_cast<size_t>(b % options_.prefetch)];
  ready_cv_.wait(lk, [&] { return slot.batch == b; });
  std::optional<Batch> value = std::move(slot.value);
  std::exception_ptr error = slot.error;
  slot = Slot{};
  ++next_to_consume_;
  lk.unlock();
  work_cv_.notify_all();  // a slot is free: a worker may claim batch b + prefetch
  if (error) std::rethrow_exception(error);
  return value;
}

void DataLoader::worker_loop() {
  std::unique_lock<std::mutex> lk(mu_);
  for (;;) {
    work_cv_.wait(lk, [&] {
      return stopping_ || (started_ && next_to_claim_ < end_batch_ &&
                           next_to_claim_ < next_to_consume_ + options_.prefetch);
    });
    if (stopping_) return;
    const int64_t b = next_to_claim_++;
    const uint64_t generation = generation_;
    const int64_t epoch = epoch_;
    const auto order = order_;
    lk.unlock();
    std::optional<Batch> value;
    std::exception_ptr error;
    try {
      value = build(epoch, b, *order, &live_generation_, generation);
    } catch (const Abandoned&) {
      // dropped below: the generation has changed
    } catch (...) {
      error = std::current_exception();
    }
    lk.lock();
    if (generation != generation_ || stopping_) continue;  // start() moved on, or shutting down: drop it
    Slot& slot = slots_[static_cast<size_t>(b % options_.prefetch)];
    slot.batch = b;
    slot.value = std::move(value);
    slot.error = error;
    ready_cv_.notify_all();
  }
}

}  // namespace qilin
