// The service in-process, without root or servers (file:// destinations of
// DefaultConfig): threads owned and joined, waits cut short by a stop, the
// metrics recorded through the injected port, and the queue gauges unbound
// before the queue goes.
#include "workflow/service.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "telemetry/in_memory_metrics.h"

namespace cbpipe {
namespace {

namespace fs = std::filesystem;

bool HasSample(Metrics& metrics, std::string_view name) {
  for (const MetricSample& s : metrics.Collect()) {
    if (s.name == name) return true;
  }
  return false;
}

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) /
            ("service_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    config_ = DefaultConfig((root_ / "work").string());
    config_.service.workers = 2;
    config_.service.settle_ms = 0;
    config_.service.poll_interval_ms = 20;
    config_.service.visibility_seconds = 2;
    config_.service.admin_listen = "";
  }
  void TearDown() override { fs::remove_all(root_); }

  std::unique_ptr<Service> Make() {
    auto s = Service::Create(config_, nullptr, &metrics_);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(*s) : nullptr;
  }

  // Starts the service, waits until `runs` runs succeeded (15 s at most),
  // then stops and joins it.
  bool RunUntilSucceeded(Service& service, int64_t runs) {
    if (!service.Start().ok()) return false;
    bool done = false;
    for (int i = 0; i < 300 && !done; ++i) {
      StatusOr<int64_t> n = service.runs()->Count({.state = "succeeded"});
      done = n.ok() && *n == runs;
      if (!done) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    service.RequestStop();
    return service.Join(10000) && done;
  }

  void DropInput(const std::string& name, int records) {
    const fs::path staged = root_ / ("." + name);
    {
      std::ofstream out(staged);
      out << "case_id,network,arn,merchant_id,transaction_date,"
             "chargeback_date,amount,currency,reason_code\n";
      for (int i = 0; i < records; ++i)
        out << "A" << name << i
            << ",amex,,M,2025-03-01,2025-04-01,1.00,USD,C08\n";
    }
    fs::rename(staged, root_ / "work/inbox" / name);
  }

  fs::path root_;
  Config config_;
  InMemoryMetrics metrics_{PipelineMetricSpecs()};
};

TEST_F(ServiceTest, QueueGaugesReadTheQueueOnlyWhileTheServiceLives) {
  std::unique_ptr<Service> service = Make();
  ASSERT_TRUE(service);
  EXPECT_EQ(metrics_.Value(kQueueDepth), 0);
  ASSERT_TRUE(service->queue()->Send("{}").ok());
  ASSERT_TRUE(service->queue()->Send("{}").ok());
  EXPECT_EQ(metrics_.Value(kQueueDepth), 2);
  EXPECT_TRUE(HasSample(metrics_, kQueueOldestMessageAgeSeconds));
  service.reset();
  // Unbound with the service: nothing reads the destroyed queue (ASan
  // would see it).
  EXPECT_FALSE(HasSample(metrics_, kQueueDepth));
  EXPECT_FALSE(HasSample(metrics_, kQueueOldestMessageAgeSeconds));
}

TEST_F(ServiceTest, CreateNeedsMetrics) {
  EXPECT_EQ(Service::Create(config_, nullptr, nullptr).status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(ServiceTest, StopCutsEveryWaitShortAndJoinJoinsAll) {
  // Polls an hour apart: only a wait that honours the stop ends in time.
  config_.service.poll_interval_ms = 3600 * 1000;
  std::unique_ptr<Service> service = Make();
  ASSERT_TRUE(service);
  ASSERT_TRUE(service->Start().ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_TRUE(service->running());
  const auto start = std::chrono::steady_clock::now();
  service->RequestStop();
  EXPECT_TRUE(service->Join(10000));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  EXPECT_FALSE(service->running());
  EXPECT_TRUE(service->Join(0));  // already joined: still true at once
}

TEST_F(ServiceTest, RunsInputsAndRecordsThroughTheInjectedMetrics) {
  std::unique_ptr<Service> service = Make();
  ASSERT_TRUE(service);
  fs::create_directories(root_ / "work/inbox");
  DropInput("one.csv", 5);
  DropInput("two.csv", 7);
  ASSERT_TRUE(RunUntilSucceeded(*service, 2));
  EXPECT_EQ(metrics_.Value(kInputsTotal, {"accepted"}), 2);
  EXPECT_EQ(metrics_.Value(kRecordsAcceptedTotal, {"amex"}), 12);
  EXPECT_GE(metrics_.Value(kFilesGeneratedTotal, {"amex"}), 1);
  EXPECT_EQ(metrics_.Value(kDeadLettersTotal), 0);
}

// A lone input's latency: a file still settling when a scan sees it is
// taken when it has settled, not at the next poll.
TEST_F(ServiceTest, AFileIsTakenWhenItSettlesNotAtTheNextPoll) {
  config_.service.poll_interval_ms = 4000;
  config_.service.settle_ms = 500;
  std::unique_ptr<Service> service = Make();
  ASSERT_TRUE(service);
  DropInput("lone.csv", 2);  // written now: settles in 500 ms
  const auto dropped = std::chrono::steady_clock::now();
  ASSERT_TRUE(service->Start().ok());
  bool created = false;
  while (!created &&
         std::chrono::steady_clock::now() - dropped < std::chrono::seconds(8)) {
    StatusOr<int64_t> n = service->runs()->Count({});
    created = n.ok() && *n == 1;
    if (!created) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const auto took = std::chrono::steady_clock::now() - dropped;
  service->RequestStop();
  EXPECT_TRUE(service->Join(10000));
  ASSERT_TRUE(created);
  EXPECT_GE(took, std::chrono::milliseconds(450));  // settled first
  EXPECT_LT(took, std::chrono::milliseconds(2500)) << "waited for the poll";
}

TEST_F(ServiceTest, MalformedMessagesAreDeadLettersAndServingGoesOn) {
  std::unique_ptr<Service> service = Make();
  ASSERT_TRUE(service);
  // Fields of the wrong type would make nlohmann's value() throw.
  for (const char* body :
       {"not json", "[1,2]", "\"text\"", R"({"run_id": 5, "input_key": "k"})",
        R"({"run_id": "r", "input_key": ["k"]})", R"({"run_id": "r"})",
        R"({"run_id": "r", "input_key": "k", "trace_id": {"a": 1}})"}) {
    ASSERT_TRUE(service->queue()->Send(body).ok());
  }
  fs::create_directories(root_ / "work/inbox");
  DropInput("after.csv", 3);
  ASSERT_TRUE(RunUntilSucceeded(*service, 1));
  StatusOr<QueueStats> st = service->queue()->Stats();
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->dead_letters, 7);
  EXPECT_EQ(metrics_.Value(kDeadLettersTotal), 7);
  EXPECT_EQ(metrics_.Value(kInputsTotal, {"accepted"}), 1);
}

// A state.db written by cbpipe serve before the workflow definition: runs
// checkpointed by its step list (validate, generate, verify, deliver,
// notify, settle, reject_input, record_failure; no "$input" record), the
// rows written with SQLite as that code wrote them. Every such run ends on
// the new definition with each record delivered exactly once: what the
// ledger says was delivered is not sent again, the rest is.
class OldStateDatabaseTest : public ServiceTest {
 protected:
  using json = nlohmann::json;

  void Sql(const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(service_paths_.state_db.c_str(), &db), SQLITE_OK);
    char* error = nullptr;
    const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
    EXPECT_EQ(rc, SQLITE_OK) << (error ? error : "") << "\n" << sql;
    sqlite3_free(error);
    sqlite3_close(db);
  }
  static std::string Quote(const std::string& text) {
    std::string out = "'";
    for (char c : text)
      out += c == '\'' ? std::string("''") : std::string(1, c);
    return out + "'";
  }
  // The run as the old RunStore left it: its state and next step, and the
  // old engine's checkpoints, in order.
  void OldRun(const std::string& run_id, const std::string& state,
              const std::string& next, const std::string& error,
              const std::vector<std::pair<std::string, json>>& steps) {
    std::ostringstream sql;
    sql << "UPDATE runs SET state = " << Quote(state)
        << ", current_step = " << Quote(next) << ", error = " << Quote(error)
        << ", claim_owner = '', claim_until = 0 WHERE run_id = "
        << Quote(run_id) << ";"
        << "DELETE FROM steps WHERE run_id = " << Quote(run_id) << ";";
    int seq = 0;
    for (const auto& [name, output] : steps) {
      const bool failed = output.contains("error");
      sql << "INSERT INTO steps (run_id, name, seq, state, attempts,"
             " output_json, error, started_ms, finished_ms) VALUES ("
          << Quote(run_id) << ", " << Quote(name) << ", " << ++seq << ", "
          << Quote(failed ? "failed" : "succeeded") << ", 1, "
          << Quote(output.dump()) << ", "
          << Quote(failed ? output["error"]["code"].get<std::string>() + ": " +
                                output["error"]["message"].get<std::string>()
                          : "")
          << ", 1700000000000, 1700000000001);";
    }
    Sql(sql.str());
  }
  // The old steps' outputs for `run`, up to and including `last`.
  static std::vector<std::pair<std::string, json>> OldSteps(
      const RunRecord& run, const std::string& last, bool settle_failed) {
    json in = {{"input_key", run.input_key}, {"input_name", run.input_name}};
    std::vector<std::pair<std::string, json>> steps;
    auto patched = [](json base, const json& patch) {
      base.merge_patch(patch);
      return base;
    };
    auto add = [&](const std::string& name, json out) {
      if (steps.empty() || steps.back().first != last)
        steps.emplace_back(name, out);
      return out;
    };
    in = add("validate",
             patched(in, {{"records", 3},
                          {"accepted", 3},
                          {"rejected", 0},
                          {"rejects_file", "/old/runs/rejects.csv"}}));
    in =
        add("generate",
            patched(in, {{"batches",
                          {{{"id", "OLDBATCH"},
                            {"manifest", "/old/batches/OLDBATCH/manifest.json"},
                            {"files", json::array()}}}}}));
    in = add("verify", in);
    in = add("deliver",
             patched(in, {{"deliveries",
                           {{{"id", "OLDBATCH"}, {"files", json::array()}}}},
                          {"failed_files", settle_failed ? 1 : 0}}));
    in = add("notify", in);
    if (settle_failed) {
      json caught = {
          {"error",
           {{"code", "ABORTED"},
            {"message", "1 file(s) not delivered after all retries"}}},
          {"input", in}};
      add("settle", caught);
      add("record_failure", caught);
    }
    return steps;
  }

  // Every outbox file (relative path -> content) and how often each record
  // (case id) appears in them.
  std::map<std::string, std::string> Outbox(std::map<std::string, int>* ids) {
    std::map<std::string, std::string> files;
    const fs::path outbox = root_ / "work" / "outbox";
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(outbox, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (!it->is_regular_file()) continue;
      std::ifstream in(it->path(), std::ios::binary);
      std::stringstream text;
      text << in.rdbuf();
      files[fs::relative(it->path(), outbox).string()] = text.str();
      std::string line;
      while (std::getline(text, line)) {
        const size_t at = line.find("Aold-");
        if (at == std::string::npos) continue;
        const size_t end = line.find_first_of(",;|\"\t", at);
        ++(*ids)[line.substr(at, end - at)];
      }
    }
    return files;
  }

  RunRecord RunNamed(Service& service, const std::string& name) {
    StatusOr<std::vector<RunRecord>> runs = service.runs()->List({}, 100, 0);
    EXPECT_TRUE(runs.ok());
    for (const RunRecord& r : *runs) {
      if (r.input_name == name) return r;
    }
    ADD_FAILURE() << "no run for " << name;
    return {};
  }

  ServicePaths service_paths_;
};

TEST_F(OldStateDatabaseTest, OldRunsEndOnTheNewWorkflowDeliveredOnce) {
  config_.service.workers = 1;
  service_paths_ = ResolveServicePaths(config_);
  // 1. c and e are delivered (by today's service: real files, real ledger
  //    rows); the old runs below keep those deliveries.
  {
    std::unique_ptr<Service> service = Make();
    ASSERT_TRUE(service);
    DropInput("old-c.csv", 4);
    DropInput("old-e.csv", 5);
    ASSERT_TRUE(RunUntilSucceeded(*service, 2));
  }
  std::map<std::string, int> kept_ids;
  const std::map<std::string, std::string> kept = Outbox(&kept_ids);
  ASSERT_FALSE(kept.empty());
  ASSERT_EQ(kept_ids.size(), 9u);
  // 2. a, b and d are picked up (stored, queued, created) but not run.
  std::map<std::string, RunRecord> runs;
  {
    std::unique_ptr<Service> service = Make();
    ASSERT_TRUE(service);
    DropInput("old-a.csv", 2);
    DropInput("old-b.csv", 3);
    DropInput("old-d.csv", 6);
    ASSERT_TRUE(service->ScanInboxOnce().ok());
    for (const char* name :
         {"old-a.csv", "old-b.csv", "old-c.csv", "old-d.csv", "old-e.csv"})
      runs[name] = RunNamed(*service, name);
    // c is queued again (interrupted by the old process) and e is a dead
    // letter (failed); the queue's format did not change.
    for (const char* name : {"old-c.csv", "old-e.csv"}) {
      const RunRecord& r = runs[name];
      json body = {{"run_id", r.run_id},
                   {"input_key", r.input_key},
                   {"input_name", r.input_name},
                   {"trace_id", r.trace_id}};
      ASSERT_TRUE(service->queue()->Send(body.dump(), {}, 0, r.run_id).ok());
    }
    StatusOr<std::vector<Message>> got =
        service->queue()->Receive(10, 60000, 0);
    ASSERT_TRUE(got.ok());
    for (const Message& m : *got) {
      if (m.body.find(runs["old-e.csv"].run_id) != std::string::npos) {
        ASSERT_TRUE(service->queue()
                        ->MoveToDeadLetter(m.receipt,
                                           "ABORTED: 1 file(s) "
                                           "not delivered")
                        .ok());
      } else {
        ASSERT_TRUE(service->queue()->ChangeVisibility(m.receipt, 0).ok());
      }
    }
  }
  // 3. The old engine's rows.
  // a: queued, never started.
  OldRun(runs["old-a.csv"].run_id, "queued", "", "", {});
  // b: stopped after verify; deliver next.
  OldRun(runs["old-b.csv"].run_id, "running", "deliver", "",
         OldSteps(runs["old-b.csv"], "verify", false));
  // c: stopped after its deliveries and notify; settle next.
  OldRun(runs["old-c.csv"].run_id, "running", "settle", "",
         OldSteps(runs["old-c.csv"], "notify", false));
  // d: settle failed and was caught; stopped before record_failure (its
  //    old records share names with today's notify and settle states).
  OldRun(runs["old-d.csv"].run_id, "running", "record_failure",
         "ABORTED: 1 file(s) not delivered after all retries",
         OldSteps(runs["old-d.csv"], "settle", true));
  // e: failed, a dead letter; a redrive starts again at deliver.
  OldRun(runs["old-e.csv"].run_id, "failed", "deliver",
         "ABORTED: 1 file(s) not delivered after all retries",
         OldSteps(runs["old-e.csv"], "record_failure", true));

  // 4. Today's serve on that database; e's dead letter redriven.
  std::unique_ptr<Service> service = Make();
  ASSERT_TRUE(service);
  StatusOr<std::vector<DeadLetter>> dead =
      service->queue()->ListDeadLetters(10);
  ASSERT_TRUE(dead.ok());
  ASSERT_EQ(dead->size(), 1u);
  ASSERT_TRUE(service->queue()->Redrive((*dead)[0].message.id).ok());
  const double delivered_before =
      metrics_.Value(kFilesDeliveredTotal, {"amex", "delivered"});
  ASSERT_TRUE(RunUntilSucceeded(*service, 5));
  for (const auto& [name, run] : runs) {
    StatusOr<RunRecord> now = service->runs()->Get(run.run_id);
    ASSERT_TRUE(now.ok());
    EXPECT_EQ(now->state, "succeeded") << name << ": " << now->error;
  }
  std::map<std::string, int> ids;
  const std::map<std::string, std::string> after = Outbox(&ids);
  // c's and e's files are the same files, not sent again.
  for (const auto& [path, content] : kept) {
    auto it = after.find(path);
    ASSERT_NE(it, after.end()) << path;
    EXPECT_EQ(it->second, content) << path;
  }
  // Every record of the five inputs, once.
  EXPECT_EQ(ids.size(), 2u + 3 + 4 + 6 + 5);
  for (const auto& [id, n] : ids) EXPECT_EQ(n, 1) << id;
  EXPECT_EQ(metrics_.Value(kFilesDeliveredTotal, {"amex", "delivered"}) -
                delivered_before,
            static_cast<double>(after.size() - kept.size()));
  StatusOr<QueueStats> st = service->queue()->Stats();
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->dead_letters, 0);
}

}  // namespace
}  // namespace cbpipe
