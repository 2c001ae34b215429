// Helpers for tests that run `cbpipe serve` as a child process.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "common/env.h"
#include "e2e/cli.h"
#include "runs/sqlite_run_store.h"

namespace cbpipe::testing {

// A `cbpipe serve` child process; its stderr and stdout go to `log`.
class ServeProcess {
 public:
  ServeProcess(const std::string& config, const std::string& log,
               const std::vector<std::string>& env) {
    pid_ = ::fork();
    if (pid_ == 0) {
      for (const std::string& kv : env) ::putenv(strdup(kv.c_str()));
      const std::string bin = CbpipeBin();
      FILE* out = std::freopen(log.c_str(), "a", stderr);
      (void)out;
      out = std::freopen(log.c_str(), "a", stdout);
      (void)out;
      ::execl(bin.c_str(), bin.c_str(), "serve", "--config", config.c_str(),
              nullptr);
      ::_exit(127);
    }
  }
  ~ServeProcess() { Kill(); }
  // Waits for the process to end by itself; true when it did in time.
  bool WaitExit(int timeout_ms, int* status) {
    for (int waited = 0; waited < timeout_ms; waited += 20) {
      const pid_t r = ::waitpid(pid_, status, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }
  void Signal(int sig) {
    if (pid_ > 0) ::kill(pid_, sig);
  }
  // Asks it to stop (SIGTERM); true when it ended within `timeout_ms`.
  bool Stop(int timeout_ms) {
    Signal(SIGTERM);
    int status;
    return WaitExit(timeout_ms, &status);
  }
  void Kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
};

// Waits until `log` holds `needle` at least `count` times.
inline bool WaitForLog(const std::string& log, const std::string& needle,
                       int count, int timeout_ms) {
  for (int waited = 0; waited < timeout_ms; waited += 50) {
    const std::string text = ReadFile(log);
    int n = 0;
    for (size_t pos = text.find(needle); pos != std::string::npos;
         pos = text.find(needle, pos + 1))
      ++n;
    if (n >= count) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

// Polls the run store in `db` (a served work folder's state.db) until
// exactly `count` runs are in `state`.
inline bool WaitForRunCount(const std::string& db, const std::string& state,
                            int count, int timeout_ms) {
  for (int waited = 0; waited < timeout_ms; waited += 100) {
    auto store = SqliteRunStore::Open(db, Env::Default());
    if (store.ok()) {
      StatusOr<int64_t> n = (*store)->Count({.state = state});
      if (n.ok() && *n == count) return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

}  // namespace cbpipe::testing
