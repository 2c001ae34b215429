// Service mode end to end: N inputs of M records dropped into the inbox of
// `cbpipe serve` and delivered to a local SFTP server (OpenSSH sshd on
// 127.0.0.1, key auth, pinned host key), against the peer `cbpipe run` doing
// the same work on the same inputs in one process (no inbox, queue,
// checkpoints or notifications).
//
//   bench_service --cbpipe BIN --dir DIR [--inputs 1000] [--records 1000]
//                 [--trials 3] [--paced 20] [--workers 2] [--settle-ms 20]
//                 [--poll-ms 20]
//
// Each trial gets fresh work dirs and fresh remote folders, so both sides
// really upload every file; the order of the two sides alternates between
// trials. Figures are medians over the trials. Needs root (sshd). DIR
// should be on the disk the service would use (not a tmpfs: the queue and
// the ledger fsync on every commit).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "runs/sqlite_run_store.h"
#include "servers/test_servers.h"

namespace cbpipe {
namespace {

namespace fs = std::filesystem;
using testing::SshServer;

constexpr const char* kNetworks[] = {"visa", "mastercard", "amex", "discover"};

struct Options {
  std::string cbpipe;
  std::string dir;
  int inputs = 1000;
  int records = 1000;
  int trials = 3;
  int paced = 20;
  int workers = 2;
  int settle_ms = 20;
  int poll_ms = 20;
  // With --console: every trial also runs serve with the console open
  // (bench/service/console_open.mjs under node).
  std::string console_script;
  std::string node = "/usr/bin/node";
};

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "bench_service: %s\n", message.c_str());
  std::exit(2);
}

void Check(const Status& st, const std::string& what) {
  if (!st.ok()) Die(what + ": " + st.ToString());
}

double SteadySeconds() {
  return std::chrono::duration<double>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

// ---- child processes ----

// Starts argv (argv[0] a path) in its own process group, stdout and stderr
// appended to `log`.
pid_t Spawn(const std::vector<std::string>& argv, const std::string& log) {
  const pid_t pid = ::fork();
  if (pid < 0) Die("fork failed");
  if (pid == 0) {
    ::setpgid(0, 0);
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    const int null = ::open("/dev/null", O_RDONLY);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    if (null >= 0) ::dup2(null, 0);
    std::vector<char*> args;
    for (const std::string& a : argv)
      args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    std::perror("exec");
    ::_exit(127);
  }
  ::setpgid(pid, pid);
  return pid;
}

struct Exit {
  bool exited = false;  // false: still running at the deadline
  int status = 0;
  double cpu_seconds = 0;  // user + system
};

Exit WaitChild(pid_t pid, double timeout_s) {
  Exit e;
  const double deadline = SteadySeconds() + timeout_s;
  for (;;) {
    struct rusage ru {};
    const pid_t r = ::wait4(pid, &e.status, WNOHANG, &ru);
    if (r == pid) {
      e.exited = true;
      e.cpu_seconds = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                      ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
      return e;
    }
    if (SteadySeconds() > deadline) return e;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

// CPU seconds (user + system) a live process has used so far.
double ProcessCpuSeconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return 0;
  std::istringstream fields(stat.substr(paren + 2));
  std::vector<std::string> f;
  for (std::string s; fields >> s;) f.push_back(s);
  if (f.size() < 13) return 0;
  // After the command: field 3 (state) is f[0]; utime is 14, stime 15.
  return (std::stod(f[11]) + std::stod(f[12])) / ::sysconf(_SC_CLK_TCK);
}

// Kills a child's process group when it goes out of scope.
struct ChildGuard {
  pid_t pid = -1;
  ~ChildGuard() {
    if (pid > 0) {
      ::kill(-pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
};

// ---- HTTP (the admin API) ----

// GET http://127.0.0.1:port/path; returns the status code, body in *body.
int HttpGet(int port, const std::string& path, std::string* body) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  const std::string req = "GET " + path +
                          " HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          "Connection: close\r\n\r\n";
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(req.size())) {
    ::close(fd);
    return -1;
  }
  std::string resp;
  char buf[65536];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;)
    resp.append(buf, static_cast<size_t>(n));
  ::close(fd);
  if (resp.compare(0, 5, "HTTP/") != 0) return -1;
  const size_t sp = resp.find(' ');
  const size_t head_end = resp.find("\r\n\r\n");
  if (body && head_end != std::string::npos) *body = resp.substr(head_end + 4);
  return std::atoi(resp.c_str() + sp + 1);
}

// Sum of the samples of `name` whose labels contain `label` ("" = all).
double MetricSum(const std::string& text, const std::string& name,
                 const std::string& label) {
  double sum = 0;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.compare(0, name.size(), name) != 0) continue;
    const char next = line.size() > name.size() ? line[name.size()] : '\0';
    if (next != '{' && next != ' ') continue;
    if (!label.empty() && line.find(label) == std::string::npos) continue;
    sum += std::strtod(line.c_str() + line.rfind(' ') + 1, nullptr);
  }
  return sum;
}

// ---- statistics ----

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  size_t rank = static_cast<size_t>(std::ceil(p * v.size()));
  rank = std::clamp<size_t>(rank, 1, v.size());
  return v[rank - 1];
}

double Median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// ---- files ----

std::string InputName(int seed) {
  char name[32];
  std::snprintf(name, sizeof name, "in%05d.csv", seed);
  return name;
}

// Remote files (name -> size) under root/<subdir>/<network>; counts
// leftover .part files.
std::map<std::string, uintmax_t> RemoteFiles(const std::string& root,
                                             const std::string& subdir,
                                             int* partials) {
  std::map<std::string, uintmax_t> files;
  for (const char* net : kNetworks) {
    const fs::path dir = fs::path(root) / subdir / net;
    if (!fs::exists(dir)) continue;
    for (const auto& e : fs::directory_iterator(dir)) {
      const std::string name = e.path().filename().string();
      if (name.size() > 5 && name.substr(name.size() - 5) == ".part") {
        ++*partials;
        continue;
      }
      files[std::string(net) + "/" + name] = e.file_size();
    }
  }
  return files;
}

// Generates inputs seeds 1..count (M records, 2% invalid) under
// dir/inputs-M, reusing files made within the last 20 hours (the generator's
// dates are relative to the clock, and the service uses the real clock).
std::vector<std::string> GenerateInputs(const Options& o, int count) {
  const fs::path dir =
      fs::path(o.dir) / ("inputs-" + std::to_string(o.records));
  const fs::path stamp = dir / ".stamp";
  std::error_code ec;
  const auto stamp_time = fs::last_write_time(stamp, ec);
  if (ec ||
      fs::file_time_type::clock::now() - stamp_time > std::chrono::hours(20)) {
    fs::remove_all(dir);
  }
  fs::create_directories(dir);
  std::vector<std::string> paths;
  std::vector<pid_t> running;
  int made = 0;
  const double start = SteadySeconds();
  for (int seed = 1; seed <= count; ++seed) {
    const std::string path = (dir / InputName(seed)).string();
    paths.push_back(path);
    if (fs::exists(path)) continue;
    if (running.size() >= 2) {
      int status = 0;
      const pid_t done = ::waitpid(-1, &status, 0);
      running.erase(std::find(running.begin(), running.end(), done));
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        Die("cbpipe gen-sample failed; see " + (dir / "gen.log").string());
    }
    running.push_back(
        Spawn({o.cbpipe, "gen-sample", "--records", std::to_string(o.records),
               "--invalid-ratio", "0.02", "--seed", std::to_string(seed),
               "--output", path + ".tmp"},
              (dir / "gen.log").string()));
    ++made;
  }
  for (pid_t pid : running) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      Die("cbpipe gen-sample failed; see " + (dir / "gen.log").string());
  }
  for (const std::string& p : paths) {
    if (fs::exists(p + ".tmp")) fs::rename(p + ".tmp", p);
  }
  if (made > 0) {
    std::ofstream(stamp) << "generated\n";
    std::fprintf(stderr, "generated %d input(s) of %d records in %.1f s\n",
                 made, o.records, SteadySeconds() - start);
  }
  return paths;
}

std::string Destinations(const SshServer& sftp, const std::string& subdir) {
  std::string c;
  for (const char* net : kNetworks) {
    c += std::string("\n[[destination]]\nname = \"") + net +
         "\"\nnetworks = [\"" + net + "\"]\nurl = \"" +
         sftp.url(subdir + "/" + net) + "\"\nusername = \"" + sftp.user() +
         "\"\nprivate_key = \"file:" + sftp.client_key_path() +
         "\"\nhost_key_sha256 = \"" + sftp.host_key_sha256() + "\"\n";
  }
  return c;
}

// ---- one trial ----

// Per input, from the run store: arrival (the rename into the inbox) to
// the run's "succeeded", and where that time went.
struct InputTiming {
  double latency_ms = 0;
  std::map<std::string, double> parts;  // ms
};

struct Trial {
  double run_wall_s = 0, run_cpu_s = 0;
  double serve_wall_s = 0, serve_cpu_s = 0;
  double drop_s = 0;  // renaming the N inputs into the inbox
  std::vector<InputTiming> burst, paced;
  size_t files_run = 0, files_serve = 0;
  uintmax_t bytes_run = 0;
  bool same_files = false;
  double metric_files_delivered = 0;
  double metric_delivery_seconds_mean = 0;
  std::string load_before, load_after;
};

// The engine's checkpoints (workflow/engine.h): "$input" when the worker
// starts the run, top-level Tasks by name ("scan", "notify", "settle"),
// nested ones by path ("batches/0/verify",
// "batches/0/destinations/2/deliver"), Map items and Maps themselves
// ("batches/0", "batches") when they end.
bool EndsWith(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() &&
         s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

InputTiming TimingOf(const RunRecord& run, int64_t arrival_ms) {
  InputTiming t;
  t.latency_ms = static_cast<double>(run.updated_ms - arrival_ms);
  t.parts["pickup"] = static_cast<double>(run.created_ms - arrival_ms);
  // A batch's deliveries run at once (one per destination): their span.
  std::map<std::string, std::pair<int64_t, int64_t>> deliver_span;
  for (const StepRecord& s : run.steps) {
    const double took = static_cast<double>(s.finished_ms - s.started_ms);
    if (s.name == "$input") {
      t.parts["queue"] = static_cast<double>(s.started_ms - run.created_ms);
    } else if (s.name == "scan" || s.name == "notify" || s.name == "settle") {
      t.parts[s.name] += took;
    } else if (EndsWith(s.name, "/verify")) {
      t.parts["verify"] += took;
    } else if (EndsWith(s.name, "/deliver")) {
      const std::string batch = s.name.substr(0, s.name.find('/', 8));
      auto [it, fresh] =
          deliver_span.emplace(batch, std::pair{s.started_ms, s.finished_ms});
      if (!fresh) {
        it->second.first = std::min(it->second.first, s.started_ms);
        it->second.second = std::max(it->second.second, s.finished_ms);
      }
    }
  }
  for (const auto& [batch, span] : deliver_span)
    t.parts["deliver"] += static_cast<double>(span.second - span.first);
  // What is left: the engine between states (checkpoint writes, Map
  // threads, the run's final state).
  t.parts["engine"] = t.latency_ms - t.parts["pickup"] - t.parts["queue"] -
                      t.parts["scan"] - t.parts["verify"] - t.parts["deliver"] -
                      t.parts["notify"] - t.parts["settle"];
  // The serve-only share: everything but the work `cbpipe run` also does
  // (one scan that validates and generates, verify, deliver).
  t.parts["serve_only"] =
      t.latency_ms - t.parts["scan"] - t.parts["verify"] - t.parts["deliver"];
  t.parts["serve_only_no_pickup"] = t.parts["serve_only"] - t.parts["pickup"];
  return t;
}

void RunPeer(const Options& o, const SshServer& sftp,
             const std::vector<std::string>& inputs, const fs::path& tdir,
             int k, Trial* t) {
  const std::string subdir = "t" + std::to_string(k) + "-run";
  for (const char* net : kNetworks)
    Check(testing::MakeRemoteDir(sftp.root_dir(), subdir + "/" + net, true),
          "remote dir");
  const std::string config = (tdir / "run.toml").string();
  std::ofstream(config) << "[output]\nwork_dir = \""
                        << (tdir / "run-work").string() << "\"\n"
                        << Destinations(sftp, subdir);
  std::vector<std::string> argv = {o.cbpipe, "run", "--config", config};
  argv.insert(argv.end(), inputs.begin(), inputs.end());
  ::sync();
  const double start = SteadySeconds();
  ChildGuard child{Spawn(argv, (tdir / "run.log").string())};
  const Exit e = WaitChild(child.pid, 120.0 + 5.0 * o.inputs);
  t->run_wall_s = SteadySeconds() - start;
  if (!e.exited)
    Die("cbpipe run timed out; see " + (tdir / "run.log").string());
  child.pid = -1;
  if (!WIFEXITED(e.status) || WEXITSTATUS(e.status) != 0)
    Die("cbpipe run failed (status " + std::to_string(e.status) + "); see " +
        (tdir / "run.log").string());
  t->run_cpu_s = e.cpu_seconds;
}

// side: "serve", or "console" for the same with the console open in a
// browser for the whole time.
void RunServe(const Options& o, const SshServer& sftp,
              const std::vector<std::string>& inputs,
              const std::vector<std::string>& paced_inputs,
              const fs::path& tdir, int k, const std::string& side,
              Trial* t) {
  const std::string subdir = "t" + std::to_string(k) + "-" + side;
  for (const char* net : kNetworks)
    Check(testing::MakeRemoteDir(sftp.root_dir(), subdir + "/" + net, true),
          "remote dir");
  const fs::path work = tdir / (side + "-work");
  const fs::path inbox = work / "inbox";
  fs::create_directories(inbox);
  StatusOr<int> port = testing::FindFreePort();
  Check(port.status(), "free port");
  const std::string config = (tdir / (side + ".toml")).string();
  std::ofstream(config) << "[output]\nwork_dir = \"" << work.string()
                        << "\"\n\n[service]\nsettle_ms = " << o.settle_ms
                        << "\npoll_interval_ms = " << o.poll_ms
                        << "\nworkers = " << o.workers
                        << "\nadmin_listen = \"127.0.0.1:" << *port
                        << "\"\nlog_file = \""
                        << (tdir / (side + ".log")).string()
                        << "\"\nshutdown_timeout_seconds = 10\n"
                        << Destinations(sftp, subdir);

  // Staged under dot names (ignored by the watcher), on disk before the
  // service starts: the timed part is only the renames.
  auto staged = [&](const std::string& path) {
    // Appended: GCC 12 -O3 warns falsely (-Wrestrict) on "." + string&&.
    std::string name = ".";
    name += fs::path(path).filename().string();
    name += ".stage";
    return inbox / name;
  };
  for (const auto* list : {&inputs, &paced_inputs}) {
    for (const std::string& in : *list) fs::copy_file(in, staged(in));
  }
  ::sync();

  const std::string log = (tdir / (side + ".out")).string();
  ChildGuard child{Spawn({o.cbpipe, "serve", "--config", config}, log)};
  std::string body;
  for (int i = 0; HttpGet(*port, "/readyz", &body) != 200; ++i) {
    if (i > 500) Die("cbpipe serve not ready after 10 s; see " + log);
    int status;
    if (::waitpid(child.pid, &status, WNOHANG) == child.pid) {
      child.pid = -1;
      Die("cbpipe serve exited at start; see " + log);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ChildGuard console;
  if (side == "console") {
    const std::string ready = (tdir / "console.ready").string();
    fs::remove(ready);
    console.pid = Spawn({o.node, o.console_script,
                         "http://127.0.0.1:" + std::to_string(*port), ready},
                        (tdir / "console.out").string());
    for (int i = 0; !fs::exists(ready); ++i) {
      int status;
      if (i > 3000 || ::waitpid(console.pid, &status, WNOHANG) == console.pid)
        Die("the console did not open; see " + (tdir / "console.out").string());
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  StatusOr<std::unique_ptr<RunStore>> store =
      SqliteRunStore::Open((work / "state.db").string(), Env::Default());
  Check(store.status(), "run store");

  // Burst: every input renamed in as fast as possible.
  std::map<std::string, int64_t> arrival;  // input name -> epoch ms
  const double cpu_before = ProcessCpuSeconds(child.pid);
  const double drop_start = SteadySeconds();
  for (const std::string& in : inputs) {
    const fs::path name = fs::path(in).filename();
    fs::rename(staged(in), inbox / name);
    arrival[name.string()] = Env::Default()->NowMs();
  }
  t->drop_s = SteadySeconds() - drop_start;

  auto wait_for = [&](int64_t succeeded, double timeout_s, int poll_ms) {
    const double deadline = SteadySeconds() + timeout_s;
    for (;;) {
      StatusOr<int64_t> n = (*store)->Count({.state = "succeeded"});
      if (n.ok() && *n >= succeeded) return;
      for (const char* bad : {"failed", "rejected"}) {
        StatusOr<int64_t> b = (*store)->Count({.state = bad});
        if (b.ok() && *b > 0)
          Die(std::to_string(*b) + " run(s) " + bad + "; see " +
              (tdir / "serve.log").string());
      }
      if (SteadySeconds() > deadline)
        Die("timed out waiting for " + std::to_string(succeeded) +
            " runs to succeed; see " + (tdir / "serve.log").string());
      std::this_thread::sleep_for(std::chrono::milliseconds(poll_ms));
    }
  };
  wait_for(static_cast<int64_t>(inputs.size()), 120.0 + 5.0 * o.inputs, 50);
  t->serve_cpu_s = ProcessCpuSeconds(child.pid) - cpu_before;

  // Paced: one input at a time, nothing queued: the latency of a lone
  // input.
  for (size_t i = 0; i < paced_inputs.size(); ++i) {
    const std::string& in = paced_inputs[i];
    const fs::path name = fs::path(in).filename();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    fs::rename(staged(in), inbox / name);
    arrival[name.string()] = Env::Default()->NowMs();
    wait_for(static_cast<int64_t>(inputs.size() + i + 1), 120.0, 5);
  }
  if (HttpGet(*port, "/metrics", &body) == 200) {
    t->metric_files_delivered =
        MetricSum(body, "cbpipe_files_delivered_total", "status=\"delivered\"");
    const double count =
        MetricSum(body, "cbpipe_delivery_latency_seconds_count", "");
    if (count > 0)
      t->metric_delivery_seconds_mean =
          MetricSum(body, "cbpipe_delivery_latency_seconds_sum", "") / count;
  }
  if (console.pid > 0) {
    ::kill(console.pid, SIGTERM);
    if (WaitChild(console.pid, 20.0).exited) console.pid = -1;
  }
  ::kill(child.pid, SIGTERM);
  const Exit e = WaitChild(child.pid, 20.0);
  if (e.exited) child.pid = -1;
  if (!e.exited || !WIFEXITED(e.status) || WEXITSTATUS(e.status) != 0)
    std::fprintf(stderr, "bench_service: cbpipe serve did not stop cleanly\n");

  const int limit = static_cast<int>(arrival.size()) + 10;
  StatusOr<std::vector<RunRecord>> runs = (*store)->List({}, limit, 0);
  Check(runs.status(), "list runs");
  if (runs->size() != arrival.size())
    Die("expected " + std::to_string(arrival.size()) + " runs, found " +
        std::to_string(runs->size()));
  std::set<std::string> paced_names;
  for (const std::string& in : paced_inputs)
    paced_names.insert(fs::path(in).filename().string());
  int64_t first_arrival = INT64_MAX, last_done = 0;
  for (const RunRecord& listed : *runs) {
    StatusOr<RunRecord> run = (*store)->Get(listed.run_id);
    Check(run.status(), "get run");
    auto a = arrival.find(run->input_name);
    if (a == arrival.end()) Die("unknown input " + run->input_name);
    if (run->state != "succeeded") Die("run " + run->run_id + " " + run->state);
    const InputTiming timing = TimingOf(*run, a->second);
    if (paced_names.count(run->input_name)) {
      t->paced.push_back(timing);
    } else {
      t->burst.push_back(timing);
      first_arrival = std::min(first_arrival, a->second);
      last_done = std::max(last_done, run->updated_ms);
    }
  }
  t->serve_wall_s = (last_done - first_arrival) / 1000.0;
}

void RemoveBulk(const SshServer& sftp, const fs::path& tdir, int k) {
  for (const char* side : {"-run", "-serve", "-console"})
    fs::remove_all(fs::path(sftp.root_dir()) /
                   ("t" + std::to_string(k) + side));
  for (const char* work : {"run-work", "serve-work", "console-work"})
    fs::remove_all(tdir / work);
}

// ---- report ----

std::string Fmt(double v, int decimals = 1) {
  if (std::isnan(v)) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string Ratio(double a, double b) {
  if (std::isnan(a) || std::isnan(b) || b == 0) return "-";
  return Fmt(a / b, 2) + "x";
}

void Row(const std::string& what, const std::string& a, const std::string& b,
         const std::string& c) {
  std::printf("| %-44s | %12s | %12s | %9s |\n", what.c_str(), a.c_str(),
              b.c_str(), c.c_str());
}

// Median over trials of a per-trial figure.
template <typename F>
double Med(const std::vector<Trial>& trials, F f) {
  std::vector<double> v;
  for (const Trial& t : trials) v.push_back(f(t));
  return Median(v);
}

std::vector<double> Parts(const std::vector<InputTiming>& v,
                          const std::string& part) {
  std::vector<double> out;
  for (const InputTiming& t : v) {
    auto it = t.parts.find(part);
    out.push_back(it == t.parts.end() ? 0 : it->second);
  }
  return out;
}

std::vector<double> Latencies(const std::vector<InputTiming>& v) {
  std::vector<double> out;
  for (const InputTiming& t : v) out.push_back(t.latency_ms);
  return out;
}

void Report(const Options& o, const std::vector<Trial>& trials) {
  const double n = o.inputs;
  const double records = n * o.records;
  std::printf(
      "\n== cbpipe serve vs cbpipe run (the peer), %d inputs x %d records "
      "(2%% invalid) to SFTP\n"
      "   OpenSSH sshd on 127.0.0.1, 4 destinations (one per network), key "
      "auth, pinned host key\n"
      "   serve: workers %d, settle_ms %d, poll_interval_ms %d, log to a "
      "file, admin API on\n"
      "   %zu trial(s), fresh work dirs and remote folders each; medians "
      "over trials\n\n",
      o.inputs, o.records, o.workers, o.settle_ms, o.poll_ms, trials.size());
  for (size_t i = 0; i < trials.size(); ++i) {
    const Trial& t = trials[i];
    std::printf(
        "   trial %zu: run %.2f s (cpu %.2f s), serve %.2f s (cpu %.2f s), "
        "burst p50 %.0f ms, paced p50 %.0f ms; load %s -> %s\n",
        i + 1, t.run_wall_s, t.run_cpu_s, t.serve_wall_s, t.serve_cpu_s,
        Percentile(Latencies(t.burst), 0.5),
        Percentile(Latencies(t.paced), 0.5), t.load_before.c_str(),
        t.load_after.c_str());
  }
  std::printf("\n");

  const double run_wall =
      Med(trials, [](const Trial& t) { return t.run_wall_s; });
  const double serve_wall =
      Med(trials, [](const Trial& t) { return t.serve_wall_s; });
  const double run_cpu =
      Med(trials, [](const Trial& t) { return t.run_cpu_s; });
  const double serve_cpu =
      Med(trials, [](const Trial& t) { return t.serve_cpu_s; });
  Row("throughput (all N dropped at once)", "serve", "run (peer)", "serve/run");
  Row("---", "---:", "---:", "---:");
  Row("wall s (serve: 1st arrival to last delivered)", Fmt(serve_wall, 2),
      Fmt(run_wall, 2), Ratio(serve_wall, run_wall));
  Row("inputs/s", Fmt(n / serve_wall, 1), Fmt(n / run_wall, 1),
      Ratio(n / serve_wall, n / run_wall));
  Row("records/s", Fmt(records / serve_wall, 0), Fmt(records / run_wall, 0),
      Ratio(records / serve_wall, records / run_wall));
  Row("cbpipe CPU s (serve: during the burst)", Fmt(serve_cpu, 2),
      Fmt(run_cpu, 2), Ratio(serve_cpu, run_cpu));
  Row("cbpipe CPU ms per input", Fmt(serve_cpu * 1000 / n, 2),
      Fmt(run_cpu * 1000 / n, 2), Ratio(serve_cpu, run_cpu));
  const Trial& last = trials.back();
  Row("files delivered (last trial)", std::to_string(last.files_serve),
      std::to_string(last.files_run), last.same_files ? "same" : "DIFFER");
  std::printf("\n");

  Row("arrival-to-delivered latency (serve, ms)", "burst", "paced", "");
  Row("---", "---:", "---:", "");
  for (const auto& [label, p] : std::vector<std::pair<std::string, double>>{
           {"p50", 0.5}, {"p99", 0.99}, {"max", 1.0}}) {
    Row(label,
        Fmt(Med(trials,
                [p = p](const Trial& t) {
                  return Percentile(Latencies(t.burst), p);
                }),
            0),
        Fmt(Med(trials,
                [p = p](const Trial& t) {
                  return Percentile(Latencies(t.paced), p);
                }),
            0),
        "");
  }
  std::printf(
      "   burst: all %d inputs renamed in at once (in %.1f ms), so the "
      "latency is mostly waiting behind\n"
      "   other inputs (queue depth / throughput). paced: %d more inputs "
      "in the same service afterwards,\n"
      "   each dropped when the previous one was delivered: the latency of "
      "a lone input.\n\n",
      o.inputs, Med(trials, [](const Trial& t) { return t.drop_s * 1000; }),
      o.paced);

  // Per-input overhead, several ways.
  const double run_per_input_ms = run_wall * 1000 / n;
  const double paced_p50 = Med(trials, [](const Trial& t) {
    return Percentile(Latencies(t.paced), 0.5);
  });
  // Each difference is taken within a trial (the two sides ran minutes
  // apart at most), then the median over trials.
  const double a = Med(trials, [n](const Trial& t) {
    return (t.serve_wall_s - t.run_wall_s) * 1000 / n;
  });
  const double b = Med(trials, [n](const Trial& t) {
    return Percentile(Latencies(t.paced), 0.5) - t.run_wall_s * 1000 / n;
  });
  const double c = Med(trials, [n](const Trial& t) {
    return (t.serve_cpu_s - t.run_cpu_s) * 1000 / n;
  });
  const double d = Med(trials, [](const Trial& t) {
    return Percentile(Parts(t.paced, "serve_only"), 0.5);
  });
  const double d2 = Med(trials, [](const Trial& t) {
    return Percentile(Parts(t.paced, "serve_only_no_pickup"), 0.5);
  });
  Row("per-input overhead of serve (ms)", "value", "target", "verdict");
  Row("---", "---:", "---:", "---");
  auto verdict = [](double v) { return v <= 20 ? "met" : "MISSED"; };
  Row("A (serve wall - run wall) / N", Fmt(a, 2), "", "");
  Row("B paced p50 - run wall / N", Fmt(b, 1), "<= 20", verdict(b));
  Row("B' B - settle_ms", Fmt(b - o.settle_ms, 1), "<= 20",
      verdict(b - o.settle_ms));
  Row("C (serve CPU - run CPU) / N", Fmt(c, 2), "", "");
  Row("D paced p50 of serve-only time", Fmt(d, 1), "<= 20", verdict(d));
  Row("D' D without inbox pickup", Fmt(d2, 1), "<= 20", verdict(d2));
  std::printf(
      "   run wall / N = %.1f ms is the peer's time per input (one process, "
      "inputs one after another).\n"
      "   A: throughput difference per input; serve runs %d inputs at once "
      "and run one, so A can be\n"
      "      negative and is not a latency. B: a lone input's latency in "
      "serve over the peer's time per\n"
      "      input (includes the inbox wait: settle_ms plus up to "
      "poll_interval_ms). C: CPU only.\n"
      "   D: per input, from serve's own step checkpoints: latency minus "
      "scan, verify and deliver\n"
      "      (the work run does too); what is left is inbox pickup (settle, "
      "SHA-256, object store copy,\n"
      "      queue send), queue wait, notify, settle and the engine's "
      "checkpoint writes between states.\n"
      "      D' leaves out the inbox pickup.\n\n",
      run_per_input_ms, o.workers);

  Row("where a lone input's time goes (paced, ms)", "p50", "p99", "");
  Row("---", "---:", "---:", "");
  const std::vector<std::pair<std::string, std::string>> parts = {
      {"pickup", "inbox pickup (arrival -> run created)"},
      {"queue", "queue wait (created -> run starts)"},
      {"scan", "scan (validate + generate, one pass)"},
      {"verify", "verify"},
      {"deliver", "deliver (4 SFTP uploads at once)"},
      {"notify", "notify"},
      {"settle", "settle"},
      {"engine", "engine between states (checkpoints)"}};
  for (const auto& [key, label] : parts) {
    Row(label,
        Fmt(Med(trials,
                [key = key](const Trial& t) {
                  return Percentile(Parts(t.paced, key), 0.5);
                }),
            0),
        Fmt(Med(trials,
                [key = key](const Trial& t) {
                  return Percentile(Parts(t.paced, key), 0.99);
                }),
            0),
        "");
  }
  Row("total latency", Fmt(paced_p50, 0),
      Fmt(Med(trials,
              [](const Trial& t) {
                return Percentile(Latencies(t.paced), 0.99);
              }),
          0),
      "");
  const double pickup_p50 = Med(trials, [](const Trial& t) {
    return Percentile(Parts(t.paced, "pickup"), 0.5);
  });
  const double ingest_each = Med(trials, [n](const Trial& t) {
    return Percentile(Parts(t.burst, "pickup"), 1.0) / n;
  });
  std::printf(
      "   (times from the run store, whole milliseconds; the parts need not "
      "add up at p50)\n"
      "   inbox pickup = waiting for the next scan (0 to poll_interval_ms) + "
      "settle_ms (until a later scan\n"
      "   sees the file unchanged) + ingest (SHA-256, copy into the object "
      "store, queue send, run record).\n"
      "   Estimated ingest at p50: %.0f - %d - %d/2 = %.0f ms. In the burst "
      "the watcher ingested the N\n"
      "   inputs one after another at %.1f ms each.\n\n",
      pickup_p50, o.settle_ms, o.poll_ms,
      pickup_p50 - o.settle_ms - o.poll_ms / 2.0, ingest_each);

  Row("same, burst (ms)", "p50", "p99", "");
  Row("---", "---:", "---:", "");
  for (const auto& [key, label] : parts) {
    Row(label,
        Fmt(Med(trials,
                [key = key](const Trial& t) {
                  return Percentile(Parts(t.burst, key), 0.5);
                }),
            0),
        Fmt(Med(trials,
                [key = key](const Trial& t) {
                  return Percentile(Parts(t.burst, key), 0.99);
                }),
            0),
        "");
  }
  std::printf("\n");
  const double queue_ops = 3 * n / serve_wall;
  std::printf(
      "queue: serve made 3 SQLite queue operations per input (send, "
      "receive, delete): %.0f ops/s at\n"
      "this throughput; compare with bench_queue's capacity below.\n",
      queue_ops);
  std::printf(
      "admin /metrics (last trial): %.0f files delivered, mean delivery "
      "time per file %.1f ms\n",
      last.metric_files_delivered, last.metric_delivery_seconds_mean * 1000);
}

// serve alone against serve with the console open (the same trials, the
// two alternating which goes first).
void ReportConsole(const Options& o, const std::vector<Trial>& plain,
                   const std::vector<Trial>& console) {
  const double n = o.inputs;
  auto wall = [](const Trial& t) { return t.serve_wall_s; };
  auto cpu = [](const Trial& t) { return t.serve_cpu_s; };
  auto paced_p50 = [](const Trial& t) {
    return Percentile(Latencies(t.paced), 0.5);
  };
  auto serve_only = [](const Trial& t) {
    return Percentile(Parts(t.paced, "serve_only"), 0.5);
  };
  std::printf(
      "\n== the console open in chromium (overview refreshing itself every "
      "5 s, the runs list\n   reloaded every 5 s) during serve's burst and "
      "paced inputs, against serve alone\n\n");
  Row("serve, the same inputs", "alone", "console", "ratio");
  Row("---", "---:", "---:", "---:");
  const double w0 = Med(plain, wall), w1 = Med(console, wall);
  Row("burst wall s", Fmt(w0, 2), Fmt(w1, 2), Ratio(w1, w0));
  Row("inputs/s", Fmt(n / w0, 1), Fmt(n / w1, 1), Ratio(n / w1, n / w0));
  const double c0 = Med(plain, cpu), c1 = Med(console, cpu);
  Row("serve CPU s during the burst", Fmt(c0, 2), Fmt(c1, 2), Ratio(c1, c0));
  const double p0 = Med(plain, paced_p50), p1 = Med(console, paced_p50);
  Row("paced latency p50 ms", Fmt(p0, 0), Fmt(p1, 0), Ratio(p1, p0));
  const double d0 = Med(plain, serve_only), d1 = Med(console, serve_only);
  Row("D per-input overhead p50 ms", Fmt(d0, 1), Fmt(d1, 1), Ratio(d1, d0));
  for (size_t i = 0; i < plain.size() && i < console.size(); ++i)
    std::printf("   trial %zu: alone %.2f s, console %.2f s\n", i + 1,
                plain[i].serve_wall_s, console[i].serve_wall_s);
}

int Usage() {
  std::fprintf(stderr,
               "usage: bench_service --cbpipe BIN --dir DIR [--inputs N] "
               "[--records M] [--trials T] [--paced K] [--workers W] "
               "[--settle-ms MS] [--poll-ms MS] [--console SCRIPT.mjs] "
               "[--node PATH]\n");
  return 2;
}

int Main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i + 1 >= argc) return Usage();
    const std::string value = argv[++i];
    if (arg == "--cbpipe") {
      o.cbpipe = fs::absolute(value).string();
    } else if (arg == "--dir") {
      o.dir = fs::absolute(value).string();
    } else if (arg == "--inputs") {
      o.inputs = std::atoi(value.c_str());
    } else if (arg == "--records") {
      o.records = std::atoi(value.c_str());
    } else if (arg == "--trials") {
      o.trials = std::atoi(value.c_str());
    } else if (arg == "--paced") {
      o.paced = std::atoi(value.c_str());
    } else if (arg == "--workers") {
      o.workers = std::atoi(value.c_str());
    } else if (arg == "--settle-ms") {
      o.settle_ms = std::atoi(value.c_str());
    } else if (arg == "--poll-ms") {
      o.poll_ms = std::atoi(value.c_str());
    } else if (arg == "--console") {
      o.console_script = fs::absolute(value).string();
    } else if (arg == "--node") {
      o.node = value;
    } else {
      return Usage();
    }
  }
  if (o.cbpipe.empty() || o.dir.empty() || o.inputs < 1 || o.records < 1 ||
      o.trials < 1 || o.paced < 1 || o.workers < 1)
    return Usage();
  Check(testing::RequireRoot(), "root");
  fs::create_directories(o.dir);

  const std::vector<std::string> all = GenerateInputs(o, o.inputs + o.paced);
  const std::vector<std::string> inputs(all.begin(), all.begin() + o.inputs);
  const std::vector<std::string> paced(all.begin() + o.inputs, all.end());

  const fs::path sftp_dir = fs::path(o.dir) / "sftp";
  fs::remove_all(sftp_dir);
  StatusOr<SshServer> sftp = SshServer::Start(sftp_dir.string());
  Check(sftp.status(), "sshd");

  std::vector<Trial> trials, console_trials;
  for (int k = 1; k <= o.trials; ++k) {
    const fs::path tdir = fs::path(o.dir) / ("trial" + std::to_string(k));
    fs::remove_all(tdir);
    fs::create_directories(tdir);
    Trial t;
    t.load_before = LoadAverage();
    // Alternate the order, so drift on a shared machine hits every side.
    Trial c;
    auto serve_with_console = [&] {
      if (!o.console_script.empty())
        RunServe(o, *sftp, inputs, paced, tdir, k, "console", &c);
    };
    if (k % 2 == 1) {
      RunPeer(o, *sftp, inputs, tdir, k, &t);
      RunServe(o, *sftp, inputs, paced, tdir, k, "serve", &t);
      serve_with_console();
    } else {
      serve_with_console();
      RunServe(o, *sftp, inputs, paced, tdir, k, "serve", &t);
      RunPeer(o, *sftp, inputs, tdir, k, &t);
    }
    t.load_after = LoadAverage();
    int partials = 0;
    const auto run_files = RemoteFiles(
        sftp->root_dir(), "t" + std::to_string(k) + "-run", &partials);
    t.files_run = run_files.size();
    for (const auto& [name, size] : run_files) t.bytes_run += size;
    // serve also delivered the paced inputs; compare the burst's files.
    auto compare = [&](const std::string& side, Trial* s) {
      int side_partials = partials;
      const auto files = RemoteFiles(
          sftp->root_dir(), "t" + std::to_string(k) + "-" + side,
          &side_partials);
      s->same_files = side_partials == 0 && !run_files.empty();
      s->files_serve = 0;
      for (const auto& [name, size] : run_files) {
        auto it = files.find(name);
        if (it == files.end() || it->second != size) s->same_files = false;
        else ++s->files_serve;
      }
      if (!s->same_files)
        std::fprintf(stderr,
                     "bench_service: trial %d: %s and run delivered "
                     "different files (%d .part left)\n",
                     k, side.c_str(), side_partials);
    };
    compare("serve", &t);
    if (!o.console_script.empty()) {
      compare("console", &c);
      c.files_run = t.files_run;
      std::fprintf(stderr, "trial %d/%d: serve with the console %.2f s\n", k,
                   o.trials, c.serve_wall_s);
      console_trials.push_back(std::move(c));
    }
    std::fprintf(stderr,
                 "trial %d/%d: run %.2f s, serve %.2f s, %zu files each\n", k,
                 o.trials, t.run_wall_s, t.serve_wall_s, t.files_run);
    RemoveBulk(*sftp, tdir, k);
    trials.push_back(std::move(t));
  }
  sftp->Stop();
  Report(o, trials);
  if (!console_trials.empty()) ReportConsole(o, trials, console_trials);
  bool ok = true;
  for (const Trial& t : trials) ok &= t.same_files;
  for (const Trial& t : console_trials) ok &= t.same_files;
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace cbpipe

int main(int argc, char** argv) { return cbpipe::Main(argc, argv); }
