// DataLoader: batches of a Dataset, shuffled per epoch, augmented per sample, built ahead of
// the consumer by worker threads into a bounded queue.
//
// Reproducibility: batch b of epoch e is a pure function of (dataset, options, e, b):
//   - the order of epoch e is randperm(N) from a Generator keyed by (seed, e) alone, so a
//     run resumed at (e, b) sees exactly the batches the uninterrupted run would have;
//   - sample i's augmentation draws from SampleRng(seed-derived key, e, i) (i its index in
//     the data set), and batch b's mixup/cutmix from SampleRng(another key, e, b);
// so the output is bit-identical for any worker count and any thread timing.
//
// Usage:
//   DataLoader loader(train_set, options);
//   for (int64_t epoch = start_epoch; epoch < epochs; ++epoch) {
//     loader.start(epoch, epoch == start_epoch ? start_batch : 0);
//     while (std::optional<Batch> b = loader.next()) { ... }
//   }
//
// Threads: `workers` std::threads claim whole batches in order and build them in parallel;
// at most `prefetch` batches are built ahead of the one the consumer waits for. An
// exception while building batch b (a corrupt image, ...) is re-thrown by next() when the
// consumer reaches b, as a qilin::Error naming the data set, sample index, batch and epoch
// after the original message (which names the file). The destructor stops and joins the
// workers. next() and start() are for one consumer thread.
//
// Not here: data sets (data/datasets.h), transforms and mixing (data/transforms.h).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "core/tensor.h"
#include "data/datasets.h"
#include "data/transforms.h"

namespace qilin {

struct Batch {
  Tensor images;        // float32 [B, C, H, W]
  Tensor labels;        // int64 [B]
  Tensor soft_targets;  // float32 [B, num_classes] when mixing is on; else undefined
  int64_t epoch = 0;
  int64_t index = 0;    // batch index within the epoch
  std::vector<int64_t> sample_indices;  // the data set index of each row
};

struct LoaderOptions {
  int64_t batch_size = 128;
  bool shuffle = true;
  bool drop_last = true;   // false: the last batch may be smaller
  int64_t workers = 2;     // 0: build each batch in next(), on the consumer's thread
  int64_t prefetch = 4;    // batches built ahead of the consumer (>= 1)
  uint64_t seed = 0;       // the run's seed: shuffling, augmentation and mixing streams
  Compose transform;       // per sample
  MixOptions mix;          // per batch; off by default

  // No shuffling, no augmentation, no mixing, the last partial batch kept: for validation
  // and test sets. `transform` should be deterministic (eval_transform()).
  static LoaderOptions evaluation(int64_t batch_size, Compose transform, int64_t workers = 2);
};

class DataLoader {
 public:
  DataLoader(DatasetPtr dataset, LoaderOptions options);
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  int64_t size() const { return dataset_->size(); }  // samples per epoch
  int64_t batches_per_epoch() const;
  const Dataset& dataset() const { return *dataset_; }
  const LoaderOptions& options() const { return options_; }

  // Begins epoch `epoch` at batch `first_batch` (0 <= first_batch <= batches_per_epoch()),
  // dropping whatever was prefetched before.
  void start(int64_t epoch, int64_t first_batch = 0);
  // The next batch of the current epoch, or nullopt after its last batch. Blocks until a
  // worker has built it. Re-throws a worker's exception for this batch.
  std::optional<Batch> next();

  // Batch `index` of epoch `epoch`, built on the calling thread: what next() gives there.
  Batch batch(int64_t epoch, int64_t index) const;
  // The order of epoch `epoch`: position -> data set index.
  std::vector<int64_t> epoch_order(int64_t epoch) const;

 private:
  struct Slot {
    int64_t batch = -1;  // which batch it holds; -1: empty
    std::optional<Batch> value;
    std::exception_ptr error;
  };
  // `live`, when given, is polled between samples: once it differs from `generation` the
  // build is abandoned (start() or the destructor moved on) by throwing Abandoned.
  struct Abandoned {};
  Batch build(int64_t epoch, int64_t index, const std::vector<int64_t>& order,
              const std::atomic<uint64_t>* live = nullptr, uint64_t generation = 0) const;
  void worker_loop();
  void stop_workers();

  DatasetPtr dataset_;
  LoaderOptions options_;

  // Shared with the workers, guarded by mu_.
  std::mutex mu_;
  std::condition_variable work_cv_;   // workers wait for a batch to claim
  std::condition_variable ready_cv_;  // the consumer waits for its batch
  bool stopping_ = false;
  uint64_t generation_ = 0;           // bumped by start(): stale work is dropped
  std::atomic<uint64_t> live_generation_{0};  // generation_, or ~0 once stopping: polled unlocked
  int64_t epoch_ = 0;
  std::shared_ptr<const std::vector<int64_t>> order_;
  int64_t next_to_claim_ = 0;         // the next batch a worker takes
  int64_t next_to_consume_ = 0;       // the batch next() returns next
  int64_t end_batch_ = 0;             // batches_per_epoch()
  bool started_ = false;
  std::vector<Slot> slots_;           // ring of `prefetch` slots, batch b in b % prefetch
  std::vector<std::thread> threads_;
};

}  // namespace qilin
