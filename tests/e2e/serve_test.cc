// `cbpipe serve` with real SFTP and FTPS destinations (sshd, vsftpd on
// 127.0.0.1): SIGKILL at many points followed by a restart delivers every
// file exactly once and byte-identical to a clean run; outages shorter than
// the retries are ridden out; longer ones become dead letters with an alert
// and are delivered once after a redrive. Needs root; skipped otherwise.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "domain/rules.h"
#include "e2e/cli.h"
#include "e2e/destinations.h"
#include "e2e/serve_process.h"
#include "notify/test_receivers.h"
#include "queue/sqlite_queue.h"
#include "runs/sqlite_run_store.h"
#include "servers/test_servers.h"

namespace cbpipe::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::map<std::string, std::string> FilesUnder(const std::string& root,
                                              bool* leftovers) {
  std::map<std::string, std::string> files;
  if (!fs::exists(root)) return files;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (!e.is_regular_file()) continue;
    const std::string name = e.path().filename().string();
    if (name.size() > 5 && name.substr(name.size() - 5) == ".part") {
      if (leftovers) *leftovers = true;
      continue;
    }
    files[fs::relative(e.path(), root).string()] = ReadFile(e.path().string());
  }
  return files;
}

class ServeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to start sshd/vsftpd";
    dir_ = std::make_unique<TempDir>(
        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    Status started = StartCardServers(dir_->path(), &sftp_, &ftps_);
    ASSERT_TRUE(started.ok()) << started.ToString();
    env_ = {"CBPIPE_TEST_FTPS_PASSWORD=" + ftps_->password()};
  }

  // The four destinations; `sftp_port` lets a test route SFTP through a
  // proxy it controls.
  std::string Destinations(int sftp_port, int max_attempts) {
    const std::string retry = FastRetry(max_attempts);
    std::string c;
    for (const char* net : {"visa", "mastercard"})
      c += SftpDestination(*sftp_, net, retry, sftp_port);
    for (const char* net : {"amex", "discover"})
      c += FtpsDestination(*ftps_, net, "env:CBPIPE_TEST_FTPS_PASSWORD", retry);
    return c;
  }

  // `admin_listen` "" (no admin API) or host:port.
  std::string ServiceConfig(const std::string& extra = "",
                            const std::string& admin_listen = "") {
    return "[output]\nwork_dir = \"" + *dir_ / "work" +
           "\"\n\n[service]\nsettle_ms = 50\npoll_interval_ms = 50\n"
           "visibility_seconds = 2\nworkers = 2\nadmin_listen = \"" +
           admin_listen + "\"\nshutdown_timeout_seconds = 10\n" + extra;
  }

  void DropInputs(int count, int records) {
    fs::create_directories(*dir_ / "work/inbox");
    for (int i = 1; i <= count; ++i) {
      const std::string name = "in" + std::to_string(i) + ".csv";
      const std::string staged = *dir_ / name;
      ASSERT_EQ(RunCli("gen-sample --records " + std::to_string(records) +
                       " --invalid-ratio 0.02 --seed " + std::to_string(i) +
                       " --output " + ShellQuote(staged))
                    .exit_code,
                0);
      inputs_.push_back(staged);
      fs::copy_file(staged, *dir_ / ("work/inbox/." + name));
      fs::rename(*dir_ / ("work/inbox/." + name),
                 *dir_ / ("work/inbox/" + name));
    }
  }

  // What a clean `cbpipe run` to local folders generates for the inputs.
  std::map<std::string, std::string> Expected() {
    std::string c = "[output]\nwork_dir = \"" + *dir_ / "clean" + "\"\n";
    for (const char* net : {"visa", "mastercard", "amex", "discover"}) {
      c += std::string("[[destination]]\nname = \"") + net +
           "\"\nnetworks = [\"" + net + "\"]\nurl = \"file://" +
           *dir_ / ("clean-out/" + std::string(net)) + "\"\n";
    }
    WriteFile(*dir_ / "clean.toml", c);
    std::string args = "run --config " + ShellQuote(*dir_ / "clean.toml");
    for (const std::string& in : inputs_) args += " " + ShellQuote(in);
    CliResult r = RunCli(args);
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    return FilesUnder(*dir_ / "clean-out", nullptr);
  }

  std::map<std::string, std::string> Received(bool* leftovers) {
    std::map<std::string, std::string> all;
    for (const auto& [root, nets] :
         {std::pair{sftp_->root_dir(),
                    std::vector<std::string>{"visa", "mastercard"}},
          std::pair{ftps_->root_dir(),
                    std::vector<std::string>{"amex", "discover"}}}) {
      for (const std::string& net : nets) {
        for (auto& [name, bytes] : FilesUnder(root + "/" + net, leftovers))
          all[net + "/" + name] = bytes;
      }
    }
    return all;
  }

  // Polls the run store until `count` runs are in `state`.
  bool WaitForRuns(const std::string& state, int count, int timeout_ms) {
    return WaitForRunCount(*dir_ / "work/state.db", state, count, timeout_ms);
  }

  std::unique_ptr<TempDir> dir_;
  std::optional<SshServer> sftp_;
  std::optional<FtpServer> ftps_;
  std::vector<std::string> env_;
  std::vector<std::string> inputs_;
};

TEST_F(ServeTest, RunLogsInOncePerDestinationAcrossBatches) {
  // Files of 100 rows, two per batch: visa and mastercard have files in
  // several batches, all of them sent over one SSH connection each.
  auto proxy = CuttingProxy::Start({.target_port = sftp_->port()});
  ASSERT_TRUE(proxy.ok()) << proxy.status().ToString();
  WriteFile(*dir_ / "run.toml",
            "[output]\nwork_dir = \"" + *dir_ / "work" +
                "\"\nmax_files_per_batch = 2\nmax_records_per_file = 100\n" +
                Destinations((*proxy)->port(), 3));
  ASSERT_EQ(RunCli("gen-sample --records 1000 --seed 5 --output " +
                   ShellQuote(*dir_ / "in.csv"))
                .exit_code,
            0);
  CliResult r = RunCli("run --json --config " + ShellQuote(*dir_ / "run.toml") +
                           " " + ShellQuote(*dir_ / "in.csv"),
                       "env " + ShellQuote(env_[0]));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const nlohmann::json summary = nlohmann::json::parse(r.out);
  std::map<std::string, std::set<int>> batches_of;  // destination -> batches
  for (size_t b = 0; b < summary["batches"].size(); ++b) {
    for (const auto& f : summary["batches"][b]["files"]) {
      EXPECT_EQ(f["status"], "delivered");
      batches_of[f["destination"].get<std::string>()].insert(
          static_cast<int>(b));
    }
  }
  ASSERT_GE(batches_of["visa"].size(), 3u);
  ASSERT_GE(batches_of["mastercard"].size(), 2u);
  EXPECT_EQ((*proxy)->connections(), 2);  // one per SFTP destination
  // Every file of the summary is on its server, and nothing else.
  std::set<std::string> sent;
  for (const auto& batch : summary["batches"]) {
    for (const auto& f : batch["files"]) {
      sent.insert(f["destination"].get<std::string>() + "/" +
                  f["name"].get<std::string>());
    }
  }
  bool leftovers = false;
  std::set<std::string> received;
  for (const auto& [name, bytes] : Received(&leftovers)) received.insert(name);
  EXPECT_EQ(received, sent);
  EXPECT_FALSE(leftovers);
}

TEST_F(ServeTest, ServeReusesConnectionsAcrossInputs) {
  // Six inputs at once, two workers: each worker logs in to each SFTP
  // destination at most once, not once per input.
  auto proxy = CuttingProxy::Start({.target_port = sftp_->port()});
  ASSERT_TRUE(proxy.ok()) << proxy.status().ToString();
  const std::string log = *dir_ / "serve.log";
  // The prober's connects (no login) would pass the proxy too.
  WriteFile(*dir_ / "serve.toml",
            ServiceConfig("probe_interval_seconds = 0\n") +
                Destinations((*proxy)->port(), 3));
  DropInputs(6, 300);
  {
    ServeProcess serve(*dir_ / "serve.toml", log, env_);
    ASSERT_TRUE(WaitForRuns("succeeded", 6, 60000)) << ReadFile(log);
    serve.Signal(SIGTERM);
    int status = 0;
    ASSERT_TRUE(serve.WaitExit(15000, &status));
  }
  EXPECT_LE((*proxy)->connections(), 4);  // 2 workers x 2 destinations
  bool leftovers = false;
  EXPECT_EQ(Received(&leftovers), Expected());
  EXPECT_FALSE(leftovers);
}

TEST_F(ServeTest, KillNineAtManyPointsDeliversEveryFileExactlyOnce) {
  // Thirteen lives, each receiving the unfinished inputs' messages again:
  // more than the default max_receive_count, which is there to dead-letter
  // a run that crashes its worker, as this test does on purpose.
  WriteFile(*dir_ / "serve.toml",
            ServiceConfig("max_receive_count = 40\n") + Destinations(0, 5));
  DropInputs(4, 1500);
  const std::string log = *dir_ / "serve.log";
  // Each crash point, then a few kills at arbitrary moments.
  // deliver.upload and deliver.rename are the remote upload and the remote
  // rename on the SFTP and FTPS servers (a crash after the upload leaves a
  // temporary file there that the next attempt must remove).
  const std::vector<std::string> points = {
      "inbox.archive:2",          "generate.record:900",
      "step.before_checkpoint:2", "deliver.upload:2",
      "deliver.after_upload:1",   "deliver.rename:3",
      "deliver.before_ledger:2",  "deliver.after_ledger:3",
      "notify.event:2",           "step.before_checkpoint:3"};
  int crashed = 0;
  for (const std::string& point : points) {
    std::vector<std::string> env = env_;
    env.push_back("CBPIPE_CRASH_AT=" + point);
    ServeProcess serve(*dir_ / "serve.toml", log, env);
    int status = 0;
    const auto start = std::chrono::steady_clock::now();
    const bool exited = serve.WaitExit(15000, &status);
    if (exited && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) {
      ++crashed;
    }
    std::cerr << point << ": " << (exited ? "crashed" : "not reached")
              << " after "
              << std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::steady_clock::now() - start)
                     .count()
              << " ms\n";
  }
  // A point whose work was already finished by earlier lives is not
  // reached; most must be.
  EXPECT_GE(crashed, 7) << ReadFile(log);
  for (int delay_ms : {300, 800, 1500}) {
    ServeProcess serve(*dir_ / "serve.toml", log, env_);
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    serve.Kill();
  }
  {
    const int starts = [&] {
      const std::string text = ReadFile(log);
      int n = 0;
      for (size_t pos = text.find("service.started"); pos != std::string::npos;
           pos = text.find("service.started", pos + 1))
        ++n;
      return n;
    }();
    ServeProcess serve(*dir_ / "serve.toml", log, env_);
    ASSERT_TRUE(WaitForRuns("succeeded", 4, 90000)) << ReadFile(log);
    // SIGTERM once it is up (before that the default action would kill it).
    ASSERT_TRUE(WaitForLog(log, "service.started", starts + 1, 10000));
    serve.Signal(SIGTERM);
    int status = 0;
    ASSERT_TRUE(serve.WaitExit(15000, &status));
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "status " << status << "\n"
        << ReadFile(log).substr(
               ReadFile(log).size() > 3000 ? ReadFile(log).size() - 3000 : 0);
  }
  bool leftovers = false;
  const auto received = Received(&leftovers);
  const auto expected = Expected();
  EXPECT_FALSE(expected.empty());
  EXPECT_EQ(received.size(), expected.size());
  EXPECT_TRUE(received == expected) << "remote files differ from a clean run's";
  EXPECT_FALSE(leftovers) << "a .part file was left on a server";
  // The inbox is empty and every original is kept in the archive.
  EXPECT_TRUE(fs::is_empty(*dir_ / "work/inbox"));
  int archived = 0;
  for (const auto& e : fs::directory_iterator(*dir_ / "work/archive"))
    archived += e.is_regular_file();
  EXPECT_EQ(archived, 4);
}

TEST_F(ServeTest, KillNineAfterEachRemoteUploadAndRenameIsExact) {
  // Every remote upload and every remote rename of a run (four files: two
  // on SFTP, two on FTPS), one at a time: serve is killed right after it,
  // restarted on the same state, and must deliver each file once, byte-
  // identical to a clean run, with no temporary file left on the servers
  // and no dead letter. (The exhaustive walk over every durable operation
  // with file:// destinations is in pickup_test.cc.)
  WriteFile(*dir_ / "serve.toml", ServiceConfig() + Destinations(0, 3));
  DropInputs(1, 200);
  const std::string input = inputs_[0];
  const auto expected = Expected();
  ASSERT_EQ(expected.size(), 4u);
  int crashed = 0;
  for (const char* op : {"deliver.upload", "deliver.rename"}) {
    for (int k = 1; k <= 4; ++k) {
      const std::string point = std::string(op) + ":" + std::to_string(k);
      SCOPED_TRACE(point);
      const std::string log = *dir_ / ("serve-" + point + ".log");
      fs::remove_all(*dir_ / "work");
      for (const auto& [root, nets] :
           {std::pair{sftp_->root_dir(),
                      std::vector<std::string>{"visa", "mastercard"}},
            std::pair{ftps_->root_dir(),
                      std::vector<std::string>{"amex", "discover"}}}) {
        for (const std::string& net : nets) {
          for (const auto& e : fs::directory_iterator(root + "/" + net))
            fs::remove(e.path());
        }
      }
      fs::create_directories(*dir_ / "work/inbox");
      fs::copy_file(input, *dir_ / "work/inbox/.in1.csv");
      fs::rename(*dir_ / "work/inbox/.in1.csv", *dir_ / "work/inbox/in1.csv");
      {
        std::vector<std::string> env = env_;
        env.push_back("CBPIPE_CRASH_AT=" + point);
        ServeProcess serve(*dir_ / "serve.toml", log, env);
        int status = 0;
        if (serve.WaitExit(30000, &status) && WIFSIGNALED(status) &&
            WTERMSIG(status) == SIGKILL)
          ++crashed;
      }
      {
        ServeProcess serve(*dir_ / "serve.toml", log, env_);
        ASSERT_TRUE(WaitForRuns("succeeded", 1, 60000)) << ReadFile(log);
        ASSERT_TRUE(WaitForLog(log, "run.finished", 1, 10000));
        serve.Signal(SIGTERM);
        int status = 0;
        ASSERT_TRUE(serve.WaitExit(15000, &status));
      }
      bool leftovers = false;
      EXPECT_TRUE(Received(&leftovers) == expected) << ReadFile(log);
      EXPECT_FALSE(leftovers) << "a temporary file was left on a server";
      auto queue = SqliteQueue::Open(*dir_ / "work/state.db", "inputs");
      ASSERT_TRUE(queue.ok());
      EXPECT_EQ((*queue)->Stats()->dead_letters, 0);
    }
  }
  EXPECT_EQ(crashed, 8);
}

TEST_F(ServeTest, OutagesRiddenOutThenDeadLetteredAlertedAndRedriven) {
  // SFTP is reached through a port where nothing listens until the test
  // "brings the server back".
  auto port = FindFreePort();
  ASSERT_TRUE(port.ok());
  HttpReceiver webhook;
  ASSERT_TRUE(webhook.Start());
  ::setenv("CBPIPE_TEST_WEBHOOK_SECRET", "whsec-test", 1);
  env_.push_back("CBPIPE_TEST_WEBHOOK_SECRET=whsec-test");
  const std::string notify =
      "[[notify.webhook]]\nurl = \"http://127.0.0.1:" +
      std::to_string(webhook.port()) +
      "/hook\"\nsecret = \"env:CBPIPE_TEST_WEBHOOK_SECRET\"\n";
  const std::string log = *dir_ / "serve.log";

  // 1. Down for a few retries, then back: delivered once.
  WriteFile(*dir_ / "serve.toml",
            ServiceConfig() + notify + Destinations(*port, 12));
  DropInputs(1, 800);
  std::unique_ptr<CuttingProxy> proxy;
  {
    ServeProcess serve(*dir_ / "serve.toml", log, env_);
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    auto p = CuttingProxy::Start(
        {.listen_port = *port, .target_port = sftp_->port()});
    ASSERT_TRUE(p.ok());
    proxy = std::move(*p);
    ASSERT_TRUE(WaitForRuns("succeeded", 1, 60000)) << ReadFile(log);
    // SIGINT stops it as cleanly as SIGTERM.
    serve.Signal(SIGINT);
    int status = 0;
    ASSERT_TRUE(serve.WaitExit(15000, &status));
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  }
  bool leftovers = false;
  EXPECT_EQ(Received(&leftovers).size(), 4u);

  // 2. Down past the last attempt: dead letter and alert; redriven after
  //    recovery: delivered once.
  proxy.reset();
  WriteFile(*dir_ / "serve.toml",
            ServiceConfig() + notify + Destinations(*port, 2));
  inputs_.clear();
  fs::create_directories(*dir_ / "batch2");
  ASSERT_EQ(RunCli("gen-sample --records 600 --seed 77 --output " +
                   ShellQuote(*dir_ / "work/inbox/late.csv"))
                .exit_code,
            0);
  {
    ServeProcess serve(*dir_ / "serve.toml", log, env_);
    ASSERT_TRUE(WaitForRuns("failed", 1, 60000)) << ReadFile(log);
    // The alert went out.
    bool alerted = false;
    for (int i = 0; i < 50 && !alerted; ++i) {
      for (const RecordedRequest& r : webhook.requests())
        alerted |= r.body.find("deadletter.added") != std::string::npos;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    EXPECT_TRUE(alerted);
    CliResult dlq =
        RunCli("dlq list --json --config " + ShellQuote(*dir_ / "serve.toml"));
    EXPECT_EQ(dlq.exit_code, 0) << dlq.err;
    EXPECT_THAT(dlq.out, HasSubstr("not delivered"));

    auto p = CuttingProxy::Start(
        {.listen_port = *port, .target_port = sftp_->port()});
    ASSERT_TRUE(p.ok());
    proxy = std::move(*p);
    CliResult redrive = RunCli("dlq redrive --all --config " +
                               ShellQuote(*dir_ / "serve.toml"));
    EXPECT_EQ(redrive.exit_code, 0) << redrive.out << redrive.err;
    ASSERT_TRUE(WaitForRuns("succeeded", 2, 60000)) << ReadFile(log);
    serve.Signal(SIGTERM);
    int status;
    serve.WaitExit(15000, &status);
  }
  const auto received = Received(&leftovers);
  // Two inputs: four files each, none twice.
  EXPECT_EQ(received.size(), 8u);
  EXPECT_FALSE(leftovers);
}

TEST_F(ServeTest, DuplicatesOnceUnreadableQuarantinedNothingDeleted) {
  auto admin_port = FindFreePort();
  ASSERT_TRUE(admin_port.ok());
  WriteFile(*dir_ / "serve.toml",
            ServiceConfig("", "127.0.0.1:" + std::to_string(*admin_port)) +
                Destinations(0, 3));
  DropInputs(1, 300);
  // The same content again under another name, and a binary file.
  fs::copy_file(inputs_[0], *dir_ / "work/inbox/.again.csv");
  fs::rename(*dir_ / "work/inbox/.again.csv", *dir_ / "work/inbox/again.csv");
  WriteFile(*dir_ / "work/inbox/broken.csv", std::string("case_id\n\0\0", 10));
  // Still being written: a dot-name is never picked up.
  WriteFile(*dir_ / "work/inbox/.partial.csv", "case_id\n");
  const std::string log = *dir_ / "serve.log";
  ServeProcess serve(*dir_ / "serve.toml", log, env_);
  ASSERT_TRUE(WaitForRuns("succeeded", 1, 60000)) << ReadFile(log);
  ASSERT_TRUE(WaitForRuns("rejected", 1, 60000)) << ReadFile(log);
  ASSERT_TRUE(WaitForLog(log, "input.duplicate", 1, 10000)) << ReadFile(log);
  auto store = SqliteRunStore::Open(*dir_ / "work/state.db", Env::Default());
  ASSERT_TRUE(store.ok());
  EXPECT_EQ(*(*store)->Count({}), 2);  // one run for the two copies
  // The unreadable input is quarantined with its reason, the original kept.
  bool quarantined = false;
  for (const auto& e :
       fs::recursive_directory_iterator(*dir_ / "work/quarantine"))
    quarantined |= e.path().filename() == "reason.txt" &&
                   ReadFile(e.path().string()).find("NUL") != std::string::npos;
  EXPECT_TRUE(quarantined) << ReadFile(log);
  std::set<std::string> archived;
  for (const auto& e : fs::directory_iterator(*dir_ / "work/archive"))
    archived.insert(e.path().filename().string().substr(17));
  EXPECT_EQ(archived,
            (std::set<std::string>{"in1.csv", "again.csv", "broken.csv"}));
  EXPECT_TRUE(fs::exists(*dir_ / "work/inbox/.partial.csv"));
  bool leftovers = false;
  EXPECT_EQ(Received(&leftovers).size(), 4u);

  // The service's own metrics and API tell the same story.
  httplib::Client api("127.0.0.1", *admin_port);
  auto metrics = api.Get("/metrics");
  ASSERT_TRUE(metrics) << "admin API not answering";
  EXPECT_EQ(metrics->status, 200);
  for (const char* line :
       {"cbpipe_files_delivered_total{destination=\"visa\",status="
        "\"delivered\"} 1",
        "cbpipe_files_generated_total{destination=\"amex\"} 1",
        "cbpipe_inputs_total{outcome=\"duplicate\"} 1",
        "cbpipe_inputs_total{outcome=\"quarantined\"} 1"}) {
    EXPECT_THAT(metrics->body, HasSubstr(line)) << metrics->body;
  }
  auto runs = api.Get("/api/runs?state=rejected");
  ASSERT_TRUE(runs);
  EXPECT_EQ(runs->status, 200);
  EXPECT_THAT(runs->body, HasSubstr("broken.csv"));
  auto bad = api.Get("/api/runs?state=bogus");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
}

// The card numbers in `text`: whole runs of 13-19 digits that pass the
// Luhn check.
std::set<std::string> CardNumbers(const std::string& text) {
  std::set<std::string> found;
  for (size_t i = 0; i < text.size();) {
    if (!std::isdigit(static_cast<unsigned char>(text[i]))) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < text.size() && std::isdigit(static_cast<unsigned char>(text[j])))
      ++j;
    if (j - i >= 13 && j - i <= 19 && LuhnValid(text.substr(i, j - i)))
      found.insert(text.substr(i, j - i));
    i = j;
  }
  return found;
}

// The metric's value for one label set ("name{labels}"), 0 when absent.
double MetricValue(const std::string& metrics, const std::string& series) {
  const size_t at = metrics.find("\n" + series + " ");
  if (at == std::string::npos) return 0;
  return std::stod(metrics.substr(at + series.size() + 2));
}

// The console's endpoints over real runs delivered to SFTP and FTPS: the
// overview's figures match the run store and /metrics, a run's page lists
// its files, deliveries and rejects, the rejects report downloads as
// stored, and no answer holds a card number (the inputs are full of them).
TEST_F(ServeTest, ConsoleApiMatchesTheStoresAndMetricsWithoutCardNumbers) {
  auto admin_port = FindFreePort();
  ASSERT_TRUE(admin_port.ok());
  WriteFile(*dir_ / "serve.toml",
            ServiceConfig("", "127.0.0.1:" + std::to_string(*admin_port)) +
                Destinations(0, 3));
  DropInputs(2, 400);
  const std::string log = *dir_ / "serve.log";
  ServeProcess serve(*dir_ / "serve.toml", log, env_);
  ASSERT_TRUE(WaitForRuns("succeeded", 2, 90000)) << ReadFile(log);
  // The inputs' card numbers: none may appear in an answer.
  std::set<std::string> pans;
  for (const std::string& in : inputs_) pans.merge(CardNumbers(ReadFile(in)));
  ASSERT_GT(pans.size(), 20u);

  httplib::Client api("127.0.0.1", *admin_port);
  std::vector<std::string> bodies;
  auto get = [&](const std::string& path) {
    auto r = api.Get(path);
    EXPECT_TRUE(r) << path;
    if (!r) return nlohmann::json();
    EXPECT_EQ(r->status, 200) << path << " " << r->body;
    bodies.push_back(r->body);
    return nlohmann::json::parse(r->body, nullptr, false);
  };
  const nlohmann::json overview = get("/api/overview");
  auto metrics = api.Get("/metrics");
  ASSERT_TRUE(metrics);
  ASSERT_TRUE(overview.is_object()) << bodies.back();
  EXPECT_EQ(overview["runs"]["succeeded"], 2);
  EXPECT_EQ(overview["runs"]["failed"], 0);
  EXPECT_EQ(overview["queue"]["dead_letters"], 0);
  EXPECT_EQ(overview["service"]["ready"], true);
  EXPECT_EQ(overview["service"]["workers"], 2);
  EXPECT_TRUE(overview["attention"].empty()) << overview.dump();
  bool leftovers = false;
  const auto received = Received(&leftovers);
  ASSERT_EQ(overview["destinations"].size(), 4u);
  int64_t files_today = 0;
  for (const auto& d : overview["destinations"]) {
    const std::string name = d["name"];
    EXPECT_EQ(d["network"], name);
    EXPECT_EQ(d["protocol"], name == "visa" || name == "mastercard" ? "sftp"
                                                                    : "ftps");
    EXPECT_EQ(d["failures_today"], 0) << name;
    EXPECT_EQ(d["retries_waiting"], 0) << name;
    EXPECT_TRUE(d["last_delivery_ms"].is_number()) << name;
    EXPECT_LT(d["last_delivery_age_seconds"].get<double>(), 300) << name;
    // The same count as the process's counter.
    EXPECT_EQ(d["files_today"].get<double>(),
              MetricValue(metrics->body,
                          "cbpipe_files_delivered_total{destination=\"" +
                              name + "\",status=\"delivered\"}"))
        << name;
    int64_t on_server = 0;
    for (const auto& [path, bytes] : received)
      on_server += path.rfind(name + "/", 0) == 0;
    EXPECT_EQ(d["files_today"], on_server) << name;
    files_today += d["files_today"].get<int64_t>();
    EXPECT_GT(d["records_today"].get<int64_t>(), 0) << name;
  }
  EXPECT_EQ(files_today, static_cast<int64_t>(received.size()));

  // Each run's page: files, deliveries, rejects by code.
  const nlohmann::json list = get("/api/runs?state=succeeded&input=IN");
  ASSERT_EQ(list["total"], 2) << list.dump();
  std::map<std::string, int64_t> rejected_by_code;
  for (const auto& summary : list["runs"]) {
    const std::string id = summary["run_id"];
    const nlohmann::json run = get("/api/runs/" + id);
    ASSERT_TRUE(run.is_object());
    EXPECT_EQ(run["files"].size(), run["deliveries"].size());
    for (const auto& f : run["files"]) {
      EXPECT_EQ(f["network"], f["destination"]);
      EXPECT_EQ(f["size"], f["bytes"]);
      EXPECT_EQ(f["sha256"].get<std::string>().size(), 64u);
      EXPECT_TRUE(f["totals"].is_object());
    }
    for (const auto& d : run["deliveries"]) {
      EXPECT_EQ(d["status"], "delivered") << d.dump();
      EXPECT_TRUE(d["delivered_ms"].is_number());
      EXPECT_EQ(received.count(d["destination"].get<std::string>() + "/" +
                               d["file"].get<std::string>()),
                1u)
          << d.dump();
    }
    const nlohmann::json& rejects = run["rejects"];
    ASSERT_GT(rejects["total"].get<int64_t>(), 0) << run.dump();
    int64_t sum = 0;
    for (const auto& [code, n] : rejects["by_code"].items()) {
      sum += n.get<int64_t>();
      rejected_by_code[code] += n.get<int64_t>();
    }
    EXPECT_EQ(sum, rejects["total"]);
    EXPECT_EQ(rejects["download"], "/api/runs/" + id + "/rejects");
    auto csv = api.Get("/api/runs/" + id + "/rejects");
    ASSERT_TRUE(csv);
    EXPECT_EQ(csv->status, 200);
    EXPECT_EQ(csv->get_header_value("Content-Type"), "text/csv; charset=utf-8");
    EXPECT_EQ(csv->get_header_value("Content-Disposition"),
              "attachment; filename=\"" + id + "-rejects.csv\"");
    EXPECT_EQ(csv->body, ReadFile(run["rejects_file"].get<std::string>()));
    bodies.push_back(csv->body);
  }
  for (const auto& [code, n] : rejected_by_code) {
    EXPECT_EQ(static_cast<double>(n),
              MetricValue(metrics->body,
                          "cbpipe_records_rejected_total{code=\"" + code + "\"}"))
        << code;
  }
  bodies.push_back(get("/api/runs").dump());
  bodies.push_back(get("/api/deadletters").dump());
  for (const std::string& body : bodies) {
    for (const std::string& pan : pans)
      ASSERT_EQ(body.find(pan), std::string::npos) << body.substr(0, 2000);
  }
}

}  // namespace
}  // namespace cbpipe::testing
