#include "lambda/function.h"

#include <charconv>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "common/sha256.h"
#include "common/url.h"
#include "config/config.h"
#include "domain/pan.h"
#include "telemetry/emf_metrics.h"
#include "telemetry/log.h"
#include "telemetry/metrics.h"
#include "telemetry/xray.h"
#include "workflow/definition.h"
#include "workflow/ports.h"
#include "workflow/registry.h"
#include "workflow/s3_events.h"
#include "workflow/steps.h"

namespace cbpipe {

using json = nlohmann::json;

namespace {

constexpr std::string_view kStartHandler = "start";

void TaskNames(const StateMachine& machine, std::set<std::string>* out) {
  for (const auto& [name, state] : machine.states) {
    if (state.type == StateType::kTask) out->insert(name);
    if (state.processor) TaskNames(*state.processor, out);
  }
}

StatusOr<std::string> ReadObject(ObjectStore& store, const std::string& key) {
  CBPIPE_ASSIGN_OR_RETURN(std::unique_ptr<ObjectReader> reader, store.Get(key));
  std::string text;
  char buf[64 * 1024];
  for (;;) {
    CBPIPE_ASSIGN_OR_RETURN(size_t n, reader->Read(buf, sizeof buf));
    if (n == 0) break;
    text.append(buf, n);
  }
  return text;
}

StatusOr<Config> LoadLambdaConfig(const LambdaSettings& s) {
  if (s.config.starts_with("s3://")) {
    const size_t slash = s.config.find('/', 5);
    if (slash == std::string::npos || slash + 1 == s.config.size()) {
      return InvalidArgumentError("CBPIPE_CONFIG: want s3://bucket/key, got " +
                                  s.config);
    }
    CBPIPE_ASSIGN_OR_RETURN(std::unique_ptr<ObjectStore> store,
                            OpenObjectStore(s.config.substr(0, slash)));
    CBPIPE_ASSIGN_OR_RETURN(std::string text,
                            ReadObject(*store, s.config.substr(slash + 1)));
    return ParseConfig(text, s.config);
  }
  std::filesystem::path path(s.config);
  if (path.is_relative() && !s.task_root.empty())
    path = std::filesystem::path(s.task_root) / path;
  return LoadConfig(path.string());
}

// `url`'s bucket and key prefix ("" for none) when it is s3://.
struct S3Root {
  std::string bucket, prefix;
};
StatusOr<S3Root> S3RootOf(const std::string& url) {
  CBPIPE_ASSIGN_OR_RETURN(AdapterUrl u, ParseAdapterUrl(url, "object store"));
  if (u.scheme != "s3") {
    return InvalidArgumentError(
        "service.object_store: start needs an s3:// object store");
  }
  std::string prefix = u.path;
  while (!prefix.empty() && prefix.front() == '/') prefix.erase(0, 1);
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  return S3Root{u.host, prefix};
}

EmfOptions LambdaEmfOptions(const Config& c) {
  EmfOptions emf = c.telemetry.emf;
  emf.output = "stdout";
  emf.gauge_interval_ms = 0;  // no thread: nothing runs between invocations
  return emf;
}

// Lambda's X-Ray daemon (AWS_XRAY_DAEMON_ADDRESS, set when the function
// has active tracing) or [telemetry] xray; a disabled tracer otherwise.
StatusOr<std::unique_ptr<XRayTracer>> LambdaTracer(const Config& c) {
  XRayOptions options = c.telemetry.xray;
  const char* daemon = std::getenv("AWS_XRAY_DAEMON_ADDRESS");
  if (daemon && *daemon) options.enabled = true;
  return XRayTracer::Create(ResolveXRayOptions(options, std::getenv));
}

// A destination from the template's variables: the rest of its connection
// from its secret's other keys (function.h). Messages name the destination
// and the reference, never a value.
Status CompleteFromSecret(SecretStore& secrets, DestinationConfig* d) {
  const std::string suffix = "#password";
  if (!d->password_ref.ends_with(suffix)) return OkStatus();
  const std::string secret =
      d->password_ref.substr(0, d->password_ref.size() - suffix.size());
  const std::string where = "destination " + d->name + ": ";
  // Whether the secret has `key`; its value into `value` when given (the
  // user name and fingerprint: a password or key is never copied out).
  auto has = [&](const char* key, std::string* value) -> StatusOr<bool> {
    StatusOr<SecretString> v = secrets.Resolve(secret + "#" + key);
    if (v.status().code() == StatusCode::kNotFound) return false;
    if (!v.ok()) return Status(v.status().code(), where + v.status().message());
    if (value) *value = v->value();
    return true;
  };
  auto missing = [&](const std::string& what) {
    return InvalidArgumentError(where + secret + " has no " + what);
  };
  if (UrlUserinfo(d->url).empty()) {
    CBPIPE_ASSIGN_OR_RETURN(bool user, has("username", &d->username));
    if (!user) return missing("\"username\" (nor has the URL a user@)");
  }
  CBPIPE_ASSIGN_OR_RETURN(bool key, has("private_key", nullptr));
  if (key) d->private_key_ref = secret + "#private_key";
  CBPIPE_ASSIGN_OR_RETURN(bool password, has("password", nullptr));
  if (!password) {
    if (!key) return missing("\"password\" nor \"private_key\"");
    d->password_ref.clear();
  }
  if (d->url.starts_with("sftp://")) {
    CBPIPE_ASSIGN_OR_RETURN(bool host_key,
                            has("host_key_sha256", &d->host_key_sha256));
    if (!host_key) {
      return missing(
          "\"host_key_sha256\" (the server's key fingerprint, ssh-keygen -l "
          "-E sha256)");
    }
  }
  return OkStatus();
}

std::string HexSha256(std::string_view text) {
  Sha256 sha;
  sha.Update(text.data(), text.size());
  StatusOr<std::string> hex = sha.FinishHex();
  return hex.ok() ? *hex : std::string();
}

}  // namespace

StatusOr<LambdaSettings> LambdaSettingsFromEnv(
    const std::function<const char*(const char*)>& getenv) {
  auto get = [&](const char* name) {
    const char* v = getenv(name);
    return std::string(v ? v : "");
  };
  LambdaSettings s;
  s.runtime_api = get("AWS_LAMBDA_RUNTIME_API");
  if (s.runtime_api.empty())
    return InvalidArgumentError("AWS_LAMBDA_RUNTIME_API is not set");
  s.handler = get("_HANDLER");
  s.task_root = get("LAMBDA_TASK_ROOT");
  s.state_machine_arn = get("CBPIPE_STATE_MACHINE_ARN");
  const std::vector<std::string> template_vars = LambdaConfigVariablesSet(getenv);
  if (std::string c = get("CBPIPE_CONFIG"); !c.empty()) {
    if (!template_vars.empty()) {
      std::string names;
      for (const std::string& n : template_vars)
        names += (names.empty() ? "" : ", ") + n;
      return InvalidArgumentError(
          "CBPIPE_CONFIG is set together with " + names +
          ": give the config one way (CBPIPE_CONFIG alone, or the template's "
          "variables without it)");
    }
    s.config = c;
  } else if (!template_vars.empty()) {
    CBPIPE_ASSIGN_OR_RETURN(
        s.environment_config,
        ConfigFromLambdaEnvironment(getenv, s.handler == kStartHandler
                                                ? LambdaConfigRole::kStart
                                                : LambdaConfigRole::kStep));
  }
  if (std::string m = get("CBPIPE_LAMBDA_DEADLINE_MARGIN_MS"); !m.empty()) {
    int64_t v = -1;
    const auto [end, ec] = std::from_chars(m.data(), m.data() + m.size(), v);
    if (ec != std::errc() || end != m.data() + m.size() || v < 0) {
      return InvalidArgumentError(
          "CBPIPE_LAMBDA_DEADLINE_MARGIN_MS: want milliseconds, got \"" + m +
          "\"");
    }
    s.deadline_margin_ms = v;
  }
  return s;
}

std::vector<std::string> LambdaHandlerNames() {
  std::set<std::string> names;
  StatusOr<WorkflowDefinition> def = CbpipeWorkflowDefinition();
  if (def.ok()) TaskNames(def->root(), &names);
  std::vector<std::string> out(names.begin(), names.end());
  out.emplace_back(kStartHandler);
  return out;
}

std::vector<LambdaConfigVariable> LambdaVariablesOf(const std::string& handler) {
  const bool start = handler == kStartHandler;
  std::vector<LambdaConfigVariable> out = LambdaConfigVariables(
      start ? LambdaConfigRole::kStart : LambdaConfigRole::kStep);
  if (start) out.push_back({"CBPIPE_STATE_MACHINE_ARN", true});
  out.push_back({"CBPIPE_LAMBDA_DEADLINE_MARGIN_MS", false});
  return out;
}

struct LambdaFunction::State {
  LambdaSettings settings;
  Config config;
  std::unique_ptr<ObjectStore> inputs, work;
  std::unique_ptr<DeliveryLedger> ledger;
  std::unique_ptr<Notifier> notifier;
  std::unique_ptr<SecretStore> secrets;
  std::unique_ptr<EmfMetrics> metrics;
  std::shared_ptr<AwsClient> aws;  // start only
  std::unique_ptr<XRayTracer> tracer;
  Ports ports;
};

LambdaFunction::LambdaFunction(std::unique_ptr<State> state)
    : s_(std::move(state)) {}

LambdaFunction::~LambdaFunction() {
  if (s_->notifier) s_->notifier->Flush(std::chrono::seconds(5)).IgnoreError();
}

StatusOr<std::unique_ptr<LambdaFunction>> LambdaFunction::Create(
    const LambdaSettings& settings) {
  const std::vector<std::string> names = LambdaHandlerNames();
  if (std::find(names.begin(), names.end(), settings.handler) == names.end()) {
    std::string known;
    for (const std::string& n : names) known += (known.empty() ? "" : ", ") + n;
    return InvalidArgumentError("_HANDLER: unknown handler \"" +
                                settings.handler + "\" (known: " + known + ")");
  }
  auto s = std::make_unique<State>();
  s->settings = settings;
  if (settings.environment_config) {
    s->config = *settings.environment_config;
  } else {
    CBPIPE_ASSIGN_OR_RETURN(s->config, LoadLambdaConfig(settings));
  }
  // A relative work dir is under the temporary folder: Lambda's only
  // writable one (the task root is read-only).
  if (std::filesystem::path(s->config.work_dir).is_relative()) {
    const char* tmp = std::getenv("TMPDIR");
    s->config.work_dir =
        (std::filesystem::path(tmp && *tmp ? tmp : "/tmp") / s->config.work_dir)
            .string();
  }
  const Config& c = s->config;
  const AwsOptions aws = c.aws.value_or(AwsOptions{});
  Env* env = Env::Default();
  if (settings.handler == kStartHandler) {
    if (settings.state_machine_arn.empty()) {
      return InvalidArgumentError(
          "CBPIPE_STATE_MACHINE_ARN: the start handler needs the state "
          "machine to start");
    }
    CBPIPE_RETURN_IF_ERROR(S3RootOf(c.service.object_store).status());
    CBPIPE_ASSIGN_OR_RETURN(s->aws, AwsClientFor(aws));
  }
  const bool start = settings.handler == kStartHandler;
  for (const auto& [key, url] :
       {std::pair{"service.object_store", &c.service.object_store},
        std::pair{"service.work_store", &c.service.work_store},
        std::pair{"service.ledger", &c.service.ledger}}) {
    if (url->empty() && (!start || url == &c.service.object_store)) {
      return InvalidArgumentError(
          std::string(key) +
          ": a Lambda function needs it (nothing is kept on its disk)");
    }
  }
  CBPIPE_ASSIGN_OR_RETURN(s->inputs,
                          OpenObjectStore(c.service.object_store, aws));
  s->secrets = OpenSecretStoreFor(aws, env);
  CBPIPE_ASSIGN_OR_RETURN(s->tracer, LambdaTracer(c));
  if (start) {
    // start opens only the inputs: its template gives it nothing else.
    s->metrics = std::make_unique<EmfMetrics>(
        PipelineMetricSpecs(), LambdaEmfOptions(c), EmfStdoutWriter());
    s->ports.config = &s->config;
    s->ports.inputs = s->inputs.get();
    s->ports.env = env;
    return std::unique_ptr<LambdaFunction>(new LambdaFunction(std::move(s)));
  }
  CBPIPE_ASSIGN_OR_RETURN(s->work, OpenObjectStore(c.service.work_store, aws));
  CBPIPE_ASSIGN_OR_RETURN(s->ledger,
                          OpenDeliveryLedger(c.service.ledger, env, aws));
  if (settings.environment_config && settings.handler == "deliver") {
    for (DestinationConfig& d : s->config.destinations)
      CBPIPE_RETURN_IF_ERROR(CompleteFromSecret(*s->secrets, &d));
  }
  if (c.sns) {
    SnsOptions o;
    o.topic_arn = c.sns->topic_arn;
    o.alert_topic_arn = c.sns->alert_topic_arn;
    o.queue_capacity = static_cast<size_t>(c.sns->queue_capacity);
    CBPIPE_ASSIGN_OR_RETURN(s->notifier, OpenSnsNotifier(std::move(o), aws));
  }
  s->metrics = std::make_unique<EmfMetrics>(
      PipelineMetricSpecs(), LambdaEmfOptions(c), EmfStdoutWriter());
  Ports& p = s->ports;
  p.config = &s->config;
  p.inputs = s->inputs.get();
  p.work = s->work.get();
  p.ledger = s->ledger.get();
  p.notifier = s->notifier.get();
  p.secrets = s->secrets.get();
  p.metrics = s->metrics.get();
  p.env = env;
  return std::unique_ptr<LambdaFunction>(new LambdaFunction(std::move(s)));
}

StatusOr<std::string> LambdaFunction::Handle(const LambdaInvocation& invocation,
                                             const std::atomic<bool>& stop) {
  // The step as a subsegment of Lambda's function segment; the AWS calls
  // made on this thread in it are its subsegments (XRayAwsCalls).
  XRaySpan span = s_->tracer->BeginSubsegmentUnder(
      ParseXRayTraceHeader(invocation.trace_id), s_->settings.handler);
  span.Annotate("request_id", invocation.request_id);
  XRayCurrentScope scope(span.active() ? &span : nullptr);
  StatusOr<std::string> out = [&]() -> StatusOr<std::string> {
    if (s_->settings.handler == kStartHandler)
      return Start(invocation.event, stop);
    const json event = json::parse(invocation.event, nullptr, false);
    if (event.is_discarded())
      return InvalidArgumentError("the event is not JSON");
    // One invocation at a time: the runtime joins the previous one first.
    s_->ports.stop = &stop;
    StatusOr<json> stepped = RunStep(s_->settings.handler, event, s_->ports);
    s_->ports.stop = nullptr;
    CBPIPE_ASSIGN_OR_RETURN(json result, std::move(stepped));
    return result.dump(-1, ' ', false, json::error_handler_t::replace);
  }();
  // Nothing may wait for the next invocation: Lambda freezes the process.
  if (s_->notifier) {
    Status flushed = s_->notifier->Flush(std::chrono::seconds(5));
    if (!flushed.ok()) Log().Warn("notify.flush", flushed.ToString());
  }
  s_->metrics->FlushGauges();
  span.SetStatus(out.status());
  span.End();
  return out;
}

StatusOr<std::string> LambdaFunction::Start(const std::string& event,
                                            const std::atomic<bool>& stop) {
  const json in = json::parse(event, nullptr, false);
  if (!in.is_object() || !in.contains("Records") || !in["Records"].is_array())
    return InvalidArgumentError("start: the event is not an SQS batch (Records)");
  CBPIPE_ASSIGN_OR_RETURN(S3Root root, S3RootOf(s_->config.service.object_store));
  json failures = json::array();
  for (const json& record : in["Records"]) {
    const std::string id = record.value("messageId", "");
    auto fail = [&](const Status& why) {
      Log().Warn("lambda.start_failed",
                 MaskCardNumbersInStatus(why).ToString(),
                 {LogField::Id("message_id", id)});
      failures.push_back({{"itemIdentifier", id}});
    };
    if (stop.load()) {
      fail(DeadlineExceededError("deadline: not started"));
      continue;
    }
    if (!record.contains("body") || !record["body"].is_string()) {
      fail(InvalidArgumentError("start: an SQS record without a body"));
      continue;
    }
    StatusOr<S3EventBatch> batch =
        ParseS3Events(record["body"].get<std::string>());
    if (!batch.ok()) {
      fail(batch.status());
      continue;
    }
    for (const std::string& why : batch->ignored)
      Log().Info("lambda.start_ignored", why);
    Status failed;
    for (const S3ObjectRef& o : batch->created) {
      Status st = StartExecution(root.bucket, root.prefix, o);
      if (!st.ok() && failed.ok()) failed = st;
    }
    if (!failed.ok()) fail(failed);
  }
  return json{{"batchItemFailures", failures}}.dump();
}

}  // namespace cbpipe

namespace cbpipe {

Status LambdaFunction::StartExecution(const std::string& bucket,
                                      const std::string& prefix,
                                      const S3ObjectRef& o) {
  if (o.bucket != bucket ||
      (!prefix.empty() && !o.key.starts_with(prefix + "/"))) {
    return InvalidArgumentError(
        "start: s3://" + MaskCardNumbers(o.bucket + "/" + o.key) +
        " is not under service.object_store");
  }
  // As serve does: a key naming a card number would carry it into the
  // execution's input and history. The message goes back (batchItemFailures)
  // and on to the queue's dead letters, for a person to rename the object.
  if (MaskCardNumbers(o.key) != o.key) {
    return InvalidArgumentError(
        "start: s3://" + MaskCardNumbers(o.bucket + "/" + o.key) +
        ": its key holds a card number, which cbpipe never stores; rename "
        "the object");
  }
  const std::string input_key =
      prefix.empty() ? o.key : o.key.substr(prefix.size() + 1);
  // The name: the object's identity and content (its ETag), so S3's
  // at-least-once events start one execution per object version.
  std::string content = o.etag;
  if (content.empty()) {
    CBPIPE_ASSIGN_OR_RETURN(std::unique_ptr<ObjectReader> reader,
                            s_->inputs->Get(input_key));
    Sha256 sha;
    char buf[64 * 1024];
    for (;;) {
      CBPIPE_ASSIGN_OR_RETURN(size_t n, reader->Read(buf, sizeof buf));
      if (n == 0) break;
      sha.Update(buf, n);
    }
    CBPIPE_ASSIGN_OR_RETURN(content, sha.FinishHex());
  }
  const std::string name = HexSha256(o.bucket + "/" + o.key + "\n" + content);
  if (name.empty()) return InternalError("start: SHA-256 failed");
  const json input = {{"run_id", name},
                      {"trace_id", name.substr(0, 32)},
                      {"now_ms", s_->ports.env->NowMs()},
                      {"input_key", input_key},
                      {"input_name", MaskCardNumbers(o.key)},
                      {"name_by_content", true}};
  json request = {{"stateMachineArn", s_->settings.state_machine_arn},
                  {"name", name},
                  {"input", input.dump(-1, ' ', false,
                                       json::error_handler_t::replace)}};
  const char* trace = std::getenv("_X_AMZN_TRACE_ID");
  if (trace && *trace) request["traceHeader"] = trace;
  AwsError error;
  StatusOr<std::string> answer = s_->aws->CallJson(
      "states", "AWSStepFunctions.StartExecution", request.dump(),
      s_->settings.state_machine_arn, "", &error);
  if (!answer.ok() && error.code != "ExecutionAlreadyExists")
    return answer.status();
  Log().Info("lambda.execution_started",
             answer.ok() ? "started" : "already started",
             {LogField::Id("execution", name),
              LogField("input", MaskCardNumbers(o.key))});
  return OkStatus();
}

}  // namespace cbpipe
