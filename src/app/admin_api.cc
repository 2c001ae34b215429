#include "app/admin_api.h"

#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <poll.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdio>
#include <exception>
#include <map>
#include <mutex>
#include <span>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "app/audit.h"
#include "app/console_assets.h"
#include "app/query_params.h"
#include "common/listen_address.h"
#include "common/sha256.h"
#include "secrets/secret_store.h"

namespace cbpipe {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr char kJsonType[] = "application/json";
constexpr char kMetricsType[] = "text/plain; version=0.0.4; charset=utf-8";
// On every response, API and console alike (docs/console.md, "Security"):
// no inline script or style, nothing from another origin, no framing.
constexpr char kContentSecurityPolicy[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
// Longer paths are no route of ours: answered 404 before any matching.
constexpr size_t kMaxPathBytes = 512;
// After an error answer, what the client still sends is read and dropped
// for this long (and up to kDrainBytes, or the refused body's length), so
// that closing does not reset the connection before the client has read
// the answer.
constexpr auto kLingerTime = std::chrono::seconds(2);
constexpr size_t kDrainBytes = 64 * 1024;
constexpr size_t kMaxDrainBytes = 8 * 1024 * 1024;
constexpr size_t kReadChunk = 4096;

// ASCII case-insensitive equality (header names).
bool IEquals(std::string_view a, std::string_view b) {
  auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c; };
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(),
                    [&](char x, char y) { return lower(x) == lower(y); });
}

// ---------------------------------------------------------------------------
// What a handler sees: the request as parsed, and the response it fills.
// (Named like cpp-httplib's, which served this API before.)

struct Request {
  std::string method;
  std::string target;  // as received
  std::string path;    // percent-decoded, without the query
  std::multimap<std::string, std::string> params;  // the query, decoded
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string path_arg;  // what the route's '*' segment matched
  std::string peer;      // "127.0.0.1:50412"
  // For handlers on the workers: true once the client has gone away.
  std::function<bool()> client_gone;

  bool has_param(const std::string& key) const { return params.count(key); }
  std::string get_param_value(const std::string& key) const {
    auto it = params.find(key);
    return it == params.end() ? std::string() : it->second;
  }
  size_t get_header_value_count(std::string_view name) const {
    return std::count_if(headers.begin(), headers.end(),
                         [&](const auto& h) { return IEquals(h.first, name); });
  }
  std::string get_header_value(std::string_view name) const {
    for (const auto& [k, v] : headers) {
      if (IEquals(k, name)) return v;
    }
    return "";
  }
};

struct Response {
  int status = 200;
  std::string content_type;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;

  void set_content(std::string text, std::string_view type) {
    body = std::move(text);
    content_type = std::string(type);
  }
  void set_header(std::string name, std::string value) {
    headers.emplace_back(std::move(name), std::move(value));
  }
};

void SendJson(Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(DumpJson(body), kJsonType);
}

void SendError(Response& res, int status, std::string_view code,
               std::string_view message) {
  SendJson(res, status, ErrorJson(code, message));
}

// The message of an answer SendError() made ("" for any other).
std::string ErrorMessage(const Response& res) {
  const json body = json::parse(res.body, nullptr, false);
  if (!body.is_object() || !body.contains("error") ||
      !body["error"].is_object())
    return "";
  return body["error"].value("message", "");
}

// A Status from a port as an HTTP error.
void SendStatus(Response& res, const Status& st) {
  switch (st.code()) {
    case StatusCode::kNotFound:
      return SendError(res, 404, "not_found", st.message());
    case StatusCode::kInvalidArgument:
      return SendError(res, 400, "invalid_argument", st.message());
    case StatusCode::kUnavailable:
    case StatusCode::kDeadlineExceeded:
    case StatusCode::kAborted:
      return SendError(res, 503, "unavailable", st.message());
    default: return SendError(res, 500, "internal", st.message());
  }
}

// %XX escapes decoded; '+' is a space when `plus_is_space` (a query).
// Malformed escapes are kept as they are.
std::string PercentDecode(std::string_view in, bool plus_is_space) {
  auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && i + 2 < in.size() && hex(in[i + 1]) >= 0 &&
        hex(in[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex(in[i + 1]) * 16 + hex(in[i + 2])));
      i += 2;
    } else if (plus_is_space && in[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(in[i]);
    }
  }
  return out;
}

// name=value pairs separated by '&' (a pair without '=' has an empty value;
// empty pairs are skipped).
std::multimap<std::string, std::string> ParseQuery(std::string_view query) {
  std::multimap<std::string, std::string> params;
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? "" : query.substr(amp + 1);
    if (pair.empty()) continue;
    const size_t eq = pair.find('=');
    params.emplace(PercentDecode(pair.substr(0, eq), true),
                   eq == std::string_view::npos
                       ? ""
                       : PercentDecode(pair.substr(eq + 1), true));
  }
  return params;
}

// Query parameters: only `allowed` ones, each at most once, parsed strictly
// from the raw target (app/query_params.h).
bool CheckParams(const Request& req,
                 std::initializer_list<std::string_view> allowed,
                 Response& res) {
  StatusOr<QueryParams> params = ParseQueryParams(QueryOf(req.target), allowed);
  if (!params.ok()) {
    SendError(res, 400, "invalid_argument", params.status().message());
    return false;
  }
  return true;
}

// The run id in a path (/api/runs/<id>...): a 400 unless well formed.
bool CheckRunId(const std::string& id, Response& res) {
  if (IsValidRunId(id)) return true;
  SendError(res, 400, "invalid_argument",
            "a run id is 16 lower-case hex digits");
  return false;
}

// An integer query parameter in [min, max]; `fallback` when absent.
bool IntParam(const Request& req, const std::string& name, int min, int max,
              int fallback, int* out, Response& res) {
  *out = fallback;
  if (!req.has_param(name)) return true;
  const std::string v = req.get_param_value(name);
  int64_t n = 0;
  bool ok = !v.empty() && v.size() <= 10;
  for (char c : v) {
    if (c < '0' || c > '9') ok = false;
    if (ok) n = n * 10 + (c - '0');
  }
  if (!ok || n < min || n > max) {
    SendError(res, 400, "invalid_argument",
              name + " must be a whole number from " + std::to_string(min) +
                  " to " + std::to_string(max));
    return false;
  }
  *out = static_cast<int>(n);
  return true;
}

// Compares in time independent of where the strings differ and (by hashing
// first) of their lengths.
bool TokenEquals(std::string_view given, std::string_view expected) {
  unsigned char a[SHA256_DIGEST_LENGTH], b[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(given.data()), given.size(), a);
  SHA256(reinterpret_cast<const unsigned char*>(expected.data()),
         expected.size(), b);
  const bool same = CRYPTO_memcmp(a, b, sizeof a) == 0;
  OPENSSL_cleanse(a, sizeof a);
  OPENSSL_cleanse(b, sizeof b);
  return same;
}

// Sends 401/403 and returns false unless the request carries the token.
// `*actor` is who the request claims to be, for the audit line: the
// TokenActor() of the token it sent, or "anonymous".
bool Authorize(const Request& req, const std::string& token, Response& res,
               std::string* actor) {
  *actor = "anonymous";
  const size_t count = req.get_header_value_count("Authorization");
  const std::string value = req.get_header_value("Authorization");
  constexpr std::string_view kScheme = "bearer ";
  bool well_formed = count == 1 && value.size() > kScheme.size();
  for (size_t i = 0; well_formed && i < kScheme.size(); ++i) {
    const char c = value[i];
    if ((c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c) != kScheme[i])
      well_formed = false;
  }
  std::string_view given;
  if (well_formed) {
    given = std::string_view(value).substr(kScheme.size());
    while (!given.empty() && given.front() == ' ') given.remove_prefix(1);
    while (!given.empty() && given.back() == ' ') given.remove_suffix(1);
    well_formed =
        !given.empty() && given.find_first_of(" \t") == std::string_view::npos;
  }
  if (well_formed) *actor = TokenActor(given);
  if (token.empty()) {
    SendError(res, 403, "forbidden",
              "admin_token is not configured: set [service] admin_token to "
              "a secret reference (env:NAME or file:/path) to enable this "
              "endpoint");
    return false;
  }
  if (count == 0) {
    res.set_header("WWW-Authenticate", "Bearer realm=\"cbpipe\"");
    SendError(res, 401, "unauthenticated",
              "missing Authorization: Bearer <token> header");
    return false;
  }
  if (!well_formed) {
    res.set_header("WWW-Authenticate",
                   "Bearer realm=\"cbpipe\", error=\"invalid_request\"");
    SendError(res, 401, "unauthenticated",
              "malformed Authorization header: expected \"Bearer <token>\"");
    return false;
  }
  if (!TokenEquals(given, token)) {
    SendError(res, 403, "forbidden", "wrong bearer token");
    return false;
  }
  return true;
}

json ParseOrString(const std::string& text) {
  if (text.empty()) return nullptr;
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return text;
  return j;
}

const StepRecord* FindStep(const RunRecord& run, std::string_view name) {
  for (const StepRecord& s : run.steps) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

// The most recent step output holding `key`, searched from the last step
// back (each step's output carries its input forward).
const json* FindInOutputs(const std::vector<json>& outputs,
                          std::string_view key) {
  for (auto it = outputs.rbegin(); it != outputs.rend(); ++it) {
    if (it->is_object() && it->contains(key)) return &(*it)[std::string(key)];
  }
  return nullptr;
}

// An epoch-ms query value: 1-15 decimal digits (until the year 33658).
bool EpochMsParam(std::string_view v, int64_t* out) {
  if (v.empty() || v.size() > 15) return false;
  int64_t n = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + (c - '0');
  }
  *out = n;
  return true;
}

// The work-store key of a run's rejects report ("" when none).
std::string RejectsKey(const RunRecord& run) {
  for (auto it = run.steps.rbegin(); it != run.steps.rend(); ++it) {
    const json out = json::parse(it->output_json, nullptr, false);
    if (out.is_object() && out.contains("rejects_key") &&
        out["rejects_key"].is_string())
      return out["rejects_key"].get<std::string>();
  }
  return "";
}

// The runs created since `from_ms` (newest first, at most `max`), each
// with its steps (a run removed in between is left out).
StatusOr<std::vector<RunRecord>> RunsWithSteps(RunStore& store,
                                               int64_t from_ms, int max) {
  CBPIPE_ASSIGN_OR_RETURN(std::vector<RunRecord> listed,
                          store.List({.from_ms = from_ms}, max, 0));
  std::vector<RunRecord> runs;
  runs.reserve(listed.size());
  for (const RunRecord& r : listed) {
    StatusOr<RunRecord> full = store.Get(r.run_id);
    if (full.ok()) runs.push_back(std::move(*full));
  }
  return runs;
}

// RunsWithSteps for a page that asks again every few seconds (the
// console's overview): a finished run (succeeded, failed, rejected) is read
// once and kept while it stays in the window with the same updated_ms (a
// redrive changes it); the others are read on every call. Thread-safe.
class FinishedRunCache {
 public:
  StatusOr<std::vector<RunRecord>> Runs(RunStore& store, int64_t from_ms,
                                        int max) {
    CBPIPE_ASSIGN_OR_RETURN(std::vector<RunRecord> listed,
                            store.List({.from_ms = from_ms}, max, 0));
    std::lock_guard<std::mutex> lock(mu_);
    std::map<std::string, RunRecord> kept;
    std::vector<RunRecord> runs;
    runs.reserve(listed.size());
    for (const RunRecord& r : listed) {
      auto it = finished_.find(r.run_id);
      if (it != finished_.end() && it->second.updated_ms == r.updated_ms &&
          it->second.state == r.state) {
        runs.push_back(it->second);
        kept.emplace(r.run_id, std::move(it->second));
        continue;
      }
      StatusOr<RunRecord> full = store.Get(r.run_id);
      if (!full.ok()) continue;  // removed in between
      if (full->state == "succeeded" || full->state == "failed" ||
          full->state == "rejected")
        kept.emplace(full->run_id, *full);
      runs.push_back(std::move(*full));
    }
    finished_ = std::move(kept);  // what left the window is dropped
    return runs;
  }

 private:
  std::mutex mu_;
  std::map<std::string, RunRecord> finished_;
};

int64_t SystemNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// True for the Content-Types an HTML form can send cross-site without a
// CORS preflight (application/x-www-form-urlencoded, multipart/form-data,
// text/plain): such a POST never reaches a handler.
bool IsFormContentType(std::string_view value) {
  std::string type;
  for (char c : value.substr(0, value.find(';'))) {
    if (c == ' ' || c == '\t') continue;
    type.push_back(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  }
  return type == "application/x-www-form-urlencoded" ||
         type == "multipart/form-data" || type == "text/plain";
}

// The console's file for `path` (what follows /console/): "" is
// index.html; a path whose last segment has no '.' that is no file is a
// page of the console's own routing, also index.html. Null: no such file.
const EmbeddedAsset* FindConsoleAsset(std::string_view path) {
  const std::span<const EmbeddedAsset> assets = ConsoleAssets();
  auto find = [&](std::string_view p) -> const EmbeddedAsset* {
    for (const EmbeddedAsset& a : assets) {
      if (a.path == p) return &a;
    }
    return nullptr;
  };
  if (path.empty()) return find("index.html");
  if (const EmbeddedAsset* a = find(path)) return a;
  const size_t slash = path.rfind('/');
  const std::string_view last =
      slash == std::string_view::npos ? path : path.substr(slash + 1);
  if (last.find('.') == std::string_view::npos) return find("index.html");
  return nullptr;
}

// A strong ETag of an asset's bytes.
std::string AssetEtag(std::string_view body) {
  Sha256 sha;
  sha.Update(body.data(), body.size());
  StatusOr<std::string> hex = sha.FinishHex();
  return "\"" + (hex.ok() ? hex->substr(0, 32) : std::string("0")) + "\"";
}

// True when an If-None-Match header names `etag` (or is "*").
bool EtagMatches(std::string_view if_none_match, std::string_view etag) {
  while (!if_none_match.empty()) {
    const size_t comma = if_none_match.find(',');
    std::string_view tag = if_none_match.substr(0, comma);
    if_none_match = comma == std::string_view::npos
                        ? ""
                        : if_none_match.substr(comma + 1);
    while (!tag.empty() && tag.front() == ' ') tag.remove_prefix(1);
    while (!tag.empty() && tag.back() == ' ') tag.remove_suffix(1);
    if (tag.starts_with("W/")) tag.remove_prefix(2);
    if (tag == "*" || tag == etag) return true;
  }
  return false;
}

}  // namespace

bool IsKnownRunState(std::string_view state) {
  return state == "queued" || state == "running" || state == "succeeded" ||
         state == "failed" || state == "rejected";
}

bool IsValidRunId(std::string_view id) {
  return id.size() == 16 && std::all_of(id.begin(), id.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

bool IsValidDeadLetterId(std::string_view id) {
  return !id.empty() && id.size() <= 64 &&
         std::all_of(id.begin(), id.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
                  (c >= 'A' && c <= 'Z') || c == '-';
         });
}

json ErrorJson(std::string_view code, std::string_view message) {
  return {{"error", {{"code", code}, {"message", message}}}};
}

std::string DumpJson(const json& j, int indent) {
  return j.dump(indent, ' ', false, json::error_handler_t::replace);
}

json RunSummaryJson(const RunRecord& run) {
  return {{"run_id", run.run_id},
          {"input_key", run.input_key},
          {"input_name", run.input_name},
          {"trace_id", run.trace_id},
          {"state", run.state},
          {"current_step", run.current_step},
          {"error", run.error.empty() ? json(nullptr) : json(run.error)},
          {"created_ms", run.created_ms},
          {"updated_ms", run.updated_ms}};
}

json RunDetailJson(const RunRecord& run) {
  json out = RunSummaryJson(run);
  json steps = json::array();
  json errors = json::array();
  std::vector<json> outputs;
  for (const StepRecord& s : run.steps) {
    json output = ParseOrString(s.output_json);
    steps.push_back({{"name", s.name},
                     {"state", s.state},
                     {"attempts", s.attempts},
                     {"output", output},
                     {"error", s.error.empty() ? json(nullptr) : json(s.error)},
                     {"started_ms", s.started_ms},
                     {"finished_ms", s.finished_ms}});
    if (!s.error.empty())
      errors.push_back({{"step", s.name}, {"message", s.error}});
    if (s.state == "succeeded") outputs.push_back(std::move(output));
  }
  if (!run.error.empty())
    errors.push_back({{"step", run.current_step}, {"message", run.error}});
  out["steps"] = std::move(steps);
  out["errors"] = std::move(errors);

  // Generated files, flattened, with their batch.
  json files = json::array();
  const StepRecord* gen = FindStep(run, "scan");
  if (!gen) gen = FindStep(run, "generate");  // runs of older versions
  if (gen) {
    json g = ParseOrString(gen->output_json);
    if (g.is_object() && g.contains("batches") && g["batches"].is_array()) {
      for (const json& b : g["batches"]) {
        if (!b.is_object() || !b.contains("files") || !b["files"].is_array())
          continue;
        for (const json& f : b["files"]) {
          json file = f;
          if (file.is_object()) {
            file["batch_id"] = b.value("id", "");
            file["manifest"] = b.value("manifest", "");
          }
          files.push_back(std::move(file));
        }
      }
    }
  }
  out["files"] = std::move(files);
  const json* deliveries = FindInOutputs(outputs, "deliveries");
  out["deliveries"] = deliveries ? *deliveries : json::array();
  const json* rejects = FindInOutputs(outputs, "rejects_file");
  out["rejects_file"] = rejects ? *rejects : json(nullptr);
  return out;
}

json DeadLetterJson(const DeadLetter& d) {
  const Message& m = d.message;
  json attributes = json::object();
  for (const auto& [k, v] : m.attributes) attributes[k] = v;
  // The service's messages are {"run_id", "input_key", "input_name", ...}.
  const json body = json::parse(m.body, nullptr, /*allow_exceptions=*/false);
  auto field = [&](const char* key) {
    return body.is_object() && body.contains(key) && body[key].is_string()
               ? body[key]
               : json(nullptr);
  };
  return {{"id", m.id},
          {"run_id", field("run_id")},
          {"input_name", field("input_name")},
          {"body", m.body},
          {"attributes", attributes},
          {"receive_count", m.receive_count},
          {"sent_at_ms", m.sent_at_ms},
          {"first_received_at_ms", m.first_received_at_ms},
          {"reason", d.reason},
          {"moved_at_ms", d.moved_at_ms}};
}

// ---------------------------------------------------------------------------
// The server: one event-loop thread for every socket, a pool of workers for
// the handlers that call the hooks.

namespace {

// One request, parsed by Beast into a Request, with the limits Beast has no
// option for: kAdminMaxLineBytes per request line and per header line.
class RequestParser final : public http::basic_parser<true> {
 public:
  RequestParser() {
    header_limit(kAdminMaxHeadBytes);
    body_limit(kAdminMaxBodyBytes);
  }

  Request& request() { return req_; }
  int http_version() const { return version_; }
  bool expects_continue() const { return expect_continue_; }
  bool line_too_long() const { return line_too_long_; }
  bool seen_request_line() const { return version_ != 0; }
  // The Content-Length of the request (0 when none).
  uint64_t declared_length() const { return declared_length_; }

 private:
  void on_request_impl(http::verb, beast::string_view method,
                       beast::string_view target, int version,
                       beast::error_code& ec) override {
    if (target.size() > kAdminMaxLineBytes) {
      line_too_long_ = true;  // and no request line seen: 414
      ec = http::error::bad_target;
      return;
    }
    version_ = version;
    req_.method = std::string(method);
    req_.target = std::string(target);
  }
  void on_response_impl(int, beast::string_view, int,
                        beast::error_code&) override {}
  void on_field_impl(http::field field, beast::string_view name,
                     beast::string_view value, beast::error_code& ec) override {
    if (name.size() + value.size() + 2 > kAdminMaxLineBytes) {
      line_too_long_ = true;
      ec = http::error::bad_field;
      return;
    }
    if (field == http::field::expect && beast::iequals(value, "100-continue"))
      expect_continue_ = true;
    if (field == http::field::content_length) {
      // Beast checks it; this is only to know how much to drain after a
      // 413 (Beast refuses before on_body_init_impl).
      uint64_t n = 0;
      for (char c : value) {
        if (c < '0' || c > '9' || n > (uint64_t{1} << 40)) break;
        n = n * 10 + static_cast<uint64_t>(c - '0');
      }
      declared_length_ = n;
    }
    req_.headers.emplace_back(std::string(name), std::string(value));
  }
  void on_header_impl(beast::error_code&) override {}
  void on_body_init_impl(const boost::optional<std::uint64_t>& length,
                         beast::error_code&) override {
    // Within body_limit: Beast checked it before calling.
    if (length) req_.body.reserve(static_cast<size_t>(*length));
  }
  size_t on_body_impl(beast::string_view body, beast::error_code&) override {
    req_.body.append(body.data(), body.size());
    return body.size();
  }
  void on_chunk_header_impl(std::uint64_t, beast::string_view,
                            beast::error_code&) override {}
  size_t on_chunk_body_impl(std::uint64_t, beast::string_view body,
                            beast::error_code&) override {
    req_.body.append(body.data(), body.size());
    return body.size();
  }
  void on_finish_impl(beast::error_code&) override {}

  Request req_;
  int version_ = 0;
  bool expect_continue_ = false;
  bool line_too_long_ = false;
  uint64_t declared_length_ = 0;
};

// One client connection. Lives on the loop thread (a worker only calls
// ClientGone(), while the connection waits for its answer); kept alive by
// the shared_ptrs in its pending operations and jobs.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(AdminServer::Impl& server, tcp::socket socket);
  ~Session();

  void Start();
  // Sends `res`, then waits for the next request or closes.
  void Respond(Response res);
  // True when the client has closed the connection (or it failed).
  bool ClientGone() const;

 private:
  void WaitForRequest(Clock::duration first_byte);
  void ReadHead();
  void OnHead(beast::error_code ec);
  void ReadBody();
  void Dispatch();
  // A request that cannot be parsed: answered (then closed) when it was
  // malformed or too large; closed silently when the client left or
  // timed out.
  void Refuse(beast::error_code ec);
  void RespondAndClose(int status, std::string_view code,
                       std::string_view message);
  // Closes; with `linger`, after reading what the client still sends.
  void Close(bool linger);
  void Drain();

  AdminServer::Impl& server_;
  beast::tcp_stream stream_;
  const int fd_;
  std::string peer_;
  beast::flat_buffer buffer_{2 * kAdminMaxHeadBytes};
  std::optional<RequestParser> parser_;
  Clock::time_point wait_start_;
  Clock::time_point request_deadline_;
  int served_ = 0;
  bool keep_alive_ = false;
  bool head_ = false;
  size_t drained_ = 0;
  size_t drain_limit_ = kDrainBytes;
};

using Handler = std::function<void(const Request&, Response&)>;

struct Route {
  // '*' matches one non-empty path segment; a trailing "/**" the rest of
  // the path (possibly empty).
  std::string_view pattern;
  std::string_view method;   // "GET" (HEAD too) or "POST"
  bool on_loop;              // answered on the loop thread: must not block
  // Mutating: needs the bearer token; every attempt is audited as
  // "audit.<audit_action>".
  std::string_view audit_action;
  Handler handle;
};

// `path` against `pattern`; `*arg` is what '*' matched.
bool MatchPath(std::string_view pattern, std::string_view path,
               std::string* arg) {
  if (pattern.ends_with("/**")) {  // the rest of the path, '/' and all
    const std::string_view prefix = pattern.substr(0, pattern.size() - 2);
    if (!path.starts_with(prefix)) return false;
    *arg = std::string(path.substr(prefix.size()));
    return true;
  }
  const size_t star = pattern.find('*');
  if (star == std::string_view::npos) return pattern == path;
  const std::string_view before = pattern.substr(0, star);
  const std::string_view after = pattern.substr(star + 1);
  if (path.size() <= before.size() + after.size() ||
      path.substr(0, before.size()) != before ||
      path.substr(path.size() - after.size()) != after)
    return false;
  const std::string_view middle =
      path.substr(before.size(), path.size() - before.size() - after.size());
  if (middle.find('/') != std::string_view::npos) return false;
  *arg = std::string(middle);
  return true;
}

std::string DescribePeer(const tcp::socket& socket) {
  beast::error_code ec;
  const tcp::endpoint ep = socket.remote_endpoint(ec);
  if (ec) return "unknown";
  const std::string address = ep.address().to_string();
  return (ep.address().is_v6() ? "[" + address + "]" : address) + ":" +
         std::to_string(ep.port());
}

}  // namespace

class AdminServer::Impl {
 public:
  Impl(Hooks hooks, AdminLimits limits)
      : hooks_(std::move(hooks)), limits_(limits) {
    if (!hooks_.log) {
      hooks_.log = [](std::string_view m) {
        std::fprintf(stderr, "cbpipe admin: %.*s\n", static_cast<int>(m.size()),
                     m.data());
      };
    }
    InstallRoutes();
  }
  ~Impl() {
    Stop();
    WipeString(hooks_.token);
  }

  Hooks& hooks() { return hooks_; }
  const AdminLimits& limits() const { return limits_; }

  // Binds and listens; the port bound.
  StatusOr<int> Listen(const std::string& host, int port,
                       const std::string& listen);
  void Run();
  void Stop();

  // Called by the sessions (loop thread).
  void Handle(std::shared_ptr<Session> session, Request req);
  void ConnectionOpened() { ++connections_; }
  void ConnectionClosed() { --connections_; }

 private:
  void InstallRoutes();
  void Accept();
  // Runs `route` turning an exception into a 500.
  void Call(const Route& route, const Request& req, Response& res);

  Hooks hooks_;
  const AdminLimits limits_;
  std::vector<Route> routes_;
  FinishedRunCache overview_runs_;
  // AssetEtag() of each console asset, by path; computed once.
  std::map<std::string_view, std::string> asset_etags_;
  std::optional<asio::io_context> ioc_{std::in_place, 1};
  std::optional<tcp::acceptor> acceptor_;
  std::optional<asio::steady_timer> accept_retry_;
  std::thread loop_;
  std::optional<asio::thread_pool> workers_;
  std::atomic<int> connections_{0};
  std::atomic<int> pending_{0};
  bool stopped_ = false;
};

namespace {

Session::Session(AdminServer::Impl& server, tcp::socket socket)
    : server_(server),
      stream_(std::move(socket)),
      fd_(stream_.socket().native_handle()),
      peer_(DescribePeer(stream_.socket())) {
  server_.ConnectionOpened();
}

Session::~Session() { server_.ConnectionClosed(); }

void Session::Start() {
  beast::error_code ignored;
  // Responses are one write each, but without this a keep-alive client's
  // delayed ACK could still add 40 ms.
  stream_.socket().set_option(tcp::no_delay(true), ignored);
  WaitForRequest(server_.limits().first_byte);
}

bool Session::ClientGone() const {
  pollfd p{fd_, POLLRDHUP, 0};
  return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

void Session::WaitForRequest(Clock::duration first_byte) {
  wait_start_ = Clock::now();
  parser_.emplace();
  if (buffer_.size() > 0) return ReadHead();  // pipelined: already here
  stream_.expires_at(wait_start_ + first_byte);
  stream_.async_read_some(
      buffer_.prepare(kReadChunk),
      [self = shared_from_this()](beast::error_code ec, size_t n) {
        if (ec) return self->Close(false);  // idle too long, or gone
        self->buffer_.commit(n);
        self->ReadHead();
      });
}

void Session::ReadHead() {
  stream_.expires_at(wait_start_ + server_.limits().head);
  http::async_read_header(
      stream_, buffer_, *parser_,
      [self = shared_from_this()](beast::error_code ec, size_t) {
        self->OnHead(ec);
      });
}

void Session::OnHead(beast::error_code ec) {
  if (ec) return Refuse(ec);
  request_deadline_ = Clock::now() + server_.limits().request;
  stream_.expires_at(request_deadline_);
  if (parser_->is_done()) return Dispatch();
  if (!parser_->expects_continue()) return ReadBody();
  static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
  asio::async_write(stream_, asio::buffer(kContinue.data(), kContinue.size()),
                    [self = shared_from_this()](beast::error_code ec, size_t) {
                      if (ec) return self->Close(false);
                      self->ReadBody();
                    });
}

void Session::ReadBody() {
  http::async_read(stream_, buffer_, *parser_,
                   [self = shared_from_this()](beast::error_code ec, size_t) {
                     if (ec) return self->Refuse(ec);
                     self->Dispatch();
                   });
}

void Session::Refuse(beast::error_code ec) {
  const bool parse_error =
      ec.category() ==
          http::make_error_code(http::error::bad_method).category() &&
      ec != http::error::end_of_stream && ec != http::error::partial_message;
  if (!parse_error) return Close(false);
  if (parser_->line_too_long() && !parser_->seen_request_line()) {
    return RespondAndClose(414, "uri_too_long",
                           "request line longer than " +
                               std::to_string(kAdminMaxLineBytes) + " bytes");
  }
  if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
    if (!parser_->seen_request_line()) {
      return RespondAndClose(414, "uri_too_long",
                             "request line longer than " +
                                 std::to_string(kAdminMaxLineBytes) + " bytes");
    }
    return RespondAndClose(431, "header_too_large",
                           "request line and headers longer than " +
                               std::to_string(kAdminMaxHeadBytes) + " bytes");
  }
  if (parser_->line_too_long()) {
    return RespondAndClose(400, "bad_request",
                           "a header line longer than " +
                               std::to_string(kAdminMaxLineBytes) + " bytes");
  }
  if (ec == http::error::body_limit) {
    drain_limit_ = std::min<uint64_t>(
        kMaxDrainBytes,
        std::max<uint64_t>(kDrainBytes, parser_->declared_length() + 1024));
    return RespondAndClose(413, "payload_too_large",
                           "request body larger than " +
                               std::to_string(kAdminMaxBodyBytes) + " bytes");
  }
  RespondAndClose(400, "bad_request", "malformed HTTP request");
}

void Session::RespondAndClose(int status, std::string_view code,
                              std::string_view message) {
  keep_alive_ = false;
  head_ = false;
  request_deadline_ = Clock::now() + server_.limits().request;
  Response res;
  SendError(res, status, code, message);
  Respond(std::move(res));
}

void Session::Dispatch() {
  stream_.expires_never();  // nothing is read or written until the answer
  const int version = parser_->http_version();
  if (version != 10 && version != 11) {
    return RespondAndClose(400, "bad_request",
                           "HTTP version not supported: use HTTP/1.1");
  }
  keep_alive_ = parser_->keep_alive() && ++served_ < kAdminKeepAliveMaxRequests;
  Request req = std::move(parser_->request());
  head_ = req.method == "HEAD";
  req.peer = peer_;
  const size_t q = req.target.find('?');
  req.path = PercentDecode(std::string_view(req.target).substr(0, q), false);
  if (q != std::string::npos)
    req.params = ParseQuery(std::string_view(req.target).substr(q + 1));
  server_.Handle(shared_from_this(), std::move(req));
}

void Session::Respond(Response r) {
  auto res = std::make_shared<http::response<http::string_body>>(
      static_cast<http::status>(r.status), 11);
  if (!r.content_type.empty())
    res->set(http::field::content_type, r.content_type);
  for (const auto& [name, value] : r.headers) res->set(name, value);
  res->set("Content-Security-Policy", kContentSecurityPolicy);
  res->set("X-Content-Type-Options", "nosniff");
  res->set("Referrer-Policy", "no-referrer");
  res->set("X-Frame-Options", "DENY");
  // The API's answers are live state; the console's assets say their own.
  if (res->find(http::field::cache_control) == res->end())
    res->set(http::field::cache_control, "no-store");
  const size_t length = r.body.size();
  if (!head_) res->body() = std::move(r.body);
  res->content_length(length);
  res->keep_alive(keep_alive_);
  stream_.expires_at(request_deadline_);
  http::async_write(
      stream_, *res,
      [self = shared_from_this(), res](beast::error_code ec, size_t) {
        if (ec) return self->Close(false);
        if (!self->keep_alive_) return self->Close(true);
        self->WaitForRequest(self->server_.limits().keep_alive_idle);
      });
}

void Session::Close(bool linger) {
  beast::error_code ignored;
  if (!linger) {
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
    return;
  }
  stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
  stream_.expires_after(kLingerTime);
  buffer_.consume(buffer_.size());
  Drain();
}

void Session::Drain() {
  stream_.async_read_some(
      buffer_.prepare(kReadChunk),
      [self = shared_from_this()](beast::error_code ec, size_t n) {
        self->drained_ += n;
        if (ec || self->drained_ > self->drain_limit_) {
          self->stream_.close();
          return;
        }
        self->Drain();
      });
}

}  // namespace

StatusOr<int> AdminServer::Impl::Listen(const std::string& host, int port,
                                        const std::string& listen) {
  beast::error_code ec;
  tcp::resolver resolver(*ioc_);
  const auto endpoints = resolver.resolve(
      host, std::to_string(port),
      tcp::resolver::numeric_service | tcp::resolver::passive, ec);
  if (!ec) {
    for (const auto& entry : endpoints) {
      tcp::acceptor acceptor(*ioc_);
      acceptor.open(entry.endpoint().protocol(), ec);
      // SO_REUSEADDR (not SO_REUSEPORT, which would let a second process
      // bind the same port and take half the requests).
      if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
      if (!ec) acceptor.bind(entry.endpoint(), ec);
      if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
      if (ec) continue;
      const int bound = acceptor.local_endpoint(ec).port();
      if (ec) continue;
      acceptor_.emplace(std::move(acceptor));
      return bound;
    }
  }
  return UnavailableError("admin API cannot listen on " + listen +
                          ": address in use or not available");
}

void AdminServer::Impl::Run() {
  workers_.emplace(static_cast<size_t>(std::max(1, limits_.workers)));
  accept_retry_.emplace(*ioc_);
  Accept();
  loop_ = std::thread([this] {
    for (;;) {
      try {
        ioc_->run();
        return;
      } catch (const std::exception& e) {
        hooks_.log(std::string("error: admin API event loop: ") + e.what());
      }
    }
  });
}

void AdminServer::Impl::Accept() {
  acceptor_->async_accept([this](beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted) return;  // stopped
    if (ec) {
      // Out of file descriptors, most likely: try again shortly rather
      // than spin.
      accept_retry_->expires_after(std::chrono::milliseconds(100));
      accept_retry_->async_wait([this](beast::error_code e) {
        if (!e) Accept();
      });
      return;
    }
    if (connections_.load() >= limits_.max_connections) {
      beast::error_code ignored;
      socket.close(ignored);
    } else {
      std::make_shared<Session>(*this, std::move(socket))->Start();
    }
    Accept();
  });
}

void AdminServer::Impl::Stop() {
  if (stopped_) return;
  stopped_ = true;
  if (loop_.joinable()) {
    ioc_->stop();
    loop_.join();
  }
  beast::error_code ignored;
  if (acceptor_) acceptor_->close(ignored);
  // Handlers already running finish; their answers are not sent.
  if (workers_) workers_->join();
  // Destroying the loop's pending operations closes every connection.
  accept_retry_.reset();
  acceptor_.reset();
  ioc_.reset();
}

void AdminServer::Impl::Call(const Route& route, const Request& req,
                             Response& res) {
  try {
    route.handle(req, res);
  } catch (const std::exception& e) {
    hooks_.log("error: " + req.method + " " + req.path.substr(0, 128) +
               " failed: " + e.what());
    res = Response();
    SendError(res, 500, "internal", "internal error");
  } catch (...) {
    hooks_.log("error: " + req.method + " " + req.path.substr(0, 128) +
               " failed: unknown exception");
    res = Response();
    SendError(res, 500, "internal", "internal error");
  }
}

void AdminServer::Impl::Handle(std::shared_ptr<Session> session, Request req) {
  Response res;
  const Route* route = nullptr;
  const char* allow = nullptr;
  if (req.path.size() <= kMaxPathBytes) {
    for (const Route& r : routes_) {
      std::string arg;
      if (!MatchPath(r.pattern, req.path, &arg)) continue;
      const bool method_ok =
          req.method == r.method || (r.method == "GET" && req.method == "HEAD");
      if (method_ok) {
        route = &r;
        req.path_arg = std::move(arg);
        break;
      }
      allow = r.method == "GET" ? "GET, HEAD" : "POST";
    }
  }
  if (!route) {
    if (allow) {
      res.set_header("Allow", allow);
      SendError(
          res, 405, "method_not_allowed",
          req.method.substr(0, 32) + " is not allowed here; allowed: " + allow);
    } else {
      SendError(res, 404, "not_found", "no such endpoint");
    }
    return session->Respond(std::move(res));
  }
  if (req.method == "POST" &&
      IsFormContentType(req.get_header_value("Content-Type"))) {
    SendError(res, 415, "unsupported_media_type",
              "a POST with a form's Content-Type is refused (a cross-site "
              "form could send it); send no body, or application/json");
    if (!route->audit_action.empty()) {
      AuditRecord a;
      a.action = std::string(route->audit_action);
      a.actor = "anonymous";
      a.via = "api";
      a.origin = req.peer;
      a.dead_letter_id = req.path_arg.substr(0, 64);
      a.outcome = "refused";
      a.error = ErrorMessage(res);
      WriteAudit(a);
    }
    return session->Respond(std::move(res));
  }
  if (!route->audit_action.empty()) {
    std::string actor;
    if (!Authorize(req, hooks_.token, res, &actor)) {
      AuditRecord a;
      a.action = std::string(route->audit_action);
      a.actor = actor;
      a.via = "api";
      a.origin = req.peer;
      a.dead_letter_id = req.path_arg.substr(0, 64);
      a.outcome = res.status == 401 ? "unauthenticated" : "forbidden";
      a.error = ErrorMessage(res);
      WriteAudit(a);
      return session->Respond(std::move(res));
    }
  }
  if (route->on_loop) {
    Call(*route, req, res);
    return session->Respond(std::move(res));
  }
  if (pending_.fetch_add(1) >= limits_.max_pending) {
    --pending_;
    SendError(res, 503, "unavailable",
              "too many requests in progress; try again");
    return session->Respond(std::move(res));
  }
  req.client_gone = [s = session.get()] { return s->ClientGone(); };
  asio::post(*workers_, [this, route, session = std::move(session),
                         req = std::move(req)]() mutable {
    Response res;
    Call(*route, req, res);
    --pending_;
    asio::post(*ioc_,
               [session = std::move(session), res = std::move(res)]() mutable {
                 session->Respond(std::move(res));
               });
  });
}

void AdminServer::Impl::InstallRoutes() {
  const Hooks& h = hooks_;
  auto add = [this](std::string_view pattern, std::string_view method,
                    bool on_loop, std::string_view audit_action,
                    Handler handle) {
    routes_.push_back(
        {pattern, method, on_loop, audit_action, std::move(handle)});
  };

  // On the loop thread: it touches nothing that can block.
  add("/healthz", "GET", true, "", [](const Request&, Response& res) {
    SendJson(res, 200, {{"status", "ok"}});
  });

  // The console (docs/console.md): static files from memory, on the loop.
  for (const EmbeddedAsset& a : ConsoleAssets())
    asset_etags_.emplace(a.path, AssetEtag(a.body));
  auto to_console = [](const Request&, Response& res) {
    res.status = 302;
    res.set_header("Location", "/console/");
    res.set_content("", "");
  };
  add("/", "GET", true, "", to_console);
  add("/console", "GET", true, "", to_console);
  add("/console/**", "GET", true, "",
      [this](const Request& req, Response& res) {
        const EmbeddedAsset* asset = FindConsoleAsset(req.path_arg);
        if (!asset) return SendError(res, 404, "not_found", "no such file");
        const std::string& etag = asset_etags_.at(asset->path);
        res.set_header("ETag", etag);
        // Revalidated on every use: a new binary's console is seen at once.
        res.set_header("Cache-Control", "no-cache");
        if (EtagMatches(req.get_header_value("If-None-Match"), etag)) {
          res.status = 304;
          return;
        }
        res.status = 200;
        res.set_content(std::string(asset->body), asset->content_type);
      });

  add("/readyz", "GET", false, "", [&h](const Request&, Response& res) {
    if (!h.ready || h.ready()) {
      SendJson(res, 200, {{"status", "ready"}});
    } else {
      SendError(res, 503, "not_ready", "the service is not ready");
    }
  });

  add("/metrics", "GET", false, "", [&h](const Request&, Response& res) {
    res.status = 200;
    res.set_content(h.render_metrics ? h.render_metrics() : std::string(),
                    kMetricsType);
  });

  add("/api/runs", "GET", false, "", [&h](const Request& req, Response& res) {
    if (!h.runs) return SendError(res, 503, "unavailable", "no run store");
    if (!CheckParams(req, {"state", "input", "from", "to", "limit", "offset"},
                     res))
      return;
    int limit = 0, offset = 0;
    if (!IntParam(req, "limit", 1, kAdminMaxPageSize, kAdminDefaultPageSize,
                  &limit, res) ||
        !IntParam(req, "offset", 0, 1'000'000'000, 0, &offset, res))
      return;
    RunFilter filter;
    filter.state = req.get_param_value("state");
    if (req.has_param("state") && !IsKnownRunState(filter.state)) {
      return SendError(res, 400, "invalid_argument",
                       "state must be one of queued, running, succeeded, "
                       "failed, rejected");
    }
    filter.input_contains = req.get_param_value("input");
    if (filter.input_contains.size() > kAdminMaxInputFilterBytes) {
      return SendError(res, 400, "invalid_argument",
                       "input must be at most " +
                           std::to_string(kAdminMaxInputFilterBytes) +
                           " bytes");
    }
    for (const char* name : {"from", "to"}) {
      if (!req.has_param(name)) continue;
      int64_t ms = 0;
      if (!EpochMsParam(req.get_param_value(name), &ms)) {
        return SendError(res, 400, "invalid_argument",
                         std::string(name) +
                             " must be a time in epoch milliseconds (a "
                             "whole number, at most 15 digits)");
      }
      (std::string_view(name) == "from" ? filter.from_ms : filter.to_ms) = ms;
    }
    StatusOr<std::vector<RunRecord>> runs = h.runs->List(filter, limit, offset);
    if (!runs.ok()) return SendStatus(res, runs.status());
    StatusOr<int64_t> total = h.runs->Count(filter);
    if (!total.ok()) return SendStatus(res, total.status());
    const std::string& state = filter.state;
    json items = json::array();
    for (const RunRecord& r : *runs) items.push_back(RunSummaryJson(r));
    SendJson(res, 200,
             {{"runs", std::move(items)},
              {"total", *total},
              {"limit", limit},
              {"offset", offset},
              {"state", state.empty() ? json(nullptr) : json(state)}});
  });

  add("/api/runs/*", "GET", false, "", [&h](const Request& req, Response& res) {
    if (!h.runs) return SendError(res, 503, "unavailable", "no run store");
    if (!CheckParams(req, {}, res)) return;
    const std::string& id = req.path_arg;
    if (!CheckRunId(id, res)) return;
    StatusOr<RunRecord> run = h.runs->Get(id);
    if (!run.ok()) return SendStatus(res, run.status());
    json detail = RunDetailJson(*run);
    std::optional<std::string> rejects;
    const std::string key = RejectsKey(*run);
    if (h.read_work && !key.empty()) {
      StatusOr<std::string> csv = h.read_work(key);
      if (csv.ok() && csv->size() <= kAdminMaxRejectsBytes)
        rejects = std::move(*csv);
    }
    AddConsoleRunDetail(*run, h.destinations, rejects, &detail);
    SendJson(res, 200, detail);
  });

  add("/api/runs/*/rejects", "GET", false, "",
      [&h](const Request& req, Response& res) {
        if (!h.runs) return SendError(res, 503, "unavailable", "no run store");
        if (!CheckParams(req, {}, res)) return;
        const std::string& id = req.path_arg;
        if (!CheckRunId(id, res)) return;
        if (!h.read_work) {
          return SendError(res, 503, "unavailable", "no work store");
        }
        StatusOr<RunRecord> run = h.runs->Get(id);
        if (!run.ok()) return SendStatus(res, run.status());
        const std::string key = RejectsKey(*run);
        if (key.empty()) {
          return SendError(res, 404, "not_found",
                           "run " + id + " has no rejects report");
        }
        StatusOr<std::string> csv = h.read_work(key);
        const bool too_big =
            csv.ok() ? csv->size() > kAdminMaxRejectsBytes
                     : csv.status().code() == StatusCode::kResourceExhausted;
        if (!csv.ok() && !too_big) return SendStatus(res, csv.status());
        if (too_big) {
          return SendError(res, 413, "payload_too_large",
                           "the rejects report is larger than " +
                               std::to_string(kAdminMaxRejectsBytes) +
                               " bytes; read it from the work store");
        }
        // The report as stored: card numbers in it are masked already.
        res.status = 200;
        res.set_content(std::move(*csv), "text/csv; charset=utf-8");
        res.set_header("Content-Disposition",
                       "attachment; filename=\"" + id + "-rejects.csv\"");
      });

  add("/api/charts", "GET", false, "",
      [&h](const Request& req, Response& res) {
        if (!h.runs) return SendError(res, 503, "unavailable", "no run store");
        if (!CheckParams(req, {"range"}, res)) return;
        const std::string range =
            req.has_param("range") ? req.get_param_value("range") : "24h";
        if (range != "24h" && range != "14d") {
          return SendError(res, 400, "invalid_argument",
                           "range must be 24h or 14d");
        }
        const int64_t now = h.now_ms ? h.now_ms() : SystemNowMs();
        const int64_t bucket_ms = range == "24h" ? 3'600'000 : 86'400'000;
        const int buckets = range == "24h" ? 24 : 14;
        // Runs are listed by creation: a day before the range catches
        // those delivered within it after a long retry.
        const int64_t from =
            ChartsStartMs(bucket_ms, buckets, now) - 86'400'000;
        StatusOr<std::vector<RunRecord>> runs =
            RunsWithSteps(*h.runs, from, kAdminChartsMaxRuns);
        if (!runs.ok()) return SendStatus(res, runs.status());
        SendJson(res, 200,
                 ChartsJson(range, bucket_ms, buckets, h.destinations, *runs,
                            now));
      });

  add("/api/overview", "GET", false, "",
      [this, &h](const Request& req, Response& res) {
        if (!h.runs || !h.queue)
          return SendError(res, 503, "unavailable", "no run store or queue");
        if (!CheckParams(req, {}, res)) return;
        const int64_t now = h.now_ms ? h.now_ms() : SystemNowMs();
        StatusOr<QueueStats> q = h.queue->Stats();
        if (!q.ok()) return SendStatus(res, q.status());
        json runs = json::object();
        for (const char* state :
             {"queued", "running", "failed", "rejected", "succeeded"}) {
          StatusOr<int64_t> n = h.runs->Count({.state = state});
          if (!n.ok()) return SendStatus(res, n.status());
          runs[state] = *n;
        }
        // Deliveries of the recent runs: their steps hold the outcomes.
        StatusOr<std::vector<RunRecord>> recent = overview_runs_.Runs(
            *h.runs, now - kAdminOverviewWindowMs, kAdminOverviewMaxRuns);
        if (!recent.ok()) return SendStatus(res, recent.status());
        const std::map<std::string, Reachability> reachable =
            h.reachability ? h.reachability()
                           : std::map<std::string, Reachability>();
        json destinations =
            DestinationsOverviewJson(h.destinations, *recent, reachable, now);
        const bool ready = !h.ready || h.ready();
        json attention = json::array();
        if (!ready) attention.push_back("service not ready");
        if (q->dead_letters > 0) attention.push_back("dead letters present");
        if (runs["failed"].get<int64_t>() > 0) attention.push_back("failed runs");
        for (const json& d : destinations) {
          for (const json& why : d["attention"])
            attention.push_back(d["name"].get<std::string>() + ": " +
                                why.get<std::string>());
        }
        SendJson(
            res, 200,
            {{"generated_ms", now},
             {"service",
              {{"ready", ready},
               {"version", h.version},
               {"started_ms", h.started_ms},
               {"workers", h.workers}}},
             {"queue",
              {{"depth", q->visible},
               {"in_flight", q->in_flight},
               {"delayed", q->delayed},
               {"dead_letters", q->dead_letters},
               {"oldest_age_seconds",
                static_cast<double>(q->oldest_age_ms) / 1000.0}}},
             {"runs", std::move(runs)},
             {"destinations", std::move(destinations)},
             {"attention", std::move(attention)}});
      });

  add("/api/deadletters", "GET", false, "",
      [&h](const Request& req, Response& res) {
        if (!h.queue) return SendError(res, 503, "unavailable", "no queue");
        if (!CheckParams(req, {"limit", "after"}, res)) return;
        int limit = 0;
        if (!IntParam(req, "limit", 1, kAdminMaxPageSize, kAdminDefaultPageSize,
                      &limit, res))
          return;
        const std::string after = req.get_param_value("after");
        if (req.has_param("after") && !IsValidDeadLetterId(after)) {
          return SendError(res, 400, "invalid_argument",
                           "after must be a dead-letter id");
        }
        StatusOr<std::vector<DeadLetter>> list =
            h.queue->ListDeadLetters(limit, after);
        if (!list.ok()) return SendStatus(res, list.status());
        StatusOr<QueueStats> stats = h.queue->Stats();
        if (!stats.ok()) return SendStatus(res, stats.status());
        json items = json::array();
        for (const DeadLetter& d : *list) items.push_back(DeadLetterJson(d));
        const bool more = static_cast<int>(list->size()) == limit;
        SendJson(res, 200,
                 {{"dead_letters", std::move(items)},
                  {"total", stats->dead_letters},
                  {"limit", limit},
                  {"next_after",
                   more ? json(list->back().message.id) : json(nullptr)}});
      });

  add("/api/deadletters/*", "GET", false, "",
      [&h](const Request& req, Response& res) {
        if (!h.queue) return SendError(res, 503, "unavailable", "no queue");
        if (!CheckParams(req, {}, res)) return;
        const std::string& id = req.path_arg;
        if (!IsValidDeadLetterId(id)) {
          return SendError(res, 400, "invalid_argument",
                           "malformed dead-letter id");
        }
        StatusOr<DeadLetter> d = h.queue->GetDeadLetter(id);
        if (!d.ok()) return SendStatus(res, d.status());
        SendJson(res, 200, DeadLetterJson(*d));
      });

  // Authorized before it gets here (audit_action is set).
  add("/api/deadletters/redrive", "POST", false, "redrive_all",
      [&h](const Request& req, Response& res) {
        AuditRecord a;
        a.action = "redrive_all";
        a.actor = TokenActor(h.token);
        a.via = "api";
        a.origin = req.peer;
        if (!h.queue) {
          SendError(res, 503, "unavailable", "no queue");
          a.outcome = "failed";
          a.error = "no queue";
          return WriteAudit(a);
        }
        if (!CheckParams(req, {}, res)) {
          a.outcome = "refused";
          a.error = ErrorMessage(res);
          return WriteAudit(a);
        }
        if (req.client_gone && req.client_gone()) {
          SendError(res, 503, "unavailable",
                    "the client disconnected before the redrive; nothing "
                    "was done");
          a.outcome = "client_gone";
          a.error = ErrorMessage(res);
          return WriteAudit(a);
        }
        StatusOr<int64_t> n = h.queue->RedriveAll();
        if (!n.ok()) {
          SendStatus(res, n.status());
          a.outcome = "failed";
          a.error = n.status().message();
          return WriteAudit(a);
        }
        // RedriveAll moves all or reports an error: nothing failed alone.
        SendJson(res, 200, {{"redriven", *n}, {"failed", json::array()}});
        a.outcome = "ok";
        a.count = *n;
        WriteAudit(a);
      });

  add("/api/deadletters/*/redrive", "POST", false, "redrive",
      [&h](const Request& req, Response& res) {
        AuditRecord a;
        a.action = "redrive";
        a.actor = TokenActor(h.token);
        a.via = "api";
        a.origin = req.peer;
        a.dead_letter_id = req.path_arg.substr(0, 64);
        auto refuse = [&](int status, std::string_view code,
                          std::string_view outcome, std::string message) {
          SendError(res, status, code, message);
          a.outcome = std::string(outcome);
          a.error = std::move(message);
          WriteAudit(a);
        };
        if (!h.queue) return refuse(503, "unavailable", "failed", "no queue");
        if (!CheckParams(req, {}, res)) {
          a.outcome = "refused";
          a.error = ErrorMessage(res);
          return WriteAudit(a);
        }
        const std::string& id = req.path_arg;
        if (!IsValidDeadLetterId(id)) {
          return refuse(400, "invalid_argument", "refused",
                        "malformed dead-letter id");
        }
        // A client that gave up while this waited for a worker gets
        // nothing done: it will not see the answer, and may retry.
        if (req.client_gone && req.client_gone()) {
          return refuse(503, "unavailable", "client_gone",
                        "the client disconnected before the redrive; "
                        "nothing was done");
        }
        StatusOr<DeadLetter> d = h.queue->GetDeadLetter(id);
        if (d.ok()) {
          const json run = DeadLetterJson(*d)["run_id"];
          if (run.is_string() && IsValidRunId(run.get<std::string>()))
            a.run_id = run.get<std::string>();
        }
        Status st = d.ok() ? h.queue->Redrive(id) : d.status();
        if (!st.ok()) {
          SendStatus(res, st);
          a.outcome =
              st.code() == StatusCode::kNotFound ? "not_found" : "failed";
          a.error = st.message();
          return WriteAudit(a);
        }
        SendJson(res, 200, {{"redriven", id}});
        a.outcome = "ok";
        a.count = 1;
        WriteAudit(a);
      });
}

AdminServer::AdminServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

AdminServer::~AdminServer() { Stop(); }

void AdminServer::Stop() {
  if (impl_) impl_->Stop();
}

StatusOr<std::unique_ptr<AdminServer>> AdminServer::Start(
    const std::string& listen, Hooks hooks, AdminLimits limits) {
  // The same rule as `config check` (service.admin_listen); only tests
  // set allow_non_loopback.
  StatusOr<ListenAddress> address = hooks.allow_non_loopback
                                        ? ParseListenAddress(listen)
                                        : ParseAdminListenAddress(listen);
  if (!address.ok()) return address.status();
  const std::string host = address->host;
  const int port = address->port;
  auto impl = std::make_unique<Impl>(std::move(hooks), limits);
  Hooks& h = impl->hooks();
  if (!IsLoopbackHost(host)) {
    h.log("warning: admin API listening on non-loopback address " + listen +
          " over plain HTTP" +
          (h.token.empty() ? ""
                           : "; the bearer token crosses the network in "
                             "clear"));
  }
  CBPIPE_ASSIGN_OR_RETURN(int bound, impl->Listen(host, port, listen));
  impl->Run();
  std::unique_ptr<AdminServer> server(new AdminServer(std::move(impl)));
  server->port_ = bound;
  return server;
}

StatusOr<std::unique_ptr<AdminServer>> StartAdminServer(
    const Config& config, RunStore* runs, Queue* queue,
    std::function<std::string()> render_metrics, std::function<bool()> ready,
    SecretStore* secrets) {
  if (config.service.admin_listen.empty())
    return std::unique_ptr<AdminServer>();
  AdminServer::Hooks hooks;
  hooks.runs = runs;
  hooks.queue = queue;
  hooks.render_metrics = std::move(render_metrics);
  hooks.ready = std::move(ready);
  if (!config.service.admin_token_ref.empty()) {
    StatusOr<SecretString> token =
        SecretsOrDefault(secrets)->Resolve(config.service.admin_token_ref);
    if (!token.ok()) {
      return Status(token.status().code(),
                    "service.admin_token: " + token.status().message());
    }
    hooks.token = token->value();
  }
  return AdminServer::Start(config.service.admin_listen, std::move(hooks));
}

}  // namespace cbpipe
