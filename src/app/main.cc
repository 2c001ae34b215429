// cbpipe: validates chargeback files, writes one CSV per card company and
// delivers them. `cbpipe --help` lists the commands; docs/ has the details.
#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "app/commands.h"
#include "app/gen_sample.h"

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
  return cbpipe::kExitUsage;
}
