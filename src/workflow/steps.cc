#include "workflow/steps.h"

#include <chrono>

#include "common/crash_point.h"

#include "output/batch_planner.h"
#include "output/manifest.h"
#include "output/verifier.h"
#include "telemetry/metrics.h"
#include "workflow/pipeline.h"

namespace cbpipe {
namespace {

using json = nlohmann::json;

// The input's local path from the step input.
StatusOr<std::string> InputPath(const StepServices& s, const json& in) {
  if (!in.contains("input_key") || !in["input_key"].is_string())
    return InvalidArgumentError("step input has no input_key");
  return s.store->LocalPath(in["input_key"].get<std::string>());
}

json TotalsJson(const std::map<std::string, int64_t>& totals) {
  json j = json::object();
  for (const auto& [k, v] : totals) j[k] = v;
  return j;
}

std::map<std::string, int64_t> TotalsFrom(const json& j) {
  std::map<std::string, int64_t> out;
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (it.value().is_number_integer()) out[it.key()] = it.value();
    }
  }
  return out;
}

int64_t NowSeconds(const StepServices& s) {
  const int64_t ms = s.now_ms();
  return ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
}

Event MakeEvent(const StepServices& s, std::string_view type,
                const RunRecord& run) {
  Event e;
  e.type = std::string(type);
  e.run_id = run.run_id;
  e.trace_id = run.trace_id.empty()
                   ? ""
                   : "00-" + run.trace_id + "-" + run.run_id.substr(0, 16) +
                         "-01";
  e.time_ms = s.now_ms();
  return e;
}

void Notify(const StepServices& s, const Event& e) {
  CrashPoint("notify.event");
  if (s.notifier) s.notifier->Notify(e);
}

// validate: ingest and validate; rejects to runs/<id>/rejects.csv.
StatusOr<json> Validate(StepServices& s, const RunRecord& run,
                        const json& in) {
  CBPIPE_ASSIGN_OR_RETURN(std::string path, InputPath(s, in));
  const std::string rejects =
      s.config->work_dir + "/runs/" + run.run_id + "/rejects.csv";
  InputScan scan;
  Status st =
      ScanAndPlan(*s.config, path, rejects, nullptr, NowSeconds(s), &scan);
  if (s.on_scanned) s.on_scanned(run, scan);
  if (!st.ok()) {
    // An unreadable input is permanent (the reject_input path); an I/O
    // hiccup is transient and retried.
    if (st.IsTransient()) return st;
    return Status(StatusCode::kInvalidArgument, st.message());
  }
  json by_network = json::object();
  for (Network n : kAllNetworks)
    by_network[std::string(NetworkName(n))] =
        scan.by_network[static_cast<int>(n)];
  json out = in;
  out["records"] = scan.records;
  out["accepted"] = scan.accepted;
  out["rejected"] = scan.rejected;
  out["rejects_file"] = rejects;
  out["by_network"] = by_network;
  return out;
}

// generate: plan and write the files; one manifest per batch.
StatusOr<json> Generate(StepServices& s, const RunRecord& run,
                        const json& in) {
  CBPIPE_ASSIGN_OR_RETURN(std::string path, InputPath(s, in));
  PlanContext context;
  context.input_id = run.run_id;
  context.work_dir = s.config->work_dir;
  BatchPlanner planner(OutputOptionsOf(*s.config), context);
  CBPIPE_RETURN_IF_ERROR(planner.status());
  InputScan scan;
  CBPIPE_RETURN_IF_ERROR(
      ScanAndPlan(*s.config, path, "", &planner, NowSeconds(s), &scan));
  if (scan.accepted != in.value("accepted", scan.accepted)) {
    // The same input and config must give the same records.
    return InternalError("generate accepted " +
                         std::to_string(scan.accepted) +
                         " records, validate " +
                         std::to_string(in.value("accepted", 0)));
  }
  CBPIPE_ASSIGN_OR_RETURN(std::vector<Batch> batches, planner.Finish());
  json out = in;
  out["batches"] = json::array();
  for (const Batch& b : batches) {
    json files = json::array();
    for (const FileSummary& f : b.files) {
      if (s.metrics) {
        s.metrics->Increment(kFilesGeneratedTotal, {f.destination});
        s.metrics->Increment(kBytesGeneratedTotal, {f.destination}, f.bytes);
      }
      files.push_back({{"destination", f.destination},
                       {"name", f.name},
                       {"records", f.records},
                       {"bytes", f.bytes},
                       {"sha256", f.sha256},
                       {"totals", TotalsJson(f.totals)}});
    }
    out["batches"].push_back(
        {{"id", b.id}, {"manifest", b.manifest_path}, {"files", files}});
  }
  return out;
}

StatusOr<std::vector<Batch>> LoadBatches(const json& in) {
  std::vector<Batch> batches;
  if (!in.contains("batches")) return batches;
  for (const json& b : in["batches"]) {
    CBPIPE_ASSIGN_OR_RETURN(Batch batch,
                            ReadManifest(b.value("manifest", "")));
    batches.push_back(std::move(batch));
  }
  return batches;
}

// verify: re-read every file against its manifest.
StatusOr<json> Verify(StepServices& s, const RunRecord&, const json& in) {
  CBPIPE_ASSIGN_OR_RETURN(std::vector<Batch> batches, LoadBatches(in));
  const OutputOptions output = OutputOptionsOf(*s.config);
  for (const Batch& b : batches) {
    CBPIPE_RETURN_IF_ERROR(VerifyBatch(b, output));
  }
  return in;
}

// deliver: every batch, destinations in parallel; results per file. A
// failed file does not fail the step: settle decides after notify.
StatusOr<json> Deliver(StepServices& s, const RunRecord& run,
                       const json& in) {
  CBPIPE_ASSIGN_OR_RETURN(std::vector<Batch> batches, LoadBatches(in));
  json out = in;
  json results = json::array();
  int failed = 0;
  for (const Batch& b : batches) {
    const auto start = std::chrono::steady_clock::now();
    std::vector<DeliveredFile> files =
        DeliverBatch(*s.config, b, s.ledger, s.env, false, s.transports);
    const double seconds = std::chrono::duration<double>(
                               std::chrono::steady_clock::now() - start)
                               .count();
    json jf = json::array();
    for (const DeliveredFile& f : files) {
      if (s.on_delivery)
        s.on_delivery(run, f.file.destination, f.delivery, f.file.bytes,
                      seconds);
      json item = {{"destination", f.file.destination},
                   {"name", f.delivery.remote_name},
                   {"records", f.file.records},
                   {"bytes", f.file.bytes},
                   {"totals", TotalsJson(f.file.totals)},
                   {"status", DeliveryOutcomeName(f.delivery.outcome)},
                   {"attempts", f.delivery.attempts.size()}};
      if (f.delivery.outcome == DeliveryOutcome::kFailed) {
        ++failed;
        item["error"] = f.delivery.error.ToString();
      }
      jf.push_back(std::move(item));
    }
    results.push_back({{"id", b.id}, {"files", jf}});
  }
  out["deliveries"] = results;
  out["failed_files"] = failed;
  return out;
}

// notify: one event per batch (delivered or failed) and per failed file.
StatusOr<json> NotifyStep(StepServices& s, const RunRecord& run,
                          const json& in) {
  for (const json& b : in.value("deliveries", json::array())) {
    bool ok = true;
    int64_t records = 0;
    std::map<std::string, int64_t> totals;
    for (const json& f : b["files"]) {
      records += f.value("records", int64_t{0});
      for (const auto& [cur, minor] : TotalsFrom(f["totals"]))
        totals[cur] += minor;
      if (f.value("status", "") != "failed") continue;
      ok = false;
      Event e = MakeEvent(s, kEventDeliveryFailed, run);
      e.batch_id = b.value("id", "");
      e.destination = f.value("destination", "");
      e.counts = {{"records", f.value("records", int64_t{0})},
                  {"attempts", f.value("attempts", int64_t{0})}};
      e.totals = TotalsFrom(f["totals"]);
      e.message = "delivery of " + f.value("name", "") + " failed: " +
                  f.value("error", "");
      Notify(s, e);
    }
    Event e = MakeEvent(s, ok ? kEventBatchDelivered : kEventBatchFailed, run);
    e.batch_id = b.value("id", "");
    e.counts = {{"records", records},
                {"files", static_cast<int64_t>(b["files"].size())}};
    e.totals = totals;
    e.message = ok ? "batch delivered" : "batch not completely delivered";
    Notify(s, e);
  }
  return in;
}

// settle: the run succeeds only when every file was delivered.
StatusOr<json> Settle(StepServices&, const RunRecord&, const json& in) {
  const int failed = in.value("failed_files", 0);
  if (failed > 0) {
    return AbortedError(std::to_string(failed) +
                        " file(s) not delivered after all retries");
  }
  return in;
}

// reject_input: the input cannot be read, or is over one of its limits;
// keep it with its reason.
StatusOr<json> RejectInput(StepServices& s, const RunRecord& run,
                           const json& in) {
  const json& original = in.contains("input") ? in["input"] : in;
  const std::string message =
      in.contains("error") ? in["error"].value("message", "") : "";
  std::string quarantine;
  StatusOr<std::string> path = InputPath(s, original);
  if (path.ok()) {
    quarantine = QuarantineInput(s.config->work_dir, *path, run.run_id,
                                 InvalidArgumentError(message));
  }
  Event e = MakeEvent(s, kEventInputRejected, run);
  e.message = "input " + run.input_name + " not processed: " + message;
  Notify(s, e);
  json out = in;
  out["quarantine"] = quarantine;
  return out;
}

// record_failure: the run becomes a dead letter, and someone is told.
StatusOr<json> RecordFailure(StepServices& s, const RunRecord& run,
                             const json& in) {
  Event e = MakeEvent(s, kEventDeadletterAdded, run);
  e.message = "run " + run.run_id + " (" + run.input_name +
              ") failed and was moved to the dead letters: " +
              (in.contains("error") ? in["error"].value("message", "")
                                    : std::string("unknown error"));
  const json& original = in.contains("input") ? in["input"] : in;
  e.counts = {{"failed_files", original.value("failed_files", 0)}};
  Notify(s, e);
  return in;
}

}  // namespace

nlohmann::json InitialInput(const std::string& input_key,
                            const std::string& input_name) {
  return {{"input_key", input_key}, {"input_name", input_name}};
}

LegacyWorkflowDefinition CbpipeWorkflow(StepServices* s) {
  auto bind = [s](StatusOr<json> (*fn)(StepServices&, const RunRecord&,
                                       const json&)) {
    return [s, fn](const RunRecord& run, const json& in) {
      return fn(*s, run, in);
    };
  };
  LegacyWorkflowDefinition def;
  def.start = "validate";
  auto step = [&](const std::string& name, auto fn,
                  const std::string& next) -> LegacyStepDefinition& {
    LegacyStepDefinition& d = def.steps[name];
    d.fn = bind(fn);
    d.next = next;
    return d;
  };
  const LegacyCatcher to_failure{{}, "record_failure"};
  step("validate", Validate, "generate").catchers = {
      {{StatusCode::kInvalidArgument}, "reject_input"}};
  step("generate", Generate, "verify").catchers = {to_failure};
  LegacyStepDefinition& verify = step("verify", Verify, "deliver");
  verify.catchers = {to_failure};
  verify.redrive_from = "generate";  // regenerate what failed verification
  // Retries happen per file under each destination's own policy.
  LegacyStepDefinition& deliver = step("deliver", Deliver, "notify");
  deliver.retry_transient = false;
  deliver.catchers = {to_failure};
  step("notify", NotifyStep, "settle");
  LegacyStepDefinition& settle = step("settle", Settle, "");
  settle.retry_transient = false;
  settle.catchers = {to_failure};
  settle.redrive_from = "deliver";
  step("reject_input", RejectInput, "").end_state = "rejected";
  step("record_failure", RecordFailure, "").fails_run = true;
  return def;
}

}  // namespace cbpipe
