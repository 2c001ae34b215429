// cbpipe: validates chargeback files, writes one CSV per card company and
// delivers them. `cbpipe --help` lists the commands; docs/ has the details.
#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "app/commands.h"
#include "app/gen_sample.h"
#include "app/ops_commands.h"

namespace {

std::optional<cbpipe::InputFormat> FormatOption(const std::string& name) {
  if (name.empty()) return std::nullopt;
  return cbpipe::ParseInputFormat(name);
}

int GenSample(uint64_t records, double invalid_ratio, const std::string& fmt,
              uint64_t seed, const std::string& output) {
  cbpipe::SampleOptions options;
  options.records = records;
  options.invalid_ratio = invalid_ratio;
  options.seed = seed;
  options.format = fmt == "jsonl" ? cbpipe::SampleFormat::kJsonLines
                                  : cbpipe::SampleFormat::kCsv;
  cbpipe::StatusOr<int64_t> now = cbpipe::NowEpochSeconds();
  if (!now.ok()) {
    std::fprintf(stderr, "cbpipe gen-sample: %s\n",
                 now.status().message().c_str());
    return cbpipe::kExitUsage;
  }
  options.now_epoch_seconds = *now;
  std::FILE* out = stdout;
  if (!output.empty() && output != "-") {
    out = std::fopen(output.c_str(), "wb");
    if (!out) {
      std::fprintf(stderr, "cbpipe gen-sample: cannot write %s: %s\n",
                   output.c_str(), std::strerror(errno));
      return cbpipe::kExitUsage;
    }
  }
  cbpipe::StatusOr<cbpipe::SampleStats> stats =
      cbpipe::WriteSample(options, out);
  const bool close_failed = out != stdout && std::fclose(out) != 0;
  if (!stats.ok() || close_failed) {
    std::fprintf(stderr, "cbpipe gen-sample: %s\n",
                 stats.ok() ? "write failed"
                            : stats.status().message().c_str());
    return cbpipe::kExitUsage;
  }
  if (out != stdout) {
    std::fprintf(stderr, "wrote %llu records (%llu invalid) to %s\n",
                 static_cast<unsigned long long>(stats->records),
                 static_cast<unsigned long long>(stats->invalid),
                 output.c_str());
  }
  return cbpipe::kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "cbpipe: validate chargeback files, write one CSV per card company, "
      "deliver them"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "cbpipe 0.1.0");

  // validate
  cbpipe::ValidateArgs va;
  std::string va_format;
  CLI::App* validate =
      app.add_subcommand("validate", "Check inputs record by record");
  validate->add_option("--config", va.config_path, "Config file (TOML)");
  validate->add_option("--format", va_format, "Input format")
      ->check(CLI::IsMember({"csv", "jsonl", "json"}));
  validate->add_flag("--json", va.json, "Print one JSON document");
  validate->add_option("--max-errors", va.max_errors_shown,
                       "Errors listed per input in the human summary")
      ->check(CLI::NonNegativeNumber);
  validate->add_option("INPUT", va.inputs, "Input files ('-' for stdin)")
      ->required();

  // run
  cbpipe::RunArgs ra;
  CLI::App* run = app.add_subcommand(
      "run", "Validate, generate per-network CSVs, verify and deliver");
  run->add_option("--config", ra.config_path, "Config file (TOML)");
  run->add_option("--work-dir", ra.work_dir,
                  "Where batches, rejects and the ledger are kept");
  run->add_flag("--json", ra.json, "Print one JSON document");
  run->add_option("INPUT", ra.inputs, "Input files")->required();

  // gen-sample
  uint64_t gs_records = 0, gs_seed = 1;
  double gs_ratio = 0;
  std::string gs_format = "csv", gs_output;
  CLI::App* gen = app.add_subcommand(
      "gen-sample", "Write realistic, deterministic sample chargebacks");
  gen->add_option("--records", gs_records, "How many records")->required();
  gen->add_option("--invalid-ratio", gs_ratio, "Share of invalid records")
      ->check(CLI::Range(0.0, 1.0));
  gen->add_option("--format", gs_format, "csv or jsonl")
      ->check(CLI::IsMember({"csv", "jsonl"}));
  gen->add_option("--seed", gs_seed, "Random seed");
  gen->add_option("--output", gs_output, "Output file (default stdout)");

  // config check
  std::string cc_path;
  CLI::App* config = app.add_subcommand("config", "Configuration tools");
  config->require_subcommand(1);
  CLI::App* check = config->add_subcommand(
      "check", "Validate a config and print the effective settings");
  check->add_option("--config", cc_path, "Config file (TOML)");

  // serve
  std::string sv_config;
  CLI::App* serve = app.add_subcommand(
      "serve", "Run as a service: watch the inbox, process, deliver, retry");
  serve->add_option("--config", sv_config, "Config file (TOML)");

  // submit
  std::string sb_config;
  std::vector<std::string> sb_files;
  CLI::App* submit = app.add_subcommand(
      "submit", "Hand input files to a running service (its inbox)");
  submit->add_option("--config", sb_config, "Config file (TOML)");
  submit->add_option("FILE", sb_files, "Input files")->required();

  // runs list|show
  std::string rn_config, rn_state, rn_id;
  int rn_limit = 50;
  bool rn_json = false;
  CLI::App* runs = app.add_subcommand("runs", "Workflow runs of the service");
  runs->require_subcommand(1);
  runs->add_option("--config", rn_config, "Config file (TOML)");
  CLI::App* runs_list = runs->add_subcommand("list", "Runs, newest first");
  runs_list->add_option("--state", rn_state,
                        "queued, running, succeeded, failed or rejected");
  runs_list->add_option("--limit", rn_limit, "How many")
      ->check(CLI::Range(1, 500));
  runs_list->add_flag("--json", rn_json, "JSON output");
  CLI::App* runs_show = runs->add_subcommand("show", "One run in detail");
  runs_show->add_option("RUN", rn_id, "Run id")->required();
  runs_show->add_flag("--json", rn_json, "JSON output");

  // dlq list|show|redrive|purge
  std::string dq_config, dq_id;
  bool dq_json = false, dq_all = false, dq_yes = false;
  CLI::App* dlq = app.add_subcommand("dlq", "Dead letters of the service");
  dlq->require_subcommand(1);
  dlq->add_option("--config", dq_config, "Config file (TOML)");
  CLI::App* dlq_list = dlq->add_subcommand("list", "List dead letters");
  dlq_list->add_flag("--json", dq_json, "JSON output");
  CLI::App* dlq_show = dlq->add_subcommand("show", "One dead letter");
  dlq_show->add_option("ID", dq_id, "Dead letter id")->required();
  dlq_show->add_flag("--json", dq_json, "JSON output");
  CLI::App* dlq_redrive =
      dlq->add_subcommand("redrive", "Send dead letters back to the queue");
  dlq_redrive->add_option("ID", dq_id, "Dead letter id");
  dlq_redrive->add_flag("--all", dq_all, "Every dead letter");
  CLI::App* dlq_purge = dlq->add_subcommand("purge", "Delete dead letters");
  dlq_purge->add_flag("--yes", dq_yes, "Really delete them");

  // replay
  std::string rp_config, rp_run, rp_destination;
  bool rp_json = false;
  CLI::App* replay = app.add_subcommand(
      "replay", "Deliver a run's files again (a card company lost them)");
  replay->add_option("--config", rp_config, "Config file (TOML)");
  replay->add_option("--destination", rp_destination,
                     "Only this destination's files");
  replay->add_flag("--json", rp_json, "JSON output");
  replay->add_option("RUN", rp_run, "Run id")->required();

  // lambda: the Lambda runtime (the package's bootstrap runs it)
  CLI::App* lambda = app.add_subcommand(
      "lambda",
      "Run as an AWS Lambda function (custom runtime; settings from the "
      "environment Lambda sets)");

  // export-asl
  std::string ea_out;
  CLI::App* export_asl = app.add_subcommand(
      "export-asl",
      "Write the Step Functions definition generated from the workflow");
  export_asl->add_option("--out", ea_out, "Output file (default stdout)");

  // `--config` is accepted before or after the operator subcommand.
  for (CLI::App* sub : {runs_list, runs_show}) {
    sub->add_option("--config", rn_config, "Config file (TOML)");
  }
  for (CLI::App* sub : {dlq_list, dlq_show, dlq_redrive, dlq_purge}) {
    sub->add_option("--config", dq_config, "Config file (TOML)");
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : cbpipe::kExitUsage;
  }

  if (*validate) {
    va.format = FormatOption(va_format);
    return cbpipe::RunValidate(va);
  }
  if (*run) return cbpipe::RunPipeline(ra);
  if (*gen) {
    return GenSample(gs_records, gs_ratio, gs_format, gs_seed, gs_output);
  }
  if (*check) return cbpipe::RunConfigCheck(cc_path);
  if (*serve) return cbpipe::RunServe(sv_config);
  if (*lambda) return cbpipe::RunLambda();

  if (*export_asl) return cbpipe::RunExportAsl(ea_out);
  // The operator commands read the service's files named by the config.
  auto with_config = [](const std::string& path, auto&& fn) {
    cbpipe::StatusOr<cbpipe::Config> config =
        cbpipe::LoadConfigOrDefault(path);
    if (!config.ok()) {
      std::fprintf(stderr, "cbpipe: %s\n",
                   config.status().message().c_str());
      return cbpipe::kExitUsage;
    }
    return fn(*config);
  };
  if (*submit) {
    return with_config(sb_config, [&](const cbpipe::Config& c) {
      return cbpipe::Submit(c, sb_files);
    });
  }
  if (*runs_list) {
    return with_config(rn_config, [&](const cbpipe::Config& c) {
      return cbpipe::RunsList(c, rn_state, rn_limit, rn_json);
    });
  }
  if (*runs_show) {
    return with_config(rn_config, [&](const cbpipe::Config& c) {
      return cbpipe::RunsShow(c, rn_id, rn_json);
    });
  }
  if (*dlq_list) {
    return with_config(dq_config, [&](const cbpipe::Config& c) {
      return cbpipe::DlqList(c, dq_json);
    });
  }
  if (*dlq_show) {
    return with_config(dq_config, [&](const cbpipe::Config& c) {
      return cbpipe::DlqShow(c, dq_id, dq_json);
    });
  }
  if (*dlq_redrive) {
    if (dq_id.empty() == !dq_all) {
      std::fprintf(stderr, "cbpipe dlq redrive: give an ID or --all\n");
      return cbpipe::kExitUsage;
    }
    return with_config(dq_config, [&](const cbpipe::Config& c) {
      return cbpipe::DlqRedrive(c, dq_id, dq_all);
    });
  }
  if (*dlq_purge) {
    return with_config(dq_config, [&](const cbpipe::Config& c) {
      return cbpipe::DlqPurge(c, dq_yes);
    });
  }
  if (*replay) {
    return with_config(rp_config, [&](const cbpipe::Config& c) {
      return cbpipe::Replay(c, rp_run, rp_json, rp_destination);
    });
  }
  return cbpipe::kExitUsage;
}
