// `qilin interp`: the paper's error tables, fit plots and speed tables (issue 4) as library
// functions the qilin program calls (train/qilin_main.cpp).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/interp.h"
#include "train/table.h"

namespace qilin {

struct InterpToolOptions {
  InterpFn fn = InterpFn::kGelu;
  InterpMethod method = InterpMethod::kUniform;
  std::vector<int64_t> segments{16, 64, 256, 1024, 4096};
  std::optional<std::pair<double, double>> domain;  // default: the function's
  int64_t samples = 1000000;
};

// One row per piece count: fn, method, pieces, domain, table bytes, L_inf, RMS, the x of the
// largest error, and the ratio of L_inf to the previous row's (DESIGN.md §4.1's metrics).
Table interp_error_table(const InterpToolOptions& options);

// A PNG of the function and its fits over the domain (the paper's figures 5-8) above the
// absolute error along the domain (log scale), one curve per piece count; drawn by
// scripts/plot_interp.py (python3-matplotlib) from a CSV written beside it. Returns the PNG
// path; throws qilin::Error naming what failed.
std::string interp_plot(const InterpToolOptions& options, const std::string& png_path, int64_t points = 4000);

// Parses "16,64,256" (each >= 1), naming `what` in errors.
std::vector<int64_t> parse_int_list(const std::string& text, const std::string& what);
// Parses "a,b" into a domain, naming `what` in errors.
std::pair<double, double> parse_domain(const std::string& text, const std::string& what);

// The shipped helper script `name` (scripts/<name> of the source tree, or the installed
// <prefix>/share/qilin/scripts/<name>); "" when neither exists.
std::string find_script(const std::string& name);

}  // namespace qilin
