// cbpipe serve: the embedded service (workflow/service.h) plus the admin
// HTTP API, JSON logs, notifications and graceful shutdown on SIGTERM and
// SIGINT.
#include <signal.h>

#include <cstdio>
#include <set>
#include <thread>

#include "app/admin_api.h"
#include "app/commands.h"
#include "app/console_api.h"
#include "app/destination_prober.h"
#include "common/process_folder.h"
#include "notify/email_notifier.h"
#include "notify/log_notifier.h"
#include "notify/webhook_notifier.h"
#include "secrets/env_file_secret_store.h"
#include "store/object_store.h"
#include "telemetry/log.h"
#include "telemetry/options.h"
#include "telemetry/prometheus_metrics.h"
#include "workflow/registry.h"
#include "workflow/service.h"

namespace cbpipe {
namespace {

std::chrono::milliseconds Ms(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
}

std::unique_ptr<Notifier> Filtered(const std::vector<std::string>& events,
                                   std::unique_ptr<Notifier> inner) {
  if (events.empty()) return inner;
  return std::make_unique<FilteredNotifier>(
      std::set<std::string>(events.begin(), events.end()), std::move(inner));
}

}  // namespace

StatusOr<std::unique_ptr<Notifier>> BuildNotifier(const Config& config,
                                                  SecretStore* secrets) {
  std::vector<std::unique_ptr<Notifier>> all;
  // The log always gets every event, as a JSON object (EventJson, whose
  // message is already masked), not as a string.
  all.push_back(std::make_unique<LogNotifier>([](std::string_view line) {
    Log().Info({}, "notification", "event sent to the notifiers",
               {LogField::Json("notification", line)});
  }));
  auto log_line = [](std::string_view line) {
    Log().Warn({}, "notification.delivery", line);
  };
  for (const WebhookConfig& w : config.webhooks) {
    WebhookOptions o;
    o.url = w.url;
    o.secret_ref = w.secret_ref;
    o.ca_file = w.ca_file;
    o.allow_insecure = w.allow_insecure;
    o.connect_timeout = Ms(w.connect_timeout_seconds);
    o.request_timeout = Ms(w.request_timeout_seconds);
    o.queue_capacity = static_cast<size_t>(w.queue_capacity);
    o.retry = w.retry;
    o.log = log_line;
    CBPIPE_ASSIGN_OR_RETURN(std::unique_ptr<WebhookNotifier> n,
                            WebhookNotifier::Create(std::move(o), secrets));
    all.push_back(Filtered(w.events, std::move(n)));
  }
  if (config.email) {
    const EmailConfig& e = *config.email;
    EmailOptions o;
    o.url = e.url;
    o.from = e.from;
    o.to = e.to;
    o.username_ref = e.username;
    o.password_ref = e.password_ref;
    o.starttls = e.starttls;
    o.ca_file = e.ca_file;
    o.allow_insecure = e.allow_insecure;
    o.subject_prefix = e.subject_prefix;
    o.connect_timeout = Ms(e.connect_timeout_seconds);
    o.request_timeout = Ms(e.request_timeout_seconds);
    o.queue_capacity = static_cast<size_t>(e.queue_capacity);
    o.retry = e.retry;
    o.log = log_line;
    CBPIPE_ASSIGN_OR_RETURN(std::unique_ptr<EmailNotifier> n,
                            EmailNotifier::Create(std::move(o), secrets));
    all.push_back(Filtered(e.events, std::move(n)));
  }
  if (config.sns) {
    SnsOptions o;
    o.topic_arn = config.sns->topic_arn;
    o.alert_topic_arn = config.sns->alert_topic_arn;
    o.queue_capacity = static_cast<size_t>(config.sns->queue_capacity);
    o.log = log_line;
    // The `network` attribute: a destination's one network (none when it
    // receives several).
    for (const DestinationConfig& d : config.destinations) {
      if (d.networks.size() == 1)
        o.networks[d.name] = std::string(NetworkName(d.networks[0]));
    }
    CBPIPE_ASSIGN_OR_RETURN(
        std::unique_ptr<Notifier> n,
        OpenSnsNotifier(std::move(o), config.aws.value_or(AwsOptions())));
    all.push_back(Filtered(config.sns->events, std::move(n)));
  }
  return std::unique_ptr<Notifier>(new FanoutNotifier(std::move(all)));
}

int RunServe(const std::string& config_path) {
  const int64_t started_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count();
  // Block the stop signals in every thread; one thread waits for them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  StatusOr<Config> config = LoadConfigOrDefault(config_path);
  if (!config.ok()) {
    std::fprintf(stderr, "cbpipe serve: %s\n",
                 config.status().message().c_str());
    return kExitUsage;
  }
  // Logs first, so everything after can be seen.
  const ServiceConfig& sc = config->service;
  if (!sc.log_file.empty()) {
    StatusOr<std::shared_ptr<LogSink>> sink = OpenFileLogSink(sc.log_file);
    if (!sink.ok()) {
      std::fprintf(stderr, "cbpipe serve: %s\n",
                   sink.status().message().c_str());
      return kExitUsage;
    }
    Log().SetSink(*sink);
  }
  if (StatusOr<LogLevel> level = ParseLogLevel(sc.log_level); level.ok())
    Log().SetMinLevel(*level);
  // A service that can deliver nothing is refused, as by `config check`.
  const ConfigReview review = ReviewConfig(*config);
  for (const std::string& error : review.errors) {
    std::fprintf(stderr, "cbpipe serve: %s\n", error.c_str());
    return kExitUsage;
  }
  for (const std::string& warning : review.warnings)
    Log().Warn({}, "config.warning", warning);

  // Secret references (admin token, notifier credentials) resolve here.
  // env: and file: as always; aws-sm: from Secrets Manager, cached.
  const std::unique_ptr<SecretStore> secret_store =
      OpenSecretStoreFor(config->aws.value_or(AwsOptions()));
  SecretStore* secrets = secret_store.get();
  std::string token;
  if (!sc.admin_token_ref.empty()) {
    StatusOr<SecretString> resolved = secrets->Resolve(sc.admin_token_ref);
    if (!resolved.ok()) {
      std::fprintf(stderr, "cbpipe serve: service.admin_token: %s\n",
                   resolved.status().message().c_str());
      return kExitUsage;
    }
    token = resolved->value();
    Log().AddSecret(token);
  }
  StatusOr<std::unique_ptr<Notifier>> notifier =
      BuildNotifier(*config, secrets);
  if (!notifier.ok()) {
    std::fprintf(stderr, "cbpipe serve: notify: %s\n",
                 notifier.status().message().c_str());
    return kExitUsage;
  }
  Notifier* notifier_ptr = notifier->get();
  // [telemetry] metrics: Prometheus (GET /metrics), CloudWatch EMF lines,
  // or both; outlives the service (the process ends with _Exit below, the
  // service never destroyed).
  StatusOr<SelectedMetrics> metrics =
      SelectMetrics(config->telemetry, PipelineMetricSpecs());
  if (!metrics.ok()) {
    std::fprintf(stderr, "cbpipe serve: telemetry: %s\n",
                 metrics.status().message().c_str());
    return kExitUsage;
  }
  StatusOr<std::unique_ptr<Service>> service =
      Service::Create(*config, std::move(*notifier), metrics->metrics.get(),
                      secrets);
  if (!service.ok()) {
    std::fprintf(stderr, "cbpipe serve: %s\n",
                 service.status().message().c_str());
    return kExitUsage;
  }
  Service& svc = **service;

  // Whether each destination's server answers, for the console and
  // cbpipe_destination_up; one thread, joined before the process ends.
  std::unique_ptr<DestinationProber> prober;
  if (sc.probe_interval_seconds > 0) {
    std::vector<std::string> implicit_tls;
    for (const DestinationConfig& d : config->destinations) {
      if (d.ftps_mode == FtpsMode::kImplicit) implicit_tls.push_back(d.name);
    }
    prober = std::make_unique<DestinationProber>(
        ConsoleDestinations(*config), std::move(implicit_tls),
        metrics->metrics.get());
    prober->Start(std::chrono::seconds(sc.probe_interval_seconds));
  }

  std::unique_ptr<AdminServer> admin;
  if (!sc.admin_listen.empty()) {
    AdminServer::Hooks hooks;
    hooks.runs = svc.runs();
    hooks.queue = svc.queue();
    if (PrometheusMetrics* prometheus = metrics->prometheus) {
      hooks.render_metrics = [prometheus] { return prometheus->Render(); };
    }
    hooks.ready = [&svc] { return svc.running(); };
    hooks.token = token;
    hooks.log = [](std::string_view message) {
      Log().Warn({}, "admin.warning", message);
    };
    hooks.destinations = ConsoleDestinations(*config);
    if (ObjectStore* work = svc.work_store()) {
      hooks.read_work = [work](const std::string& key) {
        // Never more than the API answers with (a huge report is refused
        // after max + 64 KiB read, not after all of it).
        return GetObjectBytes(*work, key, kAdminMaxRejectsBytes);
      };
    }
    hooks.version = CBPIPE_VERSION;
    hooks.started_ms = started_ms;
    hooks.workers = sc.workers;
    if (prober) {
      hooks.reachability = [p = prober.get()] { return p->Results(); };
    }
    StatusOr<std::unique_ptr<AdminServer>> started =
        AdminServer::Start(sc.admin_listen, std::move(hooks));
    if (!started.ok()) {
      std::fprintf(stderr, "cbpipe serve: admin API on %s: %s\n",
                   sc.admin_listen.c_str(),
                   started.status().message().c_str());
      return kExitUsage;
    }
    admin = std::move(*started);
    Log().Info({}, "admin.listening", "admin API listening",
               {{"port", static_cast<int64_t>(admin->port())}});
  }
  Status st = svc.Start();
  if (!st.ok()) {
    std::fprintf(stderr, "cbpipe serve: %s\n", st.message().c_str());
    return kExitUsage;
  }
  int signal_number = 0;
  sigwait(&signals, &signal_number);
  Log().Info({}, "service.stopping", "stop requested",
             {{"signal", static_cast<int64_t>(signal_number)}});
  svc.RequestStop();
  const int64_t timeout_ms =
      static_cast<int64_t>(sc.shutdown_timeout_seconds) * 1000;
  const bool clean = svc.Join(timeout_ms);
  notifier_ptr->Flush(std::chrono::milliseconds(2000)).IgnoreError();
  if (admin) admin->Stop();
  if (prober) prober->Stop();
  Log().Info({}, "service.stopped",
             clean ? "stopped cleanly"
                   : "stopped at the shutdown timeout; unfinished runs "
                     "resume from their checkpoints at the next start");
  // Past the timeout, worker threads may still be inside a step: leave
  // without running destructors under them. On a clean stop nothing reads
  // the stores' copies of inputs and outputs (card numbers) or the key
  // files any more: their folders go here, as the destructors would have
  // removed them. Otherwise the next start removes them (a step that lost
  // its file now could record a failure the run does not have).
  if (clean) RemoveProcessFoldersOfThisProcess();
  std::fflush(nullptr);
  std::_Exit(clean ? kExitOk : kExitRejected);
}

}  // namespace cbpipe
