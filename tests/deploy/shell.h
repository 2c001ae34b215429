// Runs a shell command for the deployment tests (the tools that check the
// artifacts: promtool, cfn-lint, npm scripts) and keeps what it printed.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace cbpipe::testing {

struct Command {
  int rc = -1;      // exit status; -1 when it did not exit normally
  std::string out;  // stdout and stderr
};

inline Command RunShell(const std::string& cmd) {
  Command c;
  std::FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return c;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) c.out.append(buf, n);
  const int status = ::pclose(p);
  c.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return c;
}

}  // namespace cbpipe::testing
