// bench_lambda: the packaged Lambda function (scripts/package-lambda, the zip
// unpacked in --package) run as Lambda runs it, one process per invocation,
// through the tests' runtime API server (lambda/runtime_api_test_server.h),
// with moto holding the input, the work files (S3), the ledger (DynamoDB),
// the notification topic (SNS) and the state machine `start` starts.
// bench/lambda/run.sh drives it; bench/README.md "lambda/" explains the
// figures. Not a test (the smoke test, bench_lambda_smoke, runs it on a few
// records).
//
//   bench_lambda --package DIR --input FILE --out DIR [--now-ms MS]
//                [--executions N] [--memory-mb 128,256,512] [--cold-starts N]
//                [--python BIN --python-steps PY_STEPS --python-executions N
//                 [--python-memory-mb 128,256,...]]
//
// Each execution feeds the steps the JSON the state machine
// (deploy/aws/cbpipe.asl.json) would: start (an SQS batch with the S3
// event), scan, per batch verify then deliver per destination (four file://
// destinations, one per network), notify, settle. Each invocation runs in
// a memory cgroup of the first --memory-mb size; a process killed there
// (out of memory) is run again at the next size, as a step is safe to redo.
// Prints one JSON line per invocation (handler, memory_mb, ok, ms: event
// handed out -> response posted, hwm_kb: the process's VmHWM, its CPU
// time so far, S3 and other AWS requests counted from moto's
// log), one per execution (records, batches, files delivered), and with
// --cold-starts N one per start: fork of bootstrap -> its first GET
// /runtime/invocation/next (wall, and the process's CPU and run-queue
// wait until then), N per handler.
// With --python, after those executions, N executions of the Python
// reference as Lambda steps (bench/lambda/py_steps.py) fed the same way:
// each invocation a new interpreter (event on stdin, result on stdout) in
// a memory cgroup, climbing --python-memory-mb, against the same moto
// (its work under s3://bench/py/); one `py_invoke` line per invocation
// (ms: fork -> exit, init included; init_ms, init_cpu_ms: up to the end
// of its imports; CPU from wait4's rusage; peak RSS: the VmHWM the step
// reports at its end; S3 and other
// requests as above) and one `py_execution` line each. Execution lines of
// both sides carry the sorted SHA-256 of the generated files.
// Exit status 0 when every execution delivered every file; 1 otherwise;
// 2 on a setup error.
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "aws/dynamodb.h"
#include "aws/make_client.h"
#include "lambda/runtime_api_test_server.h"
#include "servers/moto_server.h"

namespace cbpipe {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using std::chrono::milliseconds;
using testing::LambdaApiOutcome;
using testing::LambdaRuntimeApiServer;
using testing::MotoServer;

constexpr const char* kBucket = "bench";
constexpr const char* kTable = "cbpipe-bench";
constexpr const char* kTopic = "cbpipe-bench-events";
constexpr const char* kAccount = "123456789012";
const char* const kNetworks[] = {"visa", "mastercard", "amex", "discover"};

struct Options {
  fs::path package, input, out;
  int64_t now_ms = 0;
  int executions = 1;
  std::vector<int> memory_mb;  // empty: no cgroup
  int cold_starts = 0;
  // The Python reference as Lambda steps (py_steps.py), run after the
  // executions above: its interpreter, executions and memory ladder.
  fs::path python_steps, python_bin;
  int python_executions = 0;
  std::vector<int> python_memory_mb;
};

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int64_t NowMs() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double Ms(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

// A cgroup v1 memory controller group limited to `mb` (none when mb == 0
// or the controller cannot be used: then the run is unlimited and says so).
class MemoryCgroup {
 public:
  explicit MemoryCgroup(int mb) {
    if (mb <= 0) return;
    static int serial = 0;
    const fs::path root = "/sys/fs/cgroup/memory";
    dir_ = root / ("cbpipe-bench-lambda-" + std::to_string(::getpid()) + "-" +
                   std::to_string(serial++));
    std::error_code ec;
    if (!fs::create_directory(dir_, ec) || ec) {
      dir_.clear();
      return;
    }
    std::ofstream(dir_ / "memory.limit_in_bytes") << (int64_t{mb} << 20);
    std::ofstream(dir_ / "memory.swappiness") << 0;
  }
  ~MemoryCgroup() {
    if (!dir_.empty()) ::rmdir(dir_.c_str());
  }
  MemoryCgroup(const MemoryCgroup&) = delete;
  MemoryCgroup& operator=(const MemoryCgroup&) = delete;
  bool active() const { return !dir_.empty(); }
  // For the child, before exec: joins the group.
  std::string procs_file() const {
    return dir_.empty() ? "" : (dir_ / "cgroup.procs").string();
  }
  // The group's peak charge (RSS + page cache), bytes.
  int64_t max_usage() const {
    if (dir_.empty()) return 0;
    return std::atoll(ReadFile(dir_ / "memory.max_usage_in_bytes").c_str());
  }

 private:
  fs::path dir_;
};

// For a forked child, before exec: joins the cgroup whose cgroup.procs is
// `procs` (none when empty); exits (125) when it cannot.
void JoinCgroupOrExit(const std::string& procs) {
  if (procs.empty()) return;
  FILE* f = std::fopen(procs.c_str(), "w");
  if (f == nullptr || std::fprintf(f, "%d\n", ::getpid()) < 0 ||
      std::fclose(f) != 0)
    ::_exit(125);
}

// execve's view of `env` (valid while it lives).
std::vector<char*> EnvPointers(const std::vector<std::string>& env) {
  std::vector<char*> envp;
  for (const std::string& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  return envp;
}

// `bootstrap` of the package with exactly `env`, in `cgroup`; killed and
// reaped by the destructor unless it exited.
class Bootstrap {
 public:
  Bootstrap(const fs::path& package, const std::vector<std::string>& env,
            const fs::path& log, const MemoryCgroup& cgroup) {
    std::vector<char*> envp = EnvPointers(env);
    const std::string dir = package.string();
    const std::string procs = cgroup.procs_file();
    pid_ = ::fork();
    if (pid_ == 0) {
      JoinCgroupOrExit(procs);
      FILE* out = std::freopen(log.c_str(), "w", stdout);
      if (out != nullptr) ::dup2(::fileno(stdout), 2);
      if (::chdir(dir.c_str()) != 0) ::_exit(126);
      char* argv[] = {const_cast<char*>("./bootstrap"), nullptr};
      ::execve("./bootstrap", argv, envp.data());
      ::_exit(127);
    }
  }
  ~Bootstrap() {
    if (pid_ > 0 && !exited_) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
  }
  Bootstrap(const Bootstrap&) = delete;
  Bootstrap& operator=(const Bootstrap&) = delete;

  pid_t pid() const { return pid_; }
  // True once the process ended (by itself or killed); *how says how.
  bool Exited(std::string* how) {
    if (exited_) return true;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) != pid_) return false;
    exited_ = true;
    if (WIFSIGNALED(status)) {
      *how = "killed by signal " + std::to_string(WTERMSIG(status));
    } else {
      *how = "exit status " + std::to_string(WEXITSTATUS(status));
    }
    return true;
  }
  // Nanoseconds the live process's threads ran on a CPU and waited for
  // one (runnable, not running), from /proc/PID/task/*/schedstat: on a
  // busy machine the wall time is CPU + run-queue wait + blocked.
  std::pair<int64_t, int64_t> CpuAndWaitNs() const {
    int64_t cpu = 0, wait = 0;
    std::error_code ec;
    for (const auto& task : fs::directory_iterator(
             "/proc/" + std::to_string(pid_) + "/task", ec)) {
      std::ifstream in(task.path() / "schedstat");
      int64_t c = 0, w = 0;
      if (in >> c >> w) {
        cpu += c;
        wait += w;
      }
    }
    return {cpu, wait};
  }
  // CPU time (user + system) of the live process, its threads that ended
  // included (/proc/PID/stat; clock ticks: 10 ms steps), ms.
  double CpuMs() const {
    std::string stat = ReadFile("/proc/" + std::to_string(pid_) + "/stat");
    const size_t paren = stat.rfind(')');
    if (paren == std::string::npos) return 0;
    std::istringstream in(stat.substr(paren + 2));
    std::string field;
    int64_t utime = 0, stime = 0;
    for (int i = 3; i <= 15 && in >> field; ++i) {  // fields 14, 15
      if (i == 14) utime = std::atoll(field.c_str());
      if (i == 15) stime = std::atoll(field.c_str());
    }
    return 1000.0 * static_cast<double>(utime + stime) /
           static_cast<double>(::sysconf(_SC_CLK_TCK));
  }
  // VmHWM (peak resident set) of the live process, KiB; 0 if unknown.
  int64_t VmHwmKb() const {
    std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("VmHWM:", 0) == 0) return std::atoll(line.c_str() + 6);
    }
    return 0;
  }

 private:
  pid_t pid_ = -1;
  bool exited_ = false;
};

// Requests moto served, from its log (werkzeug: `"METHOD /path HTTP/1.1"`):
// S3 (a path under the bucket) by price tier, everything else (DynamoDB,
// SNS, Step Functions: POST /) as `api`.
struct RequestCounts {
  int64_t s3_tier1 = 0;  // PUT, POST, COPY, LIST: $0.005 per 1000
  int64_t s3_tier2 = 0;  // GET, HEAD: $0.0004 per 1000
  int64_t s3_other = 0;  // DELETE (free)
  int64_t api = 0;
};

class MotoLog {
 public:
  explicit MotoLog(std::string path) : path_(std::move(path)) {}
  // What was logged since the last call.
  RequestCounts Take() {
    std::this_thread::sleep_for(milliseconds(100));  // the last line's write
    std::ifstream in(path_, std::ios::binary);
    in.seekg(offset_);
    RequestCounts c;
    std::string line;
    while (std::getline(in, line)) {
      if (in.eof()) break;  // a line still being written
      offset_ = in.tellg();
      const size_t q = line.find('"');
      if (q == std::string::npos) continue;
      std::istringstream request(line.substr(q + 1));
      std::string method, path;
      request >> method >> path;
      if (path.empty() || path.rfind("/moto-api", 0) == 0) continue;
      const std::string bucket_path = std::string("/") + kBucket;
      const bool s3 = path.rfind(bucket_path, 0) == 0;
      if (!s3) {
        ++c.api;
      } else if (method == "GET" || method == "HEAD") {
        const bool list = path.find('?') != std::string::npos &&
                          (path.find("list-type") != std::string::npos ||
                           path.find("prefix=") != std::string::npos) &&
                          path.find('/', 1) == std::string::npos;
        (list ? c.s3_tier1 : c.s3_tier2)++;
      } else if (method == "DELETE") {
        ++c.s3_other;
      } else {
        ++c.s3_tier1;
      }
    }
    return c;
  }

 private:
  std::string path_;
  std::streamoff offset_ = 0;
};

class Bench {
 public:
  explicit Bench(Options o) : o_(std::move(o)) {}

  int Run() {
    MotoServer::UseTestCredentials();
    auto moto = MotoServer::Start();
    if (!moto.ok()) return SetupError(moto.status().ToString());
    moto_ = std::move(*moto);
    log_ = std::make_unique<MotoLog>(moto_->log_path());
    AwsOptions aws;
    aws.region = "us-east-1";
    for (const char* s : {"s3", "dynamodb", "sns", "states"})
      aws.endpoints[s] = moto_->endpoint();
    auto client = MakeAwsClient(aws);
    if (!client.ok()) return SetupError(client.status().ToString());
    aws_ = *client;
    if (Status s = api_.Start(); !s.ok()) return SetupError(s.ToString());
    input_ = ReadFile(o_.input);
    if (input_.empty())
      return SetupError("empty or unreadable " + o_.input.string());

    int failures = 0;
    for (int i = 0; i < o_.executions; ++i) {
      StatusOr<bool> ok = Execution(i, false);
      if (!ok.ok()) return SetupError(ok.status().ToString());
      if (!*ok) ++failures;
    }
    for (int i = 0; i < o_.python_executions; ++i) {
      StatusOr<bool> ok = Execution(i, true);
      if (!ok.ok()) return SetupError(ok.status().ToString());
      if (!*ok) ++failures;
    }
    if (o_.cold_starts > 0) {
      if (Status s = Setup(o_.executions); !s.ok())
        return SetupError(s.ToString());
      for (const char* handler :
           {"start", "scan", "verify", "deliver", "notify", "settle"}) {
        for (int i = 0; i < o_.cold_starts; ++i) ColdStart(handler);
      }
    }
    api_.Stop();
    return failures == 0 ? 0 : 1;
  }

 private:
  static int SetupError(const std::string& what) {
    std::cerr << "bench_lambda: " << what << "\n";
    return 2;
  }

  // Fresh moto resources, input and config for execution `i` (of the
  // Python reference when `python`).
  Status Setup(int i, bool python = false) {
    CBPIPE_RETURN_IF_ERROR(moto_->Reset());
    AwsRequest bucket;
    bucket.service = "s3";
    bucket.operation = "CreateBucket";
    bucket.method = "PUT";
    bucket.bucket = kBucket;
    CBPIPE_RETURN_IF_ERROR(aws_->Send(bucket).status());
    AwsRequest put = bucket;
    put.operation = "PutObject";
    put.path = "/raw/in.csv";
    put.body = input_;
    CBPIPE_ASSIGN_OR_RETURN(AwsResponse stored, aws_->Send(put));
    etag_ = "0123abcd";
    for (const auto& [name, value] : stored.headers) {
      if ((name == "ETag" || name == "etag") && value.size() > 2) {
        const bool quoted = value.front() == '"' && value.back() == '"';
        etag_ = quoted ? value.substr(1, value.size() - 2) : value;
      }
    }
    CBPIPE_RETURN_IF_ERROR(CreateDynamoDbTable(*aws_, kTable));
    CBPIPE_RETURN_IF_ERROR(
        aws_->CallQuery("sns", "CreateTopic", "2010-03-31", {{"Name", kTopic}})
            .status());
    const json machine = {
        {"name", "cbpipe-bench"},
        {"definition",
         R"({"StartAt":"s","States":{"s":{"Type":"Pass","End":true}}})"},
        {"roleArn", std::string("arn:aws:iam::") + kAccount + ":role/cbpipe"}};
    CBPIPE_ASSIGN_OR_RETURN(
        std::string made,
        aws_->CallJson("states", "AWSStepFunctions.CreateStateMachine",
                       machine.dump()));
    state_machine_ = json::parse(made)["stateMachineArn"];

    dir_ = o_.out / ((python ? "python-" : "execution-") + std::to_string(i));
    fs::remove_all(dir_);
    std::string destinations;
    for (const char* n : kNetworks) {
      fs::create_directories(dir_ / "outbox" / n);
      destinations += std::string("\n[[destination]]\nname = \"") + n +
                      "\"\nnetworks = [\"" + n + "\"]\nurl = \"file://" +
                      (dir_ / "outbox" / n).string() + "\"\n";
    }
    const std::string e = moto_->endpoint();
    std::ofstream(dir_ / "cbpipe.toml")
        << "[aws]\nregion = \"us-east-1\"\nendpoints = { s3 = \"" << e
        << "\", dynamodb = \"" << e << "\", sns = \"" << e << "\", states = \""
        << e << "\" }\n\n[output]\nwork_dir = \"work\"\n\n[service]\n"
        << "object_store = \"s3://" << kBucket << "/raw\"\n"
        << "work_store = \"s3://" << kBucket << "/processed\"\n"
        << "ledger = \"dynamodb://" << kTable << "\"\n\n[notify.sns]\n"
        << "topic_arn = \"arn:aws:sns:us-east-1:" << kAccount << ":" << kTopic
        << "\"\n"
        << destinations;
    log_->Take();  // the setup's requests are not the function's
    return OkStatus();
  }

  // The variables Lambda sets, and ours; TMPDIR a fresh folder per process
  // (each function has its own /tmp).
  std::vector<std::string> Env(const std::string& handler, int memory_mb,
                               const fs::path& tmp) const {
    return {"AWS_LAMBDA_RUNTIME_API=" + api_.host_port(),
            "_HANDLER=" + handler,
            "LAMBDA_TASK_ROOT=" + o_.package.string(),
            "AWS_LAMBDA_FUNCTION_NAME=cbpipe-" + handler,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=" +
                std::to_string(memory_mb > 0 ? memory_mb : 512),
            "AWS_REGION=us-east-1",
            "AWS_ACCESS_KEY_ID=testing",
            "AWS_SECRET_ACCESS_KEY=testing",
            "AWS_SESSION_TOKEN=testing-token",
            "TZ=:UTC",
            "TMPDIR=" + tmp.string(),
            "CBPIPE_CONFIG=" + (dir_ / "cbpipe.toml").string(),
            "CBPIPE_STATE_MACHINE_ARN=" + state_machine_};
  }

  // One invocation of `handler` on `event` in a new process, at the
  // smallest of --memory-mb where it answers; its response (nullopt when
  // it failed at every size, or answered an error).
  std::optional<json> Invoke(int execution, const std::string& handler,
                             const json& event) {
    std::vector<int> sizes = o_.memory_mb;
    if (sizes.empty()) sizes.push_back(0);
    for (int mb : sizes) {
      const std::string id = "req-" + std::to_string(serial_++);
      const fs::path tmp = dir_ / "tmp" / id;
      fs::create_directories(tmp);
      MemoryCgroup cgroup(mb);
      const int calls = api_.next_calls();
      std::optional<LambdaApiOutcome> out;
      std::string ended;
      double ms = 0;
      int64_t hwm_kb = 0;
      double cpu_ms = 0;
      {
        Bootstrap process(o_.package, Env(handler, mb, tmp),
                          dir_ / (id + ".log"), cgroup);
        bool ready = false;
        while (!ready && !process.Exited(&ended))
          ready = api_.WaitNextCalls(calls + 1, milliseconds(200));
        if (ready) {
          // The process waits in GET next: the event is handed out now.
          const auto t0 = std::chrono::steady_clock::now();
          api_.Push({.request_id = id,
                     .body = event.dump(),
                     .deadline_ms = NowMs() + 900'000,
                     .trace_id =
                         "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"});
          const auto timeout = t0 + std::chrono::seconds(900);  // Lambda's most
          while (!out && !process.Exited(&ended) &&
                 std::chrono::steady_clock::now() < timeout)
            out = api_.WaitOutcome(id, milliseconds(200));
          if (!out) out = api_.WaitOutcome(id, milliseconds(0));
          ms = Ms(std::chrono::steady_clock::now() - t0);
          if (!out && ended.empty()) ended = "no answer within 900 s";
          if (out) {
            hwm_kb = process.VmHwmKb();
            cpu_ms = process.CpuMs();
            // Stopped once it waits for its next event: killed before,
            // its GET could still reach the server and take the next
            // process's event.
            api_.WaitNextCalls(calls + 2, milliseconds(10'000));
          }
        }
      }
      api_.ReleaseWaiting();
      fs::remove_all(tmp);
      const RequestCounts c = log_->Take();
      json line = {{"kind", "invoke"},
                   {"execution", execution},
                   {"handler", handler},
                   {"memory_mb", cgroup.active() ? mb : 0},
                   {"ok", out.has_value() && out->kind == "response"},
                   {"ms", ms},
                   {"hwm_kb", hwm_kb},
                   {"process_cpu_ms", cpu_ms},  // init + this event
                   {"cgroup_peak_kb", cgroup.max_usage() >> 10},
                   {"s3_tier1", c.s3_tier1},
                   {"s3_tier2", c.s3_tier2},
                   {"s3_delete", c.s3_other},
                   {"api", c.api}};
      if (!out) line["ended"] = ended;
      if (out && out->kind != "response") line["error"] = out->body;
      std::cout << line.dump() << std::endl;
      if (out && out->kind == "response") return json::parse(out->body);
      if (out) return std::nullopt;  // an error answer: no bigger size helps
    }
    return std::nullopt;
  }

  // The environment of a Python step (py_steps.py): Lambda's variables,
  // the moto endpoint and where this side keeps its work (its own prefix
  // of the same bucket, the same kind of file:// destinations).
  std::vector<std::string> PythonEnv(const std::string& handler, int memory_mb,
                                     const fs::path& tmp) const {
    const std::string topic =
        std::string("arn:aws:sns:us-east-1:") + kAccount + ":" + kTopic;
    return {"_HANDLER=" + handler,
            "AWS_LAMBDA_FUNCTION_NAME=cbpipe-py-" + handler,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=" +
                std::to_string(memory_mb > 0 ? memory_mb : 512),
            "AWS_REGION=us-east-1",
            "AWS_DEFAULT_REGION=us-east-1",
            "AWS_ACCESS_KEY_ID=testing",
            "AWS_SECRET_ACCESS_KEY=testing",
            "AWS_SESSION_TOKEN=testing-token",
            "AWS_ENDPOINT_URL=" + moto_->endpoint(),
            "PATH=/usr/local/bin:/usr/bin:/bin",
            "LANG=C.UTF-8",
            "TZ=:UTC",
            "HOME=" + tmp.string(),  // no ~/.aws of this machine
            "TMPDIR=" + tmp.string(),
            std::string("PY_BENCH_BUCKET=") + kBucket,
            "PY_BENCH_INPUT_PREFIX=raw",
            "PY_BENCH_WORK_PREFIX=py",
            std::string("PY_BENCH_TABLE=") + kTable,
            "PY_BENCH_TOPIC_ARN=" + topic,
            "PY_BENCH_STATE_MACHINE_ARN=" + state_machine_,
            "PY_BENCH_OUTBOX=" + (dir_ / "outbox").string()};
  }

  // One invocation of the Python step `handler` on `event`: a new
  // interpreter (a cold start: imports included) at the smallest of
  // --python-memory-mb where it completes, event on stdin, result on
  // stdout. Duration: fork to exit (init and handler, as Lambda bills
  // both); CPU from the child's rusage (wait4), peak RSS as it reports it.
  std::optional<json> InvokePython(int execution, const std::string& handler,
                                   const json& event) {
    std::vector<int> sizes = o_.python_memory_mb;
    if (sizes.empty()) sizes.push_back(0);
    for (int mb : sizes) {
      const std::string id = "py-" + std::to_string(serial_++);
      const fs::path tmp = dir_ / "tmp" / id;
      fs::create_directories(tmp);
      const fs::path in = dir_ / (id + ".event.json");
      const fs::path out = dir_ / (id + ".out.json");
      const fs::path log = dir_ / (id + ".log");
      const fs::path init = dir_ / (id + ".init.json");
      std::ofstream(in) << event.dump();
      MemoryCgroup cgroup(mb);
      std::vector<std::string> env = PythonEnv(handler, mb, tmp);
      env.push_back("PY_BENCH_INIT_FILE=" + init.string());
      std::vector<char*> envp = EnvPointers(env);
      const std::string bin = o_.python_bin.string();
      const std::string steps = o_.python_steps.string();
      const std::string procs = cgroup.procs_file();
      const auto t0 = std::chrono::steady_clock::now();
      const pid_t pid = ::fork();
      if (pid == 0) {
        JoinCgroupOrExit(procs);
        const int fd_in = ::open(in.c_str(), O_RDONLY);
        const int fd_out = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                  0644);
        const int fd_log = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                  0644);
        if (fd_in < 0 || fd_out < 0 || fd_log < 0 || ::dup2(fd_in, 0) < 0 ||
            ::dup2(fd_out, 1) < 0 || ::dup2(fd_log, 2) < 0)
          ::_exit(126);
        for (int fd : {fd_in, fd_out, fd_log})
          if (fd > 2) ::close(fd);
        char* argv[] = {const_cast<char*>(bin.c_str()),
                        const_cast<char*>(steps.c_str()), nullptr};
        ::execve(bin.c_str(), argv, envp.data());
        ::_exit(127);
      }
      int status = 0;
      struct rusage ru {};
      const bool reaped = pid > 0 && ::wait4(pid, &status, 0, &ru) == pid;
      const double ms = Ms(std::chrono::steady_clock::now() - t0);
      const RequestCounts c = log_->Take();
      fs::remove_all(tmp);
      const bool exited = reaped && WIFEXITED(status);
      const bool ok = exited && WEXITSTATUS(status) == 0;
      // Out of memory: killed by the cgroup, or a MemoryError (3).
      const bool oom = reaped && ((WIFSIGNALED(status) &&
                                   WTERMSIG(status) == SIGKILL) ||
                                  (exited && WEXITSTATUS(status) == 3));
      auto seconds = [](const timeval& t) {
        return static_cast<double>(t.tv_sec) * 1e3 +
               static_cast<double>(t.tv_usec) / 1e3;
      };
      json line = {{"kind", "py_invoke"},
                   {"execution", execution},
                   {"handler", handler},
                   {"memory_mb", cgroup.active() ? mb : 0},
                   {"ok", ok},
                   {"ms", ms},  // fork -> exit: init included
                   {"hwm_kb", 0},
                   {"process_cpu_ms", seconds(ru.ru_utime) + seconds(ru.ru_stime)},
                   {"cgroup_peak_kb", cgroup.max_usage() >> 10},
                   {"s3_tier1", c.s3_tier1},
                   {"s3_tier2", c.s3_tier2},
                   {"s3_delete", c.s3_other},
                   {"api", c.api}};
      // Init (interpreter and imports): its end on CLOCK_MONOTONIC, which
      // is steady_clock's, and the CPU used until then.
      try {
        const json i = json::parse(ReadFile(init));
        const double end_s = i.at("monotonic").get<double>();
        const double t0_s =
            std::chrono::duration<double>(t0.time_since_epoch()).count();
        line["init_ms"] = (end_s - t0_s) * 1e3;
        line["init_cpu_ms"] = i.at("cpu_s").get<double>() * 1e3;
        // Its own VmHWM at the end (wait4's ru_maxrss would count this
        // process's memory too: the child's before its exec).
        line["hwm_kb"] = i.value("hwm_kb", int64_t{0});
      } catch (const json::exception&) {
        // Ended before init did: no split.
      }
      std::optional<json> result;
      if (ok) {
        try {
          result = json::parse(ReadFile(out));
        } catch (const json::exception& e) {
          line["ok"] = false;
          line["error"] = std::string("unreadable result: ") + e.what();
        }
      } else if (oom) {
        line["ended"] = WIFSIGNALED(status) ? "killed by signal 9"
                                            : "MemoryError";
      } else {
        std::string err = ReadFile(log);
        if (err.size() > 2000) err = err.substr(err.size() - 2000);
        line["error"] = (exited ? "exit status " +
                                      std::to_string(WEXITSTATUS(status))
                                : std::string("ended abnormally")) +
                        ": " + err;
      }
      std::cout << line.dump() << std::endl;
      if (result || !oom) return result;
    }
    return std::nullopt;
  }

  // An invocation of the function, or of the Python reference's step.
  std::optional<json> Call(bool python, int execution,
                           const std::string& handler, const json& event) {
    return python ? InvokePython(execution, handler, event)
                  : Invoke(execution, handler, event);
  }

  // One execution as the state machine runs it, of the function or (when
  // `python`) of the Python reference; false when a step failed or a file
  // was not delivered.
  StatusOr<bool> Execution(int i, bool python) {
    CBPIPE_RETURN_IF_ERROR(Setup(i, python));
    const json s3_event = {{"Records",
                            {{{"eventSource", "aws:s3"},
                              {"eventName", "ObjectCreated:Put"},
                              {"s3",
                               {{"bucket", {{"name", kBucket}}},
                                {"object",
                                 {{"key", "raw/in.csv"},
                                  {"size", input_.size()},
                                  {"eTag", etag_}}}}}}}}};
    const json sqs = {{"Records",
                       {{{"messageId", "m1"},
                         {"eventSource", "aws:sqs"},
                         {"body", s3_event.dump()}}}}};
    std::optional<json> started = Call(python, i, "start", sqs);
    if (!started || !(*started)["batchItemFailures"].empty()) return false;

    const json header = {{"run_id", "bench-" + std::to_string(i)},
                         {"trace_id", "5759e988bd862e3fe1be46a994272793"},
                         {"now_ms", o_.now_ms}};
    json scan_in = header;
    scan_in["input_key"] = "in.csv";
    scan_in["input_name"] = "in.csv";
    scan_in["name_by_content"] = true;
    std::optional<json> state = Call(python, i, "scan", scan_in);
    if (!state) return false;
    json batches = json::array();
    int files = 0, delivered = 0;
    for (const json& b : (*state)["batches"]) {
      json item = header;  // the batches Map's ItemSelector
      item["batch"] = b;
      std::optional<json> verified = Call(python, i, "verify", item);
      if (!verified) return false;
      json results = json::array();
      for (const json& d : (*verified)["deliveries"]) {
        std::optional<json> r = Call(python, i, "deliver", d);
        if (!r) return false;
        for (const json& f : (*r)["files"]) {
          ++files;
          if (f["status"] == "delivered") ++delivered;
        }
        results.push_back(*r);
      }
      (*verified)["deliveries"] = results;  // the destinations Map's result
      batches.push_back(*verified);
    }
    (*state)["deliveries"] = batches;  // the batches Map's ResultPath
    std::optional<json> notified = Call(python, i, "notify", *state);
    if (!notified) return false;
    std::optional<json> settled = Call(python, i, "settle", *notified);
    if (!settled) return false;
    int on_disk = 0;
    for (const auto& e : fs::recursive_directory_iterator(dir_ / "outbox"))
      on_disk += e.is_regular_file() ? 1 : 0;
    // The data files' SHA-256, to compare the two sides' bytes.
    std::vector<std::string> sha256;
    for (const json& b : (*state)["batches"])
      for (const json& f : b["files"]) sha256.push_back(f.value("sha256", ""));
    std::sort(sha256.begin(), sha256.end());
    std::cout << json{{"kind", python ? "py_execution" : "execution"},
                      {"execution", i},
                      {"records", (*state)["records"]},
                      {"accepted", (*state)["accepted"]},
                      {"rejected", (*state)["rejected"]},
                      {"batches", (*state)["batches"].size()},
                      {"files", files},
                      {"delivered", delivered},
                      {"files_in_outboxes", on_disk},
                      {"input_bytes", input_.size()},
                      {"sha256", sha256}}
                     .dump()
              << std::endl;
    fs::remove_all(dir_ / "outbox");
    return files > 0 && delivered == files && on_disk == files;
  }

  // fork of bootstrap -> its first GET next (init: config, ports opened).
  void ColdStart(const std::string& handler) {
    const fs::path tmp = dir_ / "tmp" / "cold";
    fs::create_directories(tmp);
    MemoryCgroup cgroup(o_.memory_mb.empty() ? 0 : o_.memory_mb.front());
    const int calls = api_.next_calls();
    std::string ended;
    bool ready = false;
    double ms = 0;
    int64_t cpu_ns = 0, wait_ns = 0;
    {
      const auto t0 = std::chrono::steady_clock::now();
      Bootstrap process(o_.package, Env(handler, 0, tmp), dir_ / "cold.log",
                        cgroup);
      while (!ready && !process.Exited(&ended))
        ready = api_.WaitNextCalls(calls + 1, milliseconds(200));
      ms = Ms(std::chrono::steady_clock::now() - t0);
      if (ready) std::tie(cpu_ns, wait_ns) = process.CpuAndWaitNs();
    }
    api_.ReleaseWaiting();
    json line = {
        {"kind", "cold"}, {"handler", handler},     {"ok", ready},
        {"ms", ms},       {"cpu_ms", cpu_ns / 1e6}, {"runq_ms", wait_ns / 1e6}};
    if (!ready) line["ended"] = ended;
    std::cout << line.dump() << std::endl;
  }

  Options o_;
  std::unique_ptr<MotoServer> moto_;
  std::unique_ptr<MotoLog> log_;
  std::shared_ptr<AwsClient> aws_;
  LambdaRuntimeApiServer api_;
  std::string input_, etag_, state_machine_;
  fs::path dir_;
  int serial_ = 0;
};

int Usage() {
  std::cerr << "usage: bench_lambda --package DIR --input FILE --out DIR "
               "[--now-ms MS] [--executions N] [--memory-mb 128,256,512] "
               "[--cold-starts N] [--python BIN --python-steps PY_STEPS "
               "--python-executions N [--python-memory-mb 128,256,...]]\n";
  return 2;
}

}  // namespace
}  // namespace cbpipe

int main(int argc, char** argv) {
  cbpipe::Options o;
  o.now_ms = cbpipe::NowMs();
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i + 1 >= argc) return cbpipe::Usage();
    const std::string value = argv[++i];
    if (arg == "--package") {
      o.package = std::filesystem::absolute(value);
    } else if (arg == "--input") {
      o.input = value;
    } else if (arg == "--out") {
      o.out = std::filesystem::absolute(value);
    } else if (arg == "--now-ms") {
      o.now_ms = std::atoll(value.c_str());
    } else if (arg == "--executions") {
      o.executions = std::atoi(value.c_str());
    } else if (arg == "--cold-starts") {
      o.cold_starts = std::atoi(value.c_str());
    } else if (arg == "--python-steps") {
      o.python_steps = std::filesystem::absolute(value);
    } else if (arg == "--python") {
      o.python_bin = value;
    } else if (arg == "--python-executions") {
      o.python_executions = std::atoi(value.c_str());
    } else if (arg == "--python-memory-mb") {
      std::istringstream in(value);
      std::string mb;
      while (std::getline(in, mb, ','))
        o.python_memory_mb.push_back(std::atoi(mb.c_str()));
    } else if (arg == "--memory-mb") {
      std::istringstream in(value);
      std::string mb;
      while (std::getline(in, mb, ','))
        o.memory_mb.push_back(std::atoi(mb.c_str()));
    } else {
      return cbpipe::Usage();
    }
  }
  if (o.package.empty() || o.input.empty() || o.out.empty() ||
      (o.python_executions > 0 &&
       (o.python_steps.empty() || o.python_bin.empty())))
    return cbpipe::Usage();
  return cbpipe::Bench(std::move(o)).Run();
}
