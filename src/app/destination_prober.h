// Whether each destination's server is reachable now, for the console's
// overview and the cbpipe_destination_up gauge: every interval, one TCP
// connect (2 s timeout) per sftp/ftp/ftps destination and a read of its
// greeting ("SSH-" for SFTP, "220" for FTP and explicit FTPS; implicit FTPS
// starts with TLS, so its connect alone counts). No login is attempted and
// no credential is read; file:// destinations are not probed.
//
//   DestinationProber prober(ConsoleDestinations(config), metrics);
//   prober.Start(std::chrono::seconds(30));
//   std::map<std::string, Reachability> now = prober.Results();
//   prober.Stop();  // or let it go out of scope: joins the thread
//
// Thread safety: Results() from any thread; Start/Stop from one.
// Ownership: `metrics` (may be null) must outlive the prober.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "app/console_api.h"
#include "telemetry/metrics.h"

namespace cbpipe {

// One probe of `d` at once: up, or down with the reason.
Reachability ProbeDestination(const ConsoleDestination& d, bool implicit_tls,
                              std::chrono::milliseconds timeout,
                              int64_t now_ms);

class DestinationProber {
 public:
  // `implicit_tls`: names of ftps destinations in implicit mode.
  DestinationProber(std::vector<ConsoleDestination> destinations,
                    std::vector<std::string> implicit_tls, Metrics* metrics);
  ~DestinationProber();  // Stop()s
  DestinationProber(const DestinationProber&) = delete;
  DestinationProber& operator=(const DestinationProber&) = delete;

  // Probes at once, then every `interval`, on one thread.
  void Start(std::chrono::milliseconds interval);
  // Wakes the thread and joins it (a probe in progress ends within its
  // timeout). Idempotent.
  void Stop();
  // The latest result per probed destination (none before the first).
  std::map<std::string, Reachability> Results() const;
  // Probes every destination once on the calling thread (tests; Start's
  // loop).
  void ProbeAll();

 private:
  const std::vector<ConsoleDestination> destinations_;
  const std::vector<std::string> implicit_tls_;
  Metrics* const metrics_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::map<std::string, Reachability> results_;
  std::thread thread_;
};

}  // namespace cbpipe
