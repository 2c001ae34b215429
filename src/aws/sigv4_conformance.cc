#include "aws/sigv4_conformance.h"

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "nlohmann/json.hpp"

namespace cbpipe {
namespace {

std::string_view TrimTrailingNewlines(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

std::vector<std::string_view> Lines(std::string_view s) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    size_t end = s.find('\n', start);
    if (end == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
}

std::string_view StripCr(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

// "2015-08-30T12:36:00Z" -> epoch seconds.
StatusOr<int64_t> ParseTimestamp(const std::string& text) {
  std::tm tm{};
  std::istringstream in(text);
  in >> std::get_time(&tm, "%Y-%m-%dT%H:%M:%S");
  if (in.fail()) {
    return InvalidArgumentError("timestamp \"" + text +
                                "\" is not "
                                "YYYY-MM-DDTHH:MM:SSZ");
  }
  return static_cast<int64_t>(timegm(&tm));
}

// Compares one step; appends "file: difference" when it differs.
void Compare(const std::string& dir, const std::string& file,
             std::string_view got, std::vector<std::string>* diffs) {
  StatusOr<std::string> expected = ReadAwsCaseFile(dir + "/" + file);
  if (!expected.ok()) {
    diffs->push_back(file + ": " + expected.status().message());
    return;
  }
  std::string diff = AwsFirstDifference(*expected, got);
  if (!diff.empty()) diffs->push_back(file + " " + diff);
}

}  // namespace

StatusOr<AwsRawRequest> ParseAwsRawRequest(std::string_view text) {
  AwsRawRequest out;
  size_t head_end = text.find("\n\n");
  size_t body_start = std::string_view::npos;
  if (size_t crlf = text.find("\r\n\r\n");
      crlf != std::string_view::npos && crlf < head_end) {
    head_end = crlf;
    body_start = crlf + 4;
  } else if (head_end != std::string_view::npos) {
    body_start = head_end + 2;
  }
  std::string_view head =
      head_end == std::string_view::npos ? text : text.substr(0, head_end);
  if (body_start != std::string_view::npos) out.body = text.substr(body_start);

  std::vector<std::string_view> lines = Lines(TrimTrailingNewlines(head));
  std::string_view request_line = StripCr(lines[0]);
  size_t first = request_line.find(' ');
  size_t last = request_line.rfind(' ');
  if (first == std::string_view::npos || last <= first) {
    return InvalidArgumentError("request line \"" + std::string(request_line) +
                                "\" is not METHOD TARGET VERSION");
  }
  out.method = std::string(request_line.substr(0, first));
  std::string_view target = request_line.substr(first + 1, last - first - 1);
  size_t question = target.find('?');
  out.path = std::string(target.substr(0, question));
  if (question != std::string_view::npos) {
    out.query = std::string(target.substr(question + 1));
  }
  for (size_t i = 1; i < lines.size(); ++i) {
    std::string_view line = StripCr(lines[i]);
    if (line.empty()) continue;
    if (line[0] == ' ' || line[0] == '\t') {  // obs-fold: continues a value
      if (out.headers.empty()) {
        return InvalidArgumentError("header continuation line " +
                                    std::to_string(i + 1) +
                                    " follows no header");
      }
      out.headers.back().second += " " + std::string(line);
      continue;
    }
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      return InvalidArgumentError("header line " + std::to_string(i + 1) +
                                  " has no name:value");
    }
    out.headers.emplace_back(std::string(line.substr(0, colon)),
                             std::string(line.substr(colon + 1)));
  }
  return out;
}

AwsHeaderList ParseAwsQueryString(std::string_view query) {
  AwsHeaderList out;
  if (query.empty()) return out;
  size_t start = 0;
  while (start <= query.size()) {
    size_t end = query.find('&', start);
    if (end == std::string_view::npos) end = query.size();
    std::string_view pair = query.substr(start, end - start);
    if (!pair.empty()) {
      size_t eq = pair.find('=');
      std::string_view name = pair.substr(0, eq);
      std::string_view value =
          eq == std::string_view::npos ? "" : pair.substr(eq + 1);
      out.emplace_back(AwsUriDecode(name), AwsUriDecode(value));
    }
    start = end + 1;
  }
  return out;
}

StatusOr<std::string> ReadAwsCaseFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

StatusOr<AwsConformanceCase> LoadAwsConformanceCase(const std::string& dir) {
  AwsConformanceCase c;
  c.dir = dir;
  c.name = std::filesystem::path(dir).filename().string();
  CBPIPE_ASSIGN_OR_RETURN(std::string raw,
                          ReadAwsCaseFile(dir + "/request.txt"));
  CBPIPE_ASSIGN_OR_RETURN(c.request, ParseAwsRawRequest(raw));
  CBPIPE_ASSIGN_OR_RETURN(std::string context_text,
                          ReadAwsCaseFile(dir + "/context.json"));
  nlohmann::json context =
      nlohmann::json::parse(context_text, nullptr, /*allow_exceptions=*/false);
  if (context.is_discarded() || !context.is_object()) {
    return InvalidArgumentError(dir + "/context.json is not a JSON object");
  }
  const nlohmann::json& creds = context.value("credentials", nlohmann::json());
  if (!creds.is_object()) {
    return InvalidArgumentError(dir + "/context.json has no credentials");
  }
  c.credentials.access_key_id = creds.value("access_key_id", "");
  c.credentials.secret_access_key = creds.value("secret_access_key", "");
  c.credentials.session_token = creds.value("token", "");
  c.options.region = context.value("region", "");
  c.options.service = context.value("service", "");
  bool normalize = context.value("normalize", true);
  c.options.normalize_path = normalize;
  c.options.double_encode_path = normalize;
  c.options.sign_body = context.value("sign_body", false);
  c.options.omit_session_token = context.value("omit_session_token", false);
  c.options.expires_seconds = context.value("expiration_in_seconds", 3600);
  c.options.payload_hash = AwsPayloadHash(c.request.body);
  CBPIPE_ASSIGN_OR_RETURN(c.options.time_s,
                          ParseTimestamp(context.value("timestamp", "")));
  return c;
}

std::string AwsFirstDifference(std::string_view expected,
                               std::string_view got) {
  std::vector<std::string_view> want = Lines(TrimTrailingNewlines(expected));
  std::vector<std::string_view> have = Lines(TrimTrailingNewlines(got));
  size_t n = std::max(want.size(), have.size());
  for (size_t i = 0; i < n; ++i) {
    std::string_view w = i < want.size() ? want[i] : "<no line>";
    std::string_view h = i < have.size() ? have[i] : "<no line>";
    if (w != h) {
      return "line " + std::to_string(i + 1) + ": expected \"" +
             std::string(w) + "\", got \"" + std::string(h) + "\"";
    }
  }
  return "";
}

std::vector<std::string> CheckAwsConformanceCase(const AwsConformanceCase& c) {
  std::vector<std::string> diffs;
  AwsSigningRequest request;
  request.method = c.request.method;
  request.path = c.request.path;
  request.query = ParseAwsQueryString(c.request.query);
  request.headers = c.request.headers;
  StatusOr<AwsSignature> header =
      AwsSignHeaders(request, c.credentials, c.options);
  if (!header.ok()) {
    diffs.push_back("header signing failed: " + header.status().ToString());
  } else {
    Compare(c.dir, "header-canonical-request.txt", header->canonical_request,
            &diffs);
    Compare(c.dir, "header-string-to-sign.txt", header->string_to_sign, &diffs);
    Compare(c.dir, "header-signature.txt", header->signature, &diffs);
  }
  StatusOr<AwsSignature> query = AwsPresign(request, c.credentials, c.options);
  if (!query.ok()) {
    diffs.push_back("query signing failed: " + query.status().ToString());
  } else {
    Compare(c.dir, "query-canonical-request.txt", query->canonical_request,
            &diffs);
    Compare(c.dir, "query-string-to-sign.txt", query->string_to_sign, &diffs);
    Compare(c.dir, "query-signature.txt", query->signature, &diffs);
  }
  return diffs;
}

StatusOr<std::vector<std::string>> ListAwsConformanceCases(
    const std::string& dir) {
  std::error_code ec;
  std::vector<std::string> out;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.is_directory() &&
        std::filesystem::exists(entry.path() / "request.txt")) {
      out.push_back(entry.path().string());
    }
  }
  if (ec) return NotFoundError("cannot list " + dir + ": " + ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace cbpipe
