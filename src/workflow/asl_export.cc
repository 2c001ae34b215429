#include "workflow/asl_export.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <set>
#include <vector>

namespace cbpipe {
namespace {

using json = nlohmann::json;

constexpr std::string_view kTransient = "Cbpipe.Transient";
constexpr std::string_view kInvalidInput = "Cbpipe.InvalidInput";
constexpr std::string_view kPermanent = "Cbpipe.Permanent";

// The Lambda service's own transient errors, retried with Cbpipe.Transient.
constexpr std::array<std::string_view, 4> kLambdaTransient = {
    "Lambda.ServiceException", "Lambda.AWSLambdaException",
    "Lambda.SdkClientException", "Lambda.TooManyRequestsException"};

constexpr std::string_view kDeadLetter = "dead_letter";
constexpr std::string_view kAlert = "alert";
constexpr std::string_view kAlertRejected = "alert_rejected";

// Every code but kOk, in enum order.
std::vector<StatusCode> AllErrorCodes() {
  std::vector<StatusCode> codes;
  for (int c = static_cast<int>(StatusCode::kInvalidArgument);
       c <= static_cast<int>(StatusCode::kInternal); ++c) {
    codes.push_back(static_cast<StatusCode>(c));
  }
  return codes;
}

bool IsCodeName(std::string_view name) {
  for (StatusCode c : AllErrorCodes()) {
    if (StatusCodeName(c) == name) return true;
  }
  return false;
}

// ErrorEquals with Status code names replaced by the errorType classes;
// `where` names the list in errors.
StatusOr<json> MapErrorEquals(const std::vector<std::string>& names,
                              bool lambda_task, const std::string& where) {
  std::set<std::string_view> named;
  for (const std::string& n : names) named.insert(n);
  json out = json::array();
  std::set<std::string_view> written;
  for (const std::string& n : names) {
    if (!IsCodeName(n)) {
      if (n.rfind("States.", 0) != 0) {
        return InvalidArgumentError(where + ": " + n +
                                    " is neither a Status code name nor "
                                    "States.*");
      }
      if (written.insert(n).second) out.push_back(n);
      continue;
    }
    const std::string_view cls = AslErrorName(StatusCodeFromName(n));
    if (written.count(cls)) continue;
    // The class stands for every code in it: the rule must name them all.
    std::string missing;
    for (StatusCode c : AllErrorCodes()) {
      if (AslErrorName(c) == cls && !named.count(StatusCodeName(c))) {
        missing += (missing.empty() ? "" : ", ") +
                   std::string(StatusCodeName(c));
      }
    }
    if (!missing.empty()) {
      return InvalidArgumentError(
          where + ": names " + n + " but not " + missing + ": on AWS they " +
          "are all errorType " + std::string(cls) + " and cannot be told " +
          "apart");
    }
    written.insert(cls);
    out.push_back(std::string(cls));
    if (cls == kTransient && lambda_task) {
      for (std::string_view e : kLambdaTransient) {
        written.insert(e);
        out.push_back(std::string(e));
      }
    }
  }
  return out;
}

StatusOr<int> WholeSeconds(double seconds, const std::string& where) {
  if (seconds != std::floor(seconds) || seconds < 0 || seconds > 99999999) {
    return InvalidArgumentError(where +
                                ": Step Functions takes whole seconds, not " +
                                json(seconds).dump());
  }
  return static_cast<int>(seconds);
}

StatusOr<json> ExportRetry(const std::vector<RetryRule>& rules, bool task,
                           const std::string& where) {
  json out = json::array();
  for (size_t i = 0; i < rules.size(); ++i) {
    const RetryRule& r = rules[i];
    const std::string at = where + ".Retry[" + std::to_string(i) + "]";
    json rule;
    CBPIPE_ASSIGN_OR_RETURN(rule["ErrorEquals"],
                            MapErrorEquals(r.error_equals, task,
                                           at + ".ErrorEquals"));
    CBPIPE_ASSIGN_OR_RETURN(
        int interval, WholeSeconds(r.interval_seconds, at + ".IntervalSeconds"));
    if (interval < 1) {
      return InvalidArgumentError(at + ".IntervalSeconds: must be >= 1");
    }
    rule["IntervalSeconds"] = interval;
    rule["BackoffRate"] = r.backoff_rate;
    rule["MaxAttempts"] = r.max_attempts;
    if (r.max_delay_seconds > 0) {
      CBPIPE_ASSIGN_OR_RETURN(
          rule["MaxDelaySeconds"],
          WholeSeconds(r.max_delay_seconds, at + ".MaxDelaySeconds"));
    }
    rule["JitterStrategy"] = r.full_jitter ? "FULL" : "NONE";
    out.push_back(std::move(rule));
  }
  return out;
}

StatusOr<json> ExportCatch(const std::vector<CatchRule>& rules, bool task,
                           const std::string& where) {
  json out = json::array();
  for (size_t i = 0; i < rules.size(); ++i) {
    const CatchRule& c = rules[i];
    json rule;
    CBPIPE_ASSIGN_OR_RETURN(
        rule["ErrorEquals"],
        MapErrorEquals(c.error_equals, task,
                       where + ".Catch[" + std::to_string(i) + "].ErrorEquals"));
    rule["Next"] = c.next;
    rule["ResultPath"] = c.result_path.discard ? json(nullptr)
                                               : json(c.result_path.ToString());
    out.push_back(std::move(rule));
  }
  return out;
}

// Step Functions wants every state name unique in the whole document; the
// export adds some (item_failed, dead_letter, ...).
Status CheckUniqueNames(const json& states, std::set<std::string>* seen) {
  for (auto it = states.begin(); it != states.end(); ++it) {
    if (!seen->insert(it.key()).second) {
      return FailedPreconditionError(
          "States." + it.key() +
          ": two states of that name (Step Functions wants them unique; "
          "the export adds *_item_failed, dead_letter, alert, "
          "alert_rejected)");
    }
    if (it->contains("ItemProcessor")) {
      CBPIPE_RETURN_IF_ERROR(
          CheckUniqueNames((*it)["ItemProcessor"]["States"], seen));
    }
  }
  return OkStatus();
}

bool CatchesAll(const json& state) {
  if (!state.contains("Catch")) return false;
  for (const json& c : state["Catch"]) {
    for (const json& e : c["ErrorEquals"]) {
      if (e == "States.ALL") return true;
    }
  }
  return false;
}

// A Task calling an AWS service integration (SQS, SNS): its result is
// discarded, its own failures retried.
json IntegrationTask(std::string resource, json parameters, int max_attempts,
                     int max_delay_seconds) {
  json retry = {{"ErrorEquals", {"States.TaskFailed"}},
                {"IntervalSeconds", 1},
                {"BackoffRate", 2.0},
                {"MaxAttempts", max_attempts},
                {"JitterStrategy", "FULL"}};
  if (max_delay_seconds > 0) retry["MaxDelaySeconds"] = max_delay_seconds;
  return {{"Type", "Task"},
          {"Resource", std::move(resource)},
          {"Parameters", std::move(parameters)},
          {"ResultPath", nullptr},
          {"Retry", json::array({std::move(retry)})}};
}

json SnsAlert(std::string subject, std::string next, std::string comment) {
  json s = IntegrationTask("arn:aws:states:::sns:publish",
                           {{"TopicArn", "${AlertTopicArn}"},
                            {"Subject", std::move(subject)},
                            {"Message",
                             {{"execution.$", "$$.Execution.Id"},
                              {"run_id.$", "$.run_id"},
                              {"error.$", "$.error"}}}},
                           3, 0);
  s["Comment"] = std::move(comment);
  if (next.empty()) {
    s["End"] = true;
  } else {
    s["Next"] = std::move(next);
  }
  return s;
}

class Exporter {
 public:
  explicit Exporter(const AslExportOptions& options) : options_(options) {}

  // The "States" object of `machine`, whose raw text is `raw`. A non-empty
  // `item_failed` names the Pass state a failed item ends in (the Map
  // tolerates every failure).
  StatusOr<json> Machine(const StateMachine& machine, const json& raw,
                         const std::string& where,
                         const std::string& item_failed) {
    const bool tolerate_failures = !item_failed.empty();
    json out = json::object();
    out["StartAt"] = machine.start_at;
    json states = json::object();
    for (const auto& [name, state] : machine.states) {
      const std::string at = where + "States." + name;
      CBPIPE_ASSIGN_OR_RETURN(json s, OneState(state, raw["States"][name], at));
      if (tolerate_failures &&
          (state.type == StateType::kTask || state.type == StateType::kMap) &&
          !CatchesAll(s)) {
        s["Catch"].push_back({{"ErrorEquals", {"States.ALL"}},
                              {"Next", item_failed},
                              {"ResultPath", "$.error"}});
      }
      states[name] = std::move(s);
    }
    if (tolerate_failures) {
      if (states.contains(item_failed)) {
        return FailedPreconditionError(
            "States." + item_failed +
            ": two states of that name (the export adds one where a Map "
            "tolerates failed items)");
      }
      states[item_failed] = {
          {"Type", "Pass"},
          {"Comment",
           "A failed item ends here, its entry the failed state's input with "
           "error: {Error, Cause} (ToleratedFailurePercentage 100)."},
          {"End", true}};
    }
    out["States"] = std::move(states);
    return out;
  }

  Status AddFailurePath(json& doc) {
    json& states = doc["States"];
    if (!options_.dead_letter_after.empty()) {
      const std::string& name = options_.dead_letter_after;
      if (!states.contains(name) || states[name]["Type"] != "Task" ||
          !states[name].contains("Next")) {
        return FailedPreconditionError("States." + name +
                                       ": the failure path follows a Task "
                                       "with Next");
      }
      json& from = states[name];
      const std::string next = from["Next"];
      from["Next"] = kDeadLetter;
      if (!CatchesAll(from)) {
        from["Catch"].push_back({{"ErrorEquals", {"States.ALL"}},
                                 {"Next", kDeadLetter},
                                 {"ResultPath", "$.dead_letter_error"}});
      }
      json& dead_letter = states[kDeadLetter] = IntegrationTask(
          "arn:aws:states:::sqs:sendMessage",
          {{"QueueUrl", "${DeadLetterQueueUrl}"},
           {"MessageBody",
            {{"execution.$", "$$.Execution.Id"},
             {"input.$", "$$.Execution.Input"},
             {"run_id.$", "$.run_id"},
             {"error.$", "$.error"}}}},
          5, 30);
      dead_letter["Comment"] =
          "The run to the dead-letter queue: redrive the execution it names "
          "(docs/aws.md).";
      dead_letter["Catch"] = json::array({{{"ErrorEquals", {"States.ALL"}},
                                           {"Next", kAlert},
                                           {"ResultPath",
                                            "$.dead_letter_error"}}});
      dead_letter["Next"] = kAlert;
      states[kAlert] =
          SnsAlert("cbpipe run failed", next,
                   "An alert: the run failed and is in the dead-letter queue.");
    }
    if (!options_.alert_after_end.empty()) {
      const std::string& name = options_.alert_after_end;
      if (!states.contains(name) || states[name]["Type"] != "Task" ||
          !states[name].value("End", false)) {
        return FailedPreconditionError("States." + name +
                                       ": the alert follows a Task with End");
      }
      states[name].erase("End");
      states[name]["Next"] = kAlertRejected;
      states[kAlertRejected] = SnsAlert(
          "cbpipe input rejected", "",
          "An alert: the input was rejected (quarantined, not processed).");
    }
    return OkStatus();
  }

 private:
  StatusOr<json> OneState(const State& state, const json& raw,
                          const std::string& at) {
    json s = raw;
    s.erase("cbpipe");
    const bool task = state.type == StateType::kTask;
    if (task) s["Resource"] = "${" + AslFunctionArnVariable(state.name) + "}";
    if (raw.contains("Retry")) {
      CBPIPE_ASSIGN_OR_RETURN(s["Retry"], ExportRetry(state.retry, task, at));
    }
    if (raw.contains("Catch")) {
      CBPIPE_ASSIGN_OR_RETURN(s["Catch"],
                              ExportCatch(state.catches, task, at));
    }
    if (state.type == StateType::kMap) {
      const double tolerated = state.tolerated_failure_percentage;
      if (tolerated != 0 && tolerated != 100) {
        return InvalidArgumentError(
            at + ".ToleratedFailurePercentage: an inline Map has none; only "
                 "0 or 100 can be exported");
      }
      s.erase("ToleratedFailurePercentage");
      CBPIPE_ASSIGN_OR_RETURN(
          json processor,
          Machine(*state.processor, raw["ItemProcessor"],
                  at + ".ItemProcessor.",
                  tolerated == 100 ? state.name + "_item_failed" : ""));
      processor["ProcessorConfig"] = {{"Mode", "INLINE"}};
      s["ItemProcessor"] = std::move(processor);
    }
    return s;
  }

  const AslExportOptions& options_;
};

}  // namespace

std::string_view AslErrorName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return "";
    case StatusCode::kUnavailable:
    case StatusCode::kDeadlineExceeded:
    case StatusCode::kAborted:
      return kTransient;
    case StatusCode::kInvalidArgument:
      return kInvalidInput;
    default:
      return kPermanent;
  }
}

std::string AslFunctionArnVariable(std::string_view state) {
  std::string out;
  bool upper = true;
  for (char c : state) {
    if (c == '_' || c == '-' || c == ' ') {
      upper = true;
      continue;
    }
    if (!std::isalnum(static_cast<unsigned char>(c))) continue;
    out += upper ? static_cast<char>(std::toupper(static_cast<unsigned char>(c)))
                 : c;
    upper = false;
  }
  return out + "FunctionArn";
}

StatusOr<nlohmann::json> ExportAsl(const WorkflowDefinition& def,
                                   const AslExportOptions& options) {
  Exporter exporter(options);
  CBPIPE_ASSIGN_OR_RETURN(
      json doc, exporter.Machine(def.root(), def.document(), "", ""));
  json out = {{"Comment",
               "Generated by `cbpipe export-asl` from "
               "src/workflow/cbpipe_workflow.json: do not edit (docs/aws.md)."},
              {"StartAt", doc["StartAt"]},
              {"States", std::move(doc["States"])}};
  std::set<std::string> names;
  CBPIPE_RETURN_IF_ERROR(CheckUniqueNames(out["States"], &names));
  for (std::string_view added : {kDeadLetter, kAlert, kAlertRejected}) {
    if (names.count(std::string(added))) {
      return FailedPreconditionError("States." + std::string(added) +
                                     ": the export adds a state of that name");
    }
  }
  CBPIPE_RETURN_IF_ERROR(exporter.AddFailurePath(out));
  return out;
}

std::string AslText(const nlohmann::json& asl) { return asl.dump(2) + "\n"; }

}  // namespace cbpipe
