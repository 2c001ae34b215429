// cbpipe's configuration (TOML). docs/configuration.md is the reference.
//
//   auto config = LoadConfig("cbpipe.toml");       // or DefaultConfig(dir)
//   if (!config.ok()) { print config.status(): it names the key }
//
// Secrets are never in the config: credentials are references ("env:NAME",
// "file:/path") resolved by secrets/ when a connection is made.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "domain/network.h"
#include "ingest/reader.h"
#include "output/layout.h"
#include "validate/validator.h"

namespace cbpipe {

struct RetryPolicy {
  // Step Functions semantics: attempt n (1-based) waits
  // min(interval * rate^(n-1), max_delay) before the next, scaled by a random
  // factor in [0, 1) when jitter is FULL.
  double interval_seconds = 1.0;
  double backoff_rate = 2.0;
  int max_attempts = 5;  // total attempts, including the first
  double max_delay_seconds = 60.0;
  bool full_jitter = true;
};

// The wait before attempt `attempt + 1` after `attempt` (1-based) failed:
// min(interval * rate^(attempt-1), max_delay), times `random01` (in [0, 1))
// under FULL jitter. Used by deliveries, workflow steps and notifications.
double RetryDelaySeconds(const RetryPolicy& policy, int attempt,
                         double random01);

enum class FtpsMode { kExplicit, kImplicit };
enum class OnConflict { kFail, kReplace, kRename };

struct DestinationConfig {
  std::string name;                // unique, [a-z0-9_-]
  std::vector<Network> networks;   // which records it receives
  std::string url;                 // sftp:// ftps:// ftp:// file://
  std::string file_name_template =
      "{network}_{date}_{input_id}_b{batch}_f{file}.csv";
  std::string layout = "";         // built-in or [layout.NAME]; default:
                                   // the first network's built-in layout
  // Connection (sftp/ftps/ftp).
  std::string username;            // or user@ in the URL
  std::string password_ref;        // secret reference, never the secret
  std::string private_key_ref;     // sftp: a secret reference to a key file
  std::string public_key_path;     // sftp: optional
  std::string known_hosts;         // sftp: known_hosts file
  std::string host_key_sha256;     // sftp: base64 SHA-256 fingerprint
  bool insecure_skip_host_key = false;
  std::string ca_file;             // ftps: CA bundle; default system store
  FtpsMode ftps_mode = FtpsMode::kExplicit;
  bool allow_insecure = false;     // required for ftp://
  bool active_mode = false;        // ftp/ftps: PORT instead of EPSV/PASV
  std::string temp_suffix = ".part";
  // The server refuses every request but upload and rename (a drop box):
  // no STAT, size or list is sent (docs/interop.md).
  bool write_only = false;
  // sftp: fsync@openssh.com before the rename, where the server offers it
  // (the bytes are on the server's disk before the final name appears).
  bool remote_fsync = true;
  OnConflict on_conflict = OnConflict::kFail;
  double connect_timeout_seconds = 15;
  double transfer_timeout_seconds = 600;
  double stall_timeout_seconds = 30;   // no progress for this long: abort
  RetryPolicy retry;
};

// [input] error thresholds: past either, an input is rejected as a whole
// (nothing of it delivered). Only records the validator rejects count; a
// valid record that cannot be routed (NO_DESTINATION, RECORD_TOO_LARGE) is
// a config problem, reported on its own.
struct RejectThresholds {
  // More rejected records than this stops the scan at once, so the rejects
  // file stops growing there.
  uint64_t max_rejected_records = 1000000;
  // Rejected / read, checked at the end of an input of at least
  // kRatioMinRecords records; more than this rejects it.
  double max_rejected_ratio = 0.5;
  static constexpr uint64_t kRatioMinRecords = 100;
};

struct Limits {
  int max_files_per_batch = 4;
  uint64_t max_file_bytes = 50ull << 20;  // 50 MiB
  uint64_t max_records_per_file = 0;      // 0: no limit
};

// [service]: `cbpipe serve`.
struct ServiceConfig {
  std::string inbox_dir;       // default <work_dir>/inbox
  std::string state_db;        // default <work_dir>/state.db
  std::string object_dir;      // default <work_dir>/objects
  int workers = 2;
  int poll_interval_ms = 500;  // inbox scan
  int settle_ms = 1000;        // a file unchanged this long is complete
  int visibility_seconds = 60;  // a worker's lease on a run, renewed
  int max_receive_count = 5;    // then the message is a dead letter
  int shutdown_timeout_seconds = 30;
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

// The built-in config: the four networks to file:// folders under
// `work_dir`/outbox/<network>.
Config DefaultConfig(const std::string& work_dir);
// The effective settings as TOML, secrets masked (references shown, never
// resolved).
std::string DescribeConfig(const Config& config);

}  // namespace cbpipe
