// The plain tables `qilin` prints (DESIGN.md §5): one row per line, columns aligned for a
// terminal, or CSV (RFC 4180 quoting) with `--format csv`.
//
//   Table t({"pieces", "L_inf", "RMS"});
//   t.add({"16", "1.2e-3", "4.1e-4"});
//   std::fputs(t.render(TableFormat::kText).c_str(), stdout);
#pragma once

#include <string>
#include <vector>

namespace qilin {

enum class TableFormat { kText, kCsv };
// "text" | "csv"; anything else: ConfigError naming the value and the choices.
TableFormat parse_table_format(const std::string& name);

// A CSV field (RFC 4180): quoted, with quotes doubled, when it holds a comma, quote or newline.
std::string csv_field(const std::string& s);

class Table {
 public:
  explicit Table(std::vector<std::string> header);
  // One row; it must have as many cells as the header (checked).
  void add(std::vector<std::string> row);
  size_t rows() const { return rows_.size(); }
  // Text: columns padded to their widest cell, two spaces apart, numbers (cells that parse
  // as one) right-aligned; a dashed line under the header. CSV: the header and rows.
  std::string render(TableFormat format) const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace qilin
