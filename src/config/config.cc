#include "config/config.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "aws/credentials_chain.h"
#include "common/listen_address.h"
#include "common/text_safety.h"
#include "common/url.h"
#include "notify/notifier.h"
#include "notify/sns_notifier.h"
#include "output/layout.h"
#include "output/row_formatter.h"

namespace cbpipe {
namespace {

// Every error names the key it concerns, so a person can find it.
class ConfigError {
 public:
  explicit ConfigError(std::string source) : source_(std::move(source)) {}
  Status At(std::string_view key, std::string_view what) const {
    return InvalidArgumentError(source_ + ": " + std::string(key) + ": " +
                                std::string(what));
  }

 private:
  std::string source_;
};

using KeySet = std::set<std::string_view>;

Status CheckKnownKeys(const toml::table& table, const KeySet& known,
                      std::string_view prefix, const ConfigError& err) {
  for (const auto& [key, value] : table) {
    if (!known.count(key.str())) {
      return err.At(std::string(prefix) + std::string(key.str()),
                    "unknown key (check its spelling in "
                    "docs/configuration.md)");
    }
  }
  return OkStatus();
}

std::string Join(std::string_view prefix, std::string_view key) {
  return std::string(prefix) + std::string(key);
}

Status GetString(const toml::table& t, std::string_view key,
                 std::string_view prefix, const ConfigError& err,
                 std::string* out) {
  const toml::node* node = t.get(key);
  if (!node) return OkStatus();
  if (!node->is_string()) return err.At(Join(prefix, key), "must be a string");
  *out = node->as_string()->get();
  return OkStatus();
}

Status GetBool(const toml::table& t, std::string_view key,
               std::string_view prefix, const ConfigError& err, bool* out) {
  const toml::node* node = t.get(key);
  if (!node) return OkStatus();
  if (!node->is_boolean())
    return err.At(Join(prefix, key), "must be true or false");
  *out = node->as_boolean()->get();
  return OkStatus();
}

Status GetInt(const toml::table& t, std::string_view key,
              std::string_view prefix, const ConfigError& err, int64_t min,
              int64_t max, int64_t* out) {
  const toml::node* node = t.get(key);
  if (!node) return OkStatus();
  if (!node->is_integer())
    return err.At(Join(prefix, key), "must be a whole number");
  const int64_t v = node->as_integer()->get();
  if (v < min || v > max) {
    return err.At(Join(prefix, key), "must be between " + std::to_string(min) +
                                         " and " + std::to_string(max));
  }
  *out = v;
  return OkStatus();
}

Status GetDouble(const toml::table& t, std::string_view key,
                 std::string_view prefix, const ConfigError& err, double min,
                 double max, double* out) {
  const toml::node* node = t.get(key);
  if (!node) return OkStatus();
  double v;
  if (node->is_integer()) {
    v = static_cast<double>(node->as_integer()->get());
  } else if (node->is_floating_point()) {
    v = node->as_floating_point()->get();
  } else {
    return err.At(Join(prefix, key), "must be a number");
  }
  if (!(v >= min && v <= max)) {
    return err.At(Join(prefix, key), "must be between " + std::to_string(min) +
                                         " and " + std::to_string(max));
  }
  *out = v;
  return OkStatus();
}

Status GetStringList(const toml::table& t, std::string_view key,
                     std::string_view prefix, const ConfigError& err,
                     std::vector<std::string>* out) {
  const toml::node* node = t.get(key);
  if (!node) return OkStatus();
  const toml::array* arr = node->as_array();
  if (!arr) return err.At(Join(prefix, key), "must be a list of strings");
  out->clear();
  for (const toml::node& item : *arr) {
    if (!item.is_string())
      return err.At(Join(prefix, key), "must be a list of strings");
    out->push_back(item.as_string()->get());
  }
  return OkStatus();
}

bool IsSecretReference(std::string_view ref) {
  return ref.rfind("env:", 0) == 0 || ref.rfind("file:", 0) == 0 ||
         ref.rfind("aws-sm:", 0) == 0;
}

Status ParseInput(const toml::table& t, const ConfigError& err, Config* c) {
  CBPIPE_RETURN_IF_ERROR(CheckKnownKeys(
      t,
      {"format", "pan_policy", "date_formats", "fields", "max_field_bytes",
       "max_record_bytes", "max_columns", "max_decompressed_bytes",
       "max_compression_ratio", "max_rejected_records", "max_rejected_ratio"},
      "input.", err));
  std::string format = "auto";
  CBPIPE_RETURN_IF_ERROR(GetString(t, "format", "input.", err, &format));
  if (format == "auto") {
    c->format = InputFormat::kAuto;
  } else if (auto f = ParseInputFormat(format)) {
    c->format = *f;
  } else {
    return err.At("input.format", "must be auto, csv, jsonl or json, not '" +
                                      format + "'");
  }
  std::string pan = "mask";
  CBPIPE_RETURN_IF_ERROR(GetString(t, "pan_policy", "input.", err, &pan));
  if (pan == "mask") {
    c->pan_policy = PanPolicy::kMask;
  } else if (pan == "reject") {
    c->pan_policy = PanPolicy::kReject;
  } else {
    return err.At("input.pan_policy", "must be mask or reject");
  }
  CBPIPE_RETURN_IF_ERROR(
      GetStringList(t, "date_formats", "input.", err, &c->date_formats));
  for (const std::string& f : c->date_formats) {
    if (f.find('%') == std::string::npos)
      return err.At("input.date_formats",
                    "'" + f + "' has no %Y/%m/%d placeholders");
  }
  int64_t v = static_cast<int64_t>(c->reader_limits.max_field_bytes);
  CBPIPE_RETURN_IF_ERROR(
      GetInt(t, "max_field_bytes", "input.", err, 64, 1 << 30, &v));
  c->reader_limits.max_field_bytes = static_cast<size_t>(v);
  v = static_cast<int64_t>(c->reader_limits.max_record_bytes);
  CBPIPE_RETURN_IF_ERROR(
      GetInt(t, "max_record_bytes", "input.", err, 256, 1 << 30, &v));
  c->reader_limits.max_record_bytes = static_cast<size_t>(v);
  v = static_cast<int64_t>(c->reader_limits.max_columns);
  CBPIPE_RETURN_IF_ERROR(
      GetInt(t, "max_columns", "input.", err, 1, 1 << 20, &v));
  c->reader_limits.max_columns = static_cast<size_t>(v);
  v = static_cast<int64_t>(c->reader_limits.max_decompressed_bytes);
  CBPIPE_RETURN_IF_ERROR(GetInt(t, "max_decompressed_bytes", "input.", err,
                                1024, int64_t{1} << 50, &v));
  c->reader_limits.max_decompressed_bytes = static_cast<uint64_t>(v);
  v = static_cast<int64_t>(c->reader_limits.max_compression_ratio);
  CBPIPE_RETURN_IF_ERROR(
      GetInt(t, "max_compression_ratio", "input.", err, 2, 100000, &v));
  c->reader_limits.max_compression_ratio = static_cast<uint64_t>(v);
  v = static_cast<int64_t>(c->reject_thresholds.max_rejected_records);
  CBPIPE_RETURN_IF_ERROR(GetInt(t, "max_rejected_records", "input.", err, 0,
                                int64_t{1} << 50, &v));
  c->reject_thresholds.max_rejected_records = static_cast<uint64_t>(v);
  CBPIPE_RETURN_IF_ERROR(GetDouble(t, "max_rejected_ratio", "input.", err, 0, 1,
                                   &c->reject_thresholds.max_rejected_ratio));

  if (const toml::node* fields = t.get("fields")) {
    const toml::table* ft = fields->as_table();
    if (!ft) return err.At("input.fields", "must be a table");
    for (const auto& [key, value] : *ft) {
      const std::string name(key.str());
      std::optional<Field> field = FieldFromName(name);
      if (!field || FieldName(*field) != name) {
        return err.At("input.fields." + name,
                      "is not a canonical field name (case_id, network, "
                      "arn, pan, merchant_id, ...)");
      }
      if (!value.is_string() || value.as_string()->get().empty())
        return err.At("input.fields." + name,
                      "must be the input's column name, a non-empty string");
      const std::string source = value.as_string()->get();
      if (IsSensitiveFieldName(source))
        return err.At("input.fields." + name,
                      "'" + source + "' is a sensitive field name (card "
                      "verification or track data) and cannot be mapped");
      c->mapping.Set(*field, source);
      c->explicit_fields[name] = source;
    }
  }
  return OkStatus();
}

Status ParseOutput(const toml::table& t, const ConfigError& err, Config* c) {
  CBPIPE_RETURN_IF_ERROR(CheckKnownKeys(
      t,
      {"work_dir", "max_files_per_batch", "max_file_bytes",
       "max_records_per_file", "max_errors_reported"},
      "output.", err));
  CBPIPE_RETURN_IF_ERROR(GetString(t, "work_dir", "output.", err,
                                   &c->work_dir));
  if (c->work_dir.empty()) return err.At("output.work_dir", "is empty");
  int64_t v = c->limits.max_files_per_batch;
  CBPIPE_RETURN_IF_ERROR(
      GetInt(t, "max_files_per_batch", "output.", err, 1, 1000, &v));
  c->limits.max_files_per_batch = static_cast<int>(v);
  v = static_cast<int64_t>(c->limits.max_file_bytes);
  CBPIPE_RETURN_IF_ERROR(GetInt(t, "max_file_bytes", "output.", err, 1024,
                                int64_t{1} << 40, &v));
  c->limits.max_file_bytes = static_cast<uint64_t>(v);
  v = static_cast<int64_t>(c->limits.max_records_per_file);
  CBPIPE_RETURN_IF_ERROR(GetInt(t, "max_records_per_file", "output.", err, 0,
                                int64_t{1} << 40, &v));
  c->limits.max_records_per_file = static_cast<uint64_t>(v);
  v = c->max_errors_reported;
  CBPIPE_RETURN_IF_ERROR(
      GetInt(t, "max_errors_reported", "output.", err, 0, 10000000, &v));
  c->max_errors_reported = static_cast<int>(v);
  return OkStatus();
}

Status ParseLayout(const std::string& name, const toml::table& t,
                   const ConfigError& err, Layout* layout) {
  const std::string prefix = "layout." + name + ".";
  CBPIPE_RETURN_IF_ERROR(CheckKnownKeys(
      t, {"header", "delimiter", "line_ending", "trailer", "column"}, prefix,
      err));
  layout->name = name;
  CBPIPE_RETURN_IF_ERROR(GetBool(t, "header", prefix, err, &layout->header));
  std::string delimiter = ",";
  CBPIPE_RETURN_IF_ERROR(GetString(t, "delimiter", prefix, err, &delimiter));
  if (delimiter == "\\t") delimiter = "\t";
  if (delimiter.size() != 1 || delimiter[0] == '"' || delimiter[0] == '\r' ||
      delimiter[0] == '\n') {
    return err.At(prefix + "delimiter",
                  "must be one character other than a quote or line break");
  }
  layout->delimiter = delimiter[0];
  std::string ending = "crlf";
  CBPIPE_RETURN_IF_ERROR(GetString(t, "line_ending", prefix, err, &ending));
  if (ending == "crlf") {
    layout->line_ending = "\r\n";
  } else if (ending == "lf") {
    layout->line_ending = "\n";
  } else {
    return err.At(prefix + "line_ending", "must be crlf or lf");
  }
  std::string trailer = "none";
  CBPIPE_RETURN_IF_ERROR(GetString(t, "trailer", prefix, err, &trailer));
  if (trailer == "none") {
    layout->trailer = TrailerKind::kNone;
  } else if (trailer == "count_and_total") {
    layout->trailer = TrailerKind::kCountAndTotal;
  } else {
    return err.At(prefix + "trailer", "must be none or count_and_total");
  }
  const toml::node* cols = t.get("column");
  const toml::array* arr = cols ? cols->as_array() : nullptr;
  if (!arr || arr->empty()) {
    return err.At(prefix + "column",
                  "a layout needs at least one [[layout." + name +
                      ".column]] entry");
  }
  int index = 0;
  for (const toml::node& node : *arr) {
    const std::string cp =
        prefix + "column[" + std::to_string(index++) + "].";
    const toml::table* ct = node.as_table();
    if (!ct) return err.At(cp, "must be a table");
    CBPIPE_RETURN_IF_ERROR(CheckKnownKeys(
        *ct, {"header", "field", "constant", "format", "date_pattern", "quote"},
        cp, err));
    Column col;
    std::string field, format = "text";
    CBPIPE_RETURN_IF_ERROR(GetString(*ct, "header", cp, err, &col.header));
    CBPIPE_RETURN_IF_ERROR(GetString(*ct, "field", cp, err, &field));
    CBPIPE_RETURN_IF_ERROR(GetString(*ct, "constant", cp, err, &col.constant));
    CBPIPE_RETURN_IF_ERROR(GetString(*ct, "format", cp, err, &format));
    CBPIPE_RETURN_IF_ERROR(
        GetString(*ct, "date_pattern", cp, err, &col.date_pattern));
    if (field.empty() == !ct->contains("constant")) {
      return err.At(cp, "needs exactly one of field or constant");
    }
    if (!field.empty()) {
      std::optional<Field> f = FieldFromName(field);
      if (!f || FieldName(*f) != field)
        return err.At(cp + "field", "'" + field +
                                        "' is not a canonical field name");
      col.field = f;
      col.always_quote = *f == Field::kArn || *f == Field::kCaseId ||
                         *f == Field::kMerchantId;
    }
    std::optional<ColumnFormat> cf = ParseColumnFormat(format);
    if (!cf) {
      return err.At(cp + "format",
                    "must be text, upper, lower, date, amount or "
                    "amount_minor");
    }
    col.format = *cf;
    CBPIPE_RETURN_IF_ERROR(GetBool(*ct, "quote", cp, err, &col.always_quote));
    if (col.header.empty())
      col.header = col.field ? std::string(FieldName(*col.field)) : "constant";
    layout->columns.push_back(std::move(col));
  }
  Status st = ValidateLayout(*layout);
  if (!st.ok()) return err.At("layout." + name, st.message());
  return OkStatus();
}

Status ParseRetry(const toml::table& t, std::string_view prefix,
                  const ConfigError& err, RetryPolicy* r) {
  CBPIPE_RETURN_IF_ERROR(CheckKnownKeys(
      t,
      {"interval_seconds", "backoff_rate", "max_attempts", "max_delay_seconds",
       "jitter"},
      prefix, err));
  CBPIPE_RETURN_IF_ERROR(GetDouble(t, "interval_seconds", prefix, err, 0,
                                   86400, &r->interval_seconds));
  CBPIPE_RETURN_IF_ERROR(
      GetDouble(t, "backoff_rate", prefix, err, 1.0, 100, &r->backoff_rate));
  int64_t attempts = r->max_attempts;
  CBPIPE_RETURN_IF_ERROR(
      GetInt(t, "max_attempts", prefix, err, 1, 1000, &attempts));
  r->max_attempts = static_cast<int>(attempts);
  CBPIPE_RETURN_IF_ERROR(GetDouble(t, "max_delay_seconds", prefix, err, 0,
                                   86400, &r->max_delay_seconds));
  std::string jitter = r->full_jitter ? "FULL" : "NONE";
  CBPIPE_RETURN_IF_ERROR(GetString(t, "jitter", prefix, err, &jitter));
  if (jitter == "FULL") {
    r->full_jitter = true;
  } else if (jitter == "NONE") {
    r->full_jitter = false;
  } else {
    return err.At(Join(prefix, "jitter"), "must be FULL or NONE");
  }
  return OkStatus();
}

Status CheckFileNameTemplate(std::string_view tmpl, const std::string& key,
                             const ConfigError& err) {
  static const std::set<std::string_view> kTokens = {
      "network", "destination", "date", "input_id", "batch", "file"};
  if (tmpl.empty()) return err.At(key, "is empty");
  if (tmpl.find('/') != std::string_view::npos ||
      tmpl.find('\\') != std::string_view::npos)
    return err.At(key, "must be a file name, without '/'");
  // Refused here rather than when the first file is delivered: a newline,
  // tab, NUL or a bidirectional override has no place in a file name.
  if (std::optional<UnsafeChar> c = FindUnsafeChar(tmpl)) {
    return err.At(key, "holds the control character " + UnsafeCharName(*c) +
                           " at byte " + std::to_string(c->offset));
  }
  bool has_batch = false, has_file = false;
  for (size_t i = 0; i < tmpl.size(); ++i) {
    if (tmpl[i] == '}') return err.At(key, "has a '}' without '{'");
    if (tmpl[i] != '{') continue;
    const size_t end = tmpl.find('}', i);
    if (end == std::string_view::npos) return err.At(key, "has an open '{'");
    std::string_view token = tmpl.substr(i + 1, end - i - 1);
    if (!kTokens.count(token)) {
      return err.At(key, "unknown token {" + std::string(token) +
                             "}; known: {network} {destination} {date} "
                             "{input_id} {batch} {file}");
    }
    has_batch |= token == "batch";
    has_file |= token == "file";
    i = end;
  }
  if (!has_file) {
    // Without {file}, two files of one destination would get one name.
    return err.At(key, "must contain {file} so that rolled-over files get "
                       "distinct names");
  }
  (void)has_batch;
  return OkStatus();
}

// A file:// URL names a local folder by its absolute path:
// file:///srv/outbox. What follows "file://" is used as the path as it is
// (no %-decoding), so a host part ("file://localhost/x", "file://out/x")
// would silently become a folder relative to wherever cbpipe runs, and "."
// or ".." segments could climb out of the folder meant.
Status CheckFileUrl(std::string_view url, const std::string& key,
                    const ConfigError& err) {
  const std::string_view path = url.substr(std::string_view("file://").size());
  if (path.empty())
    return err.At(key, "file:// needs a folder: file:///absolute/folder");
  if (path.front() != '/') {
    return err.At(key,
                  "must be file:///absolute/folder (three slashes): a host "
                  "or a relative path after file:// is not supported");
  }
  size_t start = 0;
  while (start < path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    const std::string_view segment = path.substr(start, end - start);
    if (segment == "." || segment == "..")
      return err.At(key, "must not hold '.' or '..' segments");
    start = end + 1;
  }
  if (std::optional<UnsafeChar> c = FindUnsafeChar(path))
    return err.At(key, "holds the control character " + UnsafeCharName(*c));
  return OkStatus();
}

Status ParseDestination(const toml::table& t, int index,
                        const ConfigError& err, DestinationConfig* d) {
  const std::string prefix = "destination[" + std::to_string(index) + "].";
  CBPIPE_RETURN_IF_ERROR(CheckKnownKeys(
      t,
      {"name", "networks", "network", "url", "file_name", "layout",
       "username", "password", "private_key", "public_key", "known_hosts",
       "host_key_sha256", "insecure_skip_host_key", "ca_file", "ftps_mode",
       "allow_insecure", "active_mode", "temp_suffix", "on_conflict",
       "write_only", "fsync",
       "connect_timeout_seconds", "transfer_timeout_seconds",
       "stall_timeout_seconds", "retry"},
      prefix, err));
  CBPIPE_RETURN_IF_ERROR(GetString(t, "name", prefix, err, &d->name));
  if (d->name.empty()) return err.At(prefix + "name", "is required");
  for (char ch : d->name) {
    if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' ||
          ch == '-'))
      return err.At(prefix + "name",
                    "'" + d->name + "' may hold only a-z, 0-9, _ and -");
  }
  std::vector<std::string> networks;
  if (t.contains("network") && t.contains("networks"))
    return err.At(prefix + "networks", "give network or networks, not both");
  std::string single;
  CBPIPE_RETURN_IF_ERROR(GetString(t, "network", prefix, err, &single));
  if (!single.empty()) networks.push_back(single);
  CBPIPE_RETURN_IF_ERROR(
      GetStringList(t, "networks", prefix, err, &networks));
  if (networks.empty())
    return err.At(prefix + "networks",
                  "is required: the card networks this destination receives");
  for (const std::string& n : networks) {
    std::optional<Network> net = ParseNetwork(n);
    if (!net)
      return err.At(prefix + "networks", "'" + n + "' is not a card network");
    d->networks.push_back(*net);
  }
  CBPIPE_RETURN_IF_ERROR(GetString(t, "url", prefix, err, &d->url));
  if (d->url.empty()) return err.At(prefix + "url", "is required");
  const std::string scheme = d->url.substr(0, d->url.find("://"));
  if (d->url.find("://") == std::string::npos ||
      (scheme != "file" && scheme != "sftp" && scheme != "ftps" &&
       scheme != "ftp")) {
    return err.At(prefix + "url",
                  "must start with sftp://, ftps://, ftp:// or file://");
  }
  // Do not echo the URL: it may hold the password.
  if (UrlUserinfo(d->url).find(':') != std::string_view::npos) {
    return err.At(prefix + "url",
                  "must not hold a password; use password = \"env:NAME\"");
  }
  if (scheme == "file") {
    CBPIPE_RETURN_IF_ERROR(CheckFileUrl(d->url, prefix + "url", err));
  }
  CBPIPE_RETURN_IF_ERROR(
      GetString(t, "file_name", prefix, err, &d->file_name_template));
  CBPIPE_RETURN_IF_ERROR(
      CheckFileNameTemplate(d->file_name_template, prefix + "file_name", err));
  CBPIPE_RETURN_IF_ERROR(GetString(t, "layout", prefix, err, &d->layout));
  CBPIPE_RETURN_IF_ERROR(GetString(t, "username", prefix, err, &d->username));
  CBPIPE_RETURN_IF_ERROR(
      GetString(t, "password", prefix, err, &d->password_ref));
  if (!d->password_ref.empty() && !IsSecretReference(d->password_ref)) {
    // Do not echo the value: it may be the password itself.
    return err.At(prefix + "password",
                  "must be a secret reference (env:NAME or file:/path), "
                  "never the password itself");
  }
  CBPIPE_RETURN_IF_ERROR(
      GetString(t, "private_key", prefix, err, &d->private_key_ref));
  if (!d->private_key_ref.empty() && !IsSecretReference(d->private_key_ref)) {
    return err.At(prefix + "private_key",
                  "must be a secret reference such as file:/path/to/key");
  }
  CBPIPE_RETURN_IF_ERROR(
      GetString(t, "public_key", prefix, err, &d->public_key_path));
  CBPIPE_RETURN_IF_ERROR(
      GetString(t, "known_hosts", prefix, err, &d->known_hosts));
  CBPIPE_RETURN_IF_ERROR(
      GetString(t, "host_key_sha256", prefix, err, &d->host_key_sha256));
  CBPIPE_RETURN_IF_ERROR(GetBool(t, "insecure_skip_host_key", prefix, err,
                                 &d->insecure_skip_host_key));
  CBPIPE_RETURN_IF_ERROR(GetString(t, "ca_file", prefix, err, &d->ca_file));
  std::string mode = "explicit";
  CBPIPE_RETURN_IF_ERROR(GetString(t, "ftps_mode", prefix, err, &mode));
  if (mode == "explicit") {
    d->ftps_mode = FtpsMode::kExplicit;
  } else if (mode == "implicit") {
    d->ftps_mode = FtpsMode::kImplicit;
  } else {
    return err.At(prefix + "ftps_mode", "must be explicit or implicit");
  }
  CBPIPE_RETURN_IF_ERROR(
      GetBool(t, "allow_insecure", prefix, err, &d->allow_insecure));
  CBPIPE_RETURN_IF_ERROR(
      GetBool(t, "active_mode", prefix, err, &d->active_mode));
  CBPIPE_RETURN_IF_ERROR(
      GetString(t, "temp_suffix", prefix, err, &d->temp_suffix));
  if (d->temp_suffix.empty() ||
      d->temp_suffix.find('/') != std::string::npos)
    return err.At(prefix + "temp_suffix",
                  "must be a non-empty suffix without '/'");
  std::string conflict = "fail";
  CBPIPE_RETURN_IF_ERROR(GetString(t, "on_conflict", prefix, err, &conflict));
  if (conflict == "fail") {
    d->on_conflict = OnConflict::kFail;
  } else if (conflict == "replace") {
    d->on_conflict = OnConflict::kReplace;
  } else if (conflict == "rename") {
    d->on_conflict = OnConflict::kRename;
  } else {
    return err.At(prefix + "on_conflict", "must be fail, replace or rename");
  }
  CBPIPE_RETURN_IF_ERROR(GetBool(t, "write_only", prefix, err, &d->write_only));
  CBPIPE_RETURN_IF_ERROR(GetBool(t, "fsync", prefix, err, &d->remote_fsync));
  if (d->write_only && scheme == "file")
    return err.At(prefix + "write_only",
                  "applies to sftp://, ftps:// and ftp:// destinations");
  if (d->write_only && d->on_conflict == OnConflict::kRename)
    return err.At(prefix + "on_conflict",
                  "rename needs to ask the server which names are free, "
                  "which a write_only server refuses: use fail or replace");
  CBPIPE_RETURN_IF_ERROR(GetDouble(t, "connect_timeout_seconds", prefix, err,
                                   0.1, 3600, &d->connect_timeout_seconds));
  CBPIPE_RETURN_IF_ERROR(GetDouble(t, "transfer_timeout_seconds", prefix, err,
                                   1, 86400, &d->transfer_timeout_seconds));
  CBPIPE_RETURN_IF_ERROR(GetDouble(t, "stall_timeout_seconds", prefix, err, 1,
                                   3600, &d->stall_timeout_seconds));
  if (const toml::node* retry = t.get("retry")) {
    if (!retry->is_table()) return err.At(prefix + "retry", "must be a table");
    CBPIPE_RETURN_IF_ERROR(
        ParseRetry(*retry->as_table(), prefix + "retry.", err, &d->retry));
  }

  // Security defaults (PCI DSS 2.2.5, 4.2.1).
  if (scheme == "ftp" && !d->allow_insecure) {
    return err.At(prefix + "url",
                  "ftp:// sends data and password in clear text (PCI DSS "
                  "lists FTP as insecure); use sftp:// or ftps://, or set "
                  "allow_insecure = true for this destination");
  }
  if (scheme == "sftp" && d->known_hosts.empty() &&
      d->host_key_sha256.empty() && !d->insecure_skip_host_key) {
    return err.At(prefix + "known_hosts",
                  "sftp:// needs the server's host key: set known_hosts or "
                  "host_key_sha256 (or insecure_skip_host_key = true, not "
                  "for production)");
  }
  return OkStatus();
}

Status ParseService(const toml::table& t, const ConfigError& err,
                    ServiceConfig* sc) {
  CBPIPE_RETURN_IF_ERROR(CheckKnownKeys(
      t,
      {"inbox_dir", "state_db", "object_dir", "object_store", "work_store",
       "queue", "run_store", "ledger", "events_queue", "workers",
       "poll_interval_ms",
       "settle_ms", "visibility_seconds", "max_receive_count",
       "shutdown_timeout_seconds", "admin_listen", "admin_token", "log_file",
       "log_level", "probe_interval_seconds"},
      "service.", err));
  CBPIPE_RETURN_IF_ERROR(
      GetString(t, "inbox_dir", "service.", err, &sc->inbox_dir));
  CBPIPE_RETURN_IF_ERROR(
      GetString(t, "state_db", "service.", err, &sc->state_db));
  CBPIPE_RETURN_IF_ERROR(
      GetString(t, "object_dir", "service.", err, &sc->object_dir));
  CBPIPE_RETURN_IF_ERROR(
      GetString(t, "object_store", "service.", err, &sc->object_store));
  if (!sc->object_store.empty() &&
      sc->object_store.find("://") == std::string::npos)
    return err.At("service.object_store",
                  "must be an object store URL (file:///abs/path or "
                  "s3://bucket/prefix)");
  CBPIPE_RETURN_IF_ERROR(
      GetString(t, "work_store", "service.", err, &sc->work_store));
  if (!sc->work_store.empty() &&
      sc->work_store.find("://") == std::string::npos)
    return err.At("service.work_store",
                  "must be an object store URL (file:///abs/path or "
                  "s3://bucket/prefix)");
  // The adapters' registry (workflow/registry.h) checks the schemes.
  for (auto [key, out] :
       {std::pair{"queue", &sc->queue}, std::pair{"run_store", &sc->run_store},
        std::pair{"ledger", &sc->ledger},
        std::pair{"events_queue", &sc->events_queue}}) {
    CBPIPE_RETURN_IF_ERROR(GetString(t, key, "service.", err, out));
    if (!out->empty() && out->find("://") == std::string::npos)
      return err.At(std::string("service.") + key,
                    "must be a URL (sqlite://, sqs://, dynamodb:// or an "
                    "SQS queue URL)");
  }
  auto get_int = [&](std::string_view key, int64_t min, int64_t max,
                     int* out) -> Status {
    int64_t v = *out;
    CBPIPE_RETURN_IF_ERROR(GetInt(t, key, "service.", err, min, max, &v));
    *out = static_cast<int>(v);
    return OkStatus();
  };
  CBPIPE_RETURN_IF_ERROR(get_int("workers", 1, 64, &sc->workers));
  CBPIPE_RETURN_IF_ERROR(
      get_int("poll_interval_ms", 10, 60000, &sc->poll_interval_ms));
  CBPIPE_RETURN_IF_ERROR(get_int("settle_ms", 0, 600000, &sc->settle_ms));
  CBPIPE_RETURN_IF_ERROR(
      get_int("visibility_seconds", 2, 43200, &sc->visibility_seconds));
  CBPIPE_RETURN_IF_ERROR(
      get_int("max_receive_count", 1, 1000, &sc->max_receive_count));
  CBPIPE_RETURN_IF_ERROR(get_int("shutdown_timeout_seconds", 1, 3600,
                                 &sc->shutdown_timeout_seconds));
  CBPIPE_RETURN_IF_ERROR(get_int("probe_interval_seconds", 0, 86400,
                                 &sc->probe_interval_seconds));
  CBPIPE_RETURN_IF_ERROR(
      GetString(t, "admin_listen", "service.", err, &sc->admin_listen));
  if (!sc->admin_listen.empty()) {
    // The check `serve` applies when it binds, so both agree.
    StatusOr<ListenAddress> address = ParseAdminListenAddress(sc->admin_listen);
    if (!address.ok())
      return err.At("service.admin_listen", address.status().message());
  }
  CBPIPE_RETURN_IF_ERROR(
      GetString(t, "admin_token", "service.", err, &sc->admin_token_ref));
  if (!sc->admin_token_ref.empty() && !IsSecretReference(sc->admin_token_ref))
    return err.At("service.admin_token",
                  "must be a secret reference (env:NAME or file:/path)");
  CBPIPE_RETURN_IF_ERROR(
      GetString(t, "log_file", "service.", err, &sc->log_file));
  CBPIPE_RETURN_IF_ERROR(
      GetString(t, "log_level", "service.", err, &sc->log_level));
  if (sc->log_level != "debug" && sc->log_level != "info" &&
      sc->log_level != "warn" && sc->log_level != "error")
    return err.At("service.log_level", "must be debug, info, warn or error");
  return OkStatus();
}

Status ParseTelemetry(const toml::table& t, const ConfigError& err,
                      TelemetryOptions* o) {
  CBPIPE_RETURN_IF_ERROR(CheckKnownKeys(
      t,
      {"metrics", "emf_namespace", "emf_output", "emf_gauge_interval_seconds",
       "xray", "xray_daemon_address", "xray_service_name"},
      "telemetry.", err));
  CBPIPE_RETURN_IF_ERROR(
      GetStringList(t, "metrics", "telemetry.", err, &o->metrics));
  Status names = CheckMetricsNames(o->metrics);
  if (!names.ok()) return err.At("telemetry.metrics", names.message());
  CBPIPE_RETURN_IF_ERROR(GetString(t, "emf_namespace", "telemetry.", err,
                                   &o->emf.namespace_name));
  // CloudWatch: 1-255 characters, no leading colon.
  if (o->emf.namespace_name.empty() || o->emf.namespace_name.size() > 255 ||
      o->emf.namespace_name[0] == ':')
    return err.At("telemetry.emf_namespace",
                  "must be 1-255 characters, not starting with ':'");
  CBPIPE_RETURN_IF_ERROR(
      GetString(t, "emf_output", "telemetry.", err, &o->emf.output));
  if (o->emf.output.empty())
    return err.At("telemetry.emf_output",
                  "must be \"stdout\" or a file path");
  int64_t interval = o->emf.gauge_interval_ms / 1000;
  CBPIPE_RETURN_IF_ERROR(GetInt(t, "emf_gauge_interval_seconds", "telemetry.",
                                err, 0, 86400, &interval));
  o->emf.gauge_interval_ms = interval * 1000;
  CBPIPE_RETURN_IF_ERROR(
      GetBool(t, "xray", "telemetry.", err, &o->xray.enabled));
  CBPIPE_RETURN_IF_ERROR(GetString(t, "xray_daemon_address", "telemetry.",
                                   err, &o->xray.daemon_address));
  if (!o->xray.daemon_address.empty()) {
    StatusOr<XRayDaemonAddress> address =
        ParseXRayDaemonAddress(o->xray.daemon_address);
    if (!address.ok())
      return err.At("telemetry.xray_daemon_address",
                    address.status().message());
  }
  CBPIPE_RETURN_IF_ERROR(GetString(t, "xray_service_name", "telemetry.", err,
                                   &o->xray.service_name));
  if (o->xray.service_name.empty() || o->xray.service_name.size() > 200)
    return err.At("telemetry.xray_service_name", "must be 1-200 characters");
  return OkStatus();
}

Status ParseAws(const toml::table& t, const ConfigError& err, AwsOptions* aws) {
  CBPIPE_RETURN_IF_ERROR(CheckKnownKeys(
      t,
      {"region", "profile", "endpoints", "s3_addressing",
       "connect_timeout_seconds", "request_timeout_seconds",
       "idle_timeout_seconds", "secrets_cache_seconds"},
      "aws.", err));
  CBPIPE_RETURN_IF_ERROR(GetString(t, "region", "aws.", err, &aws->region));
  if (t.get("region") && !IsAwsRegionName(aws->region))
    return err.At("aws.region",
                  "must be a region name (lowercase letters, digits and '-', "
                  "like \"eu-west-1\")");
  CBPIPE_RETURN_IF_ERROR(GetString(t, "profile", "aws.", err, &aws->profile));
  if (t.get("profile") &&
      (aws->profile.empty() || FindUnsafeChar(aws->profile) ||
       aws->profile.find_first_of("[] \t") != std::string::npos))
    return err.At("aws.profile",
                  "must be a profile name of ~/.aws/config (no spaces, "
                  "brackets or control characters)");
  if (const toml::node* n = t.get("endpoints")) {
    const toml::table* endpoints = n->as_table();
    if (!endpoints)
      return err.At("aws.endpoints",
                    "must be a table: { s3 = \"http://127.0.0.1:5000\" }");
    for (const auto& [key, value] : *endpoints) {
      const std::string name(key.str());
      const std::string at = "aws.endpoints." + name;
      if (name.empty() ||
          name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-") !=
              std::string::npos)
        return err.At(at, "must be a service signing name (s3, sqs, ...)");
      if (!value.is_string()) return err.At(at, "must be a string");
      const std::string url = value.as_string()->get();
      const bool scheme =
          url.rfind("http://", 0) == 0 || url.rfind("https://", 0) == 0;
      const size_t host = url.find("://") + 3;
      if (!scheme || url.size() <= host || FindUnsafeChar(url) ||
          url.find_first_of("/?#@ ", host) != std::string::npos)
        return err.At(at,
                      "must be an http:// or https:// URL with a host and "
                      "no path, query or credentials");
      aws->endpoints[name] = url;
    }
  }
  std::string addressing;
  CBPIPE_RETURN_IF_ERROR(
      GetString(t, "s3_addressing", "aws.", err, &addressing));
  if (addressing == "path") {
    aws->s3_addressing = AwsS3Addressing::kPathStyle;
  } else if (addressing == "virtual") {
    aws->s3_addressing = AwsS3Addressing::kVirtualHosted;
  } else if (!addressing.empty() && addressing != "auto") {
    return err.At("aws.s3_addressing", "must be \"auto\", \"path\" or "
                                       "\"virtual\"");
  }
  CBPIPE_RETURN_IF_ERROR(GetDouble(t, "connect_timeout_seconds", "aws.", err,
                                   0.1, 600, &aws->connect_timeout_seconds));
  CBPIPE_RETURN_IF_ERROR(GetDouble(t, "request_timeout_seconds", "aws.", err,
                                   0, 86400, &aws->request_timeout_seconds));
  CBPIPE_RETURN_IF_ERROR(GetDouble(t, "idle_timeout_seconds", "aws.", err, 1,
                                   3600, &aws->idle_timeout_seconds));
  CBPIPE_RETURN_IF_ERROR(GetDouble(t, "secrets_cache_seconds", "aws.", err, 0,
                                   86400, &aws->secrets_cache_seconds));
  return OkStatus();
}

Status ParseNotify(const toml::table& t, const ConfigError& err, Config* c) {
  CBPIPE_RETURN_IF_ERROR(CheckKnownKeys(t, {"webhook", "email", "sns"},
                                        "notify.", err));
  if (const toml::node* n = t.get("sns")) {
    const toml::table* st = n->as_table();
    const std::string p = "notify.sns.";
    if (!st) return err.At("notify.sns", "must be a table");
    CBPIPE_RETURN_IF_ERROR(CheckKnownKeys(
        *st, {"topic_arn", "alert_topic_arn", "events", "queue_capacity"}, p,
        err));
    SnsConfig sns;
    CBPIPE_RETURN_IF_ERROR(GetString(*st, "topic_arn", p, err, &sns.topic_arn));
    if (Status arn = ValidateSnsTopicArn(sns.topic_arn); !arn.ok())
      return err.At(p + "topic_arn",
                    "must be an SNS topic ARN "
                    "(arn:aws:sns:REGION:ACCOUNT:NAME)");
    CBPIPE_RETURN_IF_ERROR(
        GetString(*st, "alert_topic_arn", p, err, &sns.alert_topic_arn));
    if (!sns.alert_topic_arn.empty() &&
        !ValidateSnsTopicArn(sns.alert_topic_arn).ok())
      return err.At(p + "alert_topic_arn",
                    "must be an SNS topic ARN "
                    "(arn:aws:sns:REGION:ACCOUNT:NAME)");
    CBPIPE_RETURN_IF_ERROR(GetStringList(*st, "events", p, err, &sns.events));
    for (const std::string& e : sns.events) {
      if (!IsKnownEventType(e))
        return err.At(p + "events", "'" + e + "' is not an event type");
    }
    int64_t capacity = sns.queue_capacity;
    CBPIPE_RETURN_IF_ERROR(
        GetInt(*st, "queue_capacity", p, err, 1, 1000000, &capacity));
    sns.queue_capacity = static_cast<int>(capacity);
    c->sns = std::move(sns);
  }
  if (const toml::node* n = t.get("webhook")) {
    const toml::array* arr = n->as_array();
    if (!arr) return err.At("notify.webhook", "must be [[notify.webhook]]");
    int i = 0;
    for (const toml::node& item : *arr) {
      const std::string p = "notify.webhook[" + std::to_string(i++) + "].";
      const toml::table* wt = item.as_table();
      if (!wt) return err.At(p, "must be a table");
      CBPIPE_RETURN_IF_ERROR(CheckKnownKeys(
          *wt,
          {"url", "secret", "events", "ca_file", "allow_insecure", "retry",
           "connect_timeout_seconds", "request_timeout_seconds",
           "queue_capacity"},
          p, err));
      WebhookConfig w;
      CBPIPE_RETURN_IF_ERROR(GetString(*wt, "url", p, err, &w.url));
      if (w.url.rfind("https://", 0) != 0 && w.url.rfind("http://", 0) != 0)
        return err.At(p + "url", "must be an http:// or https:// URL");
      // Like a destination's password: never in the URL, and the URL is
      // not echoed. The receiver authenticates events by their signature.
      if (!UrlUserinfo(w.url).empty())
        return err.At(p + "url",
                      "must not hold credentials (user:password@); events "
                      "are authenticated by their HMAC signature (secret)");
      CBPIPE_RETURN_IF_ERROR(GetString(*wt, "secret", p, err, &w.secret_ref));
      if (w.secret_ref.empty() || !IsSecretReference(w.secret_ref))
        return err.At(p + "secret",
                      "is required: a secret reference for the HMAC key");
      CBPIPE_RETURN_IF_ERROR(GetStringList(*wt, "events", p, err, &w.events));
      CBPIPE_RETURN_IF_ERROR(GetString(*wt, "ca_file", p, err, &w.ca_file));
      CBPIPE_RETURN_IF_ERROR(
          GetBool(*wt, "allow_insecure", p, err, &w.allow_insecure));
      CBPIPE_RETURN_IF_ERROR(GetDouble(*wt, "connect_timeout_seconds", p, err,
                                       0.1, 600, &w.connect_timeout_seconds));
      CBPIPE_RETURN_IF_ERROR(GetDouble(*wt, "request_timeout_seconds", p, err,
                                       0.1, 3600, &w.request_timeout_seconds));
      int64_t capacity = w.queue_capacity;
      CBPIPE_RETURN_IF_ERROR(
          GetInt(*wt, "queue_capacity", p, err, 1, 1000000, &capacity));
      w.queue_capacity = static_cast<int>(capacity);
      for (const std::string& e : w.events) {
        if (!IsKnownEventType(e))
          return err.At(p + "events", "'" + e + "' is not an event type");
      }
      if (const toml::node* r = wt->get("retry")) {
        if (!r->is_table()) return err.At(p + "retry", "must be a table");
        CBPIPE_RETURN_IF_ERROR(
            ParseRetry(*r->as_table(), p + "retry.", err, &w.retry));
      }
      c->webhooks.push_back(std::move(w));
    }
  }
  if (const toml::node* n = t.get("email")) {
    const toml::table* et = n->as_table();
    const std::string p = "notify.email.";
    if (!et) return err.At("notify.email", "must be a table");
    CBPIPE_RETURN_IF_ERROR(CheckKnownKeys(
        *et,
        {"url", "from", "to", "username", "password", "starttls", "ca_file",
         "events", "retry", "allow_insecure", "subject_prefix",
         "connect_timeout_seconds", "request_timeout_seconds",
         "queue_capacity"},
        p, err));
    EmailConfig e;
    CBPIPE_RETURN_IF_ERROR(GetString(*et, "url", p, err, &e.url));
    if (e.url.rfind("smtp://", 0) != 0 && e.url.rfind("smtps://", 0) != 0)
      return err.At(p + "url", "must be an smtp:// or smtps:// URL");
    if (!UrlUserinfo(e.url).empty())
      return err.At(p + "url",
                    "must not hold credentials (user:password@); use "
                    "username and password = \"env:NAME\"");
    CBPIPE_RETURN_IF_ERROR(GetString(*et, "from", p, err, &e.from));
    CBPIPE_RETURN_IF_ERROR(GetStringList(*et, "to", p, err, &e.to));
    if (e.from.empty() || e.to.empty())
      return err.At(p + "to", "email needs from and at least one to");
    CBPIPE_RETURN_IF_ERROR(GetString(*et, "username", p, err, &e.username));
    if (!e.username.empty() && !IsSecretReference(e.username))
      return err.At(p + "username",
                    "must be a secret reference (env:NAME or file:/path)");
    CBPIPE_RETURN_IF_ERROR(
        GetString(*et, "password", p, err, &e.password_ref));
    if (!e.password_ref.empty() && !IsSecretReference(e.password_ref))
      return err.At(p + "password", "must be a secret reference");
    CBPIPE_RETURN_IF_ERROR(GetBool(*et, "starttls", p, err, &e.starttls));
    CBPIPE_RETURN_IF_ERROR(GetString(*et, "ca_file", p, err, &e.ca_file));
    CBPIPE_RETURN_IF_ERROR(GetStringList(*et, "events", p, err, &e.events));
    for (const std::string& ev : e.events) {
      if (!IsKnownEventType(ev))
        return err.At(p + "events", "'" + ev + "' is not an event type");
    }
    CBPIPE_RETURN_IF_ERROR(
        GetBool(*et, "allow_insecure", p, err, &e.allow_insecure));
    CBPIPE_RETURN_IF_ERROR(
        GetString(*et, "subject_prefix", p, err, &e.subject_prefix));
    CBPIPE_RETURN_IF_ERROR(GetDouble(*et, "connect_timeout_seconds", p, err,
                                     0.1, 600, &e.connect_timeout_seconds));
    CBPIPE_RETURN_IF_ERROR(GetDouble(*et, "request_timeout_seconds", p, err,
                                     0.1, 3600, &e.request_timeout_seconds));
    int64_t capacity = e.queue_capacity;
    CBPIPE_RETURN_IF_ERROR(
        GetInt(*et, "queue_capacity", p, err, 1, 1000000, &capacity));
    e.queue_capacity = static_cast<int>(capacity);
    if (const toml::node* r = et->get("retry")) {
      if (!r->is_table()) return err.At(p + "retry", "must be a table");
      CBPIPE_RETURN_IF_ERROR(
          ParseRetry(*r->as_table(), p + "retry.", err, &e.retry));
    }
    c->email = std::move(e);
  }
  return OkStatus();
}

}  // namespace

bool UsesAws(const Config& c) {
  if (c.aws) return true;
  auto aws = [](std::string_view v) {
    for (std::string_view prefix :
         {"s3://", "sqs://", "dynamodb://", "arn:aws", "aws-sm:"}) {
      if (v.substr(0, prefix.size()) == prefix) return true;
    }
    // An SQS queue URL: https://sqs.REGION.amazonaws.com/ACCOUNT/NAME.
    return v.substr(0, 12) == "https://sqs." &&
           v.find(".amazonaws.com/") != std::string_view::npos;
  };
  std::vector<std::string_view> values = {
      c.work_dir, c.service.inbox_dir, c.service.state_db,
      c.service.object_dir, c.service.object_store, c.service.work_store,
      c.service.queue, c.service.run_store, c.service.ledger,
      c.service.events_queue, c.service.admin_token_ref};
  for (const DestinationConfig& d : c.destinations) {
    values.insert(values.end(),
                  {d.url, d.username, d.password_ref, d.private_key_ref});
  }
  for (const WebhookConfig& w : c.webhooks)
    values.insert(values.end(), {w.url, w.secret_ref});
  if (c.email)
    values.insert(values.end(),
                  {c.email->url, c.email->username, c.email->password_ref});
  return std::any_of(values.begin(), values.end(), aws);
}

OutputOptions OutputOptionsOf(const Config& config) {
  OutputOptions o;
  o.work_dir = config.work_dir;
  o.limits = config.limits;
  o.layouts = config.layouts;
  o.routes.reserve(config.destinations.size());
  for (const DestinationConfig& d : config.destinations) {
    o.routes.push_back({.name = d.name,
                        .networks = d.networks,
                        .file_name_template = d.file_name_template,
                        .layout = d.layout});
  }
  return o;
}

const DestinationConfig* Config::DestinationFor(Network network) const {
  for (const DestinationConfig& d : destinations) {
    if (std::find(d.networks.begin(), d.networks.end(), network) !=
        d.networks.end())
      return &d;
  }
  return nullptr;
}

const Layout* Config::LayoutFor(const DestinationConfig& destination) const {
  auto it = layouts.find(destination.layout);
  if (it != layouts.end()) return &it->second;
  return nullptr;
}

StatusOr<Config> ParseConfig(std::string_view toml_text,
                             const std::string& source) {
  const ConfigError err(source);
  toml::table root;
  try {
    root = toml::parse(toml_text, source);
  } catch (const toml::parse_error& e) {
    std::ostringstream msg;
    msg << source << ":" << e.source().begin.line << ":"
        << e.source().begin.column << ": " << e.description();
    return InvalidArgumentError(msg.str());
  }
  Config c;
  c.source = source;
  CBPIPE_RETURN_IF_ERROR(CheckKnownKeys(
      root,
      {"input", "output", "layout", "destination", "service", "notify",
       "telemetry", "aws"},
      "", err));
  if (const toml::node* n = root.get("input")) {
    if (!n->is_table()) return err.At("input", "must be a table");
    CBPIPE_RETURN_IF_ERROR(ParseInput(*n->as_table(), err, &c));
  }
  if (const toml::node* n = root.get("output")) {
    if (!n->is_table()) return err.At("output", "must be a table");
    CBPIPE_RETURN_IF_ERROR(ParseOutput(*n->as_table(), err, &c));
  }
  if (const toml::node* n = root.get("service")) {
    if (!n->is_table()) return err.At("service", "must be a table");
    CBPIPE_RETURN_IF_ERROR(ParseService(*n->as_table(), err, &c.service));
  }
  if (const toml::node* n = root.get("notify")) {
    if (!n->is_table()) return err.At("notify", "must be a table");
    CBPIPE_RETURN_IF_ERROR(ParseNotify(*n->as_table(), err, &c));
  }
  if (const toml::node* n = root.get("telemetry")) {
    if (!n->is_table()) return err.At("telemetry", "must be a table");
    CBPIPE_RETURN_IF_ERROR(ParseTelemetry(*n->as_table(), err, &c.telemetry));
  }
  if (const toml::node* n = root.get("aws")) {
    if (!n->is_table()) return err.At("aws", "must be a table");
    CBPIPE_RETURN_IF_ERROR(ParseAws(*n->as_table(), err, &c.aws.emplace()));
  }
  for (Network net : kAllNetworks) {
    std::optional<Layout> builtin = BuiltinLayout(NetworkName(net));
    if (builtin) c.layouts[std::string(NetworkName(net))] = *builtin;
  }
  if (const toml::node* n = root.get("layout")) {
    if (!n->is_table()) return err.At("layout", "must be a table of layouts");
    for (const auto& [key, value] : *n->as_table()) {
      const std::string name(key.str());
      if (!value.is_table())
        return err.At("layout." + name, "must be a table");
      Layout layout;
      CBPIPE_RETURN_IF_ERROR(
          ParseLayout(name, *value.as_table(), err, &layout));
      c.layouts[name] = std::move(layout);
    }
  }
  if (const toml::node* n = root.get("destination")) {
    const toml::array* arr = n->as_array();
    if (!arr) return err.At("destination", "must be [[destination]] entries");
    int index = 0;
    for (const toml::node& item : *arr) {
      if (!item.is_table())
        return err.At("destination[" + std::to_string(index) + "]",
                      "must be a table");
      DestinationConfig d;
      CBPIPE_RETURN_IF_ERROR(
          ParseDestination(*item.as_table(), index, err, &d));
      c.destinations.push_back(std::move(d));
      ++index;
    }
  }
  // Cross-checks: names unique, each network to one destination, layouts.
  std::set<std::string> names;
  std::set<Network> routed;
  for (size_t i = 0; i < c.destinations.size(); ++i) {
    DestinationConfig& d = c.destinations[i];
    const std::string prefix = "destination[" + std::to_string(i) + "].";
    if (!names.insert(d.name).second)
      return err.At(prefix + "name", "'" + d.name + "' is used twice");
    for (Network net : d.networks) {
      if (!routed.insert(net).second) {
        return err.At(prefix + "networks",
                      std::string(NetworkName(net)) +
                          " already goes to another destination; each "
                          "network has exactly one destination");
      }
    }
    if (d.layout.empty()) d.layout = std::string(NetworkName(d.networks[0]));
    if (!c.layouts.count(d.layout)) {
      return err.At(prefix + "layout",
                    "'" + d.layout + "' is neither a built-in layout (visa, "
                    "mastercard, amex, discover) nor a [layout." + d.layout +
                    "] table");
    }
    const uint64_t fixed = FixedFileBytes(c.layouts.at(d.layout));
    if (fixed > c.limits.max_file_bytes) {
      return err.At(prefix + "layout",
                    "a file in layout '" + d.layout + "' takes at least " +
                        std::to_string(fixed) +
                        " bytes (header, trailer and the smallest row), "
                        "more than output.max_file_bytes (" +
                        std::to_string(c.limits.max_file_bytes) +
                        "): no record could ever be delivered");
    }
  }
  return c;
}

uint64_t FixedFileBytes(const Layout& layout) {
  RowFormatter formatter(layout);
  std::string fixed;
  formatter.AppendHeader(&fixed);
  if (layout.trailer == TrailerKind::kCountAndTotal)
    formatter.AppendTrailer(1, CurrencyTotals(), nullptr, &fixed);
  // A row of empty cells: its delimiters and line ending.
  return fixed.size() + layout.columns.size() - 1 + layout.line_ending.size();
}

ConfigReview ReviewConfig(const Config& config) {
  ConfigReview review;
  if (config.destinations.empty()) {
    review.errors.push_back(
        config.source +
        ": no [[destination]]: every valid record would be rejected as "
        "NO_DESTINATION and nothing delivered");
    return review;
  }
  for (Network net : kAllNetworks) {
    if (config.DestinationFor(net)) continue;
    review.warnings.push_back(
        config.source + ": no destination receives " +
        std::string(NetworkName(net)) +
        " records: they will be rejected as "
        "NO_DESTINATION (and `cbpipe run` exits 1 when an input has any)");
  }
  return review;
}

StatusOr<Config> LoadConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return InvalidArgumentError(path + ": cannot open config file");
  std::ostringstream text;
  text << in.rdbuf();
  if (text.str().size() > (4u << 20))
    return InvalidArgumentError(path + ": config file is over 4 MiB");
  return ParseConfig(text.str(), path);
}

Config DefaultConfig(const std::string& work_dir) {
  Config c;
  c.source = "(built-in default)";
  c.work_dir = work_dir;
  for (Network net : kAllNetworks) {
    std::optional<Layout> builtin = BuiltinLayout(NetworkName(net));
    if (builtin) c.layouts[std::string(NetworkName(net))] = *builtin;
  }
  std::error_code ec;
  // An absolute path without "." or ".." segments: what a file:// URL must
  // be (CheckFileUrl).
  std::filesystem::path base =
      std::filesystem::absolute(work_dir, ec).lexically_normal();
  if (ec) base = work_dir;
  for (Network net : kAllNetworks) {
    DestinationConfig d;
    d.name = std::string(NetworkName(net));
    d.networks = {net};
    d.url = "file://" + (base / "outbox" / d.name).string();
    d.layout = d.name;
    c.destinations.push_back(std::move(d));
  }
  return c;
}

std::string DescribeConfig(const Config& c) {
  // A TOML basic string; control and bidirectional characters as \uXXXX
  // escapes, so that printing the configuration never sends one to a
  // terminal.
  auto q = [](std::string_view s) {
    std::string out = "\"";
    while (!s.empty()) {
      const std::optional<UnsafeChar> c = FindUnsafeChar(s);
      const size_t safe = c ? c->offset : s.size();
      for (char ch : s.substr(0, safe)) {
        if (ch == '"' || ch == '\\') out.push_back('\\');
        out.push_back(ch);
      }
      if (!c) break;
      const char32_t cp = c->invalid_utf8 ? 0xFFFD : c->code_point;
      char buf[12];
      std::snprintf(buf, sizeof buf, "\\u%04X", static_cast<unsigned>(cp));
      out += buf;
      const size_t len = c->invalid_utf8 || cp < 0x80 ? 1
                         : cp < 0x800                 ? 2
                         : cp < 0x10000               ? 3
                                                      : 4;
      s.remove_prefix(safe + len);
    }
    return out + "\"";
  };
  // References are shown as written (they name where the secret lives);
  // the secret itself is never resolved here.
  auto ref = [&](const std::string& r) {
    return r.empty() ? std::string("\"\"") : q(r) + "  # secret reference";
  };
  std::ostringstream o;
  o << "# effective configuration from " << c.source << "\n";
  o << "[input]\nformat = "
    << q(c.format == InputFormat::kAuto ? "auto" : InputFormatName(c.format))
    << "\npan_policy = "
    << q(c.pan_policy == PanPolicy::kMask ? "mask" : "reject") << "\n";
  o << "date_formats = [";
  for (size_t i = 0; i < c.date_formats.size(); ++i)
    o << (i ? ", " : "") << q(c.date_formats[i]);
  o << "]\nmax_field_bytes = " << c.reader_limits.max_field_bytes
    << "\nmax_record_bytes = " << c.reader_limits.max_record_bytes
    << "\nmax_columns = " << c.reader_limits.max_columns
    << "\nmax_decompressed_bytes = " << c.reader_limits.max_decompressed_bytes
    << "\nmax_compression_ratio = " << c.reader_limits.max_compression_ratio
    << "\nmax_rejected_records = " << c.reject_thresholds.max_rejected_records
    << "\nmax_rejected_ratio = " << c.reject_thresholds.max_rejected_ratio
    << "\n";
  if (!c.explicit_fields.empty()) {
    o << "[input.fields]\n";
    for (const auto& [k, v] : c.explicit_fields) o << k << " = " << q(v) << "\n";
  }
  o << "\n[output]\nwork_dir = " << q(c.work_dir)
    << "\nmax_files_per_batch = " << c.limits.max_files_per_batch
    << "\nmax_file_bytes = " << c.limits.max_file_bytes
    << "\nmax_records_per_file = " << c.limits.max_records_per_file
    << "\nmax_errors_reported = " << c.max_errors_reported << "\n";
  const ServiceConfig& sc = c.service;
  o << "\n[service]\ninbox_dir = " << q(sc.inbox_dir)
    << "\nstate_db = " << q(sc.state_db) << "\nobject_dir = "
    << q(sc.object_dir)
    << (sc.object_store.empty()
            ? std::string()
            : "\nobject_store = " + q(RedactUrl(sc.object_store)))
    << (sc.work_store.empty() ? std::string()
                              : "\nwork_store = " + q(RedactUrl(sc.work_store)))
    << (sc.queue.empty() ? std::string() : "\nqueue = " + q(RedactUrl(sc.queue)))
    << (sc.run_store.empty() ? std::string()
                             : "\nrun_store = " + q(RedactUrl(sc.run_store)))
    << (sc.ledger.empty() ? std::string()
                          : "\nledger = " + q(RedactUrl(sc.ledger)))
    << (sc.events_queue.empty()
            ? std::string()
            : "\nevents_queue = " + q(RedactUrl(sc.events_queue)))
    << "\nworkers = " << sc.workers
    << "\npoll_interval_ms = " << sc.poll_interval_ms
    << "\nsettle_ms = " << sc.settle_ms
    << "\nvisibility_seconds = " << sc.visibility_seconds
    << "\nmax_receive_count = " << sc.max_receive_count
    << "\nshutdown_timeout_seconds = " << sc.shutdown_timeout_seconds
    << "\nprobe_interval_seconds = " << sc.probe_interval_seconds
    << "\nadmin_listen = " << q(sc.admin_listen) << "\nadmin_token = "
    << ref(sc.admin_token_ref) << "\nlog_file = " << q(sc.log_file)
    << "\nlog_level = " << q(sc.log_level) << "\n";
  auto list = [&](const std::vector<std::string>& items) {
    std::string out = "[";
    for (size_t i = 0; i < items.size(); ++i)
      out += (i ? ", " : "") + q(items[i]);
    return out + "]";
  };
  for (const WebhookConfig& w : c.webhooks) {
    // Webhook services put tokens in the query: shown as in the log.
    const std::string shown = RedactUrl(w.url);
    o << "\n[[notify.webhook]]\nurl = " << q(shown)
      << (shown != w.url ? "  # query and fragment not shown" : "")
      << "\nsecret = " << ref(w.secret_ref) << "\nevents = " << list(w.events)
      << "\n";
  }
  if (c.email) {
    o << "\n[notify.email]\nurl = " << q(RedactUrl(c.email->url))
      << "\nfrom = " << q(c.email->from) << "\nto = " << list(c.email->to)
      << "\nusername = " << ref(c.email->username)
      << "\npassword = " << ref(c.email->password_ref)
      << "\nstarttls = " << (c.email->starttls ? "true" : "false")
      << "\nevents = " << list(c.email->events) << "\n";
  }
  const TelemetryOptions& t = c.telemetry;
  o << "\n[telemetry]\nmetrics = " << list(t.metrics)
    << "\nemf_namespace = " << q(t.emf.namespace_name)
    << "\nemf_output = " << q(t.emf.output)
    << "\nemf_gauge_interval_seconds = " << t.emf.gauge_interval_ms / 1000
    << "\nxray = " << (t.xray.enabled ? "true" : "false")
    << "\nxray_daemon_address = " << q(t.xray.daemon_address)
    << "\nxray_service_name = " << q(t.xray.service_name) << "\n";
  if (c.sns) {
    o << "\n[notify.sns]\ntopic_arn = " << q(c.sns->topic_arn)
      << "\nalert_topic_arn = " << q(c.sns->alert_topic_arn)
      << "\nevents = " << list(c.sns->events) << "\n";
  }
  if (c.aws) {
    o << "\n[aws]\nregion = " << q(c.aws->region)
      << "\nprofile = " << q(c.aws->profile) << "\n";
    if (!c.aws->endpoints.empty()) {
      o << "endpoints = {";
      const char* sep = " ";
      for (const auto& [name, url] : c.aws->endpoints) {
        o << sep << name << " = " << q(url);
        sep = ", ";
      }
      o << " }\n";
    }
    const AwsOptions defaults;
    if (c.aws->s3_addressing != defaults.s3_addressing) {
      o << "s3_addressing = "
        << (c.aws->s3_addressing == AwsS3Addressing::kPathStyle
                ? "\"path\""
                : "\"virtual\"")
        << "\n";
    }
    auto seconds = [&](const char* key, double v, double d) {
      if (v != d) o << key << " = " << v << "\n";
    };
    seconds("connect_timeout_seconds", c.aws->connect_timeout_seconds,
            defaults.connect_timeout_seconds);
    seconds("request_timeout_seconds", c.aws->request_timeout_seconds,
            defaults.request_timeout_seconds);
    seconds("idle_timeout_seconds", c.aws->idle_timeout_seconds,
            defaults.idle_timeout_seconds);
    seconds("secrets_cache_seconds", c.aws->secrets_cache_seconds,
            defaults.secrets_cache_seconds);
  }
  for (const auto& [name, layout] : c.layouts) {
    std::optional<Layout> builtin = BuiltinLayout(name);
    if (builtin) continue;  // documented in docs/layouts.md
    o << "\n[layout." << name << "]\nheader = "
      << (layout.header ? "true" : "false") << "\ndelimiter = "
      << q(layout.delimiter == '\t' ? std::string("\\t")
                                     : std::string(1, layout.delimiter))
      << "\nline_ending = " << q(layout.line_ending == "\n" ? "lf" : "crlf")
      << "\ntrailer = "
      << q(layout.trailer == TrailerKind::kNone ? "none" : "count_and_total")
      << "\n";
    for (const Column& col : layout.columns) {
      o << "[[layout." << name << ".column]]\nheader = " << q(col.header)
        << "\n";
      if (col.field) {
        o << "field = " << q(FieldName(*col.field)) << "\n";
      } else {
        o << "constant = " << q(col.constant) << "\n";
      }
      o << "format = " << q(ColumnFormatName(col.format))
        << "\ndate_pattern = " << q(col.date_pattern)
        << "\nquote = " << (col.always_quote ? "true" : "false") << "\n";
    }
  }
  for (const DestinationConfig& d : c.destinations) {
    o << "\n[[destination]]\nname = " << q(d.name) << "\nnetworks = [";
    for (size_t i = 0; i < d.networks.size(); ++i)
      o << (i ? ", " : "") << q(NetworkName(d.networks[i]));
    o << "]\nurl = " << q(d.url) << "\nfile_name = "
      << q(d.file_name_template) << "\nlayout = " << q(d.layout) << "\n";
    const bool network = d.url.rfind("file://", 0) != 0;
    if (network) {
      o << "username = " << q(d.username) << "\npassword = "
        << ref(d.password_ref) << "\nprivate_key = " << ref(d.private_key_ref)
        << "\nknown_hosts = " << q(d.known_hosts)
        << "\nhost_key_sha256 = " << q(d.host_key_sha256)
        << "\ninsecure_skip_host_key = "
        << (d.insecure_skip_host_key ? "true" : "false")
        << "\nca_file = " << q(d.ca_file) << "\nftps_mode = "
        << q(d.ftps_mode == FtpsMode::kExplicit ? "explicit" : "implicit")
        << "\nallow_insecure = " << (d.allow_insecure ? "true" : "false")
        << "\nactive_mode = " << (d.active_mode ? "true" : "false")
        << "\nconnect_timeout_seconds = " << d.connect_timeout_seconds
        << "\ntransfer_timeout_seconds = " << d.transfer_timeout_seconds
        << "\nstall_timeout_seconds = " << d.stall_timeout_seconds << "\n";
    }
    o << "temp_suffix = " << q(d.temp_suffix) << "\non_conflict = "
      << q(d.on_conflict == OnConflict::kFail
               ? "fail"
               : (d.on_conflict == OnConflict::kReplace ? "replace"
                                                        : "rename"))
      << "\nwrite_only = " << (d.write_only ? "true" : "false")
      << "\nfsync = " << (d.remote_fsync ? "true" : "false")
      << "\n[destination.retry]\ninterval_seconds = "
      << d.retry.interval_seconds
      << "\nbackoff_rate = " << d.retry.backoff_rate
      << "\nmax_attempts = " << d.retry.max_attempts
      << "\nmax_delay_seconds = " << d.retry.max_delay_seconds
      << "\njitter = " << q(d.retry.full_jitter ? "FULL" : "NONE") << "\n";
  }
  return o.str();
}

}  // namespace cbpipe
