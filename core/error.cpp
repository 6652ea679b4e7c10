#include "core/error.h"

#include <cstring>

namespace qilin::detail {

void throw_check_failure(const char* file, int line, const char* expr, const std::string& msg) {
  const char* base = std::strrchr(file, '/');
  std::ostringstream os;
  os << (base ? base + 1 : file) << ":" << line << ": ";
  if (expr) os << "check `" << expr << "` failed: ";
  os << msg;
  throw Error(os.str());
}

}  // namespace qilin::detail
