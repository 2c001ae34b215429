#include "common/crash_point.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <mutex>
#include <string>

namespace cbpipe {
namespace {

struct Armed {
  std::string name;  // "" when only logging
  long remaining = 0;
  int log_fd = -1;
  std::mutex mu;
};

Armed* Load() {
  const char* spec = std::getenv("CBPIPE_CRASH_AT");
  const char* log = std::getenv("CBPIPE_CRASH_LOG");
  const bool has_spec = spec && *spec;
  const bool has_log = log && *log;
  if (!has_spec && !has_log) return nullptr;
  auto* armed = new Armed;
  if (has_spec) {
    const std::string s(spec);
    const size_t colon = s.rfind(':');
    armed->name = s.substr(0, colon);
    armed->remaining =
        colon == std::string::npos ? 1 : std::atol(s.c_str() + colon + 1);
    if (armed->remaining < 1) armed->remaining = 1;
  }
  if (has_log) {
    armed->log_fd =
        ::open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  }
  return armed;
}

Armed* Get() {
  static Armed* const armed = Load();
  return armed;
}

void Reach(std::string_view name, bool durable) {
  Armed* armed = Get();
  if (!armed) return;
  const bool matches = !armed->name.empty() &&
                       (armed->name == name || (durable && armed->name == "*"));
  if (!matches && (!durable || armed->log_fd < 0)) return;
  std::lock_guard<std::mutex> lock(armed->mu);
  if (durable && armed->log_fd >= 0) {
    const std::string line = std::string(name) + "\n";
    if (::write(armed->log_fd, line.data(), line.size()) < 0) {
      // Only a test reads the log; a short count makes it fail loudly.
    }
  }
  if (matches && --armed->remaining == 0) {
    ::kill(::getpid(), SIGKILL);
    ::pause();
  }
}

}  // namespace

void CrashPoint(std::string_view name) { Reach(name, false); }

void DurablePoint(std::string_view name) { Reach(name, true); }

bool CrashPointsEnabled() { return Get() != nullptr; }

}  // namespace cbpipe
