#ifndef GITFLEET_COMMON_LOGGING_H_
#define GITFLEET_COMMON_LOGGING_H_

// Levelled logging to stderr, one line per message.
//
//   GF_LOG(INFO) << "fetched " << url << " at " << commit;
//
// Thread-safe: each message is written with a single write call.

#include <sstream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace gitfleet {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Parses "debug", "info", "warning" or "error".
absl::Status SetLogLevelByName(absl::string_view name);
void SetLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);

class LogMessage {
 public:
  LogMessage(LogLevel level, const char* file, int line);
  ~LogMessage();
  LogMessage(const LogMessage&) = delete;
  LogMessage& operator=(const LogMessage&) = delete;

  std::ostream& stream() { return stream_; }

 private:
  LogLevel level_;
  std::ostringstream stream_;
};

// Turns the streamed expression into void, binding looser than << and tighter than ?:.
struct LogVoidify {
  void operator&(std::ostream&) {}
};

}  // namespace gitfleet

#define GF_LOG_LEVEL_DEBUG ::gitfleet::LogLevel::kDebug
#define GF_LOG_LEVEL_INFO ::gitfleet::LogLevel::kInfo
#define GF_LOG_LEVEL_WARNING ::gitfleet::LogLevel::kWarning
#define GF_LOG_LEVEL_ERROR ::gitfleet::LogLevel::kError

// An expression, not an if statement, so it is safe inside an unbraced if/else.
#define GF_LOG(level)                           \
  !::gitfleet::LogEnabled(GF_LOG_LEVEL_##level) \
      ? (void)0                                 \
      : ::gitfleet::LogVoidify() &              \
            ::gitfleet::LogMessage(GF_LOG_LEVEL_##level, __FILE__, __LINE__).stream()

// An error met again and again (a file checked every second) is logged once, until it
// changes or Clear says it is gone: the log shows each new problem without repeating it.
// Not thread-safe: its owner's lock guards it.
class ErrorLoggedOnce {
 public:
  // Logs "MESSAGE; CONSEQUENCE" at ERROR unless `message` is the one logged last.
  void Report(absl::string_view message, absl::string_view consequence) {
    if (message == last_) return;
    GF_LOG(ERROR) << message << "; " << consequence;
    last_ = std::string(message);
  }
  void Clear() { last_.clear(); }

 private:
  std::string last_;
};

#endif  // GITFLEET_COMMON_LOGGING_H_
