// safetensors I/O: round trips of every dtype (0-d and empty tensors, metadata), every
// corruption the reader must catch (each an Error naming the file), random corruption that
// must never crash, atomic writes, and interop with a Python reader/writer that follows the
// reference implementation (tests/safetensors_interop.py: struct/json/numpy only).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "core/safetensors.h"

namespace qilin {
namespace {

namespace fs = std::filesystem;

// A fresh directory per test, removed afterwards.
class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "qilin_st_XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  std::string dir_;
};

NamedTensors sample_tensors() {
  NamedTensors t;
  t.emplace_back("f32", Tensor::from_vector({1.5f, -2.25f, 3e-8f, 3.14159265f, -0.0f, 65504.0f}, {2, 3}));
  t.emplace_back("i32", Tensor::from_vector_i32({-2147483647 - 1, 0, 2147483647}, {3}));
  t.emplace_back("i64", Tensor::from_vector_i64({-(int64_t{1} << 62), (int64_t{1} << 53) + 1}, {2, 1}));
  Tensor u8 = Tensor::empty({2, 1, 3}, DType::kUInt8);
  for (int i = 0; i < 6; ++i) u8.data<uint8_t>()[i] = static_cast<uint8_t>(250 + i);
  t.emplace_back("u8", u8);
  t.emplace_back("scalar", Tensor::scalar(0.125f));
  t.emplace_back("empty", Tensor::zeros({3, 0}, DType::kInt64));
  t.emplace_back("empty_f32", Tensor::zeros({0}));
  t.emplace_back("blocks.0.attn.qkv.weight", Tensor::arange(1000).reshape({10, 100}));
  return t;
}

void expect_same_tensor(const Tensor& a, const Tensor& b, const std::string& name) {
  ASSERT_TRUE(a.defined() && b.defined()) << name;
  EXPECT_EQ(a.dtype(), b.dtype()) << name;
  EXPECT_EQ(a.shape(), b.shape()) << name;
  ASSERT_EQ(a.nbytes(), b.nbytes()) << name;
  if (a.nbytes() > 0) {
    EXPECT_EQ(std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()), 0) << name;
  }
}

std::vector<char> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<char>(std::istreambuf_iterator<char>(f), {});
}

void write_bytes(const std::string& path, const std::vector<char>& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A file with the given header length field, header text and data bytes.
void write_raw(const std::string& path, uint64_t header_len, const std::string& header,
               size_t data_bytes) {
  std::vector<char> bytes(8);
  std::memcpy(bytes.data(), &header_len, 8);
  bytes.insert(bytes.end(), header.begin(), header.end());
  bytes.resize(bytes.size() + data_bytes, 0);
  write_bytes(path, bytes);
}
void write_raw(const std::string& path, const std::string& header, size_t data_bytes) {
  write_raw(path, header.size(), header, data_bytes);
}

// Expects load_safetensors(path) to throw an Error naming the file and containing `needle`.
void expect_load_error(const std::string& path, const std::string& needle) {
  try {
    load_safetensors(path);
    ADD_FAILURE() << "no error loading " << path << " (expected: " << needle << ")";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << "message does not name the file: " << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << "expected '" << needle << "' in: " << msg;
  }
}

TEST_F(SafetensorsTest, RoundTripKeepsEveryDtypeShapeAndMetadata) {
  const NamedTensors tensors = sample_tensors();
  const std::map<std::string, std::string> metadata = {{"format", "pt"}, {"note", "qilin ✓"}, {"empty", ""}};
  save_safetensors(path("a.safetensors"), tensors, metadata);
  SafetensorsContents got = load_safetensors(path("a.safetensors"));
  ASSERT_EQ(got.tensors.size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    // Written in the given order, read back in data-offset order: the same order.
    EXPECT_EQ(got.tensors[i].first, tensors[i].first);
    expect_same_tensor(got.tensors[i].second, tensors[i].second, tensors[i].first);
    expect_same_tensor(got.find(tensors[i].first), tensors[i].second, tensors[i].first);
  }
  EXPECT_EQ(got.metadata, metadata);
  EXPECT_FALSE(got.find("absent").defined());
  EXPECT_TRUE(std::signbit(got.find("f32").data<float>()[4]));  // -0.0 survives
}

TEST_F(SafetensorsTest, HeaderIsPaddedWithSpacesToEightBytes) {
  save_safetensors(path("a.safetensors"), sample_tensors());
  std::vector<char> bytes = read_bytes(path("a.safetensors"));
  uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ(n % 8, 0u);
  std::string header(bytes.begin() + 8, bytes.begin() + 8 + static_cast<int64_t>(n));
  EXPECT_EQ(header.front(), '{');
  const size_t last = header.find_last_not_of(' ');
  EXPECT_EQ(header[last], '}');
  EXPECT_LT(header.size() - last - 1, 8u);
  EXPECT_FALSE(nlohmann::json::parse(header).contains("__metadata__"));  // none given: none written
}

TEST_F(SafetensorsTest, EmptyFileListRoundTrips) {
  save_safetensors(path("e.safetensors"), {}, {{"k", "v"}});
  SafetensorsContents got = load_safetensors(path("e.safetensors"));
  EXPECT_TRUE(got.tensors.empty());
  EXPECT_EQ(got.metadata.at("k"), "v");
}

TEST_F(SafetensorsTest, WriteReplacesAtomicallyAndLeavesNoTemporary) {
  const std::string p = path("ckpt.safetensors");
  save_safetensors(p, {{"a", Tensor::ones({4})}});
  save_safetensors(p, {{"b", Tensor::zeros({2})}});
  SafetensorsContents got = load_safetensors(p);
  ASSERT_EQ(got.tensors.size(), 1u);
  EXPECT_EQ(got.tensors[0].first, "b");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);
}

TEST_F(SafetensorsTest, FailedWriteLeavesTheExistingFileIntact) {
  const std::string p = path("ckpt.safetensors");
  save_safetensors(p, {{"a", Tensor::ones({4})}});
  const std::vector<char> before = read_bytes(p);
  // Rejected before anything is written: duplicate names, an undefined tensor, the reserved name.
  EXPECT_THROW(save_safetensors(p, {{"x", Tensor::ones({1})}, {"x", Tensor::ones({1})}}), Error);
  EXPECT_THROW(save_safetensors(p, {{"x", Tensor()}}), Error);
  EXPECT_THROW(save_safetensors(p, {{"__metadata__", Tensor::ones({1})}}), Error);
  EXPECT_EQ(read_bytes(p), before);
  // Fails after the data is written: the rename onto a non-empty directory. The temporary
  // is removed and the error names the target.
  fs::create_directory(path("dir.safetensors"));
  std::ofstream(path("dir.safetensors/keep")) << "x";
  try {
    save_safetensors(path("dir.safetensors"), {{"a", Tensor::ones({4})}});
    ADD_FAILURE() << "rename onto a directory succeeded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path("dir.safetensors")), std::string::npos) << e.what();
  }
  // A directory that does not exist: nothing can be created.
  EXPECT_THROW(save_safetensors(path("no/such/dir.safetensors"), {{"a", Tensor::ones({1})}}), Error);
  for (const auto& entry : fs::directory_iterator(dir_)) {
    EXPECT_EQ(entry.path().string().find(".tmp."), std::string::npos) << entry.path();
  }
  EXPECT_EQ(read_bytes(p), before);
}

// ---- corrupt files: each an Error naming the file and the problem ----

TEST_F(SafetensorsTest, MissingFileIsAnError) { expect_load_error(path("none.safetensors"), "cannot open"); }

TEST_F(SafetensorsTest, FileShorterThanEightBytesIsAnError) {
  write_bytes(path("a"), {'a', 'b', 'c'});
  expect_load_error(path("a"), "shorter than the 8-byte header length");
  write_bytes(path("b"), {});
  expect_load_error(path("b"), "shorter than the 8-byte header length");
}

TEST_F(SafetensorsTest, HeaderLengthBeyondTheFileIsAnError) {
  write_raw(path("a"), 1000, "{}", 4);
  expect_load_error(path("a"), "truncated file");
}

TEST_F(SafetensorsTest, AbsurdHeaderLengthIsAnError) {
  write_raw(path("a"), uint64_t{1} << 40, "{}", 0);
  expect_load_error(path("a"), "absurd");
  write_raw(path("b"), ~uint64_t{0}, "{}", 0);
  expect_load_error(path("b"), "absurd");
}

TEST_F(SafetensorsTest, InvalidJsonIsAnError) {
  write_raw(path("a"), "{\"a\": {\"dtype\": ", 0);
  expect_load_error(path("a"), "not valid JSON");
  write_raw(path("b"), "[1, 2]  ", 0);
  expect_load_error(path("b"), "must be a JSON object");
  write_raw(path("c"), "{\"a\": 3}", 0);
  expect_load_error(path("c"), "expected a JSON object");
  write_raw(path("d"), "{\"a\": \"\xff\xfe\"}", 0);  // invalid UTF-8
  expect_load_error(path("d"), "not valid JSON");
}

TEST_F(SafetensorsTest, UnknownDtypeIsNamed) {
  write_raw(path("a"), R"({"a": {"dtype": "F16", "shape": [1], "data_offsets": [0, 2]}})", 2);
  expect_load_error(path("a"), "unsupported dtype 'F16'");
  write_raw(path("b"), R"({"a": {"dtype": 7, "shape": [1], "data_offsets": [0, 4]}})", 4);
  expect_load_error(path("b"), "dtype must be a string");
}

TEST_F(SafetensorsTest, MissingOrMistypedFieldsAreErrors) {
  write_raw(path("a"), R"({"a": {"dtype": "F32", "data_offsets": [0, 4]}})", 4);
  expect_load_error(path("a"), "missing field 'shape'");
  write_raw(path("b"), R"({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", 4);
  expect_load_error(path("b"), "non-negative integers");
  write_raw(path("c"), R"({"a": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}})", 4);
  expect_load_error(path("c"), "non-negative integers");
  write_raw(path("d"), R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0]}})", 4);
  expect_load_error(path("d"), "data_offsets must be [begin, end]");
  write_raw(path("e"), R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}})", 4);
  expect_load_error(path("e"), "end before they begin");
}

TEST_F(SafetensorsTest, ShapeInconsistentWithOffsetsIsAnError) {
  write_raw(path("a"), R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}})", 4);
  expect_load_error(path("a"), "F32[2] needs 8 bytes but data_offsets [0, 4] span 4");
  write_raw(path("b"), R"({"a": {"dtype": "I64", "shape": [], "data_offsets": [0, 4]}})", 4);
  expect_load_error(path("b"), "needs 8 bytes");
  // A shape whose byte size overflows 64 bits must not wrap around to match.
  write_raw(path("c"),
            R"({"a": {"dtype": "F32", "shape": [4611686018427387904, 4], "data_offsets": [0, 0]}})", 0);
  expect_load_error(path("c"), "too large");
}

TEST_F(SafetensorsTest, OffsetsOutsideTheDataBlockAreAnError) {
  write_raw(path("a"), R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", 4);
  expect_load_error(path("a"), "run past the 4-byte data block");
  // A valid file cut short.
  save_safetensors(path("b"), sample_tensors());
  std::vector<char> bytes = read_bytes(path("b"));
  bytes.resize(bytes.size() - 3);
  write_bytes(path("b"), bytes);
  expect_load_error(path("b"), "run past");
}

TEST_F(SafetensorsTest, OverlappingOffsetsAreAnError) {
  write_raw(path("a"),
            R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
            12);
  expect_load_error(path("a"), "overlap");
  write_raw(path("b"),
            R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                "b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})",
            4);
  expect_load_error(path("b"), "overlap");
}

TEST_F(SafetensorsTest, GapsAndTrailingBytesAreErrors) {
  write_raw(path("a"),
            R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}})",
            12);
  expect_load_error(path("a"), "contiguous");
  write_raw(path("b"), R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", 8);
  expect_load_error(path("b"), "contiguous");
  write_raw(path("c"), R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", 8);
  expect_load_error(path("c"), "trailing bytes");
}

TEST_F(SafetensorsTest, DuplicateNamesAreAnError) {
  write_raw(path("a"),
            R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                "a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
            8);
  expect_load_error(path("a"), "names 'a' twice");
}

TEST_F(SafetensorsTest, NonStringMetadataIsAnError) {
  write_raw(path("a"), R"({"__metadata__": {"step": 3}})", 0);
  expect_load_error(path("a"), "value of 'step' must be a string");
  write_raw(path("b"), R"({"__metadata__": ["x"]})", 0);
  expect_load_error(path("b"), "__metadata__ must be an object");
}

TEST_F(SafetensorsTest, RandomCorruptionNeverCrashes) {
  // Every truncation and 1000 random byte edits of a valid file: each load either succeeds
  // or throws qilin::Error (anything else, or a crash, fails the test).
  save_safetensors(path("good"), sample_tensors(), {{"k", "v"}});
  const std::vector<char> good = read_bytes(path("good"));
  uint64_t header_len;
  std::memcpy(&header_len, good.data(), 8);
  auto try_load = [&](const std::vector<char>& bytes, const std::string& what) {
    write_bytes(path("bad"), bytes);
    try {
      load_safetensors(path("bad"));
    } catch (const Error&) {
    } catch (const std::exception& e) {
      ADD_FAILURE() << what << ": non-qilin exception: " << e.what();
    }
  };
  for (size_t len = 0; len < good.size(); len += (len < 8 + header_len ? 1 : 97)) {
    try_load(std::vector<char>(good.begin(), good.begin() + static_cast<int64_t>(len)),
             "truncated to " + std::to_string(len));
  }
  std::mt19937 gen(42);
  const char interesting[] = "{}[]\",:0123456789-e. \xff";
  for (int trial = 0; trial < 1000; ++trial) {
    std::vector<char> bytes = good;
    // Mostly edit the length field and the header, where structure lives.
    std::uniform_int_distribution<size_t> pos(0, 8 + header_len - 1);
    const int edits = 1 + trial % 3;
    for (int k = 0; k < edits; ++k) {
      const size_t at = pos(gen);
      bytes[at] = (gen() % 2) ? static_cast<char>(gen()) : interesting[gen() % (sizeof(interesting) - 1)];
    }
    try_load(bytes, "trial " + std::to_string(trial));
  }
}

// ---- interop with the Python reader/writer ----

std::string interop_script() {
  const char* src = std::getenv("QILIN_SOURCE_DIR");
  if (src && *src) return std::string(src) + "/tests/safetensors_interop.py";
  // Run outside CTest: the script sits beside this source file.
  return (fs::path(__FILE__).parent_path() / "safetensors_interop.py").string();
}

// Runs a command and returns its stdout; `ok` is false when it exits non-zero.
std::string run_command(const std::string& cmd, bool* ok) {
  std::string out;
  std::FILE* pipe = ::popen(cmd.c_str(), "r");
  if (!pipe) {
    *ok = false;
    return out;
  }
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0) out.append(buf, n);
  *ok = ::pclose(pipe) == 0;
  return out;
}

bool python_with_numpy() {
  bool ok = false;
  run_command("/usr/bin/python3 -c 'import numpy' 2>/dev/null", &ok);
  return ok;
}

// Checks a tensor against the script's JSON description, value by value (floats bitwise).
void expect_matches_json(const Tensor& t, const nlohmann::json& d, const std::string& name) {
  ASSERT_TRUE(t.defined()) << name;
  EXPECT_EQ(d.at("dtype").get<std::string>(), dtype_name(t.dtype())) << name;
  EXPECT_EQ(d.at("shape").get<Shape>(), t.shape()) << name;
  const auto& values = d.at("values");
  ASSERT_EQ(static_cast<int64_t>(values.size()), t.numel()) << name;
  for (int64_t i = 0; i < t.numel(); ++i) {
    const auto& v = values[static_cast<size_t>(i)];
    switch (t.dtype()) {
      case DType::kFloat32: {
        const float expected = static_cast<float>(v.get<double>());
        const float actual = t.data<float>()[i];
        EXPECT_EQ(std::memcmp(&expected, &actual, 4), 0) << name << "[" << i << "]: " << actual << " vs " << expected;
        break;
      }
      case DType::kInt32: EXPECT_EQ(t.data<int32_t>()[i], v.get<int32_t>()) << name << "[" << i << "]"; break;
      case DType::kInt64: EXPECT_EQ(t.data<int64_t>()[i], v.get<int64_t>()) << name << "[" << i << "]"; break;
      case DType::kUInt8: EXPECT_EQ(t.data<uint8_t>()[i], v.get<uint8_t>()) << name << "[" << i << "]"; break;
    }
  }
}

TEST_F(SafetensorsTest, PythonReadsWhatWeWrite) {
  if (!python_with_numpy()) GTEST_SKIP() << "/usr/bin/python3 with numpy not available: interop not checked";
  const NamedTensors tensors = sample_tensors();
  const std::map<std::string, std::string> metadata = {{"format", "pt"}, {"step", "12"}};
  save_safetensors(path("ours.safetensors"), tensors, metadata);
  bool ok = false;
  const std::string out =
      run_command("/usr/bin/python3 " + interop_script() + " read " + path("ours.safetensors"), &ok);
  ASSERT_TRUE(ok) << "the Python reader rejected our file (see stderr); script " << interop_script();
  const nlohmann::json got = nlohmann::json::parse(out);
  ASSERT_EQ(got.at("tensors").size(), tensors.size());
  for (const auto& [name, t] : tensors) expect_matches_json(t, got.at("tensors").at(name), name);
  EXPECT_EQ(got.at("metadata").get<decltype(metadata)>(), metadata);
}

TEST_F(SafetensorsTest, WeReadWhatPythonWrites) {
  if (!python_with_numpy()) GTEST_SKIP() << "/usr/bin/python3 with numpy not available: interop not checked";
  bool ok = false;
  const std::string out =
      run_command("/usr/bin/python3 " + interop_script() + " write " + path("py.safetensors"), &ok);
  ASSERT_TRUE(ok) << "the Python writer failed; script " << interop_script();
  const nlohmann::json wrote = nlohmann::json::parse(out);
  SafetensorsContents got = load_safetensors(path("py.safetensors"));
  ASSERT_EQ(got.tensors.size(), wrote.at("tensors").size());
  for (const auto& [name, d] : wrote.at("tensors").items()) expect_matches_json(got.find(name), d, name);
  EXPECT_EQ(got.metadata, (wrote.at("metadata").get<std::map<std::string, std::string>>()));
}

}  // namespace
}  // namespace qilin
