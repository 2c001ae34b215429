#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "app/commands.h"
#include "common/text_safety.h"
#include "domain/dates.h"
#include "domain/pan.h"
#include "workflow/input_scan.h"

namespace cbpipe {

StatusOr<int64_t> NowEpochSeconds() {
  const char* fixed = std::getenv("CBPIPE_NOW");
  if (fixed && *fixed) {
    std::string_view text(fixed);
    bool digits = true;
    for (char c : text) digits &= (c >= '0' && c <= '9');
    if (digits && text.size() < 19) return std::stoll(std::string(text));
    std::optional<DateTime> dt = ParseDateTime(text, {});
    if (!dt) {
      return InvalidArgumentError(
          "CBPIPE_NOW must be epoch seconds or an ISO 8601 date-time");
    }
    return dt->EpochSeconds();
  }
  return static_cast<int64_t>(std::time(nullptr));
}

StatusOr<Config> LoadConfigOrDefault(const std::string& path) {
  if (path.empty()) return DefaultConfig("cbpipe-out");
  return LoadConfig(path);
}

namespace {

nlohmann::json ErrorJson(const RecordError& e) {
  return {{"position", e.position},
          {"case_id", e.case_id},
          {"field", e.field},
          {"code", ErrorCodeName(e.code)},
          {"message", e.message}};
}

}  // namespace

int RunValidate(const ValidateArgs& args) {
  StatusOr<Config> config = LoadConfigOrDefault(args.config_path);
  if (!config.ok()) {
    std::fprintf(stderr, "cbpipe validate: %s\n",
                 EscapeForTerminal(config.status().message()).c_str());
    return kExitUsage;
  }
  StatusOr<int64_t> now = NowEpochSeconds();
  if (!now.ok()) {
    std::fprintf(stderr, "cbpipe validate: %s\n",
                 now.status().message().c_str());
    return kExitUsage;
  }
  if (args.format) config->format = *args.format;

  nlohmann::json doc = {{"ok", true}, {"inputs", nlohmann::json::array()}};
  bool any_rejected = false, any_unreadable = false;
  for (const std::string& path : args.inputs) {
    // The name is shown, and may be a card number: masked like any text.
    const std::string input = MaskCardNumbers(path);
    const size_t keep =
        args.json ? static_cast<size_t>(config->max_errors_reported)
                  : static_cast<size_t>(args.max_errors_shown);
    InputScan scan;
    ScanInput(path, *config, *now, keep,
              [](const Record&, std::vector<RecordError>*) {
                return OkStatus();
              },
              nullptr, &scan);
    any_rejected |= scan.rejected > 0;
    any_unreadable |= !scan.input_error.ok();

    if (args.json) {
      nlohmann::json by_network = nlohmann::json::object();
      for (Network n : kAllNetworks)
        by_network[std::string(NetworkName(n))] =
            scan.by_network[static_cast<int>(n)];
      nlohmann::json errors = nlohmann::json::array();
      for (const RecordError& e : scan.errors) errors.push_back(ErrorJson(e));
      nlohmann::json input_error = nullptr;
      if (!scan.input_error.ok()) {
        input_error = {{"code", StatusCodeName(scan.input_error.code())},
                       {"message", scan.input_error.message()},
                       {"position", scan.error_position}};
      }
      doc["inputs"].push_back(
          {{"input", input},
           {"format", scan.format_name},
           {"records", scan.records},
           {"accepted", scan.accepted},
           {"rejected", scan.rejected},
           {"by_network", by_network},
           {"errors", errors},
           {"errors_truncated", scan.errors_truncated},
           {"input_error", input_error}});
      continue;
    }
    // The human output goes to a terminal: everything that came from the
    // input (its name, values quoted in messages, case ids) is escaped, so
    // that an ESC or a bidi override in it cannot act on the terminal.
    const std::string shown_input = EscapeForTerminal(input);
    if (!scan.input_error.ok()) {
      // Over a limit (size, compression ratio, rejects) the input was read
      // but refused as a whole; anything else could not be read at all.
      const bool refused =
          scan.input_error.code() == StatusCode::kResourceExhausted;
      std::printf("%s: %s: %s\n", shown_input.c_str(),
                  refused ? "REJECTED AS A WHOLE" : "UNREADABLE",
                  EscapeForTerminal(scan.input_error.message()).c_str());
      if (scan.records > 0) {
        std::printf("  (%llu records were read before the error; none of "
                    "this input is accepted)\n",
                    static_cast<unsigned long long>(scan.records));
      }
      continue;
    }
    std::printf("%s (%s): %llu records, %llu accepted, %llu rejected\n",
                shown_input.c_str(), scan.format_name.c_str(),
                static_cast<unsigned long long>(scan.records),
                static_cast<unsigned long long>(scan.accepted),
                static_cast<unsigned long long>(scan.rejected));
    std::printf("  accepted by network:");
    for (Network n : kAllNetworks) {
      std::printf(" %s %llu", std::string(NetworkName(n)).c_str(),
                  static_cast<unsigned long long>(
                      scan.by_network[static_cast<int>(n)]));
    }
    std::printf("\n");
    for (const RecordError& e : scan.errors) {
      std::printf(
          "  %s %llu  case %s  %s  %s  %s\n",
          scan.format_name == "json" ? "index" : "line",
          static_cast<unsigned long long>(e.position),
          e.case_id.empty() ? "-" : EscapeForTerminal(e.case_id).c_str(),
          EscapeForTerminal(e.field).c_str(),
          std::string(ErrorCodeName(e.code)).c_str(),
          EscapeForTerminal(e.message).c_str());
    }
    if (scan.errors_truncated > 0) {
      std::printf("  ... and %llu more errors (use --json or --max-errors)\n",
                  static_cast<unsigned long long>(scan.errors_truncated));
    }
  }
  doc["ok"] = !any_rejected && !any_unreadable;
  // JSON escapes control characters itself; bytes that are not UTF-8 (a
  // file name can hold any) become U+FFFD instead of an exception.
  if (args.json) {
    std::printf("%s\n", doc.dump(2, ' ', false,
                                 nlohmann::json::error_handler_t::replace)
                            .c_str());
  }
  if (any_unreadable) return kExitUsage;
  return any_rejected ? kExitRejected : kExitOk;
}

}  // namespace cbpipe
