// cbpipe's configuration (TOML). docs/configuration.md is the reference.
//
//   auto config = LoadConfig("cbpipe.toml");       // or DefaultConfig(dir)
//   if (!config.ok()) { print config.status(): it names the key }
//
// config/ is the top of the layers below workflow/: each layer has its own
// options struct (RetryPolicy in common/, DestinationConfig in deliver/,
// OutputOptions and Limits in output/, RejectThresholds, ValidatorOptions in
// validate/, ReaderLimits and FieldMapping in ingest/, WebhookOptions and
// EmailOptions in notify/, AwsOptions in aws/, TelemetryOptions in
// telemetry/), and Config holds or maps into them. Nothing
// below workflow/ includes config/ (tests/layering_test checks it).
//
// Secrets are never in the config: credentials are references ("env:NAME",
// "file:/path") resolved by secrets/ when a connection is made.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "aws/options.h"
#include "common/retry.h"
#include "common/status.h"
#include "deliver/destination.h"
#include "domain/network.h"
#include "ingest/reader.h"
#include "output/layout.h"
#include "output/options.h"
#include "telemetry/options.h"
#include "validate/validator.h"

namespace cbpipe {

// [service]: `cbpipe serve`.
struct ServiceConfig {
  std::string inbox_dir;       // default <work_dir>/inbox
  std::string state_db;        // default <work_dir>/state.db
  std::string object_dir;      // default <work_dir>/objects
  // The object store's URL (workflow/registry.h: file://, s3://bucket/p);
  // "" = file://<object_dir>.
  std::string object_store;
  // Where the files made from inputs (batches, manifests, rejects) are
  // kept, as an object store URL (s3://bucket/processed); "" = the work
  // dir itself (file://<work_dir>).
  std::string work_store;
  // The work queue's URL (sqs://name, an SQS queue URL); "" = SQLite in
  // state_db.
  std::string queue;
  // The run store's URL (dynamodb://table); "" = SQLite in state_db.
  std::string run_store;
  // The delivery ledger's URL (dynamodb://table); "" = SQLite in
  // <work_dir>/ledger.db.
  std::string ledger;
  // A queue receiving S3 ObjectCreated event notifications (sqs://name or
  // an SQS queue URL) to take inputs from, instead of the inbox folder;
  // "" = the inbox folder.
  std::string events_queue;
  int workers = 2;
  int poll_interval_ms = 500;  // inbox scan
  int settle_ms = 1000;        // a file unchanged this long is complete
  int visibility_seconds = 60;  // a worker's lease on a run, renewed
  int max_receive_count = 5;    // then the message is a dead letter
  int shutdown_timeout_seconds = 30;
  // The destination prober (app/destination_prober.h); 0 turns it off.
  int probe_interval_seconds = 30;
  std::string admin_listen = "127.0.0.1:8787";  // "" disables the API
  std::string admin_token_ref;  // secret reference; needed for POSTs
  std::string log_file;         // "" = stderr
  std::string log_level = "info";
};

// [[notify.webhook]] and [notify.email].
struct WebhookConfig {
  std::string url;
  std::string secret_ref;  // HMAC key, a secret reference
  std::vector<std::string> events;  // empty: all
  std::string ca_file;
  bool allow_insecure = false;  // http:// to a non-loopback host
  double connect_timeout_seconds = 5;
  double request_timeout_seconds = 10;
  int queue_capacity = 1000;
  RetryPolicy retry;
};
struct EmailConfig {
  std::string url;  // smtp://host:port or smtps://
  std::string from;
  std::vector<std::string> to;
  std::string username;  // a secret reference, like the password
  std::string password_ref;
  bool starttls = true;
  std::string ca_file;
  std::vector<std::string> events;
  bool allow_insecure = false;  // plain smtp:// to a non-loopback host
  std::string subject_prefix = "[cbpipe]";
  double connect_timeout_seconds = 10;
  double request_timeout_seconds = 30;
  int queue_capacity = 1000;
  RetryPolicy retry;
};

// [notify.sns]: SnsNotifier (notify/sns_notifier.h).
struct SnsConfig {
  std::string topic_arn;        // every event (after `events`)
  std::string alert_topic_arn;  // alerts only; "" = none
  std::vector<std::string> events;  // empty: all
  int queue_capacity = 1000;
};

struct Config {
  std::string source;  // file it was loaded from, or "(built-in default)"
  // [input]
  InputFormat format = InputFormat::kAuto;
  FieldMapping mapping = FieldMapping::Default();
  std::map<std::string, std::string> explicit_fields;  // for config check
  PanPolicy pan_policy = PanPolicy::kMask;
  std::vector<std::string> date_formats;
  ReaderLimits reader_limits;
  RejectThresholds reject_thresholds;
  // [output]
  std::string work_dir = "cbpipe-out";  // runs, batches, rejects, ledger
  Limits limits;
  int max_errors_reported = 1000;  // per input in summaries; the rejects
                                   // file always has every error
  // [layout.NAME]
  std::map<std::string, Layout> layouts;
  // [[destination]]
  std::vector<DestinationConfig> destinations;
  // [service], [notify]
  ServiceConfig service;
  std::vector<WebhookConfig> webhooks;
  std::optional<EmailConfig> email;
  // [telemetry]: metrics adapters (EMF namespace and output), X-Ray. The
  // environment (AWS_XRAY_*) is applied when serve starts, not here.
  TelemetryOptions telemetry;
  std::optional<SnsConfig> sns;
  // [aws]: set when the config has the table (even empty).
  std::optional<AwsOptions> aws;

  // The destination receiving `network`, or nullptr.
  const DestinationConfig* DestinationFor(Network network) const;
  // The layout a destination writes with (built-in or from the config).
  const Layout* LayoutFor(const DestinationConfig& destination) const;
};

// Loads and checks a config file. Every error names the key and what is
// wrong: "destination[2].url: ftp:// needs allow_insecure = true ...".
StatusOr<Config> LoadConfig(const std::string& path);
// Parses TOML text (for tests); `source` names it in errors.
StatusOr<Config> ParseConfig(std::string_view toml_text,
                             const std::string& source);
// Bytes every file in `layout` takes besides its rows' content: header,
// trailer (for one record) and the delimiters and line ending of a row of
// empty cells. A layout whose fixed bytes exceed output.max_file_bytes is
// refused at load time (no record could fit).
uint64_t FixedFileBytes(const Layout& layout);

// What `cbpipe config check` reports besides load errors. errors: a config
// that can deliver nothing (no destination at all; loading allows it, for
// `validate`). warnings: a network no destination receives, whose records
// would be rejected as NO_DESTINATION.
struct ConfigReview {
  std::vector<std::string> errors, warnings;
};
ConfigReview ReviewConfig(const Config& config);

// True when the config has an [aws] table or names an AWS resource (an
// s3://, sqs:// or dynamodb:// URL, an ARN, an SQS queue URL, an aws-sm:
// secret reference): `config check` then says where the AWS credentials and
// the region come from.
bool UsesAws(const Config& config);

// output/'s options from the config: work_dir, limits, layouts and one route
// per destination, in config order.
OutputOptions OutputOptionsOf(const Config& config);

// The built-in config: the four networks to file:// folders under
// `work_dir`/outbox/<network>.
Config DefaultConfig(const std::string& work_dir);
// The effective settings as TOML, secrets masked (references shown, never
// resolved).
std::string DescribeConfig(const Config& config);

}  // namespace cbpipe
