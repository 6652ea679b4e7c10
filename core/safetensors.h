// safetensors read/write (DESIGN.md §5): 8-byte little-endian header length, a JSON header
// {name: {dtype, shape, data_offsets}, "__metadata__": {str: str}}, then raw little-endian
// data. The format safetensors.torch.load_file reads. Writes go to a temporary file that is
// renamed into place; reads validate everything and throw qilin::Error naming the file.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace qilin {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

struct SafetensorsContents {
  NamedTensors tensors;  // in file order of data offsets
  std::map<std::string, std::string> metadata;
  Tensor find(const std::string& name) const;  // undefined when absent
};

void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata = {});
SafetensorsContents load_safetensors(const std::string& path);

}  // namespace qilin
