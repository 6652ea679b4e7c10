// Fuzz target for the IDX reader (data/idx.h), plain and gzipped: each input is offered to
// both load_idx_images and load_idx_labels (the magic number lets at most one get past the
// header). A corrupt file must end in a qilin::Error; anything else (a crash, a sanitizer
// report, another exception, a hang, a huge allocation) is a finding. Tensor storage is held
// to what the input can hold: a payload at most kMaxDeflateRatio times the file, as int64.
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "core/error.h"
#include "data/idx.h"
#include "fuzz_input.h"

namespace {

// deflate's largest possible expansion (zlib.net/zlib_tech.html: "the maximum compression
// factor is 1032:1"); a plain file's payload is at most its size.
constexpr uint64_t kMaxDeflateRatio = 1032;

void require(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "fuzz_idx: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = qilin::fuzz::write_input(data, size);
  const qilin::fuzz::StorageBudget budget("fuzz_idx", kMaxDeflateRatio * size * sizeof(int64_t));
  try {
    qilin::Tensor images = qilin::load_idx_images(path);
    require(images.dtype() == qilin::DType::kUInt8 && images.dim() == 3, "images are not uint8 [N, rows, cols]");
  } catch (const qilin::Error&) {
  }
  try {
    qilin::Tensor labels = qilin::load_idx_labels(path);
    require(labels.dtype() == qilin::DType::kInt64 && labels.dim() == 1, "labels are not int64 [N]");
    const int64_t* values = labels.data<int64_t>();
    for (int64_t i = 0; i < labels.numel(); ++i) require(values[i] >= 0 && values[i] <= 255, "label outside a byte");
  } catch (const qilin::Error&) {
  }
  budget.check();
  return 0;
}
