// `cbpipe serve` with `[telemetry] metrics = ["prometheus", "emf"]` and
// `xray = true` (file:// destinations, no servers): the EMF lines of a run
// land in the configured file and a UDP listener standing in for the X-Ray
// daemon receives the run's segment and one subsegment per step call, in
// the X-Ray form of the run's trace id. With the defaults neither is
// written.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "common/env.h"
#include "e2e/cli.h"
#include "e2e/serve_process.h"
#include "runs/sqlite_run_store.h"
#include "telemetry/xray.h"
#include "telemetry/xray_test_daemon.h"

namespace cbpipe::testing {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kNetworks[] = {"visa", "mastercard", "amex", "discover"};

class ServeTelemetryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::make_unique<TempDir>(
        std::string("serve_telemetry_") +
        ::testing::UnitTest::GetInstance()->current_test_info()->name());
  }
  std::string Work() const { return *dir_ / "work"; }

  void WriteConfig(const std::string& telemetry) {
    std::string c = "[output]\nwork_dir = \"" + Work() +
                    "\"\n\n[service]\nsettle_ms = 20\npoll_interval_ms = 20\n"
                    "workers = 1\nadmin_listen = \"\"\n"
                    "shutdown_timeout_seconds = 10\n\n" +
                    telemetry;
    for (const char* net : kNetworks) {
      c += std::string("\n[[destination]]\nname = \"") + net +
           "\"\nnetworks = [\"" + net + "\"]\nurl = \"file://" +
           *dir_ / ("out/" + std::string(net)) + "\"\n";
    }
    WriteFile(*dir_ / "serve.toml", c);
  }

  // Generates an input and renames it into the inbox.
  void DropInput() {
    const std::string staged = *dir_ / "in1.csv";
    ASSERT_EQ(RunCli("gen-sample --records 200 --invalid-ratio 0.05 --seed 7 "
                     "--output " +
                     ShellQuote(staged))
                  .exit_code,
              0);
    fs::create_directories(Work() + "/inbox");
    fs::copy_file(staged, Work() + "/inbox/.in1.csv");
    fs::rename(Work() + "/inbox/.in1.csv", Work() + "/inbox/in1.csv");
  }

  // The one run, once it succeeded.
  std::optional<RunRecord> WaitForSucceededRun(int timeout_ms) {
    for (int waited = 0; waited < timeout_ms; waited += 50) {
      if (fs::exists(Work() + "/state.db")) {
        auto store = SqliteRunStore::Open(Work() + "/state.db", Env::Default());
        if (store.ok()) {
          StatusOr<int64_t> n = (*store)->Count({.state = "succeeded"});
          if (n.ok() && *n == 1) {
            StatusOr<std::vector<RunRecord>> runs =
                (*store)->List({.state = "succeeded"}, 10, 0);
            if (runs.ok() && runs->size() == 1) return runs->front();
          }
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return std::nullopt;
  }

  std::unique_ptr<TempDir> dir_;
};

TEST_F(ServeTelemetryTest, EmfLinesAndXRaySegmentsOfARun) {
  XRayTestDaemon daemon;
  const std::string emf = *dir_ / "emf.log";
  WriteConfig(
      "[telemetry]\nmetrics = [\"prometheus\", \"emf\"]\n"
      "emf_namespace = \"cbpipe/e2e\"\nemf_output = \"" +
      emf + "\"\nxray = true\nxray_daemon_address = \"" + daemon.address() +
      "\"\n");
  DropInput();
  const std::string log = *dir_ / "serve.log";
  ServeProcess serve(*dir_ / "serve.toml", log, {});
  std::optional<RunRecord> run = WaitForSucceededRun(60000);
  ASSERT_TRUE(run) << ReadFile(log);
  serve.Signal(SIGTERM);
  int status = 0;
  EXPECT_TRUE(serve.WaitExit(15000, &status));

  // EMF: whole lines, in the namespace, one per recording.
  std::istringstream lines(ReadFile(emf));
  std::set<std::string> delivered_to;
  bool accepted = false;
  int count = 0;
  for (std::string line; std::getline(lines, line);) {
    ++count;
    EXPECT_THAT(line, Not(HasSubstr("4111111111111111")));
    json root = json::parse(line);
    const json& d = root["_aws"]["CloudWatchMetrics"][0];
    EXPECT_EQ(d["Namespace"], "cbpipe/e2e");
    const std::string name = d["Metrics"][0]["Name"];
    EXPECT_TRUE(root[name].is_number()) << line;
    if (name == "cbpipe_inputs_total" && root["outcome"] == "accepted")
      accepted = true;
    if (name == "cbpipe_files_delivered_total" && root["status"] == "delivered")
      delivered_to.insert(root["destination"].get<std::string>());
  }
  EXPECT_GT(count, 4);
  EXPECT_TRUE(accepted) << ReadFile(emf);
  EXPECT_EQ(delivered_to,
            (std::set<std::string>{"amex", "discover", "mastercard", "visa"}));

  // X-Ray: the run's segment (in progress, then complete) and its steps.
  StatusOr<TraceId> w3c = TraceId::FromHex(run->trace_id);
  ASSERT_TRUE(w3c.ok()) << run->trace_id;
  const std::string xray_trace = XRayTraceId(*w3c);
  // The trace id starts with the epoch seconds, as X-Ray requires.
  const int64_t epoch = std::stoll(xray_trace.substr(2, 8), nullptr, 16);
  const int64_t now = Env::Default()->NowSeconds();
  EXPECT_LE(std::llabs(now - epoch), 600) << xray_trace;
  std::vector<json> docs = daemon.Documents();
  std::string segment_id;
  std::multiset<std::string> steps;
  bool complete = false;
  for (const json& d : docs) {
    EXPECT_EQ(d["trace_id"], xray_trace);
    if (!d.contains("parent_id")) {
      if (segment_id.empty()) segment_id = d["id"];
      EXPECT_EQ(d["id"], segment_id);
      if (!d.contains("in_progress")) {
        complete = true;
        EXPECT_EQ(d["annotations"]["run_id"], run->run_id);
        EXPECT_EQ(d["annotations"]["outcome"], "succeeded");
      }
    }
  }
  EXPECT_TRUE(complete);
  for (const json& d : docs) {
    if (!d.contains("parent_id")) continue;
    EXPECT_EQ(d["parent_id"], segment_id);
    steps.insert(d["name"].get<std::string>());
  }
  for (const char* step : {"scan", "verify", "deliver", "notify", "settle"})
    EXPECT_THAT(steps, Contains(step));
  EXPECT_EQ(steps.count("deliver"), 4u);  // one per destination
}

TEST_F(ServeTelemetryTest, DefaultsWriteNoEmfAndSendNoSegment) {
  XRayTestDaemon daemon;
  WriteConfig("");
  DropInput();
  const std::string log = *dir_ / "serve.log";
  // The daemon address alone does not turn X-Ray on.
  ServeProcess serve(*dir_ / "serve.toml", log,
                     {"AWS_XRAY_DAEMON_ADDRESS=" + daemon.address()});
  ASSERT_TRUE(WaitForSucceededRun(60000)) << ReadFile(log);
  serve.Signal(SIGTERM);
  int status = 0;
  EXPECT_TRUE(serve.WaitExit(15000, &status));
  EXPECT_TRUE(daemon.Datagrams().empty());
  EXPECT_THAT(ReadFile(log), Not(HasSubstr("CloudWatchMetrics")));
}

}  // namespace
}  // namespace cbpipe::testing
