// Fuzz target for the CIFAR-10 binary-batch reader (data/datasets.h, load_cifar10_batch): a
// malformed file (a size that is not whole records, a label >= 10) must end in a qilin::Error;
// a file it accepts must come back exactly: N = size / 3073 records, labels in [0, 10), each
// image the 3072 bytes after its label. Anything else (a crash, a sanitizer report, another
// exception, a wrong value) is a finding. Storage is held to the input's size.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/error.h"
#include "data/datasets.h"
#include "fuzz_input.h"

namespace {

constexpr size_t kRecord = 3073;

void require(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "fuzz_cifar: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = qilin::fuzz::write_input(data, size);
  // uint8 images of at most the input's size plus int64 labels, one per 3073 bytes.
  const qilin::fuzz::StorageBudget budget("fuzz_cifar", size + (size / kRecord + 1) * sizeof(int64_t));
  try {
    qilin::ImagesAndLabels batch = qilin::load_cifar10_batch(path);
    const int64_t n = static_cast<int64_t>(size / kRecord);
    require(size % kRecord == 0 && n > 0, "accepted a size that is not whole records");
    require(batch.images.dtype() == qilin::DType::kUInt8 && batch.images.dim() == 4 &&
                batch.images.size(0) == n && batch.images.size(1) == 3 && batch.images.size(2) == 32 &&
                batch.images.size(3) == 32,
            "images are not uint8 [N, 3, 32, 32]");
    require(batch.labels.dtype() == qilin::DType::kInt64 && batch.labels.dim() == 1 && batch.labels.size(0) == n,
            "labels are not int64 [N]");
    for (int64_t r = 0; r < n; ++r) {
      const uint8_t* rec = data + r * kRecord;
      require(batch.labels.data<int64_t>()[r] == rec[0] && rec[0] < 10, "a label differs from its byte");
      require(std::memcmp(batch.images.data<uint8_t>() + r * 3072, rec + 1, 3072) == 0,
              "an image differs from its bytes");
    }
  } catch (const qilin::Error&) {
  }
  budget.check();
  return 0;
}
