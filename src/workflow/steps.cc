#include "workflow/steps.h"

#include <algorithm>
#include <chrono>
#include <exception>
#include <filesystem>
#include <map>
#include <optional>
#include <thread>
#include <vector>

#include "common/crash_point.h"
#include "deliver/local_transport.h"
#include "domain/pan.h"
#include "output/batch_planner.h"
#include "output/manifest.h"
#include "output/verifier.h"
#include "telemetry/metrics.h"
#include "workflow/pipeline.h"

namespace cbpipe {
namespace {

using json = nlohmann::json;

// Checked access to a step's input: a missing or mistyped key is an error
// naming it, never an exception.
Status BadKey(std::string_view key, std::string_view want) {
  return InvalidArgumentError("step input: \"" + std::string(key) +
                              "\" must be " + std::string(want));
}

StatusOr<const json*> Member(const json& in, std::string_view key) {
  if (!in.is_object()) return InvalidArgumentError("step input: not an object");
  auto it = in.find(key);
  if (it == in.end()) {
    return InvalidArgumentError("step input: \"" + std::string(key) +
                                "\" is missing");
  }
  return &*it;
}

StatusOr<std::string> String(const json& in, std::string_view key) {
  CBPIPE_ASSIGN_OR_RETURN(const json* v, Member(in, key));
  if (!v->is_string()) return BadKey(key, "a string");
  return v->get<std::string>();
}

StatusOr<int64_t> Int(const json& in, std::string_view key) {
  CBPIPE_ASSIGN_OR_RETURN(const json* v, Member(in, key));
  if (!v->is_number_integer()) return BadKey(key, "an integer");
  return v->get<int64_t>();
}

StatusOr<const json*> Object(const json& in, std::string_view key) {
  CBPIPE_ASSIGN_OR_RETURN(const json* v, Member(in, key));
  if (!v->is_object()) return BadKey(key, "an object");
  return v;
}

StatusOr<const json*> Array(const json& in, std::string_view key) {
  CBPIPE_ASSIGN_OR_RETURN(const json* v, Member(in, key));
  if (!v->is_array()) return BadKey(key, "an array");
  return v;
}

// An optional key: `fallback` when absent, an error when mistyped.
StatusOr<bool> OptionalBool(const json& in, std::string_view key,
                            bool fallback) {
  if (!in.is_object() || !in.contains(key)) return fallback;
  const json& v = in[std::string(key)];
  if (!v.is_boolean()) return BadKey(key, "true or false");
  return v.get<bool>();
}

StatusOr<std::map<std::string, int64_t>> Totals(const json& in,
                                                std::string_view key) {
  CBPIPE_ASSIGN_OR_RETURN(const json* v, Object(in, key));
  std::map<std::string, int64_t> out;
  for (auto it = v->begin(); it != v->end(); ++it) {
    if (!it.value().is_number_integer())
      return BadKey(std::string(key) + "." + it.key(), "an integer");
    out[it.key()] = it.value().get<int64_t>();
  }
  return out;
}

json TotalsJson(const std::map<std::string, int64_t>& totals) {
  json j = json::object();
  for (const auto& [k, v] : totals) j[k] = v;
  return j;
}

// The run header every step input carries.
struct Header {
  std::string run_id;
  std::string trace_id;
  int64_t now_ms = 0;
};

// [A-Za-z0-9._-]: what a run id, and one segment of a key, may hold.
bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

bool IsSafeRunId(const std::string& id) {
  if (id.empty() || id.size() > 200 || id == "." || id == "..") return false;
  for (char c : id) {
    if (!IsNameChar(c)) return false;
  }
  return true;
}

StatusOr<Header> ReadHeader(const json& in) {
  Header h;
  CBPIPE_ASSIGN_OR_RETURN(h.run_id, String(in, "run_id"));
  if (!IsSafeRunId(h.run_id)) return BadKey("run_id", "1-200 of [A-Za-z0-9._-]");
  CBPIPE_ASSIGN_OR_RETURN(h.trace_id, String(in, "trace_id"));
  CBPIPE_ASSIGN_OR_RETURN(h.now_ms, Int(in, "now_ms"));
  return h;
}

json HeaderJson(const Header& h) {
  return {{"run_id", h.run_id}, {"trace_id", h.trace_id}, {"now_ms", h.now_ms}};
}

int64_t FloorSeconds(int64_t ms) {
  return ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
}

// The key of a file written under `folder` (the work dir, or the scratch
// folder standing in for it).
StatusOr<std::string> WorkKey(const std::string& folder,
                              const std::string& path) {
  const std::string rel = std::filesystem::path(path)
                              .lexically_relative(folder)
                              .generic_string();
  CBPIPE_RETURN_IF_ERROR(ValidateObjectKey(rel));
  return rel;
}

// Whether the work store is the work folder itself: steps then write and
// read its files in place (no copy, as `cbpipe run` always has); otherwise
// they write into a ScratchFolder and Put, and read with Get or LocalPath.
bool WorkIsLocal(const Ports& p) {
  return IsLocalFolder(*p.work, p.config->work_dir);
}

// The folder part of a key ("batches/b1" of "batches/b1/manifest.json").
std::string KeyFolder(const std::string& key) {
  const size_t slash = key.rfind('/');
  return slash == std::string::npos ? "" : key.substr(0, slash);
}

// A file name as one segment of a key: what a key cannot hold becomes '_'.
std::string KeySegment(const std::string& name) {
  std::string out = name;
  for (char& c : out) {
    if (!IsNameChar(c)) c = '_';
  }
  if (out.empty() || out.front() == '.') out.insert(0, "_");
  return out;
}

// Puts a quarantine folder QuarantineInput made under `prefix`: the input's
// copy, then its reason.txt (which says the quarantine is whole).
Status PutQuarantine(const Ports& p, const std::string& dir,
                     const std::string& prefix) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.is_regular_file()) names.push_back(entry.path().filename());
  }
  if (ec) return UnavailableError("cannot list " + dir + ": " + ec.message());
  std::sort(names.begin(), names.end(), [](const auto& a, const auto& b) {
    return std::make_pair(a == "reason.txt", a) <
           std::make_pair(b == "reason.txt", b);
  });
  for (const std::string& name : names) {
    CBPIPE_RETURN_IF_ERROR(
        p.work->PutFile(prefix + "/" + KeySegment(name), dir + "/" + name));
  }
  return OkStatus();
}

// Puts the rejects a scan wrote into `scratch` (when it wrote any: also
// those of an input that failed, as in the work folder) under their key.
Status PutRejects(const Ports& p, const std::string& scratch,
                  const std::string& rejects_path) {
  std::error_code ec;
  if (!std::filesystem::exists(rejects_path, ec)) return OkStatus();
  CBPIPE_ASSIGN_OR_RETURN(std::string key, WorkKey(scratch, rejects_path));
  return p.work->PutFile(key, rejects_path);
}

// Puts the batches a scan wrote into `scratch` into the work store under
// the same keys: each batch's files, then its manifest (a manifest is never
// there before its files). A batch's other objects (an earlier run's files
// of the same batch id) go, as the planner replaces a batch folder.
Status PutBatches(const Ports& p, const std::string& scratch,
                  const std::vector<Batch>& batches) {
  for (const Batch& b : batches) {
    std::vector<std::string> keys;
    for (const FileSummary& f : b.files) {
      CBPIPE_ASSIGN_OR_RETURN(std::string key, WorkKey(scratch, f.path));
      // The hash the manifest holds: S3 verifies the bytes it receives.
      CBPIPE_RETURN_IF_ERROR(p.work->PutFile(key, f.path, f.sha256));
      keys.push_back(std::move(key));
    }
    CBPIPE_ASSIGN_OR_RETURN(std::string manifest,
                            WorkKey(scratch, b.manifest_path));
    CBPIPE_RETURN_IF_ERROR(p.work->PutFile(manifest, b.manifest_path));
    keys.push_back(manifest);
    CBPIPE_ASSIGN_OR_RETURN(std::vector<std::string> present,
                            p.work->List(KeyFolder(manifest) + "/"));
    for (const std::string& key : present) {
      if (std::find(keys.begin(), keys.end(), key) == keys.end())
        CBPIPE_RETURN_IF_ERROR(p.work->Delete(key));
    }
  }
  return OkStatus();
}

Event MakeEvent(const Ports& p, std::string_view type, const Header& h) {
  Event e;
  e.type = std::string(type);
  e.run_id = h.run_id;
  e.trace_id = h.trace_id.empty() ? ""
                                  : "00-" + h.trace_id + "-" +
                                        h.run_id.substr(0, 16) + "-01";
  e.time_ms = p.env->NowMs();
  return e;
}

void Notify(const Ports& p, const Event& e) {
  CrashPoint("notify.event");
  if (p.notifier) p.notifier->Notify(e);
}

// A batch's manifest from {batch: {id, manifest}}, each file's path (of
// `destination` only, when not empty) a local file to read: the work
// folder's own, or a copy held by `copies` for the step.
StatusOr<Batch> LoadBatch(const Ports& p, const json& in, LocalCopies* copies,
                          const std::string& destination = "") {
  CBPIPE_ASSIGN_OR_RETURN(const json* b, Object(in, "batch"));
  CBPIPE_ASSIGN_OR_RETURN(std::string id, String(*b, "id"));
  CBPIPE_ASSIGN_OR_RETURN(std::string key, String(*b, "manifest"));
  const bool local = WorkIsLocal(p);
  StatusOr<Batch> read = NotFoundError("no object " + key);
  if (local) {
    StatusOr<std::string> path = p.work->LocalPath(key);
    read = path.ok() ? ReadManifest(*path) : StatusOr<Batch>(path.status());
  } else {
    read = ReadBatchManifest(*p.work, key);
  }
  if (read.status().code() == StatusCode::kNotFound) {
    // A manifest that is gone is lost data, not a bad request.
    return DataLossError("batch " + id + ": manifest " + key + ": " +
                         read.status().message());
  }
  CBPIPE_RETURN_IF_ERROR(read.status());
  Batch batch = *std::move(read);
  if (batch.id != id) {
    return DataLossError("manifest " + key + " is of batch " + batch.id +
                         ", not " + id);
  }
  if (local) return batch;
  // Read from the store, not from a file: nothing on disk to compare it
  // with (VerifyBatch's re-read of manifest_path).
  batch.manifest_path.clear();
  for (FileSummary& f : batch.files) {
    if (!destination.empty() && f.destination != destination) continue;
    const std::string file_key = KeyFolder(key) + "/" + f.name;
    StatusOr<std::string> path = copies->Path(file_key);
    if (path.status().code() == StatusCode::kNotFound) {
      return DataLossError("batch " + id + ": file " + file_key + ": " +
                           path.status().message());
    }
    CBPIPE_RETURN_IF_ERROR(path.status());
    f.path = *std::move(path);
  }
  return batch;
}

json RetryJson(const RetryPolicy& r) {
  return {{"interval_seconds", r.interval_seconds},
          {"backoff_rate", r.backoff_rate},
          {"max_attempts", r.max_attempts},
          {"max_delay_seconds", r.max_delay_seconds},
          {"full_jitter", r.full_jitter}};
}

// The item's RetryPolicy; the defaults for what it does not say.
RetryPolicy RetryFrom(const json& item) {
  RetryPolicy r;
  if (!item.is_object() || !item.contains("retry")) return r;
  const json& j = item["retry"];
  if (!j.is_object()) return r;
  auto number = [&j](const char* key, double fallback) {
    auto it = j.find(key);
    return it != j.end() && it->is_number() ? it->get<double>() : fallback;
  };
  r.interval_seconds = number("interval_seconds", r.interval_seconds);
  r.backoff_rate = number("backoff_rate", r.backoff_rate);
  r.max_attempts =
      static_cast<int>(number("max_attempts", r.max_attempts));
  r.max_delay_seconds = number("max_delay_seconds", r.max_delay_seconds);
  auto jitter = j.find("full_jitter");
  if (jitter != j.end() && jitter->is_boolean()) r.full_jitter = *jitter;
  return r;
}

// scan: read, validate, plan and write the batch files, their manifests
// and the rejects in one pass, against the run's clock.
StatusOr<json> Scan(const json& in, const Ports& p) {
  CBPIPE_ASSIGN_OR_RETURN(Header h, ReadHeader(in));
  CBPIPE_ASSIGN_OR_RETURN(std::string input_key, String(in, "input_key"));
  CBPIPE_RETURN_IF_ERROR(String(in, "input_name").status());
  // The input's copy (when the inputs store makes one) goes with the step.
  LocalCopies input_copy(*p.inputs);
  CBPIPE_ASSIGN_OR_RETURN(std::string path, input_copy.Path(input_key));
  CBPIPE_ASSIGN_OR_RETURN(bool by_content,
                          OptionalBool(in, "name_by_content", false));
  // A work store that is not the work folder: scan into a scratch folder
  // standing in for it, then Put what it wrote under the same keys.
  const bool local = WorkIsLocal(p);
  std::optional<ScratchFolder> scratch;
  std::optional<Config> staged;
  if (!local) {
    scratch.emplace(p.config->work_dir, "scan-" + h.run_id);
    CBPIPE_RETURN_IF_ERROR(scratch->status());
    staged = *p.config;
    staged->work_dir = scratch->dir();
  }
  const Config& config = staged ? *staged : *p.config;
  std::string input_id = h.run_id;
  std::string rejects = config.work_dir + "/runs/" + h.run_id + "/rejects.csv";
  InputScan scan;
  std::vector<Batch> batches;
  Status st;
  if (by_content) {
    input_id.clear();
    st = ScanNamedByContent(config, path, FloorSeconds(h.now_ms), &scan,
                            &input_id, &rejects, &batches);
    if (p.on_scanned) p.on_scanned({h.run_id, h.trace_id}, scan);
    if (!local) CBPIPE_RETURN_IF_ERROR(PutRejects(p, config.work_dir, rejects));
    // As `run` always did: only an input that could not be read (or is
    // over a limit) is quarantined (reject_input); other failures are the
    // run's.
    // The Cause keeps the original code ("RESOURCE_EXHAUSTED: ..."):
    // reject_input writes it into the quarantine's reason.txt as run does.
    if (!st.ok() && !st.IsTransient() && !scan.input_error.ok())
      return Status(StatusCode::kInvalidArgument,
                    MaskCardNumbersInStatus(st).ToString());
    CBPIPE_RETURN_IF_ERROR(st);
  } else {
    BatchPlanner planner(OutputOptionsOf(config),
                         {.input_id = h.run_id, .work_dir = config.work_dir});
    CBPIPE_RETURN_IF_ERROR(planner.status());
    st = ScanAndPlan(config, path, rejects, &planner, FloorSeconds(h.now_ms),
                     &scan);
    if (p.on_scanned) p.on_scanned({h.run_id, h.trace_id}, scan);
    if (!local) CBPIPE_RETURN_IF_ERROR(PutRejects(p, config.work_dir, rejects));
    if (!st.ok()) {
      // An unreadable input is permanent (the reject_input path); an I/O
      // hiccup is transient and retried.
      if (st.IsTransient()) return st;
      return Status(StatusCode::kInvalidArgument, st.message());
    }
    CBPIPE_ASSIGN_OR_RETURN(batches, planner.Finish());
  }
  if (!local) CBPIPE_RETURN_IF_ERROR(PutBatches(p, config.work_dir, batches));
  CBPIPE_ASSIGN_OR_RETURN(std::string rejects_key,
                          WorkKey(config.work_dir, rejects));
  json by_network = json::object();
  for (Network n : kAllNetworks)
    by_network[std::string(NetworkName(n))] =
        scan.by_network[static_cast<int>(n)];
  json out = in;
  out["records"] = scan.records;
  out["accepted"] = scan.accepted;
  out["rejected"] = scan.rejected;
  out["input_id"] = input_id;
  out["undeliverable"] = scan.undeliverable_total();
  out["by_network"] = by_network;
  out["rejects_key"] = rejects_key;
  // Shown to operators: the file, or where the store keeps it.
  out["rejects_file"] = local ? rejects : ObjectLocation(*p.work, rejects_key);
  out["batches"] = json::array();
  for (const Batch& b : batches) {
    json files = json::array();
    for (const FileSummary& f : b.files) {
      if (p.metrics) {
        p.metrics->Increment(kFilesGeneratedTotal, {f.destination});
        p.metrics->Increment(kBytesGeneratedTotal, {f.destination}, f.bytes);
      }
      files.push_back({{"destination", f.destination},
                       {"name", f.name},
                       {"records", f.records},
                       {"bytes", f.bytes},
                       {"sha256", f.sha256},
                       {"totals", TotalsJson(f.totals)}});
    }
    CBPIPE_ASSIGN_OR_RETURN(std::string manifest,
                            WorkKey(config.work_dir, b.manifest_path));
    out["batches"].push_back(
        {{"id", b.id}, {"manifest", manifest}, {"files", files}});
  }
  return out;
}

// verify: re-read one batch's files against its manifest; on success, one
// deliver input per destination of the batch, in the order of its files.
StatusOr<json> Verify(const json& in, const Ports& p) {
  CBPIPE_ASSIGN_OR_RETURN(Header h, ReadHeader(in));
  LocalCopies copies(*p.work);  // released when the step ends
  CBPIPE_ASSIGN_OR_RETURN(Batch batch, LoadBatch(p, in, &copies));
  CBPIPE_RETURN_IF_ERROR(VerifyBatch(batch, OutputOptionsOf(*p.config)));
  CBPIPE_ASSIGN_OR_RETURN(const json* batch_ref, Object(in, "batch"));
  CBPIPE_ASSIGN_OR_RETURN(std::string manifest, String(*batch_ref, "manifest"));
  std::vector<std::string> order;
  std::map<std::string, json> files;
  for (const FileSummary& f : batch.files) {
    if (!files.count(f.destination)) {
      order.push_back(f.destination);
      files[f.destination] = json::array();
    }
    files[f.destination].push_back({{"destination", f.destination},
                                     {"name", f.name},
                                     {"records", f.records},
                                     {"bytes", f.bytes},
                                     {"totals", TotalsJson(f.totals)}});
  }
  json deliveries = json::array();
  for (const std::string& name : order) {
    json item = HeaderJson(h);
    item["batch"] = {{"id", batch.id}, {"manifest", manifest}};
    item["destination"] = name;
    for (const DestinationConfig& d : p.config->destinations) {
      if (d.name == name) item["retry"] = RetryJson(d.retry);
    }
    item["files"] = std::move(files[name]);
    deliveries.push_back(std::move(item));
  }
  return json{{"id", batch.id},
              {"manifest", manifest},
              {"deliveries", std::move(deliveries)}};
}

// deliver: one destination's files of one batch, one attempt each, in
// order over one connection. Retrying is the orchestrator's: the files
// already delivered are found in the ledger the next time (as delivered
// when this run delivered them), and a file whose last attempt in this run
// failed permanently is not tried again while another file still fails
// transiently. The error is transient while any failed file's is.
StatusOr<json> Deliver(const json& in, const Ports& p) {
  CBPIPE_ASSIGN_OR_RETURN(Header h, ReadHeader(in));
  CBPIPE_ASSIGN_OR_RETURN(std::string name, String(in, "destination"));
  CBPIPE_ASSIGN_OR_RETURN(bool replay, OptionalBool(in, "replay", false));
  LocalCopies copies(*p.work);  // released when the step ends
  CBPIPE_ASSIGN_OR_RETURN(Batch batch, LoadBatch(p, in, &copies, name));
  const DestinationConfig* configured = nullptr;
  for (const DestinationConfig& d : p.config->destinations) {
    if (d.name == name) configured = &d;
  }
  if (!configured)
    return NotFoundError("destination " + name + " is not configured");
  // One attempt: the Retry of the workflow makes the next.
  DestinationConfig once = *configured;
  once.retry.max_attempts = 1;
  StatusOr<std::unique_ptr<Transport>> transport =
      p.transports ? p.transports->Take(once, p.secrets)
                   : MakeTransport(once, p.secrets);
  if (!transport.ok()) return transport.status();
  FileDeliverer deliverer(once, transport->get(), p.ledger, p.env,
                          p.delivery_claim_ms);
  // This run's earlier tries of each file (the ledger keeps each failed
  // attempt with its run). A file whose last one failed permanently is not
  // tried again while another file of the destination still fails
  // transiently (the Retry goes on for that one); once none does (a
  // redrive after the cause was fixed), it is tried again.
  struct Tries {
    int64_t count = 0;
    std::optional<AttemptRecord> last;
  };
  std::vector<Tries> tries;
  bool transient_pending = false;
  for (const FileSummary& f : batch.files) {
    if (f.destination != name) continue;
    Tries& t = tries.emplace_back();
    CBPIPE_ASSIGN_OR_RETURN(std::vector<AttemptRecord> history,
                            p.ledger->FailedAttempts(name, f.name));
    for (AttemptRecord& a : history) {
      if (a.run_id != h.run_id) continue;
      ++t.count;
      t.last = std::move(a);
    }
    if (!t.last || t.last->error_class != "transient") continue;
    CBPIPE_ASSIGN_OR_RETURN(std::optional<LedgerEntry> known,
                            p.ledger->Find(name, f.name));
    if (!known || known->state != "delivered" || known->sha256 != f.sha256)
      transient_pending = true;
  }
  json files = json::array();
  // The step's error when a file failed: the first one still worth another
  // try (so the Retry goes on for it), else the first permanent one.
  Status transient_error, permanent_error;
  bool healthy = true;
  size_t k = 0;
  for (const FileSummary& f : batch.files) {
    if (f.destination != name) continue;
    if (p.stop && p.stop->load()) {
      if (p.transports) p.transports->Give(name, std::move(*transport), healthy);
      return DeadlineExceededError("deliver to " + name +
                                   ": stopped before " + f.name +
                                   " (the invocation's deadline is near)");
    }
    FileToDeliver item{f.path, f.name, f.bytes, f.sha256, batch.id};
    item.replay = replay;
    item.run_id = h.run_id;
    const Tries& t = tries[k++];
    int64_t tried = t.count;
    const std::optional<AttemptRecord>& last = t.last;
    DeliveryResult r;
    if (!replay && transient_pending && last &&
        last->error_class == "permanent") {
      r.remote_name = f.name;
      r.error = Status(StatusCodeFromName(last->code), last->message);
    } else {
      const auto start = std::chrono::steady_clock::now();
      r = deliverer.Deliver(item);
      const double seconds = std::chrono::duration<double>(
                                 std::chrono::steady_clock::now() - start)
                                 .count();
      if (p.on_delivery)
        p.on_delivery({h.run_id, h.trace_id}, name, r, f.bytes, seconds);
      tried += static_cast<int64_t>(r.attempts.size());
      healthy = healthy && r.outcome != DeliveryOutcome::kFailed;
    }
    json file = {{"destination", name},
                 {"name", r.remote_name},
                 {"records", f.records},
                 {"bytes", f.bytes},
                 {"totals", TotalsJson(f.totals)},
                 {"status", DeliveryOutcomeName(r.outcome)},
                 {"attempts", tried}};
    if (r.outcome == DeliveryOutcome::kFailed) {
      Status& first =
          r.error.IsTransient() ? transient_error : permanent_error;
      if (first.ok()) {
        first = Status(r.error.code(), "delivery of " + f.name + " to " +
                                           name + " failed: " +
                                           r.error.message());
      }
    }
    files.push_back(std::move(file));
  }
  if (p.transports) p.transports->Give(name, std::move(*transport), healthy);
  if (!transient_error.ok()) return transient_error;
  if (!permanent_error.ok()) return permanent_error;
  return json{{"id", batch.id}, {"destination", name}, {"files", files}};
}

// One file of a notify or settle input's deliveries.
struct FileOutcome {
  std::string destination, name, status, error;
  int64_t records = 0, attempts = 0;
  std::map<std::string, int64_t> totals;
};

Status ReadFiles(const json& files, const std::string& caught,
                 std::vector<FileOutcome>* outcomes) {
  for (const json& f : files) {
    FileOutcome o;
    CBPIPE_ASSIGN_OR_RETURN(o.destination, String(f, "destination"));
    CBPIPE_ASSIGN_OR_RETURN(o.name, String(f, "name"));
    CBPIPE_ASSIGN_OR_RETURN(o.records, Int(f, "records"));
    CBPIPE_ASSIGN_OR_RETURN(o.totals, Totals(f, "totals"));
    if (f.contains("attempts")) {
      CBPIPE_ASSIGN_OR_RETURN(o.attempts, Int(f, "attempts"));
    }
    if (!caught.empty()) {
      // A destination whose delivery was caught: every file of it failed.
      o.status = "failed";
      o.error = caught;
    } else {
      CBPIPE_ASSIGN_OR_RETURN(o.status, String(f, "status"));
      if (f.contains("error")) {
        CBPIPE_ASSIGN_OR_RETURN(o.error, String(f, "error"));
      }
    }
    outcomes->push_back(std::move(o));
  }
  return OkStatus();
}

// The deliveries per batch, in either shape: [{id, files}] (replay) or the
// definition's Map result [{id, deliveries: [deliver output, or
// deliver input with error: {Error, Cause}]}, or, for a batch that failed
// verification, {batch: {id, files}, error: {Error, Cause}}].
StatusOr<std::vector<std::pair<std::string, std::vector<FileOutcome>>>>
ReadDeliveries(const json& in) {
  CBPIPE_ASSIGN_OR_RETURN(const json* deliveries, Array(in, "deliveries"));
  std::vector<std::pair<std::string, std::vector<FileOutcome>>> out;
  for (const json& b : *deliveries) {
    std::vector<FileOutcome> outcomes;
    if (b.is_object() && b.contains("error") && b.contains("batch")) {
      // A batch whose item failed (its verification): the Map's entry is
      // the item's input with the error; none of its files went out.
      CBPIPE_ASSIGN_OR_RETURN(const json* batch, Object(b, "batch"));
      CBPIPE_ASSIGN_OR_RETURN(std::string id, String(*batch, "id"));
      CBPIPE_ASSIGN_OR_RETURN(const json* error, Object(b, "error"));
      CBPIPE_ASSIGN_OR_RETURN(std::string cause, String(*error, "Cause"));
      CBPIPE_ASSIGN_OR_RETURN(const json* files, Array(*batch, "files"));
      CBPIPE_RETURN_IF_ERROR(ReadFiles(*files, cause, &outcomes));
      out.emplace_back(std::move(id), std::move(outcomes));
      continue;
    }
    CBPIPE_ASSIGN_OR_RETURN(std::string id, String(b, "id"));
    if (b.is_object() && b.contains("deliveries")) {
      CBPIPE_ASSIGN_OR_RETURN(const json* per_destination,
                              Array(b, "deliveries"));
      for (const json& d : *per_destination) {
        std::string caught;
        if (d.is_object() && d.contains("error")) {
          CBPIPE_ASSIGN_OR_RETURN(const json* error, Object(d, "error"));
          caught = error->contains("Cause") && (*error)["Cause"].is_string()
                       ? (*error)["Cause"].get<std::string>()
                       : error->dump();
        }
        CBPIPE_ASSIGN_OR_RETURN(const json* files, Array(d, "files"));
        CBPIPE_RETURN_IF_ERROR(ReadFiles(*files, caught, &outcomes));
      }
    } else {
      CBPIPE_ASSIGN_OR_RETURN(const json* files, Array(b, "files"));
      CBPIPE_RETURN_IF_ERROR(ReadFiles(*files, "", &outcomes));
    }
    out.emplace_back(std::move(id), std::move(outcomes));
  }
  return out;
}

// notify: one event per batch (delivered or failed) and per failed file.
StatusOr<json> NotifyStep(const json& in, const Ports& p) {
  CBPIPE_ASSIGN_OR_RETURN(Header h, ReadHeader(in));
  CBPIPE_ASSIGN_OR_RETURN(auto deliveries, ReadDeliveries(in));
  for (const auto& [id, files] : deliveries) {
    bool ok = true;
    int64_t records = 0;
    std::map<std::string, int64_t> totals;
    for (const FileOutcome& f : files) {
      records += f.records;
      for (const auto& [cur, minor] : f.totals) totals[cur] += minor;
      if (f.status != "failed") continue;
      ok = false;
      Event e = MakeEvent(p, kEventDeliveryFailed, h);
      e.batch_id = id;
      e.destination = f.destination;
      e.counts = {{"records", f.records}, {"attempts", f.attempts}};
      e.totals = f.totals;
      e.message = "delivery of " + f.name + " failed: " + f.error;
      Notify(p, e);
    }
    Event e = MakeEvent(p, ok ? kEventBatchDelivered : kEventBatchFailed, h);
    e.batch_id = id;
    e.counts = {{"records", records},
                {"files", static_cast<int64_t>(files.size())}};
    e.totals = totals;
    e.message = ok ? "batch delivered" : "batch not completely delivered";
    Notify(p, e);
  }
  return in;
}

// settle: the run succeeds only when every file was delivered.
StatusOr<json> Settle(const json& in, const Ports&) {
  CBPIPE_RETURN_IF_ERROR(ReadHeader(in).status());
  CBPIPE_ASSIGN_OR_RETURN(auto deliveries, ReadDeliveries(in));
  int failed = 0;
  for (const auto& [id, files] : deliveries) {
    for (const FileOutcome& f : files) failed += f.status == "failed";
  }
  if (failed > 0) {
    return AbortedError(std::to_string(failed) +
                        " file(s) not delivered after all retries");
  }
  return in;
}

// The message of a caught step: the definition's Catch with ResultPath
// $.error (the failed state's input with error: {Error, Cause}), or the
// explicit form {error: {code, message}, input} that callers may also
// send. Sets *original to the failed state's input.
StatusOr<std::string> CaughtMessage(const json& in, const json** original) {
  CBPIPE_ASSIGN_OR_RETURN(const json* error, Object(in, "error"));
  if (error->contains("Cause")) {
    *original = &in;
    return String(*error, "Cause");
  }
  CBPIPE_ASSIGN_OR_RETURN(*original, Object(in, "input"));
  return String(*error, "message");
}

// reject_input: the input cannot be read, or is over one of its limits;
// keep it with its reason.
StatusOr<json> RejectInput(const json& in, const Ports& p) {
  const json* original = nullptr;
  CBPIPE_ASSIGN_OR_RETURN(std::string message, CaughtMessage(in, &original));
  CBPIPE_ASSIGN_OR_RETURN(Header h, ReadHeader(*original));
  CBPIPE_ASSIGN_OR_RETURN(std::string input_key, String(*original, "input_key"));
  CBPIPE_ASSIGN_OR_RETURN(std::string input_name,
                          String(*original, "input_name"));
  CBPIPE_ASSIGN_OR_RETURN(bool by_content,
                          OptionalBool(*original, "name_by_content", false));
  std::string quarantine;
  std::string input_id = h.run_id;
  Status reason = InvalidArgumentError(message);
  std::string shown;
  LocalCopies input_copy(*p.inputs);  // released when the step ends
  StatusOr<std::string> path = input_copy.Path(input_key);
  if (path.ok() && by_content) {
    // Named as scan names by content (an input that cannot even be hashed
    // has no id and is not quarantined), with scan's original code and the
    // input as it was given.
    StatusOr<std::string> sha = Sha256File(*path);
    input_id = sha.ok() ? sha->substr(0, 16) : "";
    reason = StatusFromString(message);
    message = reason.message();
    shown = input_name;
  }
  if (path.ok() && !input_id.empty() && WorkIsLocal(p)) {
    const std::string dir = QuarantineInput(p.config->work_dir, *path,
                                            input_id, reason, shown);
    if (!dir.empty()) quarantine = "quarantine/" + input_id;
  } else if (path.ok() && !input_id.empty()) {
    // Made in a scratch folder as in the work folder, then Put.
    ScratchFolder scratch(p.config->work_dir, "reject-" + h.run_id);
    CBPIPE_RETURN_IF_ERROR(scratch.status());
    const std::string dir =
        QuarantineInput(scratch.dir(), *path, input_id, reason, shown);
    if (!dir.empty()) {
      CBPIPE_RETURN_IF_ERROR(PutQuarantine(p, dir, "quarantine/" + input_id));
      quarantine = "quarantine/" + input_id;
    }
  }
  Event e = MakeEvent(p, kEventInputRejected, h);
  e.message = "input " + input_name + " not processed: " + message;
  Notify(p, e);
  json out = in;
  out["quarantine"] = quarantine;
  if (by_content) out["input_id"] = input_id;
  return out;
}

// record_failure: the run becomes a dead letter, and someone is told.
StatusOr<json> RecordFailure(const json& in, const Ports& p) {
  const json* original = nullptr;
  CBPIPE_ASSIGN_OR_RETURN(std::string message, CaughtMessage(in, &original));
  CBPIPE_ASSIGN_OR_RETURN(Header h, ReadHeader(*original));
  std::string input_name;
  if (original->contains("input_name")) {
    CBPIPE_ASSIGN_OR_RETURN(input_name, String(*original, "input_name"));
  }
  int64_t failed_files = 0;
  if (original->contains("failed_files")) {
    CBPIPE_ASSIGN_OR_RETURN(failed_files, Int(*original, "failed_files"));
  }
  Event e = MakeEvent(p, kEventDeadletterAdded, h);
  e.message = "run " + h.run_id + " (" + input_name +
              ") failed and was moved to the dead letters: " + message;
  e.counts = {{"failed_files", failed_files}};
  Notify(p, e);
  return in;
}

using Step = StatusOr<json> (*)(const json&, const Ports&);

const std::map<std::string, Step, std::less<>>& Steps() {
  static const auto* steps = new std::map<std::string, Step, std::less<>>{
      {"scan", Scan},          {"verify", Verify},
      {"deliver", Deliver},    {"notify", NotifyStep},
      {"settle", Settle},      {"reject_input", RejectInput},
      {"record_failure", RecordFailure}};
  return *steps;
}

// The Catch of a delivery that kept failing: its files, failed.
json FailedDelivery(const json& item, const Status& error, int attempts) {
  json files = json::array();
  if (item.contains("files") && item["files"].is_array()) {
    for (const json& f : item["files"]) {
      json file = f;
      file["status"] = "failed";
      file["attempts"] = attempts;
      file["error"] = error.ToString();
      files.push_back(std::move(file));
    }
  }
  return files;
}

}  // namespace

Status StatusFromString(const std::string& text) {
  const size_t colon = text.find(": ");
  if (colon != std::string::npos) {
    const std::string_view name(text.data(), colon);
    const StatusCode code = StatusCodeFromName(name);
    if (StatusCodeName(code) == name && code != StatusCode::kOk)
      return Status(code, text.substr(colon + 2));
  }
  return InvalidArgumentError(text);
}

StatusOr<nlohmann::json> RunStep(std::string_view name,
                                 const nlohmann::json& input,
                                 const Ports& ports) {
  const auto& steps = Steps();
  auto it = steps.find(name);
  if (it == steps.end())
    return NotFoundError("no step named \"" + std::string(name) + "\"");
  if (!ports.config || !ports.work || !ports.inputs || !ports.ledger ||
      !ports.env) {
    return FailedPreconditionError("step " + std::string(name) +
                                   ": a port is missing");
  }
  try {
    return it->second(input, ports);
  } catch (const std::exception& e) {
    return InternalError("step " + std::string(name) + " threw: " + e.what());
  } catch (...) {
    return InternalError("step " + std::string(name) + " threw");
  }
}

StepRunner StepsOver(const Ports& ports) {
  return [&ports](std::string_view name, const nlohmann::json& input) {
    return RunStep(name, input, ports);
  };
}

nlohmann::json InitialInput(const RunRecord& run) {
  return {{"run_id", run.run_id},
          {"trace_id", run.trace_id},
          {"now_ms", run.created_ms},
          {"input_key", run.input_key},
          {"input_name", run.input_name}};
}

StatusOr<nlohmann::json> RunWithRetry(const StepRunner& step,
                                      std::string_view name,
                                      const nlohmann::json& input,
                                      const RetryPolicy& policy, Env* env,
                                      const std::atomic<bool>* stop,
                                      int* attempts) {
  const int max_attempts = std::max(1, policy.max_attempts);
  for (int attempt = 1;; ++attempt) {
    *attempts = attempt;
    StatusOr<json> out = step(name, input);
    if (out.ok() || !out.status().IsTransient() || attempt >= max_attempts)
      return out;
    if (!env->SleepFor(RetryDelaySeconds(policy, attempt, env->Random01()),
                       stop))
      return out;
  }
}

nlohmann::json RunDeliveries(const StepRunner& step,
                             const nlohmann::json& items, Env* env,
                             const std::atomic<bool>* stop) {
  if (!items.is_array()) return json::array();
  // Destinations at once: a slow or failing server never holds back the
  // others.
  std::vector<json> results(items.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < items.size(); ++i) {
    threads.emplace_back([&, i] {
      const json& item = items[i];
      int attempts = 0;
      try {
        StatusOr<json> out = RunWithRetry(step, "deliver", item,
                                          RetryFrom(item), env, stop,
                                          &attempts);
        if (out.ok() && out->contains("files") && (*out)["files"].is_array()) {
          results[i] = std::move((*out)["files"]);
        } else {
          results[i] = FailedDelivery(
              item,
              out.ok() ? InternalError("deliver returned no files")
                       : out.status(),
              attempts);
        }
      } catch (const std::exception& e) {
        results[i] = FailedDelivery(
            item, InternalError(std::string("deliver: ") + e.what()),
            attempts);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  json files = json::array();
  for (json& r : results) {
    for (json& f : r) files.push_back(std::move(f));
  }
  return files;
}

}  // namespace cbpipe
