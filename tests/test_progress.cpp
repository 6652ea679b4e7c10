#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "train/progress.h"

namespace qilin {

TEST(Progress, FormatsDurations) {
  EXPECT_EQ(ProgressReporter::format_duration(0), "0:00");
  EXPECT_EQ(ProgressReporter::format_duration(65), "1:05");
  EXPECT_EQ(ProgressReporter::format_duration(3723), "1:02:03");
  EXPECT_EQ(ProgressReporter::format_duration(-1), "?");
}

TEST(Progress, BarLineShowsEpochStepsLossLrThroughputAndEtaWithinTheWidth) {
  StepStats s{1, 5, 250, 1000, 0.4321, 1e-3, 1234.0};
  std::string line = ProgressReporter::bar_line(s, 125.0, 120);
  EXPECT_LE(line.size(), 119u);
  for (const char* part : {"epoch 2/5", "250/1000", "loss 0.4321", "lr 1.00e-03", "1234 img/s", "ETA 2:05"})
    EXPECT_NE(line.find(part), std::string::npos) << part << " in " << line;
  // A quarter of the bar is filled.
  const size_t open = line.find('['), close = line.find(']');
  const std::string cells = line.substr(open + 1, close - open - 1);
  EXPECT_NEAR(std::count(cells.begin(), cells.end(), '#') / double(cells.size()), 0.25, 0.02);
}

TEST(Progress, LinesModePrintsEveryNStepsAndTheLast) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  {
    ProgressReporter r(ProgressStyle::kLines, 10, f);
    EXPECT_FALSE(r.uses_bar());
    for (int64_t step = 1; step <= 25; ++step) r.step({0, 1, step, 25, 1.0, 0.1, 100.0});
    r.message("eval: acc 0.5");
  }
  std::rewind(f);
  std::string text;
  char buf[512];
  while (std::fgets(buf, sizeof buf, f)) text += buf;
  std::fclose(f);
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 4) << text;  // steps 10, 20, 25 + message
  EXPECT_NE(text.find("step 25/25"), std::string::npos) << text;
  EXPECT_NE(text.find("eval: acc 0.5"), std::string::npos) << text;
}

TEST(Metrics, AppendsOneJsonObjectPerLine) {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("qilin_metrics_" + std::to_string(getpid()) + ".jsonl")).string();
  {
    MetricsWriter w(path);
    w.write({{"step", 10}, {"loss", 0.5}}, {{"split", "train"}});
    w.write({{"step", 20}, {"acc", 0.75}});
  }
  std::ifstream in(path);
  std::string line;
  std::vector<nlohmann::json> rows;
  while (std::getline(in, line)) rows.push_back(nlohmann::json::parse(line));
  std::filesystem::remove(path);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0]["step"], 10);
  EXPECT_EQ(rows[0]["split"], "train");
  EXPECT_EQ(rows[1]["acc"], 0.75);
  EXPECT_THROW(MetricsWriter("/nonexistent/dir/metrics.jsonl"), Error);
}

}  // namespace qilin
