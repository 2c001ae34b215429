#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "app/commands.h"
#include "common/text_safety.h"
#include "ledger/sqlite_ledger.h"
#include "workflow/in_process_run.h"

namespace cbpipe {
namespace {

nlohmann::json TotalsJson(const std::map<std::string, int64_t>& totals) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [currency, minor] : totals) j[currency] = minor;
  return j;
}

// Why valid records of `r` could not be delivered, one phrase per network
// ("" when every valid record went out).
std::string UndeliverableReason(const Config& config, const InputResult& r) {
  std::string reason;
  for (Network n : kAllNetworks) {
    const uint64_t count = r.scan.undeliverable[static_cast<int>(n)];
    if (count == 0) continue;
    const DestinationConfig* d = config.DestinationFor(n);
    if (!reason.empty()) reason += "; ";
    reason += std::to_string(count) + " " + std::string(NetworkName(n)) +
              (d ? " record(s) too large for a file of destination " + d->name +
                       " (RECORD_TOO_LARGE, see "
                       "output.max_file_bytes)"
                 : " record(s) with no destination (NO_DESTINATION)");
  }
  return reason;
}

nlohmann::json InputJson(const Config& config, const InputResult& r) {
  nlohmann::json input_error = nullptr;
  if (!r.error.ok()) {
    input_error = {{"code", StatusCodeName(r.error.code())},
                   {"message", r.error.message()},
                   {"position", r.scan.error_position}};
    if (!r.quarantine_dir.empty()) input_error["quarantine"] = r.quarantine_dir;
  }
  return {
      {"input", r.input},
      {"input_id", r.input_id},
      {"records", r.scan.records},
      {"accepted", r.scan.accepted},
      {"rejected", r.scan.rejected},
      {"undeliverable", r.scan.undeliverable_total()},
      {"undeliverable_reason", UndeliverableReason(config, r)},
      {"rejects_file", r.rejects_file.empty() ? nlohmann::json(nullptr)
                                              : nlohmann::json(r.rejects_file)},
      {"input_error", input_error}};
}

nlohmann::json BatchJson(const InputResult& input, const BatchResult& b) {
  nlohmann::json files = nlohmann::json::array();
  for (const DeliveredFile& f : b.files) {
    nlohmann::json file = {{"destination", f.file.destination},
                           {"network", NetworkName(f.file.network)},
                           {"name", f.delivery.remote_name},
                           {"records", f.file.records},
                           {"bytes", f.file.bytes},
                           {"sha256", f.file.sha256},
                           {"totals", TotalsJson(f.file.totals)},
                           {"status", DeliveryOutcomeName(f.delivery.outcome)}};
    if (f.delivery.outcome == DeliveryOutcome::kFailed) {
      file["error"] = f.delivery.error.ToString();
      nlohmann::json attempts = nlohmann::json::array();
      for (const AttemptRecord& a : f.delivery.attempts) {
        attempts.push_back({{"at", a.at},
                            {"class", a.error_class},
                            {"code", a.code},
                            {"message", a.message}});
      }
      file["attempts"] = attempts;
    }
    files.push_back(std::move(file));
  }
  nlohmann::json j = {{"id", b.batch.id},
                      {"input", input.input},
                      {"ok", b.ok()},
                      {"manifest", b.batch.manifest_path},
                      {"files", files}};
  if (!b.verify.ok()) j["verify_error"] = b.verify.message();
  return j;
}

void PrintHuman(const Config& config, const InputResult& r) {
  // Names and messages come from inputs and servers: escaped, so an ESC or
  // a bidi override in them cannot act on the terminal.
  const auto shown = [](std::string_view text) {
    return EscapeForTerminal(text);
  };
  if (!r.error.ok() && r.scan.records == 0 && r.batches.empty()) {
    std::printf("%s: NOT PROCESSED: %s\n", shown(r.input).c_str(),
                shown(r.error.message()).c_str());
    if (!r.quarantine_dir.empty())
      std::printf("  quarantined in %s (original kept)\n",
                  r.quarantine_dir.c_str());
    return;
  }
  std::printf("%s: %llu records, %llu accepted, %llu rejected\n",
              shown(r.input).c_str(),
              static_cast<unsigned long long>(r.scan.records),
              static_cast<unsigned long long>(r.scan.accepted),
              static_cast<unsigned long long>(r.scan.rejected));
  if (!r.error.ok()) {
    std::printf("  FAILED: %s\n", shown(r.error.message()).c_str());
    if (!r.quarantine_dir.empty())
      std::printf("  quarantined in %s (original kept)\n",
                  r.quarantine_dir.c_str());
  }
  if (r.error.ok() && r.scan.undeliverable_total() > 0) {
    std::printf("  NOT DELIVERED: %s\n",
                shown(UndeliverableReason(config, r)).c_str());
  }
  if (!r.rejects_file.empty() && r.scan.rejected > 0)
    std::printf("  rejects: %s\n", r.rejects_file.c_str());
  for (const BatchResult& b : r.batches) {
    std::printf("  batch %s: %s\n", b.batch.id.c_str(),
                b.ok() ? "ok" : "FAILED");
    if (!b.verify.ok())
      std::printf("    verification failed, nothing delivered: %s\n",
                  shown(b.verify.message()).c_str());
    for (const DeliveredFile& f : b.files) {
      std::printf("    %-17s %-12s %-44s %7llu records %9llu bytes\n",
                  std::string(DeliveryOutcomeName(f.delivery.outcome)).c_str(),
                  f.file.destination.c_str(),
                  shown(f.delivery.remote_name).c_str(),
                  static_cast<unsigned long long>(f.file.records),
                  static_cast<unsigned long long>(f.file.bytes));
      if (f.delivery.outcome == DeliveryOutcome::kFailed && b.verify.ok()) {
        std::printf("      after %zu attempt(s): %s\n",
                    f.delivery.attempts.size(),
                    shown(f.delivery.error.ToString()).c_str());
      }
    }
  }
}

}  // namespace

int RunPipeline(const RunArgs& args) {
  StatusOr<Config> config = LoadConfigOrDefault(args.config_path);
  if (!config.ok()) {
    std::fprintf(stderr, "cbpipe run: %s\n", config.status().message().c_str());
    return kExitUsage;
  }
  if (!args.work_dir.empty()) {
    if (args.config_path.empty()) {
      config = DefaultConfig(args.work_dir);
    } else {
      config->work_dir = args.work_dir;
    }
  }
  // Destinations' aws-sm: references need [aws]: said before anything runs.
  if (Status aws = CheckAwsSecretsConfigured(*config); !aws.ok()) {
    std::fprintf(stderr, "cbpipe run: %s\n", aws.message().c_str());
    return kExitUsage;
  }
  StatusOr<int64_t> now = NowEpochSeconds();
  if (!now.ok()) {
    std::fprintf(stderr, "cbpipe run: %s\n", now.status().message().c_str());
    return kExitUsage;
  }
  std::error_code ec;
  std::filesystem::create_directories(config->work_dir, ec);
  if (ec) {
    std::fprintf(stderr, "cbpipe run: cannot create work dir %s: %s\n",
                 config->work_dir.c_str(), ec.message().c_str());
    return kExitUsage;
  }
  StatusOr<std::unique_ptr<DeliveryLedger>> ledger = SqliteDeliveryLedger::Open(
      config->work_dir + "/ledger.db", Env::Default());
  if (!ledger.ok()) {
    std::fprintf(stderr, "cbpipe run: %s\n", ledger.status().message().c_str());
    return kExitUsage;
  }

  // Each input is one run of the workflow, in this process (the same
  // steps as serve); the clock is read once, for every input.
  // env:, file: and aws-sm: references, as serve resolves them.
  const std::unique_ptr<SecretStore> secrets = OpenCommandSecrets(*config);
  InProcessOptions options;
  options.secrets = secrets.get();
  InProcessRunner runner(*config, ledger->get(), Env::Default(), *now,
                         std::move(options));
  nlohmann::json doc = {{"ok", true},
                        {"inputs", nlohmann::json::array()},
                        {"batches", nlohmann::json::array()}};
  bool all_ok = true, any_batch_failed = false, any_unreadable = false;
  uint64_t undeliverable = 0;
  for (const std::string& input : args.inputs) {
    InputResult r = runner.Process(input);
    all_ok &= r.ok();
    any_unreadable |= !r.error.ok();
    if (r.error.ok()) undeliverable += r.scan.undeliverable_total();
    for (const BatchResult& b : r.batches) any_batch_failed |= !b.ok();
    if (args.json) {
      doc["inputs"].push_back(InputJson(*config, r));
      for (const BatchResult& b : r.batches)
        doc["batches"].push_back(BatchJson(r, b));
    } else {
      PrintHuman(*config, r);
    }
  }
  all_ok &= undeliverable == 0;
  doc["ok"] = all_ok;
  if (args.json) {
    std::printf("%s\n", doc.dump(2).c_str());
  } else {
    std::string outcome = "all batches delivered";
    if (any_batch_failed || any_unreadable) {
      outcome = "SOME BATCHES FAILED";
    } else if (undeliverable > 0) {
      outcome = "SOME RECORDS NOT DELIVERED: " + std::to_string(undeliverable) +
                " valid record(s) could not go to any destination";
    }
    std::printf("%s; work dir %s\n", outcome.c_str(), config->work_dir.c_str());
    // Where each card company's files went.
    for (const DestinationConfig& d : config->destinations) {
      std::printf("  %-12s -> %s\n", d.name.c_str(), d.url.c_str());
    }
  }
  // A failed batch, or valid records that could not be delivered, are the
  // operator's first concern (1); an input that could not be processed at
  // all (unreadable, or over one of its limits) is reported like a usage
  // error (2).
  if (any_batch_failed || undeliverable > 0) return kExitRejected;
  if (any_unreadable) return kExitUsage;
  return kExitOk;
}

}  // namespace cbpipe
