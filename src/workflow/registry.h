// The one place where adapters are chosen by URL scheme, for every port
// whose adapter the deployment picks: the embedded ones now (a folder,
// SQLite, memory for tests), the AWS ones next (s3://, sqs://, dynamodb://,
// secretsmanager://). Nothing else constructs an adapter from a URL.
//
//   CBPIPE_ASSIGN_OR_RETURN(std::unique_ptr<ObjectStore> objects,
//       OpenObjectStore(FileUrl("/var/lib/cbpipe/objects")));
//   CBPIPE_ASSIGN_OR_RETURN(std::unique_ptr<SecretStore> secrets,
//       OpenSecretStore("env+file://"));
//   QueueOptions options;
//   options.max_receive_count = 5;
//   CBPIPE_ASSIGN_OR_RETURN(std::unique_ptr<Queue> inputs,
//       OpenQueue("sqlite:///var/lib/cbpipe/state.db?queue=inputs", options));
//
// | port        | URL                              | adapter              |
// |-------------|----------------------------------|----------------------|
// | ObjectStore | file:///abs/folder               | LocalFolderStore     |
// |             | memory://                        | InMemoryObjectStore  |
// |             | s3://bucket/prefix[?sse=AES256|aws:kms&kms_key_id=K&part_size_mib=8] | S3ObjectStore |
// | SecretStore | env+file://                      | EnvFileSecretStore   |
// |             | memory://                        | InMemorySecretStore  |
// |             | (per reference: OpenSecretStoreFor) aws-sm:ID#key | AwsSecretsManagerStore |
// | Notifier    | (OpenSnsNotifier) arn:aws:sns:... | SnsNotifier         |
// | Queue       | sqlite:///abs/state.db?queue=N   | SqliteQueue          |
// |             | sqs://NAME, https://sqs.../ACCT/NAME | SqsQueue         |
// | RunStore    | sqlite:///abs/state.db           | SqliteRunStore       |
// |             | memory://                        | InMemoryRunStore     |
// |             | dynamodb://TABLE                 | DynamoDbRunStore     |
// | DeliveryLedger | sqlite:///abs/ledger.db       | SqliteDeliveryLedger |
// |             | memory://                        | InMemoryDeliveryLedger |
// |             | dynamodb://TABLE                 | DynamoDbDeliveryLedger |
//
// URLs: the path is absolute and %-encoded (FileUrl builds one from a
// path); a query holds the adapter's parameters (name=value&...), and a
// parameter the adapter does not know is an error, as are a host in a
// file:// or sqlite:// URL, a fragment, and anything after memory://.
// memory:// is a new, empty store at each Open: nothing is shared.
//
// Errors: kInvalidArgument for a URL the registry cannot read, naming what
// is wrong; for an unknown scheme the message names the scheme and the
// known ones. Messages show URLs without credentials or query (RedactUrl).
// Otherwise what the adapter's open returns.
// Thread safety: every function may be called from several threads.
// Ownership: the caller owns what is opened.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "aws/client.h"
#include "aws/options.h"
#include "common/env.h"
#include "common/status.h"
#include "ledger/ledger.h"
#include "notify/sns_notifier.h"
#include "queue/queue.h"
#include "queue/sqlite_queue.h"
#include "runs/run_store.h"
#include "secrets/secret_store.h"
#include "store/object_store.h"

namespace cbpipe {

// The AwsClient every AWS adapter of the process shares: one per distinct
// `options` (the [aws] table), made by MakeAwsClient (aws/make_client.h) at
// the first call and kept for the life of the process (so connections are
// pooled across adapters). Its observer is XRayAwsCalls: a call made inside
// an X-Ray traced step (workflow/xray_steps.h) is a subsegment of it.
// Errors as MakeAwsClient's (no region: the
// message says where it was looked for); an error is not cached.
StatusOr<std::shared_ptr<AwsClient>> AwsClientFor(const AwsOptions& options);

// `aws` is the [aws] table for s3:// (Config::aws; {} = all defaults).
StatusOr<std::unique_ptr<ObjectStore>> OpenObjectStore(
    std::string_view url, const AwsOptions& aws = {});
StatusOr<std::unique_ptr<SecretStore>> OpenSecretStore(std::string_view url);
// The store of every secret reference of a config, chosen by the
// reference's scheme (RoutingSecretStore): env: and file: as
// EnvFileSecretStore; aws-sm: by AwsSecretsManagerStore on
// AwsClientFor(aws), cached aws.secrets_cache_seconds, made at the first
// aws-sm: reference (so a config without one needs no region). `env`
// (not owned; nullptr: Env::Default()) is the cache's clock.
std::unique_ptr<SecretStore> OpenSecretStoreFor(const AwsOptions& aws,
                                                Env* env = nullptr);
// `topic_arn`'s notifier (and `alert_topic_arn`'s, when set) on
// AwsClientFor(aws): [notify.sns]. Errors: SnsNotifier::Create's,
// AwsClientFor's.
StatusOr<std::unique_ptr<Notifier>> OpenSnsNotifier(SnsOptions options,
                                                    const AwsOptions& aws);
// `options` go to the adapter (SqliteQueue's QueueOptions for sqlite://;
// an SQS queue takes its max_receive_count from its RedrivePolicy). `aws`
// is the [aws] table for sqs:// and queue URLs.
StatusOr<std::unique_ptr<Queue>> OpenQueue(std::string_view url,
                                           QueueOptions options = {},
                                           const AwsOptions& aws = {});
// `env` (not owned, must outlive the store) is the adapter's clock; `aws`
// the [aws] table for dynamodb:// (Config::aws; {} = all defaults). Both
// may name one table: their items never meet (docs/aws.md "DynamoDB").
StatusOr<std::unique_ptr<RunStore>> OpenRunStore(std::string_view url, Env* env,
                                                 const AwsOptions& aws = {});
StatusOr<std::unique_ptr<DeliveryLedger>> OpenDeliveryLedger(
    std::string_view url, Env* env, const AwsOptions& aws = {});

// "file:///a%20b/objects" for "/a b/objects": the URL of an absolute path,
// with every byte outside [A-Za-z0-9._~/-] %-encoded. kInvalidArgument for
// a relative path.
StatusOr<std::string> FileUrl(std::string_view absolute_path);

// A URL as the registry reads it: "scheme://[host]/path?a=1&b=2".
struct AdapterUrl {
  std::string scheme;  // "file", "sqlite", ...: lower case
  std::string host;    // empty for file://, sqlite://, memory://
  std::string path;    // %-decoded; "" or starting with '/'
  std::map<std::string, std::string> params;  // %-decoded query
};
// kInvalidArgument (naming `what`, e.g. "object store") for a URL without
// "scheme://", with a fragment, bad %-encoding or a repeated parameter.
StatusOr<AdapterUrl> ParseAdapterUrl(std::string_view url,
                                     std::string_view what);

}  // namespace cbpipe
