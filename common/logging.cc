#include "common/logging.h"

#include <unistd.h>

#include <atomic>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace gitfleet {
namespace {

std::atomic<int> g_min_level{static_cast<int>(LogLevel::kInfo)};

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "DEBUG";
    case LogLevel::kInfo:
      return "INFO";
    case LogLevel::kWarning:
      return "WARN";
    case LogLevel::kError:
      return "ERROR";
  }
  return "?";
}

}  // namespace

absl::Status SetLogLevelByName(absl::string_view name) {
  std::string lower = absl::AsciiStrToLower(name);
  if (lower == "debug") {
    SetLogLevel(LogLevel::kDebug);
  } else if (lower == "info") {
    SetLogLevel(LogLevel::kInfo);
  } else if (lower == "warning" || lower == "warn") {
    SetLogLevel(LogLevel::kWarning);
  } else if (lower == "error") {
    SetLogLevel(LogLevel::kError);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown log level \"", name, "\" (want debug, info, warning or error)"));
  }
  return absl::OkStatus();
}

void SetLogLevel(LogLevel level) { g_min_level.store(static_cast<int>(level)); }

bool LogEnabled(LogLevel level) {
  return static_cast<int>(level) >= g_min_level.load(std::memory_order_relaxed);
}

LogMessage::LogMessage(LogLevel level, const char* file, int line) : level_(level) {
  absl::string_view path(file);
  size_t slash = path.rfind('/');
  if (slash != absl::string_view::npos) path.remove_prefix(slash + 1);
  stream_ << absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone()) << " "
          << LevelName(level_) << " " << path << ":" << line << "] ";
}

LogMessage::~LogMessage() {
  stream_ << "\n";
  std::string line = stream_.str();
  // One write keeps concurrent messages from interleaving.
  ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

}  // namespace gitfleet
