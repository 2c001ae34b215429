#include "app/ops_commands.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>

#include "app/admin_api.h"
#include "app/audit.h"
#include "app/commands.h"
#include "common/url.h"
#include "ledger/sqlite_ledger.h"
#include "output/manifest.h"
#include "output/verifier.h"
#include "queue/sqlite_queue.h"
#include "runs/sqlite_run_store.h"
#include "store/object_store.h"
#include "telemetry/log.h"
#include "workflow/pipeline.h"
#include "workflow/registry.h"
#include "workflow/steps.h"

namespace cbpipe {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

void PrintError(std::string_view command, std::string_view message) {
  std::fprintf(stderr, "cbpipe %.*s: %.*s\n", static_cast<int>(command.size()),
               command.data(), static_cast<int>(message.size()),
               message.data());
}

void PrintJson(const json& j) { std::printf("%s\n", DumpJson(j, 2).c_str()); }

// "2026-11-25 23:00:01" (UTC), or "-" for 0.
std::string FormatMs(int64_t ms) {
  if (ms <= 0) return "-";
  const std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

// At most `n` characters, on one line.
std::string Clip(std::string s, size_t n) {
  for (char& c : s) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  if (s.size() > n) s = s.substr(0, n - 3) + "...";
  return s;
}

// The [aws] table for the adapters the config's URLs name ({}: the
// region and credentials from the environment, as for the AWS CLI).
AwsOptions AwsOf(const Config& config) {
  return config.aws.value_or(AwsOptions{});
}

// The state database, which only the service creates: a missing one means
// the service never ran with this config (or the config is the wrong one).
StatusOr<std::string> ExistingStateDb(const Config& config) {
  const std::string path = ResolveServicePaths(config).state_db;
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    return NotFoundError("no state database at " + path +
                         ": has `cbpipe serve` run with this config?");
  }
  return path;
}

// The service's run store: [service] run_store (dynamodb://TABLE, ...)
// through the registry, else the state database's.
StatusOr<std::unique_ptr<RunStore>> OpenRuns(const Config& config) {
  if (!config.service.run_store.empty()) {
    return OpenRunStore(config.service.run_store, Env::Default(),
                        AwsOf(config));
  }
  CBPIPE_ASSIGN_OR_RETURN(std::string path, ExistingStateDb(config));
  return SqliteRunStore::Open(path, Env::Default());
}

// The queue of inputs and its dead letters: [service] queue (sqs://NAME,
// a queue URL: dead letters are in the queue's RedrivePolicy target)
// through the registry, else the state database's `inputs` queue.
StatusOr<std::unique_ptr<Queue>> OpenInputs(const Config& config) {
  QueueOptions options;
  options.max_receive_count = config.service.max_receive_count;
  if (!config.service.queue.empty())
    return OpenQueue(config.service.queue, options, AwsOf(config));
  CBPIPE_ASSIGN_OR_RETURN(std::string path, ExistingStateDb(config));
  CBPIPE_ASSIGN_OR_RETURN(std::unique_ptr<SqliteQueue> queue,
                          SqliteQueue::Open(path, kInputsQueue, options));
  return std::unique_ptr<Queue>(std::move(queue));
}

// The queue's name for messages: "inputs", or the one its URL names
// (sqs://NAME, https://sqs.REGION.amazonaws.com/ACCOUNT/NAME,
// sqlite:///db?queue=NAME).
std::string InputsQueueName(const Config& config) {
  const std::string& url = config.service.queue;
  if (url.empty()) return std::string(kInputsQueue);
  StatusOr<AdapterUrl> u = ParseAdapterUrl(url, "queue");
  if (!u.ok()) return url;
  if (u->scheme == "sqs") return u->host;
  if (auto q = u->params.find("queue"); q != u->params.end()) return q->second;
  const size_t slash = u->path.rfind('/');
  return slash == std::string::npos ? u->path : u->path.substr(slash + 1);
}

// The delivery ledger: [service] ledger through the registry, else
// <work_dir>/ledger.db.
StatusOr<std::unique_ptr<DeliveryLedger>> OpenLedger(const Config& config) {
  if (!config.service.ledger.empty()) {
    return OpenDeliveryLedger(config.service.ledger, Env::Default(),
                              AwsOf(config));
  }
  return SqliteDeliveryLedger::Open(ResolveServicePaths(config).ledger_db,
                                    Env::Default());
}

// An object store of the service: `url` ([service] work_store or
// object_store) through the registry, else the folder `folder`.
StatusOr<std::unique_ptr<ObjectStore>> OpenStore(const Config& config,
                                                 const std::string& url,
                                                 const std::string& folder) {
  if (!url.empty()) return OpenObjectStore(url, AwsOf(config));
  return std::unique_ptr<ObjectStore>(new LocalFolderStore(folder));
}

// Exit code for a failure to open or find something: what the config
// names is not there (no state database, SQS queue or DynamoDB table; a
// queue without a dead-letter queue) or the arguments are wrong: 2.
int ExitFor(const Status& st) {
  return st.code() == StatusCode::kNotFound ||
                 st.code() == StatusCode::kInvalidArgument ||
                 st.code() == StatusCode::kFailedPrecondition
             ? kExitUsage
             : kExitRejected;
}

// Writes the audit line of an operator command (who: the local user) to
// the service's log file ([service] log_file) when it has one, so that the
// service's log holds every action whoever made it; else, or when that file
// cannot be opened, to standard error. A missing log file is not created:
// made by root here, the service could not open it afterwards.
void Audit(const Config& config, AuditRecord a, std::string outcome,
           std::string error = "") {
  a.via = "cli";
  a.actor = LocalActor(&a.origin);
  a.outcome = std::move(outcome);
  a.error = std::move(error);
  const std::string& path = config.service.log_file;
  std::error_code ec;
  if (!path.empty() && path != "-" && fs::exists(path, ec)) {
    StatusOr<std::shared_ptr<LogSink>> sink = OpenFileLogSink(path);
    if (sink.ok()) {
      Logger logger(*sink);
      WriteAudit(a, logger);
      return;
    }
    PrintError("audit",
               "cannot append to the service log: " + sink.status().message() +
                   "; writing the audit line here");
  }
  WriteAudit(a);
}

// The run a dead letter's message is for ("" when it names none).
std::string RunIdOf(const DeadLetter& d) {
  const json j = DeadLetterJson(d);
  const std::string run =
      j["run_id"].is_string() ? j["run_id"].get<std::string>() : std::string();
  return IsValidRunId(run) ? run : "";
}

void PrintRunHuman(const json& r) {
  std::printf("run %s  %s\n", r.value("run_id", "").c_str(),
              r.value("state", "").c_str());
  std::printf("  input:   %s (%s)\n", r.value("input_name", "").c_str(),
              r.value("input_key", "").c_str());
  if (!r.value("trace_id", "").empty())
    std::printf("  trace:   %s\n", r.value("trace_id", "").c_str());
  std::printf("  created: %s   updated: %s\n",
              FormatMs(r.value("created_ms", int64_t{0})).c_str(),
              FormatMs(r.value("updated_ms", int64_t{0})).c_str());
  if (!r.value("current_step", "").empty())
    std::printf("  next:    %s\n", r.value("current_step", "").c_str());
  std::printf("steps:\n");
  for (const json& s : r["steps"]) {
    const int64_t ms =
        s.value("finished_ms", int64_t{0}) - s.value("started_ms", int64_t{0});
    std::printf("  %-15s %-10s %d attempt(s) %8lld ms\n",
                s.value("name", "").c_str(), s.value("state", "").c_str(),
                s.value("attempts", 0), static_cast<long long>(ms));
  }
  if (!r["files"].empty()) {
    std::printf("files:\n");
    for (const json& f : r["files"]) {
      std::printf("  %-12s %-44s %7lld records %9lld bytes  %s\n",
                  f.value("destination", "").c_str(),
                  f.value("name", "").c_str(),
                  static_cast<long long>(f.value("records", int64_t{0})),
                  static_cast<long long>(f.value("bytes", int64_t{0})),
                  f.value("batch_id", "").c_str());
    }
  }
  if (!r["deliveries"].empty()) {
    std::printf("deliveries:\n");
    for (const json& b : r["deliveries"]) {
      std::printf("  batch %s\n", b.value("id", "").c_str());
      if (!b.contains("files") || !b["files"].is_array()) continue;
      for (const json& f : b["files"]) {
        std::printf("    %-17s %-12s %s\n", f.value("status", "").c_str(),
                    f.value("destination", "").c_str(),
                    f.value("name", "").c_str());
        if (f.contains("error"))
          std::printf("      %s\n", f.value("error", "").c_str());
      }
    }
  }
  if (r["rejects_file"].is_string())
    std::printf("rejects: %s\n", r["rejects_file"].get<std::string>().c_str());
  if (!r["errors"].empty()) {
    std::printf("errors:\n");
    for (const json& e : r["errors"]) {
      std::printf("  %s: %s\n", e.value("step", "").c_str(),
                  e.value("message", "").c_str());
    }
  }
}

void PrintDeadLetterHuman(const DeadLetter& d) {
  const Message& m = d.message;
  std::printf("dead letter %s\n", m.id.c_str());
  std::printf("  reason:   %s\n", d.reason.c_str());
  std::printf("  moved:    %s\n", FormatMs(d.moved_at_ms).c_str());
  std::printf("  sent:     %s\n", FormatMs(m.sent_at_ms).c_str());
  std::printf("  receives: %d (first %s)\n", m.receive_count,
              FormatMs(m.first_received_at_ms).c_str());
  for (const auto& [k, v] : m.attributes)
    std::printf("  attribute %s = %s\n", k.c_str(), v.c_str());
  std::printf("  body:     %s\n", DumpJson(json(m.body)).c_str());
}

// What a run's scan step (or, for runs of older versions, its generate
// step) wrote: the run header and its batches as {id, manifest} with the
// manifest as a key under the work dir.
StatusOr<json> RunScanned(const Config& config, const RunRecord& run) {
  const StepRecord* scanned = nullptr;
  for (const StepRecord& s : run.steps) {
    if ((s.name == "scan" || s.name == "generate") && s.state == "succeeded")
      scanned = &s;
  }
  if (!scanned) {
    return FailedPreconditionError("run " + run.run_id +
                                   " has no generated files (state " +
                                   run.state + ")");
  }
  const json out = json::parse(scanned->output_json, nullptr, false);
  if (!out.is_object() || !out.contains("batches") ||
      !out["batches"].is_array()) {
    return DataLossError("run " + run.run_id + ": the " + scanned->name +
                         " step's output lists no batches");
  }
  json result = {{"run_id", run.run_id},
                 {"trace_id", run.trace_id},
                 {"now_ms", run.created_ms},
                 {"batches", json::array()}};
  for (const json& b : out["batches"]) {
    const std::string id =
        b.is_object() && b.contains("id") && b["id"].is_string()
            ? b["id"].get<std::string>()
            : std::string();
    std::string manifest =
        b.is_object() && b.contains("manifest") && b["manifest"].is_string()
            ? b["manifest"].get<std::string>()
            : std::string();
    if (!manifest.empty() && manifest[0] == '/') {
      // Older runs kept the manifest's path.
      manifest = fs::path(manifest)
                     .lexically_relative(config.work_dir)
                     .generic_string();
    }
    if (id.empty() || !ValidateObjectKey(manifest).ok()) {
      return DataLossError("run " + run.run_id + ": batch \"" + id +
                           "\" has no manifest under the work dir");
    }
    result["batches"].push_back({{"id", id}, {"manifest", manifest}});
  }
  return result;
}

// A fresh random suffix for temporary names.
std::string RandomHex() {
  std::random_device rd;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%08x%08x", rd(), rd());
  return buf;
}

Status ErrnoStatus(const std::string& what) {
  const int e = errno;
  const std::string m = what + ": " + std::strerror(e);
  if (e == ENOENT) return NotFoundError(m);
  if (e == EACCES || e == EPERM) return PermissionDeniedError(m);
  return UnavailableError(m);
}

// Copies everything from `in` to `out`.
Status CopyFd(int in, int out, const std::string& src) {
  std::vector<char> buf(1 << 16);
  for (;;) {
    const ssize_t n = ::read(in, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("read " + src);
    }
    if (n == 0) return OkStatus();
    for (ssize_t done = 0; done < n;) {
      const ssize_t w = ::write(out, buf.data() + done, n - done);
      if (w < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus("write to the inbox");
      }
      done += w;
    }
  }
}

// Renames `from` to `to` unless `to` exists (kAlreadyExists then).
Status RenameNoReplace(const std::string& from, const std::string& to) {
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(),
                  RENAME_NOREPLACE) == 0)
    return OkStatus();
  if (errno == EEXIST) return AlreadyExistsError(to);
  if (errno != EINVAL && errno != ENOSYS) return ErrnoStatus("rename to " + to);
  // A file system without RENAME_NOREPLACE: link() never replaces either.
  if (::link(from.c_str(), to.c_str()) != 0) {
    if (errno == EEXIST) return AlreadyExistsError(to);
    return ErrnoStatus("link " + to);
  }
  ::unlink(from.c_str());
  return OkStatus();
}

// "a.csv.gz" with n = 2 -> "a~2.csv.gz".
// Appended piece by piece: GCC 12 at -O3 reports a false -Wrestrict in the
// inlined `"~" + std::to_string(n)` (GCC bug 105651).
std::string Candidate(const std::string& name, int n) {
  if (n == 0) return name;
  const size_t dot = std::min(name.find('.', 1), name.size());
  std::string out;
  out.reserve(name.size() + 12);
  out.append(name, 0, dot);
  out.push_back('~');
  out.append(std::to_string(n));
  out.append(name, dot, std::string::npos);
  return out;
}

// Submits one file; returns where it went.
StatusOr<std::string> SubmitOne(const std::string& inbox,
                                const std::string& src) {
  const std::string name = fs::path(src).filename().string();
  if (name.empty() || name == "." || name == "..")
    return InvalidArgumentError(src + ": not a file name");
  if (name.front() == '.') {
    return InvalidArgumentError(
        src +
        ": names starting with '.' are ignored by the watcher; "
        "rename the file first");
  }
  // O_NONBLOCK: opening a FIFO must not wait for a writer.
  const int in = ::open(src.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (in < 0) return ErrnoStatus("open " + src);
  struct stat st {};
  if (::fstat(in, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(in);
    return InvalidArgumentError(src + ": not a regular file");
  }
  const std::string temp = inbox + "/." + name + "." + RandomHex() + ".part";
  const int out =
      ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (out < 0) {
    Status s = ErrnoStatus("create " + temp);
    ::close(in);
    return s;
  }
  Status copied = CopyFd(in, out, src);
  ::close(in);
  if (copied.ok() && ::fsync(out) != 0) copied = ErrnoStatus("fsync " + temp);
  if (::close(out) != 0 && copied.ok()) copied = ErrnoStatus("close " + temp);
  std::string placed;
  for (int n = 0; copied.ok() && placed.empty(); ++n) {
    if (n > 999) {
      copied = AlreadyExistsError(inbox + "/" + name +
                                  " and 999 alternatives exist already");
      break;
    }
    const std::string target = inbox + "/" + Candidate(name, n);
    Status renamed = RenameNoReplace(temp, target);
    if (renamed.ok()) {
      placed = target;
    } else if (renamed.code() != StatusCode::kAlreadyExists) {
      copied = renamed;
    }
  }
  if (!copied.ok()) {
    ::unlink(temp.c_str());
    return copied;
  }
  // The rename is durable once the folder is.
  const int dir = ::open(inbox.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    const int rc = ::fsync(dir);
    ::close(dir);
    if (rc != 0) return ErrnoStatus("fsync " + inbox);
  }
  return placed;
}

}  // namespace

int RunsList(const Config& config, const std::string& state, int limit,
             bool as_json) {
  constexpr std::string_view kCmd = "runs list";
  if (!state.empty() && !IsKnownRunState(state)) {
    PrintError(kCmd,
               "--state must be queued, running, succeeded, failed or "
               "rejected");
    return kExitUsage;
  }
  if (limit < 1 || limit > kAdminMaxPageSize) {
    PrintError(kCmd, "--limit must be 1-" + std::to_string(kAdminMaxPageSize));
    return kExitUsage;
  }
  StatusOr<std::unique_ptr<RunStore>> store = OpenRuns(config);
  if (!store.ok()) {
    PrintError(kCmd, store.status().message());
    return ExitFor(store.status());
  }
  StatusOr<std::vector<RunRecord>> runs = (*store)->List({.state = state}, limit, 0);
  StatusOr<int64_t> total = (*store)->Count({.state = state});
  if (!runs.ok() || !total.ok()) {
    PrintError(kCmd, (runs.ok() ? total.status() : runs.status()).ToString());
    return kExitRejected;
  }
  if (as_json) {
    json items = json::array();
    for (const RunRecord& r : *runs) items.push_back(RunSummaryJson(r));
    PrintJson({{"runs", items}, {"total", *total}});
    return kExitOk;
  }
  std::printf("%-16s  %-9s  %-14s  %-19s  %s\n", "RUN", "STATE", "NEXT STEP",
              "UPDATED (UTC)", "INPUT");
  for (const RunRecord& r : *runs) {
    std::printf("%-16s  %-9s  %-14s  %-19s  %s\n", r.run_id.c_str(),
                r.state.c_str(),
                r.current_step.empty() ? "-" : r.current_step.c_str(),
                FormatMs(r.updated_ms).c_str(), Clip(r.input_name, 60).c_str());
  }
  std::printf("(%zu of %lld run(s)%s)\n", runs->size(),
              static_cast<long long>(*total),
              state.empty() ? "" : (" in state " + state).c_str());
  return kExitOk;
}

int RunsShow(const Config& config, const std::string& id, bool as_json) {
  constexpr std::string_view kCmd = "runs show";
  if (!IsValidRunId(id)) {
    PrintError(kCmd, "a run id is 16 lower-case hex digits");
    return kExitUsage;
  }
  StatusOr<std::unique_ptr<RunStore>> store = OpenRuns(config);
  if (!store.ok()) {
    PrintError(kCmd, store.status().message());
    return ExitFor(store.status());
  }
  StatusOr<RunRecord> run = (*store)->Get(id);
  if (!run.ok()) {
    PrintError(kCmd, run.status().code() == StatusCode::kNotFound
                         ? "no run " + id
                         : run.status().ToString());
    return ExitFor(run.status());
  }
  const json detail = RunDetailJson(*run);
  if (as_json) {
    PrintJson(detail);
  } else {
    PrintRunHuman(detail);
  }
  return kExitOk;
}

int DlqList(const Config& config, bool as_json) {
  constexpr std::string_view kCmd = "dlq list";
  StatusOr<std::unique_ptr<Queue>> queue = OpenInputs(config);
  if (!queue.ok()) {
    PrintError(kCmd, queue.status().message());
    return ExitFor(queue.status());
  }
  std::vector<DeadLetter> all;
  std::string after;
  for (;;) {
    StatusOr<std::vector<DeadLetter>> page =
        (*queue)->ListDeadLetters(1000, after);
    if (!page.ok()) {
      PrintError(kCmd, page.status().ToString());
      return ExitFor(page.status());
    }
    if (page->empty()) break;
    after = page->back().message.id;
    for (DeadLetter& d : *page) all.push_back(std::move(d));
    if (page->size() < 1000) break;
  }
  if (as_json) {
    json items = json::array();
    for (const DeadLetter& d : all) items.push_back(DeadLetterJson(d));
    PrintJson({{"dead_letters", items}, {"total", all.size()}});
    return kExitOk;
  }
  std::printf("%-36s  %-16s  %-8s  %-19s  %s\n", "ID", "RUN", "RECEIVES",
              "MOVED (UTC)", "REASON");
  for (const DeadLetter& d : all) {
    const json j = DeadLetterJson(d);
    const std::string run =
        j["run_id"].is_string() ? j["run_id"].get<std::string>() : "-";
    std::printf("%-36s  %-16s  %8d  %-19s  %s\n", d.message.id.c_str(),
                Clip(run, 16).c_str(), d.message.receive_count,
                FormatMs(d.moved_at_ms).c_str(), Clip(d.reason, 60).c_str());
  }
  std::printf("(%zu dead letter(s))\n", all.size());
  return kExitOk;
}

int DlqShow(const Config& config, const std::string& id, bool as_json) {
  constexpr std::string_view kCmd = "dlq show";
  if (!IsValidDeadLetterId(id)) {
    PrintError(kCmd, "malformed dead-letter id");
    return kExitUsage;
  }
  StatusOr<std::unique_ptr<Queue>> queue = OpenInputs(config);
  if (!queue.ok()) {
    PrintError(kCmd, queue.status().message());
    return ExitFor(queue.status());
  }
  StatusOr<DeadLetter> d = (*queue)->GetDeadLetter(id);
  if (!d.ok()) {
    PrintError(kCmd, d.status().code() == StatusCode::kNotFound
                         ? "no dead letter " + id
                         : d.status().ToString());
    return ExitFor(d.status());
  }
  if (as_json) {
    PrintJson(DeadLetterJson(*d));
  } else {
    PrintDeadLetterHuman(*d);
  }
  return kExitOk;
}

int DlqRedrive(const Config& config, const std::string& id, bool all) {
  constexpr std::string_view kCmd = "dlq redrive";
  if (all == !id.empty()) {
    PrintError(kCmd, "give either a dead-letter id or --all");
    return kExitUsage;
  }
  if (!all && !IsValidDeadLetterId(id)) {
    PrintError(kCmd, "malformed dead-letter id");
    return kExitUsage;
  }
  AuditRecord audit;
  audit.action = "redrive";
  audit.dead_letter_id = all ? "*" : id;
  StatusOr<std::unique_ptr<Queue>> queue = OpenInputs(config);
  if (!queue.ok()) {
    PrintError(kCmd, queue.status().message());
    Audit(config, audit, "refused", queue.status().message());
    return ExitFor(queue.status());
  }
  if (all) {
    StatusOr<int64_t> n = (*queue)->RedriveAll();
    if (!n.ok()) {
      PrintError(kCmd, n.status().ToString());
      Audit(config, audit, "failed", n.status().ToString());
      return ExitFor(n.status());
    }
    audit.count = *n;
    Audit(config, audit, "ok");
    std::printf("redrove %lld dead letter(s) to the %s queue\n",
                static_cast<long long>(*n), InputsQueueName(config).c_str());
    return kExitOk;
  }
  StatusOr<DeadLetter> dead_letter = (*queue)->GetDeadLetter(id);
  if (dead_letter.ok()) audit.run_id = RunIdOf(*dead_letter);
  Status st = dead_letter.ok() ? (*queue)->Redrive(id) : dead_letter.status();
  if (!st.ok()) {
    PrintError(kCmd, st.code() == StatusCode::kNotFound ? "no dead letter " + id
                                                        : st.ToString());
    Audit(config, audit,
          st.code() == StatusCode::kNotFound ? "not_found" : "failed",
          st.ToString());
    return ExitFor(st);
  }
  audit.count = 1;
  Audit(config, audit, "ok");
  std::printf("redrove %s to the %s queue\n", id.c_str(),
              InputsQueueName(config).c_str());
  return kExitOk;
}

int DlqPurge(const Config& config, bool yes) {
  constexpr std::string_view kCmd = "dlq purge";
  if (!yes) {
    PrintError(kCmd,
               "this deletes every dead letter for good; run again with "
               "--yes to confirm");
    return kExitUsage;
  }
  AuditRecord audit;
  audit.action = "purge";
  audit.dead_letter_id = "*";
  StatusOr<std::unique_ptr<Queue>> queue = OpenInputs(config);
  if (!queue.ok()) {
    PrintError(kCmd, queue.status().message());
    Audit(config, audit, "refused", queue.status().message());
    return ExitFor(queue.status());
  }
  StatusOr<int64_t> n = (*queue)->PurgeDeadLetters();
  if (!n.ok()) {
    PrintError(kCmd, n.status().ToString());
    Audit(config, audit, "failed", n.status().ToString());
    return ExitFor(n.status());
  }
  audit.count = *n;
  Audit(config, audit, "ok");
  std::printf("purged %lld dead letter(s)\n", static_cast<long long>(*n));
  return kExitOk;
}

int Replay(const Config& config, const std::string& run_id, bool as_json,
           const std::string& destination) {
  constexpr std::string_view kCmd = "replay";
  if (!IsValidRunId(run_id)) {
    PrintError(kCmd, "a run id is 16 lower-case hex digits");
    return kExitUsage;
  }
  if (!destination.empty()) {
    bool configured = false;
    for (const DestinationConfig& d : config.destinations)
      configured = configured || d.name == destination;
    if (!configured) {
      PrintError(kCmd, "no destination named " + destination);
      return kExitUsage;
    }
  }
  if (Status aws = CheckAwsSecretsConfigured(config); !aws.ok()) {
    PrintError(kCmd, aws.message());
    return kExitUsage;
  }
  AuditRecord audit;
  audit.action = "replay";
  audit.run_id = run_id;
  audit.destination = destination;
  // Prints `message` and writes the audit line of a replay that did not
  // start.
  auto refuse = [&](std::string_view outcome, const std::string& message) {
    PrintError(kCmd, message);
    Audit(config, audit, std::string(outcome), message);
  };
  StatusOr<std::unique_ptr<RunStore>> store = OpenRuns(config);
  if (!store.ok()) {
    refuse("refused", store.status().message());
    return ExitFor(store.status());
  }
  StatusOr<RunRecord> run = (*store)->Get(run_id);
  if (!run.ok()) {
    const bool missing = run.status().code() == StatusCode::kNotFound;
    refuse(missing ? "not_found" : "failed",
           missing ? "no run " + run_id : run.status().ToString());
    return ExitFor(run.status());
  }
  if (run->state == "queued" || run->state == "running") {
    refuse("refused", "run " + run_id + " is " + run->state +
                          ": wait until it has finished");
    return kExitUsage;
  }
  StatusOr<json> scanned = RunScanned(config, *run);
  if (!scanned.ok()) {
    refuse("refused", scanned.status().message());
    return scanned.status().code() == StatusCode::kFailedPrecondition
               ? kExitUsage
               : kExitRejected;
  }
  StatusOr<std::unique_ptr<DeliveryLedger>> ledger = OpenLedger(config);
  if (!ledger.ok()) {
    refuse("failed", "ledger: " + ledger.status().message());
    return kExitRejected;
  }
  // The service's stores: its generated files (work_store) and inputs
  // (object_store), in folders or in S3.
  StatusOr<std::unique_ptr<ObjectStore>> work =
      OpenStore(config, config.service.work_store, config.work_dir);
  StatusOr<std::unique_ptr<ObjectStore>> inputs =
      OpenStore(config, config.service.object_store,
                ResolveServicePaths(config).objects);
  if (!work.ok() || !inputs.ok()) {
    refuse("failed", (work.ok() ? "object store: " + inputs.status().message()
                                : "work store: " + work.status().message()));
    return kExitRejected;
  }
  // The destinations' credentials, aws-sm: included, as serve reads them.
  const std::unique_ptr<SecretStore> secrets = OpenCommandSecrets(config);
  // A run of the workflow's delivery part: the same steps as the service.
  Ports ports;
  ports.config = &config;
  ports.work = work->get();
  ports.inputs = inputs->get();
  ports.ledger = ledger->get();
  ports.env = Env::Default();
  ports.secrets = secrets.get();
  const StepRunner step = StepsOver(ports);
  // Every file must still be what was generated before anything is sent.
  std::vector<std::pair<std::string, json>> deliveries;
  for (const json& b : (*scanned)["batches"]) {
    json verify = {{"run_id", (*scanned)["run_id"]},
                   {"trace_id", (*scanned)["trace_id"]},
                   {"now_ms", (*scanned)["now_ms"]},
                   {"batch", b}};
    StatusOr<json> verified = step("verify", verify);
    if (!verified.ok()) {
      refuse("refused", "refusing to replay: batch " +
                            b["id"].get<std::string>() +
                            " no longer matches its manifest: " +
                            verified.status().message());
      return kExitRejected;
    }
    json items = json::array();
    for (json item : (*verified)["deliveries"]) {
      if (!destination.empty() && item["destination"] != destination) continue;
      item["replay"] = true;
      items.push_back(std::move(item));
    }
    if (!items.empty())
      deliveries.emplace_back(b["id"].get<std::string>(), std::move(items));
  }
  json out = {{"run_id", run_id}, {"batches", json::array()}};
  int failed = 0, sent = 0;
  for (const auto& [id, items] : deliveries) {
    json jf = json::array();
    for (const json& f :
         RunDeliveries(step, items, Env::Default(), /*stop=*/nullptr)) {
      json item = {{"destination", f["destination"]},
                   {"name", f["name"]},
                   {"records", f["records"]},
                   {"bytes", f["bytes"]},
                   {"status", f["status"]}};
      if (f["status"] == "failed") {
        ++failed;
        item["error"] = f.contains("error") ? f["error"] : json("");
      } else {
        ++sent;
      }
      jf.push_back(std::move(item));
    }
    out["batches"].push_back({{"id", id}, {"files", std::move(jf)}});
  }
  out["ok"] = failed == 0;
  audit.count = sent;
  if (sent + failed == 0) {
    Audit(config, audit, "refused",
          "no files to replay" +
              (destination.empty() ? std::string() : " for " + destination));
  } else {
    Audit(config, audit, failed == 0 ? "ok" : "failed",
          failed == 0 ? "" : std::to_string(failed) + " file(s) not delivered");
  }
  if (as_json) {
    PrintJson(out);
  } else {
    std::printf("replay of run %s (%s)\n", run_id.c_str(),
                run->input_name.c_str());
    for (const json& b : out["batches"]) {
      std::printf("  batch %s\n", b.value("id", "").c_str());
      for (const json& f : b["files"]) {
        std::printf("    %-17s %-12s %s\n", f.value("status", "").c_str(),
                    f.value("destination", "").c_str(),
                    f.value("name", "").c_str());
        if (f.contains("error"))
          std::printf("      %s\n", f.value("error", "").c_str());
      }
    }
    std::printf("%d file(s) replayed, %d failed\n", sent, failed);
  }
  if (sent + failed == 0) {
    PrintError(kCmd, "no files to replay" + (destination.empty()
                                                 ? std::string()
                                                 : " for " + destination));
    return kExitUsage;
  }
  return failed == 0 ? kExitOk : kExitRejected;
}

int Submit(const Config& config, const std::vector<std::string>& files) {
  constexpr std::string_view kCmd = "submit";
  if (files.empty()) {
    PrintError(kCmd, "name at least one file");
    return kExitUsage;
  }
  if (!config.service.events_queue.empty()) {
    // No inbox is watched: the bucket's events are the inputs.
    PrintError(kCmd, "this service takes its inputs from S3 events (" +
                         RedactUrl(config.service.events_queue) +
                         "), not from an inbox: put the files into " +
                         (config.service.object_store.empty()
                              ? std::string("its bucket")
                              : RedactUrl(config.service.object_store)) +
                         " (aws s3 cp FILE s3://...)");
    return kExitUsage;
  }
  const std::string inbox = ResolveServicePaths(config).inbox;
  std::error_code ec;
  if (!fs::is_directory(inbox, ec)) {
    PrintError(kCmd, "inbox " + inbox +
                         " is not a folder: is `cbpipe serve` running with "
                         "this config?");
    return kExitUsage;
  }
  int failed = 0;
  for (const std::string& f : files) {
    StatusOr<std::string> placed = SubmitOne(inbox, f);
    if (placed.ok()) {
      std::printf("%s -> %s\n", f.c_str(), placed->c_str());
    } else {
      ++failed;
      PrintError(kCmd, placed.status().message());
    }
  }
  return failed == 0 ? kExitOk : kExitRejected;
}

}  // namespace cbpipe
