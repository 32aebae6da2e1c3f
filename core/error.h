// graft::Error - the one exception type of the engine.
// User and shape errors throw it with the source location and a message that names the op, its arguments and
// their shapes, e.g. "conv2d: input (2,224,224,3) has 3 channels, weight (64,7,7,4) expects 4".
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace graft {

class Error : public std::runtime_error {
 public:
  Error(const std::string& message, const char* file, int line)
      : std::runtime_error(message + " [" + file + ":" + std::to_string(line) + "]"), message_(message) {}
  // The message without the source location (what the CLI prints).
  const std::string& message() const { return message_; }

 private:
  std::string message_;
};

namespace detail {
template <typename... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}
}  // namespace detail

}  // namespace graft

// GRAFT_CHECK(cond, parts...) throws graft::Error(concat(parts...)) when cond is false.
#define GRAFT_CHECK(cond, ...)                                                        \
  do {                                                                                \
    if (!(cond)) throw ::graft::Error(::graft::detail::concat(__VA_ARGS__), __FILE__, __LINE__); \
  } while (0)
#define GRAFT_FAIL(...) throw ::graft::Error(::graft::detail::concat(__VA_ARGS__), __FILE__, __LINE__)
