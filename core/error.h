// qilin::Error and the QILIN_CHECK macro: every internal precondition failure throws one
// Error carrying file, line, the failed expression and a message built from values.
// Boundary code (config, checkpoint, data set, CLI) throws Error with its own message that
// names the file/key/value; only main() catches.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace qilin {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
inline void append(std::ostringstream&) {}
template <typename T, typename... Rest>
void append(std::ostringstream& os, const T& first, const Rest&... rest) {
  os << first;
  append(os, rest...);
}
template <typename... Args>
std::string str_cat(const Args&... args) {
  std::ostringstream os;
  append(os, args...);
  return os.str();
}
[[noreturn]] void throw_check_failure(const char* file, int line, const char* expr,
                                      const std::string& msg);
}  // namespace detail

// Builds a string from any streamable values: str_cat("shape ", 3, "x", 4).
template <typename... Args>
std::string str_cat(const Args&... args) {
  return detail::str_cat(args...);
}

}  // namespace qilin

// QILIN_CHECK(cond, values...): throws qilin::Error("file:line: check `cond` failed: values").
#define QILIN_CHECK(cond, ...)                                                          \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      ::qilin::detail::throw_check_failure(__FILE__, __LINE__, #cond,                   \
                                           ::qilin::detail::str_cat(__VA_ARGS__));      \
    }                                                                                   \
  } while (0)

// QILIN_FAIL(values...): unconditional error with file and line.
#define QILIN_FAIL(...)                                                                 \
  ::qilin::detail::throw_check_failure(__FILE__, __LINE__, nullptr,                     \
                                       ::qilin::detail::str_cat(__VA_ARGS__))
