#include "common/crash_point.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>

namespace cbpipe {
namespace {

struct Armed {
  std::string name;  // "" when only logging
  long remaining = 0;
  bool throws = false;  // "...:throw": throw instead of SIGKILL
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
    std::string s(spec);
    constexpr std::string_view kThrow = ":throw";
    if (s.size() > kThrow.size() && s.ends_with(kThrow)) {
      armed->throws = true;
      s.resize(s.size() - kThrow.size());
    }
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
    if (armed->throws)
      throw std::runtime_error("test fault at crash point " +
                               std::string(name));
    ::kill(::getpid(), SIGKILL);
    ::pause();
  }
}

}  // namespace

void CrashPoint(std::string_view name) { Reach(name, false); }

void DurablePoint(std::string_view name) { Reach(name, true); }

static int TraceFd() {
  static const int fd = [] {
    const char* path = std::getenv("CBPIPE_TEST_TRACE");
    if (!path || !*path) return -1;
    return ::open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  }();
  return fd;
}

bool TestTraceEnabled() { return TraceFd() >= 0; }

void TestTrace(std::string_view event) {
  const int fd = TraceFd();
  if (fd < 0) return;
  const int64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  // One write with O_APPEND: lines of several processes never interleave.
  const std::string line = std::to_string(ms) + " " +
                           std::to_string(::getpid()) + " " +
                           std::string(event) + "\n";
  if (::write(fd, line.data(), line.size()) < 0) {
    // Only a test reads it; a missing line makes that test fail.
  }
}

bool CrashPointsEnabled() { return Get() != nullptr; }

}  // namespace cbpipe
