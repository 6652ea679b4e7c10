// Fuzz target for load_packed_state_dict (layers/quant.h): packed 8-bit checkpoints. The
// safetensors container has its own target (fuzz_safetensors); here the file parses and the
// question is what its tensors and metadata say. The input is structure-aware: its first byte
// picks one of six small quantized ViTs (every format and layout kind, per channel and per
// tensor, frozen and dynamic inputs), whose own export is the starting point, and the rest is
// a list of edits to that export: overwrite bytes of a tensor, replace a tensor by one of
// another dtype or shape, drop or rename a tensor, set or drop a metadata entry.
//
// A load must end in a qilin::Error, with the model unchanged (the import checks everything
// before it writes), or succeed; then the model must run (a loaded checkpoint is evaluable:
// a forward that throws is a finding) and export again to the same codes and parameters it
// loaded (decode then encode is the identity on every code an export writes). Anything else
// (a crash, a sanitizer report, another exception) is a finding.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/error.h"
#include "core/safetensors.h"
#include "core/tensor.h"
#include "layers/quant.h"
#include "models/registry.h"

namespace {

using qilin::DType;
using qilin::Tensor;

void require(bool ok, const char* what, const std::string& detail = "") {
  if (ok) return;
  std::fprintf(stderr, "fuzz_packed: %s%s\n", what, detail.c_str());
  std::abort();
}

// A QuantSpec in its field order: format, layout, bias mode, fixed bias, granularity.
qilin::QuantSpec spec(qilin::QuantFormat format, std::optional<qilin::Qfp8Layout> layout,
                      qilin::BiasMode bias, qilin::Granularity granularity) {
  return qilin::QuantSpec{format, layout, bias, 0, granularity};
}

struct Variant {
  qilin::QuantLayerOptions options;
  bool freeze_inputs;
};

std::vector<Variant> variants() {
  using qilin::BiasMode;
  using qilin::QuantFormat;
  const auto pc = qilin::Granularity::kPerChannel, pt = qilin::Granularity::kPerTensor;
  auto make = [](qilin::QuantSpec w, qilin::QuantSpec a, bool freeze) {
    Variant v;
    v.options.weight = w;
    v.options.activation = a;
    v.freeze_inputs = freeze;
    return v;
  };
  return {
      make(spec(QuantFormat::kQfp8, qilin::kQfp8E3M4, BiasMode::kMse, pc),
           spec(QuantFormat::kQfp8, qilin::kQfp8E3M4, BiasMode::kAmax, pt), true),
      make(spec(QuantFormat::kQfp8, std::nullopt, BiasMode::kMse, pc),
           spec(QuantFormat::kQfp8, qilin::kQfp8E2M5, BiasMode::kAmax, pt), true),
      make(spec(QuantFormat::kQfp8, qilin::kQfp8E5M2, BiasMode::kMse, pt),
           spec(QuantFormat::kQfp8, qilin::kQfp8E5M2, BiasMode::kAmax, pt), false),
      make(spec(QuantFormat::kInt8, std::nullopt, BiasMode::kAmax, pc),
           spec(QuantFormat::kInt8, std::nullopt, BiasMode::kAmax, pt), true),
      make(spec(QuantFormat::kFp8E4M3, std::nullopt, BiasMode::kAmax, pc),
           spec(QuantFormat::kFp8E4M3, std::nullopt, BiasMode::kAmax, pt), true),
      make(spec(QuantFormat::kFp8E5M2, std::nullopt, BiasMode::kAmax, pt),
           spec(QuantFormat::kFp8E5M2, std::nullopt, BiasMode::kAmax, pt), false),
  };
}

// A ViT small enough to build on every input: 8x8 images, 4x4 patches, one block of width 16
// (a quantized Conv2d patch embedding and five quantized Linears).
std::shared_ptr<qilin::Layer> make_model(const Variant& v, uint64_t seed) {
  qilin::ModelSpec s;
  s.arch = "vit";
  s.img_size = 8;
  s.patch_size = 4;
  s.embed_dim = 16;
  s.depth = 1;
  s.num_heads = 2;
  s.num_classes = 4;
  qilin::LayerFactory native;
  qilin::QuantLayerFactory factory(native, v.options);
  qilin::Generator g(seed);
  auto model = qilin::create_model(s, factory, g);
  model->eval();
  return model;
}

Tensor images(uint64_t seed) {
  Tensor x = Tensor::empty({2, 1, 8, 8});
  uint64_t state = seed;
  for (int64_t i = 0; i < x.numel(); ++i) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    x.data<float>()[i] = static_cast<float>(state >> 40) / static_cast<float>(1 << 24) * 4.0f - 2.0f;
  }
  return x;
}

// Each variant's own export: calibrated on two batches, inputs frozen where the variant says.
const qilin::SafetensorsContents& exported(size_t index) {
  static std::vector<qilin::SafetensorsContents> cache = [] {
    std::vector<qilin::SafetensorsContents> out;
    for (const Variant& v : variants()) {
      auto model = make_model(v, 11);
      qilin::NoGradGuard no_grad;
      qilin::set_activation_mode(*model, qilin::ActivationMode::kCalibrating);
      model->forward(images(1));
      model->forward(images(2));
      if (v.freeze_inputs) qilin::freeze_activations(*model);
      else qilin::set_activation_mode(*model, qilin::ActivationMode::kDynamic);
      qilin::freeze_weights(*model);
      std::map<std::string, std::string> metadata;
      qilin::NamedTensors tensors = qilin::packed_state_dict(*model, &metadata);
      out.push_back(qilin::SafetensorsContents{std::move(tensors), std::move(metadata)});
    }
    return out;
  }();
  return cache[index];
}

// Reads the edit list.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool done() const { return pos_ >= size_; }
  uint8_t byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  uint32_t u16() { return byte() | (uint32_t{byte()} << 8); }
  std::string text(size_t max) {
    const size_t n = std::min<size_t>(byte() % (max + 1), size_ - std::min(pos_, size_));
    std::string s(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return s;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

Tensor random_tensor(Reader& r) {
  static const DType dtypes[] = {DType::kFloat32, DType::kInt32, DType::kUInt8, DType::kInt64};
  const DType dtype = dtypes[r.byte() % 4];
  std::vector<int64_t> shape(r.byte() % 3);
  for (int64_t& d : shape) d = r.byte() % 65;
  Tensor t = Tensor::zeros(shape, dtype);
  uint8_t* bytes = static_cast<uint8_t*>(t.raw_data());
  for (size_t i = 0; i < t.nbytes() && !r.done(); ++i) bytes[i] = r.byte();
  return t;
}

void apply_edits(Reader& r, qilin::SafetensorsContents* c) {
  for (int edit = 0; edit < 8 && !r.done(); ++edit) {
    const uint8_t op = r.byte() % 6;
    auto& tensors = c->tensors;
    auto& metadata = c->metadata;
    if (op == 0 && !tensors.empty()) {  // overwrite up to 16 bytes of a tensor's data
      Tensor& t = tensors[r.byte() % tensors.size()].second;
      if (t.nbytes() == 0) continue;
      t = t.clone();
      const size_t offset = r.u16() % t.nbytes();
      const size_t n = std::min<size_t>(r.byte() % 17, t.nbytes() - offset);
      for (size_t i = 0; i < n; ++i) static_cast<uint8_t*>(t.raw_data())[offset + i] = r.byte();
    } else if (op == 1 && !tensors.empty()) {  // another dtype and shape
      tensors[r.byte() % tensors.size()].second = random_tensor(r);
    } else if (op == 2 && !tensors.empty()) {  // drop a tensor
      tensors.erase(tensors.begin() + r.byte() % tensors.size());
    } else if (op == 3 && !tensors.empty()) {  // rename a tensor: a new tail
      std::string& name = tensors[r.byte() % tensors.size()].first;
      name = name.substr(0, name.size() - std::min<size_t>(name.size(), r.byte() % 12)) + r.text(12);
    } else if (op == 4 && !metadata.empty()) {  // set a metadata value
      auto it = std::next(metadata.begin(), r.byte() % metadata.size());
      it->second = r.text(24);
    } else if (op == 5 && !metadata.empty()) {  // drop a metadata entry
      metadata.erase(std::next(metadata.begin(), r.byte() % metadata.size()));
    }
  }
}

bool same_tensor(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && a.nbytes() == b.nbytes() &&
         (a.nbytes() == 0 || std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0);
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  Reader r(data, size);
  const size_t index = r.byte() % variants().size();
  const Variant v = variants()[index];
  qilin::SafetensorsContents contents = exported(index);
  apply_edits(r, &contents);

  auto model = make_model(v, 5);
  qilin::NamedTensors before = model->state_dict();  // copies: state_dict shares the storage
  for (auto& [name, t] : before) t = t.clone();
  try {
    qilin::load_packed_state_dict(*model, contents);
  } catch (const qilin::Error&) {
    const qilin::NamedTensors after = model->state_dict();  // a clean rejection changes nothing
    require(after.size() == before.size(), "a rejected load changed the state dict's size");
    for (size_t i = 0; i < after.size(); ++i)
      require(same_tensor(after[i].second, before[i].second), "a rejected load changed ", after[i].first);
    return 0;
  }

  // Loaded: the model runs, and exports the codes and parameters it loaded. Its fp32 tensors
  // load as they are (a diverged run's checkpoint is still a checkpoint), so a NaN, or
  // activations too large for a dynamic input's format, can stop the forward with the
  // layer's own error. What must not happen is a kernel refusing the parameters the import
  // accepted (its checks name the kernel: "fake_quant_forward: entry ...").
  try {
    qilin::NoGradGuard no_grad;
    model->forward(images(3));
  } catch (const qilin::Error& e) {
    require(std::strstr(e.what(), "fake_quant_") == nullptr,
            "a kernel refuses parameters the import accepted: ", e.what());
  }
  std::map<std::string, std::string> metadata;
  const qilin::NamedTensors again = qilin::packed_state_dict(*model, &metadata);
  for (const auto& [name, t] : contents.tensors) {
    if (!(ends_with(name, ".qcodes") || ends_with(name, ".qbias") || ends_with(name, ".qscale") ||
          ends_with(name, ".qlayout")))
      continue;
    bool found = false;
    for (const auto& [name2, t2] : again)
      if (name2 == name) {
        require(same_tensor(t, t2), "export after load changed ", name);
        found = true;
      }
    require(found, "export after load lacks ", name);
  }
  return 0;
}
