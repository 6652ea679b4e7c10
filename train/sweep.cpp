#include "train/sweep.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "train/table.h"

namespace qilin {

void write_file_atomic(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp." + std::to_string(getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    out.flush();
    if (!out) {
      std::error_code ec;
      std::filesystem::remove(tmp, ec);
      throw Error(str_cat(path, ": cannot write (", tmp, ")"));
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    throw Error(str_cat(path, ": cannot rename into place: ", ec.message()));
  }
}

namespace {

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

}  // namespace

std::string write_sweep_outputs(const std::string& dir, const std::string& key,
                                const std::vector<SweepRow>& rows, const std::string& plot_script,
                                std::string* plot_note) {
  std::ostringstream csv, md;
  csv << csv_field(key) << ",run_dir,val_acc,test_acc,test_loss,wall_seconds\n";
  md << "| " << key << " | val top-1 | test top-1 | test loss | wall s | run |\n";
  md << "|---|---|---|---|---|---|\n";
  for (const SweepRow& r : rows) {
    csv << csv_field(r.value) << "," << csv_field(r.run_dir) << "," << fixed(r.val_acc, 6) << ","
        << fixed(r.test_acc, 6) << "," << fixed(r.test_loss, 6) << "," << fixed(r.wall_seconds, 1)
        << "\n";
    md << "| " << r.value << " | " << fixed(100 * r.val_acc, 2) << " | " << fixed(100 * r.test_acc, 2)
       << " | " << fixed(r.test_loss, 4) << " | " << fixed(r.wall_seconds, 1) << " | `" << r.run_dir
       << "` |\n";
  }
  const std::filesystem::path base(dir);
  const std::string csv_path = (base / "sweep.csv").string();
  write_file_atomic(csv_path, csv.str());
  write_file_atomic((base / "sweep.md").string(), md.str());

  const std::string png = (base / "sweep.png").string();
  if (plot_script.empty() || !std::filesystem::exists(plot_script)) {
    *plot_note = "no plot: scripts/plot_sweep.py not found";
    return "";
  }
  const std::string cmd = "/usr/bin/python3 '" + plot_script + "' '" + csv_path + "' '" + png +
                          "' > /dev/null 2>&1";
  if (std::system(cmd.c_str()) != 0 || !std::filesystem::exists(png)) {
    *plot_note = "no plot: " + plot_script +
                 " failed (it needs /usr/bin/python3 with Debian's python3-matplotlib)";
    return "";
  }
  plot_note->clear();
  return png;
}

}  // namespace qilin
