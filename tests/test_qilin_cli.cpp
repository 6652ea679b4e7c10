// The qilin tool as a user runs it, and the tables it prints (train/table.h).
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <sstream>
#include <string>

#include "core/random.h"
#include "core/safetensors.h"
#include "core/tensor.h"
#include "tests/cli_testing.h"
#include "train/config.h"
#include "train/table.h"

namespace qilin {
namespace {

using testing::run_program;

TEST(Table, TextAlignsColumnsAndRightAlignsNumbers) {
  Table t({"fn", "pieces", "rms"});
  t.add({"gelu", "16", "0.001"});
  t.add({"sigmoid", "4096", "1e-7"});
  EXPECT_EQ(t.render(TableFormat::kText),
            "fn       pieces  rms\n"
            "----------------------\n"
            "gelu         16  0.001\n"
            "sigmoid    4096   1e-7\n");
}

TEST(Table, CsvQuotesCellsWithCommasQuotesAndNewlines) {
  Table t({"name", "note"});
  t.add({"a", "plain"});
  t.add({"b", "x, \"y\""});
  EXPECT_EQ(t.render(TableFormat::kCsv), "name,note\na,plain\nb,\"x, \"\"y\"\"\"\n");
}

TEST(Table, ARowOfTheWrongWidthAndAnUnknownFormatAreErrors) {
  Table t({"a", "b"});
  EXPECT_THROW(t.add({"1"}), Error);
  EXPECT_EQ(parse_table_format("csv"), TableFormat::kCsv);
  EXPECT_THROW(parse_table_format("xml"), ConfigError);
}

TEST(QilinCli, InfoNamesTheBackends) {
  auto r = run_program("qilin", "info");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  for (const char* item : {"simd", "gemm", "OpenBLAS", "conv", "devices"})
    EXPECT_NE(r.output.find(item), std::string::npos) << item << "\n" << r.output;
}

TEST(QilinCli, ConfigsListsTheShippedConfigsAsCsv) {
  auto r = run_program("qilin", "configs --format csv");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.rfind("name,summary,path\n", 0), 0u) << r.output;
  EXPECT_NE(r.output.find("\nquickstart,"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("\nvit_fp32,"), std::string::npos) << r.output;
}

TEST(QilinCli, CkptPrintsEveryTensorWithItsStatistics) {
  const std::string file = std::filesystem::temp_directory_path() / ("qilin_ckpt_" + std::to_string(getpid()) + ".safetensors");
  Tensor w = Tensor::from_vector({1.0f, -2.0f, 3.0f, 6.0f}, {2, 2});
  Tensor n = Tensor::from_vector_i64({7}, {1});
  save_safetensors(file, {{"fc.weight", w}, {"bn.num_batches_tracked", n}}, {{"format", "pt"}});
  auto r = run_program("qilin", "ckpt " + file + " --format csv");
  auto text = run_program("qilin", "ckpt " + file);
  std::filesystem::remove(file);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  // min -2, max 6, mean 2, rms sqrt(50 / 4)
  EXPECT_NE(r.output.find("fc.weight,F32,\"[2, 2]\",4,-2,6,2,3.53553\n"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("bn.num_batches_tracked,I64,[1],1,,,,\n"), std::string::npos) << r.output;
  EXPECT_EQ(text.exit_code, 0) << text.output;
  EXPECT_NE(text.output.find("2 tensors, 5 elements"), std::string::npos) << text.output;
  EXPECT_NE(text.output.find("metadata format: pt"), std::string::npos) << text.output;
}

TEST(QilinCli, AMissingFileIsExitCode1NamingItAndABadFlagIsExitCode2) {
  auto r = run_program("qilin", "ckpt /nonexistent/qilin.safetensors");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("/nonexistent/qilin.safetensors"), std::string::npos) << r.output;
  EXPECT_EQ(run_program("qilin", "info --format xml").exit_code, 2);
  EXPECT_EQ(run_program("qilin", "no-such-command").exit_code, 2);
  EXPECT_EQ(run_program("qilin", "").exit_code, 2);
  EXPECT_EQ(run_program("qilin", "--help").exit_code, 0);
}

TEST(QilinCli, InterpErrorPrintsOneRowPerPieceCountFallingAbout16xPer4x) {
  auto r = run_program("qilin", "interp error --fn sigmoid --segments 16,64,256 --samples 20000 --format csv");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.rfind("fn,method,pieces,domain,bytes,L_inf,RMS,worst_x,L_inf_ratio\n", 0), 0u) << r.output;
  for (const char* row : {"\nsigmoid,uniform,16,\"[-8, 8]\",128,", "\nsigmoid,uniform,64,", "\nsigmoid,uniform,256,"})
    EXPECT_NE(r.output.find(row), std::string::npos) << row << "\n" << r.output;
  // The last column: L_inf of the previous row over this one's, ~16 for h^2 convergence.
  const std::string last = r.output.substr(r.output.rfind(',') + 1);
  const double ratio = std::stod(last);
  EXPECT_GT(ratio, 12.0) << r.output;
  EXPECT_LT(ratio, 20.0) << r.output;
}

TEST(QilinCli, InterpPlotWritesAPngAndItsData) {
  const std::string png = std::filesystem::temp_directory_path() / ("qilin_plot_" + std::to_string(getpid()) + ".png");
  auto r = run_program("qilin", "interp plot --fn tanh --segments 16,64 --out " + png);
  const bool png_written = std::filesystem::exists(png) && std::filesystem::file_size(png) > 1000;
  const std::string csv = png.substr(0, png.size() - 4) + ".csv";
  const bool csv_written = std::filesystem::exists(csv);
  std::filesystem::remove(png);
  std::filesystem::remove(csv);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(png_written) << r.output;
  EXPECT_TRUE(csv_written) << r.output;
}

TEST(QilinCli, InterpBadArgumentsAreExitCode2NamingThem) {
  auto r = run_program("qilin", "interp error --fn cosh");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("cosh"), std::string::npos) << r.output;
  r = run_program("qilin", "interp error --segments 16,x");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--segments"), std::string::npos) << r.output;
  r = run_program("qilin", "interp error --domain -5,2");
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("--domain"), std::string::npos) << r.output;
}

TEST(QilinCli, InterpBenchTimesCopyNativeAndEachTablePerDirection) {
  // A functional run (tiny n, one round): the rows and columns are there and every time is a
  // positive number. Speed itself is measured by hand (docs/PERFORMANCE.md), never asserted.
  auto r = run_program("qilin", "interp bench --fn tanh,gelu --segments 16,4096 --n 200000 --reps 1 --threads 1 --format csv");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("fn,method,pieces,fwd_ms,fwd_GBps,fwd_vs_copy,fwd_speedup,bwd_ms,bwd_GBps,bwd_vs_copy,bwd_speedup\n"),
            std::string::npos) << r.output;
  for (const char* row : {"\ntanh,copy,-,", "\ntanh,native,-,", "\ntanh,uniform,16,", "\ntanh,binary_search,4096,",
                          "\ngelu,igelu,-,", "\ngelu,uniform,4096,"}) {
    const size_t at = r.output.find(row);
    ASSERT_NE(at, std::string::npos) << row << "\n" << r.output;
    const std::string line = r.output.substr(at + 1, r.output.find('\n', at + 1) - at - 1);
    std::vector<std::string> cells;
    std::stringstream ss(line);
    for (std::string c; std::getline(ss, c, ',');) cells.push_back(c);
    ASSERT_EQ(cells.size(), 11u) << line;
    for (int c : {3, 4, 7, 8}) EXPECT_GT(std::stod(cells[c]), 0.0) << line;
  }
  auto block = run_program("qilin", "interp bench --fn exp --segments 16 --n 100000 --reps 2 --threads 1 "
                                    "--timing consecutive --format csv");
  ASSERT_EQ(block.exit_code, 0) << block.output;
  EXPECT_NE(block.output.find("\nexp,uniform,16,"), std::string::npos) << block.output;
  EXPECT_NE(block.output.find("medians of 2 consecutive calls"), std::string::npos) << block.output;
  EXPECT_EQ(run_program("qilin", "interp bench --fn cosh").exit_code, 2);
  EXPECT_EQ(run_program("qilin", "interp bench --n 0").exit_code, 2);
  EXPECT_EQ(run_program("qilin", "interp bench --timing sometimes").exit_code, 2);
}

TEST(QilinCli, Qfp8TablePrintsEveryCodeWithItsValue) {
  auto r = run_program("qilin", "qfp8 table --layout e4m3 --bias 15 --format csv");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.rfind("code,sign,exponent,mantissa,value\n", 0), 0u) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 257) << r.output;
  // DESIGN.md §4.2: e4m3 with bias 15 has max 1.875 (the bias amax = 1.875 picks); 0x80 is -0;
  // the smallest subnormal is 2^-3 * 2^(1 - 15) = 2^-17.
  for (const char* row : {"\n0x00,0,0,0,0\n", "\n0x01,0,0,1,7.62939453e-06\n", "\n0x78,0,15,0,1\n",
                          "\n0x7F,0,15,7,1.875\n", "\n0x80,1,0,0,-0\n", "\n0xFF,1,15,7,-1.875\n"})
    EXPECT_NE(r.output.find(row), std::string::npos) << row << r.output;
  r = run_program("qilin", "qfp8 table --layout e2m5 --format csv");  // standard bias 1: (2 - 2^-5) 2^2
  EXPECT_NE(r.output.find("\n0x7F,0,3,31,7.875\n"), std::string::npos) << r.output;
  r = run_program("qilin", "qfp8 table --layout e4m3 --bias 200");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--bias 200"), std::string::npos) << r.output;
  r = run_program("qilin", "qfp8 table --layout e6m1");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("e6m1"), std::string::npos) << r.output;
}

TEST(QilinCli, Qfp8SqnrRanksTheLayoutsOnGaussianWeights) {
  const std::string file = std::filesystem::temp_directory_path() / ("qilin_sqnr_" + std::to_string(getpid()) + ".safetensors");
  Generator gen(3);
  save_safetensors(file, {{"fc.weight", rand_normal({64, 256}, gen)}, {"fc.bias", rand_normal({64}, gen)}});
  auto r = run_program("qilin", "qfp8 sqnr --ckpt " + file + " --granularity per_tensor --format csv");
  std::filesystem::remove(file);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.rfind("tensor,shape,elements,qfp8_e2m5,qfp8_e3m4,qfp8_e4m3,qfp8_e5m2,qfp8_auto,int8,fp8_e4m3,fp8_e5m2,best\n", 0), 0u)
      << r.output;
  EXPECT_EQ(r.output.find("fc.bias"), std::string::npos) << "1-dim tensors are not weights\n" << r.output;
  const size_t at = r.output.find("\nfc.weight,");
  ASSERT_NE(at, std::string::npos) << r.output;
  std::vector<std::string> cells;
  std::stringstream ss(r.output.substr(at + 1, r.output.find('\n', at + 1) - at - 1));
  for (std::string c; std::getline(ss, c, ',');) cells.push_back(c);
  ASSERT_EQ(cells.size(), 13u) << r.output;  // the shape "[64, 256]" is one quoted cell split in two here
  // Gaussian weights, per tensor (DESIGN.md §4.2): e2m5 ~42.4 > e3m4 ~37.6 > e4m3 ~31.5 > e5m2.
  const double e2m5 = std::stod(cells[4]), e3m4 = std::stod(cells[5]), e4m3 = std::stod(cells[6]),
               e5m2 = std::stod(cells[7]);
  EXPECT_GT(e2m5, e3m4 + 3) << r.output;
  EXPECT_GT(e3m4, e4m3 + 3) << r.output;
  EXPECT_GT(e4m3, e5m2 + 3) << r.output;
  EXPECT_NEAR(e4m3, 31.5, 1.0) << r.output;
  EXPECT_EQ(cells[12], "qfp8_e2m5") << r.output;
  EXPECT_EQ(run_program("qilin", "qfp8 sqnr --ckpt /nonexistent.safetensors").exit_code, 1);
}

}  // namespace
}  // namespace qilin
