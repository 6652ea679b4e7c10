// The train program as a user runs it: bad configs give one clear line, exit code 2 and no
// run directory; --help lists the shipped configs; a tiny run and a tiny sweep succeed.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "tests/cli_testing.h"

namespace {

namespace fs = std::filesystem;

std::string source_dir() {
  const char* s = std::getenv("QILIN_SOURCE_DIR");
  return s ? s : ".";
}

using Result = qilin::testing::CliResult;
Result run(const std::string& args) { return qilin::testing::run_program("train", args); }

class TrainCli : public ::testing::Test {
 protected:
  void SetUp() override {
    out_ = (fs::temp_directory_path() / ("qilin_cli_" + std::to_string(getpid()) + "_" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name()))
               .string();
    fs::create_directories(out_);
  }
  void TearDown() override { fs::remove_all(out_); }
  std::string out_;
};

TEST_F(TrainCli, EveryBadConfigGivesOneLineExitCode2AndNoRunDirectory) {
  int checked = 0;
  for (const auto& entry : fs::directory_iterator(source_dir() + "/tests/configs")) {
    if (entry.path().extension() != ".yaml") continue;
    std::ifstream in(entry.path());
    std::string first;
    std::getline(in, first);
    const std::string tag = "# expect: ";
    if (first.rfind(tag, 0) != 0) continue;
    const std::string expect = first.substr(tag.size());
    Result r = run("--config " + entry.path().string() + " --set run.out_dir=" + out_);
    EXPECT_EQ(r.exit_code, 2) << entry.path() << ": " << r.output;
    EXPECT_NE(r.output.find(expect), std::string::npos) << entry.path() << ": " << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
    EXPECT_TRUE(fs::is_empty(out_)) << entry.path() << " left files in " << out_;
    ++checked;
  }
  EXPECT_GE(checked, 8);
}

TEST_F(TrainCli, UnknownConfigNameAndBadFlagsAreExitCode2) {
  Result r = run("--config no_such_config");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("quickstart"), std::string::npos) << r.output;  // lists shipped ones
  EXPECT_EQ(run("--config quickstart --no-such-flag").exit_code, 2);
  EXPECT_EQ(run("--config quickstart --set optim.lr").exit_code, 2);
}

TEST_F(TrainCli, HelpListsTheShippedConfigs) {
  Result r = run("--help");
  EXPECT_EQ(r.exit_code, 0);
  for (const char* name : {"quickstart", "vit_fp32", "resnet20_fp32", "regnety_fp32"})
    EXPECT_NE(r.output.find(name), std::string::npos) << name;
}

TEST_F(TrainCli, ASweepRunsEveryValueWritesItsTablesAndSkipsFinishedRunsOnRestart) {
  const std::string config = out_ + "/tiny.yaml";
  std::ofstream(config) << R"(run: {name: tiny, seed: 1}
model: {arch: mlp, img_size: 8, num_classes: 4, hidden: [16]}
data: {dataset: synthetic, val_size: 32, batch_size: 32, synthetic_train_size: 128, synthetic_test_size: 64}
optim: {name: sgd, lr: 0.1, epochs: 1, schedule: constant}
log: {progress: lines}
)";
  const std::string args = "--config " + config + " --set run.out_dir=" + out_ + "/runs --sweep optim.lr=0.05,0.1";
  Result first = run(args);
  ASSERT_EQ(first.exit_code, 0) << first.output;
  for (const char* f : {"sweep.csv", "sweep.md", "sweep.png", "optim.lr=0.05/summary.json", "optim.lr=0.1/summary.json"})
    EXPECT_TRUE(fs::exists(out_ + "/runs/tiny/" + f)) << f << "\n" << first.output;
  Result again = run(args);
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_NE(again.output.find("skipped"), std::string::npos) << again.output;
}

}  // namespace

namespace {

TEST_F(TrainCli, ATruncatedInitCheckpointIsExitCode1NamingTheFileAndWritesNothing) {
  // A real checkpoint, cut in half.
  const std::string config = out_ + "/tiny.yaml";
  std::ofstream(config) << R"(run: {name: tiny, seed: 1}
model: {arch: mlp, img_size: 8, num_classes: 4, hidden: [16]}
data: {dataset: synthetic, val_size: 32, batch_size: 32, synthetic_train_size: 128, synthetic_test_size: 64}
optim: {name: sgd, lr: 0.1, epochs: 1, schedule: constant}
log: {progress: lines}
)";
  ASSERT_EQ(run("--config " + config + " --set run.out_dir=" + out_ + "/first").exit_code, 0);
  const std::string ckpt = out_ + "/first/tiny/ckpt_last.safetensors";
  fs::resize_file(ckpt, fs::file_size(ckpt) / 2);
  Result r = run("--config " + config + " --set run.out_dir=" + out_ + "/second --set checkpoint.init_from=" + ckpt);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find(ckpt), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(out_ + "/second")) << r.output;
}

TEST_F(TrainCli, AMissingDataSetIsExitCode1NamingTheDirectory) {
  Result r = run("--config quickstart --set run.out_dir=" + out_ + "/runs --set data.root=" + out_ + "/nothing");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find(out_ + "/nothing"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(out_ + "/runs")) << r.output;
}

TEST_F(TrainCli, AnUnreadableImageIsExitCode1NamingTheFileAndLeavesNoRunDirectory) {
  // Images are decoded in the loader's workers, after the run has started: the error must
  // still name the file, and the run directory (no checkpoint in it yet) must go.
  for (const char* split : {"train", "test"})
    for (const char* cls : {"a", "b"}) {
      fs::create_directories(out_ + "/images/" + split + "/" + cls);
      for (int i = 0; i < 8; ++i)
        std::ofstream(out_ + "/images/" + split + "/" + cls + "/" + std::to_string(i) + ".png") << "not an image";
    }
  const std::string config = out_ + "/folder.yaml";
  std::ofstream(config) << "run: {name: folder}\n"
                           "model: {arch: mlp, img_size: 8, in_chans: 3, num_classes: 2, hidden: [8]}\n"
                           "data: {dataset: image_folder, root: " + out_ + "/images, val_size: 4, batch_size: 4,\n"
                           "       transforms: {resize: 8}}\n"
                           "optim: {name: sgd, lr: 0.1, epochs: 1, schedule: constant}\n"
                           "log: {progress: lines}\n";
  Result r = run("--config " + config + " --set run.out_dir=" + out_ + "/runs");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find(out_ + "/images/train/"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(".png"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(out_ + "/runs")) << r.output;
}

}  // namespace
