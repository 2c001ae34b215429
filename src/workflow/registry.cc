#include "workflow/registry.h"

#include <cctype>
#include <cstdlib>
#include <mutex>
#include <sstream>
#include <utility>
#include <vector>

#include "aws/make_client.h"
#include "common/url.h"
#include "ledger/dynamodb_ledger.h"
#include "ledger/in_memory_ledger.h"
#include "ledger/sqlite_ledger.h"
#include "queue/sqs_queue.h"
#include "runs/dynamodb_run_store.h"
#include "runs/in_memory_run_store.h"
#include "runs/sqlite_run_store.h"
#include "secrets/aws_secrets_manager.h"
#include "secrets/env_file_secret_store.h"
#include "secrets/routing_secret_store.h"
#include "secrets/memory_secret_store.h"
#include "store/memory_store.h"
#include "store/s3_store.h"
#include "telemetry/xray_aws_calls.h"

namespace cbpipe {
namespace {

// "unknown object store URL scheme "s3" in s3://b/x (known: file://,
// memory://)".
Status UnknownScheme(std::string_view what, const AdapterUrl& url,
                     std::string_view original,
                     const std::vector<std::string_view>& known) {
  std::string list;
  for (std::string_view k : known) {
    if (!list.empty()) list += ", ";
    list += std::string(k) + "://";
  }
  return InvalidArgumentError("unknown " + std::string(what) +
                              " URL scheme \"" + url.scheme + "\" in " +
                              RedactUrl(original) + " (known: " + list + ")");
}

// For file:// and sqlite://: no host, an absolute path.
Status NeedLocalPath(std::string_view what, const AdapterUrl& url,
                     std::string_view original) {
  if (!url.host.empty() || url.path.empty()) {
    return InvalidArgumentError(
        std::string(what) + " URL " + RedactUrl(original) + ": " + url.scheme +
        ":// takes an absolute path and no host (" + url.scheme +
        ":///var/lib/cbpipe/...)");
  }
  return OkStatus();
}

// Every parameter of `url` must be in `known`.
Status OnlyParams(std::string_view what, const AdapterUrl& url,
                  std::string_view original,
                  const std::vector<std::string_view>& known) {
  for (const auto& [name, value] : url.params) {
    bool ok = false;
    for (std::string_view k : known) ok = ok || name == k;
    if (!ok) {
      return InvalidArgumentError(std::string(what) + " URL " +
                                  RedactUrl(original) + ": unknown parameter \"" +
                                  name + "\" for " + url.scheme + "://");
    }
  }
  return OkStatus();
}

Status NothingAfterMemory(std::string_view what, const AdapterUrl& url,
                          std::string_view original) {
  if (!url.host.empty() || !url.path.empty() || !url.params.empty()) {
    return InvalidArgumentError(std::string(what) + " URL " +
                                RedactUrl(original) +
                                ": memory:// takes nothing after it");
  }
  return OkStatus();
}

// For dynamodb://TABLE: a table name (3-255 of A-Z a-z 0-9 _ . -) and
// nothing else.
Status NeedDynamoDbTable(std::string_view what, const AdapterUrl& url,
                         std::string_view original) {
  bool name_ok = url.host.size() >= 3 && url.host.size() <= 255;
  for (char c : url.host) {
    name_ok = name_ok && (std::isalnum(static_cast<unsigned char>(c)) ||
                          c == '_' || c == '.' || c == '-');
  }
  if (!name_ok || !(url.path.empty() || url.path == "/") ||
      !url.params.empty()) {
    return InvalidArgumentError(
        std::string(what) + " URL " + RedactUrl(original) +
        ": dynamodb:// takes a table name (3-255 of A-Z a-z 0-9 _ . -) and"
        " nothing after it (dynamodb://cbpipe-state); the region comes"
        " from [aws]");
  }
  return OkStatus();
}

}  // namespace

StatusOr<AdapterUrl> ParseAdapterUrl(std::string_view url,
                                     std::string_view what) {
  const std::string shown = RedactUrl(url);
  const size_t sep = url.find("://");
  AdapterUrl out;
  if (sep == std::string_view::npos || sep == 0) {
    return InvalidArgumentError(std::string(what) + " URL \"" + shown +
                                "\" has no scheme:// ");
  }
  for (char c : url.substr(0, sep)) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.';
    if (!ok) {
      return InvalidArgumentError(std::string(what) + " URL \"" + shown +
                                  "\" has no scheme://");
    }
    out.scheme.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c);
  }
  std::string_view rest = url.substr(sep + 3);
  if (rest.find('#') != std::string_view::npos) {
    return InvalidArgumentError(std::string(what) + " URL " + shown +
                                ": a fragment (#) means nothing here");
  }
  std::string_view query;
  if (const size_t q = rest.find('?'); q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  const size_t slash = rest.find('/');
  const std::string_view host = rest.substr(0, slash);
  const std::string_view path =
      slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
  if (!PercentDecode(host, &out.host) || !PercentDecode(path, &out.path)) {
    return InvalidArgumentError(std::string(what) + " URL " + shown +
                                ": bad %-encoding");
  }
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view item = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view()
                                          : query.substr(amp + 1);
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    std::string name, value;
    if (!PercentDecode(item.substr(0, eq), &name) ||
        (eq != std::string_view::npos &&
         !PercentDecode(item.substr(eq + 1), &value))) {
      return InvalidArgumentError(std::string(what) + " URL " + shown +
                                  ": bad %-encoding");
    }
    if (!out.params.emplace(name, value).second) {
      return InvalidArgumentError(std::string(what) + " URL " + shown +
                                  ": parameter \"" + name + "\" given twice");
    }
  }
  return out;
}

StatusOr<std::string> FileUrl(std::string_view absolute_path) {
  if (absolute_path.empty() || absolute_path[0] != '/') {
    return InvalidArgumentError("file:// needs an absolute path, not \"" +
                                std::string(absolute_path) + "\"");
  }
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string url = "file://";
  for (char c : absolute_path) {
    const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                       (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                       c == '~' || c == '/' || c == '-';
    if (plain) {
      url.push_back(c);
    } else {
      const auto b = static_cast<unsigned char>(c);
      url.push_back('%');
      url.push_back(kHex[b >> 4]);
      url.push_back(kHex[b & 15]);
    }
  }
  return url;
}

StatusOr<std::shared_ptr<AwsClient>> AwsClientFor(const AwsOptions& options) {
  std::ostringstream key;
  key << options.region << '\n' << options.profile << '\n'
      << static_cast<int>(options.s3_addressing) << '\n'
      << options.connect_timeout_seconds << '\n'
      << options.request_timeout_seconds << '\n'
      << options.idle_timeout_seconds << '\n';
  for (const auto& [service, url] : options.endpoints)
    key << service << '=' << url << '\n';
  static std::mutex mu;
  // Never destroyed: adapters may still hold clients while statics go away.
  static auto* clients =
      new std::map<std::string, std::shared_ptr<AwsClient>>();
  std::lock_guard<std::mutex> lock(mu);
  auto found = clients->find(key.str());
  if (found != clients->end()) return found->second;
  // Every call is an X-Ray subsegment of the step making it when X-Ray is
  // on (XRayAwsCalls traces only under a current span: nothing otherwise).
  CBPIPE_ASSIGN_OR_RETURN(
      std::shared_ptr<AwsClient> client,
      MakeAwsClient(options, AwsHost(), std::make_shared<XRayAwsCalls>()));
  clients->emplace(key.str(), client);
  return client;
}

StatusOr<std::unique_ptr<ObjectStore>> OpenObjectStore(std::string_view url,
                                                       const AwsOptions& aws) {
  constexpr std::string_view kWhat = "object store";
  CBPIPE_ASSIGN_OR_RETURN(AdapterUrl u, ParseAdapterUrl(url, kWhat));
  if (u.scheme == "file") {
    CBPIPE_RETURN_IF_ERROR(NeedLocalPath(kWhat, u, url));
    CBPIPE_RETURN_IF_ERROR(OnlyParams(kWhat, u, url, {}));
    return std::unique_ptr<ObjectStore>(new LocalFolderStore(u.path));
  }
  if (u.scheme == "memory") {
    CBPIPE_RETURN_IF_ERROR(NothingAfterMemory(kWhat, u, url));
    return std::unique_ptr<ObjectStore>(new InMemoryObjectStore());
  }
  if (u.scheme == "s3") {
    CBPIPE_RETURN_IF_ERROR(
        OnlyParams(kWhat, u, url, {"sse", "kms_key_id", "part_size_mib"}));
    std::string bucket, prefix;
    if (!ParseS3Url("s3://" + u.host + u.path, &bucket, &prefix).ok()) {
      return InvalidArgumentError(
          std::string(kWhat) + " URL " + RedactUrl(url) +
          ": s3:// takes a bucket (3-63 of a-z, 0-9, '-', '.') and an "
          "optional key prefix: s3://bucket/prefix");
    }
    S3StoreOptions options;
    if (auto p = u.params.find("sse"); p != u.params.end())
      options.sse = p->second;
    if (auto p = u.params.find("kms_key_id"); p != u.params.end())
      options.kms_key_id = p->second;
    if (auto p = u.params.find("part_size_mib"); p != u.params.end()) {
      char* end = nullptr;
      const unsigned long long mib = std::strtoull(p->second.c_str(), &end, 10);
      if (p->second.empty() || *end != '\0' || mib < 5 || mib > 5120) {
        return InvalidArgumentError(std::string(kWhat) + " URL " +
                                    RedactUrl(url) +
                                    ": part_size_mib must be 5 to 5120");
      }
      options.part_size = mib << 20;
    }
    CBPIPE_ASSIGN_OR_RETURN(std::shared_ptr<AwsClient> client,
                            AwsClientFor(aws));
    CBPIPE_ASSIGN_OR_RETURN(
        std::unique_ptr<S3ObjectStore> store,
        S3ObjectStore::Create(std::move(client), bucket, prefix, options));
    return std::unique_ptr<ObjectStore>(std::move(store));
  }
  return UnknownScheme(kWhat, u, url, {"file", "memory", "s3"});
}

StatusOr<std::unique_ptr<SecretStore>> OpenSecretStore(std::string_view url) {
  constexpr std::string_view kWhat = "secret store";
  CBPIPE_ASSIGN_OR_RETURN(AdapterUrl u, ParseAdapterUrl(url, kWhat));
  if (u.scheme == "env+file") {
    if (!u.host.empty() || !u.path.empty() || !u.params.empty()) {
      return InvalidArgumentError(std::string(kWhat) + " URL " +
                                  RedactUrl(url) +
                                  ": env+file:// takes nothing after it");
    }
    return std::unique_ptr<SecretStore>(new EnvFileSecretStore());
  }
  if (u.scheme == "memory") {
    CBPIPE_RETURN_IF_ERROR(NothingAfterMemory(kWhat, u, url));
    return std::unique_ptr<SecretStore>(new InMemorySecretStore());
  }
  // Next: secretsmanager://region.
  return UnknownScheme(kWhat, u, url, {"env+file", "memory"});
}

std::unique_ptr<SecretStore> OpenSecretStoreFor(const AwsOptions& aws,
                                                Env* env) {
  auto store =
      std::make_unique<RoutingSecretStore>(EnvFileSecretStore::Default());
  store->Route(std::string(kAwsSecretsManagerScheme),
               [aws, env]() -> StatusOr<std::unique_ptr<SecretStore>> {
                 CBPIPE_ASSIGN_OR_RETURN(std::shared_ptr<AwsClient> client,
                                         AwsClientFor(aws));
                 AwsSecretsManagerOptions options;
                 options.cache_ttl_ms =
                     static_cast<int64_t>(aws.secrets_cache_seconds * 1000);
                 options.env = env;
                 return std::unique_ptr<SecretStore>(
                     new AwsSecretsManagerStore(std::move(client), options));
               });
  return store;
}

StatusOr<std::unique_ptr<Notifier>> OpenSnsNotifier(SnsOptions options,
                                                    const AwsOptions& aws) {
  CBPIPE_RETURN_IF_ERROR(ValidateSnsTopicArn(options.topic_arn));
  CBPIPE_ASSIGN_OR_RETURN(std::shared_ptr<AwsClient> client,
                          AwsClientFor(aws));
  CBPIPE_ASSIGN_OR_RETURN(std::unique_ptr<SnsNotifier> sns,
                          SnsNotifier::Create(std::move(options), client));
  return std::unique_ptr<Notifier>(std::move(sns));
}

StatusOr<std::unique_ptr<Queue>> OpenQueue(std::string_view url,
                                           QueueOptions options,
                                           const AwsOptions& aws) {
  constexpr std::string_view kWhat = "queue";
  CBPIPE_ASSIGN_OR_RETURN(AdapterUrl u, ParseAdapterUrl(url, kWhat));
  if (u.scheme == "sqlite") {
    CBPIPE_RETURN_IF_ERROR(NeedLocalPath(kWhat, u, url));
    CBPIPE_RETURN_IF_ERROR(OnlyParams(kWhat, u, url, {"queue"}));
    auto name = u.params.find("queue");
    if (name == u.params.end() || name->second.empty()) {
      return InvalidArgumentError(std::string(kWhat) + " URL " +
                                  RedactUrl(url) +
                                  ": sqlite:// needs ?queue=NAME");
    }
    CBPIPE_ASSIGN_OR_RETURN(
        std::unique_ptr<SqliteQueue> queue,
        SqliteQueue::Open(u.path, name->second, std::move(options)));
    return std::unique_ptr<Queue>(std::move(queue));
  }
  if (u.scheme == "sqs" || u.scheme == "https" || u.scheme == "http") {
    // sqs://NAME, or the queue URL SQS gives (https://sqs.REGION.
    // amazonaws.com/ACCOUNT/NAME); the region and endpoint come from [aws].
    if (u.scheme == "sqs" && (u.host.empty() || !u.path.empty())) {
      return InvalidArgumentError(std::string(kWhat) + " URL " +
                                  RedactUrl(url) +
                                  ": sqs:// takes a queue name: sqs://NAME");
    }
    CBPIPE_RETURN_IF_ERROR(OnlyParams(kWhat, u, url, {}));
    CBPIPE_ASSIGN_OR_RETURN(std::shared_ptr<AwsClient> client,
                            AwsClientFor(aws));
    CBPIPE_ASSIGN_OR_RETURN(
        std::unique_ptr<SqsQueue> queue,
        SqsQueue::Open(std::move(client),
                       u.scheme == "sqs" ? std::string_view(u.host) : url));
    return std::unique_ptr<Queue>(std::move(queue));
  }
  return UnknownScheme(kWhat, u, url, {"sqlite", "sqs", "https"});
}

StatusOr<std::unique_ptr<RunStore>> OpenRunStore(std::string_view url, Env* env,
                                                 const AwsOptions& aws) {
  constexpr std::string_view kWhat = "run store";
  CBPIPE_ASSIGN_OR_RETURN(AdapterUrl u, ParseAdapterUrl(url, kWhat));
  if (u.scheme == "sqlite") {
    CBPIPE_RETURN_IF_ERROR(NeedLocalPath(kWhat, u, url));
    CBPIPE_RETURN_IF_ERROR(OnlyParams(kWhat, u, url, {}));
    return SqliteRunStore::Open(u.path, env);
  }
  if (u.scheme == "memory") {
    CBPIPE_RETURN_IF_ERROR(NothingAfterMemory(kWhat, u, url));
    return std::unique_ptr<RunStore>(new InMemoryRunStore(env));
  }
  if (u.scheme == "dynamodb") {
    CBPIPE_RETURN_IF_ERROR(NeedDynamoDbTable(kWhat, u, url));
    CBPIPE_ASSIGN_OR_RETURN(std::shared_ptr<AwsClient> client,
                            AwsClientFor(aws));
    return DynamoDbRunStore::Open(std::move(client), u.host, env);
  }
  return UnknownScheme(kWhat, u, url, {"sqlite", "memory", "dynamodb"});
}

StatusOr<std::unique_ptr<DeliveryLedger>> OpenDeliveryLedger(
    std::string_view url, Env* env, const AwsOptions& aws) {
  constexpr std::string_view kWhat = "delivery ledger";
  CBPIPE_ASSIGN_OR_RETURN(AdapterUrl u, ParseAdapterUrl(url, kWhat));
  if (u.scheme == "sqlite") {
    CBPIPE_RETURN_IF_ERROR(NeedLocalPath(kWhat, u, url));
    CBPIPE_RETURN_IF_ERROR(OnlyParams(kWhat, u, url, {}));
    return SqliteDeliveryLedger::Open(u.path, env);
  }
  if (u.scheme == "memory") {
    CBPIPE_RETURN_IF_ERROR(NothingAfterMemory(kWhat, u, url));
    return std::unique_ptr<DeliveryLedger>(new InMemoryDeliveryLedger(env));
  }
  if (u.scheme == "dynamodb") {
    CBPIPE_RETURN_IF_ERROR(NeedDynamoDbTable(kWhat, u, url));
    CBPIPE_ASSIGN_OR_RETURN(std::shared_ptr<AwsClient> client,
                            AwsClientFor(aws));
    return DynamoDbDeliveryLedger::Open(std::move(client), u.host, env);
  }
  return UnknownScheme(kWhat, u, url, {"sqlite", "memory", "dynamodb"});
}

}  // namespace cbpipe
