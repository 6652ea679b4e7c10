// See interp_tool.h.
#include "train/interp_tool.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "core/error.h"
#include "train/sweep.h"
#include "train/config.h"

#ifndef QILIN_SOURCE_DIR
#define QILIN_SOURCE_DIR ""
#endif

namespace qilin {
namespace {

std::string sci(double v, int digits = 3) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.*e", digits - 1, v);
  return buf;
}

std::string num(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

InterpSpec spec_for(const InterpToolOptions& o, int64_t pieces) {
  InterpSpec spec;
  spec.fn = o.fn;
  spec.method = o.method;
  spec.pieces = pieces;
  spec.domain = o.domain ? make_domain(o.domain->first, o.domain->second, "--domain") : default_domain(o.fn);
  return spec;
}

}  // namespace

std::vector<int64_t> parse_int_list(const std::string& text, const std::string& what) {
  std::vector<int64_t> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    char* end = nullptr;
    const long long v = std::strtoll(item.c_str(), &end, 10);
    if (item.empty() || end != item.c_str() + item.size() || v < 1)
      throw ConfigError(str_cat(what, " = ", text, ": expected a comma-separated list of integers >= 1"));
    out.push_back(v);
  }
  if (out.empty()) throw ConfigError(str_cat(what, ": expected at least one value"));
  return out;
}

std::pair<double, double> parse_domain(const std::string& text, const std::string& what) {
  const size_t comma = text.find(',');
  char* end1 = nullptr;
  char* end2 = nullptr;
  if (comma != std::string::npos) {
    const std::string a = text.substr(0, comma), b = text.substr(comma + 1);
    const double lo = std::strtod(a.c_str(), &end1), hi = std::strtod(b.c_str(), &end2);
    if (!a.empty() && !b.empty() && end1 == a.c_str() + a.size() && end2 == b.c_str() + b.size() && lo < hi)
      return {lo, hi};
  }
  throw ConfigError(str_cat(what, " = ", text, ": expected lo,hi with lo < hi, e.g. -5,3"));
}

Table interp_error_table(const InterpToolOptions& options) {
  Table t({"fn", "method", "pieces", "domain", "bytes", "L_inf", "RMS", "worst_x", "L_inf_ratio"});
  double previous = 0;
  for (int64_t pieces : options.segments) {
    std::shared_ptr<const InterpTable> table = InterpTable::build(spec_for(options, pieces));
    const InterpError e = interp_error(*table, options.samples);
    const InterpDomain& d = table->spec().domain;
    t.add({to_string(options.fn), to_string(options.method), std::to_string(pieces),
           "[" + num(d.lo()) + ", " + num(d.hi()) + "]", std::to_string(table->table_bytes()), sci(e.linf),
           sci(e.rms), num(e.argmax), previous > 0 && e.linf > 0 ? num(std::round(previous / e.linf * 10) / 10) : ""});
    previous = e.linf;
  }
  return t;
}

std::string find_script(const std::string& name) {
  const std::filesystem::path in_source = std::filesystem::path(QILIN_SOURCE_DIR) / "scripts" / name;
  if (!std::string(QILIN_SOURCE_DIR).empty() && std::filesystem::exists(in_source)) return in_source.string();
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const std::filesystem::path installed = exe.parent_path().parent_path() / "share" / "qilin" / "scripts" / name;
    if (std::filesystem::exists(installed)) return installed.string();
  }
  return "";
}

std::string interp_plot(const InterpToolOptions& options, const std::string& png_path, int64_t points) {
  QILIN_CHECK(points >= 2, "interp plot: need at least 2 points");
  std::vector<std::shared_ptr<const InterpTable>> tables;
  for (int64_t pieces : options.segments) tables.push_back(InterpTable::build(spec_for(options, pieces)));
  const InterpDomain d = tables.front()->spec().domain;
  // The domain and 5% either side, to show the outside rule too.
  const double margin = 0.05 * (d.hi() - d.lo());
  std::ostringstream csv;
  csv << "x,f";
  for (const auto& t : tables) csv << ",fit_" << t->pieces();
  csv << "\n";
  char buf[64];
  for (int64_t i = 0; i < points; ++i) {
    const float x = static_cast<float>(d.lo() - margin + (d.hi() - d.lo() + 2 * margin) * i / (points - 1));
    std::snprintf(buf, sizeof buf, "%.9g,%.17g", x, interp_fn_exact(options.fn, x));
    csv << buf;
    for (const auto& t : tables) {
      std::snprintf(buf, sizeof buf, ",%.9g", t->eval(x));
      csv << buf;
    }
    csv << "\n";
  }
  const std::filesystem::path png(png_path);
  const std::string csv_path = (png.parent_path() / (png.stem().string() + ".csv")).string();
  write_file_atomic(csv_path, csv.str());
  const std::string script = find_script("plot_interp.py");
  if (script.empty()) throw Error("interp plot: scripts/plot_interp.py not found (the CSV is " + csv_path + ")");
  const std::string title = str_cat(to_string(options.fn), ", ", to_string(options.method), " on [", num(d.lo()), ", ",
                                    num(d.hi()), "]");
  const std::string cmd = "/usr/bin/python3 '" + script + "' '" + csv_path + "' '" + png_path + "' '" + title +
                          "' > /dev/null 2>&1";
  if (std::system(cmd.c_str()) != 0 || !std::filesystem::exists(png_path))
    throw Error(str_cat("interp plot: ", script, " failed (it needs /usr/bin/python3 with Debian's "
                        "python3-matplotlib); the data is in ", csv_path));
  return png_path;
}

}  // namespace qilin
