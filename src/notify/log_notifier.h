// Log adapter, always on: each event as one JSON line (EventJson, no
// trailing newline) handed to a sink, e.g. the structured logger, where it
// goes in as a JSON object (not a string), unmasked since its only free
// text, the message, is masked by EventJson already:
//
//   LogNotifier log([&](std::string_view json) {
//     logger.Info({}, "notification", "event sent to the notifiers",
//                 {LogField::Json("notification", json)});
//   });
//   log.Notify(event);  // calls the sink at once, on the caller's thread
//
// Calls to the sink are serialized. A sink that throws loses that line and
// nothing else. The sink should be quick: Notify runs it synchronously.
#pragma once

#include <functional>
#include <mutex>
#include <string_view>

#include "notify/notifier.h"

namespace cbpipe {

class LogNotifier : public Notifier {
 public:
  using Sink = std::function<void(std::string_view line)>;
  explicit LogNotifier(Sink sink);

  void Notify(const Event& event) override;
  // Nothing is buffered: always OK.
  Status Flush(std::chrono::milliseconds timeout) override;

 private:
  std::mutex mu_;
  Sink sink_;
};

}  // namespace cbpipe
