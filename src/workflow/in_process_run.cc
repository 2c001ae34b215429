#include "workflow/in_process_run.h"

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <random>

#include "domain/pan.h"
#include "output/manifest.h"
#include "workflow/steps.h"

namespace cbpipe {
namespace {

using json = nlohmann::json;

// Run ids are stamped on the ledger's entries and attempts, where a run
// tells its own deliveries from earlier runs': unique to each runner.
std::string RunPrefix() {
  std::random_device device;
  std::mt19937_64 rng(
      (static_cast<uint64_t>(device()) << 32) ^ device() ^
      static_cast<uint64_t>(::getpid()) ^
      static_cast<uint64_t>(
          std::chrono::steady_clock::now().time_since_epoch().count()));
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id = "run-";
  uint64_t bits = rng();
  for (int i = 0; i < 16; ++i, bits >>= 4) id.push_back(kHex[bits & 15]);
  return id;
}

json Parse(const StepRecord* record) {
  if (!record) return json();
  json j = json::parse(record->output_json, nullptr, false);
  return j.is_discarded() ? json() : j;
}

std::string Text(const json& j, const char* key) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

// A checkpointed {Error, Cause} as the Status it was.
Status CaughtStatus(const json& error) {
  return Status(StatusCodeFromName(Text(error, "Error")),
                Text(error, "Cause"));
}

DeliveryOutcome OutcomeNamed(const std::string& name) {
  for (DeliveryOutcome o :
       {DeliveryOutcome::kDelivered, DeliveryOutcome::kAlreadyDelivered}) {
    if (DeliveryOutcomeName(o) == name) return o;
  }
  return DeliveryOutcome::kFailed;
}

}  // namespace

bool BatchResult::ok() const {
  if (!verify.ok()) return false;
  for (const DeliveredFile& f : files) {
    if (f.delivery.outcome == DeliveryOutcome::kFailed) return false;
  }
  return true;
}

bool InputResult::ok() const {
  if (!error.ok()) return false;
  for (const BatchResult& b : batches) {
    if (!b.ok()) return false;
  }
  return true;
}

InProcessRunner::InProcessRunner(const Config& config, DeliveryLedger* ledger,
                                 Env* env, int64_t now_epoch_seconds,
                                 InProcessOptions options)
    : config_(config),
      ledger_(ledger),
      env_(env),
      now_ms_(now_epoch_seconds * 1000),
      options_(std::move(options)),
      run_prefix_(RunPrefix()),
      work_(config.work_dir),
      work_store_(options_.work ? options_.work : &work_),
      work_is_dir_(IsLocalFolder(*work_store_, config.work_dir)),
      runs_(env),
      transports_(std::chrono::seconds(60), options_.make_transport),
      definition_(CbpipeWorkflowDefinition()) {
  RemoveAbandonedPending(config_.work_dir);
  ports_.config = &config_;
  ports_.work = work_store_;
  ports_.inputs = &inputs_;
  ports_.ledger = ledger_;
  ports_.env = env_;
  ports_.transports = &transports_;
  ports_.secrets = options_.secrets;
  // The scan's counts and error position, kept for the report also when
  // the input is rejected (the step then returns an error, not counts).
  ports_.on_scanned = [this](const StepContext& run, const InputScan& scan) {
    std::lock_guard<std::mutex> lock(mu_);
    scans_[run.run_id] = scan;
  };
  if (!definition_.ok()) return;
  StepRunner steps = [this](std::string_view name, const json& input) {
    if (options_.before_step) options_.before_step(name, input);
    return RunStep(name, input, ports_);
  };
  engine_ = std::make_unique<WorkflowEngine>(&*definition_, &runs_, env_,
                                             std::move(steps));
}

InProcessRunner::~InProcessRunner() = default;

InputResult InProcessRunner::Process(const std::string& input_path) {
  const std::string run_id =
      run_prefix_ + "-" + std::to_string(++runs_made_);
  RunRecord run;
  run.run_id = run_id;
  run.input_key = input_path;
  run.input_name = MaskCardNumbers(input_path);
  run.created_ms = now_ms_;
  Status started = definition_.status();
  if (started.ok()) {
    inputs_.Add(input_path);
    started = runs_.CreateIfAbsent(run).status();
  }
  if (!started.ok()) {
    InputResult r;
    r.input = run.input_name;
    r.error = started;
    return r;
  }
  json input = InitialInput(run);
  input["name_by_content"] = true;  // as `run` has always named its output
  const RunOutcome outcome = engine_->Resume(run_id, input, nullptr);
  InputResult r = Report(input_path, run_id, outcome);
  std::lock_guard<std::mutex> lock(mu_);
  scans_.erase(run_id);
  return r;
}

InputResult InProcessRunner::Report(const std::string& input_path,
                                    const std::string& run_id,
                                    const RunOutcome& outcome) {
  InputResult r;
  r.input = MaskCardNumbers(input_path);
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = scans_.find(run_id);
    if (it != scans_.end()) r.scan = it->second;
  }
  StatusOr<RunRecord> run = runs_.Get(run_id);
  if (!run.ok()) {
    r.error = run.status();
    return r;
  }
  std::map<std::string, const StepRecord*> records;
  for (const StepRecord& s : run->steps) {
    if (s.state == "succeeded" || s.state == "failed") records[s.name] = &s;
  }
  auto record = [&records](const std::string& name) -> const StepRecord* {
    auto it = records.find(name);
    return it == records.end() ? nullptr : it->second;
  };
  const StepRecord* scan = record("scan");
  if (!scan) {
    r.error = InternalError("the run of " + r.input + " " + outcome.state +
                            " before its scan: " + outcome.error);
    return r;
  }
  if (scan->state == "failed") {
    Status st = CaughtStatus(Parse(scan));
    const StepRecord* rejected = record("reject_input");
    if (rejected && rejected->state == "succeeded") {
      // The input itself could not be read (or is over a limit): scan's
      // Cause is its own error, and reject_input quarantined it.
      st = StatusFromString(st.message());
      const json out = Parse(rejected);
      r.input_id = Text(out, "input_id");
      const std::string quarantine = Text(out, "quarantine");
      if (!quarantine.empty()) r.quarantine_dir = Shown(quarantine);
    }
    r.error = MaskCardNumbersInStatus(st);
    if (!r.input_id.empty())
      r.rejects_file = Shown("runs/" + r.input_id + "/rejects.csv");
    return r;
  }
  const json scanned = Parse(scan);
  r.input_id = Text(scanned, "input_id");
  r.rejects_file = Text(scanned, "rejects_file");
  const json& batches = scanned.is_object() && scanned.contains("batches")
                            ? scanned["batches"]
                            : json::array();
  const StepRecord* map = record("batches");
  json entries = map && map->state == "succeeded" ? Parse(map) : json();
  if (!entries.is_array()) entries = json::array();
  for (size_t i = 0; i < batches.size(); ++i) {
    BatchResult& b = r.batches.emplace_back();
    const std::string id = Text(batches[i], "id");
    // Read back through the store, by the key scan gave.
    const std::string manifest = Text(batches[i], "manifest");
    StatusOr<Batch> read = ValidateObjectKey(manifest).ok()
                               ? ReadBatchManifest(*work_store_, manifest)
                               : StatusOr<Batch>(DataLossError(
                                     "batch " + id + " has no manifest key"));
    if (!read.ok()) {
      b.batch.id = id;
      b.batch.manifest_path = ObjectLocation(*work_store_, manifest);
      b.verify = read.status();
      continue;
    }
    b.batch = *std::move(read);
    const json* entry = i < entries.size() ? &entries[i] : nullptr;
    if (entry && entry->is_object() && !entry->contains("error") &&
        entry->contains("deliveries")) {
      b.files = Files(b.batch, (*entry)["deliveries"], run_id);
      continue;
    }
    // Verification failed (the Map's entry is the batch with the error),
    // or the run stopped before the batch: nothing of it was delivered.
    b.verify = entry && entry->is_object() && entry->contains("error")
                   ? CaughtStatus((*entry)["error"])
                   : InternalError("batch " + id + " was not run: " +
                                   outcome.error);
    for (const FileSummary& f : b.batch.files) {
      DeliveredFile& d = b.files.emplace_back();
      d.file = f;
      d.delivery.remote_name = f.name;
      d.delivery.error = b.verify;
    }
  }
  return r;
}

std::string InProcessRunner::Shown(const std::string& key) const {
  return work_is_dir_ ? config_.work_dir + "/" + key
                      : ObjectLocation(*work_store_, key);
}

std::vector<DeliveredFile> InProcessRunner::Files(const Batch& batch,
                                                  const json& deliveries,
                                                  const std::string& run_id) {
  // Each destination's entry: the deliver step's output, or (when it still
  // failed after the retries) its input with the error.
  std::map<std::string, const json*> by_destination;
  if (deliveries.is_array()) {
    for (const json& d : deliveries)
      by_destination[Text(d, "destination")] = &d;
  }
  std::map<std::string, size_t> next;  // the destination's next file
  std::vector<DeliveredFile> files;
  for (const FileSummary& f : batch.files) {
    DeliveredFile& d = files.emplace_back();
    d.file = f;
    d.delivery.remote_name = f.name;
    auto it = by_destination.find(f.destination);
    if (it == by_destination.end()) {
      d.delivery.error = InternalError("destination " + f.destination +
                                       " has no delivery result");
      continue;
    }
    const json& entry = *it->second;
    if (!entry.contains("error")) {
      const size_t k = next[f.destination]++;
      const json& out = entry.contains("files") ? entry["files"] : json();
      if (out.is_array() && k < out.size()) {
        d.delivery.outcome = OutcomeNamed(Text(out[k], "status"));
        d.delivery.remote_name = Text(out[k], "name");
      }
      continue;
    }
    // The destination kept failing: what became of each of its files is
    // in the ledger (delivered by this run or an earlier one, or this
    // run's failed attempts).
    StatusOr<std::optional<LedgerEntry>> known =
        ledger_->Find(f.destination, f.name);
    if (known.ok() && known->has_value() && (*known)->state == "delivered" &&
        (*known)->sha256 == f.sha256) {
      d.delivery.outcome = (*known)->run_id == run_id
                               ? DeliveryOutcome::kDelivered
                               : DeliveryOutcome::kAlreadyDelivered;
      continue;
    }
    d.delivery.error = CaughtStatus(entry["error"]);
    StatusOr<std::vector<AttemptRecord>> attempts =
        ledger_->FailedAttempts(f.destination, f.name);
    if (!attempts.ok()) continue;
    for (AttemptRecord& a : *attempts) {
      if (a.run_id == run_id) d.delivery.attempts.push_back(std::move(a));
    }
    if (!d.delivery.attempts.empty()) {
      const AttemptRecord& last = d.delivery.attempts.back();
      d.delivery.error = Status(StatusCodeFromName(last.code), last.message);
    }
  }
  return files;
}

}  // namespace cbpipe
