// `cbpipe serve` taking inputs from its inbox, with file:// destinations
// (no servers, no root): a file still being written is never taken half-way;
// entries that are not regular files are quarantined unread; two processes
// on one work folder execute an input once; and SIGKILL after every durable
// operation of a run, one at a time, followed by a restart, delivers every
// file exactly once, byte-identical to a clean run (docs/operations.md).
// The run claims, seen from outside through CBPIPE_TEST_TRACE: two
// processes with two workers each never execute one run at once; a process
// killed while holding a claim loses it when the lease runs out, never
// sooner; a step that throws fails its run and the service goes on.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "deliver/local_transport.h"
#include "e2e/cli.h"
#include "e2e/serve_process.h"
#include "queue/sqlite_queue.h"
#include "common/env.h"
#include "runs/sqlite_run_store.h"

namespace cbpipe::testing {
namespace {

namespace fs = std::filesystem;

constexpr const char* kNetworks[] = {"visa", "mastercard", "amex", "discover"};

int Count(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t pos = text.find(needle); pos != std::string::npos;
       pos = text.find(needle, pos + 1))
    ++n;
  return n;
}

// Every file under `root` by relative path; *temporaries counts the names
// an upload or a store leaves while it works (dot-names, .part, .tmp).
std::map<std::string, std::string> Tree(const std::string& root,
                                        int* temporaries = nullptr) {
  std::map<std::string, std::string> files;
  if (!fs::exists(root)) return files;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (!e.is_regular_file()) continue;
    const std::string name = e.path().filename().string();
    const bool temp =
        name[0] == '.' || (name.size() > 5 &&
                           (name.ends_with(".part") || name.ends_with(".tmp")));
    if (temp && temporaries) ++*temporaries;
    files[fs::relative(e.path(), root).string()] = ReadFile(e.path().string());
  }
  return files;
}

// The temporary files under `root` (as Tree counts them), by path.
std::vector<std::string> Temporaries(const std::string& root) {
  std::vector<std::string> names;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (!e.is_regular_file()) continue;
    const std::string name = e.path().filename().string();
    if (name[0] == '.' || name.ends_with(".part") || name.ends_with(".tmp"))
      names.push_back(fs::relative(e.path(), root).string());
  }
  return names;
}

// One line of CBPIPE_TEST_TRACE: "<epoch ms> <pid> <event> <args...>".
struct TraceEvent {
  int64_t ms = 0;
  std::string pid, event;
  std::vector<std::string> args;
};

std::vector<TraceEvent> ReadTrace(const std::string& path) {
  std::vector<TraceEvent> events;
  std::istringstream in(ReadFile(path));
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    TraceEvent e;
    fields >> e.ms >> e.pid >> e.event;
    for (std::string a; fields >> a;) e.args.push_back(a);
    events.push_back(std::move(e));
  }
  return events;
}

int64_t NowEpochMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class PickupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::make_unique<TempDir>(
        std::string("pickup_") +
        ::testing::UnitTest::GetInstance()->current_test_info()->name());
  }

  std::string Work() const { return *dir_ / "work"; }

  void WriteConfig(int settle_ms, int workers) {
    std::string c =
        "[output]\nwork_dir = \"" + Work() +
        "\"\n\n[service]\nsettle_ms = " + std::to_string(settle_ms) +
        "\npoll_interval_ms = 20\nvisibility_seconds = 2\n"
        "workers = " +
        std::to_string(workers) +
        "\nadmin_listen = \"\"\nshutdown_timeout_seconds = 10\n";
    for (const char* net : kNetworks) {
      c += std::string("\n[[destination]]\nname = \"") + net +
           "\"\nnetworks = [\"" + net + "\"]\nurl = \"file://" +
           *dir_ / ("out/" + std::string(net)) + "\"\n";
    }
    WriteFile(*dir_ / "serve.toml", c);
  }

  std::string Generate(const std::string& name, int records, int seed) {
    const std::string path = *dir_ / name;
    EXPECT_EQ(RunCli("gen-sample --records " + std::to_string(records) +
                     " --invalid-ratio 0.05 --seed " + std::to_string(seed) +
                     " --output " + ShellQuote(path))
                  .exit_code,
              0);
    return path;
  }

  // Renamed in, as docs/service.md asks writers to do.
  void Drop(const std::string& staged, const std::string& name) {
    fs::create_directories(Work() + "/inbox");
    fs::copy_file(staged, Work() + "/inbox/." + name);
    fs::rename(Work() + "/inbox/." + name, Work() + "/inbox/" + name);
  }

  // What a clean `cbpipe run` delivers for `inputs`, by "<network>/<file>".
  std::map<std::string, std::string> Expected(
      const std::vector<std::string>& inputs) {
    std::string c = "[output]\nwork_dir = \"" + *dir_ / "clean" + "\"\n";
    for (const char* net : kNetworks) {
      c += std::string("[[destination]]\nname = \"") + net +
           "\"\nnetworks = [\"" + net + "\"]\nurl = \"file://" +
           *dir_ / ("clean-out/" + std::string(net)) + "\"\n";
    }
    WriteFile(*dir_ / "clean.toml", c);
    std::string args = "run --config " + ShellQuote(*dir_ / "clean.toml");
    for (const std::string& in : inputs) args += " " + ShellQuote(in);
    CliResult r = RunCli(args);
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    return Tree(*dir_ / "clean-out");
  }

  // Read-only, so polling never creates state.db or its tables (which
  // would change how many commits serve makes).
  int64_t Runs(const std::string& state) {
    sqlite3* db = nullptr;
    int64_t n = -1;
    if (sqlite3_open_v2((Work() + "/state.db").c_str(), &db,
                        SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
      sqlite3_busy_timeout(db, 5000);
      sqlite3_stmt* s = nullptr;
      if (sqlite3_prepare_v2(
              db, "SELECT count(*) FROM runs WHERE (?1 = '' OR state = ?1)", -1,
              &s, nullptr) == SQLITE_OK) {
        sqlite3_bind_text(s, 1, state.c_str(), -1, SQLITE_TRANSIENT);
        if (sqlite3_step(s) == SQLITE_ROW) n = sqlite3_column_int64(s, 0);
      }
      sqlite3_finalize(s);
    }
    sqlite3_close(db);
    return n;
  }

  bool WaitForRuns(const std::string& state, int count, int timeout_ms) {
    for (int waited = 0; waited < timeout_ms; waited += 50) {
      if (fs::exists(Work() + "/state.db") && Runs(state) == count) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }

  // Waits until no message is waiting, in flight or delayed.
  void WaitForQueueDrained(int timeout_ms) {
    for (int waited = 0; waited < timeout_ms; waited += 50) {
      auto q = SqliteQueue::Open(Work() + "/state.db", "inputs");
      ASSERT_TRUE(q.ok());
      auto st = (*q)->Stats();
      if (st.ok() && st->visible + st->in_flight + st->delayed == 0) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  // The run id of an input: the start of its content hash.
  std::string RunIdOf(const std::string& input) {
    auto sha = Sha256File(input);
    EXPECT_TRUE(sha.ok());
    return sha.ok() ? sha->substr(0, 16) : std::string();
  }

  // out/ holds exactly what a clean run of `inputs` delivers, and no
  // temporary file.
  void ExpectDeliveredAsCleanRun(const std::vector<std::string>& inputs) {
    int temporaries = 0;
    EXPECT_EQ(Tree(*dir_ / "out", &temporaries), Expected(inputs));
    EXPECT_EQ(temporaries, 0);
  }

  int64_t DeadLetters() {
    auto q = SqliteQueue::Open(Work() + "/state.db", "inputs");
    if (!q.ok()) return -1;
    StatusOr<QueueStats> st = (*q)->Stats();
    return st.ok() ? st->dead_letters : -1;
  }

  void Stop(ServeProcess& serve) {
    serve.Signal(SIGTERM);
    int status = 0;
    EXPECT_TRUE(serve.WaitExit(15000, &status));
  }

  std::unique_ptr<TempDir> dir_;
};

TEST_F(PickupTest, FileStillBeingWrittenIsTakenOnlyWhenComplete) {
  // A writer that keeps the file open and pauses far longer than settle_ms
  // between appends: the service must neither process the first records
  // alone nor archive bytes the run never saw.
  WriteConfig(/*settle_ms=*/60, /*workers=*/1);
  const std::string full = ReadFile(Generate("slow.csv", 60, 3));
  std::vector<std::string> chunks;
  for (size_t start = 0, lines = 0, pos = 0; pos < full.size(); ++pos) {
    if (full[pos] != '\n') continue;
    if (++lines % 15 == 2 || pos + 1 == full.size()) {
      chunks.push_back(full.substr(start, pos + 1 - start));
      start = pos + 1;
    }
  }
  ASSERT_GE(chunks.size(), 4u);
  const std::string log = *dir_ / "serve.log";
  fs::create_directories(Work() + "/inbox");
  ServeProcess serve(*dir_ / "serve.toml", log, {});
  {
    const int fd = ::open((Work() + "/inbox/slow.csv").c_str(),
                          O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    for (const std::string& chunk : chunks) {
      ASSERT_EQ(::write(fd, chunk.data(), chunk.size()),
                static_cast<ssize_t>(chunk.size()));
      std::this_thread::sleep_for(std::chrono::milliseconds(400));
    }
    ::close(fd);
  }
  ASSERT_TRUE(WaitForRuns("succeeded", 1, 30000)) << ReadFile(log);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  Stop(serve);
  EXPECT_EQ(Runs(""), 1) << ReadFile(log);
  EXPECT_GE(Count(ReadFile(log), "inbox.busy"), 1) << ReadFile(log);
  // Archive, object store and delivered files: all of the complete file.
  const auto archived = Tree(Work() + "/archive");
  ASSERT_EQ(archived.size(), 1u);
  EXPECT_EQ(archived.begin()->second, full);
  const auto objects = Tree(Work() + "/objects");
  ASSERT_EQ(objects.size(), 1u);
  EXPECT_EQ(objects.begin()->second, full);
  EXPECT_EQ(Tree(*dir_ / "out"), Expected({*dir_ / "slow.csv"}));
}

TEST_F(PickupTest, EntriesThatAreNotRegularFilesAreQuarantinedUnread) {
  WriteConfig(/*settle_ms=*/0, /*workers=*/1);
  const std::string outside = Generate("outside.csv", 20, 4);
  const std::string outside_bytes = ReadFile(outside);
  const std::string inbox = Work() + "/inbox";
  fs::create_directories(inbox);
  fs::create_symlink(outside, inbox + "/link.csv");
  ASSERT_EQ(::mkfifo((inbox + "/pipe.csv").c_str(), 0600), 0);
  fs::create_directories(inbox + "/folder.csv");
  WriteFile(inbox + "/folder.csv/inner.csv", outside_bytes);
  fs::create_hard_link(outside, inbox + "/hard.csv");
  Drop(Generate("ok.csv", 20, 5), "ok.csv");
  const std::string log = *dir_ / "serve.log";
  ServeProcess serve(*dir_ / "serve.toml", log, {});
  ASSERT_TRUE(WaitForRuns("succeeded", 1, 30000)) << ReadFile(log);
  ASSERT_TRUE(WaitForLog(log, "inbox.quarantined", 4, 10000)) << ReadFile(log);
  Stop(serve);
  // Only the regular file was read and processed.
  EXPECT_EQ(Runs(""), 1);
  EXPECT_TRUE(fs::is_empty(inbox));
  std::map<std::string, fs::file_type> quarantined;
  for (const auto& e : fs::directory_iterator(Work() + "/quarantine/inbox")) {
    const std::string name = e.path().filename().string();
    quarantined[name.substr(name.find('-') + 1)] = e.symlink_status().type();
  }
  EXPECT_EQ(quarantined, (std::map<std::string, fs::file_type>{
                             {"link.csv", fs::file_type::symlink},
                             {"pipe.csv", fs::file_type::fifo},
                             {"folder.csv", fs::file_type::directory},
                             {"hard.csv", fs::file_type::regular}}));
  // The files they point to are untouched, and the log says what each was.
  EXPECT_EQ(ReadFile(outside), outside_bytes);
  const std::string text = ReadFile(log);
  for (const char* kind :
       {"a symbolic link", "a FIFO", "a directory", "a hard link"}) {
    EXPECT_NE(text.find(kind), std::string::npos) << kind;
  }
}

TEST_F(PickupTest, TwoProcessesAndDuplicateMessagesExecuteARunOnce) {
  // Two serve processes with two workers each on one work folder, and the
  // same input queued twice (as a restart during pickup did before
  // queueing was idempotent, or a redrive while the run is in progress):
  // one execution, every file delivered once, no dead letter.
  WriteConfig(/*settle_ms=*/0, /*workers=*/2);
  const std::string input = Generate("twice.csv", 400, 6);
  fs::create_directories(Work() + "/objects/inputs");
  auto sha = Sha256File(input);
  ASSERT_TRUE(sha.ok());
  const std::string run_id = sha->substr(0, 16);
  fs::copy_file(input, Work() + "/objects/inputs/" + *sha);
  {
    auto q = SqliteQueue::Open(Work() + "/state.db", "inputs");
    ASSERT_TRUE(q.ok());
    const nlohmann::json body = {{"run_id", run_id},
                                 {"input_key", "inputs/" + *sha},
                                 {"input_name", "twice.csv"},
                                 {"trace_id", std::string(32, 'a')}};
    for (int i = 0; i < 3; ++i) ASSERT_TRUE((*q)->Send(body.dump()).ok());
    // With the run id as dedup id, a repeated send adds nothing.
    ASSERT_TRUE((*q)->Send(body.dump(), {}, 0, run_id).ok());
    ASSERT_TRUE((*q)->Send(body.dump(), {}, 0, run_id).ok());
    EXPECT_EQ((*q)->Stats()->visible, 4);
  }
  // The same content dropped into the inbox as well.
  Drop(input, "twice.csv");
  const std::string log_a = *dir_ / "a.log", log_b = *dir_ / "b.log";
  {
    ServeProcess a(*dir_ / "serve.toml", log_a, {});
    ServeProcess b(*dir_ / "serve.toml", log_b, {});
    ASSERT_TRUE(WaitForRuns("succeeded", 1, 30000)) << ReadFile(log_a);
    // Every copy of the message is consumed.
    WaitForQueueDrained(10000);
    Stop(a);
    Stop(b);
  }
  const std::string logs = ReadFile(log_a) + ReadFile(log_b);
  EXPECT_EQ(Count(logs, "\"input.validated\""), 1) << logs;
  EXPECT_EQ(Count(logs, "appeared during the upload"), 0) << logs;
  EXPECT_EQ(DeadLetters(), 0) << logs;
  int temporaries = 0;
  EXPECT_EQ(Tree(*dir_ / "out", &temporaries), Expected({input}));
  EXPECT_EQ(temporaries, 0);
}

// The crash-consistency harness (docs/operations.md): one clean run counts
// the durable operations (CBPIPE_CRASH_LOG); then for k = 1..N, a fresh
// work folder, serve killed by SIGKILL right after its k-th durable
// operation (CBPIPE_CRASH_AT="*:k"), and a restart that must finish the
// work: every file delivered once, byte-identical to the clean run, no dead
// letter, no temporary file, the inbox archived.
TEST_F(PickupTest, KillNineAfterEveryDurableOperationThenRestartIsExact) {
  WriteConfig(/*settle_ms=*/0, /*workers=*/1);
  const std::string input = Generate("crash.csv", 24, 8);
  const std::string input_bytes = ReadFile(input);

  auto fresh = [&] {
    fs::remove_all(Work());
    fs::remove_all(*dir_ / "out");
    Drop(input, "crash.csv");
  };
  // Runs serve until the input's run has succeeded and the inbox is taken.
  auto finish = [&](const std::string& log) {
    ServeProcess serve(*dir_ / "serve.toml", log, {});
    bool done = false;
    for (int waited = 0; waited < 30000 && !done; waited += 20) {
      done = fs::exists(Work() + "/state.db") && Runs("succeeded") == 1 &&
             fs::is_empty(Work() + "/inbox") &&
             fs::is_empty(Work() + "/pickup");
      if (!done) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    Stop(serve);
    return done;
  };

  // The clean run: the golden files and the number of durable operations.
  fresh();
  const std::string ops_log = *dir_ / "durable-ops.txt";
  {
    ServeProcess serve(*dir_ / "serve.toml", *dir_ / "clean.log",
                       {"CBPIPE_CRASH_LOG=" + ops_log});
    bool done = false;
    for (int waited = 0; waited < 30000 && !done; waited += 20) {
      done = fs::exists(Work() + "/state.db") && Runs("succeeded") == 1 &&
             fs::is_empty(Work() + "/inbox");
      if (!done) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ASSERT_TRUE(done) << ReadFile(*dir_ / "clean.log");
    std::this_thread::sleep_for(std::chrono::milliseconds(1000));
    Stop(serve);
  }
  const std::map<std::string, std::string> golden = Tree(*dir_ / "out");
  ASSERT_EQ(golden, Expected({input}));
  std::map<std::string, int> kinds;
  int total = 0;
  {
    const std::string text = ReadFile(ops_log);
    for (size_t start = 0, nl;
         (nl = text.find('\n', start)) != std::string::npos; start = nl + 1) {
      ++kinds[text.substr(start, nl - start)];
      ++total;
    }
  }
  ASSERT_GT(total, 10);

  int crashed = 0;
  std::vector<int> not_reached;
  for (int k = 1; k <= total; ++k) {
    SCOPED_TRACE("crash after durable operation " + std::to_string(k));
    fresh();
    const std::string log = *dir_ / ("crash-" + std::to_string(k) + ".log");
    {
      ServeProcess serve(*dir_ / "serve.toml", log,
                         {"CBPIPE_CRASH_AT=*:" + std::to_string(k)});
      // It dies at operation k, or (fewer operations this time) finishes.
      int status = 0;
      bool exited = false;
      for (int waited = 0; waited < 30000 && !exited; waited += 20) {
        exited = serve.WaitExit(20, &status);
        if (!exited && Runs("succeeded") == 1 &&
            fs::is_empty(Work() + "/inbox") &&
            fs::is_empty(Work() + "/pickup")) {
          // The last operations (message deleted, claim released) follow.
          exited = serve.WaitExit(1500, &status);
          break;
        }
      }
      if (exited && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) {
        ++crashed;
      } else {
        not_reached.push_back(k);
        if (!exited) Stop(serve);
      }
    }
    ASSERT_TRUE(finish(log)) << ReadFile(log);
    int temporaries = 0;
    const auto delivered = Tree(*dir_ / "out", &temporaries);
    EXPECT_TRUE(delivered == golden) << "delivered files differ";
    EXPECT_EQ(temporaries, 0);
    EXPECT_EQ(DeadLetters(), 0) << ReadFile(log);
    EXPECT_EQ(Runs(""), 1);
    const auto archived = Tree(Work() + "/archive");
    EXPECT_EQ(archived.size(), 1u);
    if (!archived.empty()) {
      EXPECT_EQ(archived.begin()->second, input_bytes);
    }
    // Nor in the work folder: object store, staging, batches, runs.
    EXPECT_EQ(Temporaries(Work()), std::vector<std::string>{});
    EXPECT_TRUE(!fs::exists(Work() + "/staging") ||
                fs::is_empty(Work() + "/staging"));
    if (::testing::Test::HasFailure()) {
      std::cerr << ReadFile(log);
      break;
    }
    fs::remove(log);
  }
  std::cerr << "crash points: " << total << " durable operations in a run (";
  for (const auto& [name, n] : kinds) std::cerr << name << " " << n << ", ";
  std::cerr << "), " << crashed << " crashed at and recovered";
  for (int k : not_reached) std::cerr << ", not reached: " << k;
  std::cerr << "\n";
  EXPECT_EQ(crashed, total);
}

TEST_F(PickupTest, TwoProcessesTwoWorkersEachNeverRunOneRunAtOnce) {
  // Many inputs, each queued three times (as redrives or restarts may do),
  // for two processes with two workers each: workers race for every run.
  // The trace of both processes, one append-only file, is a total order:
  // for each run no step starts while another one is in progress, no
  // worker claims a run another one holds, and each run is executed once.
  WriteConfig(/*settle_ms=*/0, /*workers=*/2);
  constexpr int kInputs = 12;
  std::vector<std::string> inputs;
  std::set<std::string> run_ids;
  fs::create_directories(Work() + "/objects/inputs");
  {
    auto q = SqliteQueue::Open(Work() + "/state.db", "inputs");
    ASSERT_TRUE(q.ok());
    for (int i = 1; i <= kInputs; ++i) {
      const std::string name = "many" + std::to_string(i) + ".csv";
      inputs.push_back(Generate(name, 300, 100 + i));
      auto sha = Sha256File(inputs.back());
      ASSERT_TRUE(sha.ok());
      const std::string run_id = sha->substr(0, 16);
      run_ids.insert(run_id);
      fs::copy_file(inputs.back(), Work() + "/objects/inputs/" + *sha);
      const nlohmann::json body = {{"run_id", run_id},
                                   {"input_key", "inputs/" + *sha},
                                   {"input_name", name},
                                   {"trace_id", std::string(32, 'b')}};
      for (int copy = 0; copy < 3; ++copy)
        ASSERT_TRUE((*q)->Send(body.dump()).ok());
    }
  }
  const std::string trace = *dir_ / "trace.log";
  const std::vector<std::string> env = {"CBPIPE_TEST_TRACE=" + trace};
  const std::string log_a = *dir_ / "a.log", log_b = *dir_ / "b.log";
  {
    ServeProcess a(*dir_ / "serve.toml", log_a, env);
    ServeProcess b(*dir_ / "serve.toml", log_b, env);
    ASSERT_TRUE(WaitForRuns("succeeded", kInputs, 60000))
        << ReadFile(log_a) << ReadFile(log_b);
    WaitForQueueDrained(20000);
    Stop(a);
    Stop(b);
  }
  const std::vector<TraceEvent> events = ReadTrace(trace);
  // run -> the steps in progress ("pid tid step"); a Map runs several
  // steps of one run at once, all under the one claim of one worker.
  std::map<std::string, std::multiset<std::string>> running;
  std::map<std::string, std::string> holder;  // run -> owner "pid<pid>-..."
  std::map<std::string, int> first_steps;     // run -> executions
  std::set<std::string> pids, workers;
  int steps = 0;
  for (const TraceEvent& e : events) {
    if (e.event == "step_start" || e.event == "step_end") {
      ASSERT_EQ(e.args.size(), 3u);
      const std::string& run = e.args[0];
      const std::string who = e.pid + " " + e.args[2] + " " + e.args[1];
      if (e.event == "step_start") {
        // Only while the run is claimed by a worker of this process, and
        // never beside a step of another process.
        EXPECT_EQ(holder[run].rfind("pid" + e.pid + "-", 0), 0u)
            << "run " << run << " step " << e.args[1] << " started by "
            << who << " while the claim is held by '" << holder[run] << "'";
        for (const std::string& other : running[run]) {
          EXPECT_EQ(other.substr(0, other.find(' ')), e.pid)
              << "run " << run << " step " << e.args[1] << " started by "
              << who << " while " << other << " was in progress";
        }
        running[run].insert(who);
        ++steps;
        pids.insert(e.pid);
        workers.insert(e.pid + " " + e.args[2]);
        if (e.args[1] == "validate" || e.args[1] == "scan")
          ++first_steps[run];
      } else {
        auto it = running[run].find(who);
        EXPECT_TRUE(it != running[run].end()) << "run " << run << " " << who;
        if (it != running[run].end()) running[run].erase(it);
        if (running[run].empty()) running.erase(run);
      }
    } else if (e.event == "claimed") {
      ASSERT_EQ(e.args.size(), 2u);
      EXPECT_EQ(holder.count(e.args[0]), 0u)
          << e.args[1] << " claimed run " << e.args[0] << " held by "
          << holder[e.args[0]];
      holder[e.args[0]] = e.args[1];
    } else if (e.event == "releasing") {
      ASSERT_EQ(e.args.size(), 2u);
      EXPECT_EQ(holder[e.args[0]], e.args[1]);
      holder.erase(e.args[0]);
    }
  }
  EXPECT_TRUE(running.empty());
  EXPECT_TRUE(holder.empty());
  for (const std::string& run : run_ids)
    EXPECT_EQ(first_steps[run], 1) << "run " << run << " executed again";
  EXPECT_GE(steps, kInputs * 4);
  // The test means something only if both processes and several workers
  // did work.
  EXPECT_EQ(pids.size(), 2u);
  EXPECT_GE(workers.size(), 3u);
  const std::string logs = ReadFile(log_a) + ReadFile(log_b);
  EXPECT_EQ(Count(logs, "\"input.validated\""), kInputs) << logs;
  EXPECT_EQ(DeadLetters(), 0) << logs;
  ExpectDeliveredAsCleanRun(inputs);
}

TEST_F(PickupTest, KilledClaimHolderLosesTheRunOnlyAfterTheLease) {
  // A is killed (SIGKILL) inside a step, holding the run's claim. The claim
  // is free only once the lease A last took ran out (probed from here every
  // 10 ms), never sooner; B then takes the run and finishes it from A's
  // last checkpoint.
  WriteConfig(/*settle_ms=*/0, /*workers=*/1);
  const std::string input = Generate("killed.csv", 2000, 17);
  const std::string run_id = RunIdOf(input);
  const std::string trace = *dir_ / "trace.log";
  const std::string log_a = *dir_ / "a.log", log_b = *dir_ / "b.log";
  {
    // The third step call: after two steps were checkpointed.
    ServeProcess a(*dir_ / "serve.toml", log_a,
                   {"CBPIPE_TEST_TRACE=" + trace,
                    "CBPIPE_CRASH_AT=step.call:3"});
    Drop(input, "killed.csv");
    int status = 0;
    ASSERT_TRUE(a.WaitExit(30000, &status)) << ReadFile(log_a);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << ReadFile(log_a);
  }
  const int64_t died_ms = NowEpochMs();
  // When A's lease began: the last claim or renewal it attempted and saw
  // succeed (logged before the attempt, so the lease ends no earlier than
  // that + its length).
  int64_t lease_from = -1, lease_ms = -1, pending_from = -1,
          pending_ms = -1, confirmed_at = -1;
  for (const TraceEvent& e : ReadTrace(trace)) {
    if ((e.event == "claiming" || e.event == "renewing") &&
        e.args.at(0) == run_id) {
      pending_from = e.ms;
      pending_ms = std::stoll(e.args.at(2));
    } else if ((e.event == "claimed" || e.event == "renewed") &&
               e.args.at(0) == run_id) {
      lease_from = pending_from;
      lease_ms = pending_ms;
      confirmed_at = e.ms;
    }
  }
  ASSERT_GT(lease_from, 0) << ReadFile(trace);
  // The lease ends in [lease_end, latest_end]: it was taken between the
  // attempt and its confirmation.
  const int64_t lease_end = lease_from + lease_ms;
  const int64_t latest_end = confirmed_at + lease_ms;
  // Otherwise A did not die holding a live claim and the test shows nothing.
  ASSERT_LT(died_ms, lease_end) << "A died after its lease ran out";

  ServeProcess b(*dir_ / "serve.toml", log_b, {"CBPIPE_TEST_TRACE=" + trace});
  int64_t free_ms = -1;
  {
    auto store = SqliteRunStore::Open(Work() + "/state.db", Env::Default());
    ASSERT_TRUE(store.ok());
    while (NowEpochMs() < lease_end + 5000) {
      StatusOr<bool> got = (*store)->Claim(run_id, "probe", 1);
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      if (*got) {
        // The claim was granted before this: a grant before the lease
        // ended would make it earlier than lease_end.
        free_ms = NowEpochMs();
        ASSERT_TRUE((*store)->ReleaseClaim(run_id, "probe").ok());
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  ASSERT_GT(free_ms, 0) << "the claim was never free";
  EXPECT_GE(free_ms, lease_end)
      << "claim free " << lease_end - free_ms << " ms before the lease ended";
  EXPECT_LE(free_ms, latest_end + 1000) << "claim still held long after";

  ASSERT_TRUE(WaitForRuns("succeeded", 1, 30000)) << ReadFile(log_b);
  Stop(b);
  int64_t b_claimed = -1;
  std::set<std::string> b_steps;
  for (const TraceEvent& e : ReadTrace(trace)) {
    if (e.ms < died_ms || e.args.empty() || e.args[0] != run_id) continue;
    if (e.event == "claimed" && b_claimed < 0) b_claimed = e.ms;
    if (e.event == "step_start") b_steps.insert(e.args.at(1));
  }
  EXPECT_GE(b_claimed, lease_end);
  // Resumed at A's checkpoint: the first two steps are not run again.
  EXPECT_EQ(b_steps.count("validate") + b_steps.count("scan"), 0u);
  EXPECT_FALSE(b_steps.empty());
  EXPECT_EQ(DeadLetters(), 0);
  ExpectDeliveredAsCleanRun({input});
}

TEST_F(PickupTest, AClaimLostWhileFrozenStopsTheRunAtTheNextStep) {
  // A is frozen (SIGSTOP) inside the first step of a run until its lease
  // ran out, and the claim is taken meanwhile (here by the test). Thawed,
  // A's renewal finds the claim taken: A finishes the step in progress and
  // starts no other step of that run. Once the claim is free again the run
  // is finished from its checkpoint.
  WriteConfig(/*settle_ms=*/0, /*workers=*/1);
  const std::string input = Generate("frozen.csv", 100000, 31);
  const std::string run_id = RunIdOf(input);
  const std::string trace = *dir_ / "trace.log";
  const std::string log = *dir_ / "a.log";
  ServeProcess a(*dir_ / "serve.toml", log, {"CBPIPE_TEST_TRACE=" + trace});
  Drop(input, "frozen.csv");
  bool in_step = false;
  for (int i = 0; i < 6000 && !in_step; ++i) {
    for (const TraceEvent& e : ReadTrace(trace))
      in_step |= e.event == "step_start" && e.args.at(0) == run_id;
    if (!in_step) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_TRUE(in_step) << ReadFile(log);
  a.Signal(SIGSTOP);
  {
    auto store = SqliteRunStore::Open(Work() + "/state.db", Env::Default());
    ASSERT_TRUE(store.ok());
    bool taken = false;
    for (int i = 0; i < 1000 && !taken; ++i) {
      StatusOr<bool> got = (*store)->Claim(run_id, "thief", 60000);
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      taken = *got;
      if (!taken) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_TRUE(taken);
    const int64_t thawed_ms = NowEpochMs();
    a.Signal(SIGCONT);
    ASSERT_TRUE(WaitForLog(log, "\"run.claim_lost\"", 1, 20000))
        << ReadFile(log);
    ASSERT_TRUE(WaitForLog(log, "\"run.interrupted\"", 1, 20000))
        << ReadFile(log);
    int started_after = 0;
    for (const TraceEvent& e : ReadTrace(trace)) {
      if (e.ms > thawed_ms && e.event == "step_start" &&
          e.args.at(0) == run_id)
        ++started_after;
    }
    EXPECT_EQ(started_after, 0) << ReadFile(trace);
    ASSERT_TRUE((*store)->ReleaseClaim(run_id, "thief").ok());
  }
  ASSERT_TRUE(WaitForRuns("succeeded", 1, 30000)) << ReadFile(log);
  Stop(a);
  EXPECT_EQ(DeadLetters(), 0);
  ExpectDeliveredAsCleanRun({input});
}

TEST_F(PickupTest, AStepThatThrowsFailsItsRunAndTheServiceGoesOn) {
  // The first step call of the process throws (a test fault standing for
  // nlohmann's .value() on a non-object): that run fails with the error in
  // the run and a dead letter; the process keeps serving the next input.
  WriteConfig(/*settle_ms=*/0, /*workers=*/1);
  const std::string first = Generate("throws.csv", 50, 21);
  const std::string second = Generate("fine.csv", 50, 22);
  const std::string log = *dir_ / "serve.log";
  ServeProcess serve(*dir_ / "serve.toml", log,
                     {"CBPIPE_CRASH_AT=step.call:1:throw"});
  Drop(first, "throws.csv");
  ASSERT_TRUE(WaitForRuns("failed", 1, 30000)) << ReadFile(log);
  Drop(second, "fine.csv");
  ASSERT_TRUE(WaitForRuns("succeeded", 1, 30000)) << ReadFile(log);
  int status = 0;
  EXPECT_FALSE(serve.WaitExit(0, &status)) << "the service ended";
  Stop(serve);
  auto store = SqliteRunStore::Open(Work() + "/state.db", Env::Default());
  ASSERT_TRUE(store.ok());
  StatusOr<RunRecord> failed = (*store)->Get(RunIdOf(first));
  ASSERT_TRUE(failed.ok());
  EXPECT_EQ(failed->state, "failed");
  EXPECT_NE(failed->error.find(
                "threw: test fault at crash point step.call"),
            std::string::npos)
      << failed->error;
  EXPECT_EQ(DeadLetters(), 1);
  EXPECT_NE(ReadFile(log).find("test fault at crash point step.call"),
            std::string::npos);
  ExpectDeliveredAsCleanRun({second});
}

}  // namespace
}  // namespace cbpipe::testing
