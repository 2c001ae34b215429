#include "app/ops_commands.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "app/audit.h"
#include "app/commands.h"
#include "ledger/sqlite_ledger.h"
#include "queue/sqlite_queue.h"
#include "runs/sqlite_run_store.h"
#include "telemetry/log.h"
#include "workflow/in_process_run.h"

namespace cbpipe {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

StepRecord Step(std::string name, std::string output, int attempts = 1,
                std::string error = "") {
  StepRecord s;
  s.name = std::move(name);
  s.state = "succeeded";
  s.attempts = attempts;
  s.output_json = std::move(output);
  s.error = std::move(error);
  return s;
}

constexpr int64_t kNow = 1748779200;  // 2025-06-01

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class OpsCommandsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "cbpipe-ops-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
    config_ = DefaultConfig((root_ / "work").string());
    config_.service.max_receive_count = 1;
    fs::create_directories(root_ / "work");
    paths_ = ResolveServicePaths(config_);
  }
  void TearDown() override { fs::remove_all(root_); }

  std::unique_ptr<RunStore> OpenRuns() {
    auto runs = SqliteRunStore::Open(paths_.state_db, Env::Default());
    EXPECT_TRUE(runs.ok());
    return std::move(*runs);
  }
  std::unique_ptr<SqliteQueue> OpenQueue() {
    QueueOptions options;
    options.max_receive_count = 1;
    auto q = SqliteQueue::Open(paths_.state_db, kInputsQueue, options);
    EXPECT_TRUE(q.ok());
    return std::move(*q);
  }

  void SeedRuns(RunStore* runs) {
    for (int i = 0; i < 3; ++i) {
      RunRecord r;
      r.run_id = "000000000000000" + std::to_string(i);
      r.input_name = "in" + std::to_string(i) + ".csv";
      r.input_key = "inputs/" + r.run_id;
      r.created_ms = 1000 + i;
      ASSERT_TRUE(runs->CreateIfAbsent(r).ok());
    }
    ASSERT_TRUE(runs->SetState("0000000000000001", "failed", "deliver",
                               "550 permission denied")
                    .ok());
    ASSERT_TRUE(runs->SaveStep("0000000000000001",
                               Step("validate", R"({"rejects_file":"/r.csv"})"))
                    .ok());
  }

  // Runs `fn` and returns what it printed on stdout.
  template <typename Fn>
  std::string Stdout(Fn fn, int* rc) {
    ::testing::internal::CaptureStdout();
    *rc = fn();
    return ::testing::internal::GetCapturedStdout();
  }

  fs::path root_;
  Config config_;
  ServicePaths paths_;
};

TEST_F(OpsCommandsTest, RunsListAndShow) {
  auto runs = OpenRuns();
  SeedRuns(runs.get());
  int rc = -1;
  std::string out =
      Stdout([&] { return RunsList(config_, "", 50, false); }, &rc);
  EXPECT_EQ(rc, kExitOk);
  EXPECT_NE(out.find("0000000000000002"), std::string::npos) << out;
  EXPECT_NE(out.find("(3 of 3 run(s))"), std::string::npos) << out;
  // Newest first.
  EXPECT_LT(out.find("0000000000000002"), out.find("0000000000000000"));

  out = Stdout([&] { return RunsList(config_, "failed", 10, true); }, &rc);
  EXPECT_EQ(rc, kExitOk);
  json j = json::parse(out);
  ASSERT_EQ(j["runs"].size(), 1u);
  EXPECT_EQ(j["runs"][0]["run_id"], "0000000000000001");
  EXPECT_EQ(j["total"], 1);

  EXPECT_EQ(RunsList(config_, "bogus", 10, false), kExitUsage);
  EXPECT_EQ(RunsList(config_, "", 0, false), kExitUsage);

  out =
      Stdout([&] { return RunsShow(config_, "0000000000000001", false); }, &rc);
  EXPECT_EQ(rc, kExitOk);
  EXPECT_NE(out.find("failed"), std::string::npos) << out;
  EXPECT_NE(out.find("550 permission denied"), std::string::npos) << out;
  EXPECT_NE(out.find("rejects: /r.csv"), std::string::npos) << out;

  out =
      Stdout([&] { return RunsShow(config_, "0000000000000001", true); }, &rc);
  j = json::parse(out);
  EXPECT_EQ(j["steps"][0]["name"], "validate");
  EXPECT_EQ(j["rejects_file"], "/r.csv");

  EXPECT_EQ(RunsShow(config_, "00000000000000ff", false), kExitUsage);
  EXPECT_EQ(RunsShow(config_, "nope", false), kExitUsage);
}

TEST_F(OpsCommandsTest, WithoutStateDatabaseSaysSoAndCreatesNothing) {
  EXPECT_EQ(RunsList(config_, "", 50, false), kExitUsage);
  EXPECT_EQ(DlqList(config_, false), kExitUsage);
  EXPECT_FALSE(fs::exists(paths_.state_db));
}

TEST_F(OpsCommandsTest, DeadLettersListShowRedrivePurge) {
  auto q = OpenQueue();
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    json body = {{"run_id", "000000000000000" + std::to_string(i)},
                 {"input_name", "in.csv"}};
    auto id = q->Send(body.dump());
    ASSERT_TRUE(id.ok());
    ids.push_back(*id);
  }
  // Received once (the limit), then again: moved to the dead letters.
  ASSERT_EQ(q->Receive(10, 0)->size(), 3u);
  ASSERT_TRUE(q->Receive(10, 0)->empty());
  ASSERT_EQ(q->Stats()->dead_letters, 3);

  int rc = -1;
  std::string out = Stdout([&] { return DlqList(config_, false); }, &rc);
  EXPECT_EQ(rc, kExitOk);
  for (const std::string& id : ids)
    EXPECT_NE(out.find(id), std::string::npos) << out;
  EXPECT_NE(out.find("0000000000000001"), std::string::npos) << out;
  EXPECT_NE(out.find("(3 dead letter(s))"), std::string::npos) << out;

  out = Stdout([&] { return DlqList(config_, true); }, &rc);
  EXPECT_EQ(json::parse(out)["dead_letters"].size(), 3u);

  out = Stdout([&] { return DlqShow(config_, ids[1], true); }, &rc);
  EXPECT_EQ(rc, kExitOk);
  EXPECT_EQ(json::parse(out)["id"], ids[1]);
  EXPECT_EQ(DlqShow(config_, "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", false),
            kExitUsage);

  EXPECT_EQ(DlqRedrive(config_, "", false), kExitUsage);
  EXPECT_EQ(DlqRedrive(config_, ids[0], true), kExitUsage);
  out = Stdout([&] { return DlqRedrive(config_, ids[0], false); }, &rc);
  EXPECT_EQ(rc, kExitOk);
  EXPECT_EQ(q->Stats()->dead_letters, 2);
  EXPECT_EQ(q->Stats()->visible, 1);
  EXPECT_EQ(DlqRedrive(config_, ids[0], false), kExitUsage);  // gone

  out = Stdout([&] { return DlqRedrive(config_, "", true); }, &rc);
  EXPECT_EQ(rc, kExitOk);
  EXPECT_NE(out.find("redrove 2"), std::string::npos) << out;
  EXPECT_EQ(q->Stats()->dead_letters, 0);

  // Dead again, then purged (only with --yes).
  ASSERT_EQ(q->Receive(10, 0)->size(), 3u);
  ASSERT_TRUE(q->Receive(10, 0)->empty());
  ASSERT_EQ(q->Stats()->dead_letters, 3);
  EXPECT_EQ(DlqPurge(config_, false), kExitUsage);
  EXPECT_EQ(q->Stats()->dead_letters, 3);
  out = Stdout([&] { return DlqPurge(config_, true); }, &rc);
  EXPECT_EQ(rc, kExitOk);
  EXPECT_NE(out.find("purged 3"), std::string::npos) << out;
  EXPECT_EQ(q->Stats()->dead_letters, 0);
}

TEST_F(OpsCommandsTest, SubmitPlacesCompleteFilesInTheInbox) {
  fs::create_directories(paths_.inbox);
  const fs::path a = root_ / "a.csv";
  const fs::path b = root_ / "b.csv.gz";
  std::ofstream(a) << "case_id\nX\n";
  std::ofstream(b) << "gzip-ish";
  int rc = -1;
  std::string out = Stdout(
      [&] {
        return Submit(config_, {a.string(), b.string()});
      },
      &rc);
  EXPECT_EQ(rc, kExitOk);
  EXPECT_EQ(ReadFile(fs::path(paths_.inbox) / "a.csv"), "case_id\nX\n");
  EXPECT_EQ(ReadFile(fs::path(paths_.inbox) / "b.csv.gz"), "gzip-ish");
  EXPECT_NE(out.find(paths_.inbox + "/a.csv"), std::string::npos) << out;

  // The same name again is not overwritten.
  std::ofstream(a) << "second";
  out = Stdout([&] { return Submit(config_, {a.string(), b.string()}); }, &rc);
  EXPECT_EQ(rc, kExitOk);
  EXPECT_EQ(ReadFile(fs::path(paths_.inbox) / "a.csv"), "case_id\nX\n");
  EXPECT_EQ(ReadFile(fs::path(paths_.inbox) / "a~1.csv"), "second");
  EXPECT_TRUE(fs::exists(fs::path(paths_.inbox) / "b~1.csv.gz"));

  // Not regular files, dot-names, missing files: refused, others still go.
  const fs::path fifo = root_ / "pipe.csv";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const fs::path dot = root_ / ".hidden.csv";
  std::ofstream(dot) << "x";
  const fs::path c = root_ / "c.csv";
  std::ofstream(c) << "c";
  out = Stdout(
      [&] {
        return Submit(config_, {fifo.string(), root_.string(), dot.string(),
                                (root_ / "missing.csv").string(), c.string()});
      },
      &rc);
  EXPECT_EQ(rc, kExitRejected);
  EXPECT_TRUE(fs::exists(fs::path(paths_.inbox) / "c.csv"));
  EXPECT_FALSE(fs::exists(fs::path(paths_.inbox) / "pipe.csv"));

  // Nothing temporary is left behind.
  for (const auto& e : fs::directory_iterator(paths_.inbox)) {
    const std::string name = e.path().filename().string();
    EXPECT_NE(name.front(), '.') << name;
  }
  EXPECT_EQ(Submit(config_, {}), kExitUsage);
}

TEST_F(OpsCommandsTest, SubmitNeedsTheInbox) {
  const fs::path a = root_ / "a.csv";
  std::ofstream(a) << "x";
  EXPECT_EQ(Submit(config_, {a.string()}), kExitUsage);
}

// The JSON lines of `path` whose event is `event`.
std::vector<json> EventsIn(const fs::path& path, std::string_view event) {
  std::vector<json> out;
  std::istringstream lines(ReadFile(path));
  for (std::string line; std::getline(lines, line);) {
    json j = json::parse(line, nullptr, false);
    if (j.is_object() && j.value("event", "") == event) out.push_back(j);
  }
  return out;
}

// Issue 9, point 10: every redrive and purge from the CLI is an audit line
// in the service's log: who (the local user), what, when, outcome.
TEST_F(OpsCommandsTest, RedriveAndPurgeAreAuditedInTheServiceLog) {
  config_.service.log_file = (root_ / "service.log").string();
  std::ofstream(root_ / "service.log").close();  // the service made it
  auto q = OpenQueue();
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    auto id =
        q->Send(json{{"run_id", "00000000000000a" + std::to_string(i)}}.dump());
    ASSERT_TRUE(id.ok());
    ids.push_back(*id);
  }
  ASSERT_EQ(q->Receive(10, 0)->size(), 3u);
  ASSERT_TRUE(q->Receive(10, 0)->empty());
  int rc = -1;
  Stdout([&] { return DlqRedrive(config_, ids[0], false); }, &rc);
  EXPECT_EQ(rc, kExitOk);
  EXPECT_EQ(DlqRedrive(config_, ids[0], false), kExitUsage);  // not one now
  Stdout([&] { return DlqPurge(config_, true); }, &rc);
  EXPECT_EQ(rc, kExitOk);
  EXPECT_EQ(DlqPurge(config_, false), kExitUsage);  // nothing attempted

  std::string origin;
  const std::string actor = LocalActor(&origin);
  EXPECT_EQ(actor.rfind("user:", 0), 0u);
  const std::vector<json> redrives =
      EventsIn(root_ / "service.log", "audit.redrive");
  ASSERT_EQ(redrives.size(), 2u) << ReadFile(root_ / "service.log");
  EXPECT_EQ(redrives[0]["outcome"], "ok");
  EXPECT_EQ(redrives[0]["via"], "cli");
  EXPECT_EQ(redrives[0]["actor"], actor);
  EXPECT_NE(redrives[0]["origin"].get<std::string>().find(
                "uid=" + std::to_string(::getuid())),
            std::string::npos);
  EXPECT_EQ(redrives[0]["dead_letter_id"], ids[0]);
  EXPECT_EQ(redrives[0]["run_id"], "00000000000000a0");
  EXPECT_EQ(redrives[0]["count"], 1);
  EXPECT_EQ(redrives[1]["outcome"], "not_found");
  const std::vector<json> purges =
      EventsIn(root_ / "service.log", "audit.purge");
  ASSERT_EQ(purges.size(), 1u);
  EXPECT_EQ(purges[0]["outcome"], "ok");
  EXPECT_EQ(purges[0]["count"], 2);
  EXPECT_EQ(purges[0]["dead_letter_id"], "*");
}

// Without a log file (or before the service has made it: it is not
// created here), the audit line goes to the process's log (stderr).
TEST_F(OpsCommandsTest, RedriveAllIsAuditedOnTheProcessLog) {
  config_.service.log_file = (root_ / "not-yet.log").string();
  auto sink = std::make_shared<MemoryLogSink>();
  Log().SetSink(sink);
  auto q = OpenQueue();
  ASSERT_TRUE(q->Send("{}").ok());
  ASSERT_EQ(q->Receive(10, 0)->size(), 1u);
  ASSERT_TRUE(q->Receive(10, 0)->empty());
  int rc = -1;
  Stdout([&] { return DlqRedrive(config_, "", true); }, &rc);
  Log().SetSink(StderrLogSink());
  EXPECT_EQ(rc, kExitOk);
  const std::vector<std::string> lines = sink->Lines();
  ASSERT_EQ(lines.size(), 1u);
  const json j = json::parse(lines[0]);
  EXPECT_EQ(j["event"], "audit.redrive");
  EXPECT_EQ(j["dead_letter_id"], "*");
  EXPECT_EQ(j["count"], 1);
  EXPECT_EQ(j["outcome"], "ok");
  EXPECT_FALSE(fs::exists(root_ / "not-yet.log"));
}

class ReplayTest : public OpsCommandsTest {
 protected:
  // Processes a small input as `cbpipe run` does (file:// outboxes) and
  // records it as a succeeded run with its generate step.
  void ProcessAndRecord() {
    const fs::path input = root_ / "in.csv";
    std::ofstream(input)
        << "case_id,network,arn,merchant_id,transaction_date,"
           "chargeback_date,amount,currency,reason_code\n"
           "V1,visa,74567890123456789012341,M1,2025-03-01,2025-04-01,"
           "10.00,USD,10.4\n"
           "A1,amex,,M2,2025-03-01,2025-04-01,5.00,EUR,C08\n";
    auto ledger = SqliteDeliveryLedger::Open(paths_.ledger_db, Env::Default());
    ASSERT_TRUE(ledger.ok());
    InProcessRunner runner(config_, ledger->get(), Env::Default(), kNow);
    InputResult r = runner.Process(input.string());
    ASSERT_TRUE(r.ok()) << r.error.ToString();
    ASSERT_EQ(r.batches.size(), 1u);
    run_id_ = r.input_id;
    for (const DeliveredFile& f : r.batches[0].files) {
      delivered_.push_back(fs::path(config_.work_dir) / "outbox" /
                           f.file.destination / f.delivery.remote_name);
      ASSERT_TRUE(fs::exists(delivered_.back()));
      destinations_.push_back(f.file.destination);
      names_.push_back(f.delivery.remote_name);
    }
    json batches = json::array();
    for (const BatchResult& b : r.batches)
      batches.push_back(
          {{"id", b.batch.id}, {"manifest", b.batch.manifest_path}});

    auto runs = OpenRuns();
    RunRecord run;
    run.run_id = run_id_;
    run.input_name = "in.csv";
    run.state = "queued";
    ASSERT_TRUE(runs->CreateIfAbsent(run).ok());
    ASSERT_TRUE(runs->SaveStep(run_id_, Step("generate",
                                             json{{"batches", batches}}.dump()))
                    .ok());
    ASSERT_TRUE(runs->SetState(run_id_, "succeeded", "", "").ok());
  }

  std::optional<LedgerEntry> Ledger(size_t i) {
    auto ledger = SqliteDeliveryLedger::Open(paths_.ledger_db, Env::Default());
    EXPECT_TRUE(ledger.ok());
    auto e = (*ledger)->Find(destinations_[i], names_[i]);
    EXPECT_TRUE(e.ok());
    return *e;
  }

  std::string run_id_;
  std::vector<fs::path> delivered_;
  std::vector<std::string> destinations_, names_;
};

TEST_F(ReplayTest, DeliversLostFilesAgainAsReplay) {
  ProcessAndRecord();
  ASSERT_EQ(delivered_.size(), 2u);
  ASSERT_FALSE(Ledger(0)->replay);
  const std::string original = ReadFile(delivered_[0]);
  for (const fs::path& p : delivered_) fs::remove(p);  // the receiver lost them

  int rc = -1;
  std::string out = Stdout([&] { return Replay(config_, run_id_, true); }, &rc);
  EXPECT_EQ(rc, kExitOk) << out;
  json j = json::parse(out);
  EXPECT_TRUE(j["ok"].get<bool>());
  for (size_t i = 0; i < delivered_.size(); ++i) {
    EXPECT_TRUE(fs::exists(delivered_[i])) << delivered_[i];
    auto e = Ledger(i);
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(e->state, "delivered");
    EXPECT_TRUE(e->replay);
  }
  EXPECT_EQ(ReadFile(delivered_[0]), original);
}

TEST_F(ReplayTest, ReplaysAreAudited) {
  config_.service.log_file = (root_ / "service.log").string();
  std::ofstream(root_ / "service.log").close();
  ProcessAndRecord();
  for (const fs::path& p : delivered_) fs::remove(p);
  int rc = -1;
  Stdout([&] { return Replay(config_, run_id_, false, destinations_[1]); },
         &rc);
  EXPECT_EQ(rc, kExitOk);
  EXPECT_EQ(Replay(config_, "00000000000000ff", false), kExitUsage);
  const std::vector<json> lines =
      EventsIn(root_ / "service.log", "audit.replay");
  ASSERT_EQ(lines.size(), 2u) << ReadFile(root_ / "service.log");
  EXPECT_EQ(lines[0]["outcome"], "ok");
  EXPECT_EQ(lines[0]["run_id"], run_id_);
  EXPECT_EQ(lines[0]["destination"], destinations_[1]);
  EXPECT_EQ(lines[0]["count"], 1);
  EXPECT_EQ(lines[0]["via"], "cli");
  EXPECT_EQ(lines[1]["outcome"], "not_found");
  EXPECT_EQ(lines[1]["run_id"], "00000000000000ff");
}

TEST_F(ReplayTest, OnlyOneDestination) {
  ProcessAndRecord();
  for (const fs::path& p : delivered_) fs::remove(p);
  int rc = -1;
  Stdout([&] { return Replay(config_, run_id_, false, destinations_[1]); },
         &rc);
  EXPECT_EQ(rc, kExitOk);
  EXPECT_FALSE(fs::exists(delivered_[0]));
  EXPECT_TRUE(fs::exists(delivered_[1]));
  EXPECT_FALSE(Ledger(0)->replay);
  EXPECT_TRUE(Ledger(1)->replay);
  EXPECT_EQ(Replay(config_, run_id_, false, "no-such-destination"), kExitUsage);
}

TEST_F(ReplayTest, RefusesFilesThatNoLongerMatch) {
  ProcessAndRecord();
  for (const fs::path& p : delivered_) fs::remove(p);
  // Change a generated file in its batch folder.
  auto runs = OpenRuns();
  auto run = runs->Get(run_id_);
  ASSERT_TRUE(run.ok());
  json gen = json::parse(run->steps[0].output_json);
  const fs::path dir =
      fs::path(gen["batches"][0]["manifest"].get<std::string>()).parent_path();
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ".csv") {
      std::ofstream(e.path(), std::ios::app) << "tampered\n";
      break;
    }
  }
  int rc = -1;
  Stdout([&] { return Replay(config_, run_id_, false); }, &rc);
  EXPECT_EQ(rc, kExitRejected);
  for (const fs::path& p : delivered_) EXPECT_FALSE(fs::exists(p));
}

TEST_F(ReplayTest, RefusesUnknownAndUnfinishedRuns) {
  ProcessAndRecord();
  EXPECT_EQ(Replay(config_, "00000000000000ff", false), kExitUsage);
  EXPECT_EQ(Replay(config_, "bad", false), kExitUsage);
  auto runs = OpenRuns();
  ASSERT_TRUE(runs->SetState(run_id_, "running", "deliver", "").ok());
  EXPECT_EQ(Replay(config_, run_id_, false), kExitUsage);
  RunRecord rejected;
  rejected.run_id = "00000000000000ee";
  rejected.state = "rejected";
  ASSERT_TRUE(runs->CreateIfAbsent(rejected).ok());
  EXPECT_EQ(Replay(config_, "00000000000000ee", false), kExitUsage);
}

}  // namespace
}  // namespace cbpipe
