#include <cstdio>

#include "app/commands.h"
#include "aws/credentials_chain.h"
#include "common/text_safety.h"
#include "common/url.h"
#include "store/s3_store.h"
#include "workflow/registry.h"
#include "secrets/aws_secrets_manager.h"

namespace cbpipe {
namespace {

// Where the AWS credentials and the region come from (never a secret), or
// why they cannot be found: the lookup the AWS adapters make.
bool CheckAws(const AwsOptions& options) {
  const AwsHost host;
  std::unique_ptr<AwsCredentialsProvider> credentials =
      MakeDefaultAwsCredentialsChain(options, host);
  StatusOr<AwsCredentials> found = credentials->Get();
  StatusOr<std::string> region = ResolveAwsRegion(options, host);
  for (const Status* s : {&found.status(), &region.status()}) {
    if (!s->ok())
      std::fprintf(stderr, "cbpipe config check: aws: %s\n",
                   EscapeForTerminal(s->message()).c_str());
  }
  if (!found.ok() || !region.ok()) return false;
  std::fprintf(stderr, "aws: credentials from %s, region %s\n",
               EscapeForTerminal(credentials->Source()).c_str(),
               region->c_str());
  return true;
}

// What an object store URL of [service] (`key`: object_store, work_store)
// resolves to: the adapter and its resource ("object_store: s3://b/p ->
// S3ObjectStore, bucket b, prefix p, endpoint https://s3.eu-west-1.
// amazonaws.com"). Nothing is called. False (with the reason) when the URL
// cannot be opened.
bool CheckObjectStore(const Config& config, const std::string& key,
                      const std::string& url) {
  if (url.empty()) return true;
  const AwsOptions aws = config.aws.value_or(AwsOptions{});
  StatusOr<std::unique_ptr<ObjectStore>> store = OpenObjectStore(url, aws);
  if (!store.ok()) {
    std::fprintf(stderr, "cbpipe config check: service.%s: %s\n", key.c_str(),
                 EscapeForTerminal(store.status().message()).c_str());
    return false;
  }
  std::string resolved = (*store)->Describe();
  if (url.rfind("s3://", 0) == 0) {
    std::string bucket, prefix;
    const size_t q = url.find('?');
    if (ParseS3Url(url.substr(0, q), &bucket, &prefix).ok()) {
      StatusOr<std::shared_ptr<AwsClient>> client = AwsClientFor(aws);
      resolved = "S3ObjectStore, bucket " + bucket + ", prefix \"" + prefix +
                 "\", endpoint " +
                 (client.ok() ? (*client)->EndpointUrl("s3") : "?");
    }
  }
  std::fprintf(stderr, "%s: %s -> %s\n", key.c_str(),
               EscapeForTerminal(RedactUrl(url)).c_str(),
               EscapeForTerminal(resolved).c_str());
  return true;
}

// What the queue, run store, ledger and events queue URLs of [service]
// resolve to ("queue: sqs://work -> SqsQueue, queue work, endpoint
// http://..."), read from the URL alone: opening them would call AWS or
// create SQLite files. False (with the reason) for a URL the registry
// cannot read or a scheme the port has no adapter for.
bool CheckServiceUrls(const Config& config) {
  const ServiceConfig& sc = config.service;
  const AwsOptions aws = config.aws.value_or(AwsOptions{});
  struct Key {
    const char* key;
    const std::string& url;
    const char* what;      // for errors
    const char* sqlite;    // the sqlite:// adapter
    const char* dynamodb;  // the dynamodb:// adapter ("" = none)
    bool sqs;
  };
  const Key keys[] = {
      {"queue", sc.queue, "queue", "SqliteQueue", "", true},
      {"run_store", sc.run_store, "run store", "SqliteRunStore",
       "DynamoDbRunStore", false},
      {"ledger", sc.ledger, "delivery ledger", "SqliteDeliveryLedger",
       "DynamoDbDeliveryLedger", false},
      {"events_queue", sc.events_queue, "queue", "SqliteQueue", "", true},
  };
  bool ok = true;
  for (const Key& k : keys) {
    if (k.url.empty()) continue;
    StatusOr<AdapterUrl> u = ParseAdapterUrl(k.url, k.what);
    std::string resolved, error;
    if (!u.ok()) {
      error = std::string(u.status().message());
    } else if (u->scheme == "sqlite") {
      resolved = std::string(k.sqlite) + ", file " + u->path;
      if (auto q = u->params.find("queue"); q != u->params.end())
        resolved += ", queue " + q->second;
    } else if (u->scheme == "memory" && !k.sqs) {
      resolved = "in memory (not shared: tests only)";
    } else if (u->scheme == "dynamodb" && *k.dynamodb != '\0') {
      StatusOr<std::shared_ptr<AwsClient>> client = AwsClientFor(aws);
      resolved = std::string(k.dynamodb) + ", table " + u->host +
                 ", endpoint " +
                 (client.ok() ? (*client)->EndpointUrl("dynamodb") : "?");
    } else if (k.sqs && (u->scheme == "sqs" || u->scheme == "https" ||
                         u->scheme == "http")) {
      StatusOr<std::shared_ptr<AwsClient>> client = AwsClientFor(aws);
      resolved = "SqsQueue, " +
                 (u->scheme == "sqs" ? "queue " + u->host
                                     : "queue URL " + RedactUrl(k.url)) +
                 ", endpoint " +
                 (client.ok() ? (*client)->EndpointUrl("sqs") : "?");
    } else {
      error = "no " + std::string(k.what) + " adapter for " + u->scheme +
              ":// (docs/configuration.md lists the URLs)";
    }
    if (!error.empty()) {
      std::fprintf(stderr, "cbpipe config check: service.%s: %s\n", k.key,
                   EscapeForTerminal(error).c_str());
      ok = false;
      continue;
    }
    std::fprintf(stderr, "%s: %s -> %s\n", k.key,
                 EscapeForTerminal(RedactUrl(k.url)).c_str(),
                 EscapeForTerminal(resolved).c_str());
  }
  return ok;
}

// What each aws-sm: reference and SNS topic of the config resolves to
// (adapter and resource; read from the names, no call made, no secret).
void DescribeSnsAndSecrets(const Config& config) {
  std::vector<std::pair<std::string, std::string>> refs;  // key, reference
  for (const DestinationConfig& d : config.destinations) {
    refs.emplace_back("destination " + d.name + " password", d.password_ref);
    refs.emplace_back("destination " + d.name + " private_key",
                      d.private_key_ref);
  }
  refs.emplace_back("service.admin_token", config.service.admin_token_ref);
  for (size_t i = 0; i < config.webhooks.size(); ++i)
    refs.emplace_back("notify.webhook[" + std::to_string(i) + "].secret",
                      config.webhooks[i].secret_ref);
  if (config.email) {
    refs.emplace_back("notify.email.username", config.email->username);
    refs.emplace_back("notify.email.password", config.email->password_ref);
  }
  for (const auto& [key, ref] : refs) {
    StatusOr<AwsSecretReference> sm = ParseAwsSecretReference(ref);
    if (!sm.ok()) continue;  // not aws-sm: (checked when loading)
    std::fprintf(
        stderr, "aws: %s %s -> Secrets Manager secret %s, %s\n",
        EscapeForTerminal(key).c_str(), EscapeForTerminal(ref).c_str(),
        EscapeForTerminal(sm->secret_id).c_str(),
        sm->json_key.empty()
            ? "the whole SecretString"
            : ("JSON key " + EscapeForTerminal(sm->json_key)).c_str());
  }
  if (config.sns) {
    for (const auto& [key, arn] :
         {std::pair<std::string, std::string>{"notify.sns.topic_arn",
                                              config.sns->topic_arn},
          {"notify.sns.alert_topic_arn", config.sns->alert_topic_arn}}) {
      if (arn.empty()) continue;
      // arn:aws:sns:REGION:ACCOUNT:NAME (checked when loading)
      std::vector<std::string> parts;
      size_t start = 0;
      for (size_t colon; (colon = arn.find(':', start)) != std::string::npos;
           start = colon + 1)
        parts.push_back(arn.substr(start, colon - start));
      parts.push_back(arn.substr(start));
      if (parts.size() != 6) continue;
      std::fprintf(stderr,
                   "aws: %s -> SNS topic %s in %s (account %s)%s\n",
                   key.c_str(), EscapeForTerminal(parts[5]).c_str(),
                   EscapeForTerminal(parts[3]).c_str(),
                   EscapeForTerminal(parts[4]).c_str(),
                   key == "notify.sns.alert_topic_arn" ? ", alerts only" : "");
    }
  }
}

}  // namespace

int RunConfigCheck(const std::string& config_path) {
  StatusOr<Config> config = LoadConfigOrDefault(config_path);
  if (!config.ok()) {
    // The message may quote the config's text: never raw to a terminal.
    std::fprintf(stderr, "cbpipe config check: %s\n",
                 EscapeForTerminal(config.status().message()).c_str());
    return kExitUsage;
  }
  const ConfigReview review = ReviewConfig(*config);
  for (const std::string& error : review.errors)
    std::fprintf(stderr, "cbpipe config check: %s\n", error.c_str());
  if (!review.errors.empty()) return kExitUsage;
  std::printf("%s", DescribeConfig(*config).c_str());
  if (UsesAws(*config) && !CheckAws(config->aws.value_or(AwsOptions{})))
    return kExitUsage;
  if (!CheckObjectStore(*config, "object_store",
                        config->service.object_store) ||
      !CheckObjectStore(*config, "work_store", config->service.work_store) ||
      !CheckServiceUrls(*config))
    return kExitUsage;
  DescribeSnsAndSecrets(*config);
  for (const std::string& warning : review.warnings)
    std::fprintf(stderr, "warning: %s\n", warning.c_str());
  std::fprintf(stderr, "config OK: %zu destination(s)\n",
               config->destinations.size());
  return kExitOk;
}

}  // namespace cbpipe
