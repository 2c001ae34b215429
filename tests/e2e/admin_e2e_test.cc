// The admin API of a live `cbpipe serve`: the redrive command exactly as
// docs/service.md writes it (curl, POST without a body), and the audit
// lines that redrives and purges leave in the service's log, from the API
// and from the CLI (issue 9, point 10).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "common/sha256.h"
#include "e2e/cli.h"
#include "queue/sqlite_queue.h"

namespace cbpipe::testing {
namespace {

using json = nlohmann::json;

constexpr char kToken[] = "e2e-admin-token-0123456789";

int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  int port = -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
    port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

// A shell command's standard output.
std::string Shell(const std::string& command) {
  std::string out;
  FILE* p = ::popen(command.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  ::pclose(p);
  return out;
}

std::vector<json> Events(const std::string& log, std::string_view event) {
  std::vector<json> out;
  std::istringstream lines(ReadFile(log));
  for (std::string line; std::getline(lines, line);) {
    json j = json::parse(line, nullptr, false);
    if (j.is_object() && j.value("event", "") == event) out.push_back(j);
  }
  return out;
}

TEST(AdminE2eTest, DocumentedRedriveCommandAndAuditLines) {
  TempDir dir("admin_e2e");
  const std::string work = dir / "work";
  const std::string log = dir / "serve.log";
  const int port = FreePort();
  ASSERT_GT(port, 0);
  std::string config = "[output]\nwork_dir = \"" + work +
                       "\"\n\n[service]\nsettle_ms = 50\n"
                       "poll_interval_ms = 50\nadmin_listen = \"127.0.0.1:" +
                       std::to_string(port) +
                       "\"\nadmin_token = \"env:CBPIPE_TEST_ADMIN_TOKEN\"\n"
                       "log_file = \"" +
                       log + "\"\n";
  for (const char* net : {"visa", "mastercard", "amex", "discover"}) {
    config += std::string("\n[[destination]]\nname = \"") + net +
              "\"\nnetworks = [\"" + net + "\"]\nurl = \"file://" +
              (dir / (std::string("out/") + net)) + "\"\n";
  }
  WriteFile(dir / "serve.toml", config);

  // Two dead letters in the service's queue before it starts.
  std::filesystem::create_directories(work);
  std::vector<std::string> ids;
  {
    QueueOptions options;
    options.max_receive_count = 1;
    auto q = SqliteQueue::Open(work + "/state.db", "inputs", options);
    ASSERT_TRUE(q.ok()) << q.status().ToString();
    for (int i = 0; i < 2; ++i) {
      auto id = (*q)->Send(
          json{{"run_id", "00000000000000e" + std::to_string(i)}}.dump());
      ASSERT_TRUE(id.ok());
      ids.push_back(*id);
      auto got = (*q)->Receive(1, 60'000);
      ASSERT_TRUE(got.ok() && got->size() == 1u);
      ASSERT_TRUE((*q)->MoveToDeadLetter((*got)[0].receipt, "e2e").ok());
    }
  }

  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::setenv("CBPIPE_TEST_ADMIN_TOKEN", kToken, 1);
    const std::string bin = CbpipeBin();
    ::execl(bin.c_str(), bin.c_str(), "serve", "--config",
            (dir / "serve.toml").c_str(), nullptr);
    ::_exit(127);
  }
  const std::string base = "http://127.0.0.1:" + std::to_string(port);
  bool up = false;
  for (int i = 0; i < 100 && !up; ++i) {
    up = Shell("curl -s " + base + "/healthz").find("ok") != std::string::npos;
    if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(up) << ReadFile(log);

  // docs/service.md's command: POST, no body, no Content-Length.
  const auto start = std::chrono::steady_clock::now();
  const std::string out = Shell("curl -s -X POST -H \"Authorization: Bearer " +
                                std::string(kToken) + "\" " + base +
                                "/api/deadletters/" + ids[0] + "/redrive");
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_LT(took, std::chrono::seconds(2));
  EXPECT_EQ(json::parse(out, nullptr, false)["redriven"], ids[0]) << out;

  // The CLI's purge, while the service runs.
  CliResult purge =
      RunCli("dlq purge --yes --config " + ShellQuote(dir / "serve.toml"));
  EXPECT_EQ(purge.exit_code, 0) << purge.err;

  ::kill(pid, SIGTERM);
  int status = 0;
  ::waitpid(pid, &status, 0);

  Sha256 sha;
  sha.Update(kToken, sizeof kToken - 1);
  const std::string token_id = "token:" + sha.FinishHex()->substr(0, 8);
  const std::vector<json> redrives = Events(log, "audit.redrive");
  ASSERT_EQ(redrives.size(), 1u) << ReadFile(log);
  EXPECT_EQ(redrives[0]["actor"], token_id);
  EXPECT_EQ(redrives[0]["via"], "api");
  EXPECT_EQ(redrives[0]["dead_letter_id"], ids[0]);
  EXPECT_EQ(redrives[0]["run_id"], "00000000000000e0");
  EXPECT_EQ(redrives[0]["outcome"], "ok");
  const std::vector<json> purges = Events(log, "audit.purge");
  ASSERT_EQ(purges.size(), 1u) << ReadFile(log);
  EXPECT_EQ(purges[0]["via"], "cli");
  EXPECT_EQ(purges[0]["actor"].get<std::string>().rfind("user:", 0), 0u);
  EXPECT_EQ(purges[0]["outcome"], "ok");
  EXPECT_GE(purges[0]["count"].get<int>(), 1);
  EXPECT_EQ(ReadFile(log).find(kToken), std::string::npos);
}

}  // namespace
}  // namespace cbpipe::testing
