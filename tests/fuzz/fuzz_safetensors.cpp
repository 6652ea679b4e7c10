// Fuzz target for load_safetensors (core/safetensors.h). A corrupt file must end in a
// qilin::Error; anything else (a crash, a sanitizer report, another exception, a hang, a
// huge allocation) is a finding. A file that loads must also survive a round trip: saved
// and loaded again, it gives the same names, dtypes, shapes, bytes and metadata. Loading
// never allocates more tensor storage than the file's size: every byte must be in the file.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/error.h"
#include "core/safetensors.h"
#include "fuzz_input.h"

namespace {

// A broken round trip is a finding: report it and abort so libFuzzer keeps the input.
void require(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "fuzz_safetensors: round trip changed the %s\n", what);
  std::abort();
}

void check_round_trip(const qilin::SafetensorsContents& loaded) {
  const std::string& path = qilin::fuzz::scratch_path();
  qilin::save_safetensors(path, loaded.tensors, loaded.metadata);
  const qilin::SafetensorsContents again = qilin::load_safetensors(path);
  require(again.metadata == loaded.metadata, "metadata");
  require(again.tensors.size() == loaded.tensors.size(), "tensor count");
  for (size_t i = 0; i < loaded.tensors.size(); ++i) {
    const auto& [name, t] = loaded.tensors[i];
    const auto& [name2, t2] = again.tensors[i];
    require(name == name2, "tensor order or names");
    require(t.dtype() == t2.dtype(), "dtypes");
    require(t.shape() == t2.shape(), "shapes");
    require(t.nbytes() == t2.nbytes(), "byte sizes");
    require(t.nbytes() == 0 || std::memcmp(t.raw_data(), t2.raw_data(), t.nbytes()) == 0, "data");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = qilin::fuzz::write_input(data, size);
  qilin::SafetensorsContents loaded;
  bool rejected = false;
  {
    const qilin::fuzz::StorageBudget budget("fuzz_safetensors", size);
    try {
      loaded = qilin::load_safetensors(path);
    } catch (const qilin::Error&) {
      rejected = true;  // a clean rejection
    }
    budget.check();
  }
  if (rejected) return 0;
  // Only writing may fail now, and it must not: the scratch file lives in the temp dir.
  check_round_trip(loaded);
  return 0;
}
