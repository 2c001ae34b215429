#include "aws/credentials_chain.h"

#include <curl/curl.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string_view>
#include <vector>

#include "common/listen_address.h"
#include "common/url.h"

namespace cbpipe {
namespace {

constexpr int64_t kRefreshEarlyMs = 5 * 60 * 1000;
constexpr size_t kMaxReplyBytes = 64 * 1024;
constexpr char kContainerRelativeHost[] = "http://169.254.170.2";
constexpr char kImdsDefaultEndpoint[] = "http://169.254.169.254";
constexpr char kImdsIpv6Endpoint[] = "http://[fd00:ec2::254]";
constexpr char kImdsTokenTtlSeconds[] = "21600";
// botocore's container fetcher: 2 s per request, 3 attempts.
constexpr double kContainerTimeoutSeconds = 2;
constexpr int kContainerAttempts = 3;

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// The process as the chain sees it; "" for a variable unset or empty (the
// CLI treats both alike).
class HostView {
 public:
  explicit HostView(const AwsHost& host) : host_(host) {}

  std::string Var(const std::string& name) const {
    if (host_.getenv) return host_.getenv(name).value_or("");
    const char* v = std::getenv(name.c_str());
    return v ? v : "";
  }
  std::string Home() const {
    return host_.home_dir.empty() ? Var("HOME") : host_.home_dir;
  }
  // A file named by `var`, or ~/.aws/<name>; a leading "~/" is the home.
  std::string AwsFile(const std::string& var, const std::string& name) const {
    std::string path = Var(var);
    if (path.empty()) return Home() + "/.aws/" + name;
    if (path.rfind("~/", 0) == 0) return Home() + path.substr(1);
    return path;
  }
  Env* env() const { return host_.env ? host_.env : Env::Default(); }

 private:
  const AwsHost& host_;
};

// ---- shared files --------------------------------------------------------

// An INI file as botocore's RawConfigParser reads it: [section] headers,
// `key = value` or `key: value` (keys lowercased), whole-line # and ;
// comments, indented lines (nested settings such as `s3 =`) skipped.
// Errors name the file and line but never quote the line: it may hold a key.
using IniSection = std::map<std::string, std::string>;
using IniFile = std::map<std::string, IniSection>;

// nullopt when the file does not exist.
StatusOr<std::optional<IniFile>> ReadIni(const std::string& path) {
  std::error_code ec;
  const std::filesystem::file_status st = std::filesystem::status(path, ec);
  if (st.type() == std::filesystem::file_type::not_found)
    return std::optional<IniFile>();
  if (ec)
    return FailedPreconditionError("cannot read " + path + ": " + ec.message());
  if (st.type() != std::filesystem::file_type::regular)
    return FailedPreconditionError("cannot read " + path + ": not a file");
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return FailedPreconditionError("cannot read " + path + ": " +
                                   std::strerror(errno));
  IniFile file;
  IniSection* section = nullptr;
  std::string section_name;
  std::string line;
  int number = 0;
  auto at = [&](const std::string& what) {
    return InvalidArgumentError(path + ":" + std::to_string(number) + ": " +
                                what);
  };
  while (std::getline(in, line)) {
    ++number;
    std::string_view text = Trim(line);
    if (text.empty() || text.front() == '#' || text.front() == ';') continue;
    if (line.front() == ' ' || line.front() == '\t') {
      if (section == nullptr) return at("indented line outside any [section]");
      continue;  // a nested setting or a continued value
    }
    if (text.front() == '[') {
      if (text.back() != ']') return at("a [section] header without ']'");
      section_name = std::string(Trim(text.substr(1, text.size() - 2)));
      if (file.count(section_name))
        return at("section [" + section_name + "] appears twice");
      section = &file[section_name];
      continue;
    }
    const size_t eq = text.find_first_of("=:");
    if (eq == std::string_view::npos || eq == 0)
      return at("expected `key = value` or a [section] header");
    if (section == nullptr) return at("a setting outside any [section]");
    const std::string key = Lower(Trim(text.substr(0, eq)));
    if (!section->emplace(key, std::string(Trim(text.substr(eq + 1)))).second)
      return at("key " + key + " appears twice in [" + section_name + "]");
  }
  if (in.bad())
    return FailedPreconditionError("cannot read " + path + ": " +
                                   std::strerror(errno));
  return std::optional<IniFile>(std::move(file));
}

// The profile's name and both files' sections for it.
struct Profile {
  std::string name;
  bool explicitly_named = false;  // by [aws] profile or AWS_PROFILE
  std::string credentials_path, config_path;
  std::optional<IniSection> in_credentials, in_config;
};

StatusOr<Profile> LoadProfile(const AwsOptions& options, const HostView& host) {
  Profile p;
  p.name = options.profile;
  if (p.name.empty()) p.name = host.Var("AWS_PROFILE");
  p.explicitly_named = !p.name.empty();
  if (p.name.empty()) p.name = "default";
  p.credentials_path =
      host.AwsFile("AWS_SHARED_CREDENTIALS_FILE", "credentials");
  p.config_path = host.AwsFile("AWS_CONFIG_FILE", "config");
  CBPIPE_ASSIGN_OR_RETURN(std::optional<IniFile> credentials,
                          ReadIni(p.credentials_path));
  CBPIPE_ASSIGN_OR_RETURN(std::optional<IniFile> config,
                          ReadIni(p.config_path));
  if (credentials) {
    auto it = credentials->find(p.name);
    if (it != credentials->end()) p.in_credentials = it->second;
  }
  if (config) {
    auto it = config->find("profile " + p.name);
    if (it == config->end() && p.name == "default")
      it = config->find("default");
    if (it != config->end()) p.in_config = it->second;
  }
  if (p.explicitly_named && !p.in_credentials && !p.in_config) {
    return InvalidArgumentError("AWS profile '" + p.name + "' not found in " +
                                p.credentials_path + " or " + p.config_path);
  }
  return p;
}

std::string Setting(const std::optional<IniSection>& section,
                    const std::string& key) {
  if (!section) return "";
  auto it = section->find(key);
  return it == section->end() ? "" : it->second;
}

// ---- HTTP (container and instance metadata) ------------------------------

struct CurlEasyDeleter {
  void operator()(CURL* h) const { curl_easy_cleanup(h); }
};
struct CurlSlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

struct HttpReply {
  long status = 0;
  std::string body;
};

size_t CollectBody(char* data, size_t size, size_t count, void* user) {
  auto* body = static_cast<std::string*>(user);
  const size_t n = size * count;
  if (body->size() + n > kMaxReplyBytes) return 0;  // aborts the transfer
  body->append(data, n);
  return n;
}

// One request with short timeouts, no proxy (these endpoints are local to
// the machine or task) and no redirects. `what` names the target in errors;
// header values (tokens) never appear in them. libcurl >= 7.84 initialises
// itself thread-safely in curl_easy_init. kUnavailable when nothing answered.
StatusOr<HttpReply> HttpCall(const char* method, const std::string& url,
                             const std::vector<std::string>& headers,
                             double timeout_seconds, const std::string& what) {
  std::unique_ptr<CURL, CurlEasyDeleter> h(curl_easy_init());
  if (!h) return InternalError("curl_easy_init failed");
  std::unique_ptr<curl_slist, CurlSlistDeleter> list;
  for (const std::string& header : headers) {
    curl_slist* next = curl_slist_append(list.get(), header.c_str());
    if (next == nullptr) return InternalError("curl_slist_append failed");
    list.release();
    list.reset(next);
  }
  HttpReply reply;
  char error[CURL_ERROR_SIZE] = "";
  const long timeout_ms = static_cast<long>(timeout_seconds * 1000);
  curl_easy_setopt(h.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(h.get(), CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h.get(), CURLOPT_NOPROXY, "*");
  curl_easy_setopt(h.get(), CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h.get(), CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h.get(), CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
  curl_easy_setopt(h.get(), CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(h.get(), CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(h.get(), CURLOPT_WRITEFUNCTION, CollectBody);
  curl_easy_setopt(h.get(), CURLOPT_WRITEDATA, &reply.body);
  if (list) curl_easy_setopt(h.get(), CURLOPT_HTTPHEADER, list.get());
  if (std::strcmp(method, "PUT") == 0) {
    curl_easy_setopt(h.get(), CURLOPT_CUSTOMREQUEST, "PUT");
    curl_easy_setopt(h.get(), CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(h.get(), CURLOPT_POSTFIELDSIZE, 0L);
  }
  const CURLcode rc = curl_easy_perform(h.get());
  if (rc != CURLE_OK) {
    return UnavailableError(what + ": " +
                            (error[0] ? error : curl_easy_strerror(rc)));
  }
  curl_easy_getinfo(h.get(), CURLINFO_RESPONSE_CODE, &reply.status);
  return reply;
}

// "2026-12-05T21:34:11Z", "...T21:34:11.123Z" or "...+00:00" as epoch ms.
std::optional<int64_t> ParseIso8601Utc(std::string_view s) {
  int y, mo, d, h, mi, sec;
  char tail[16] = "";
  const std::string copy(s.substr(0, 64));
  if (std::sscanf(copy.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%15s", &y, &mo, &d, &h,
                  &mi, &sec, tail) < 7)
    return std::nullopt;
  std::string_view rest(tail);
  if (!rest.empty() && rest.front() == '.') {
    rest.remove_prefix(1);
    while (!rest.empty() && rest.front() >= '0' && rest.front() <= '9')
      rest.remove_prefix(1);
  }
  if (rest != "Z" && rest != "+00:00") return std::nullopt;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
    return std::nullopt;
  // Days from 1970-01-01 (Howard Hinnant's days_from_civil).
  const int yy = y - (mo <= 2);
  const int era = (yy >= 0 ? yy : yy - 399) / 400;
  const int yoe = yy - era * 400;
  const int doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  const int64_t days = int64_t{era} * 146097 + doe - 719468;
  return ((days * 24 + h) * 60 + mi) * 60'000 + int64_t{sec} * 1000;
}

// The JSON both endpoints answer with. `what` names the source.
StatusOr<AwsCredentials> ParseCredentialsJson(const std::string& body,
                                              const std::string& what) {
  const nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  if (!j.is_object()) return UnavailableError(what + ": reply is not JSON");
  auto field = [&](const char* name) -> std::string {
    auto it = j.find(name);
    return it != j.end() && it->is_string() ? it->get<std::string>() : "";
  };
  if (j.contains("Code") && field("Code") != "Success")
    return UnavailableError(what + ": reply Code is not Success");
  AwsCredentials c;
  c.access_key_id = field("AccessKeyId");
  c.secret_access_key = field("SecretAccessKey");
  c.session_token = field("Token");
  if (c.access_key_id.empty() || c.secret_access_key.empty())
    return UnavailableError(what +
                            ": reply lacks AccessKeyId or SecretAccessKey");
  const std::string expiration = field("Expiration");
  if (!expiration.empty()) {
    std::optional<int64_t> ms = ParseIso8601Utc(expiration);
    if (!ms) return UnavailableError(what + ": Expiration is not a UTC time");
    c.expires_ms = *ms;
  }
  return c;
}

std::string HostOf(const std::string& url, std::string* scheme) {
  std::unique_ptr<CURLU, decltype(&curl_url_cleanup)> u(curl_url(),
                                                        &curl_url_cleanup);
  if (!u || curl_url_set(u.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK)
    return "";
  auto part = [&](CURLUPart which) {
    char* value = nullptr;
    if (curl_url_get(u.get(), which, &value, 0) != CURLUE_OK || !value)
      return std::string();
    std::string s(value);
    curl_free(value);
    return s;
  };
  *scheme = Lower(part(CURLUPART_SCHEME));
  std::string host = Lower(part(CURLUPART_HOST));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  return host;
}

// ---- the sources ---------------------------------------------------------

// What one source made of its turn: credentials, "not configured here"
// (`skipped` says why, for the final error), or an error that ends the
// chain (the source is configured but broken).
struct Attempt {
  std::optional<AwsCredentials> credentials;
  std::string source;   // for Source()
  std::string skipped;  // "source (reason)"
};

StatusOr<Attempt> FromEnvironment(const AwsOptions& options,
                                  const HostView& host) {
  Attempt a;
  if (!options.profile.empty()) {
    a.skipped = "environment (not used: [aws] profile is set)";
    return a;
  }
  AwsCredentials c;
  c.access_key_id = host.Var("AWS_ACCESS_KEY_ID");
  c.secret_access_key = host.Var("AWS_SECRET_ACCESS_KEY");
  c.session_token = host.Var("AWS_SESSION_TOKEN");
  if (c.access_key_id.empty() && c.secret_access_key.empty()) {
    a.skipped = "environment (AWS_ACCESS_KEY_ID not set)";
    return a;
  }
  if (c.secret_access_key.empty())
    return InvalidArgumentError(
        "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not");
  if (c.access_key_id.empty())
    return InvalidArgumentError(
        "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not");
  a.credentials = std::move(c);
  a.source = "environment";
  return a;
}

StatusOr<Attempt> FromSharedFiles(const AwsOptions& options,
                                  const HostView& host) {
  CBPIPE_ASSIGN_OR_RETURN(Profile p, LoadProfile(options, host));
  Attempt a;
  for (int i = 0; i < 2; ++i) {
    const std::optional<IniSection>& section =
        i == 0 ? p.in_credentials : p.in_config;
    const std::string& path = i == 0 ? p.credentials_path : p.config_path;
    AwsCredentials c;
    c.access_key_id = Setting(section, "aws_access_key_id");
    c.secret_access_key = Setting(section, "aws_secret_access_key");
    c.session_token = Setting(section, "aws_session_token");
    if (c.access_key_id.empty() && c.secret_access_key.empty()) continue;
    if (c.access_key_id.empty() || c.secret_access_key.empty()) {
      return InvalidArgumentError(
          "AWS profile '" + p.name + "' in " + path + " has " +
          (c.access_key_id.empty() ? "aws_secret_access_key without "
                                     "aws_access_key_id"
                                   : "aws_access_key_id without "
                                     "aws_secret_access_key"));
    }
    a.credentials = std::move(c);
    a.source = "profile " + p.name + " in " + path;
    return a;
  }
  // Keyless profiles the CLI would resolve some other way: say so rather
  // than fall through to another identity.
  for (const char* key : {"role_arn", "credential_process", "sso_session",
                          "sso_start_url", "web_identity_token_file"}) {
    if (!Setting(p.in_credentials, key).empty() ||
        !Setting(p.in_config, key).empty()) {
      return InvalidArgumentError("AWS profile '" + p.name + "' uses " + key +
                                  ", which cbpipe does not support; give the "
                                  "profile aws_access_key_id and "
                                  "aws_secret_access_key");
    }
  }
  a.skipped = "profile " + p.name + " (no keys in " + p.credentials_path +
              " or " + p.config_path + ")";
  return a;
}

StatusOr<std::string> ContainerToken(const HostView& host) {
  std::string token;
  const std::string file = host.Var("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
  if (!file.empty()) {
    std::ifstream in(file, std::ios::binary);
    if (!in)
      return FailedPreconditionError("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE " +
                                     file +
                                     ": cannot read: " + std::strerror(errno));
    std::ostringstream s;
    s << in.rdbuf();
    token = s.str();
    while (!token.empty() && (token.back() == '\n' || token.back() == '\r'))
      token.pop_back();
  } else {
    token = host.Var("AWS_CONTAINER_AUTHORIZATION_TOKEN");
  }
  if (token.find_first_of("\r\n") != std::string::npos)
    return InvalidArgumentError(
        "the container authorization token has a line break");
  return token;
}

StatusOr<Attempt> FromContainer(const HostView& host,
                                const std::string& relative_base) {
  Attempt a;
  const std::string relative =
      host.Var("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
  const std::string full = host.Var("AWS_CONTAINER_CREDENTIALS_FULL_URI");
  std::string url;
  if (!relative.empty()) {
    url = relative_base + (relative.front() == '/' ? "" : "/") + relative;
  } else if (!full.empty()) {
    std::string scheme;
    const std::string h = HostOf(full, &scheme);
    const bool allowed = h == "169.254.170.2" || h == "169.254.170.23" ||
                         h == "fd00:ec2::23" || IsLoopbackHost(h);
    if ((scheme != "http" && scheme != "https") || !allowed) {
      return InvalidArgumentError(
          "AWS_CONTAINER_CREDENTIALS_FULL_URI must be http(s) to a loopback "
          "address, 169.254.170.2, 169.254.170.23 or fd00:ec2::23 (host: '" +
          h + "')");
    }
    url = full;
  } else {
    a.skipped =
        "container (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and _FULL_URI not "
        "set)";
    return a;
  }
  CBPIPE_ASSIGN_OR_RETURN(std::string token, ContainerToken(host));
  std::vector<std::string> headers = {"Accept: application/json"};
  if (!token.empty()) headers.push_back("Authorization: " + token);
  // The URI's path identifies the task's credentials: only the host is named.
  std::string scheme;
  const std::string what =
      "container credentials endpoint " + HostOf(url, &scheme);
  StatusOr<HttpReply> reply = UnavailableError(what + ": not tried");
  for (int attempt = 0; attempt < kContainerAttempts; ++attempt) {
    if (attempt > 0) host.env()->SleepFor(0.2 * attempt, nullptr);
    reply = HttpCall("GET", url, headers, kContainerTimeoutSeconds, what);
    if (reply.ok() && reply->status < 500) break;
  }
  if (!reply.ok()) return reply.status();
  if (reply->status != 200)
    return UnavailableError(what + " answered HTTP " +
                            std::to_string(reply->status));
  CBPIPE_ASSIGN_OR_RETURN(AwsCredentials c,
                          ParseCredentialsJson(reply->body, what));
  a.credentials = std::move(c);
  a.source = "container";
  return a;
}

bool IsRoleName(std::string_view s) {
  if (s.empty() || s.size() > 128) return false;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') ||
                    std::strchr("+=,.@_-", c) != nullptr;
    if (!ok) return false;
  }
  return true;
}

StatusOr<Attempt> FromInstanceMetadata(const HostView& host) {
  Attempt a;
  if (Lower(host.Var("AWS_EC2_METADATA_DISABLED")) == "true") {
    a.skipped = "instance metadata (AWS_EC2_METADATA_DISABLED=true)";
    return a;
  }
  std::string endpoint = host.Var("AWS_EC2_METADATA_SERVICE_ENDPOINT");
  if (endpoint.empty()) {
    endpoint =
        Lower(host.Var("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE")) == "ipv6"
            ? kImdsIpv6Endpoint
            : kImdsDefaultEndpoint;
  }
  while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
  double timeout = 1;
  int attempts = 1;
  if (const std::string t = host.Var("AWS_METADATA_SERVICE_TIMEOUT");
      !t.empty()) {
    timeout = std::atof(t.c_str());
    if (!(timeout > 0 && timeout <= 60))
      return InvalidArgumentError(
          "AWS_METADATA_SERVICE_TIMEOUT must be seconds between 0 and 60");
  }
  if (const std::string n = host.Var("AWS_METADATA_SERVICE_NUM_ATTEMPTS");
      !n.empty()) {
    attempts = std::atoi(n.c_str());
    if (attempts < 1 || attempts > 10)
      return InvalidArgumentError(
          "AWS_METADATA_SERVICE_NUM_ATTEMPTS must be between 1 and 10");
  }
  const std::string what = "instance metadata at " + RedactUrl(endpoint);
  auto call = [&](const char* method, const std::string& path,
                  const std::vector<std::string>& headers) {
    StatusOr<HttpReply> reply = UnavailableError(what + ": not tried");
    for (int i = 0; i < attempts; ++i) {
      reply = HttpCall(method, endpoint + path, headers, timeout, what);
      if (reply.ok() && reply->status < 500) break;
    }
    return reply;
  };
  // IMDSv2: a session token first. A container reaching the instance's
  // metadata through a bridge needs the hop limit raised to 2 on the
  // instance (HttpPutResponseHopLimit); with 1 the PUT's reply never
  // arrives and this times out.
  StatusOr<HttpReply> token =
      call("PUT", "/latest/api/token",
           {std::string("X-aws-ec2-metadata-token-ttl-seconds: ") +
            kImdsTokenTtlSeconds});
  if (!token.ok()) {
    a.skipped = token.status().message();
    return a;
  }
  if (token->status != 200) {
    // 403: IMDS is turned off on this instance; 404/405: not an IMDSv2
    // endpoint. Either way it has no credentials for us.
    a.skipped =
        what + ": token request answered HTTP " + std::to_string(token->status);
    return a;
  }
  if (token->body.empty() ||
      token->body.find_first_of("\r\n") != std::string::npos)
    return UnavailableError(what + ": the token reply is not a token");
  const std::string auth = "X-aws-ec2-metadata-token: " + token->body;
  const std::string roles_path = "/latest/meta-data/iam/security-credentials/";
  CBPIPE_ASSIGN_OR_RETURN(HttpReply roles, call("GET", roles_path, {auth}));
  if (roles.status == 404) {
    a.skipped = what + ": no IAM role attached to the instance";
    return a;
  }
  if (roles.status != 200)
    return UnavailableError(what + ": role list answered HTTP " +
                            std::to_string(roles.status));
  const std::string role(
      Trim(std::string_view(roles.body).substr(0, roles.body.find('\n'))));
  if (!IsRoleName(role))
    return UnavailableError(what + ": role list is not a role name");
  CBPIPE_ASSIGN_OR_RETURN(HttpReply reply,
                          call("GET", roles_path + role, {auth}));
  if (reply.status != 200)
    return UnavailableError(what + ": credentials of role " + role +
                            " answered HTTP " + std::to_string(reply.status));
  CBPIPE_ASSIGN_OR_RETURN(AwsCredentials c,
                          ParseCredentialsJson(reply.body, what));
  a.credentials = std::move(c);
  a.source = "instance metadata";
  return a;
}

// ---- the chain -----------------------------------------------------------

class DefaultChain : public AwsCredentialsProvider {
 public:
  DefaultChain(AwsOptions options, AwsHost host)
      : options_(std::move(options)), host_(std::move(host)) {}

  StatusOr<AwsCredentials> Get() override {
    std::lock_guard<std::mutex> lock(mu_);
    Env* env = HostView(host_).env();
    const int64_t now = env->NowMs();
    if (cached_ && (cached_->expires_ms == 0 ||
                    now < cached_->expires_ms - kRefreshEarlyMs))
      return *cached_;
    StatusOr<Attempt> found = Resolve();
    if (!found.ok()) {
      // A failed early refresh: the old credentials are still good.
      if (cached_ && now < cached_->expires_ms) return *cached_;
      return found.status();
    }
    if (found->credentials->expires_ms != 0 &&
        found->credentials->expires_ms <= now) {
      return UnavailableError("AWS credentials from " + found->source +
                              " have already expired");
    }
    cached_ = std::move(found->credentials);
    source_ = std::move(found->source);
    return *cached_;
  }

  std::string Source() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return source_;
  }

  void Invalidate() override {
    std::lock_guard<std::mutex> lock(mu_);
    cached_.reset();
  }

 private:
  StatusOr<Attempt> Resolve() {
    const HostView host(host_);
    std::vector<std::string> tried;
    using Source = std::function<StatusOr<Attempt>()>;
    const Source sources[] = {
        [&] { return FromEnvironment(options_, host); },
        [&] { return FromSharedFiles(options_, host); },
        [&] {
          return FromContainer(host, host_.container_relative_base.empty()
                                         ? kContainerRelativeHost
                                         : host_.container_relative_base);
        },
        [&] { return FromInstanceMetadata(host); },
    };
    for (const Source& source : sources) {
      CBPIPE_ASSIGN_OR_RETURN(Attempt a, source());
      if (a.credentials) return a;
      tried.push_back(std::move(a.skipped));
    }
    std::string list;
    for (const std::string& t : tried) list += (list.empty() ? "" : "; ") + t;
    return UnauthenticatedError("no AWS credentials found (tried: " + list +
                                ")");
  }

  const AwsOptions options_;
  const AwsHost host_;
  mutable std::mutex mu_;
  std::optional<AwsCredentials> cached_;
  std::string source_;
};

}  // namespace

std::unique_ptr<AwsCredentialsProvider> MakeDefaultAwsCredentialsChain(
    const AwsOptions& options, const AwsHost& host) {
  return std::make_unique<DefaultChain>(options, host);
}

bool IsAwsRegionName(std::string_view name) {
  if (name.empty() || name.size() > 32) return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
      return false;
  }
  return true;
}

StatusOr<std::string> ResolveAwsRegion(const AwsOptions& options,
                                       const AwsHost& host) {
  const HostView view(host);
  std::string region = options.region;
  std::string from = "[aws] region";
  for (const char* var : {"AWS_REGION", "AWS_DEFAULT_REGION"}) {
    if (!region.empty()) break;
    region = view.Var(var);
    from = var;
  }
  if (region.empty()) {
    CBPIPE_ASSIGN_OR_RETURN(Profile p, LoadProfile(options, view));
    region = Setting(p.in_config, "region");
    from = "region of profile " + p.name + " in " + p.config_path;
    if (region.empty()) {
      return InvalidArgumentError(
          "no AWS region: set [aws] region in the config, AWS_REGION, or "
          "region in profile " +
          p.name + " of " + p.config_path);
    }
  }
  if (!IsAwsRegionName(region))
    return InvalidArgumentError(from +
                                ": not a region name (lowercase letters, "
                                "digits and '-', like eu-west-1)");
  return region;
}

}  // namespace cbpipe
