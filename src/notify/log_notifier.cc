#include "notify/log_notifier.h"

#include <string>
#include <utility>

namespace cbpipe {

LogNotifier::LogNotifier(Sink sink) : sink_(std::move(sink)) {}

void LogNotifier::Notify(const Event& event) {
  try {
    std::string line = EventJson(event);
    std::lock_guard<std::mutex> lock(mu_);
    if (sink_) sink_(line);
  } catch (...) {
    // Never throws (Notifier contract); the line is lost.
  }
}

Status LogNotifier::Flush(std::chrono::milliseconds) { return OkStatus(); }

}  // namespace cbpipe
