#include "common/crash_point.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <string>

namespace cbpipe {
namespace {

struct Armed {
  std::string name;
  long remaining = 0;
};

Armed* Load() {
  const char* spec = std::getenv("CBPIPE_CRASH_AT");
  if (!spec || !*spec) return nullptr;
  const std::string s(spec);
  const size_t colon = s.rfind(':');
  auto* armed = new Armed;
  armed->name = s.substr(0, colon);
  armed->remaining =
      colon == std::string::npos ? 1 : std::atol(s.c_str() + colon + 1);
  if (armed->remaining < 1) armed->remaining = 1;
  return armed;
}

}  // namespace

void CrashPoint(std::string_view name) {
  static Armed* const armed = Load();
  if (!armed || armed->name != name) return;
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  if (--armed->remaining == 0) {
    ::kill(::getpid(), SIGKILL);
    ::pause();
  }
}

}  // namespace cbpipe
