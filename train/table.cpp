// See table.h.
#include "train/table.h"

#include <algorithm>
#include <cstdlib>

#include "core/error.h"
#include "train/config.h"

namespace qilin {
namespace {

bool is_number(const std::string& s) {
  if (s.empty()) return false;
  char* end = nullptr;
  std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size();
}

}  // namespace

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

TableFormat parse_table_format(const std::string& name) {
  if (name == "text") return TableFormat::kText;
  if (name == "csv") return TableFormat::kCsv;
  throw ConfigError(str_cat("--format = ", name, ": must be text or csv"));
}

Table::Table(std::vector<std::string> header) : header_(std::move(header)) {}

void Table::add(std::vector<std::string> row) {
  QILIN_CHECK(row.size() == header_.size(), "Table: a row of ", row.size(), " cells for ",
              header_.size(), " columns");
  rows_.push_back(std::move(row));
}

std::string Table::render(TableFormat format) const {
  std::string out;
  if (format == TableFormat::kCsv) {
    const auto csv_line = [&](const std::vector<std::string>& row) {
      for (size_t i = 0; i < row.size(); ++i) out += (i ? "," : "") + csv_field(row[i]);
      out += "\n";
    };
    csv_line(header_);
    for (const auto& row : rows_) csv_line(row);
    return out;
  }
  std::vector<size_t> width(header_.size());
  for (size_t i = 0; i < header_.size(); ++i) width[i] = header_[i].size();
  for (const auto& row : rows_)
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  const auto line = [&](const std::vector<std::string>& row, bool header) {
    std::string s;
    for (size_t i = 0; i < row.size(); ++i) {
      const std::string pad(width[i] - row[i].size(), ' ');
      const bool right = !header && is_number(row[i]);
      s += (i ? "  " : "") + (right ? pad + row[i] : row[i] + (i + 1 < row.size() ? pad : ""));
    }
    while (!s.empty() && s.back() == ' ') s.pop_back();
    return s + "\n";
  };
  out += line(header_, true);
  size_t total = 0;
  for (size_t w : width) total += w;
  out += std::string(total + 2 * (width.empty() ? 0 : width.size() - 1), '-') + "\n";
  for (const auto& row : rows_) out += line(row, false);
  return out;
}

}  // namespace qilin
