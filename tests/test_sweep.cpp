#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>

#include "core/error.h"
#include "train/sweep.h"

namespace qilin {
namespace {

std::string read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

TEST(Sweep, WritesCsvMarkdownAndAPlot) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("qilin_sweep_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::vector<SweepRow> rows{{"16", "runs/s/16", 0.80, 0.79, 0.61, 12.5},
                             {"4096", "runs/s/4096", 0.875, 0.8712, 0.35, 13.0}};
  const char* src = std::getenv("QILIN_SOURCE_DIR");
  const std::string script = std::string(src ? src : ".") + "/scripts/plot_sweep.py";
  std::string note;
  std::string png = write_sweep_outputs(dir.string(), "interp.segments", rows, script, &note);

  const std::string csv = read((dir / "sweep.csv").string());
  EXPECT_EQ(csv.substr(0, csv.find('\n')), "interp.segments,run_dir,val_acc,test_acc,test_loss,wall_seconds");
  EXPECT_NE(csv.find("4096,runs/s/4096,0.875000,0.871200,0.350000,13.0"), std::string::npos) << csv;
  const std::string md = read((dir / "sweep.md").string());
  EXPECT_NE(md.find("| 16 | 80.00 | 79.00 | 0.6100 | 12.5 |"), std::string::npos) << md;
  // scripts/setup.sh installs python3-matplotlib, so the plot must be there.
  EXPECT_EQ(png, (dir / "sweep.png").string()) << note;
  EXPECT_GT(std::filesystem::file_size(dir / "sweep.png"), 1000u);
  std::filesystem::remove_all(dir);
}

TEST(Sweep, AtomicWriteToAMissingDirectoryIsAnErrorAndLeavesNothing) {
  EXPECT_THROW(write_file_atomic("/nonexistent_dir_qilin/x.csv", "a"), Error);
}

}  // namespace qilin
