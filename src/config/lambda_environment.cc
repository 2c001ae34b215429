#include "config/lambda_environment.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <optional>

#include "common/text_safety.h"
#include "common/url.h"
#include "domain/network.h"
#include "output/layout.h"

namespace cbpipe {

namespace {

constexpr char kRawBucket[] = "CBPIPE_RAW_BUCKET";
constexpr char kProcessedBucket[] = "CBPIPE_PROCESSED_BUCKET";
constexpr char kStateTable[] = "CBPIPE_STATE_TABLE";
constexpr char kTopic[] = "CBPIPE_NOTIFICATION_TOPIC_ARN";
constexpr char kMaxFilesPerBatch[] = "CBPIPE_MAX_FILES_PER_BATCH";
constexpr char kMaxFileBytes[] = "CBPIPE_MAX_FILE_BYTES";
constexpr char kMaxInputBytes[] = "CBPIPE_MAX_INPUT_BYTES";

// The services cbpipe's functions call, for AWS_ENDPOINT_URL_<SERVICE>.
constexpr const char* kServices[] = {"s3", "dynamodb", "sns",
                                     "secretsmanager", "states", "sqs"};

std::string Upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

std::string DestinationVariable(Network net, std::string_view what) {
  return "CBPIPE_DESTINATION_" + Upper(NetworkName(net)) + "_" +
         std::string(what);
}

class Variables {
 public:
  explicit Variables(const std::function<const char*(const char*)>& getenv)
      : getenv_(getenv) {}
  std::string Get(const std::string& name) const {
    const char* v = getenv_(name.c_str());
    return v ? v : "";
  }
  StatusOr<std::string> Required(const std::string& name,
                                 std::string_view why) const {
    std::string v = Get(name);
    if (v.empty())
      return InvalidArgumentError(name + " is not set (" + std::string(why) +
                                  ")");
    return v;
  }
  // `name` as an integer in [min, max]; `fallback` when unset.
  StatusOr<int64_t> Int(const std::string& name, int64_t min, int64_t max,
                        int64_t fallback) const {
    const std::string v = Get(name);
    if (v.empty()) return fallback;
    int64_t n = 0;
    const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec != std::errc() || end != v.data() + v.size() || n < min ||
        n > max) {
      return InvalidArgumentError(name + ": want an integer from " +
                                  std::to_string(min) + " to " +
                                  std::to_string(max) + ", got \"" + v + "\"");
    }
    return n;
  }

 private:
  const std::function<const char*(const char*)>& getenv_;
};

// S3's rules for a bucket name (3-63 of a-z 0-9 . -, starting and ending
// with a letter or digit).
Status CheckBucket(const std::string& name, const std::string& variable) {
  const bool chars = name.find_first_not_of(
                         "abcdefghijklmnopqrstuvwxyz0123456789.-") ==
                     std::string::npos;
  if (name.size() < 3 || name.size() > 63 || !chars || name.front() == '.' ||
      name.front() == '-' || name.back() == '.' || name.back() == '-') {
    return InvalidArgumentError(variable + ": \"" + name +
                                "\" is not an S3 bucket name");
  }
  return OkStatus();
}

Status CheckTable(const std::string& name, const std::string& variable) {
  const bool chars =
      name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTU"
                             "VWXYZ0123456789_.-") == std::string::npos;
  if (name.size() < 3 || name.size() > 255 || !chars) {
    return InvalidArgumentError(variable + ": \"" + name +
                                "\" is not a DynamoDB table name");
  }
  return OkStatus();
}

Status CheckTopicArn(const std::string& arn, const std::string& variable) {
  if (!arn.starts_with("arn:") || arn.find(":sns:") == std::string::npos ||
      FindUnsafeChar(arn) || arn.find(' ') != std::string::npos) {
    return InvalidArgumentError(variable + ": \"" + arn +
                                "\" is not an SNS topic ARN");
  }
  return OkStatus();
}

// A secret id goes into "aws-sm:ID#password": no '#', no spaces or control
// characters (its value is never quoted: it is an id, but say no more).
Status CheckSecretId(const std::string& id, const std::string& variable) {
  if (id.find_first_of("# \t") != std::string::npos || FindUnsafeChar(id)) {
    return InvalidArgumentError(
        variable +
        ": not a Secrets Manager secret ARN or name (it holds '#', a space "
        "or a control character)");
  }
  return OkStatus();
}

StatusOr<DestinationConfig> DestinationFrom(const Variables& vars,
                                            Network net) {
  const std::string url_var = DestinationVariable(net, "URL");
  const std::string secret_var = DestinationVariable(net, "SECRET");
  DestinationConfig d;
  d.name = std::string(NetworkName(net));
  d.networks = {net};
  d.layout = d.name;
  d.url = vars.Get(url_var);
  // Never echo the URL: its user part is the caller's business.
  const size_t scheme_end = d.url.find("://");
  const std::string scheme =
      scheme_end == std::string::npos ? "" : d.url.substr(0, scheme_end);
  if (scheme != "sftp" && scheme != "ftps") {
    return InvalidArgumentError(url_var +
                                ": want sftp://host[:port]/folder or "
                                "ftps://host[:port]/folder");
  }
  const std::string_view user = UrlUserinfo(d.url);
  const size_t host_begin =
      scheme_end + 3 + (user.empty() ? 0 : user.size() + 1);
  if (host_begin >= d.url.size() || d.url[host_begin] == '/' ||
      d.url[host_begin] == ':' || FindUnsafeChar(d.url) ||
      d.url.find_first_of(" \t") != std::string::npos) {
    return InvalidArgumentError(url_var + ": has no host, or holds a space "
                                          "or control character");
  }
  if (user.find(':') != std::string_view::npos) {
    return InvalidArgumentError(
        url_var + ": must not hold a password; the secret " + secret_var +
        " names holds it");
  }
  CBPIPE_ASSIGN_OR_RETURN(
      std::string secret,
      vars.Required(secret_var, "the credentials of " + url_var));
  CBPIPE_RETURN_IF_ERROR(CheckSecretId(secret, secret_var));
  d.password_ref = "aws-sm:" + secret + "#password";
  return d;
}

}  // namespace

std::vector<LambdaConfigVariable> LambdaConfigVariables(LambdaConfigRole role) {
  if (role == LambdaConfigRole::kStart) return {{kRawBucket, true}};
  std::vector<LambdaConfigVariable> out = {
      {kRawBucket, true},          {kProcessedBucket, true},
      {kStateTable, true},         {kTopic, false},
      {kMaxFilesPerBatch, false},  {kMaxFileBytes, false},
      {kMaxInputBytes, false}};
  for (Network net : kAllNetworks) {
    out.push_back({DestinationVariable(net, "URL"), false});
    out.push_back({DestinationVariable(net, "SECRET"), false});
  }
  return out;
}

std::vector<std::string> LambdaConfigVariablesSet(
    const std::function<const char*(const char*)>& getenv) {
  std::vector<std::string> out;
  for (const LambdaConfigVariable& v :
       LambdaConfigVariables(LambdaConfigRole::kStep)) {
    const char* value = getenv(v.name.c_str());
    if (value && *value) out.push_back(v.name);
  }
  return out;
}

StatusOr<Config> ConfigFromLambdaEnvironment(
    const std::function<const char*(const char*)>& getenv,
    LambdaConfigRole role) {
  const Variables vars(getenv);
  Config c;
  c.source = "(Lambda environment)";
  for (Network net : kAllNetworks) {
    std::optional<Layout> builtin = BuiltinLayout(NetworkName(net));
    if (builtin) c.layouts[std::string(NetworkName(net))] = *builtin;
  }
  AwsOptions& aws = c.aws.emplace();
  for (const char* service : kServices) {
    const std::string name = "AWS_ENDPOINT_URL_" + Upper(service);
    std::string url = vars.Get(name);
    if (url.empty()) url = vars.Get("AWS_ENDPOINT_URL");
    if (url.empty()) continue;
    const size_t host = url.find("://");
    if ((!url.starts_with("http://") && !url.starts_with("https://")) ||
        url.size() <= host + 3 || FindUnsafeChar(url) ||
        url.find_first_of("/?#@ ", host + 3) != std::string::npos) {
      return InvalidArgumentError(
          name + " (or AWS_ENDPOINT_URL): want an http:// or https:// URL "
                 "with a host and no path, query or credentials");
    }
    aws.endpoints[service] = url;
  }

  CBPIPE_ASSIGN_OR_RETURN(std::string raw,
                          vars.Required(kRawBucket, "where inputs arrive"));
  CBPIPE_RETURN_IF_ERROR(CheckBucket(raw, kRawBucket));
  c.service.object_store = "s3://" + raw;
  if (role == LambdaConfigRole::kStart) return c;

  CBPIPE_ASSIGN_OR_RETURN(
      std::string processed,
      vars.Required(kProcessedBucket, "where the steps keep their files"));
  CBPIPE_RETURN_IF_ERROR(CheckBucket(processed, kProcessedBucket));
  c.service.work_store = "s3://" + processed;
  CBPIPE_ASSIGN_OR_RETURN(
      std::string table,
      vars.Required(kStateTable, "the delivery ledger and the runs"));
  CBPIPE_RETURN_IF_ERROR(CheckTable(table, kStateTable));
  c.service.run_store = "dynamodb://" + table;
  c.service.ledger = "dynamodb://" + table;
  if (std::string topic = vars.Get(kTopic); !topic.empty()) {
    CBPIPE_RETURN_IF_ERROR(CheckTopicArn(topic, kTopic));
    c.sns.emplace().topic_arn = topic;
  }
  CBPIPE_ASSIGN_OR_RETURN(
      int64_t files,
      vars.Int(kMaxFilesPerBatch, 1, 1000, c.limits.max_files_per_batch));
  c.limits.max_files_per_batch = static_cast<int>(files);
  CBPIPE_ASSIGN_OR_RETURN(
      int64_t file_bytes,
      vars.Int(kMaxFileBytes, 1024, int64_t{1} << 40,
               static_cast<int64_t>(c.limits.max_file_bytes)));
  c.limits.max_file_bytes = static_cast<uint64_t>(file_bytes);
  CBPIPE_ASSIGN_OR_RETURN(
      int64_t input_bytes,
      vars.Int(kMaxInputBytes, 1024, int64_t{1} << 50,
               static_cast<int64_t>(c.reader_limits.max_decompressed_bytes)));
  c.reader_limits.max_decompressed_bytes = static_cast<uint64_t>(input_bytes);

  for (Network net : kAllNetworks) {
    if (vars.Get(DestinationVariable(net, "URL")).empty()) {
      if (!vars.Get(DestinationVariable(net, "SECRET")).empty()) {
        return InvalidArgumentError(DestinationVariable(net, "SECRET") +
                                    " is set without " +
                                    DestinationVariable(net, "URL"));
      }
      continue;
    }
    // The built-in layouts' fixed bytes are far below the 1024 minimum of
    // CBPIPE_MAX_FILE_BYTES: no FixedFileBytes check is needed here.
    CBPIPE_ASSIGN_OR_RETURN(DestinationConfig d, DestinationFrom(vars, net));
    c.destinations.push_back(std::move(d));
  }
  return c;
}

}  // namespace cbpipe
