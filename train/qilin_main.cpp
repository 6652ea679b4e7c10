// `qilin`: the tool beside `train` (DESIGN.md §1, §5) for everything that is not a training
// run. Tables are plain text, one row per line, or CSV with --format csv.
//   qilin info                       the build and the machine: SIMD target, BLAS, devices
//   qilin configs                    the shipped configs (what `train --config NAME` takes)
//   qilin ckpt FILE                  the tensors of a checkpoint / safetensors file
//   qilin interp error --fn F --segments LIST [--domain a,b] [--samples N] [--method M]
//   qilin interp plot  --fn F --segments LIST [--domain a,b] [--method M] --out FILE.png
//   qilin interp bench [--fn F,...|all] [--segments LIST] [--methods M,...] [--n N] [--reps R]
//                      [--threads T] [--timing round-robin|consecutive]
//                      [--backward in-place|out-of-place]
//   qilin qfp8 table --layout L [--bias B]     every code of a QFP8 layout and its value
//   qilin qfp8 sqnr --ckpt FILE [--granularity per_channel|per_tensor]
//                                            per-layer SQNR of each 8-bit format on the weights
// Exit codes: 0 done; 2 bad command line; 1 any other error (a missing or corrupt file).
#include <CLI/CLI.hpp>
#include <omp.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include "core/safetensors.h"
#include "kernels/cpu/backend_info.h"
#include "kernels/cpu/gemm.h"
#include "train/config.h"
#include "train/interp_bench.h"
#include "train/interp_tool.h"
#include "train/qfp8_tool.h"
#include "train/table.h"

#ifndef QILIN_SOURCE_DIR
#define QILIN_SOURCE_DIR ""
#endif
#ifndef QILIN_VERSION
#define QILIN_VERSION "unknown"
#endif

namespace qilin {
namespace {

std::string source_configs_dir() { return std::string(QILIN_SOURCE_DIR) + "/configs"; }

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

std::string sig6(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(item);
  return out;
}

void print(const Table& t, TableFormat format) { std::fputs(t.render(format).c_str(), stdout); }

int info(TableFormat format) {
  Table t({"item", "value"});
  t.add({"qilin", QILIN_VERSION});
#ifdef NDEBUG
  t.add({"build", "release, " __VERSION__});
#else
  t.add({"build", "debug, " __VERSION__});
#endif
  t.add({"cpu", str_cat(cpu_model(), ", ", std::thread::hardware_concurrency(), " hardware threads")});
  t.add({"threads", str_cat(omp_get_max_threads(), " (OpenMP; OMP_NUM_THREADS sets it)")});
  t.add({"simd", kernels::cpu::simd_targets()});
  t.add({"gemm", kernels::cpu::gemm_backend()});
  t.add({"conv", kernels::cpu::conv_backend()});
  t.add({"devices", "cpu (this build has no CUDA backend: run.device cuda is refused)"});
  const std::vector<std::string> dirs = config_search_dirs(source_configs_dir());
  std::string dir_list;
  for (const std::string& d : dirs) dir_list += (dir_list.empty() ? "" : ", ") + d;
  t.add({"configs", dir_list});
  print(t, format);
  return 0;
}

int configs(TableFormat format) {
  Table t({"name", "summary", "path"});
  for (const ShippedConfig& c : list_configs(source_configs_dir())) t.add({c.name, c.summary, c.path});
  print(t, format);
  return 0;
}

int ckpt(const std::string& file, TableFormat format) {
  SafetensorsContents contents = load_safetensors(file);
  Table t({"tensor", "dtype", "shape", "elements", "min", "max", "mean", "rms"});
  int64_t elements = 0, bytes = 0;
  for (const auto& [name, tensor] : contents.tensors) {
    std::string shape = "[";
    for (int64_t d = 0; d < tensor.dim(); ++d) shape += (d ? ", " : "") + std::to_string(tensor.size(d));
    shape += "]";
    std::vector<std::string> row{name, dtype_name(tensor.dtype()), shape, std::to_string(tensor.numel()), "", "", "", ""};
    if (tensor.dtype() == DType::kFloat32 && tensor.numel() > 0) {
      double lo = INFINITY, hi = -INFINITY, sum = 0, sq = 0;
      for (float v : tensor.to_vector()) {
        lo = std::min<double>(lo, v);
        hi = std::max<double>(hi, v);
        sum += v;
        sq += static_cast<double>(v) * v;
      }
      const double n = static_cast<double>(tensor.numel());
      row[4] = sig6(lo);
      row[5] = sig6(hi);
      row[6] = sig6(sum / n);
      row[7] = sig6(std::sqrt(sq / n));
    }
    t.add(row);
    elements += tensor.numel();
    bytes += static_cast<int64_t>(tensor.nbytes());
  }
  print(t, format);
  if (format == TableFormat::kText) {
    std::printf("%zu tensors, %lld elements, %.2f MiB of data\n", contents.tensors.size(),
                static_cast<long long>(elements), bytes / 1048576.0);
    for (const auto& [key, value] : contents.metadata) std::printf("metadata %s: %s\n", key.c_str(), value.c_str());
  }
  return 0;
}

}  // namespace
}  // namespace qilin

int main(int argc, char** argv) {
  using namespace qilin;
  CLI::App app{"qilin: tools beside `train` (build info, shipped configs, checkpoints, interpolation tables)"};
  app.require_subcommand(1);
  std::string format_name = "text";
  const auto add_format = [&](CLI::App* sub) {
    sub->add_option("--format", format_name, "text | csv")->capture_default_str();
  };
  CLI::App* info_cmd = app.add_subcommand("info", "the build and the machine: SIMD target, BLAS, devices");
  add_format(info_cmd);
  CLI::App* configs_cmd = app.add_subcommand("configs", "the shipped configs (train --config NAME)");
  add_format(configs_cmd);
  std::string file;
  CLI::App* ckpt_cmd = app.add_subcommand("ckpt", "the tensors of a checkpoint or any safetensors file");
  ckpt_cmd->add_option("file", file, "a .safetensors file")->required();
  add_format(ckpt_cmd);
  // qilin interp ...
  CLI::App* interp_cmd = app.add_subcommand("interp", "interpolation tables: error tables, fit plots");
  interp_cmd->require_subcommand(1);
  std::string fn_name = "gelu", method_name = "uniform", segments_text = "16,64,256,1024,4096", domain_text;
  std::string png = "interp.png";
  int64_t samples = 1000000;
  const auto add_table_options = [&](CLI::App* sub) {
    sub->add_option("--fn", fn_name, "exp | sigmoid | tanh | gelu | silu")->capture_default_str();
    sub->add_option("--segments", segments_text, "piece counts, comma-separated")->capture_default_str();
    sub->add_option("--domain", domain_text, "lo,hi (hi - lo a power of two); default: the function's");
    sub->add_option("--method", method_name, "uniform | binary_search | nonuniform | igelu | native")
        ->capture_default_str();
  };
  CLI::App* error_cmd = interp_cmd->add_subcommand("error", "L_inf and RMS of the fits per piece count");
  add_table_options(error_cmd);
  error_cmd->add_option("--samples", samples, "uniform samples of the domain")->capture_default_str();
  add_format(error_cmd);
  CLI::App* plot_cmd = interp_cmd->add_subcommand("plot", "PNG of the function, its fits and their error");
  add_table_options(plot_cmd);
  plot_cmd->add_option("--out", png, "the PNG to write (its data goes beside it as .csv)")->capture_default_str();
  CLI::App* bench_cmd = interp_cmd->add_subcommand(
      "bench", "time native vs tables, forward and backward, against a plain copy (pin it: taskset)");
  std::string bench_fns = "exp,sigmoid,tanh,gelu", bench_methods = "uniform,binary_search,igelu";
  std::string bench_segments = "16,64,256,1024,4096,16384,65536";
  int64_t bench_n = 5000000;
  int bench_reps = 21, bench_threads = 0;
  bench_cmd->add_option("--fn", bench_fns, "functions, comma-separated, or all")->capture_default_str();
  bench_cmd->add_option("--segments", bench_segments, "piece counts, comma-separated")->capture_default_str();
  bench_cmd->add_option("--methods", bench_methods, "table methods besides native: uniform, binary_search, nonuniform, igelu")
      ->capture_default_str();
  bench_cmd->add_option("--n", bench_n, "float32 inputs per call")->capture_default_str();
  bench_cmd->add_option("--reps", bench_reps, "timed rounds (medians are reported)")->capture_default_str();
  std::string bench_timing = "round-robin";
  bench_cmd->add_option("--timing", bench_timing,
                        "round-robin (candidates interleaved) or consecutive (each in a block of --reps calls, "
                        "as bench/torch_interp.py times PyTorch)")
      ->check(CLI::IsMember({"round-robin", "consecutive"}))
      ->capture_default_str();
  std::string bench_backward = "in-place";
  bench_cmd->add_option("--backward", bench_backward,
                        "in-place (dx written over dy, as the layers run in training) or out-of-place")
      ->check(CLI::IsMember({"in-place", "out-of-place"}))
      ->capture_default_str();
  bench_cmd->add_option("--threads", bench_threads, "OpenMP threads (0: OMP_NUM_THREADS or all cores)")
      ->capture_default_str();
  add_format(bench_cmd);
  // qilin qfp8 ...
  CLI::App* qfp8_cmd = app.add_subcommand("qfp8", "QFP8 codes and the SQNR of 8-bit formats on a checkpoint");
  qfp8_cmd->require_subcommand(1);
  std::string layout_name = "e3m4", granularity_name = "per_channel", sqnr_ckpt;
  std::optional<int32_t> qfp8_bias;
  CLI::App* qtable_cmd = qfp8_cmd->add_subcommand("table", "every code of a layout with its value");
  qtable_cmd->add_option("--layout", layout_name, "e2m5 | e3m4 | e4m3 | e5m2")->capture_default_str();
  qtable_cmd->add_option("--bias", qfp8_bias, "the integer exponent bias (default: the layout's standard 2^(E-1) - 1)");
  add_format(qtable_cmd);
  CLI::App* sqnr_cmd = qfp8_cmd->add_subcommand("sqnr", "per-layer SQNR (dB) of each 8-bit format on a checkpoint's weights");
  sqnr_cmd->add_option("--ckpt", sqnr_ckpt, "a .safetensors checkpoint")->required();
  sqnr_cmd->add_option("--granularity", granularity_name, "per_channel | per_tensor")->capture_default_str();
  add_format(sqnr_cmd);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  try {
    const TableFormat format = parse_table_format(format_name);
    if (*info_cmd) return info(format);
    if (*configs_cmd) return configs(format);
    if (*ckpt_cmd) return ckpt(file, format);
    if (*qfp8_cmd && *qtable_cmd) {
      const auto layout = parse_qfp8_layout(layout_name);
      if (!layout) throw ConfigError("--layout " + layout_name + ": expected one of " + qfp8_layout_names());
      print(qfp8_code_table(*layout, qfp8_bias.value_or(qfp8_standard_bias(*layout))), format);
      return 0;
    }
    if (*qfp8_cmd && *sqnr_cmd) {
      const auto granularity = parse_granularity(granularity_name);
      if (!granularity) throw ConfigError("--granularity " + granularity_name + ": expected per_channel or per_tensor");
      print(qfp8_sqnr_table(sqnr_ckpt, *granularity), format);
      return 0;
    }
    if (*interp_cmd && *bench_cmd) {
      InterpBenchOptions o;
      o.fns.clear();
      o.methods.clear();
      try {  // a bad name on the command line is a usage error (exit 2)
        for (const std::string& f : split_list(bench_fns == "all" ? "exp,sigmoid,tanh,gelu,silu" : bench_fns))
          o.fns.push_back(parse_interp_fn(f));
        for (const std::string& m : split_list(bench_methods)) o.methods.push_back(parse_interp_method(m));
      } catch (const ConfigError&) {
        throw;
      } catch (const Error& e) {
        throw ConfigError(e.what());
      }
      o.segments = parse_int_list(bench_segments, "--segments");
      o.n = bench_n;
      o.reps = bench_reps;
      o.consecutive = bench_timing == "consecutive";
      o.in_place = bench_backward == "in-place";
      if (bench_n < 1 || bench_reps < 1 || bench_threads < 0)
        throw ConfigError("--n and --reps must be >= 1 and --threads >= 0");
      if (bench_threads > 0) omp_set_num_threads(bench_threads);
      const Table t = interp_bench_table(o, [](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); });
      print(t, format);
      std::fprintf(stderr, "n = %lld float32, %d threads, medians of %d %s, backward %s\n",
                   static_cast<long long>(bench_n), omp_get_max_threads(), bench_reps,
                   o.consecutive ? "consecutive calls" : "rounds", o.in_place ? "in place (dx over dy)" : "out of place");
      return 0;
    }
    if (*interp_cmd) {
      InterpToolOptions o;
      try {  // a bad name on the command line is a usage error (exit 2)
        o.fn = parse_interp_fn(fn_name);
        o.method = parse_interp_method(method_name);
      } catch (const ConfigError&) {
        throw;
      } catch (const Error& e) {
        throw ConfigError(e.what());
      }
      o.segments = parse_int_list(segments_text, "--segments");
      if (!domain_text.empty()) o.domain = parse_domain(domain_text, "--domain");
      o.samples = samples;
      if (*error_cmd) {
        print(interp_error_table(o), format);
        return 0;
      }
      std::printf("%s\n", interp_plot(o, png).c_str());
      return 0;
    }
    return 2;
  } catch (const ConfigError& e) {
    std::fprintf(stderr, "qilin: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qilin: %s\n", e.what());
    return 1;
  }
}
